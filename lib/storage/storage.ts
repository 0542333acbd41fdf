/**
 * The storage interface the server serves from. Paths given to a storage
 * are already canonical (see `normalizePath`); a storage adds whatever
 * checks its backend needs (symlinks, for local disk).
 *
 * @module
 */

import type { Algorithm } from "../checksum/checksum.ts";
import type { Entry, ListOptions } from "../commands.ts";
import type { FerryError } from "../util/errors.ts";

/**
 * What a root holds: bytes in files, and bytes in each kept partial upload,
 * by its path under the root.
 *
 * @example
 * ```ts
 * import type { Usage } from "./storage.ts";
 * const partial = "dist/.ferry-3f2a.partial";
 * const usage: Usage = { files: 4096, partials: new Map([[partial, 1024]]) };
 * console.assert(usage.partials.get(partial) === 1024);
 * ```
 */
export interface Usage {
  /** Bytes in files (partial uploads left out). */
  files: number;
  /** Bytes in each kept partial upload, by its path under the root. */
  partials: Map<string, number>;
}

/**
 * Checksums of a file's content (hex), by algorithm: what a store that keeps
 * them beside the content (S3 object metadata) remembers, so that a `sum`
 * or a download's checksum costs no reading.
 */
export type Checksums = Partial<Record<Algorithm, string>>;

/** An open file being read. */
export interface ReadHandle {
  /** Size when opened: exactly this many bytes are served. */
  readonly size: number;
  /** Modification time, ms since the epoch. */
  readonly mtime: number;
  /** Permission bits. */
  readonly mode: number;
  /**
   * Identifies this exact content (for local disk: inode, size and times).
   * The server caches checksums under it, so it must change whenever the
   * content may have; undefined when that cannot be promised (nothing is
   * cached then).
   */
  readonly version: string | undefined;
  /**
   * Checksums stored with this very content, when the store keeps them
   * (given to {@linkcode Upload.commit} when it was written). Optional.
   */
  readonly checksums?: Checksums;
  /** Read into `buf`; `null` at end of file. */
  read(buf: Uint8Array): Promise<number | null>;
  /**
   * Move ahead `bytes` without reading them (an HTTP range that starts
   * inside the file). Optional: without it they are read and dropped.
   */
  skip?(bytes: number): void;
  /**
   * Throw INTEGRITY if the file changed since it was opened (size, times,
   * identity): called after the last read, so that content rewritten in
   * place while it was served is never passed off as one version. Optional:
   * a backend whose reads see one version needs none.
   */
  check?(): void;
  /** Release the handle. */
  close(): void;
}

/** A file being written; invisible until {@linkcode Upload.commit}. */
export interface Upload {
  /** Bytes already there from an interrupted upload that this one resumes (else 0). */
  readonly offset: number;
  /**
   * The partial this upload writes when it is resumable, as a path under the
   * root (what {@linkcode Storage.usage} reports it under once kept); else
   * undefined.
   */
  readonly partial: string | undefined;
  /**
   * The `offset` bytes already there, for the caller to check against the
   * source: reads them from the first, then `null`; writing goes on after
   * them. Read it whole before the first write.
   */
  prefix(): { read(buf: Uint8Array): Promise<number | null> };
  /** Append a chunk. The chunk is only valid during the call. */
  write(chunk: Uint8Array): void | Promise<void>;
  /**
   * Make the content visible under its final name, atomically. Returns the
   * content version of the stored file (as {@linkcode ReadHandle.version}
   * will report it), where known, so that its checksum can be remembered.
   * `checksums` are of the whole content, verified: a store that can keep
   * them with it does (see {@linkcode ReadHandle.checksums}).
   */
  commit(checksums?: Checksums): Promise<string | undefined>;
  /** Discard everything written. Safe to call at any time. */
  abort(): Promise<void>;
  /**
   * Stop, keeping what was written if the upload is resumable (else as
   * abort). Returns the bytes kept: 0 when nothing is.
   */
  suspend(): Promise<number>;
}

/** How an upload is to be stored. */
export interface UploadOptions {
  /** Bytes that will be written; undefined when not known up front (a stream). */
  size?: number;
  /** Permission bits for the stored file (setuid, setgid and sticky are dropped). */
  mode?: number;
  /** Modification time for the stored file, ms since the epoch. */
  mtime?: number;
  /** Fail with EXISTS instead of replacing a file already there. */
  noClobber?: boolean;
  /** Make the stored file durable (fsync file and directory) before reporting success. */
  fsync?: boolean;
  /**
   * Resumable: what is written is kept by {@linkcode Upload.suspend}, named
   * after name, size and mtime, so that a later upload of the same file can
   * continue it (needs a known size).
   */
  resume?: boolean;
  /**
   * With `resume`: continue after this many bytes of the kept partial
   * (RESUME_MISMATCH if it holds fewer). 0 or absent starts afresh.
   */
  offset?: number;
}

/**
 * One entry of a tree walk (see {@linkcode Storage.readTree}), named by its
 * path relative to the walked directory (`""` is that directory itself).
 *
 * @example
 * ```ts
 * import type { TreeItem } from "./storage.ts";
 * const item: TreeItem = { kind: "dir", path: "", mode: 0o755, mtime: 0 };
 * console.assert(item.kind === "dir");
 * ```
 */
