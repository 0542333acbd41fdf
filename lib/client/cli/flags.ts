/**
 * The options of ferry's command line and shell commands: their table, and
 * the one place they are parsed.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { FerryError } from "../../util/errors.ts";
import { suggest } from "../../util/suggest.ts";
import type { OutputMode } from "../report.ts";

/** One option: a switch, or one that takes a value. */
export type Flag = { type: "boolean"; short?: string } | { type: "string"; short?: string };
/** Parsed option values, by name. */
export type Values = Record<string, string | boolean | undefined>;

/** Options every command accepts, one-shot or in the shell. */
export const OUTPUT_FLAGS: Record<string, Flag> = {
  json: { type: "boolean" },
  quiet: { type: "boolean", short: "q" },
};

/** `--help`, which every command takes. */
export const HELP_FLAG: Record<string, Flag> = { help: { type: "boolean", short: "h" } };

/** Parse `args` against `flags`, in ferry's words. */
export function parseFlags(args: string[], flags: Record<string, Flag>) {
  try {
    const { values, positionals } = parseArgs({
      args,
      options: flags,
      allowPositionals: true,
      strict: true,
    });
    return { values: { ...values } as Values, positionals };
  } catch (err) {
    // Node's wording goes on about "--" for positionals; the first sentence is the news.
    const message = (err as Error).message.split("\n")[0].replace(/\. To specify .*$/, "");
    const unknown = /^Unknown option '(-{1,2})([^']+)'/.exec(message);
    const near = unknown && unknown[1] === "--"
      ? suggest(unknown[2], Object.keys(flags))
      : undefined;
    throw new FerryError("USAGE", near ? `${message}; did you mean '--${near}'?` : message);
  }
}

/** How results are shown, from the output options given. */
export function outputMode(values: Values): OutputMode {
  return values.json ? "json" : values.quiet ? "quiet" : "human";
}
