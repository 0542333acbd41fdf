/**
 * A small file whose whole content is in hand, written atomically in one
 * synchronous step: a temporary file beside its name, created with
 * `O_EXCL | O_NOFOLLOW`, the content, its mode and mtime set on the open
 * file, then a rename (or a hard link where nothing may be replaced). What a
 * tree stream does for each of its files, on the client's disk and on the
 * server's alike. Through the C library's calls where they are at hand
 * (`libc.ts`), else `node:fs` with numeric flags: its calls cost less than
 * Deno's own for this sequence (docs/performance.md).
 *
 * @module
 */

import { AT_FDCWD, cString, ERRNO, type Libc, libc, SLOT } from "./libc.ts";
import { childPath } from "./directory.ts";
import { nodeFs } from "../util/node_builtins.ts";

/** How {@linkcode writeWholeFile} stores a file. */
export interface WholeFileOptions {
  /** Permission bits (setuid, setgid and sticky are dropped). */
  mode: number;
  /** Modification time, ms since the epoch. */
  mtime: number;
  /** Fail (return `exists`) rather than replace a file of that name. */
  noClobber?: boolean;
  /** Flush the file to disk before it takes its name. */
  fsync?: boolean;
}

/**
 * Write `content` as `name` through `at` (which maps a name in the target
 * directory to a path: the name itself in a held directory, a joined path
 * elsewhere), via a temporary name drawn from `tempName` where one is
 * needed (a file is in the way, or no nameless file here). Returns `exists` when
 * `noClobber` found the name taken, and nothing once the file is in place;
 * throws the error of a failed call, leaving no temporary file.
 *
 * @example
 * ```ts
 * import { writeWholeFile } from "./whole_file.ts";
 * const dir = Deno.makeTempDirSync();
 * const at = (name: string) => `${dir}/${name}`;
 * const content = new TextEncoder().encode("hello");
 * writeWholeFile(at, "a.txt", () => ".ferry-0.part", content, { mode: 0o640, mtime: 0 });
 * console.assert(Deno.readTextFileSync(at("a.txt")) === "hello");
 * ```
 */
export function writeWholeFile(
  at: (name: string) => string,
  name: string,
  tempName: () => string,
  content: Uint8Array,
  options: WholeFileOptions,
): "exists" | undefined {
  const c = libc();
  if (c) {
    const placed = writeNameless(c, AT_FDCWD, at, name, tempName, content, options);
    if (placed !== RETRY) return placed;
  }
  return writeNamed(at, name, tempName, content, options);
}

/**
 * Writes many whole files as {@linkcode writeWholeFile} does, holding the
 * directory they go to open (`O_PATH`) from one file to the next, so that
 * each call names the file alone and the kernel walks no path: 5-10 µs a
 * file less, for a tree received on one's own disk. A directory moved while
 * held is still the one written to, as a process that changed into it would
 * find (rsync's receiver does); {@linkcode close} lets it go.
 *
 * @example
 * ```ts
 * import { WholeFileWriter } from "./whole_file.ts";
 * const dir = Deno.makeTempDirSync();
 * using writer = new WholeFileWriter();
 * const content = new TextEncoder().encode("hello");
 * writer.write(dir, "a.txt", () => ".ferry-0.part", content, { mode: 0o644, mtime: 0 });
 * console.assert(Deno.readTextFileSync(`${dir}/a.txt`) === "hello");
 * ```
 */
export class WholeFileWriter implements Disposable {
  #path: string | undefined;
  #fd = -1;

  /**
   * Write `content` as `name` in the directory at the path `dir`: see
   * {@linkcode writeWholeFile}.
   */
  write(
    dir: string,
    name: string,
    tempName: () => string,
    content: Uint8Array,
    options: WholeFileOptions,
  ): "exists" | undefined {
    const at = (child: string) => childPath(dir, child);
    const c = libc();
    if (c) {
      const held = this.#hold(c, dir);
      const placed = held < 0
        ? writeNameless(c, AT_FDCWD, at, name, tempName, content, options)
        : writeNameless(c, held, same, name, tempName, content, options);
      if (placed !== RETRY) return placed;
    }
    return writeNamed(at, name, tempName, content, options);
  }

  /** The descriptor held for `dir`, opened when it differs from the last; -1 if it cannot be. */
  #hold(c: Libc, dir: string): number {
    if (dir === this.#path) return this.#fd;
    this.close();
    const path = cString(dir, SLOT.DIR);
    // Not to be had (gone, say): the files of this directory go by path, which reports why.
    this.#fd = path === undefined ? -1 : c.openat(AT_FDCWD, path, c.O_PATH_DIRECTORY, 0);
    this.#path = dir;
    return this.#fd;
  }

