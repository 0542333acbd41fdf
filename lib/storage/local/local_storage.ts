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

import { existsSync } from "node:fs";
import { basename, dirname, join, relative, sep } from "node:path";
import { AtomicFile, inUse } from "../../fs/atomic_file.ts";
import { isTempName, partialFor, partialKeyOf, resumeKey, tempNames } from "../../fs/temp_names.ts";
import { writeWholeFile } from "../../fs/whole_file.ts";
import { type Directory, pinnedDirectory } from "../../fs/directory.ts";
import type { Usage } from "../storage.ts";
import type { Entry, ListOptions } from "../../commands.ts";
import { notFound } from "../paths.ts";
import { FerryError, toFerryError } from "../../util/errors.ts";
import {
  assertUnchanged,
  checkSpace,
  readerFor,
  SMALL_FILE,
  toEntry,
  walkLocal,
} from "../../fs/local_files.ts";
import { RESERVED_PREFIX } from "../../util/path_jail.ts";
import { escapeName } from "../../util/display.ts";
import type {
  ReadHandle,
  Storage,
  TreeItem,
  Upload,
  UploadOptions,
  WholeOptions,
} from "../storage.ts";
import { readLocalTree } from "../../fs/tree_read.ts";
import { bytesHandle } from "../bytes_handle.ts";
import { CACHED_FILE_MAX, SmallFileCache } from "./small_file_cache.ts";
import { contentVersion, identityOf } from "./file_version.ts";

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

