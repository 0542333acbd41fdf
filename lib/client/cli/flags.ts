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

/**
 * Parse `args` against `flags`, in ferry's words. The values also say which
 * options came by their short name: `-NAME` (the long name) is true then.
 */
export function parseFlags(args: string[], flags: Record<string, Flag>) {
  try {
    const { values, positionals, tokens } = parseArgs({
      args,
      options: flags,
      allowPositionals: true,
      strict: true,
      tokens: true,
    });
    const result = { ...values } as Values;
    // Which options came by their short name: `-n` changed meaning, and says so.
    for (const token of tokens) {
      if (token.kind === "option" && token.rawName.length === 2) result[`-${token.name}`] = true;
    }
    return { values: result, positionals };
  } catch (err) {
    throw new FerryError("USAGE", flagMessage((err as Error).message, Object.keys(flags)));
  }
}

/**
 * A parser's complaint in ferry's words: lower case, the option named as
 * typed, and a suggestion where a known option is near.
 *
 * @example
 * ```ts
 * import { flagMessage } from "./flags.ts";
 * const message = flagMessage("Unknown option '--sycn'. To specify a positional...", ["sync"]);
 * console.assert(message === "unknown option --sycn (did you mean --sync?)");
 * ```
 */
export function flagMessage(parser: string, known: string[]): string {
  const first = parser.split("\n")[0];
  const unknown = /^Unknown option '(-{1,2})([^'=]+)/.exec(first);
  if (unknown) {
    const near = unknown[1] === "--" ? suggest(unknown[2], known) : undefined;
    return `unknown option ${unknown[1]}${unknown[2]}${near ? ` (did you mean --${near}?)` : ""}`;
  }
  const named = /^Option '(?:-\w, )?(--[\w-]+)/.exec(first)?.[1];
  if (named && /argument is ambiguous/.test(first)) {
    return `option ${named} needs a value; for one that starts with '-', write ${named}=VALUE`;
  }
  if (named && /argument missing/.test(first)) return `option ${named} needs a value`;
  if (named && /does not take an argument/.test(first)) return `option ${named} takes no value`;
  const plain = first.replace(/\. To specify .*$/, "");
  return plain.charAt(0).toLowerCase() + plain.slice(1);
}

/** How results are shown, from the output options given. */
export function outputMode(values: Values): OutputMode {
  return values.json ? "json" : values.quiet ? "quiet" : "human";
}
