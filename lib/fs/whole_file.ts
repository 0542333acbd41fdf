/**
 * A small file whose whole content is in hand, written atomically in one
 * synchronous step: a temporary file beside its name, created with
 * `O_EXCL | O_NOFOLLOW`, the content, its mode and mtime set on the open
 * file, then a rename (or a hard link where nothing may be replaced). What a
 * tree stream does for each of its files, on the client's disk and on the
 * server's alike. `node:fs` with numeric flags: its calls cost less than
 * Deno's own for this sequence (docs/performance.md).
 *
 * @module
 */

import {
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
} from "node:fs";

const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

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
 * elsewhere), via the temporary `tempName`. Returns `exists` when
 * `noClobber` found the name taken, and nothing once the file is in place;
 * throws the error of a failed call, leaving no temporary file.
 *
 * @example
 * ```ts
 * import { writeWholeFile } from "./whole_file.ts";
 * const dir = Deno.makeTempDirSync();
 * const at = (name: string) => `${dir}/${name}`;
 * const content = new TextEncoder().encode("hello");
 * writeWholeFile(at, "a.txt", ".ferry-0.part", content, { mode: 0o640, mtime: 0 });
 * console.assert(Deno.readTextFileSync(at("a.txt")) === "hello");
 * ```
 */
export function writeWholeFile(
  at: (name: string) => string,
  name: string,
  tempName: string,
  content: Uint8Array,
  options: WholeFileOptions,
): "exists" | undefined {
  const temp = at(tempName);
  let fd: number | undefined;
  try {
    fd = openSync(temp, CREATE, 0o600);
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
      unlinkSync(temp);
    }
    return undefined;
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(temp);
    } catch {
      // Never made, or gone already.
    }
    throw err;
  }
}
