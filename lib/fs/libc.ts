/**
 * The few C library calls that write a small file without a temporary name,
 * through Deno's FFI, where they exist: Linux with glibc on x86-64 or arm64,
 * with `--allow-ffi` and reading and writing granted everywhere (FFI calls
 * pass by Deno's permission checks, so a program allowed to write only
 * somewhere never has them). Elsewhere {@linkcode libc} answers undefined and callers use
 * `node:fs` as before.
 *
 * Why: a file created nameless (`O_TMPFILE`), filled, then linked under its
 * name costs the kernel 15-20 µs less than one created under a temporary name
 * and renamed, and these calls skip 8-10 µs of argument handling that
 * `node:fs` does in JavaScript (docs/performance.md, "Files without a
 * temporary name"). A crash before the link leaves nothing, not even a
 * temporary file.
 *
 * Only success is handled here: a call that fails returns -1 and sets
 * {@linkcode Libc.errno}, and callers redo the step through `node:fs`, whose
 * errors carry the codes and messages the rest of ferry reports.
 *
 * @module
 */

import { granted } from "../util/permissions.ts";

/**
 * What `statx(2)` tells of a file, in the shape a walk needs: the fields
 * Deno's `FileInfo` has under the same names (`dev` encoded as glibc's
 * `makedev`, as Deno reports it), times in whole milliseconds.
 */
export interface FileStat {
  isFile: boolean;
  isDirectory: boolean;
  isSymlink: boolean;
  /** Permission bits (with setuid, setgid and sticky). */
  mode: number;
  size: number;
  mtime: number;
  ctime: number;
  ino: number;
  dev: number;
  nlink: number;
}

/**
 * The calls, as {@linkcode libc} offers them. Paths are NUL-terminated UTF-8
 * (see {@linkcode cString}), relative to the directory `dir` holds open, or
 * to the working directory when `dir` is {@linkcode AT_FDCWD}.
 */
export interface Libc {
  /** `openat(2)`: a descriptor, or -1. */
  openat(dir: number, path: Uint8Array, flags: number, mode: number): number;
  /** `write(2)`: bytes written, or -1. */
  write(fd: number, bytes: Uint8Array, length: number): number;
  /** `read(2)` into `into`, at most `length` bytes: bytes read (0 at the end), or -1. */
  read(fd: number, into: Uint8Array, length: number): number;
  /** `access(2)` with `F_OK`: whether the path leads to something, symlinks followed. */
  exists(path: Uint8Array): boolean;
  /**
   * Bytes available to an unprivileged writer on the filesystem holding
   * `path` (`statvfs(3)`: `f_bavail` × `f_frsize`), or undefined on error.
   */
  freeBytes(path: Uint8Array): number | undefined;
  /** `statx(2)` of `path`, not following a symlink; undefined on error (see `errno`). */
  lstat(path: Uint8Array): FileStat | undefined;
  /** `statx(2)` of the open file `fd`; undefined on error. */
  fstat(fd: number): FileStat | undefined;
  /** `fchmod(2)`: 0, or -1. */
  fchmod(fd: number, mode: number): number;
  /** `futimens(2)` with `{atime, mtime}` as seconds and nanoseconds: 0, or -1. */
  futimens(fd: number, times: BigInt64Array): number;
  /** `fsync(2)`: 0, or -1. */
  fsync(fd: number): number;
  /** `close(2)`: 0, or -1. */
  close(fd: number): number;
  /**
   * `linkat(2)` of the open file `fd` (made with `O_TMPFILE`) under `to`: 0,
   * or -1. By the descriptor itself where the process may (`AT_EMPTY_PATH`
   * needs `CAP_DAC_READ_SEARCH`, which root has: 5 µs less a file), else
   * through its `/proc/self/fd` entry.
   */
  link(fd: number, dir: number, to: Uint8Array): number;
  /** `renameat(2)` within one directory: 0, or -1. */
  rename(dir: number, from: Uint8Array, to: Uint8Array): number;
  /** `unlinkat(2)` of a file: 0, or -1. */
  unlink(dir: number, path: Uint8Array): number;
  /** The calling thread's `errno`, read right after a call returned -1. */
  errno(): number;
  /** `O_TMPFILE | O_WRONLY | O_CLOEXEC` for this machine. */
  readonly O_TMPFILE_WRONLY: number;
  /** `O_PATH | O_DIRECTORY | O_CLOEXEC` for this machine: a directory held to act in. */
  readonly O_PATH_DIRECTORY: number;
  /**
   * `O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC` for this machine: a file
   * to read that is no symlink, without waiting for a FIFO's writer.
   */
  readonly O_READ_NOFOLLOW: number;
}

