/**
 * Running one command line, and the one place errors meet the user: one
 * line on stderr and an exit code.
 *
 * @module
 */

import { heldPartials } from "../../fs/atomic_file.ts";
import { escapeName } from "../../util/display.ts";
import { describeError, exitCodeFor, isRetriable, toFerryError } from "../../util/errors.ts";
import { backoffMs } from "../batch.ts";
import { formatBytes, type Sink } from "../report.ts";
import { commandHelp, type Context, parseCommand, runningReporter } from "./commands.ts";
import { outputMode } from "./flags.ts";

/** Where the CLI writes: stdout, stderr, and a progress line on a terminal. */
export const consoleSink: Sink = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
  draw: (text) => void Deno.stderr.writeSync(new TextEncoder().encode(text)),
  tty: Deno.stderr.isTerminal(),
};

/** Run one command line (already split into words); returns its exit status. */
export async function runCommand(ctx: Context, words: string[], shell: boolean): Promise<number> {
  const { cmd, values, positionals } = parseCommand(words, shell);
  if (values.help) {
    ctx.sink.out(commandHelp(cmd));
    return 0;
  }
  const saved = ctx.mode;
  if (values.json || values.quiet) ctx.mode = outputMode(values);
  try {
    // A lost connection is retried here, for whatever was not retried inside (a batch retries
    // each file itself and reports; what reaches here failed before anything moved).
    for (let attempt = 1;; attempt++) {
      try {
        return await cmd.run(ctx, positionals, values) ?? 0;
      } catch (err) {
        const e = toFerryError(err);
        if (isBug(err) || !isRetriable(e) || attempt > ctx.retries) throw err;
        await new Promise((r) => setTimeout(r, backoffMs(attempt)));
      }
    }
  } finally {
    ctx.mode = saved;
  }
}

/** Programming errors: shown as internal errors, never dressed up as an expected failure. */
function isBug(err: unknown): boolean {
  return err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError ||
    err instanceof SyntaxError || !(err instanceof Error);
}

/** Print `err` as one line and return its exit code: the one place errors meet the user. */
export function fail(sink: Sink, err: unknown): number {
  if (isBug(err)) {
    sink.err(`ferry: internal error: ${err instanceof Error ? err.message : String(err)}`);
    if (Deno.env.get("FERRY_DEBUG")) console.error(err);
    return 1;
  }
  const e = toFerryError(err);
  sink.err(`ferry: ${describeError(e)}`);
  return exitCodeFor(e);
}

/**
 * The one line an interruption prints: what was kept to resume (partials
 * of downloads here, of uploads on the server), and the command that
 * resumes it, which is the same one again, secrets left out.
 */
export function interruptedLine(argv: string[], shell = false): string {
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
  const again = shell ? argv.join(" ") : commandLine(argv);
  return `ferry: interrupted; kept ${amount}: run the same command again to resume (${again})`;
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
