/**
 * Write a file so that it appears under its final name complete or not at
 * all: content goes to a hidden temporary file in the same directory, which
 * is renamed over the final name only by {@linkcode AtomicFile.commit}.
 *
 * A resumable file ({@linkcode AtomicFile.resume}) is named after what it
 * will hold rather than at random, and survives an interrupted transfer, so
 * that a later one can find it and continue. Whoever writes one holds an
 * exclusive lock on it: two transfers, in one process or in two, never
 * write the same partial at once.
 *
 * @module
 */

import { basename, dirname } from "node:path";
import { PARTIAL_SUFFIX, partialName, tempName } from "./temp_names.ts";
import { childPath, type Directory, plainDirectory, sleepSync } from "./directory.ts";
import { FerryError, toFerryError } from "../util/errors.ts";
import { escapeName } from "../util/display.ts";
import { lstatOrUndefined } from "./local_files.ts";
import { nodeFs } from "../util/node_builtins.ts";

/** Permission bits kept on received files: no setuid, setgid or sticky bit. */
export const PERMISSION_BITS = 0o777;

/** What {@linkcode AtomicFile.commit} applies before the file appears. */
export interface CommitOptions {
  /** Permission bits (masked with {@linkcode PERMISSION_BITS}). */
  mode?: number;
  /** Modification time, ms since the epoch. */
  mtime?: number;
  /** Fail with EXISTS rather than replace an existing file. */
  noClobber?: boolean;
  /** Flush the file to disk before it appears, and its directory after, to survive power loss. */
  fsync?: boolean;
}

/** Temporary files this process is writing, so that an interrupted CLI can remove them. */
const live = new Set<string>();

/**
 * Resumable files this process holds, by path. With `takeover`, opening one
 * again takes it over: a client that reconnects after a cut often gets to
 * ferryd before the old connection is known to be dead, and its transfer is
 * the one to continue.
 */
const holders = new Map<string, AtomicFile>();

/** Partials this process stopped writing and kept for a resume, with the bytes they hold. */
const kept = new Map<string, number>();

/**
 * The partials this process kept for a resume (interrupted, not resumed or
 * finished since), with the bytes each holds.
 */
export function keptPartials(): { path: string; bytes: number }[] {
  return [...kept].map(([path, bytes]) => ({ path, bytes }));
}

/** Whether this process is writing the temporary or partial file at `path`. */
export function inUse(path: string): boolean {
  return live.has(path) || holders.has(path);
}

/**
 * Remove every temporary file this process still has open, and the
 * partials it holds that are still empty. For a signal handler:
 * synchronous, and it never throws.
 */
export function removeLiveTempFiles(): void {
  const empty = [...holders.values()].filter((f) => f.written === 0).map((f) => f.tempPath);
  for (const path of [...live, ...empty]) {
    try {
      Deno.removeSync(path);
    } catch {
      // Already gone.
    }
  }
  live.clear();
}

/**
 * The resumable partials this process is writing now, with the bytes each
 * holds: what an interrupted CLI keeps.
 */
export function heldPartials(): { path: string; bytes: number }[] {
  return [...holders.values()].map((f) => ({ path: f.path, bytes: f.written }));
}

/** fsync a directory, so that a rename in it is durable. Not possible on Windows. */
function syncDirectory(path: string): void {
  if (Deno.build.os === "windows") return;
  using dir = Deno.openSync(path, { read: true });
  dir.syncSync();
}

function sameFile(a: Deno.FileInfo | undefined, b: Deno.FileInfo): boolean {
  return a !== undefined && a.ino === b.ino && a.dev === b.dev;
}

/**
 * Set the permission bits of the file open as `info`, reached as `path`.
 * Deno changes modes only by path, which follows a symlink put in the
 * file's place; so the path is opened without following one, checked to
 * be the same file, and changed through that descriptor.
 */
function chmodOpenFile(path: string, info: Deno.FileInfo, mode: number): void {
  const { closeSync, constants, fchmodSync, fstatSync, openSync } = nodeFs();
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const there = fstatSync(fd);
    if (there.ino !== info.ino || there.dev !== info.dev) {
      throw new FerryError("PATH_REFUSED", "path refused: the temporary file was replaced");
    }
    fchmodSync(fd, mode);
  } finally {
    closeSync(fd);
  }
}

/**
 * Take the exclusive lock on a partial. Right after this process let go of
 * it (`patient`), a child process another part of the program forked may
 * still hold the descriptor until it execs: then it is tried again for a
 * few milliseconds.
 */
function tryLock(file: Deno.FsFile, patient: boolean): boolean {
  for (let tries = patient ? 50 : 1; tries > 0; tries--) {
    if (file.tryLockSync(true)) return true;
    if (tries > 1) sleepSync(2);
  }
  return false;
}

