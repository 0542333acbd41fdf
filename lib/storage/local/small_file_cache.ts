/**
 * Small files kept in memory after they were read, each served again only
 * while one `stat` of its path shows the very file that was read, untouched.
 *
 * A GET of a 4 KiB file otherwise costs nine file calls (resolve, stat,
 * open, fstat, resolve and stat again to confirm, read, fstat, close): 59
 * µs of a request's 170 here, each call paying Deno's permission check.
 * A hit costs one.
 *
 * Why one `stat` keeps the jail's promise: an entry is made only from a
 * file that the full path (resolved, opened, confirmed inside the root, read
 * and found unchanged) served, and only once its change time is two seconds
 * old (Deno reports it to the second), so anything done to that inode later
 * gives it another change time. A hit needs the same device, inode, size,
 * modification and change time: the bytes are then those the root held at
 * that path, whatever symlink the path now passes through. A rename, a new
 * link, chmod, or a write all change the change time; another file at the
 * path has another inode. Whatever else is there now (nothing, a directory,
 * a symlink that leaves the root) misses, and takes the full path, which
 * answers for it.
 *
 * @module
 */

/** Files up to this size are kept. */
export const CACHED_FILE_MAX = 64 * 1024;
/** Bytes kept in all; the oldest entries go first past it. */
export const CACHE_BYTES = 8 * 1024 * 1024;

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
}

/**
 * What tells a file's content apart: device, inode, size and both times.
 * Undefined where the platform reports no change time (nothing is kept).
 *
 * @example
 * ```ts
 * import { identityOf } from "./small_file_cache.ts";
 * const path = await Deno.makeTempFile();
 * console.assert(identityOf(Deno.statSync(path)) === identityOf(Deno.statSync(path)));
 * ```
 */
export function identityOf(info: Deno.FileInfo): string | undefined {
  if (info.ctime === null || info.ino === null) return undefined;
  return `${info.dev}:${info.ino}:${info.size}:${info.mtime?.getTime()}:${info.ctime.getTime()}`;
}

/**
 * Small files by their full path, bounded in bytes.
 *
 * @example
 * ```ts
 * import { identityOf, SmallFileCache } from "./small_file_cache.ts";
 * const path = await Deno.makeTempFile();
 * await Deno.writeTextFile(path, "hi");
 * const info = Deno.statSync(path);
 * const cache = new SmallFileCache();
 * const data = new TextEncoder().encode("hi");
 * cache.keep(path, { data, identity: identityOf(info)!, version: "v", mtime: 0, mode: 0o644 });
 * console.assert(cache.lookup(path, Deno.statSync(path))?.data === data);
 * await Deno.writeTextFile(path, "ho");
 * console.assert(cache.lookup(path, Deno.statSync(path)) === undefined);
 * ```
 */
export class SmallFileCache {
  readonly #entries = new Map<string, CachedFile>();
  #bytes = 0;

  constructor(readonly maxBytes: number = CACHE_BYTES) {}

  /** Bytes held now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Whether an entry for `full` is held (whatever is there now). */
  has(full: string): boolean {
    return this.#entries.has(full);
  }

  /**
   * The entry for `full` if `info` (a `stat` of it now) shows the same file,
   * untouched; a stale entry is dropped.
   */
  lookup(full: string, info: Deno.FileInfo): CachedFile | undefined {
    const entry = this.#entries.get(full);
    if (entry === undefined) return undefined;
    if (info.isFile && identityOf(info) === entry.identity) return entry;
    this.forget(full);
    return undefined;
  }

  /** Keep `entry` for `full`, dropping the oldest entries past the bound. */
  keep(full: string, entry: CachedFile): void {
    if (entry.data.length > this.maxBytes) return;
    this.forget(full);
    this.#entries.set(full, entry);
    this.#bytes += entry.data.length;
    for (const [path, old] of this.#entries) {
      if (this.#bytes <= this.maxBytes) break;
      this.#entries.delete(path);
      this.#bytes -= old.data.length;
    }
  }

  /** Drop the entry for `full`, if any. */
  forget(full: string): void {
    const entry = this.#entries.get(full);
    if (entry === undefined) return;
    this.#entries.delete(full);
    this.#bytes -= entry.data.length;
  }
}
