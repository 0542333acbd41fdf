/**
 * Path checks for the server root, pure (no I/O) so they can be unit-tested
 * exhaustively. Symlink checks need the filesystem and live in
 * `local_storage.ts`, which calls {@linkcode normalizePath} first.
 *
 * @module
 */

import { escapeName } from "./display.ts";
import { FerryError } from "./errors.ts";
import { utf8Length } from "./utf8.ts";

/** Names starting with this prefix are ferry's own temporary files: never listed, never served. */
export const RESERVED_PREFIX = ".ferry-";

/** Longest single path component, in UTF-8 bytes (the usual filesystem limit). */
export const MAX_NAME_BYTES = 255;

// C0 controls, DEL and C1 controls: never valid in a name ferry accepts.
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
const DRIVE = /^[A-Za-z]:/;

function refuse(path: string, why: string): FerryError {
  return new FerryError("PATH_REFUSED", `path refused: ${why}: ${escapeName(path)}`);
}

/**
 * Check a client-supplied path and return it in canonical form: components
 * joined by `/`, no `.` or empty components, `..` resolved, `""` for the
 * root. Refused: absolute paths, `..` above the root, backslashes and drive
 * letters, NUL and control characters, malformed Unicode, over-long
 * components, and ferry's reserved names.
 *
 * @example
 * ```ts
 * import { normalizePath } from "./path_jail.ts";
 * console.assert(normalizePath("a/./b/../c") === "a/c");
 * ```
 */
export function normalizePath(path: string): string {
  if (!path.isWellFormed()) throw refuse(path, "malformed Unicode");
  if (CONTROL.test(path)) throw refuse(path, "control character");
  if (path.startsWith("/")) throw refuse(path, "absolute path");
  if (path.includes("\\")) throw refuse(path, "backslash");
  if (DRIVE.test(path)) throw refuse(path, "drive letter");
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "" || part === ".") continue;
    if (part === "..") {
      if (parts.length === 0) throw refuse(path, "leaves the root");
      parts.pop();
      continue;
    }
    if (utf8Length(part) > MAX_NAME_BYTES) throw refuse(path, "name too long");
    if (part.startsWith(RESERVED_PREFIX)) throw refuse(path, "reserved name");
    parts.push(part);
  }
  return parts.join("/");
}

/**
 * Check one path component as {@linkcode normalizePath} would check it
 * inside a path, and return it: a tree's files are checked this way once
 * their directory's path was checked whole. Refused also: `""`, `.`, `..`
 * and anything with a `/`.
 *
 * @example
 * ```ts
 * import { checkName } from "./path_jail.ts";
 * console.assert(checkName("a.txt") === "a.txt");
 * ```
 */
export function checkName(name: string): string {
  if (name === "" || name === "." || name === ".." || name.includes("/")) {
    throw refuse(name, "not a plain name");
  }
  if (!name.isWellFormed()) throw refuse(name, "malformed Unicode");
  if (CONTROL.test(name)) throw refuse(name, "control character");
  if (name.includes("\\")) throw refuse(name, "backslash");
  if (DRIVE.test(name)) throw refuse(name, "drive letter");
  if (name.length > MAX_NAME_BYTES / 3 && utf8Length(name) > MAX_NAME_BYTES) {
    throw refuse(name, "name too long");
  }
  if (name.startsWith(RESERVED_PREFIX)) throw refuse(name, "reserved name");
  return name;
}

/**
 * Check a client's glob pattern: as a path (see {@linkcode normalizePath}),
 * but a backslash is allowed, since it escapes the next character. The
 * pattern only selects among names that listings return, which never
 * include `..`; a `..` component, an absolute pattern or a control
 * character is refused all the same, as nothing could match it.
 *
 * @example
 * ```ts
 * import { checkPattern } from "./path_jail.ts";
 * console.assert(checkPattern("pages/\\[slug].js") === "pages/\\[slug].js");
 * ```
 */
export function checkPattern(pattern: string): string {
  if (!pattern.isWellFormed()) throw refuse(pattern, "malformed Unicode");
  if (CONTROL.test(pattern)) throw refuse(pattern, "control character");
  if (pattern.startsWith("/")) throw refuse(pattern, "absolute path");
  if (pattern.split("/").includes("..")) throw refuse(pattern, "leaves the root");
  return pattern;
}