/** `errno` values the callers tell apart (the same on x86-64 and arm64 Linux). */
export const ERRNO = { EBADF: 9, EEXIST: 17 } as const;

/** The working directory, where a call takes a directory descriptor. */
export const AT_FDCWD = -100;

const AT_SYMLINK_FOLLOW = 0x400;
const AT_EMPTY_PATH = 0x1000;
const ENOENT = 2;
const O_CLOEXEC = 0o2000000;

// O_DIRECTORY and O_NOFOLLOW differ between the two; __O_TMPFILE, O_PATH, O_WRONLY, O_NONBLOCK
// and O_CLOEXEC do not.
const O_DIRECTORY: Partial<Record<string, number>> = { x86_64: 0o200000, aarch64: 0o40000 };
const O_NOFOLLOW: Partial<Record<string, number>> = { x86_64: 0o400000, aarch64: 0o100000 };
const O_NONBLOCK = 0o4000;

/** `struct statvfs` on 64-bit Linux: 112 bytes, `f_frsize` at 8, `f_bavail` at 32. */
const STATVFS_SIZE = 112;

/** `struct statx`: 256 bytes, the same layout on every architecture. */
const STATX_SIZE = 256;
const STATX_BASIC_STATS = 0x7ff;
const AT_SYMLINK_NOFOLLOW = 0x100;
const S_IFMT = 0o170000, S_IFREG = 0o100000, S_IFDIR = 0o040000, S_IFLNK = 0o120000;

/** The `FileStat` of a `struct statx` (little-endian: x86-64 and arm64). */
function fileStat(v: DataView): FileStat {
  const u64 = (at: number) => v.getUint32(at, true) + v.getUint32(at + 4, true) * 2 ** 32;
  // tv_sec (signed 64) and tv_nsec (32) to whole milliseconds, rounded toward zero as Deno's
  // FileInfo has them (before 1970 too: -1.5 s is -1500 ms, 1 ns before 1970 is 0).
  const ms = (at: number) => {
    const sec = v.getUint32(at, true) + v.getInt32(at + 4, true) * 2 ** 32;
    const nsec = v.getUint32(at + 8, true);
    return sec >= 0 || nsec === 0
      ? sec * 1000 + Math.floor(nsec / 1e6)
      : (sec + 1) * 1000 - Math.floor((1e9 - nsec) / 1e6);
  };
  const mode = v.getUint16(28, true);
  const type = mode & S_IFMT;
  const major = v.getUint32(136, true), minor = v.getUint32(140, true);
  return {
    isFile: type === S_IFREG,
    isDirectory: type === S_IFDIR,
    isSymlink: type === S_IFLNK,
    mode: mode & 0o7777,
    size: u64(40),
    mtime: ms(112),
    ctime: ms(96),
    ino: u64(32),
    // glibc's makedev, which Deno's FileInfo.dev is.
    dev: (major & 0xfffff000) * 2 ** 32 + (minor & 0xffffff00) * 2 ** 12 +
      (major & 0xfff) * 2 ** 8 +
      (minor & 0xff),
    nlink: v.getUint32(16, true),
  };
}

