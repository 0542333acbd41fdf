/**
 * The `ferry` command line: one command, or the interactive shell, on a
 * connection made when first needed; and what an interruption says.
 *
 * @module
 */

import { removeLiveTempFiles } from "../../fs/atomic_file.ts";
import { onStopSignal } from "../../util/signals.ts";
import { escapeGlob } from "../../util/glob.ts";
import { VERSION } from "../../util/version.ts";
import { loadAlgorithm } from "../../checksum/checksum.ts";
import { PROTOCOL_VERSION } from "../../commands.ts";
import { connect, connectionOf, type FerryClient } from "../client.ts";
import { FerryError } from "../../util/errors.ts";
import { type ClientArgs, connectOptions, parseClientArgs } from "./args.ts";
import { commandHelp, COMMANDS, type Context, helpText } from "./commands.ts";
import { consoleSink, fail, interruptedLine, runCommand } from "./run.ts";
import { readFilesInline } from "../../fs/local_files.ts";

/** Exit status after SIGINT or SIGTERM, as shells report them. */
const INTERRUPTED = 130;

/** A lazily (re)connecting session for one CLI run; `shell` enables the working directory. */
function session(args: ClientArgs, shell: boolean): Context & { end(): Promise<void> } {
  let client: FerryClient | undefined;
  const ctx = {
    sink: consoleSink,
    mode: args.mode,
    retries: args.retries,
    maxSize: args.maxSize,
    cwd: "",
    shell,
    remote(path: string) {
      // A leading "/" is the root, one-shot as in the shell (sftp's habit: `put x /`); other
      // one-shot paths go as typed, and the server judges them.
      if (path.startsWith("/")) return path.replace(/^\/+/, "");
      if (!shell || ctx.cwd === "") return path;
      // The path typed is a pattern: the directory it is relative to is a name, escaped in it.
      const cwd = escapeGlob(ctx.cwd);
      return path === "" ? cwd : `${cwd}/${path}`;
    },
    async client() {
      if (!client || client.failure) {
        client = await connect(args.server, await connectOptions(args));
      }
      return client;
    },
    cancel() {
      if (client) connectionOf(client).close(new FerryError("CANCELLED", "stopped (Ctrl-C)"));
      client = undefined;
    },
    async end() {
      await client?.close();
    },
  };
  return ctx;
}

/**
 * Run the `ferry` CLI and return its exit code.
 *
 * @example
 * ```ts ignore
 * import { main } from "./main.ts";
 * Deno.exit(await main(["ls"]));
 * ```
 */
export async function main(argv: string[]): Promise<number> {
  // A command's loop drives its own transfers only: files are read on it (see readFilesInline).
  readFilesInline();
  let args: ClientArgs;
  try {
    args = parseClientArgs(argv, Deno.env.toObject());
  } catch (err) {
    return fail(consoleSink, err);
  }
  if (args.help || args.command[0] === "help") {
    // `ferry --help ls` and `ferry help ls` as `ferry ls --help`: that command's own help.
    const name = args.command[0] === "help" ? args.command[1] : args.command[0];
    const cmd = name === undefined ? undefined : COMMANDS[name];
    console.log(cmd ? commandHelp(cmd) : helpText());
    return 0;
  }
  if (args.version) {
    // How XXH3-128 runs here decides how fast transfers can go: say it.
    console.log(
      `ferry ${VERSION} (protocol ${PROTOCOL_VERSION}, xxh128 ${await loadAlgorithm("xxh128")})`,
    );
    return 0;
  }
  const ctx = session(args, args.command.length === 0);
  // The shell (node:readline) is imported only for a shell: it loads Node's layer, which a
  // one-shot command does without (docs/performance.md, "Start-up").
  let shellModule: typeof import("./shell.ts") | undefined;
  // Interrupted mid-transfer: leave no temporary file behind (the server drops its own), and
  // say what was kept to resume.
  const unlisten = onStopSignal((signal) => {
    // In the shell, Ctrl-C stops the command running, not the shell.
    if (signal === "SIGINT" && shellModule?.interruptCommand()) return;
    removeLiveTempFiles();
    consoleSink.err(interruptedLine(argv));
    Deno.exit(INTERRUPTED);
  });
  try {
    if (args.command.length === 0) {
      await ctx.client();
      shellModule = await import("./shell.ts");
      return await shellModule.shell(ctx);
    }
    return await runCommand(ctx, args.command, false);
  } catch (err) {
    return fail(ctx.sink, err);
  } finally {
    await ctx.end().catch(() => {});
    unlisten();
  }
}
