/**
 * Local files as both ends meet them: walking a tree, reading a file at the
 * right speed, telling whether a file changed while it was read, and
 * whether a filesystem has room. The client uses them for its own disk and
 * `LocalStorage` for the served one.
 *
 * @module
 */

import { join } from "node:path";
import type { Entry, EntryType } from "../commands.ts";
import { changedWhileSent, FerryError } from "../util/errors.ts";
import { RESERVED_PREFIX } from "../util/path_jail.ts";
import { escapeName } from "../util/display.ts";
import { type FileStat, libcPath, SLOT } from "./libc.ts";
import { nodeFs } from "../util/node_builtins.ts";

function entryType(info: Deno.FileInfo): EntryType {
  if (info.isSymlink) return "symlink";
  if (info.isDirectory) return "dir";
  return info.isFile ? "file" : "other";
}

/**
 * A directory entry named `name` for `info`.
 *
 * @example
 * ```ts
 * import { toEntry } from "./local_files.ts";
 * const entry = toEntry("tmp", Deno.statSync(Deno.makeTempDirSync()));
 * console.assert(entry.type === "dir");
 * ```
 */
export function toEntry(name: string, info: Deno.FileInfo): Entry {
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
  /**
   * Hears about an entry whose name is reserved for ferry (`.ferry-*`, its
   * own temporary files included): it cannot be sent, and is not listed.
   */
  onReserved?: (path: string) => void;
}

/**
 * Entries below the directory `dir` on local disk, depth first, named by
 * path relative to it (with `/`). Symlinks are listed, never followed;
 * reserved names are left out (see {@linkcode WalkOptions.onReserved}).
 *
 * @example
 * ```ts
 * import { walkLocal } from "./local_files.ts";
 * const dir = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${dir}/a.txt`, "a");
 * const names = (await Array.fromAsync(walkLocal(dir))).map((e) => e.name);
 * console.assert(names.join() === "a.txt");
 * ```
 */
