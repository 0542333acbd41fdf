// The Storage interface is async for backends that need the network; local disk
// answers its metadata calls synchronously (see #resolve), so some methods never await.
// deno-lint-ignore-file require-await

/**
 * {@linkcode Storage} over a local directory, jailed to it: every path is
 * resolved through the filesystem and refused if it, or any symlink on the
 * way, lands outside the root.
 *
 * @module
 */

import { existsSync, statfsSync } from "node:fs";
import { basename, dirname, join, relative, sep } from "node:path";
import {
  AtomicFile,
  inUse,
  isTempName,
  partialKeyOf,
  partialPath,
  resumeKey,
} from "./atomic_file.ts";
import type { Usage } from "./quota.ts";
import type { Entry, EntryType } from "./commands.ts";
import { FerryError, toFerryError } from "./errors.ts";
import { escapeName, RESERVED_PREFIX } from "./path_jail.ts";
import type { ReadHandle, Storage, Upload, UploadOptions } from "./storage.ts";

function entryType(info: Deno.FileInfo): EntryType {
  if (info.isSymlink) return "symlink";
  if (info.isDirectory) return "dir";
  return info.isFile ? "file" : "other";
}

/** A directory entry for `info`. */
function toEntry(name: string, info: Deno.FileInfo): Entry {
  return {
    name,
    type: entryType(info),
    size: info.size,
    mtime: info.mtime?.getTime() ?? 0,
    mode: (info.mode ?? 0) & 0o7777,
  };
}

/** Options for {@linkcode walkLocal}. */
export interface WalkOptions {
  /** Descend into directories. */
  recursive?: boolean;
  /**
   * Hears about an entry that could not be read (vanished, path too long, no
   * permission) below the top directory; without it such entries are left out.
   */
  onError?: (path: string, err: unknown) => void;
}

/**
 * Entries below the directory `dir` on local disk, depth first, named by
 * path relative to it (with `/`). Symlinks are listed, never followed;
 * ferry's own temporary files are skipped.
 */
export async function* walkLocal(dir: string, options: WalkOptions = {}): AsyncGenerator<Entry> {
  const pending = [""];
  while (pending.length > 0) {
    const rel = pending.pop()!;
    const names: string[] = [];
    try {
      for (const item of Deno.readDirSync(rel === "" ? dir : join(dir, rel))) {
        if (!item.name.startsWith(RESERVED_PREFIX)) names.push(item.name);
      }
    } catch (err) {
      if (rel === "" || !options.onError) throw err;
      options.onError(rel, err);
      continue;
    }
    names.sort();
    for (const name of names) {
      const path = rel === "" ? name : `${rel}/${name}`;
      let info: Deno.FileInfo;
      try {
        info = Deno.lstatSync(join(dir, path));
      } catch (err) {
        options.onError?.(path, err);
        continue;
      }
      yield toEntry(path, info);
      if (options.recursive && info.isDirectory) pending.push(path);
    }
  }
}

/**
 * Refuse an upload up front when the filesystem has not room for it, rather
 * than fail near its end. (A race with other writers is still caught by
 * ENOSPC during the write.)
 */
function checkSpace(dir: string, size: number, path: string): void {
  let free: number;
  try {
    const fs = statfsSync(dir);
    free = Number(fs.bavail) * Number(fs.bsize);
  } catch {
    return; // Not knowable here: the write will tell.
  }
  if (size > free) {
    throw new FerryError(
      "NO_SPACE",
      `not enough space for ${escapeName(path)}: ${size} bytes needed, ${free} free`,
    );
  }
}

/** Files up to this size are read synchronously. */
const SMALL_FILE = 256 * 1024;

/**
 * How to read a file of `size` bytes. A small file is read synchronously,
 * like the metadata calls: its whole cost is overhead. A large one is read
 * through the async pool, because a synchronous read would also stall the
 * event loop that drives the socket write of the previous chunk.
 */
export function readerFor(
  file: Deno.FsFile,
  size: number,
): (buf: Uint8Array) => Promise<number | null> {
  return size <= SMALL_FILE
    ? (buf) => Promise.resolve(file.readSync(buf))
    : (buf) => file.read(buf);
}

/** `stat` (or `lstat`) that answers undefined instead of throwing. */
function statOrUndefined(path: string, lstat = false): Deno.FileInfo | undefined {
  try {
    return lstat ? Deno.lstatSync(path) : Deno.statSync(path);
  } catch {
    return undefined;
  }
}

/**
 * The content version of a local file, or undefined while it cannot be told
 * apart from the next one. ctime is in it because nobody can set it: a
 * rewrite in place that keeps size and mtime (cp -p, reproducible builds)
 * still changes it. But Deno reports ctime to the second, so a file changed
 * in the last two seconds may change again without a new version, and gets
 * none.
 */