/** Where an {@linkcode AtomicFile} lives, when not simply beside its path. */
export interface PlaceOptions {
  /**
   * The directory the file goes into, and how names in it are reached (a
   * pinned one on the server); its path must be `dirname(path)`. Default:
   * that directory, by path.
   */
  dir?: Directory;
  /**
   * How messages name the file: the path its user gave (`local dist/a.txt`,
   * a path under the served root). Default: its name.
   */
  shown?: string;
}

/**
 * A failure to create or write a file, naming it as `shown`; a directory
 * that is not there (`dir`, never shown: it may be a host path) is said to
 * be missing, rather than the file.
 */
function writeError(err: unknown, shown: string, dir: string): FerryError {
  const e = toFerryError(err, `cannot write ${shown}`);
  if (e.code !== "NOT_FOUND" || nodeFs().existsSync(dir)) return e;
  return new FerryError("NOT_FOUND", `cannot write ${shown}: its directory does not exist`);
}

/** Options for {@linkcode AtomicFile.resume}. */
export interface ResumeOptions extends PlaceOptions {
  /**
   * Continue after exactly this many bytes of the partial (RESUME_MISMATCH
   * if it holds fewer; more are cut). Without it, all it holds is kept.
   */
  offset?: number;
  /**
   * Take the partial over when this process is already writing it (that
   * writer stops). Default true; without it, such a partial counts as held
   * elsewhere. A partial another process holds is never taken over.
   */
  takeover?: boolean;
}

/**
 * A file being written under a temporary name.
 *
 * @example
 * ```ts
 * import { AtomicFile } from "./atomic_file.ts";
 * const dir = await Deno.makeTempDir();
 * const file = AtomicFile.create(`${dir}/out.txt`);
 * file.write(new TextEncoder().encode("hello"));
 * await file.commit();
 * ```
 */
export class AtomicFile {
  /** The directory it goes into. */
  readonly dir: Directory;
  /** Its final name in {@linkcode AtomicFile.dir}. */
  readonly name: string;
  /** The temporary file's name in the same directory. */
  readonly tempName: string;
  /** Bytes already in the file when it was opened (a resumed partial). */
  readonly offset: number;
  /** Whether {@linkcode AtomicFile.suspend} keeps the file for a later resume. */
  readonly resumable: boolean;
  /** The open temporary file; for a partial, it also holds the lock. */
  #file: Deno.FsFile | undefined;
  /** The temporary file as opened: the file every later step makes sure it still has. */
  readonly #info: Deno.FileInfo;
  #written = 0;
  #done = false;
  /** Whether this very step created the temporary file (rather than finding a kept partial). */
  #created = true;
  /** How messages name the file (see PlaceOptions.shown). */
  #shown: string | undefined;

  private constructor(
    dir: Directory,
    name: string,
    temp: string,
    file: Deno.FsFile,
    info: Deno.FileInfo,
    offset = 0,
  ) {
    this.dir = dir;
    this.name = name;
    this.tempName = temp;
    this.tempPath = childPath(dir.path, temp);
    this.#file = file;
    this.#info = info;
    this.offset = offset;
    this.resumable = temp.endsWith(PARTIAL_SUFFIX);
  }

  /** Where the file will appear on commit. */
  get path(): string {
    return childPath(this.dir.path, this.name);
  }

  /** The temporary file being written. */
  readonly tempPath: string;

  /** Bytes in the temporary file: the offset it was opened at, and what was written since. */
  get written(): number {
    return this.offset + this.#written;
  }

  /** What the temporary file is, as opened (device and inode, permission bits). */
  get info(): Deno.FileInfo {
    return this.#info;
  }

  /**
   * Create the temporary file beside `path`. The directory must exist. With
   * `mode`, the file is created with those permission bits (less the umask):
   * when they survive whole, a commit with the same mode needs no `chmod`,
   * one call less per file in a tree of small ones.
   */
  static create(path: string, options: PlaceOptions & { mode?: number } = {}): AtomicFile {
    const dir = options.dir ?? plainDirectory(dirname(path));
    const name = basename(path);
    const temp = tempName();
    const mode = options.mode === undefined ? 0o666 : options.mode & PERMISSION_BITS;
    try {
      return dir.run(
        (at) => {
          const file = Deno.openSync(at(temp), { write: true, createNew: true, mode });
          const created = new AtomicFile(dir, name, temp, file, file.statSync());
          created.#shown = options.shown;
          live.add(created.tempPath);
          return created;
        },
        // The directory moved out from under the step: take the file back at once.
        (file) => file.takeBack(),
      );
    } catch (err) {
      throw writeError(err, options.shown ?? escapeName(name), dir.path);
    }
  }

