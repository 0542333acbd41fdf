/**
 * Glob patterns over `/`-separated paths: `*` (any run of characters), `?`
 * (one character) and `[...]` / `[!...]` (a class), each within one path
 * component. As in a shell, a wildcard never matches a leading `.`, and
 * a backslash makes the next character literal. The same expansion serves
 * local files (put) and the server's storage (get).
 *
 * @module
 */

import type { EntryType } from "./commands.ts";

/** Whether `pattern` contains an unescaped wildcard. */
export function hasGlob(pattern: string): boolean {
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] === "\\") i++;
    else if ("*?[".includes(pattern[i])) return true;
  }
  return false;
}

/**
 * Compile one path component of a pattern.
 *
 * @example
 * ```ts
 * import { componentMatcher } from "./glob.ts";
 * const match = componentMatcher("*.tar.gz");
 * console.assert(match("app.tar.gz") && !match(".hidden.tar.gz"));
 * ```
 */
export function componentMatcher(component: string): (name: string) => boolean {
  let source = "";
  for (let i = 0; i < component.length; i++) {
    const ch = component[i];
    if (ch === "\\" && i + 1 < component.length) {
      source += escapeRegExp(component[++i]);
    } else if (ch === "*") {
      source += ".*";
    } else if (ch === "?") {
      source += ".";
    } else if (ch === "[") {
      const close = component.indexOf("]", i + 2);
      if (close < 0) {
        source += "\\[";
        continue;
      }
      let body = component.slice(i + 1, close);
      const negate = body.startsWith("!") || body.startsWith("^");
      if (negate) body = body.slice(1);
      source += `[${negate ? "^" : ""}${body.replace(/[\\\]^]/g, "\\$&")}]`;
      i = close;
    } else {
      source += escapeRegExp(ch);
    }
  }
  const re = new RegExp(`^${source}$`, "su");
  const wild = hasGlob(component);
  return (name) => re.test(name) && !(wild && name.startsWith(".") && !component.startsWith("."));
}

function escapeRegExp(ch: string): string {
  return ch.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
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
