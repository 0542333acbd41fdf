/**
 * What ferry keeps in an object's metadata: the mode and mtime a file had
 * (in rclone's form, `mtime` in seconds and `mode` in octal, so that either
 * tool reads what the other wrote) and its verified checksums, so that a
 * `sum` or `--sync` costs no download.
 *
 * @module
 */

import { ALGORITHMS } from "../../checksum/checksum.ts";
import type { Checksums } from "../storage.ts";

/** A regular file's type bits, as rclone writes them in `mode`. */
const REGULAR = 0o100000;
const DIRECTORY = 0o040000;

/**
 * Metadata for a file (or, with `dir`, a directory marker).
 *
 * @example
 * ```ts
 * import { fileMeta, readMeta } from "./s3_meta.ts";
 * const meta = fileMeta({ mode: 0o640, mtime: 1_700_000_000_500, checksums: { xxh128: "ab" } });
 * const back = readMeta(meta, 0);
 * console.assert(back.mode === 0o640 && back.mtime === 1_700_000_000_500);
 * console.assert(back.checksums.xxh128 === "ab");
 * ```
 */
export function fileMeta(
  options: { mode?: number; mtime?: number; checksums?: Checksums; dir?: boolean },
): Record<string, string> {
  const meta: Record<string, string> = {};
  const type = options.dir ? DIRECTORY : REGULAR;
  meta.mode = (type | ((options.mode ?? (options.dir ? 0o755 : 0o644)) & 0o777)).toString(8);
  meta.mtime = String((options.mtime ?? Date.now()) / 1000);
  for (const algorithm of ALGORITHMS) {
    const hex = options.checksums?.[algorithm];
    if (hex) meta[`ferry-${algorithm}`] = hex;
  }
  return meta;
}

/**
 * Mode, mtime and checksums from an object's metadata; what is missing
 * falls back to `lastModified` and the usual modes.
 */
export function readMeta(
  meta: Record<string, string>,
  lastModified: number,
  dir = false,
): { mode: number; mtime: number; checksums: Checksums } {
  const mode = parseInt(meta.mode ?? "", 8);
  const seconds = parseFloat(meta.mtime ?? "");
  const checksums: Checksums = {};
  for (const algorithm of ALGORITHMS) {
    const hex = meta[`ferry-${algorithm}`];
    if (hex && /^[0-9a-f]+$/.test(hex)) checksums[algorithm] = hex;
  }
  return {
    mode: Number.isFinite(mode) ? mode & 0o777 : dir ? 0o755 : 0o644,
    mtime: Number.isFinite(seconds) ? Math.round(seconds * 1000) : lastModified,
    checksums,
  };
}