  /**
   * Open and lock the resumable partial for `path` named by `key`, creating
   * an empty one if there is none, and continue it (see
   * {@linkcode ResumeOptions.offset}). Returns undefined when another
   * writer holds it: another process, or, without `takeover`, this one.
   * Everything is checked before anything changes: a refused resume neither
   * creates a partial nor takes one over.
   */
  static resume(path: string, key: string, options: ResumeOptions = {}): AtomicFile | undefined {
    const dir = options.dir ?? plainDirectory(dirname(path));
    const name = basename(path);
    const temp = partialName(key);
    const previous = holders.get(childPath(dir.path, temp));
    if (previous && options.takeover === false) return undefined;
    const refuse = (held: number, offset: number) =>
      new FerryError(
        "RESUME_MISMATCH",
        `cannot resume ${escapeName(name)} at byte ${offset}: only ${held} are here`,
      );
    let fresh = false;
    try {
      return dir.run((at) => {
        // Never write through a link planted under the partial's name.
        const existing = lstatOrUndefined(at(temp));
        fresh = existing === undefined;
        if (existing && !existing.isFile) {
          throw new FerryError("IO", `not a regular file: ${escapeName(temp)}`);
        }
        const offset = options.offset ?? existing?.size ?? 0;
        if (offset > (existing?.size ?? 0)) throw refuse(existing?.size ?? 0, offset);
        if (previous) previous.#let();
        // A partial renamed away (committed) between the open and the lock leaves this one
        // holding the wrong file: then look again.
        for (let attempt = 0; attempt < 3; attempt++) {
          const file = Deno.openSync(at(temp), {
            read: true,
            write: true,
            create: true,
            mode: 0o666,
          });
          if (!tryLock(file, previous !== undefined)) {
            file.close();
            return undefined;
          }
          const info = file.statSync();
          if (!sameFile(lstatOrUndefined(at(temp)), info)) {
            file.close();
            continue;
          }
          if (info.size < offset) {
            file.close();
            throw refuse(info.size, offset);
          }
          try {
            // Only when there is something to cut: on ext4, any truncate to size 0 (even of
            // an empty file) makes the close flush the file's dirty pages, which cost 0.5 s
            // per GiB in close().
            if (info.size > offset) file.truncateSync(offset);
            file.seekSync(offset, Deno.SeekMode.Start);
          } catch (err) {
            file.close();
            throw err;
          }
          const resumed = new AtomicFile(dir, name, temp, file, info, offset);
          resumed.#created = fresh;
          resumed.#shown = options.shown;
          holders.set(resumed.tempPath, resumed);
          kept.delete(resumed.tempPath);
          return resumed;
        }
        return undefined;
      }, (file) => file?.takeBack());
    } catch (err) {
      throw writeError(err, options.shown ?? escapeName(name), dir.path);
    }
  }

  /**
   * The {@linkcode AtomicFile.offset} bytes already in the file, read from
   * the first; once they are read, the file stands where writing goes on.
   */
  prefix(): { read(buf: Uint8Array): Promise<number | null> } {
    const file = this.#open();
    let left = this.offset;
    try {
      file.seekSync(0, Deno.SeekMode.Start);
    } catch (err) {
      throw toFerryError(err, `cannot read ${escapeName(this.name)}`);
    }
    return {
      read: async (buf) => {
        if (left === 0) return null;
        const n = await file.read(buf.subarray(0, Math.min(buf.length, left)));
        if (n === null) {
          throw new FerryError("IO", `${escapeName(this.name)} shrank while being read`);
        }
        left -= n;
        return n;
      },
    };
  }

