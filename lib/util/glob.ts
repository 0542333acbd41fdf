/**
 * Glob patterns over `/`-separated paths: `*` (any run of characters), `?`
 * (one character) and `[...]` / `[!...]` (a class), each within one path
 * component. As in a shell, a wildcard never matches a leading `.`, and
 * a backslash makes the next character literal. The same expansion serves
 * local files (put) and the server's storage (get).
 *
 * @module
 */

import type { EntryType } from "../commands.ts";

/** Whether `pattern` contains an unescaped wildcard. */
export function hasGlob(pattern: string): boolean {
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === "\\") i++;
    else if ("*?[".includes(pattern[i])) return true;
  }
  return false;
}

/**
 * `pattern` with each `\` escape replaced by the character it escapes: the
 * path a pattern without wildcards names (`d/\[a].txt` is `d/[a].txt`).
 *
 * @example
 * ```ts
 * import { unescapeGlob } from "./glob.ts";
 * console.assert(unescapeGlob("pages/\\[slug].js") === "pages/[slug].js");
 * ```
 */
export function unescapeGlob(pattern: string): string {
  if (!pattern.includes("\\")) return pattern;
  let out = "";
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === "\\" && i + 1 < pattern.length) i++;
    out += pattern[i];
  }
  return out;
}

/**
 * `path` with every wildcard and backslash escaped: a pattern that matches
 * exactly that path.
 *
 * @example
 * ```ts
 * import { escapeGlob, unescapeGlob } from "./glob.ts";
 * console.assert(unescapeGlob(escapeGlob("a/[b]*.txt")) === "a/[b]*.txt");
 * ```
 */
export function escapeGlob(path: string): string {
  return path.replace(/[\\*?[]/g, (ch) => `\\${ch}`);
}

type Token =
  | { kind: "star" }
  | { kind: "one" }
  | { kind: "lit"; ch: string }
  | { kind: "class"; negate: boolean; ranges: [string, string][] };

function tokenize(component: string): Token[] {
  const chars = Array.from(component);
  const tokens: Token[] = [];
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i];
    if (ch === "\\" && i + 1 < chars.length) {
      tokens.push({ kind: "lit", ch: chars[++i] });
    } else if (ch === "*") {
      if (tokens.at(-1)?.kind !== "star") tokens.push({ kind: "star" });
    } else if (ch === "?") {
      tokens.push({ kind: "one" });
    } else if (ch === "[") {
      let j = i + 1;
      const negate = chars[j] === "!" || chars[j] === "^";
      if (negate) j++;
      const ranges: [string, string][] = [];
      // A "]" right after the opening bracket is a member, as in a shell.
      for (let first = true; j < chars.length && (first || chars[j] !== "]"); first = false) {
        const lo = chars[j];
        if (chars[j + 1] === "-" && j + 2 < chars.length && chars[j + 2] !== "]") {
          ranges.push([lo, chars[j + 2]]);
          j += 3;
        } else {
          ranges.push([lo, lo]);
          j++;
        }
      }
      if (j >= chars.length) {
        tokens.push({ kind: "lit", ch });
      } else {
        tokens.push({ kind: "class", negate, ranges });
        i = j;
      }
    } else {
      tokens.push({ kind: "lit", ch });
    }
  }
  return tokens;
}

function matchesOne(token: Token, ch: string): boolean {
  switch (token.kind) {
    case "one":
      return true;
    case "lit":
      return token.ch === ch;
    case "class":
      return token.ranges.some(([lo, hi]) => lo <= ch && ch <= hi) !== token.negate;
    default:
      return false;
  }
}

/**
 * Compile one path component of a pattern into a matcher. Matching is the
 * classic two-pointer wildcard walk, linear in practice and O(n·m) at worst:
 * no regular expression, so no pattern can make it backtrack exponentially.
 *
 * @example
 * ```ts
 * import { componentMatcher } from "./glob.ts";
 * const match = componentMatcher("*.tar.gz");
 * console.assert(match("app.tar.gz") && !match(".hidden.tar.gz"));
 * ```
 */
export function componentMatcher(component: string): (name: string) => boolean {
  const tokens = tokenize(component);
  const wild = tokens.some((t) => t.kind !== "lit");
  return (name) => {
    // As in a shell, only a pattern that starts with "." matches a hidden name.
    if (wild && name.startsWith(".") && !component.startsWith(".")) return false;
    const chars = Array.from(name);
    let t = 0;
    let c = 0;
    let starT = -1;
    let starC = 0;
    while (c < chars.length) {
      if (t < tokens.length && tokens[t].kind === "star") {
        starT = t++;
        starC = c;
      } else if (t < tokens.length && matchesOne(tokens[t], chars[c])) {
        t++;
        c++;
      } else if (starT >= 0) {
        t = starT + 1;
        c = ++starC;
      } else {
        return false;
      }
    }
    while (t < tokens.length && tokens[t].kind === "star") t++;
    return t === tokens.length;
  };
}

/** What {@linkcode expandGlob} needs to know of each directory entry. */
export interface GlobEntry {
  name: string;
  type: EntryType;
}

/**
 * Expand `pattern` (relative, `/`-separated) by listing directories with
 * `list`. Yields the matching paths with their entries, in listing order.
 * Symlinked directories are not descended into.
 */
export async function* expandGlob<E extends GlobEntry>(
  pattern: string,
  list: (dir: string) => AsyncIterable<E>,
): AsyncGenerator<{ path: string; entry: E }> {
  const parts = pattern.split("/").filter((p) => p !== "" && p !== ".");
  let dirs = [""];
  for (let i = 0; i < parts.length; i++) {
    const match = componentMatcher(parts[i]);
    const last = i === parts.length - 1;
    const next: string[] = [];
    for (const dir of dirs) {
      for await (const entry of list(dir)) {
        if (!match(entry.name)) continue;
        const path = dir === "" ? entry.name : `${dir}/${entry.name}`;
        if (last) yield { path, entry };
        else if (entry.type === "dir") next.push(path);
      }
    }
    dirs = next;
  }
}
