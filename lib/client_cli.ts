/**
 * The `ferry` command line: argument parsing, the command table shared by
 * one-shot use and the interactive shell, and the one place where errors
 * become messages and exit codes.
 *
 * @module
 */

import { basename, join } from "node:path";
import { parseArgs } from "node:util";
import { connect, DEFAULT_ADDRESS, type FerryClient, type TransferResult } from "./client.ts";
import { exitCodeFor, FerryError, toFerryError } from "./errors.ts";
import { escapeName } from "./path_jail.ts";
import { splitWords } from "./shell_words.ts";
import { VERSION } from "./version.ts";

/** Where a command writes; swapped in tests of the pure parts. */
export interface Io {
  out(line: string): void;
  err(line: string): void;
}

const consoleIo: Io = { out: (l) => console.log(l), err: (l) => console.error(l) };

interface Context {
  client(): Promise<FerryClient>;
  io: Io;
}

interface Command {
  usage: string;
  summary: string;
  min: number;
  max: number;
  run(ctx: Context, args: string[]): Promise<void>;
}

const COMMANDS: Record<string, Command> = {
  ls: {
    usage: "ls [PATH]",
    summary: "list a remote directory (or show one file)",
    min: 0,
    max: 1,
    async run(ctx, [path = ""]) {
      const entries = await (await ctx.client()).list(path);
      entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const e of entries) ctx.io.out(escapeName(e.name) + (e.type === "dir" ? "/" : ""));
    },
  },
  get: {
    usage: "get REMOTE [LOCAL]",
    summary: "download a file (into LOCAL, or a directory LOCAL, or ./NAME)",
    min: 1,
    max: 2,
    async run(ctx, [remote, local]) {
      const target = await localTarget(remote, local);
      report(ctx, "get", remote, target, await (await ctx.client()).get(remote, target));
    },
  },
  put: {
    usage: "put LOCAL [REMOTE]",
    summary: "upload a file (to REMOTE, or REMOTE/NAME if it ends in /, or NAME)",
    min: 1,
    max: 2,
    async run(ctx, [local, remote]) {
      const target = remote === undefined || remote === ""
        ? basename(local)
        : remote.endsWith("/")
        ? remote + basename(local)
        : remote;
      report(ctx, "put", local, target, await (await ctx.client()).put(local, target));
    },
  },
};

/** Names that end the interactive shell. */
const SHELL_EXIT = new Set(["close", "quit", "exit", "bye"]);

async function localTarget(remote: string, local: string | undefined): Promise<string> {
  const name = basename(remote);
  if (name === "" || name === "." || name === "..") {
    throw new FerryError("USAGE", `cannot name a local file after ${escapeName(remote)}`);
  }
  if (local === undefined) return name;
  if (local.endsWith("/")) return join(local, name);
  const info = await Deno.stat(local).catch(() => undefined);
  return info?.isDirectory ? join(local, name) : local;
}

function report(ctx: Context, op: string, from: string, to: string, r: TransferResult): void {
  if (!Deno.stderr.isTerminal()) return;
  const mib = r.bytes / 1048576;
  const rate = r.seconds > 0 ? ` (${(mib / r.seconds).toFixed(1)} MiB/s)` : "";
  ctx.io.err(
    `${op} ${escapeName(from)} -> ${escapeName(to)}: ${r.bytes} bytes in ${
      r.seconds.toFixed(2)
    } s${rate}`,
  );
}

/** The help text for the CLI (and, with `shell`, for the shell's `help`). */
export function helpText(shell = false): string {
  const width = Math.max(...Object.values(COMMANDS).map((c) => c.usage.length)) + 2;
  const lines = Object.values(COMMANDS).map((c) => `  ${c.usage.padEnd(width)}${c.summary}`);
  if (shell) {
    return [
      "Commands:",
      ...lines,
      `  ${"help".padEnd(width)}show this help`,
      `  ${"close".padEnd(width)}end the session (also quit, exit, end of input)`,
    ].join("\n");
  }
  return [
    `ferry ${VERSION}: list, download and upload files on a ferryd server`,
    "",
    "Usage:",
    "  ferry [OPTIONS] COMMAND [ARGS]   run one command",
    "  ferry [OPTIONS]                  interactive shell (reads commands from stdin)",
    "",
    "Commands:",
    ...lines,
    "",
    "Options:",
    `  -s, --server HOST:PORT  server address (env FERRY_SERVER; default ${DEFAULT_ADDRESS})`,
    "  -h, --help              show this help",
    "  -V, --version           show the version",
    "",
    "Examples:",
    "  ferry put dist/app.tar.gz releases/",
    "  ferry --server files.internal:9500 get releases/app.tar.gz",
    "  printf 'put a.txt\\nls\\nclose\\n' | ferry",
  ].join("\n");
}