  /**
   * Append `chunk`. Synchronous on purpose: a page-cache write is fast and
   * `writeSync` measured ~1.7x faster than `await write` on the receive path.
   */
  write(chunk: Uint8Array): void {
    const file = this.#open();
    let offset = 0;
    try {
      while (offset < chunk.length) offset += file.writeSync(chunk.subarray(offset));
    } catch (err) {
      throw writeError(err, this.#shown ?? escapeName(this.name), this.dir.path);
    } finally {
      this.#written += offset;
    }
  }

  /**
   * Apply `options` and move the file into place: replacing any file there,
   * or with `noClobber` failing with EXISTS if there is one (a hard link, so
   * the check and the move are one atomic step). A partial stays locked
   * until it is in place, so nobody else can open it in between.
   */
  async commit(options: CommitOptions = {}): Promise<void> {
    const file = this.#open();
    try {
      if (options.fsync) file.syncSync();
      // Through the open file: by path, a name swapped for a symlink would send it elsewhere.
      // (Linux's NFS client writes dirty pages back before it applies a new mtime.)
      if (options.mtime !== undefined) file.utimeSync(new Date(), new Date(options.mtime));
      const mode = options.mode === undefined ? undefined : options.mode & PERMISSION_BITS;
      const current = this.#info.mode === null ? undefined : this.#info.mode & PERMISSION_BITS;
      this.dir.run((at) => {
        if (mode !== undefined && mode !== current && Deno.build.os !== "windows") {
          chmodOpenFile(at(this.tempName), this.#info, mode);
        }
        if (this.dir.guarded && !sameFile(lstatOrUndefined(at(this.tempName)), this.#info)) {
          throw new FerryError(
            "PATH_REFUSED",
            `path refused: the temporary file of ${escapeName(this.name)} was replaced`,
          );
        }
        if (options.noClobber) Deno.linkSync(at(this.tempName), at(this.name));
        else Deno.renameSync(at(this.tempName), at(this.name));
      });
      this.#let();
      if (options.noClobber) this.#removeTemp();
      if (options.fsync) syncDirectory(this.dir.path);
    } catch (err) {
      await this.abort();
      if (err instanceof Deno.errors.AlreadyExists) {
        throw new FerryError("EXISTS", `already exists: ${escapeName(this.name)}`);
      }
      throw toFerryError(err, `cannot store ${escapeName(this.name)}`);
    }
  }

  /**
   * Stop writing but keep a resumable file for a later resume (others are
   * dropped as by {@linkcode AtomicFile.abort}). Later writes and commits fail.
   * Returns the bytes kept: 0 when nothing is, also when the file was
   * removed meanwhile (its directory deleted, say) or another upload has
   * taken it over (its bytes are that upload's now).
   */
  suspend(): Promise<number> {
    if (!this.resumable) return this.abort().then(() => 0);
    if (this.#done) return Promise.resolve(0);
    this.#let();
    try {
      const bytes = this.dir.run((at) => {
        const there = lstatOrUndefined(at(this.tempName));
        if (!sameFile(there, this.#info)) return 0;
        // An empty partial holds nothing worth resuming.
        if (there!.size === 0) Deno.removeSync(at(this.tempName));
        return there!.size;
      });
      if (bytes > 0) kept.set(this.tempPath, bytes);
      return Promise.resolve(bytes);
    } catch {
      return Promise.resolve(0);
    }
  }

  /**
   * Take back, synchronously, what the step that made this file did: a
   * temporary file or a partial it created is removed, a kept partial it
   * found is let go of as it was.
   */
  takeBack(): void {
    if (this.#done) return;
    if (this.#created) this.#discard();
    else this.#let();
  }

  /**
   * Give up the temporary file without removing it: its path no longer
   * leads to it (see `LocalStorage`), and removing would hit another file.
   */
  forget(): void {
    this.#let();
  }

  /**
   * Stop where it is, as {@linkcode AtomicFile.suspend} would, but now and
   * synchronously, because its directory is about to move: a partial stays
   * (and moves along), a temporary file is removed. Later writes fail with
   * CANCELLED and `reason`.
   */
  interrupt(reason: string): void {
    if (this.#done) return;
    this.#cancelled = reason;
    if (this.resumable) this.#let();
    else this.#discard();
  }

  /** Drop the temporary file. Safe to call at any time and more than once. */
  abort(): Promise<void> {
    if (!this.#done) this.#discard();
    this.#closeFile();
    return Promise.resolve();
  }

  #cancelled: string | undefined;

  /** The open file, or CANCELLED once it is closed. */
  #open(): Deno.FsFile {
    if (this.#file && !this.#done) return this.#file;
    throw new FerryError("CANCELLED", this.#cancelled ?? `${escapeName(this.name)} was closed`);
  }

  /** Let go: close (which unlocks a partial) and forget, removing nothing. */
  #let(): void {
    this.#done = true;
    kept.delete(this.tempPath);
    this.#closeFile();
    live.delete(this.tempPath);
    if (holders.get(this.tempPath) === this) holders.delete(this.tempPath);
  }

  /** Let go and remove the temporary file, where it is still this very file. */
  #discard(): void {
    this.#let();
    this.#removeTemp();
  }

  #removeTemp(): void {
    try {
      this.dir.run((at) => {
        if (sameFile(lstatOrUndefined(at(this.tempName)), this.#info)) {
          Deno.removeSync(at(this.tempName));
        }
      });
    } catch {
      // Gone already, or its directory is not where it was: nothing of ours to remove there.
    }
  }

  #closeFile(): void {
    try {
      this.#file?.close();
    } catch {
      // Closing can only fail if it is already closed.
    }
    this.#file = undefined;
  }
}