/** The `size` bytes of the open `file`, read synchronously (INTEGRITY if it has fewer). */
function readWhole(file: Deno.FsFile, size: number, what: string): Uint8Array {
  const data = new Uint8Array(size);
  for (let at = 0; at < size;) {
    const n = file.readSync(data.subarray(at));
    if (n === null || n === 0) {
      throw new FerryError("INTEGRITY", `${what} shrank while being read; nothing was sent`);
    }
    at += n;
  }
  return data;
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
  /** The root, for people. */
  get location(): string {
    return this.root;
  }
  /** What every path inside the root starts with (`/` itself for the root `/`). */
  readonly #prefix: string;
  /** Uploads being written now: a directory that moves stops those inside it. */
  readonly #uploads = new Set<AtomicFile>();
  /** Where the last small files of trees went: a tree's files come directory by directory. */
  readonly #wholeDirs = new Map<string, Directory>();
  /** Temporary names for small files, drawn at random once (see tempNames). */
  readonly #tempName = tempNames();
  /** Small files served lately, by full path. */
  readonly #small = new SmallFileCache();

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

  async *list(path: string, options: ListOptions = {}): AsyncIterable<Entry> {
    const { full } = this.#resolve(path);
    const info = this.#stat(full, path);
    if (!info.isDirectory) {
      yield toEntry(basename(path), info);
      return;
    }
    // ferryd's own files in progress are nobody's business; other reserved names are reported.
    const { onReserved } = options;
    const reserved = onReserved &&
      ((p: string) => isTempName(basename(p)) ? undefined : onReserved(p));
    try {
      yield* walkLocal(full, { ...options, onReserved: reserved });
    } catch (err) {
      throw toFerryError(err, `cannot list ${escapeName(path)}`);
    }
  }

  async *readTree(path: string, options: { inlineMax: number }): AsyncIterable<TreeItem> {
    const { real, missing } = this.#resolve(path);
    if (missing > 0) throw notFound(path);
    const pin = (dir: string, display: string) => this.#pin(dir, display);
    yield* readLocalTree({ real, display: path, pin }, options.inlineMax);
  }

  async stat(path: string): Promise<Entry> {
    const info = this.#stat(this.#resolve(path).full, path);
    return toEntry(path === "" ? "." : basename(path), info);
  }

  async openRead(path: string): Promise<ReadHandle> {
    // A small file read in the last second and untouched since costs an lstat a component (see
    // SmallFileCache). A path through a symlink, even one inside the root, takes the full path.
    const known = path === "" ? undefined : join(this.root, path);
    if (known !== undefined && this.#small.has(known)) {
      const info = this.#plainFile(known);
      const hit = info && this.#small.lookup(known, info);
      if (hit) return bytesHandle(hit.data, hit);
      this.#small.forget(known);
    }
    const { full, real } = this.#resolve(path);
    // Check before opening: opening a FIFO would block the whole server.
    if (!this.#stat(full, path).isFile) {
      throw new FerryError("NOT_A_FILE", `not a file: ${escapeName(path)}`);
    }
    let file: Deno.FsFile;
    try {
      // Read-only, as without options (whose check costs more than a small file's read).
      file = Deno.openSync(full);
    } catch (err) {
      throw toFerryError(err, escapeName(path));
    }
    try {
      const info = file.statSync();
      if (!info.isFile) throw new FerryError("NOT_A_FILE", `not a file: ${escapeName(path)}`);
      this.#confirm(full, info, path);
      const mode = (info.mode ?? 0) & 0o7777;
      const version = versionOf(info);
      // Only a path without symlinks is looked up in the cache: one through a link is not kept.
      const identity = version !== undefined && info.size <= CACHED_FILE_MAX && real === full
        ? identityOf(info)
        : undefined;
      if (version !== undefined && identity !== undefined) {
        // Read whole now, and kept: served again within its second, it costs an lstat a component.
        const readAt = performance.now();
        const data = readWhole(file, info.size, escapeName(path));
        assertUnchanged(file, info, escapeName(path));
        file.close();
        const mtime = info.mtime?.getTime() ?? 0;
        const entry = { data, identity, version, mtime, mode, readAt };
        this.#small.keep(full, entry);
        return bytesHandle(data, entry);
      }
      // What toEntry would say of it.
      return {
        size: info.size,
        mtime: info.mtime?.getTime() ?? 0,
        mode,
        version,
        read: readerFor(file, info.size),
        skip: (bytes) => void file.seekSync(bytes, Deno.SeekMode.Current),
        check: () => assertUnchanged(file, info, escapeName(path)),
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
    const name = path.slice(slash + 1);
    // Everything below goes by the directory's real path, and each step holds the directory
    // itself (see pinnedDirectory): a symlink swapped into the path meanwhile must not send
    // the file elsewhere, not even its empty temporary file.
    const parent = this.#resolve(slash < 0 ? "" : path.slice(0, slash));
    const dir = parent.missing > 0 ? this.#makeDirs(parent.real, parent.missing, path) : this.#pin(
      parent.real,
      path,
    );
    const { size } = options;
    const offset = options.resume && size !== undefined ? options.offset ?? 0 : 0;
    // A small file that does not fit fails at its first write, as soon as a check would.
    if (size !== undefined && size - offset > SMALL_FILE) {
      checkSpace(dir.path, size - offset, `${escapeName(path)} on the server`);
    }
    const key = options.resume && size !== undefined
      ? resumeKey("sha256", name, size, options.mtime)
      : undefined;
    const file = dir.run((at) => {
      // Most uploads are new files, and lstat tells a miss by an exception, which costs more
      // than the rest of this call; existsSync tells it without one. It follows symlinks, so
      // a dangling one counts as absent and the rename replaces it, as rsync does: the file
      // lands in the real directory, never where the link pointed. Where nothing may be
      // replaced, whatever is there, a dangling link too, is refused before the body comes.
      const look = options.noClobber || existsSync(at(name));
      let existing = look ? statOrUndefined(at(name), true) : undefined;
      if (existing?.isSymlink) {
        this.#resolve(path);
        existing = statOrUndefined(at(name));
      }
      if (existing?.isDirectory) {
        throw new FerryError("NOT_A_FILE", `is a directory: ${escapeName(path)}`);
      }
      if (existing && options.noClobber) {
        throw new FerryError("EXISTS", `already exists: ${escapeName(path)}`);
      }
      // Continuing takes a partial over from a connection that died unnoticed; starting
      // afresh while another upload of the same file is under way must not disturb it, and
      // writes a private temporary file instead.
      const partial = key === undefined ? undefined : AtomicFile.resume(join(dir.path, name), key, {
        dir,
        offset,
        takeover: offset > 0,
        shown: escapeName(path),
      });
      if (key !== undefined && partial === undefined && offset > 0) {
        throw new FerryError(
          "RESUME_MISMATCH",
          `cannot resume ${escapeName(path)}: another upload holds what was kept`,
        );
      }
      return partial ??
        AtomicFile.create(join(dir.path, name), {
          dir,
          mode: options.mode,
          shown: escapeName(path),
        });
    }, (file) => file.takeBack());
    this.#uploads.add(file);
    const done = () => this.#uploads.delete(file);
    const info = file.info;
    return {
      offset,
      partial: file.resumable ? join(relative(this.root, dir.path), file.tempName) : undefined,
      prefix: () => file.prefix(),
      write: (chunk) => file.write(chunk),
      commit: async () => {
        try {
          await file.commit(options);
        } finally {
          done();
        }
        // The version it has now, for the server to remember the hash it checked under. A
        // change later in the same second keeps it (ctime is to the second), so only a
        // download that can ask again, hashed anew, is sent that hash (see HashCache).
        // A stat per file costs more than hashing a small one.
        if (size === undefined || size < SMALL_FILE) return undefined;
        const stored = statOrUndefined(join(dir.path, name), true);
        return stored?.ino === info.ino && stored?.dev === info.dev
          ? contentVersion(stored)
          : undefined;
      },
      abort: () => file.abort().finally(done),
      suspend: () => file.suspend().finally(done),
    };
  }

  async writeWhole(path: string, content: Uint8Array, options: WholeOptions): Promise<void> {
    if (path === "") throw new FerryError("NOT_A_FILE", "cannot write to the root directory");
    const slash = path.lastIndexOf("/");
    const parentPath = slash < 0 ? "" : path.slice(0, slash);
    const name = path.slice(slash + 1);
    // A tree's files come directory by directory: the parent found for the last file serves
    // the next. The step checks that it still is where it was (see pinnedDirectory), and a
    // refusal from a remembered one is tried once more with the path resolved afresh.
    const cached = this.#wholeDirs.get(parentPath);
    try {
      return this.#writeWholeIn(
        cached ?? this.#parentDir(parentPath, path),
        name,
        path,
        content,
        options,
      );
    } catch (err) {
      this.#wholeDirs.delete(parentPath);
      if (!cached || err instanceof FerryError && err.code === "EXISTS") throw err;
      return this.#writeWholeIn(this.#parentDir(parentPath, path), name, path, content, options);
    }
  }

  /** The held directory `parentPath`, made if missing, remembered for the next file in it. */
  #parentDir(parentPath: string, path: string): Directory {
    const parent = this.#resolve(parentPath);
    const dir = parent.missing > 0
      ? this.#makeDirs(parent.real, parent.missing, path)
      : this.#pin(parent.real, parentPath);
    if (this.#wholeDirs.size >= 64) this.#wholeDirs.clear();
    this.#wholeDirs.set(parentPath, dir);
    return dir;
  }

  #writeWholeIn(
    dir: Directory,
    name: string,
    path: string,
    content: Uint8Array,
    options: WholeOptions,
  ): void {
    const placed = dir.run((at) => {
      // Nothing is looked up first (a lookup per file cost 15 µs): the rename replaces a file
      // or a symlink itself and refuses a directory, and the link of noClobber refuses
      // anything there, atomically.
      try {
        return writeWholeFile(at, name, this.#tempName, content, options);
      } catch (err) {
        const code = (err as { code?: string }).code;
        if (code === "EISDIR" || code === "ENOTEMPTY") {
          throw new FerryError("NOT_A_FILE", `is a directory: ${escapeName(path)}`);
        }
        throw toFerryError(err, escapeName(path));
      }
    }, (result) => {
      // The directory moved away meanwhile: what landed there is not left behind.
      if (result === undefined) Deno.removeSync(name);
    });
    if (placed === "exists") throw new FerryError("EXISTS", `already exists: ${escapeName(path)}`);
  }

  async setStat(path: string, options: { mode?: number; mtime?: number }): Promise<void> {
    const { real, full, missing } = this.#resolve(path);
    if (missing > 0) throw notFound(path);
    if (!this.#stat(full, path).isDirectory) {
      throw new FerryError("NOT_A_DIRECTORY", `not a directory: ${escapeName(path)}`);
    }
    // Held itself: "." is the directory, whatever was swapped in at its name.
    this.#pin(real, path).run((at) => {
      try {
        if (options.mode !== undefined) Deno.chmodSync(at("."), options.mode & 0o777);
        if (options.mtime !== undefined) {
          Deno.utimeSync(at("."), options.mtime / 1000, options.mtime / 1000);
        }
      } catch (err) {
        throw toFerryError(err, escapeName(path));
      }
    });
  }

  async partialSize(path: string, options: { size: number; mtime?: number }): Promise<number> {
    if (path === "") return 0;
    const partial = join(this.root, partialFor(path, options.size, options.mtime));
    this.#resolve(path);
    const info = statOrUndefined(partial, true);
    return info?.isFile && info.size <= options.size ? info.size : 0;
  }

  async readPartial(
    path: string,
    options: { size: number; mtime?: number; bytes: number },
  ): Promise<{ read(buf: Uint8Array): Promise<number | null>; close(): void }> {
    const slash = path.lastIndexOf("/");
    const parent = this.#resolve(slash < 0 ? "" : path.slice(0, slash));
    if (parent.missing > 0) throw notFound(path);
    const name = basename(partialFor(path, options.size, options.mtime));
    const dir = this.#pin(parent.real, path);
    // Opened by bare name in the held directory, and checked to be the regular file there: a
    // symlink planted under the partial's name is never read through.
    const file = dir.run((at) => {
      const info = statOrUndefined(at(name), true);
      const held = info?.isFile ? info.size : 0;
      if (!info?.isFile || held < options.bytes) {
        throw new FerryError(
          "RESUME_MISMATCH",
          `cannot resume ${escapeName(path)} at byte ${options.bytes}: only ${held} are here`,
        );
      }
      const opened = Deno.openSync(at(name), { read: true });
      const same = opened.statSync();
      if (same.ino !== info.ino || same.dev !== info.dev) {
        opened.close();
        throw new FerryError("RESUME_MISMATCH", `the partial of ${escapeName(path)} changed`);
      }
      return opened;
    });
    let left = options.bytes;
    return {
      read: async (buf) => {
        if (left <= 0) return null;
        const n = await file.read(buf.subarray(0, Math.min(buf.length, left)));
        if (n !== null) left -= n;
        return n;
      },
      close: () => file.close(),
    };
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
        const stale: string[] = [];
        for await (const item of Deno.readDir(dir)) {
          const path = join(dir, item.name);
          if (item.isDirectory) dirs.push(path);
          if (!item.isFile || !isTempName(item.name) || inUse(path)) continue;
          const mtime = statOrUndefined(path, true)?.mtime?.getTime() ?? Infinity;
          if (mtime <= cutoff) stale.push(item.name);
        }
        if (stale.length === 0) continue;
        // Removed by name in the directory held, never through a symlink swapped in since.
        this.#pin(dir, relative(this.root, dir)).run((at) => {
          for (const name of stale) {
            try {
              Deno.removeSync(at(name));
              removed++;
            } catch {
              // Gone already.
            }
          }
        });
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
    const resolved = this.#resolve(path);
    if (options.parents) {
      if (resolved.missing > 0) this.#makeDirs(resolved.real, resolved.missing, path);
      else if (!this.#stat(resolved.full, path).isDirectory) {
        throw new FerryError("NOT_A_DIRECTORY", `not a directory: ${escapeName(path)}`);
      }
      return;
    }
    const { dir, name } = this.#parentOf(path);
    try {
      dir.run((at) => Deno.mkdirSync(at(name)), () => Deno.removeSync(name));
    } catch (err) {
      throw toFerryError(err, escapeName(path));
    }
  }

  async remove(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    if (path === "") throw refusedRoot("remove");
    const { full } = this.#resolve(path);
    this.#stat(full, path);
    const { dir, name } = this.#parentOf(path);
    try {
      // By name in the directory held: a symlink swapped into the path cannot redirect it,
      // and a recursive removal never follows the links it meets inside.
      dir.run((at) => Deno.removeSync(at(name), { recursive: options.recursive ?? false }));
    } catch (err) {
      if ((err as { code?: string }).code === "ENOTEMPTY") {
        throw new FerryError("EXISTS", `directory not empty: ${escapeName(path)} (use rm -r)`);
      }
      throw toFerryError(err, escapeName(path));
    }
  }

  async move(from: string, to: string): Promise<string> {
    if (from === "" || to === "") throw refusedRoot("move");
    const source = this.#resolve(from);
    this.#stat(source.full, from);
    let target = to;
    const toInfo = statOrUndefined(this.#resolve(to).full);
    if (toInfo?.isDirectory) target = `${to}/${basename(from)}`;
    if (target === from) return target;
    if (target.startsWith(`${from}/`)) {
      throw new FerryError("PATH_REFUSED", `cannot move ${escapeName(from)} into itself`);
    }
    this.#resolve(target);
    const src = this.#parentOf(from);
    const dst = this.#parentOf(target);
    // Uploads into a directory that moves stop: what they kept moves along and resumes at the
    // new place (partials are named after the file, not its directory); nothing is left that
    // neither a resume nor a listing could reach.
    if (statOrUndefined(source.full, true)?.isDirectory) {
      this.#interruptUploads(source.real, `${from} was moved to ${target}`);
    }
    try {
      if (src.dir.path === dst.dir.path) {
        src.dir.run((at) => Deno.renameSync(at(src.name), at(dst.name)));
      } else {
        this.#moveAcross(src, dst);
      }
    } catch (err) {
      const e = toFerryError(err, `cannot move ${escapeName(from)}`);
      // A directory onto a file: the file is what is in the way, and is named.
      if (e.code === "NOT_A_DIRECTORY" && toInfo?.isFile) {
        throw new FerryError(
          "NOT_A_DIRECTORY",
          `cannot move ${escapeName(from)}: ${escapeName(target)} is not a directory`,
        );
      }
      throw e;
    }
    return target;
  }

  /**
   * Rename between two directories, each held while it is used. One rename
   * holds only one directory, so the entry goes first to an unguessable name
   * in its own directory, then over from there with the target's directory
   * held: a symlink swapped into the source's path meanwhile finds no such
   * name, and the entry goes back where it was.
   */
  #moveAcross(src: { dir: Directory; name: string }, dst: { dir: Directory; name: string }): void {
    const staged = `${RESERVED_PREFIX}${crypto.randomUUID()}.moving`;
    src.dir.run((at) => Deno.renameSync(at(src.name), at(staged)));
    try {
      dst.dir.run((at) => Deno.renameSync(join(src.dir.path, staged), at(dst.name)));
    } catch (err) {
      src.dir.run((at) => Deno.renameSync(at(staged), at(src.name)));
      throw err;
    }
  }

  /** Stop every upload being written below the directory whose real path is `real`. */
  #interruptUploads(real: string, why: string): void {
    const below = real.endsWith(sep) ? real : real + sep;
    for (const upload of this.#uploads) {
      if (upload.dir.path !== real && !upload.dir.path.startsWith(below)) continue;
      upload.interrupt(`upload cancelled: ${escapeName(why)} while it was being written`);
      this.#uploads.delete(upload);
    }
  }

  /** The held directory a path's last component is in, and that component. */
  #parentOf(path: string): { dir: Directory; name: string } {
    const slash = path.lastIndexOf("/");
    const parent = this.#resolve(slash < 0 ? "" : path.slice(0, slash));
    if (parent.missing > 0) throw notFound(path.slice(0, slash));
    return { dir: this.#pin(parent.real, path), name: path.slice(slash + 1) };
  }

  /**
   * `lstat` of `full` (a path in the root) when each of its directories
   * below the root is a directory and it is a regular file, none of them a
   * symlink; else undefined. For files at the top of the root it is one call, where
   * `realpath` and `stat` are two and the `realpath` costs two `stat`s.
   */
  #plainFile(full: string): Deno.FileInfo | undefined {
    for (let slash = full.indexOf(sep, this.#prefix.length); slash >= 0;) {
      if (!statOrUndefined(full.slice(0, slash), true)?.isDirectory) return undefined;
      slash = full.indexOf(sep, slash + 1);
    }
    const info = statOrUndefined(full, true);
    return info?.isFile ? info : undefined;
  }

  /** The directory `real` (inside the root, free of symlinks), held while each step runs. */
  #pin(real: string, path: string): Directory {
    return pinnedDirectory(real, escapeName(path));
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

  /**
   * Create the last `missing` components of `real` (whose ancestor above
   * them exists), one at a time, each in its parent held while it is made.
   * Returns the last one, held. A component another writer made meanwhile
   * is fine if it is a directory; held anew, a symlink swapped in for one is
   * refused before anything is made through it.
   */
  #makeDirs(real: string, missing: number, path: string): Directory {
    const parts = real.slice(this.root.length).split(sep).filter((p) => p !== "");
    let dir = join(this.root, ...parts.slice(0, parts.length - missing));
    for (const part of parts.slice(parts.length - missing)) {
      this.#pin(dir, path).run((at) => {
        try {
          Deno.mkdirSync(at(part));
        } catch (err) {
          if (!(err instanceof Deno.errors.AlreadyExists)) {
            throw toFerryError(err, escapeName(path));
          }
          if (!statOrUndefined(at(part), true)?.isDirectory) {
            throw new FerryError("NOT_A_DIRECTORY", `not a directory: ${escapeName(path)}`);
          }
        }
      }, () => Deno.removeSync(part));
      dir = join(dir, part);
    }
    return this.#pin(dir, path);
  }
}