export type TreeItem =
  | { kind: "dir"; path: string; mode: number; mtime: number }
  | {
    kind: "file";
    path: string;
    size: number;
    mode: number;
    mtime: number;
    /**
     * For a file of at most the walk's `inlineMax` bytes: read all `size`
     * bytes into `into` (exactly that long), and throw INTEGRITY if the file
     * is not that long or changed while it was read. Call it before asking
     * for the next item, or not at all. Absent for larger files, which are
     * read with {@linkcode Storage.openRead}.
     */
    read?: (into: Uint8Array) => void | Promise<void>;
  }
  | {
    kind: "skip";
    path: string;
    /** The entry's type (`symlink`, `other`) or `reserved name`; else `error` says why. */
    skipped?: string;
    error?: FerryError;
  };

/** How {@linkcode Storage.writeWhole} stores a file. */
export interface WholeOptions {
  /** Permission bits (setuid, setgid and sticky are dropped). */
  mode: number;
  /** Modification time, ms since the epoch. */
  mtime: number;
  /** Fail with EXISTS instead of replacing a file already there. */
  noClobber?: boolean;
  /** Make the stored file durable before reporting success. */
  fsync?: boolean;
  /** The content's checksums, verified, for a store that keeps them (see {@linkcode Checksums}). */
  checksums?: Checksums;
  /**
   * The caller made the file's directory (with its parents) a moment ago: a
   * store that would otherwise look at every ancestor need not.
   */
  parentMade?: boolean;
  /**
   * The file's directory was made by the caller a moment ago, absent until
   * then (`mkdir` resolved `true`): nothing stands at the file's name but
   * what another process put there since, which the write replaces as it
   * would a moment later.
   */
  parentFresh?: boolean;
}

/**
 * Where served files live. `LocalStorage` implements it over a directory;
 * the interface is small so that an object store can implement it too.
 */
export interface Storage {
  /** Where the files are, for people: a directory, a bucket. */
  readonly location: string;
  /**
   * How many small files to store at once in a tree upload: where each
   * write waits on the network (an object store), several in flight hide
   * the wait. Absent or 1: one after the other (a local disk, where they
   * would only take turns).
   */
  readonly parallelWrites?: number;
  /**
   * Entries of the directory at `path`, or the single entry if it names a
   * file. With `recursive`, every entry below it, named by relative path;
   * symlinks are listed, never followed; reserved names are left out.
   */
  list(path: string, options?: ListOptions): AsyncIterable<Entry>;
  /**
   * Walk the tree below the directory `path`: the directory itself first
   * (path `""`), then every entry below it, each directory before what it
   * holds; symlinks are reported, never followed; ferry's own temporary
   * files are left out and other reserved names reported. Files of at most
   * `inlineMax` bytes can be read on the spot. An entry that cannot be read
   * is reported as such and the walk goes on. Optional: without it the
   * server walks with {@linkcode list} and {@linkcode openRead}.
   */
  readTree?(path: string, options: { inlineMax: number }): AsyncIterable<TreeItem>;
  /** Describe `path`; the entry's name is its last component. */
  stat(path: string): Promise<Entry>;
  /** Open the regular file at `path` for reading. */
  openRead(path: string): Promise<ReadHandle>;
  /** Start writing a file at `path`, creating parent directories. */
  createUpload(path: string, options: UploadOptions): Promise<Upload>;
  /**
   * Store a small file whose whole content is in hand (a tree stream's), at
   * once and atomically, with its mode and mtime, creating parent
   * directories; EXISTS with `noClobber` when the name is taken. Optional:
   * without it the server stores it with {@linkcode createUpload}.
   */
  writeWhole?(path: string, content: Uint8Array, options: WholeOptions): Promise<void>;
  /**
   * Give the directory at `path` this mode and mtime (a tree's directories,
   * once their files are in). Optional: a store without directory times
   * keeps none.
   */
  setStat?(path: string, options: { mode?: number; mtime?: number }): Promise<void>;
  /**
   * Bytes held of an interrupted resumable upload of `path` with this size
   * and mtime (0 when none).
   */
  partialSize(path: string, options: { size: number; mtime?: number }): Promise<number>;
  /**
   * The first `bytes` of that partial, read as it is, without taking it
   * over from whoever writes it: a resume checks them first, and touches the
   * partial only once they match. Optional: without it, `createUpload`'s
   * `prefix()` is checked, after the takeover.
   */
  readPartial?(
    path: string,
    options: { size: number; mtime?: number; bytes: number },
  ): Promise<{ read(buf: Uint8Array): Promise<number | null>; close(): void }>;
  /**
   * Remove temporary and partial files untouched for `maxAgeMs`, left by
   * interrupted transfers; returns how many. Optional: a backend without
   * leftovers need not have it.
   */
  sweep?(maxAgeMs: number): Promise<number>;
  /**
   * Bytes held under `path`, for a quota: in files, and in each partial
   * upload kept for resuming (by its key). Files being written are left out.
   * Optional: without it a quota counts from zero.
   */
  usage?(path: string): Promise<Usage>;
  /**
   * Create a directory (and its parents, with `parents`). Resolves `true`
   * when the store knows this call made it, absent and empty until then (a
   * backend may always resolve nothing): what is put in it next needs no
   * look at what might stand at its name (see {@linkcode WholeOptions.parentFresh}).
   */
  mkdir(path: string, options?: { parents?: boolean }): Promise<boolean | void>;
  /** Remove a file or an empty directory; a whole tree with `recursive`. */
  remove(path: string, options?: { recursive?: boolean }): Promise<void>;
  /** Rename `from` to `to`, or into `to` if it is a directory. Returns the new path. */
  move(from: string, to: string): Promise<string>;
}
