/**
 * What tells one content of a local file from the next: the content version
 * the server keeps checksums under, and the identity the small-file cache
 * matches a file by (the same, with the device).
 *
 * @module
 */

/**
 * Inode, size, modification and change time; undefined where the platform
 * reports no change time. ctime is in it because nobody can set it: a
 * rewrite in place that keeps size and mtime (cp -p, reproducible builds)
 * still changes it.
 *
 * @example
 * ```ts
 * import { contentVersion } from "./file_version.ts";
 * const path = await Deno.makeTempFile();
 * console.assert(contentVersion(Deno.statSync(path)) === contentVersion(Deno.statSync(path)));
 * ```
 */
export function contentVersion(info: Deno.FileInfo): string | undefined {
  if (info.ctime === null) return undefined;
  return `${info.ino ?? 0}:${info.size}:${info.mtime?.getTime() ?? 0}:${info.ctime.getTime()}`;
}

/**
 * The device and the content version: what tells a file's content apart
 * across file systems. Undefined where the platform reports no inode or no
 * change time (nothing is kept then).
 *
 * @example
 * ```ts
 * import { identityOf } from "./file_version.ts";
 * const path = await Deno.makeTempFile();
 * console.assert(identityOf(Deno.statSync(path)) === identityOf(Deno.statSync(path)));
 * ```
 */
export function identityOf(info: Deno.FileInfo): string | undefined {
  if (info.ino === null) return undefined;
  const version = contentVersion(info);
  return version === undefined ? undefined : `${info.dev}:${version}`;
}