  /** Let the held directory go. */
  close(): void {
    if (this.#fd >= 0) libc()?.close(this.#fd);
    this.#fd = -1;
    this.#path = undefined;
  }

  /** {@linkcode close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

const same = (name: string) => name;

const RETRY = Symbol("retry");

/** The largest time a Date holds, in ms either side of the epoch. */
const MAX_TIME = 8.64e15;

/** `{atime, mtime}` for futimens, reused: one call at a time per thread. */
const times = new BigInt64Array(4);

/** `.` as a C string: the held directory itself. */
const DOT = new Uint8Array([0x2e, 0]);

/**
 * The file made nameless in the target directory (`dir`, a descriptor held
 * open, with `at` naming files in it; or {@linkcode AT_FDCWD}, with `at`
 * giving paths), filled, given its mode and mtime, then linked under `name`
 * (or, when a file has that name and may be replaced, under a temporary
 * name and renamed over it). Any failure closes the nameless file, which
 * the kernel then frees, and answers {@linkcode RETRY}: the named path
 * redoes the step and reports what went wrong.
 */
function writeNameless(
  c: Libc,
  dir: number,
  at: (name: string) => string,
  name: string,
  tempName: () => string,
  content: Uint8Array,
  options: WholeFileOptions,
): "exists" | undefined | typeof RETRY {
  // Times beyond what a Date holds would wrap around in futimens' 64-bit seconds: node:fs
  // takes those (and NaN) as it always did.
  if (!(Math.abs(options.mtime) <= MAX_TIME)) return RETRY;
  const where = dir === AT_FDCWD ? cString(at("."), SLOT.DIR) : DOT;
  const final = cString(at(name), SLOT.FINAL);
  if (where === undefined || final === undefined) return RETRY;
  const fd = c.openat(dir, where, c.O_TMPFILE_WRONLY, 0o600);
  // EOPNOTSUPP (a filesystem without O_TMPFILE), EISDIR (a kernel before 3.11), or a failure
  // the named path will meet and report. Asked again for each file: a directory of the tree may
  // be on another filesystem, and a failed open costs about a microsecond.
  if (fd < 0) return RETRY;
  let placed: "exists" | undefined | typeof RETRY;
  try {
    placed = fillAndLink({ c, fd, dir, at, final, tempName, content, options });
  } catch (err) {
    c.close(fd);
    throw err;
  }
  if (c.close(fd) === 0 || placed !== undefined) return placed;
  // A filesystem that reports a failed write only at close (NFS, FUSE): the file this step
  // linked may be short, so it goes, and the step fails. Only that file: "exists" is
  // somebody else's, and stays; node:fs's close would not even say.
  c.unlink(dir, final);
  throw Object.assign(new Error("the file system failed to close the file (EIO)"), {
    code: "EIO",
  });
}

/** A nameless file open as `fd` in `dir`, to fill and link as `final`: see writeNameless. */
interface NamelessStep {
  c: Libc;
  fd: number;
  dir: number;
  at: (name: string) => string;
  final: Uint8Array;
  tempName: () => string;
  content: Uint8Array;
  options: WholeFileOptions;
}

function fillAndLink(
  { c, fd, dir, at, final, tempName, content, options }: NamelessStep,
): "exists" | undefined | typeof RETRY {
  for (let done = 0; done < content.length;) {
    const n = c.write(fd, done === 0 ? content : content.subarray(done), content.length - done);
    if (n <= 0) return RETRY;
    done += n;
  }
  const seconds = Math.floor(options.mtime / 1000);
  times[0] = times[2] = BigInt(seconds);
  times[1] = times[3] = BigInt(Math.round((options.mtime - seconds * 1000) * 1e6));
  if (c.fchmod(fd, options.mode & 0o777) !== 0 || c.futimens(fd, times) !== 0) return RETRY;
  if (options.fsync && c.fsync(fd) !== 0) return RETRY;
  if (c.link(fd, dir, final) === 0) return undefined;
  if (c.errno() !== ERRNO.EEXIST) return RETRY;
  if (options.noClobber) return "exists";
  // Taken, and to be replaced: under a temporary name first, then renamed over it.
  const temp = cString(at(tempName()), SLOT.TEMP);
  if (temp === undefined || c.link(fd, dir, temp) !== 0) return RETRY;
  if (c.rename(dir, temp, final) === 0) return undefined;
  c.unlink(dir, temp);
  return RETRY;
}

/**
 * The named path: a temporary file beside `name`, then a rename or a link.
 * Through `node:fs`, loaded at the first such file (where the C library's
 * calls are at hand, only a failure comes here, to be reported).
 */
const writeNamed: typeof writeWholeFile = (at, name, tempName, content, options) => {
  const {
    closeSync,
    constants,
    fchmodSync,
    fsyncSync,
    futimesSync,
    linkSync,
    openSync,
    renameSync,
    unlinkSync,
    writeSync,
  } = nodeFs();
  const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = constants;
  const temp = at(tempName());
  let fd: number | undefined;
  // Whether the temporary file is this step's: a name taken already (EEXIST) is somebody
  // else's file, never removed.
  let made = false;
  try {
    fd = openSync(temp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o600);
    made = true;
    for (let done = 0; done < content.length;) {
      done += writeSync(fd, content, done, content.length - done);
    }
    fchmodSync(fd, options.mode & 0o777);
    futimesSync(fd, options.mtime / 1000, options.mtime / 1000);
    if (options.fsync) fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    if (!options.noClobber) {
      renameSync(temp, at(name));
      return undefined;
    }
    try {
      linkSync(temp, at(name));
    } catch (err) {
      if ((err as { code?: string }).code === "EEXIST") return "exists";
      throw err;
    } finally {
      made = false;
      unlinkSync(temp);
    }
    return undefined;
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    try {
      if (made) unlinkSync(temp);
    } catch {
      // Gone already.
    }
    throw err;
  }
};
