/**
 * Running one command line, and the one place errors meet the user: one
 * line on stderr and an exit code.
 *
 * @module
 */

import { exitCodeFor, isRetriable, toFerryError } from "../../util/errors.ts";
import { backoffMs } from "../batch.ts";
import type { Sink } from "../report.ts";
import { commandHelp, type Context, parseCommand } from "./commands.ts";
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
  sink.err(`ferry: ${e.message}`);
  return exitCodeFor(e);
}
