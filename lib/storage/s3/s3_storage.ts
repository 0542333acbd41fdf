/**
 * {@linkcode Storage} over an S3 bucket (AWS, Ceph radosgw, MinIO, R2...):
 * the same tree, the same guarantees, with the bytes in objects, so that
 * several ferryd instances can serve one bucket with no state of their own.
 *
 * A path `a/b.txt` is the object `PREFIX` + `a/b.txt`; a directory is a
 * key prefix ending in `/`, plus a marker object under exactly that key when
 * it was made empty or given a mode and mtime. Mode, mtime and checksums
 * ride in object metadata (see `s3_meta.ts`). Uploads are multipart under a
 * private temporary key and copied into place by the store (see
 * `s3_upload.ts`); kept partials are objects named as on disk.
 *
 * @module
 */

import type { Entry, ListOptions } from "../../commands.ts";
import { nameOf, notFound, parentOf } from "../paths.ts";
import { isTempName, partialFor, partialKeyOf, tempName } from "../../fs/temp_names.ts";
import { escapeName } from "../../util/display.ts";
import { FerryError } from "../../util/errors.ts";
import type {
  ReadHandle,
  Storage,
  TreeItem,
  Upload,
  UploadOptions,
  Usage,
  WholeOptions,
} from "../storage.ts";
import { addressable, S3Client, type S3Head, type S3Object } from "./s3_client.ts";
import type { S3Config } from "./s3_config.ts";
import { fileMeta, readMeta } from "./s3_meta.ts";
import { MAX_OBJECT, S3Upload } from "./s3_upload.ts";
import { mapOrdered, refusal, walkS3Tree } from "./s3_walk.ts";

/** S3's longest key, in bytes. */
const MAX_KEY = 1024;

/** Requests at once when a listing needs one per object. */
const CONCURRENCY = 16;

/**
 * Small files a tree walk fetches at once, ahead of the reader. Each is one
 * GET that waits mostly on the store: 2,000 files of 4 KiB from radosgw
 * took 3.3-4.3 s at 16, 2.6-2.9 s at 32, 2.5-2.7 s at 64 and 2.2-2.6 s at
 * 96 (alternating, one run). At most 64 inline-sized files are held.
 */
const TREE_READ_AHEAD = 64;

/**
 * Small files stored at once. Ceph's radosgw here answered 4 concurrent PUTs
 * of 4 KiB in 5.3 ms each and 16 in 11.4 ms: more only queue in the store.
 */
const PARALLEL_WRITES = 8;

/** Every ancestor of `path`, nearest the root first (`a`, `a/b` for `a/b/c`). */
function ancestors(path: string): string[] {
  const parts = path.split("/");
  return parts.slice(0, -1).map((_, i) => parts.slice(0, i + 1).join("/"));
}

/**
 * Files in an S3 bucket, behind the storage interface.
 *
 * @example
 * ```ts ignore
 * import { S3Storage } from "./s3_storage.ts";
 * import { s3Config } from "./s3_config.ts";
 * const storage = await S3Storage.open(s3Config({ store: "s3://artifacts/ci" }, Deno.env.toObject()));
 * for await (const entry of storage.list("")) console.log(entry.name);
 * ```
 */
export class S3Storage implements Storage {
  readonly #s3: S3Client;
  readonly #prefix: string;
  /** Temporary keys of this process's uploads in progress: the sweep leaves them be. */
  readonly #active = new Set<string>();

  private constructor(config: S3Config) {
    this.#s3 = new S3Client(config);
    this.#prefix = config.prefix;
  }

  /**
   * The bucket of `config`, once it answers a listing: a wrong endpoint,
   * wrong credentials or a missing bucket fail here, with a message that
   * says which.
   */
  static async open(config: S3Config): Promise<S3Storage> {
    const storage = new S3Storage(config);
    await storage.#s3.list({ prefix: config.prefix, delimiter: "/", max: 1 });
    return storage;
  }