/** Parsed command line. */
export interface ClientArgs {
  server: string;
  help: boolean;
  version: boolean;
  command: string[];
}

/**
 * Parse the client's arguments; `env` supplies defaults (`FERRY_SERVER`).
 *
 * @example
 * ```ts
 * import { parseClientArgs } from "./client_cli.ts";
 * const args = parseClientArgs(["-s", "h:1", "ls"], {});
 * console.assert(args.server === "h:1" && args.command[0] === "ls");
 * ```
 */
export function parseClientArgs(
  argv: string[],
  env: Record<string, string | undefined>,
): ClientArgs {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        server: { type: "string", short: "s" },
        help: { type: "boolean", short: "h" },
        version: { type: "boolean", short: "V" },
      },
    });
  } catch (err) {
    throw new FerryError("USAGE", (err as Error).message);
  }
  const { values, positionals } = parsed;
  return {
    server: values.server ?? env.FERRY_SERVER ?? DEFAULT_ADDRESS,
    help: values.help ?? false,
    version: values.version ?? false,
    command: positionals,
  };
}

function findCommand(name: string): Command {
  if (!Object.hasOwn(COMMANDS, name)) {
    throw new FerryError("USAGE", `unknown command: ${escapeName(name)} (try 'help')`);
  }
  return COMMANDS[name];
}

async function runCommand(ctx: Context, words: string[]): Promise<void> {
  const [name, ...args] = words;
  const cmd = findCommand(name);
  if (args.length < cmd.min || args.length > cmd.max) {
    throw new FerryError("USAGE", `usage: ${cmd.usage}`);
  }
  await cmd.run(ctx, args);
}

/** Programming errors: shown as internal errors, never dressed up as an expected failure. */
function isBug(err: unknown): boolean {
  return err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError ||
    err instanceof SyntaxError || !(err instanceof Error);
}

/** Print `err` as one line and return its exit code: the one place errors meet the user. */
function fail(io: Io, err: unknown): number {
  if (isBug(err)) {
    io.err(`ferry: internal error: ${err instanceof Error ? err.message : String(err)}`);
    if (Deno.env.get("FERRY_DEBUG")) console.error(err);
    return 1;
  }
  const e = toFerryError(err);
  io.err(`ferry: ${e.message}`);
  return exitCodeFor(e);
}

/** A lazily (re)connecting client for one CLI run. */
function session(server: string): Context & { end(): Promise<void> } {
  let client: FerryClient | undefined;
  return {
    io: consoleIo,
    async client() {
      if (!client || client.failure) client = await connect(server);
      return client;
    },
    async end() {
      await client?.close();
    },
  };
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    rest += text;
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      yield rest.slice(0, nl).replace(/\r$/, "");
      rest = rest.slice(nl + 1);
    }
  }
  if (rest !== "") yield rest;
}

async function shell(ctx: Context): Promise<number> {
  const interactive = Deno.stdin.isTerminal();
  const prompt = () => {
    if (interactive) Deno.stdout.writeSync(new TextEncoder().encode("ferry> "));
  };
  let status = 0;
  prompt();
  for await (const line of lines(Deno.stdin.readable)) {
    try {
      const words = splitWords(line);
      if (words.length > 0) {
        if (SHELL_EXIT.has(words[0])) break;
        if (words[0] === "help" || words[0] === "?") ctx.io.out(helpText(true));
        else await runCommand(ctx, words);
      }
    } catch (err) {
      status = fail(ctx.io, err);
    }
    prompt();
  }
  return status;
}

/**
 * Run the `ferry` CLI and return its exit code.
 *
 * @example
 * ```ts ignore
 * import { main } from "./client_cli.ts";
 * Deno.exit(await main(["ls"]));
 * ```
 */
export async function main(argv: string[]): Promise<number> {
  let args: ClientArgs;
  try {
    args = parseClientArgs(argv, Deno.env.toObject());
  } catch (err) {
    return fail(consoleIo, err);
  }
  if (args.help || args.command[0] === "help") {
    console.log(helpText());
    return 0;
  }
  if (args.version) {
    console.log(`ferry ${VERSION}`);
    return 0;
  }
  const ctx = session(args.server);
  try {
    if (args.command.length === 0) {
      await ctx.client();
      return await shell(ctx);
    }
    await runCommand(ctx, args.command);
    return 0;
  } catch (err) {
    return fail(ctx.io, err);
  } finally {
    await ctx.end().catch(() => {});
  }
}
