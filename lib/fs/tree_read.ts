/**
 * A directory tree read as one walk, for a tree sent as one stream: each
 * directory is listed while it is held (see `pinnedDirectory`; a client's
 * own tree uses a plain one), and each small file is opened there by name,
 * checked to be the regular file that was listed, and read whole on the
 * spot. No path is resolved per file, which is what a request per file
 * cost.
 *
 * @module
 */

import { isTempName } from "./temp_names.ts";
import { AT_FDCWD, type FileStat, type Libc, libcPath, SLOT } from "./libc.ts";
import { nodeFs } from "../util/node_builtins.ts";
import type { Directory } from "./directory.ts";
import { RESERVED_PREFIX } from "../util/path_jail.ts";
import { escapeName } from "../util/display.ts";
import { changedWhileSent, FerryError, toFerryError } from "../util/errors.ts";
import { fileStatOf, sameVersion } from "./local_files.ts";
import type { TreeItem } from "../storage/storage.ts";

/** What a walk needs from its storage: where the tree is, and how to hold a directory. */
export interface TreeSource {
  /** The walked directory's real path (free of symlinks). */
  real: string;
  /** The walked directory as the client named it, for messages. */
  display: string;
  /** Hold the directory at `real` (a real path), named `display` in messages. */
  pin(real: string, display: string): Directory;
  /** Report ferry's temporary files as reserved names too (a client's own tree), not skip them. */
  reportTemp?: boolean;
  /** How an entry is named in a message, by its path in the tree (default: the path itself). */
  named?: (path: string) => string;
}

/** Entries lstat'ed in one step. */
const LSTAT_CHUNK = 256;

/**
 * `lstat` of `path`: by the C library's `statx` where it is at hand (half
 * the cost of Deno's, which makes four `Date`s), else, and to report a
 * failure, Deno's.
 */
function lstatOf(path: string): FileStat {
  const at = libcPath(path, SLOT.READ);
  return at?.c.lstat(at.path) ?? fileStatOf(Deno.lstatSync(path));
}

/**
 * Walk the tree at `source.real` (see `Storage.readTree`). Directories come
 * before what they hold, in name order within each directory.
 */
export async function* readLocalTree(
  source: TreeSource,
  inlineMax: number,
): AsyncGenerator<TreeItem> {
  const { real, display } = source;
  const named = source.named ?? escapeName;
  const top = fileStatOf(source.pin(real, display).run((at) => Deno.statSync(at("."))));
  if (!top.isDirectory) {
    throw new FerryError("NOT_A_DIRECTORY", `not a directory: ${escapeName(display)}`);
  }
  yield { kind: "dir", path: "", mode: top.mode, mtime: top.mtime };
  const pending = [""];
  while (pending.length > 0) {
    const rel = pending.pop()!;
    const shown = (name: string) => rel === "" ? name : `${rel}/${name}`;
    const dir = source.pin(rel === "" ? real : `${real}/${rel}`, joinShown(display, rel));
    let names: string[];
    try {
      names = dir.run((at) => Array.from(Deno.readDirSync(at(".")), (e) => e.name));
    } catch (err) {
      if (rel === "") throw toFerryError(err, named(display));
      yield { kind: "skip", path: rel, error: toFerryError(err, named(rel)) };
      continue;
    }
    names.sort();
    const subdirs: string[] = [];
    for (let chunk = 0; chunk < names.length; chunk += LSTAT_CHUNK) {
      // A chunk of entries lstat'ed in one step in the held directory; only a chunk's worth of
      // FileInfo is held at a time, however large the directory.
      let entries: { name: string; info?: FileStat; error?: unknown }[];
      try {
        entries = dir.run((at) =>
          names.slice(chunk, chunk + LSTAT_CHUNK).map((name) => {
            if (name.startsWith(RESERVED_PREFIX)) return { name };
            try {
              return { name, info: lstatOf(at(name)) };
            } catch (error) {
              return { name, error };
            }
          })
        );
      } catch (err) {
        // The directory moved or went away under the walk: the rest of it is not sent.
        yield { kind: "skip", path: rel, error: toFerryError(err, named(rel || display)) };
        break;
      }
      for (const { name, info, error } of entries) {
        const path = shown(name);
        if (!info) {
          // ferryd's own files in progress are nobody's business; other reserved names are reported.
          if (error) yield { kind: "skip", path, error: toFerryError(error, named(path)) };
          else if (source.reportTemp || !isTempName(name)) {
            yield { kind: "skip", path, skipped: "reserved name" };
          }
          continue;
        }
        if (info.isDirectory) {
          yield { kind: "dir", path, mode: info.mode, mtime: info.mtime };
          subdirs.push(path);
        } else if (!info.isFile) {
          yield { kind: "skip", path, skipped: info.isSymlink ? "symlink" : "other" };
        } else if (info.size > inlineMax) {
          yield { kind: "file", path, size: info.size, mode: info.mode, mtime: info.mtime };
        } else {
          let file: OpenFile;
          try {
            // Opened by bare name in the held directory, never following a symlink, and without
            // waiting: a FIFO swapped in after the lstat must not block the whole server.
            // A directory moved during the open is refused, and the file opened closed again.
            file = dir.run((at) => openToRead(at(name)), (opened) => opened.close());
          } catch (err) {
            yield { kind: "skip", path, error: toFerryError(err, named(path)) };
            continue;
          }
          try {
            // The open file as it is now (fstat), or, through node:fs, the name looked up again.
            // (The name by the same call as the listing: Deno's ctime is whole seconds, statx's not.)
            const again = () => file.stat() ?? dir.run((at) => lstatOf(at(name)));
            yield {
              kind: "file",
              path,
              size: info.size,
              mode: info.mode,
              mtime: info.mtime,
              read: (into) => readWhole(file, info, into, path, again),
            };
          } finally {
            file.close();
          }
        }
      }
    }
    // Popped last first: pushed in reverse, the walk goes on in name order.
    for (let i = subdirs.length - 1; i >= 0; i--) pending.push(subdirs[i]);
  }
}