function versionOf(info: Deno.FileInfo): string | undefined {
  const ctime = info.ctime?.getTime();
  if (ctime === undefined || Date.now() - ctime < 2000) return undefined;
  return contentVersion(info);
}

function contentVersion(info: Deno.FileInfo): string | undefined {
  if (info.ctime === null) return undefined;
  return `${info.ino ?? 0}:${info.size}:${info.mtime?.getTime() ?? 0}:${info.ctime.getTime()}`;
}

function notFound(path: string): FerryError {
  return new FerryError("NOT_FOUND", `not found: ${escapeName(path)}`);
}

function refusedRoot(what: string): FerryError {
  return new FerryError("PATH_REFUSED", `path refused: cannot ${what} the root directory`);
}

/**
 * Serve files from a directory on local disk.
 *
 * @example
 * ```ts
 * import { LocalStorage } from "./local_storage.ts";
 * const storage = await LocalStorage.open(await Deno.makeTempDir());
 * for await (const entry of storage.list("")) console.log(entry.name);
 * ```
 */
export class LocalStorage implements Storage {
  /** The root, with symlinks resolved. */
  readonly root: string;
  /** What every path inside the root starts with (`/` itself for the root `/`). */
  readonly #prefix: string;

  private constructor(root: string) {
    this.root = root;
    this.#prefix = root.endsWith(sep) ? root : root + sep;
  }

  /** Open the directory `root`; it must exist. */
  static async open(root: string): Promise<LocalStorage> {
    let real: string;
    try {
      real = await Deno.realPath(root);
    } catch (err) {
      throw toFerryError(err, `root ${escapeName(root)}`);
    }
    if (!(await Deno.stat(real)).isDirectory) {
      throw new FerryError("NOT_A_DIRECTORY", `root is not a directory: ${escapeName(root)}`);
    }
    return new LocalStorage(real);
  }

  async *list(path: string, options: { recursive?: boolean } = {}): AsyncIterable<Entry> {
    const { full } = this.#resolve(path);
    const info = this.#stat(full, path);
    if (!info.isDirectory) {
      yield toEntry(basename(path), info);
      return;
    }
    try {
      yield* walkLocal(full, { recursive: options.recursive });
    } catch (err) {
      throw toFerryError(err, `cannot list ${escapeName(path)}`);
    }
  }

  async stat(path: string): Promise<Entry> {
    const info = this.#stat(this.#resolve(path).full, path);
    return toEntry(path === "" ? "." : basename(path), info);
  }