function load(): Libc | undefined {
  const directory = O_DIRECTORY[Deno.build.arch];
  const noFollow = O_NOFOLLOW[Deno.build.arch];
  if (Deno.build.os !== "linux" || directory === undefined || noFollow === undefined) {
    return undefined;
  }
  try {
    // FFI calls pass by Deno's permission checks: only where reading and writing anywhere is
    // granted already (the built programs' --allow-all) do they reach no further than node:fs.
    if (!granted("ffi", "read", "write")) return undefined;
    // A nameless file is linked through its /proc/self/fd entry; without /proc, no such files.
    if (!Deno.statSync("/proc/self/fd").isDirectory) return undefined;
    const lib = Deno.dlopen("libc.so.6", {
      openat: { parameters: ["i32", "buffer", "i32", "u32"], result: "i32" },
      write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
      read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
      access: { parameters: ["buffer", "i32"], result: "i32" },
      statvfs: { parameters: ["buffer", "buffer"], result: "i32" },
      statx: { parameters: ["i32", "buffer", "i32", "u32", "buffer"], result: "i32" },
      fchmod: { parameters: ["i32", "u32"], result: "i32" },
      futimens: { parameters: ["i32", "buffer"], result: "i32" },
      fsync: { parameters: ["i32"], result: "i32" },
      close: { parameters: ["i32"], result: "i32" },
      linkat: { parameters: ["i32", "buffer", "i32", "buffer", "i32"], result: "i32" },
      renameat: { parameters: ["i32", "buffer", "i32", "buffer"], result: "i32" },
      unlinkat: { parameters: ["i32", "buffer", "i32"], result: "i32" },
      __errno_location: { parameters: [], result: "pointer" },
    });
    const s = lib.symbols;
    // errno is per thread, and its place is fixed for the thread's life: this module is loaded
    // afresh in each worker, which is its own thread.
    const where = s.__errno_location();
    if (where === null) return undefined;
    const errnoView = new Deno.UnsafePointerView(where);
    const errno = () => errnoView.getInt32();
    const empty = new Uint8Array(1);
    const vfs = new Uint8Array(STATVFS_SIZE);
    const stx = new Uint8Array(STATX_SIZE);
    const stxView = new DataView(stx.buffer);
    const vfsView = new DataView(vfs.buffer);
    // Whether AT_EMPTY_PATH works here: not known until tried, then settled by its first
    // answer (ENOENT is the kernel's refusal without the capability).
    let byDescriptor: boolean | undefined;
    const procPaths = new Map<number, Uint8Array>();
    const link = (fd: number, dir: number, to: Uint8Array): number => {
      if (byDescriptor !== false) {
        if (s.linkat(fd, empty, dir, to, AT_EMPTY_PATH) === 0) return (byDescriptor = true, 0);
        if (byDescriptor || errno() !== ENOENT) return -1;
        byDescriptor = false;
      }
      let self = procPaths.get(fd);
      if (self === undefined) {
        if (procPaths.size >= 256) procPaths.clear();
        procPaths.set(fd, self = cPath(`/proc/self/fd/${fd}`));
      }
      return s.linkat(AT_FDCWD, self, dir, to, AT_SYMLINK_FOLLOW);
    };
    return {
      openat: (dir, path, flags, mode) => s.openat(dir, path, flags, mode),
      write: (fd, bytes, length) => Number(s.write(fd, bytes, BigInt(length))),
      read: (fd, into, length) => Number(s.read(fd, into, BigInt(length))),
      exists: (path) => s.access(path, 0) === 0,
      lstat: (path) =>
        s.statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS, stx) === 0
          ? fileStat(stxView)
          : undefined,
      fstat: (fd) =>
        s.statx(fd, empty, AT_EMPTY_PATH, STATX_BASIC_STATS, stx) === 0
          ? fileStat(stxView)
          : undefined,
      freeBytes(path) {
        if (s.statvfs(path, vfs) !== 0) return undefined;
        return Number(vfsView.getBigUint64(32, true)) * Number(vfsView.getBigUint64(8, true));
      },
      fchmod: (fd, mode) => s.fchmod(fd, mode),
      futimens: (fd, times) => s.futimens(fd, times),
      fsync: (fd) => s.fsync(fd),
      close: (fd) => s.close(fd),
      link,
      rename: (dir, from, to) => s.renameat(dir, from, dir, to),
      unlink: (dir, path) => s.unlinkat(dir, path, 0),
      errno,
      O_TMPFILE_WRONLY: 0o20000000 | directory | 0o1 | O_CLOEXEC,
      O_PATH_DIRECTORY: 0o10000000 | directory | O_CLOEXEC,
      O_READ_NOFOLLOW: noFollow | O_NONBLOCK | O_CLOEXEC,
    };
  } catch {
    // No glibc by that name (musl, say), or FFI refused: node:fs it is.
    return undefined;
  }
}

