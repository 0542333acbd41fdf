/**
 * The names of ferry's own files in progress: temporary files, named at
 * random, and partials kept for resuming, named after what they will hold,
 * so that a later transfer of the same file finds them. All are hidden
 * under the reserved prefix `.ferry-`.
 *
 * @module
 */

import { basename, dirname, join } from "node:path";
import { type Algorithm, hashBytes } from "../checksum/checksum.ts";
import { RESERVED_PREFIX } from "../util/path_jail.ts";

/** Suffix of ferry's temporary files (after {@linkcode RESERVED_PREFIX}). */
const TEMP_SUFFIX = ".part";

/** Suffix of a partial transfer kept for resuming (after the reserved prefix and its key). */
export const PARTIAL_SUFFIX = ".partial";

/**
 * Whether `name` is one of ferry's temporary or partial files.
 *
 * @example
 * ```ts
 * import { isTempName } from "./temp_names.ts";
 * console.assert(isTempName(".ferry-0123abcd.part") && !isTempName(".ferry-config"));
 * ```
 */
export function isTempName(name: string): boolean {
  return name.startsWith(RESERVED_PREFIX) &&
    (name.endsWith(TEMP_SUFFIX) || name.endsWith(PARTIAL_SUFFIX));
}

/**
 * A short digest of what identifies one transfer (names, size, mtime), to
 * name its resumable partial: the same transfer finds the same partial.
 * `algorithm` is the one side's own choice, never a transfer's checksum:
 * ferryd names its partials with SHA-256 (as it always has, so a partial
 * kept across an upgrade is still found); the client with XXH3-128, which
 * it has without loading Node's layer (see `lib/util/node_builtins.ts`).
 * XXH3-128 must be loaded (`loadAlgorithm`) before it is asked for.
 *
 * @example
 * ```ts
 * import { resumeKey } from "./temp_names.ts";
 * console.assert(resumeKey("sha256", "a.txt", 5) === resumeKey("sha256", "a.txt", 5));
 * console.assert(resumeKey("sha256", "a.txt", 5) !== resumeKey("sha256", "a.txt", 6));
 * ```
 */
export function resumeKey(
  algorithm: Algorithm,
  ...parts: (string | number | undefined)[]
): string {
  const text = parts.map((p) => String(p ?? "")).join("\0");
  return hashBytes(algorithm, new TextEncoder().encode(text)).slice(0, 32);
}

/** The key of a partial file's name (see {@linkcode partialPath}), or undefined for another name. */
export function partialKeyOf(name: string): string | undefined {
  if (!name.startsWith(RESERVED_PREFIX) || !name.endsWith(PARTIAL_SUFFIX)) return undefined;
  return name.slice(RESERVED_PREFIX.length, -PARTIAL_SUFFIX.length);
}

/** The name of the partial under `key`. */
export function partialName(key: string): string {
  return `${RESERVED_PREFIX}${key}${PARTIAL_SUFFIX}`;
}

/** Where the resumable partial for `path` under `key` lives: beside it, hidden. */
export function partialPath(path: string, key: string): string {
  return join(dirname(path), partialName(key));
}

/**
 * Where the resumable partial of an upload to `path` (of this size and
 * mtime) lives, under the root. Its key names the file, not the directory:
 * a directory moved with its partials inside still lets each be resumed at
 * the new place.
 *
 * @example
 * ```ts
 * import { partialFor } from "./temp_names.ts";
 * const partial = partialFor("a/b.bin", 10, 0);
 * console.assert(partial.startsWith("a/.ferry-") && partial.endsWith(".partial"));
 * console.assert(partialFor("c/b.bin", 10, 0).slice(2) === partial.slice(2));
 * ```
 */
export function partialFor(path: string, size: number, mtime: number | undefined): string {
  return partialPath(path, resumeKey("sha256", basename(path), size, mtime));
}

const nameBits = new Uint32Array(2);

/**
 * Temporary names for many files in a row (a tree received as a stream): a
 * random stem drawn once, then a counter, so that a name costs no random
 * draw. Every name is created with `O_EXCL`, so a clash fails rather than
 * shares.
 *
 * @example
 * ```ts
 * import { isTempName, tempNames } from "./temp_names.ts";
 * const next = tempNames();
 * const [a, b] = [next(), next()];
 * console.assert(a !== b && isTempName(a) && isTempName(b));
 * ```
 */
export function tempNames(): () => string {
  crypto.getRandomValues(nameBits);
  const stem = `${RESERVED_PREFIX}${nameBits[0].toString(16).padStart(8, "0")}`;
  let counter = nameBits[1];
  return () => {
    counter = (counter + 1) >>> 0;
    return `${stem}${counter.toString(16).padStart(8, "0")}${TEMP_SUFFIX}`;
  };
}

/** A fresh, unguessable temporary name. */
export function tempName(): string {
  crypto.getRandomValues(nameBits);
  const hex = (n: number) => n.toString(16).padStart(8, "0");
  return `${RESERVED_PREFIX}${hex(nameBits[0])}${hex(nameBits[1])}${TEMP_SUFFIX}`;
}
