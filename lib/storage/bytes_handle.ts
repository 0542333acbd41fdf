/**
 * A {@linkcode ReadHandle} over bytes already in memory: what the memory
 * store serves, and what the local store serves from its cache of small
 * files.
 *
 * @module
 */

import type { ReadHandle } from "./storage.ts";

/** What a handle over bytes says of them, besides the bytes. */
export interface BytesMeta {
  /** Modification time, ms since the epoch. */
  mtime: number;
  /** Permission bits. */
  mode: number;
  /** The content's version (see {@linkcode ReadHandle.version}). */
  version: string | undefined;
}

/**
 * Read `data` as a file. The bytes are one version by construction, so the
 * handle needs no `check`.
 *
 * @example
 * ```ts
 * import { bytesHandle } from "./bytes_handle.ts";
 * const handle = bytesHandle(new Uint8Array([1, 2, 3]), { mtime: 0, mode: 0o644, version: "1" });
 * handle.skip?.(1);
 * const buf = new Uint8Array(8);
 * console.assert(await handle.read(buf) === 2 && buf[0] === 2);
 * console.assert(await handle.read(buf) === null);
 * ```
 */
export function bytesHandle(data: Uint8Array, meta: BytesMeta): ReadHandle {
  let at = 0;
  return {
    size: data.length,
    mtime: meta.mtime,
    mode: meta.mode,
    version: meta.version,
    read: (buf) => {
      if (at >= data.length) return Promise.resolve(buf.length === 0 ? 0 : null);
      const n = Math.min(buf.length, data.length - at);
      buf.set(data.subarray(at, at + n));
      at += n;
      return Promise.resolve(n);
    },
    skip: (bytes) => void (at += bytes),
    close: () => {},
  };
}
