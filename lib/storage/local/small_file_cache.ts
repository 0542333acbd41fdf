/**
 * Small files kept in memory after they were read, each served again for a
 * second, and only while an `lstat` of its path shows the very file that
 * was read, untouched.
 *
 * A GET of a 4 KiB file otherwise costs nine file calls (resolve, stat,
 * open, fstat, resolve and stat again to confirm, read, fstat, close): 59
 * µs of a request's 170 here, each call paying Deno's permission check.
 * A hit costs an `lstat` a path component below the root (one, for a file
 * at its top): the caller's check that no component is a symlink.
 *
 * Why this keeps the jail's promise: an entry is made only from a file that
 * the full path (resolved, opened, confirmed inside the root, read and found
 * unchanged) served, and only once its change time is two seconds old (Deno
 * reports it to the second), so anything done to that inode later through
 * the file system's calls gives it another change time. A hit needs the
 * same device, inode, size, modification and change time: the bytes are then
 * those the root held at that path. A rename, a new link, chmod, or a write
 * all change the change time; another file at the path has another inode.
 * Whatever else is there now (nothing, a directory, a symlink) misses, and
 * takes the full path, which answers for it.
 *
 * Why only for a second: some changes move no time at all. A store through
 * a shared `mmap` into a page already dirty changes the bytes and neither
 * time (the kernel stamps only the first store into a clean page), and a
 * clock stepped back, or another machine's clock on a network file system,
 * can give a new version an old change time. No `stat` tells those apart;
 * reading the file again each second bounds them.
 *
 * @module
 */

import { identityOf } from "./file_version.ts";

/** Files up to this size are kept. */
export const CACHED_FILE_MAX = 64 * 1024;
/** Bytes kept in all, each entry's bookkeeping counted; the oldest entries go first past it. */
export const CACHE_BYTES = 8 * 1024 * 1024;
/** Entries kept at most, whatever their size (empty files count too). */
export const CACHE_ENTRIES = 4096;
/** How long an entry serves after its file was read, ms. */
export const CACHE_FRESH_MS = 1000;
/** What an entry costs besides its bytes and its path: the objects, strings and map slot. */
const ENTRY_COST = 320;

/** A file as it was read. */
export interface CachedFile {
  /** Its content. */
  readonly data: Uint8Array;
  /** Device, inode, size, modification and change time, as `identityOf` says them. */
  readonly identity: string;
  /** The content version the store reports for it. */
  readonly version: string;
  /** Modification time, ms since the epoch. */
  readonly mtime: number;
  /** Permission bits. */
  readonly mode: number;
  /** When the file was read (`performance.now()`). */
  readonly readAt: number;
}

/**
 * Small files by their full path, bounded in bytes.
 *
 * @example
 * ```ts
 * import { SmallFileCache } from "./small_file_cache.ts";
 * import { identityOf } from "./file_version.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "hi");
 * const info = Deno.statSync(path);
 * const cache = new SmallFileCache();
 * const data = new TextEncoder().encode("hi");
 * const readAt = performance.now();
 * cache.keep(path, { data, identity: identityOf(info)!, version: "v", mtime: 0, mode: 0o644, readAt });
 * console.assert(cache.lookup(path, Deno.statSync(path))?.data === data);
 * await Deno.writeTextFile(path, "ho");
 * console.assert(cache.lookup(path, Deno.statSync(path)) === undefined);
 * ```
 */
export class SmallFileCache {
  readonly #entries = new Map<string, { file: CachedFile; cost: number }>();
  #bytes = 0;

  /** A cache of at most `maxBytes` (entries' bookkeeping counted) and `maxEntries`. */
  constructor(
    readonly maxBytes: number = CACHE_BYTES,
    readonly maxEntries: number = CACHE_ENTRIES,
  ) {}

  /** Bytes held now, each entry's bookkeeping counted. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Entries held now. */
  get size(): number {
    return this.#entries.size;
  }

  /** Whether an entry for `full` is held (whatever is there now). */
  has(full: string): boolean {
    return this.#entries.has(full);
  }

  /**
   * The entry for `full` if it was read less than {@linkcode CACHE_FRESH_MS}
   * before `now` and `info` (a `stat` of it now) shows the same file,
   * untouched; a stale entry is dropped.
   */
  lookup(
    full: string,
    info: Deno.FileInfo,
    now: number = performance.now(),
  ): CachedFile | undefined {
    const held = this.#entries.get(full);
    if (held === undefined) return undefined;
    const { file } = held;
    if (now - file.readAt < CACHE_FRESH_MS && info.isFile && identityOf(info) === file.identity) {
      return file;
    }
    this.forget(full);
    return undefined;
  }

  /**
   * Keep `file` for `full`. Entries go oldest first while the cache is over
   * its bounds, and those past their second go with them: entries are kept
   * in the order their files were read, so those are always the oldest.
   */
  keep(full: string, file: CachedFile): void {
    const cost = file.data.length + 2 * full.length + file.identity.length + file.version.length +
      ENTRY_COST;
    if (cost > this.maxBytes) return;
    this.forget(full);
    this.#entries.set(full, { file, cost });
    this.#bytes += cost;
    for (const [path, old] of this.#entries) {
      const over = this.#bytes > this.maxBytes || this.#entries.size > this.maxEntries;
      if (!over && file.readAt - old.file.readAt < CACHE_FRESH_MS) break;
      this.#entries.delete(path);
      this.#bytes -= old.cost;
    }
  }

  /** Drop the entry for `full`, if any. */
  forget(full: string): void {
    const held = this.#entries.get(full);
    if (held === undefined) return;
    this.#entries.delete(full);
    this.#bytes -= held.cost;
  }
}