  /** Each PUT waits on the store: a tree's small files go several at once. */
  readonly parallelWrites = PARALLEL_WRITES;

  /** `s3://bucket/prefix`. */
  get location(): string {
    return this.#s3.location;
  }

  #key(path: string): string {
    return this.#prefix + path;
  }

  /** The key prefix of what the directory `path` holds (its marker's key too). */
  #dir(path: string): string {
    return path === "" ? this.#prefix : `${this.#prefix}${path}/`;
  }

  /** Whether the directory `path` exists: a marker, or anything below it. */
  async #isDir(path: string): Promise<boolean> {
    if (path === "") return true;
    const page = await this.#s3.list({ prefix: this.#dir(path), max: 1 });
    return page.objects.length > 0 || page.prefixes.length > 0;
  }

  /** The file at `path`, if there is one. */
  #file(path: string): Promise<S3Head | undefined> {
    return path === "" ? Promise.resolve(undefined) : this.#s3.head(this.#key(path));
  }

  /** What is at `path`: a file (with its HEAD), a directory, or nothing. */
  async #kind(path: string): Promise<{ file?: S3Head; dir: boolean }> {
    const [file, dir] = await Promise.all([this.#file(path), this.#isDir(path)]);
    return { file, dir };
  }

  /** Refuse a path whose ancestors include a file: it cannot be under one. */
  async #checkAncestors(path: string): Promise<void> {
    const heads = await Promise.all(ancestors(path).map((a) => this.#file(a).then((h) => [a, h])));
    const file = heads.find(([, h]) => h !== undefined);
    if (file) {
      throw new FerryError("NOT_A_DIRECTORY", `not a directory: ${escapeName(file[0] as string)}`);
    }
  }

  #fileEntry(name: string, head: S3Head): Entry {
    const { mode, mtime } = readMeta(head.meta, head.lastModified);
    return { name, type: "file", size: head.size, mtime, mode };
  }

  async #dirEntry(name: string, path: string): Promise<Entry> {
    const marker = path === "" ? undefined : await this.#s3.head(this.#dir(path));
    const { mode, mtime } = marker
      ? readMeta(marker.meta, marker.lastModified, true)
      : { mode: 0o755, mtime: 0 };
    return { name, type: "dir", size: 0, mtime, mode };
  }

  async *list(path: string, options: ListOptions = {}): AsyncIterable<Entry> {
    const { file, dir } = await this.#kind(path);
    if (!dir) {
      if (!file) throw notFound(path);
      yield this.#fileEntry(nameOf(path), file);
      return;
    }
    const base = this.#dir(path);
    const s3 = this.#s3;
    const made = new Set<string>();
    // Every key below, as the entries it implies: directories first (made once each).
    async function* entries(): AsyncIterable<{ rel: string; object?: S3Object; dir?: boolean }> {
      if (options.recursive) {
        for await (const object of s3.listAll(base)) {
          const rel = object.key.slice(base.length);
          const isMarker = rel.endsWith("/");
          const parts = (isMarker ? rel.slice(0, -1) : rel).split("/");
          for (let i = 1; i <= parts.length - (isMarker ? 0 : 1); i++) {
            const d = parts.slice(0, i).join("/");
            if (d !== "" && !made.has(d)) {
              made.add(d);
              yield { rel: d, dir: true };
            }
          }
          if (!isMarker) yield { rel, object };
        }
        return;
      }
      let token: string | undefined;
      do {
        const page = await s3.list({ prefix: base, delimiter: "/", token });
        for (const p of page.prefixes) yield { rel: p.slice(base.length, -1), dir: true };
        for (const object of page.objects) {
          if (object.key !== base) yield { rel: object.key.slice(base.length), object };
        }
        token = page.next;
      } while (token);
    }
    async function* accepted() {
      for await (const item of entries()) {
        const why = refusal(item.rel);
        if (why === "reserved") options.onReserved?.(item.rel);
        if (why === undefined) yield item;
      }
    }
    // Each object's mode and mtime are in its metadata: a HEAD each, several at once.
    yield* mapOrdered(accepted(), CONCURRENCY, async (item) => {
      const full = path === "" ? item.rel : `${path}/${item.rel}`;
      if (item.dir) return await this.#dirEntry(item.rel, full);
      const head = await this.#s3.head(item.object!.key);
      return head
        ? this.#fileEntry(item.rel, head)
        : { name: item.rel, type: "file" as const, size: item.object!.size, mtime: 0, mode: 0 };
    });
  }

  async stat(path: string): Promise<Entry> {
    if (path === "") return { name: ".", type: "dir", size: 0, mtime: 0, mode: 0o755 };
    const { file, dir } = await this.#kind(path);
    if (dir) return await this.#dirEntry(nameOf(path), path);
    if (file) return this.#fileEntry(nameOf(path), file);
    throw notFound(path);
  }

  async openRead(path: string): Promise<ReadHandle> {
    const head = await this.#file(path);
    if (!head) {
      if (await this.#isDir(path)) {
        throw new FerryError("NOT_A_FILE", `not a file: ${escapeName(path)}`);
      }
      throw notFound(path);
    }
    return this.#handle(path, head);
  }

  /** A handle on the object at `path` as `head` saw it; bytes fetched at the first read. */
  #handle(path: string, head: S3Head): ReadHandle {
    const { mode, mtime, checksums } = readMeta(head.meta, head.lastModified);
    const s3 = this.#s3;
    const key = this.#key(path);
    let at = 0;
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    let rest: Uint8Array = new Uint8Array(0);
    return {
      size: head.size,
      mtime,
      mode,
      version: head.etag ? `${head.etag}:${head.size}` : undefined,
      checksums,
      read: async (buf) => {
        if (at >= head.size) return buf.length === 0 ? 0 : null;
        if (rest.length === 0) {
          // The same version throughout: a replaced object fails the read (If-Match).
          reader ??= (await s3.get(key, { start: at, etag: head.etag, what: escapeName(path) }))
            .body!.getReader();
          const { value, done } = await reader.read();
          if (done) {
            throw new FerryError("INTEGRITY", `${escapeName(path)} ended early in the bucket`);
          }
          rest = value;
        }
        const n = Math.min(buf.length, rest.length);
        buf.set(rest.subarray(0, n));
        rest = rest.subarray(n);
        at += n;
        return n;
      },
      skip: (bytes) => {
        at += bytes;
        rest = new Uint8Array(0);
        reader?.cancel().catch(() => {});
        reader = undefined;
      },
      close: () => {
        reader?.cancel().catch(() => {});
        reader = undefined;
      },
    };
  }

  async createUpload(path: string, options: UploadOptions): Promise<Upload> {
    if (path === "") throw new FerryError("NOT_A_FILE", "cannot write to the root directory");
    this.#checkLength(path);
    if (options.size !== undefined && options.size > MAX_OBJECT) {
      throw new FerryError(
        "LIMIT",
        `${escapeName(path)} is ${options.size} bytes: over the object store's limit of 5 TiB`,
      );
    }
    const parent = parentOf(path);
    const [{ file, dir }, parentIsDir] = await Promise.all([
      this.#kind(path),
      this.#isDir(parent),
      this.#checkAncestors(path),
    ]);
    if (dir) throw new FerryError("NOT_A_FILE", `is a directory: ${escapeName(path)}`);
    if (file && options.noClobber) {
      throw new FerryError("EXISTS", `already exists: ${escapeName(path)}`);
    }
    // Its directory is there from now on, as on disk, whatever becomes of the upload.
    if (!parentIsDir) await this.mkdir(parent, { parents: true });
    const { size } = options;
    const partial = options.resume && size !== undefined
      ? partialFor(path, size, options.mtime)
      : undefined;
    const offset = partial !== undefined ? options.offset ?? 0 : 0;
    let keptEtag: string | undefined;
    if (partial !== undefined && offset > 0) {
      const kept = await this.#s3.head(this.#key(partial));
      if (!kept || kept.size < offset) {
        throw new FerryError(
          "RESUME_MISMATCH",
          `cannot resume ${escapeName(nameOf(path))} at byte ${offset}: only ${
            kept?.size ?? 0
          } are here`,
        );
      }
      keptEtag = kept.etag;
    }
    const temp = parent === "" ? tempName() : `${parent}/${tempName()}`;
    return await S3Upload.start({
      s3: this.#s3,
      key: this.#key(path),
      tempKey: this.#key(temp),
      partialKey: partial !== undefined ? this.#key(partial) : undefined,
      partial,
      offset,
      keptEtag,
      size,
      mode: options.mode,
      mtime: options.mtime,
      noClobber: options.noClobber,
      path,
      active: this.#active,
      parentExists: () => this.#isDir(parent),
    });
  }

  /**
   * Refuse a path whose key, or the keys of its temporary and partial
   * objects beside it, would pass S3's 1,024 bytes, before any byte moves.
   */
  #checkLength(path: string): void {
    const bytes = (text: string) => new TextEncoder().encode(text).length;
    const key = this.#key(path);
    const beside = bytes(this.#key(parentOf(path))) + 1 + bytes(partialFor("x", 0, 0));
    if (Math.max(bytes(key), beside) > MAX_KEY) {
      throw new FerryError(
        "LIMIT",
        `path too long for the object store (a key holds at most ${MAX_KEY} bytes): ` +
          escapeName(path),
      );
    }
  }

  async writeWhole(path: string, content: Uint8Array, options: WholeOptions): Promise<void> {
    this.#checkLength(path);
    // A tree's files come by the thousand: a directory here is told by its marker (a HEAD, which
    // the store answers several at once) rather than by a listing (which it answers one at a
    // time). Every directory ferry makes has one; createUpload looks with a listing.
    // In a directory made a moment ago no directory can stand at the name: no look needed.
    // Its directories are made as on disk (with markers: they outlive the file), unless the
    // caller made them a moment ago; a file in their way refuses it.
    const [marker] = await Promise.all([
      options.parentFresh ? undefined : this.#s3.head(this.#dir(path)),
      options.parentMade ? undefined : this.mkdir(parentOf(path), { parents: true }),
    ]);
    if (marker) throw new FerryError("NOT_A_FILE", `is a directory: ${escapeName(path)}`);
    await this.#s3.put(this.#key(path), content, {
      meta: fileMeta({ mode: options.mode, mtime: options.mtime, checksums: options.checksums }),
      noClobber: options.noClobber,
      what: escapeName(path),
    });
  }

  async setStat(path: string, options: { mode?: number; mtime?: number }): Promise<void> {
    await this.#s3.put(this.#dir(path), new Uint8Array(0), {
      meta: fileMeta({ ...options, dir: true }),
    });
  }

  async partialSize(path: string, options: { size: number; mtime?: number }): Promise<number> {
    this.#checkLength(path);
    const kept = await this.#s3.head(this.#key(partialFor(path, options.size, options.mtime)));
    return kept && kept.size <= options.size ? kept.size : 0;
  }

  /**
   * The kept partial's first `bytes`, read at the version seen now (a kept
   * partial is one object, replaced whole if ever): a resume checks them
   * before anything is copied, so a mismatch leaves the partial as it was.
   */
  async readPartial(
    path: string,
    options: { size: number; mtime?: number; bytes: number },
  ): Promise<{ read(buf: Uint8Array): Promise<number | null>; close(): void }> {
    this.#checkLength(path);
    const key = this.#key(partialFor(path, options.size, options.mtime));
    const kept = await this.#s3.head(key);
    const held = kept && kept.size <= options.size ? kept.size : 0;
    if (held < options.bytes || !kept) {
      throw new FerryError(
        "RESUME_MISMATCH",
        `cannot resume ${escapeName(path)} at byte ${options.bytes}: only ${held} are here`,
      );
    }
    return this.#s3.readPrefix(key, options.bytes, {
      etag: kept.etag,
      what: escapeName(path),
      short: () => new FerryError("RESUME_MISMATCH", `the partial of ${escapeName(path)} changed`),
    });
  }

  async sweep(maxAgeMs: number): Promise<number> {
    const before = Date.now() - maxAgeMs;
    const stale: string[] = [];
    for await (const object of this.#s3.listAll(this.#prefix)) {
      const stray = isTempName(nameOf(object.key)) && !this.#active.has(object.key);
      if (stray && object.lastModified < before) stale.push(object.key);
    }
    await this.#s3.deleteMany(stale);
    let aborted = 0;
    for await (const upload of this.#s3.listMultipart(this.#prefix)) {
      const { key, uploadId, initiated } = upload;
      // Another process's upload that still sends parts is not stale, however long it runs.
      if (initiated >= before || !isTempName(nameOf(key)) || this.#active.has(key)) continue;
      if (!addressable(key) || await this.#s3.lastActivity(key, uploadId, initiated) >= before) {
        continue;
      }
      if (await this.#s3.abortMultipart(key, uploadId)) aborted++;
    }
    return stale.length + aborted;
  }

  async usage(path: string): Promise<Usage> {
    const usage: Usage = { files: 0, partials: new Map() };
    const file = await this.#file(path);
    if (file) usage.files += file.size;
    for await (const object of this.#s3.listAll(this.#dir(path))) {
      const name = nameOf(object.key);
      if (partialKeyOf(name) !== undefined) {
        usage.partials.set(object.key.slice(this.#prefix.length), object.size);
      } else if (!object.key.endsWith("/") && !isTempName(name)) usage.files += object.size;
    }
    return usage;
  }

  async mkdir(path: string, options: { parents?: boolean } = {}): Promise<boolean> {
    if (path === "") {
      if (options.parents) return false;
      throw new FerryError("EXISTS", "already exists: the root directory");
    }
    this.#checkLength(`${path}/x`);
    const parent = parentOf(path);
    const [{ file, dir }, parentIsDir] = await Promise.all([
      this.#kind(path),
      options.parents ? Promise.resolve(true) : this.#isDir(parent),
      options.parents ? this.#checkAncestors(path) : Promise.resolve(),
    ]);
    if (dir && options.parents) return false;
    if (file && options.parents) {
      throw new FerryError("NOT_A_DIRECTORY", `not a directory: ${escapeName(path)}`);
    }
    if (dir || file) throw new FerryError("EXISTS", `already exists: ${escapeName(path)}`);
    if (!parentIsDir) {
      if (await this.#file(parent)) {
        throw new FerryError("NOT_A_DIRECTORY", `not a directory: ${escapeName(parent)}`);
      }
      throw notFound(parent);
    }
    // Every directory made gets its marker, its parents' too: removing one never takes away
    // another that was made (on disk, `rm -r a/b/c` leaves `a/b`).
    const missing = options.parents
      ? (await Promise.all(
        ancestors(path).map(async (a) => (await this.#s3.head(this.#dir(a))) ? [] : [a]),
      )).flat()
      : [];
    for (const dirPath of [...missing, path]) {
      await this.#s3.put(this.#dir(dirPath), new Uint8Array(0), { meta: fileMeta({ dir: true }) });
    }
    // No marker and no key below it a moment ago: it is new, and empty.
    return true;
  }

  async remove(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    if (path === "") {
      throw new FerryError("PATH_REFUSED", "path refused: cannot remove the root directory");
    }
    const { file, dir } = await this.#kind(path);
    if (dir) {
      const base = this.#dir(path);
      const keys: string[] = [];
      for await (const object of this.#s3.listAll(base)) {
        const rel = object.key.slice(base.length);
        // Its own marker and ferry's leftovers beside its files do not make it "not empty".
        const own = rel === "" || (!rel.includes("/") && isTempName(rel));
        if (!own && !options.recursive) {
          throw new FerryError("EXISTS", `directory not empty: ${escapeName(path)} (use rm -r)`);
        }
        keys.push(object.key);
      }
      await this.#s3.deleteMany(keys);
      return;
    }
    if (!file) throw notFound(path);
    await this.#s3.delete(this.#key(path));
  }

  async move(from: string, to: string): Promise<string> {
    if (from === "" || to === "") {
      throw new FerryError("PATH_REFUSED", "path refused: cannot move the root directory");
    }
    const [source, there] = await Promise.all([this.#kind(from), this.#kind(to)]);
    if (!source.dir && !source.file) throw notFound(from);
    const target = there.dir ? `${to}/${nameOf(from)}` : to;
    if (target === from) return target;
    if (target.startsWith(`${from}/`)) {
      throw new FerryError("PATH_REFUSED", `cannot move ${escapeName(from)} into itself`);
    }
    const parent = parentOf(target);
    const [at, parentIsDir] = await Promise.all([
      target === to ? Promise.resolve(there) : this.#kind(target),
      this.#isDir(parent),
    ]);
    if (!parentIsDir) {
      if (await this.#file(parent)) {
        throw new FerryError("NOT_A_DIRECTORY", `not a directory: ${escapeName(parent)}`);
      }
      throw notFound(parent);
    }
    if (source.dir && at.file) {
      throw new FerryError(
        "NOT_A_DIRECTORY",
        `cannot move ${escapeName(from)}: ${escapeName(target)} is not a directory`,
      );
    }
    if (at.dir && (!source.dir || !(await this.#emptyDir(target)))) {
      throw new FerryError(
        "EXISTS",
        `cannot move ${escapeName(from)}: ${escapeName(target)} is a directory`,
      );
    }
    if (!source.dir) {
      await this.#s3.copy(this.#key(from), this.#key(target), {
        size: source.file!.size,
        ifMatch: source.file!.etag,
      });
      await this.#deleteIfSame(this.#key(from), source.file!.etag);
      return target;
    }
    // A directory is every object under it, its kept partials too: copied, then deleted.
    const base = this.#dir(from), dest = this.#dir(target);
    const objects = await Array.fromAsync(this.#s3.listAll(base));
    const stray = objects.find((o) => !addressable(o.key));
    if (stray) {
      throw new FerryError(
        "PATH_REFUSED",
        `cannot move ${escapeName(from)}: it holds a key no path can name ` +
          `(${escapeName(stray.key.slice(this.#prefix.length))}); nothing was moved`,
      );
    }
    for await (
      const _ of mapOrdered(
        (async function* () {
          yield* objects;
        })(),
        CONCURRENCY,
        (o) =>
          this.#s3.copy(o.key, dest + o.key.slice(base.length), { size: o.size, ifMatch: o.etag }),
      )
    );
    await this.#s3.deleteMany(objects.map((o) => o.key));
    return target;
  }

  /**
   * Delete `key` unless it changed since it was copied (ETag `etag`): an
   * upload that replaced the source meanwhile stays. Stores without a
   * conditional DELETE (Ceph 16 ignores If-Match there) leave a moment
   * between this look and the delete.
   */
  async #deleteIfSame(key: string, etag: string): Promise<void> {
    const now = await this.#s3.head(key);
    if (now?.etag === etag) await this.#s3.delete(key);
  }

  /** Whether the directory `path` holds nothing but its marker. */
  async #emptyDir(path: string): Promise<boolean> {
    const base = this.#dir(path);
    const page = await this.#s3.list({ prefix: base, max: 2 });
    return page.objects.every((o) => o.key === base) && page.prefixes.length === 0;
  }

  async *readTree(path: string, options: { inlineMax: number }): AsyncIterable<TreeItem> {
    const { file, dir } = await this.#kind(path);
    if (!dir) {
      if (file) throw new FerryError("NOT_A_DIRECTORY", `not a directory: ${escapeName(path)}`);
      throw notFound(path);
    }
    yield* walkS3Tree(this.#s3, this.#dir(path), {
      inlineMax: options.inlineMax,
      width: TREE_READ_AHEAD,
    });
  }
}
