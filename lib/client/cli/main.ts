/**
 * The `ferry` command line: one command, or the interactive shell, on a
 * connection made when first needed; and what an interruption says.
 *
 * @module
 */

import { heldPartials, removeLiveTempFiles } from "../../fs/atomic_file.ts";
import { escapeName } from "../../util/display.ts";
import { onStopSignal } from "../../util/signals.ts";
import { VERSION } from "../../util/version.ts";
import { loadAlgorithm } from "../../checksum/checksum.ts";
import { PROTOCOL_VERSION } from "../../commands.ts";
import { connect, type FerryClient } from "../client.ts";
import { formatBytes } from "../report.ts";
import { type ClientArgs, connectOptions, parseClientArgs } from "./args.ts";
import { type Context, helpText, runningReporter } from "./commands.ts";
import { consoleSink, fail, runCommand } from "./run.ts";
import { shell } from "./shell.ts";

/** Exit status after SIGINT or SIGTERM, as shells report them. */
const INTERRUPTED = 130;

/**
 * The one line an interruption prints: what was kept to resume (partials
 * of downloads here, of uploads on the server), and the command that
 * resumes it, which is the same one again, secrets left out.
 */
function interruptedLine(argv: string[]): string {
  const kept = new Map<string, number>();
  for (const { path, bytes } of runningReporter()?.keeping ?? []) kept.set(path, bytes);
  // A download writing its partial knows best how much is on disk.
  const downloads = new Set<string>();
  for (const { path, bytes } of heldPartials()) {
    downloads.add(path);
    if (bytes > 0) kept.set(path, Math.max(bytes, kept.get(path) ?? 0));
  }
  // An upload's count is what was sent: the server holds what of it arrived, up to that.
  const upTo = [...kept].some(([path, bytes]) => bytes > 0 && !downloads.has(path));
  const held = [...kept].filter(([, bytes]) => bytes > 0);
  if (held.length === 0) return "ferry: interrupted; nothing was kept";
  const names = held.map(([path]) => escapeName(path));
  const what = held.length === 1
    ? `${formatBytes(held[0][1])} of ${names[0]}`
    : `${held.length} partial files (${names.slice(0, 3).join(", ")}${
      held.length > 3 ? ", …" : ""
    })`;
  const amount = upTo ? `up to ${what}` : what;
  return `ferry: interrupted; kept ${amount}: run the same command again to resume (${
    commandLine(argv)
  })`;
}

/** `ferry ARGS` as a shell would take it back, with token values left out. */
function commandLine(argv: string[]): string {
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--token") {
      words.push(arg, "…");
      i++;
    } else if (arg.startsWith("--token=")) words.push("--token=…");
    // Run again, it must continue, not start afresh.
    else if (arg === "--no-resume") continue;
    else words.push(/^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`);
  }
  return ["ferry", ...words].join(" ");
}

/** A lazily (re)connecting session for one CLI run; `shell` enables the working directory. */
function session(args: ClientArgs, shell: boolean): Context & { end(): Promise<void> } {
  let client: FerryClient | undefined;
  const ctx = {
    sink: consoleSink,
    mode: args.mode,
    retries: args.retries,
    maxSize: args.maxSize,
    cwd: "",
    remote(path: string) {
      // A leading "/" is the root, one-shot as in the shell (sftp's habit: `put x /`); other
      // one-shot paths go as typed, and the server judges them.
      if (path.startsWith("/")) return path.replace(/^\/+/, "");
      if (!shell) return path;
      return ctx.cwd === "" ? path : path === "" ? ctx.cwd : `${ctx.cwd}/${path}`;
    },
    async client() {
      if (!client || client.failure) {
        client = await connect(args.server, await connectOptions(args));
      }
      return client;
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
  let args: ClientArgs;
  try {
    args = parseClientArgs(argv, Deno.env.toObject());
  } catch (err) {
    return fail(consoleSink, err);
  }
  if (args.help || args.command[0] === "help") {
    console.log(helpText());
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
  // Interrupted mid-transfer: leave no temporary file behind (the server drops its own), and
  // say what was kept to resume.
  const unlisten = onStopSignal(() => {
    removeLiveTempFiles();
    consoleSink.err(interruptedLine(argv));
    Deno.exit(INTERRUPTED);
  });
  try {
    if (args.command.length === 0) {
      await ctx.client();
      return await shell(ctx);
    }
    return await runCommand(ctx, args.command, false);
  } catch (err) {
    return fail(ctx.sink, err);
  } finally {
    await ctx.end().catch(() => {});
    unlisten();
  }
}
