/**
 * The storage interface the server serves from. Paths given to a storage
 * are already canonical (see `normalizePath`); a storage adds whatever
 * checks its backend needs (symlinks, for local disk).
 *
 * @module
 */

import type { Entry } from "./commands.ts";

/** An open file being read. */
export interface ReadHandle {
  /** Size when opened: exactly this many bytes are served. */
  readonly size: number;
  /** Modification time, ms since the epoch. */
  readonly mtime: number;
  /** Read into `buf`; `null` at end of file. */
  read(buf: Uint8Array): Promise<number | null>;
  /** Release the handle. */
  close(): void;
}

/** A file being written; invisible until {@linkcode Upload.commit}. */
export interface Upload {
  /** Append a chunk. The chunk is only valid during the call. */
  write(chunk: Uint8Array): void | Promise<void>;
  /** Make the content visible under its final name, atomically. */
  commit(): Promise<void>;
  /** Discard everything written. Safe to call at any time. */
  abort(): Promise<void>;
}

/**
 * Where served files live. `LocalStorage` implements it over a directory;
 * the interface is small so that an object store can implement it too.
 */
export interface Storage {
  /** Entries of the directory at `path`, or the single entry if it names a file. */
  list(path: string): AsyncIterable<Entry>;
  /** Open the regular file at `path` for reading. */
  openRead(path: string): Promise<ReadHandle>;
  /** Start writing `size` bytes to `path`, creating parent directories. */
  createUpload(path: string, size: number): Promise<Upload>;
}