  async openRead(path: string): Promise<ReadHandle> {
    const { full } = this.#resolve(path);
    // Check before opening: opening a FIFO would block the whole server.
    if (!this.#stat(full, path).isFile) {
      throw new FerryError("NOT_A_FILE", `not a file: ${escapeName(path)}`);
    }
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(full, { read: true });
    } catch (err) {
      throw toFerryError(err, escapeName(path));
    }
    try {
      const info = file.statSync();
      if (!info.isFile) throw new FerryError("NOT_A_FILE", `not a file: ${escapeName(path)}`);
      this.#confirm(full, info, path);
      const entry = toEntry(basename(path), info);
      return {
        size: entry.size,
        mtime: entry.mtime,
        mode: entry.mode,
        version: versionOf(info),
        read: readerFor(file, info.size),
        close: () => file.close(),
      };
    } catch (err) {
      file.close();
      throw toFerryError(err, escapeName(path));
    }
  }

  async createUpload(path: string, options: UploadOptions): Promise<Upload> {
    if (path === "") throw new FerryError("NOT_A_FILE", "cannot write to the root directory");
    // Resolve the parent, which usually exists, rather than the new name, which usually
    // does not: a miss costs an exception, and a tree of small files is thousands of these.
    const slash = path.lastIndexOf("/");
    // Everything below goes by the directory's real path: a symlink on the way that flips
    // between the two lookups of one rename must not send the file elsewhere.
    const { real: dir, missing } = this.#resolve(slash < 0 ? "" : path.slice(0, slash));
    const full = join(dir, path.slice(slash + 1));
    // Most uploads are new files, and lstat tells a miss by an exception, which costs more
    // than the rest of this call; existsSync tells it without one. It follows symlinks, so
    // a dangling one counts as absent and the rename replaces it, as rsync does: the file
    // lands in the real directory, never where the link pointed. Where nothing may be
    // replaced, whatever is there, a dangling link too, is refused before the body comes.
    const look = options.noClobber || existsSync(full);
    let existing = look ? statOrUndefined(full, true) : undefined;
    if (existing?.isSymlink) {
      this.#resolve(path);
      existing = statOrUndefined(full);
    }
    if (existing?.isDirectory) {
      throw new FerryError("NOT_A_FILE", `is a directory: ${escapeName(path)}`);
    }
    if (existing && options.noClobber) {
      throw new FerryError("EXISTS", `already exists: ${escapeName(path)}`);
    }
    if (missing > 0) this.#makeDirs(path.split("/").slice(0, -1), path);
    const offset = options.resume ? options.offset ?? 0 : 0;
    // A small file that does not fit fails at its first write, as soon as a check would.
    if (options.size - offset > SMALL_FILE) checkSpace(dir, options.size - offset, path);
    const key = options.resume ? resumeKey(path, options.size, options.mtime) : undefined;
    // Continuing takes a partial over from a connection that died unnoticed; starting
    // afresh while another upload of the same file is under way must not disturb it.
    const resumable = key !== undefined && (offset > 0 || !inUse(partialPath(full, key)));
    const file = resumable
      ? AtomicFile.resume(full, key, { offset })
      : AtomicFile.create(full, { mode: options.mode });
    // Checked when the temporary file is created, before any content goes into it, and again
    // right before it is renamed into place. An open file keeps its device and inode.
    const info = file.stat();
    const confirm = async () => {
      try {
        this.#confirm(file.tempPath, info, path);
      } catch (err) {
        // Remove it only where it is this very file: never anything else a swap points at.
        const there = statOrUndefined(file.tempPath, true);
        if (there?.ino !== info.ino || there?.dev !== info.dev) file.forget();
        await file.abort();
        throw err;
      }
    };
    await confirm();
    return {
      offset,
      partial: resumable ? partialPath(path, key) : undefined,
      hashPrefix: (buf) => file.hashPrefix(buf),
      write: (chunk) => file.write(chunk),
      commit: async () => {
        await confirm();
        await file.commit(options);
        // The version it has now, for the server to remember the hash it checked under. A
        // change later in the same second keeps it (ctime is to the second), so only a
        // download that can ask again, hashed anew, is sent that hash (see HashCache).
        // A stat per file costs more than hashing a small one.
        if (options.size < SMALL_FILE) return undefined;
        const stored = statOrUndefined(full, true);
        return stored?.ino === info.ino && stored?.dev === info.dev
          ? contentVersion(stored)
          : undefined;
      },
      abort: () => file.abort(),
      suspend: () => file.suspend(),
    };
  }

  async partialSize(path: string, options: { size: number; mtime?: number }): Promise<number> {
    if (path === "") return 0;
    const full = this.#resolve(path).full;
    const key = resumeKey(path, options.size, options.mtime);
    const info = statOrUndefined(partialPath(full, key), true);
    return info?.isFile && info.size <= options.size ? info.size : 0;
  }

  async usage(path: string): Promise<Usage> {
    const { full } = this.#resolve(path);
    const usage: Usage = { files: 0, partials: new Map() };
    const info = statOrUndefined(full, true);
    if (!info?.isDirectory) {
      usage.files = info?.isFile ? info.size : 0;
      return usage;
    }
    const dirs = [full];
    while (dirs.length > 0) {
      const dir = dirs.pop()!;
      try {
        for (const item of Deno.readDirSync(dir)) {
          const child = join(dir, item.name);
          if (item.isDirectory) dirs.push(child);
          // Files being written are counted by their uploads' reservations.
          if (!item.isFile || inUse(child)) continue;
          const size = statOrUndefined(child, true)?.size ?? 0;
          if (partialKeyOf(item.name) === undefined) usage.files += size;
          else usage.partials.set(relative(this.root, child), size);
        }
      } catch {
        // Unreadable or vanished: it holds nothing we can count.
      }
    }
    return usage;
  }

  /**
   * Remove ferry's temporary and partial files under the root that were last
   * written more than `maxAgeMs` ago and are not being written now: what
   * interrupted transfers, a killed server or a full disk left behind.
   * Returns how many were removed.
   */
  async sweep(maxAgeMs: number): Promise<number> {
    const cutoff = Date.now() - maxAgeMs;
    const dirs = [this.root];
    let removed = 0;
    while (dirs.length > 0) {
      const dir = dirs.pop()!;
      try {
        for await (const item of Deno.readDir(dir)) {
          const path = join(dir, item.name);
          if (item.isDirectory) dirs.push(path);
          if (!item.isFile || !isTempName(item.name) || inUse(path)) continue;
          const mtime = statOrUndefined(path, true)?.mtime?.getTime() ?? Infinity;
          if (mtime > cutoff) continue;
          await Deno.remove(path).then(() => removed++, () => {});
        }
      } catch {
        // A directory that vanished or cannot be read has nothing to sweep.
      }
    }
    return removed;
  }

  async mkdir(path: string, options: { parents?: boolean } = {}): Promise<void> {
    if (path === "") {
      if (options.parents) return;
      throw new FerryError("EXISTS", "already exists: the root directory");
    }
    this.#resolve(path);
    if (options.parents) return this.#makeDirs(path.split("/"), path);
    try {
      Deno.mkdirSync(join(this.root, path));
    } catch (err) {
      throw toFerryError(err, escapeName(path));
    }
  }

  async remove(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    if (path === "") throw refusedRoot("remove");
    const { full } = this.#resolve(path);
    this.#stat(full, path);
    try {
      await Deno.remove(full, { recursive: options.recursive ?? false });
    } catch (err) {
      if ((err as { code?: string }).code === "ENOTEMPTY") {
        throw new FerryError("EXISTS", `directory not empty: ${escapeName(path)} (use rm -r)`);
      }
      throw toFerryError(err, escapeName(path));
    }
  }

  async move(from: string, to: string): Promise<string> {
    if (from === "" || to === "") throw refusedRoot("move");
    const source = this.#resolve(from).full;
    this.#stat(source, from);
    let target = to;
    const toInfo = statOrUndefined(this.#resolve(to).full);
    if (toInfo?.isDirectory) target = `${to}/${basename(from)}`;
    if (target === from) return target;
    if (target.startsWith(`${from}/`)) {
      throw new FerryError("PATH_REFUSED", `cannot move ${escapeName(from)} into itself`);
    }
    const dest = this.#resolve(target).full;
    try {
      Deno.renameSync(source, dest);
    } catch (err) {
      throw toFerryError(err, `cannot move ${escapeName(from)}`);
    }
    return target;
  }

  /**
   * Map a canonical path to a filesystem path inside the root, and count how
   * many trailing components do not exist yet. The deepest existing ancestor
   * is resolved with realPath, so a symlink in any component that points
   * outside the root is caught; a dangling symlink on the way is refused,
   * since writing through it could create a file outside.
   *
   * Synchronous on purpose, like the rest of this class's metadata calls:
   * each is a few microseconds on a local disk, against ~100 µs for a trip
   * through the async thread pool, and a tree of small files is nothing but
   * metadata calls.
   */
  #resolve(path: string): { full: string; real: string; missing: number } {
    const full = path === "" ? this.root : join(this.root, path);
    let probe = full;
    for (let missing = 0;; missing++) {
      try {
        const real = Deno.realPathSync(probe);
        if (real !== this.root && !real.startsWith(this.#prefix)) {
          throw new FerryError(
            "PATH_REFUSED",
            `path refused: leaves the root: ${escapeName(path)}`,
          );
        }
        return {
          full,
          real: probe === full ? real : join(real, full.slice(probe.length)),
          missing,
        };
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw toFerryError(err, escapeName(path));
      }
      if (statOrUndefined(probe, true)?.isSymlink) {
        throw new FerryError("PATH_REFUSED", `path refused: dangling symlink: ${escapeName(path)}`);
      }
      if (probe === this.root) throw notFound(path);
      probe = dirname(probe);
    }
  }

  /**
   * Check, after opening, that the file open as `info` is the one at `full`
   * and inside the root. `#resolve` checked the path before it was opened;
   * a symlink swapped in between (by someone with write access to the root)
   * could have sent the open elsewhere, and that is caught here.
   */
  #confirm(full: string, info: Deno.FileInfo, path: string): void {
    let real: string;
    let there: Deno.FileInfo;
    try {
      real = Deno.realPathSync(full);
      there = Deno.statSync(real);
    } catch (err) {
      throw toFerryError(err, escapeName(path));
    }
    const inside = real.startsWith(this.#prefix);
    if (!inside || there.ino !== info.ino || there.dev !== info.dev) {
      throw new FerryError(
        "PATH_REFUSED",
        `path refused: it changed while being opened: ${escapeName(path)}`,
      );
    }
  }

  #stat(full: string, path: string): Deno.FileInfo {
    try {
      return Deno.statSync(full);
    } catch (err) {
      throw err instanceof Deno.errors.NotFound
        ? notFound(path)
        : toFerryError(err, escapeName(path));
    }
  }

  /** Create the directories `parts` below the root, one checked component at a time. */
  #makeDirs(parts: string[], path: string): void {
    let dir = this.root;
    for (const part of parts) {
      dir = join(dir, part);
      try {
        Deno.mkdirSync(dir);
      } catch (err) {
        if (!(err instanceof Deno.errors.AlreadyExists)) throw toFerryError(err, escapeName(path));
        const info = Deno.statSync(dir);
        if (!info.isDirectory) {
          throw new FerryError("NOT_A_DIRECTORY", `not a directory: ${escapeName(path)}`);
        }
      }
    }
  }
}
