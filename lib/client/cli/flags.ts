/**
 * The options of ferry's command line and shell commands: their table, and
 * the one place they are parsed.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { FerryError } from "../../util/errors.ts";
import { flagMessage } from "../../util/parse_options.ts";
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

/** How results are shown, from the output options given. */
export function outputMode(values: Values): OutputMode {
  return values.json ? "json" : values.quiet ? "quiet" : "human";
}