export async function* walkLocal(dir: string, options: WalkOptions = {}): AsyncGenerator<Entry> {
  const pending = [""];
  while (pending.length > 0) {
    const rel = pending.pop()!;
    const names: string[] = [];
    try {
      for (const item of Deno.readDirSync(rel === "" ? dir : join(dir, rel))) {
        if (!item.name.startsWith(RESERVED_PREFIX)) names.push(item.name);
        else options.onReserved?.(rel === "" ? item.name : `${rel}/${item.name}`);
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
 * Whether `info` is a FIFO or a device: something to stream, of no size
 * known up front, and to write through rather than replace.
 *
 * @example
 * ```ts
 * import { isStreamed } from "./local_files.ts";
 * console.assert(!isStreamed(Deno.statSync(Deno.makeTempFileSync())));
 * ```
 */
export function isStreamed(info: Deno.FileInfo): boolean {
  return Boolean(info.isFifo || info.isCharDevice || info.isBlockDevice);
}

/**
 * Where a download to the local path `local` goes. A FIFO, a device, or one
 * of the paths that name this process's own streams (`/dev/stdout`) is
 * written through, never replaced. A symlink to a file is followed: the
 * file it leads to is replaced atomically, and the link stays. Anything
 * else, a dangling symlink included, is a file at `local`. `shown` is
 * `local` as given, for messages.
 *
 * @example
 * ```ts
 * import { destination } from "./local_files.ts";
 * console.assert(destination("/dev/stdout").device && !destination("out.bin").device);
 * ```
 */
export function destination(local: string): { path: string; shown: string; device: boolean } {
  const shown = local;
  if (/^\/(dev\/(stdout|stderr|fd\/\d+)|proc\/self\/fd\/\d+)$/.test(local)) {
    return { path: local, shown, device: true };
  }
  // Most downloads make a new file: exists() tells a miss without the exception lstat costs.
  if (!exists(local)) return { path: local, shown, device: false };
  try {
    const info = Deno.lstatSync(local);
    if (!info.isSymlink) return { path: local, shown, device: isStreamed(info) || !!info.isSocket };
    const path = Deno.realPathSync(local);
    const there = Deno.statSync(path);
    return { path, shown, device: isStreamed(there) || !!there.isSocket };
  } catch {
    // Gone meanwhile: a new file, then.
    return { path: local, shown, device: false };
  }
}

/** Files up to this size are read synchronously. */
export const SMALL_FILE = 256 * 1024;

/** Whether large files are read on the event loop's own thread too (see {@linkcode readFilesInline}). */
let inline = false;

/**
 * A large file's read that takes longer than this came from a disk or a
 * network, not from memory: the file's later reads go through the pool.
 */
const SLOW_READ_MS = 2;

/**
 * Declare that this process reads even large files synchronously, on its
 * own thread, while the reads come from memory: the two programs, whose
 * loops do little else. A read from the page cache costs less than its
 * trip through Deno's thread pool: a 1 GiB `put` took 0.66-0.68 s against
 * 0.78-0.89, a `get` from a ferryd doing so 0.66-0.71 against 0.72-0.90
 * (docs/performance.md). A read that takes longer than 2 ms (a disk's seek,
 * a network filesystem) sends the rest of that file through the pool, so
 * that many clients' reads from a slow store still overlap and one slow
 * file does not hold the others. A library's caller keeps the pool, unless
 * it says so too.
 *
 * @example
 * ```ts ignore
 * import { readFilesInline } from "./local_files.ts";
 * readFilesInline();
 * ```
 */
export function readFilesInline(): void {
  inline = true;
}

/**
 * How to read a file of `size` bytes. A small file is read synchronously,
 * like the metadata calls: its whole cost is overhead. A large one is read
 * through the async pool, unless the process reads inline (see
 * {@linkcode readFilesInline}) and its reads come from memory.
 *
 * @example
 * ```ts
 * import { readerFor } from "./local_files.ts";
 * const path = await Deno.makeTempFile();
 * using file = await Deno.open(path);
 * console.assert(await readerFor(file, 0)(new Uint8Array(8)) === null);
 * ```
 */
export function readerFor(
  file: Deno.FsFile,
  size: number,
): (buf: Uint8Array) => Promise<number | null> {
  if (size <= SMALL_FILE) return (buf) => Promise.resolve(file.readSync(buf));
  if (!inline) return (buf) => file.read(buf);
  let pooled = false;
  return (buf) => {
    if (pooled) return file.read(buf);
    const started = performance.now();
    const n = file.readSync(buf);
    pooled = performance.now() - started > SLOW_READ_MS;
    return Promise.resolve(n);
  };
}

/**
 * Throw INTEGRITY when the open `file` no longer looks as it did when it was
 * opened (`before`): another size, modification time or inode, or another
 * change time that no link (a rename, an unlink) explains.
 * A sender calls it after its last read, so that content rewritten in place
 * while it was read is never passed off as one version of the file. (Deno
 * reports ctime to the second and mtime to the millisecond; see
 * docs/security.md for what that leaves.)
 *
 * @example
 * ```ts
 * import { assertUnchanged } from "./local_files.ts";
 * const path = await Deno.makeTempFile();
 * using file = await Deno.open(path, { write: true });
 * const before = file.statSync();
 * assertUnchanged(file, before, "a.txt"); // nothing happened: no throw
 * ```
 */
export function assertUnchanged(file: Deno.FsFile, before: Deno.FileInfo, what: string): void {
  if (!sameVersion(fileStatOf(before), fileStatOf(file.statSync()))) {
    throw changedWhileSent(what);
  }
}

/**
 * Whether `now` is still the version of the file `before` described: the
 * same regular file (inode, device), size and modification time, and the
 * same change time unless the link count moved too (a rename or an unlink,
 * a file republished by renaming another over it: its content is as it
 * was). Both must come from the same kind of call (Deno's change time is
 * whole seconds, `statx`'s is not).
 *
 * @example
 * ```ts
 * import { fileStatOf, sameVersion } from "./local_files.ts";
 * const info = fileStatOf(Deno.statSync("/"));
 * console.assert(!sameVersion(info, { ...info, size: info.size + 1 }));
 * ```
 */
export function sameVersion(before: FileStat, now: FileStat): boolean {
  return now.isFile === before.isFile && now.ino === before.ino && now.dev === before.dev &&
    now.size === before.size && now.mtime === before.mtime &&
    (now.ctime === before.ctime || now.nlink !== before.nlink);
}

/**
 * Deno's `FileInfo` in the shape the C library's `statx` gives (see
 * `FileStat`): permission bits, times in milliseconds.
 */
export function fileStatOf(info: Deno.FileInfo): FileStat {
  return {
    isFile: info.isFile,
    isDirectory: info.isDirectory,
    isSymlink: info.isSymlink,
    mode: (info.mode ?? 0) & 0o7777,
    size: info.size,
    mtime: info.mtime?.getTime() ?? 0,
    ctime: info.ctime?.getTime() ?? 0,
    ino: info.ino ?? 0,
    dev: info.dev,
    nlink: info.nlink ?? 0,
  };
}

/**
 * Whether `path` leads to something, symlinks followed (a dangling one
 * leads nowhere), as `node:fs`'s `existsSync`: without the exception a
 * failed `Deno.statSync` costs, and, where the C library's calls are at
 * hand, without loading Node's layer.
 *
 * @example
 * ```ts
 * import { exists } from "./local_files.ts";
 * console.assert(exists("/") && !exists("/no/such/path"));
 * ```
 */
export function exists(path: string): boolean {
  const at = libcPath(path, SLOT.LOOKUP);
  return at ? at.c.exists(at.path) : nodeFs().existsSync(path);
}

/**
 * Free bytes for an unprivileged writer on the filesystem holding `dir`, or
 * undefined where that cannot be told.
 */
export function freeSpace(dir: string): number | undefined {
  const at = libcPath(dir, SLOT.LOOKUP);
  if (at) return at.c.freeBytes(at.path);
  try {
    const fs = nodeFs().statfsSync(dir);
    return Number(fs.bavail) * Number(fs.bsize);
  } catch {
    return undefined;
  }
}

/**
 * Refuse to write `size` bytes into `dir` up front when its filesystem has
 * not room for them, rather than fail near the end (a race with other
 * writers is still caught by ENOSPC during the write). `what` names the
 * file and its side in the message; `where`, when given, the directory (the
 * client names its own; the server never shows a host path).
 *
 * @example
 * ```ts
 * import { checkSpace } from "./local_files.ts";
 * checkSpace(await Deno.makeTempDir(), 1, "local file a.txt"); // room for one byte
 * ```
 */
export function checkSpace(dir: string, size: number, what: string, where?: string): void {
  const free = freeSpace(dir);
  if (free !== undefined && size > free) {
    const place = where === undefined ? "" : ` in ${escapeName(where)}`;
    throw new FerryError(
      "NO_SPACE",
      `not enough space for ${what}: ${size} bytes needed, ${free} free${place}`,
    );
  }
}

/**
 * `lstat` of `path`, or undefined when nothing is there (other failures
 * throw): a look that costs no exception handling at the call.
 *
 * @example
 * ```ts
 * import { lstatOrUndefined } from "./local_files.ts";
 * console.assert(lstatOrUndefined("/nonexistent/x") === undefined);
 * ```
 */
export function lstatOrUndefined(path: string): Deno.FileInfo | undefined {
  try {
    return Deno.lstatSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

/**
 * Whether anything (a dangling symlink too) is at the local `path`.
 *
 * @example
 * ```ts
 * import { pathExists } from "./local_files.ts";
 * console.assert(!(await pathExists("/nonexistent/x")));
 * ```
 */
export async function pathExists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}
