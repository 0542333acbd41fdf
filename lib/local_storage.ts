/**
 * {@linkcode Storage} over a local directory, jailed to it: every path is
 * resolved through the filesystem and refused if it, or any symlink on the
 * way, lands outside the root.
 *
 * @module
 */

import { dirname, join, sep } from "node:path";
import { AtomicFile } from "./atomic_file.ts";
import type { Entry, EntryType } from "./commands.ts";
import { FerryError, toFerryError } from "./errors.ts";
import { escapeName, RESERVED_PREFIX } from "./path_jail.ts";
import type { ReadHandle, Storage, Upload } from "./storage.ts";

function entryType(info: Deno.FileInfo): EntryType {
  if (info.isSymlink) return "symlink";
  if (info.isDirectory) return "dir";
  return info.isFile ? "file" : "other";
}

function toEntry(name: string, info: Deno.FileInfo): Entry {
  return { name, type: entryType(info), size: info.size, mtime: info.mtime?.getTime() ?? 0 };
}

function notFound(path: string): FerryError {
  return new FerryError("NOT_FOUND", `not found: ${escapeName(path)}`);
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

  private constructor(root: string) {
    this.root = root;
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

  async *list(path: string): AsyncIterable<Entry> {
    const full = await this.#resolve(path);
    const info = await this.#stat(full, path);
    if (!info.isDirectory) {
      yield toEntry(path.split("/").pop() ?? path, info);
      return;
    }
    try {
      for await (const item of Deno.readDir(full)) {
        if (item.name.startsWith(RESERVED_PREFIX)) continue;
        const child = await Deno.lstat(join(full, item.name)).catch(() => undefined);
        if (child) yield toEntry(item.name, child);
      }
    } catch (err) {
      throw toFerryError(err, `cannot list ${escapeName(path)}`);
    }
  }

  async openRead(path: string): Promise<ReadHandle> {
    const full = await this.#resolve(path);
    let file: Deno.FsFile;
    try {
      file = await Deno.open(full, { read: true });
    } catch (err) {
      throw toFerryError(err, escapeName(path));
    }
    try {
      const info = await file.stat();
      if (!info.isFile) throw new FerryError("NOT_A_FILE", `not a file: ${escapeName(path)}`);
      return {
        size: info.size,
        mtime: info.mtime?.getTime() ?? 0,
        read: (buf) => file.read(buf),
        close: () => file.close(),
      };
    } catch (err) {
      file.close();
      throw toFerryError(err, escapeName(path));
    }
  }

  async createUpload(path: string, _size: number): Promise<Upload> {
    if (path === "") throw new FerryError("NOT_A_FILE", "cannot write to the root directory");
    const full = await this.#resolve(path);
    const existing = await Deno.stat(full).catch(() => undefined);
    if (existing?.isDirectory) {
      throw new FerryError("NOT_A_FILE", `is a directory: ${escapeName(path)}`);
    }
    await this.#makeParents(path);
    return await AtomicFile.create(full);
  }

  /**
   * Map a canonical path to a filesystem path inside the root. The deepest
   * existing ancestor is resolved with realPath, so a symlink in any
   * component that points outside the root is caught; a dangling symlink on
   * the way is refused, since writing through it could create a file outside.
   */
  async #resolve(path: string): Promise<string> {
    const full = path === "" ? this.root : join(this.root, path);
    let probe = full;
    for (;;) {
      try {
        const real = await Deno.realPath(probe);
        if (real !== this.root && !real.startsWith(this.root + sep)) {
          throw new FerryError(
            "PATH_REFUSED",
            `path refused: leaves the root: ${escapeName(path)}`,
          );
        }
        return full;
      } catch (err) {
        if (!(err instanceof Deno.errors.NotFound)) throw toFerryError(err, escapeName(path));
      }
      const link = await Deno.lstat(probe).catch(() => undefined);
      if (link?.isSymlink) {
        throw new FerryError("PATH_REFUSED", `path refused: dangling symlink: ${escapeName(path)}`);
      }
      if (probe === this.root) throw notFound(path);
      probe = dirname(probe);
    }
  }

  async #stat(full: string, path: string): Promise<Deno.FileInfo> {
    try {
      return await Deno.stat(full);
    } catch (err) {
      throw err instanceof Deno.errors.NotFound ? notFound(path) : toFerryError(err, path);
    }
  }

  /** Create the missing directories above `path`, one checked component at a time. */
  async #makeParents(path: string): Promise<void> {
    const parts = path.split("/").slice(0, -1);
    let dir = this.root;
    for (const part of parts) {
      dir = join(dir, part);
      try {
        await Deno.mkdir(dir);
      } catch (err) {
        if (!(err instanceof Deno.errors.AlreadyExists)) throw toFerryError(err, escapeName(path));
        const info = await Deno.stat(dir);
        if (!info.isDirectory) {
          throw new FerryError("NOT_A_DIRECTORY", `not a directory: ${escapeName(path)}`);
        }
      }
    }
  }
}
