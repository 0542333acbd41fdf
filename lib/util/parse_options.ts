/**
 * `node:util`'s `parseArgs` in ferry's words, for both command lines: its
 * complaints rewritten in ferry's style, and a value that starts with `-`
 * kept with its option rather than taken for another option.
 *
 * @module
 */

import { suggest } from "./suggest.ts";

/**
 * A parser's complaint in ferry's words: lower case, the option named as
 * typed, and a suggestion where a known option is near.
 *
 * @example
 * ```ts
 * import { flagMessage } from "./parse_options.ts";
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

/**
 * `argv` with each option of `takesValue` joined to the value after it
 * (`--port -1` becomes `--port=-1`), so that a value starting with `-`
 * reaches the option's own check ("takes a number of seconds") instead of
 * the parser's guess that a value is missing.
 *
 * @example
 * ```ts
 * import { joinValues } from "./parse_options.ts";
 * const args = joinValues(["--port", "-1", "-p", "2"], new Set(["--port", "-p"]));
 * console.assert(args.join(" ") === "--port=-1 -p2");
 * ```
 */
export function joinValues(argv: string[], takesValue: Set<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      out.push(...argv.slice(i));
      break;
    }
    if (takesValue.has(arg) && i + 1 < argv.length) {
      out.push(arg.startsWith("--") ? `${arg}=${argv[++i]}` : `${arg}${argv[++i]}`);
    } else out.push(arg);
  }
  return out;
}
