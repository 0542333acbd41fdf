/**
 * Split a shell line into words, the way a POSIX shell would for quoting:
 * `'single'` and `"double"` quotes group, a backslash escapes the next
 * character (inside double quotes, only `"` and `\`). Outside quotes, a
 * backslash before a glob's special character (`*`, `?`, `[` or `\`) stays,
 * as in sftp, so that the glob sees the escape: `get d/\[a].txt` fetches
 * the file named `d/[a].txt`, never `d/a.txt`. Pure; no expansion.
 *
 * @module
 */

import { FerryError } from "../../util/errors.ts";

/** The characters a backslash escapes for a glob (see `escapeGlob`). */
const GLOB_SPECIAL = "\\*?[";

/**
 * Split `line` into words.
 *
 * @example
 * ```ts
 * import { splitWords } from "./shell_words.ts";
 * const words = splitWords(`put "my file.txt" 'dest dir/'`);
 * console.assert(words[1] === "my file.txt" && words[2] === "dest dir/");
 * ```
 */
export function splitWords(line: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote === "'") {
      if (ch === "'") quote = undefined;
      else word += ch;
    } else if (quote === '"') {
      if (ch === '"') quote = undefined;
      else if (ch === "\\" && (line[i + 1] === '"' || line[i + 1] === "\\")) word += line[++i];
      else word += ch;
    } else if (ch === "'" || ch === '"') {
      quote = ch;
      inWord = true;
    } else if (ch === "\\") {
      if (i + 1 >= line.length) throw new FerryError("USAGE", "line ends with a backslash");
      // Kept for the glob (what Tab completion writes for such a name); any other character
      // is simply taken literally.
      if (GLOB_SPECIAL.includes(line[i + 1])) word += "\\";
      word += line[++i];
      inWord = true;
    } else if (ch === " " || ch === "\t") {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += ch;
      inWord = true;
    }
  }
  if (quote) throw new FerryError("USAGE", `unterminated ${quote} quote`);
  if (inWord) words.push(word);
  return words;
}

/**
 * Where the last word of `line` starts, as {@linkcode splitWords} reads
 * quotes and escapes (`ls e\\ f/p` ends in the word `e\\ f/p`); the line's
 * length when it ends in a blank. For Tab completion.
 *
 * @example
 * ```ts
 * import { lastWordStart } from "./shell_words.ts";
 * console.assert(lastWordStart("ls e\\ f/p") === 3);
 * ```
 */
export function lastWordStart(line: string): number {
  let start = line.length;
  let inWord = false;
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (quote) {
      if (ch === quote) quote = undefined;
      else if (ch === "\\" && quote === '"') i++;
      continue;
    }
    if (ch === " " || ch === "\t") {
      inWord = false;
      continue;
    }
    if (!inWord) {
      start = i;
      inWord = true;
    }
    if (ch === "\\") i++;
    else if (ch === "'" || ch === '"') quote = ch;
  }
  return inWord ? start : line.length;
}

/**
 * The words of a line still being typed: an open quote counts as closed,
 * and a last backslash as not typed yet.
 *
 * @example
 * ```ts
 * import { wordsSoFar } from "./shell_words.ts";
 * console.assert(wordsSoFar(`ls "e f/p`)[1] === "e f/p");
 * ```
 */
export function wordsSoFar(text: string): string[] {
  const trimmed = text.endsWith("\\") ? [text.slice(0, -1)] : [];
  for (const candidate of [text, ...trimmed, `${text}"`, `${text}'`]) {
    try {
      return splitWords(candidate);
    } catch {
      // Not closed that way: try the next.
    }
  }
  return [];
}