function joinShown(display: string, rel: string): string {
  if (rel === "") return display;
  return display === "" ? rel : `${display}/${rel}`;
}

/** A file open to be read whole, by the C library's calls or by node:fs's. */
interface OpenFile {
  /** `read(2)` into `into` from where the last read ended: bytes read, 0 at the end. */
  read(into: Uint8Array, at: number, length: number): number;
  /** What the open file is now, where the C library can tell (`fstat`); else undefined. */
  stat(): FileStat | undefined;
  close(): void;
}

/**
 * Open `path` read-only, never through a symlink, never waiting for a
 * FIFO's writer: through the C library where it is at hand (Node's layer,
 * which `node:fs` loads, costs a command's start 30-40 ms), else, and to
 * report any failure, through `node:fs`.
 */
function openToRead(path: string): OpenFile {
  const at = libcPath(path, SLOT.READ);
  const opened = at ? at.c.openat(AT_FDCWD, at.path, at.c.O_READ_NOFOLLOW, 0) : -1;
  if (opened >= 0) return libcFile(at!.c, opened);
  const fs = nodeFs();
  const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK } = fs.constants;
  const fd = fs.openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK);
  return {
    read: (into, at, length) => fs.readSync(fd, into, at, length, null),
    // node:fs's fstatSync costs ten times Deno's lstat by name: the name is looked up instead.
    stat: () => undefined,
    close: () => fs.closeSync(fd),
  };
}

function libcFile(c: Libc, fd: number): OpenFile {
  return {
    read(into, at, length) {
      const n = c.read(fd, into.subarray(at, at + length), length);
      if (n < 0) throw new Error(`read failed (errno ${c.errno()})`);
      return n;
    },
    stat: () => c.fstat(fd),
    close: () => void c.close(fd),
  };
}

/** A byte to see that a file ends where it should. */
const probe = new Uint8Array(1);

/**
 * Read all of the open `file` (as `info` described it, when listed)
 * into `into`; INTEGRITY if it is not that file, or changed meanwhile:
 * shorter or longer than listed (a FIFO swapped in reads as empty), or, as
 * `again` tells after the read (the open file's `fstat`, else its name
 * looked up again), another inode, size or times.
 */
function readWhole(
  file: OpenFile,
  info: FileStat,
  into: Uint8Array,
  path: string,
  again: () => FileStat,
): void {
  let at = 0;
  try {
    while (at < into.length) {
      const n = file.read(into, at, into.length - at);
      if (n === 0) throw changedWhileSent(escapeName(path));
      at += n;
    }
    if (file.read(probe, 0, 1) !== 0) throw changedWhileSent(escapeName(path));
  } catch (err) {
    if (err instanceof FerryError) throw err;
    throw changedWhileSent(escapeName(path));
  }
  let now: FileStat;
  try {
    now = again();
  } catch {
    // Its name gone (node:fs's way looks the name up): what was read cannot be vouched for.
    throw changedWhileSent(escapeName(path));
  }
  if (!sameVersion(info, now)) throw changedWhileSent(escapeName(path));
}