let loaded: Libc | undefined | null = null;

/**
 * The C library's calls, or undefined where they are not to be had (another
 * system, no glibc, no `--allow-ffi`, or `FERRY_LIBC=off`). Opened at the
 * first call (3 ms, which a command that writes no tree does not pay).
 *
 * @example
 * ```ts
 * import { ERRNO, libc } from "./libc.ts";
 * const c = libc();
 * if (c) console.assert(c.close(-1) === -1 && c.errno() === ERRNO.EBADF);
 * ```
 */
export function libc(): Libc | undefined {
  if (loaded !== null) return loaded;
  try {
    if (Deno.env.get("FERRY_LIBC") === "off") return loaded = undefined;
  } catch {
    // No --allow-env: the default.
  }
  return loaded = load();
}

const encoder = new TextEncoder();

/** Buffers {@linkcode cString} encodes into, one per slot, grown as needed. */
const slots: Uint8Array[] = [];

/**
 * {@linkcode cString}'s buffers, one per name a step holds at once: a
 * whole file's directory, final and temporary names, a tree's file read,
 * and a path looked up (`exists`, free space). All in one place, so that no
 * two callers share one by accident.
 */
export const SLOT = { DIR: 0, FINAL: 1, TEMP: 2, READ: 3, LOOKUP: 4 } as const;

/**
 * The C library's calls and `path` in slot `slot`, ready for a call; or
 * undefined where the calls are not at hand (or `path` holds a NUL).
 *
 * @example
 * ```ts
 * import { libcPath, SLOT } from "./libc.ts";
 * const at = libcPath("/", SLOT.LOOKUP);
 * if (at) console.assert(at.c.exists(at.path));
 * ```
 */
export function libcPath(path: string, slot: number): { c: Libc; path: Uint8Array } | undefined {
  const c = libc();
  const encoded = c && cString(path, slot);
  return encoded && { c: c!, path: encoded };
}

/**
 * `text` as NUL-terminated UTF-8 in the reusable buffer `slot` (valid until
 * the next call for that slot), or undefined when it holds a NUL of its own.
 * For names passed straight to a call: no allocation, and plain ASCII is
 * copied without the encoder.
 *
 * @example
 * ```ts
 * import { cString } from "./libc.ts";
 * const c = cString("ab", 0)!;
 * console.assert(c[0] === 97 && c[1] === 98 && c[2] === 0);
 * console.assert(cString("é", 1)![2] === 0 && cString("a\0", 1) === undefined);
 * ```
 */
export function cString(text: string, slot: number): Uint8Array | undefined {
  let out = slots[slot];
  if (out === undefined || out.length < text.length * 3 + 1) {
    out = slots[slot] = new Uint8Array(Math.max(256, text.length * 3 + 1));
  }
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 0) return undefined;
    if (code >= 0x80) {
      if (text.includes("\0", i)) return undefined;
      const { written } = encoder.encodeInto(text, out);
      out[written] = 0;
      return out;
    }
    out[i] = code;
  }
  out[text.length] = 0;
  return out;
}

/** `path` as NUL-terminated UTF-8 in a buffer of its own (to be kept). */
function cPath(path: string): Uint8Array {
  const out = new Uint8Array(path.length * 3 + 1);
  const { written } = encoder.encodeInto(path, out);
  out[written] = 0;
  return out;
}
