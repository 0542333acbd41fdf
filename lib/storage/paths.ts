/**
 * Small rules on the canonical paths a storage is given (see
 * `normalizePath`): `""` is the root, components are joined by `/`.
 *
 * @module
 */

import { escapeName } from "../util/display.ts";
import { FerryError } from "../util/errors.ts";

/**
 * The directory holding `path` (`""` for the root's entries).
 *
 * @example
 * ```ts
 * import { parentOf } from "./paths.ts";
 * console.assert(parentOf("a/b/c.txt") === "a/b" && parentOf("c.txt") === "");
 * ```
 */
export function parentOf(path: string): string {
  const slash = path.lastIndexOf("/");
  return slash < 0 ? "" : path.slice(0, slash);
}

/**
 * The last component of `path`.
 *
 * @example
 * ```ts
 * import { nameOf } from "./paths.ts";
 * console.assert(nameOf("a/b/c.txt") === "c.txt");
 * ```
 */
export function nameOf(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** NOT_FOUND for `path`, said as every backend says it. */
export function notFound(path: string): FerryError {
  return new FerryError("NOT_FOUND", `not found: ${escapeName(path)}`);
}
