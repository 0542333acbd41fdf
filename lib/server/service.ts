/**
 * What ferryd's operations mean, whichever protocol asks for them: list,
 * stat, sum, make a directory, remove, move, send a file, take one in. Each
 * takes a {@linkcode Principal} and enforces, once for every face, the
 * path jail, the token's scope, `--read-only`, `--max-file-size`, resume
 * points, the checksum cache and the audit log. Quota is the storage's
 * (see `QuotaStorage`).
 *
 * @module
 */

import {
  type Algorithm,
  checkResumePoint,
  type Digest,
  hashBytes,
  type Hasher,
  hashPrefix,
  hashSource,
  loadAlgorithm,
  sameHex,
} from "../checksum/checksum.ts";
import { type Claim, Verifier } from "../checksum/verify.ts";
import type { Entry, GetRequest, ListOptions, PutRequest } from "../commands.ts";
import type { ReadHandle, Storage, TreeItem, Upload, WholeOptions } from "../storage/storage.ts";
import { walkTree } from "../storage/tree_walk.ts";
import { escapeName } from "../util/display.ts";
import { elapsed } from "../util/elapsed.ts";
import { connectionLost, FerryError, toFerryError } from "../util/errors.ts";
import { expandGlob } from "../util/glob.ts";
import { checkName, checkPattern, normalizePath } from "../util/path_jail.ts";
import type { ByteSource } from "../wire/body.ts";
import { type Action, allows, type Scope, scopeFor, type TokenTable } from "./auth.ts";
import { HashCache } from "./hash_cache.ts";

/** Who asks: what their token allows, and where they connect from (for the log). */
export interface Principal {
  /** What they may do: from their token, or everything when the server has no tokens. */
  readonly scope: Scope;
  /** Their address, as the log shows it. */
  readonly peer: string;
}

/** What a {@linkcode FerryService} serves, and how. */
export interface ServiceOptions {
  /** Where the files are. */
  storage: Storage;
  /** Where audit lines go. */
  log: (line: string) => void;
  /** Tokens to check; without them every client has the admin scope. */
  tokens?: TokenTable;
  /** How long a failed authentication waits before its answer (ms; default 1000). */
  authDelayMs?: number;
  /** Refuse every change, whatever the token. */
  readOnly?: boolean;
  /** Largest file an upload may hold, in bytes (LIMIT beyond it). */
  maxFileSize?: number;
  /** Make each stored file durable before reporting success. */
  fsync?: boolean;
}

/**
 * What {@linkcode FerryService.download} needs: the path as the client gave
 * it, and a resume point (see `GetRequest`), whichever face it came through.
 */
export type DownloadRequest = Omit<GetRequest, "op"> & {
  /** The checksum the content is vouched for with (the prefix's too). */
  algorithm: Algorithm;
  /**
   * Start this many bytes in, with no resume point to check (an HTTP range):
   * what is sent is then a part, vouched for by nothing.
   */
  start?: number;
};

/** A file on its way out: its metadata, its content from the offset on, what is known of it. */
export interface OutgoingFile {
  readonly size: number;
  readonly mtime: number;
  readonly mode: number;
  /** Where the content starts: the offset asked for. */
  readonly offset: number;
  /** The content from the offset on; it checks at the end that the file did not change. */
  readonly source: ByteSource;
  /** The whole content's checksum, where it is remembered: the sender need not compute it. */
  readonly known: Digest | undefined;
  /** A running checksum of the first `offset` bytes, for the sender to go on with. */
  readonly prefix: Hasher | undefined;
  /**
   * Sent, vouched for with `digest` when whole (then remembered); logged,
   * with `bytes` when only part of it went (a range).
   */
  sent(digest?: Digest, bytes?: number): void;
  /** It failed: logged. */
  failed(err: unknown): void;
  /** Release the file. */
  close(): void;
}

/**
 * What {@linkcode FerryService.upload} needs: what the client says of the
 * file it sends (see `PutRequest`), whichever face it came through.
 */
export type UploadRequest = Omit<PutRequest, "op"> & {
  /** The checksum the content is vouched for with (the prefix's too). */
  algorithm: Algorithm;
  /**
   * For a client that cannot hash its prefix (a browser): instead of
   * `prefix`, the last `overlap.length` bytes before `offset` as the client
   * holds them, compared byte for byte with the kept ones.
   */
  overlap?: Uint8Array;
};

/**
 * A file on its way in: feed it the content, then the sender's claim at the
 * end, which stores it; or say it failed.
 */
export interface IncomingFile {
  /** Bytes of the file so far, those a resumed upload continues after included. */
  readonly received: number;
  /** Where the content continues: the offset asked for. */
  readonly offset: number;
  /** The next chunk (valid during the call only). */
  write(chunk: Uint8Array): void | Promise<void>;
  /**
   * The end: the size and checksum must be what the sender vouched for; then
   * the file appears under its name, whole. Returns the verified checksum.
   */
  end(claim: Claim): Promise<Digest>;
  /**
   * It failed: a lost connection keeps a resumable upload's bytes for the
   * client to continue; anything else drops them.
   */
  failed(err: unknown): Promise<void>;
}

/**
 * A tree on its way in (see {@linkcode FerryService.treeUpload}): its
 * directories and small files, by path relative to the tree, each stored
 * at once; a file's failure is thrown, and the caller goes on with the next.
 */
export interface IncomingTree {
  /**
   * Files to store at once (see `Storage.parallelWrites`): with more than
   * one, the caller hands each file its own copy of the content and
   * `meta.sum`, and waits for every file before the end.
   */
  readonly parallel: number;
  /** Make a directory of the tree; returns its path under the root. */
  dir(rel: string): Promise<string>;
  /**
   * Store a small file whole, after checking `meta.sum` (its checksum in
   * ASCII hex, in the connection's algorithm) against the content.
   */
  file(
    rel: string,
    content: Uint8Array,
    meta: { mode: number; mtime: number; sum: Uint8Array },
  ): Promise<void>;
  /** A file failed: logged. */
  failed(rel: string, err: unknown): void;
  /** The stream ended: logged. */
  end(): void;
}

/** Store a whole file through an upload: for a storage without `writeWhole`. */
async function writeByUpload(
  storage: Storage,
  path: string,
  content: Uint8Array,
  options: WholeOptions,
): Promise<void> {
  const upload = await storage.createUpload(path, { size: content.length, ...options });
  try {
    await upload.write(content);
    await upload.commit(options.checksums);
  } catch (err) {
    await upload.abort();
    throw err;
  }
}

/** The checksum stored with an open file's content, when its store keeps one. */
function stored(handle: ReadHandle, algorithm: Algorithm): Digest | undefined {
  const hex = handle.checksums?.[algorithm];
  return hex === undefined ? undefined : { algorithm, hex };
}

/** Bytes read at once when hashing on the server's side (a sum, a resume point). */
const HASH_BUFFER = 256 * 1024;

/**
 * ferryd's operations, for any face: each call checks who asks, acts on the
 * storage, and writes the audit log.
 *
 * @example
 * ```ts
 * import { LocalStorage } from "../storage/local/local_storage.ts";
 * import { FerryService } from "./service.ts";
 * const storage = await LocalStorage.open(await Deno.makeTempDir());
 * const service = new FerryService({ storage, log: () => {} });
 * const who = { scope: "read" as const, peer: "test" };
 * const err = await service.mkdir(who, "d", {}).catch((e) => e);
 * console.assert(err.code === "PERMISSION");
 * ```
 */
export class FerryService {
  readonly #storage: Storage;
  readonly #log: (line: string) => void;
  readonly #tokens: TokenTable | undefined;
  readonly #authDelayMs: number;
  readonly #readOnly: boolean;
  readonly #maxFileSize: number;
  readonly #fsync: boolean;
  readonly #hashes = new HashCache();
  #authFailures = 0;

  /** Serve `options.storage` as `options` say. */
  constructor(options: ServiceOptions) {
    this.#storage = options.storage;
    this.#log = options.log;
    this.#tokens = options.tokens;
    this.#authDelayMs = options.authDelayMs ?? 1000;
    this.#readOnly = options.readOnly ?? false;
    this.#maxFileSize = options.maxFileSize ?? Infinity;
    this.#fsync = options.fsync ?? false;
  }

  /** Whether clients must show a token. */
  /** Whether every change is refused (`--read-only`), whatever the token. */
  get readOnly(): boolean {
    return this.#readOnly;
  }

  get needsToken(): boolean {
    return this.#tokens !== undefined;
  }

  /** The audit log, for what a face has to say of its connections. */
  log(line: string): void {
    this.#log(line);
  }

  /**
   * Who `peer` is with `token`: its scope, or AUTH after a delay that makes
   * guessing slow. Without tokens, everyone has the admin scope.
   */
  async authenticate(peer: string, token: string | undefined): Promise<Principal> {
    if (!this.#tokens) return { scope: "admin", peer };
    const scope = this.#tokens.check(token);
    if (scope) return { scope, peer };
    this.#authFailures++;
    const what = token ? "a wrong token" : "no token";
    this.#log(
      `${peer} authentication failed: ${what} (${this.#authFailures} failures since start)`,
    );
    await new Promise((r) => setTimeout(r, this.#authDelayMs));
    throw new FerryError("AUTH", "authentication failed: this server needs a valid token");
  }

  /** Entries of a directory (or the one entry of a file); see `Storage.list`. */
  list(who: Principal, path: string, options: ListOptions = {}): AsyncIterable<Entry> {
    return this.#logged(who, "ls", path, () => this.#storage.list(normalizePath(path), options));
  }

  /** Entries whose root-relative path matches `pattern`; their names are those paths. */
  glob(who: Principal, pattern: string): AsyncIterable<Entry> {
    const storage = this.#storage;
    return this.#logged(who, "glob", pattern, async function* () {
      const list = (dir: string) => storage.list(dir);
      for await (const { path, entry } of expandGlob(checkPattern(pattern), list)) {
        yield { ...entry, name: path };
      }
    });
  }

  /**
   * Walk the tree below the directory `path` for a tree stream (see
   * `Storage.readTree`), logging one line for the whole tree: files of at
   * most `inlineMax` bytes can be read on the spot.
   */
  tree(who: Principal, path: string, options: { inlineMax: number }): AsyncIterable<TreeItem> {
    const storage = this.#storage;
    const log = (line: string) => this.#log(line);
    return this.#logged(who, "get -r", path, async function* () {
      const started = performance.now();
      let files = 0, bytes = 0;
      for await (const item of walkTree(storage, normalizePath(path), options)) {
        if (item.kind === "file" && item.read) {
          const read = item.read;
          yield {
            ...item,
            read: (into: Uint8Array) => {
              const done = () => {
                files++;
                bytes += into.length;
              };
              const reading = read(into);
              return reading instanceof Promise ? reading.then(done) : done();
            },
          };
        } else yield item;
      }
      const seconds = elapsed(started).toFixed(3);
      log(
        `${who.peer} get -r ${
          escapeName(path)
        } ${files} files inline, ${bytes} bytes in ${seconds} s ok`,
      );
    });
  }

  /**
   * Begin taking in a tree as one stream below the directory `path` (made
   * if missing): each directory and small file of it goes through the
   * returned {@linkcode IncomingTree}, checked as a single upload would be
   * (scope, `--max-file-size`, existence, quota, checksum), and stored whole
   * and atomically. A refusal of the whole tree comes now; one file's
   * failure is that file's alone.
   */
  treeUpload(
    who: Principal,
    path: string,
    options: { noClobber?: boolean; algorithm: Algorithm },
  ): Promise<IncomingTree> {
    return this.#audit(who, "put -r", path, async () => {
      const base = normalizePath(path);
      this.#allow(who, "create", `put -r ${escapeName(path)}`);
      const replace = allows(who.scope, "replace");
      const baseFresh = await this.#storage.mkdir(base, { parents: true }) === true;
      const storage = this.#storage;
      // Directories of the tree made so far: their files' ancestors need no second look.
      const made = new Set<string>([base]);
      // Those of them that did not exist before: nothing stands at their files' names.
      const fresh = new Set<string>(baseFresh ? [base] : []);
      const started = performance.now();
      // A tree's files come directory by directory: once a directory's path checked out
      // whole, each file in it needs only its own name checked.
      let checkedDir: string | undefined;
      const join = (rel: string) => {
        const full = base === "" ? rel : `${base}/${rel}`;
        const slash = rel.lastIndexOf("/");
        const dir = slash < 0 ? "" : rel.slice(0, slash);
        if (dir === checkedDir) {
          try {
            checkName(rel.slice(slash + 1));
          } catch (err) {
            normalizePath(full); // Refuses it again, naming the whole path.
            throw err;
          }
        } else if (rel === "" || normalizePath(full) !== full) {
          throw new FerryError(
            "PATH_REFUSED",
            `path refused: not a plain path: ${escapeName(full)}`,
          );
        } else checkedDir = dir;
        return full;
      };
      let files = 0, bytes = 0;
      return {
        parallel: Math.max(1, storage.parallelWrites ?? 1),
        dir: async (rel) => {
          if (rel === "") return base; // Made above.
          const full = join(rel);
          if (await storage.mkdir(full, { parents: true }) === true) fresh.add(full);
          made.add(full);
          return full;
        },
        file: async (rel, content, meta) => {
          const full = join(rel);
          if (content.length > this.#maxFileSize) {
            throw new FerryError(
              "LIMIT",
              `${escapeName(full)} is ${content.length} bytes: over the server's limit of ` +
                `${this.#maxFileSize}`,
            );
          }
          const hex = hashBytes(options.algorithm, content);
          if (!sameHex(meta.sum, hex)) {
            throw new FerryError(
              "INTEGRITY",
              `${escapeName(full)} arrived damaged (checksum mismatch); nothing was kept`,
            );
          }
          let noClobber = options.noClobber;
          if (!replace) {
            // As for one upload: not replacing needs no right to replace; replacing does.
            const existing = await storage.stat(full).catch(() => undefined);
            if (existing?.type === "file" && !noClobber) {
              this.#allow(who, "replace", `put ${escapeName(full)} over an existing file`);
            }
            noClobber = true;
          }
          const parent = full.slice(0, Math.max(0, full.lastIndexOf("/")));
          const whole: WholeOptions = {
            mode: meta.mode,
            mtime: meta.mtime,
            noClobber,
            fsync: this.#fsync,
            checksums: { [options.algorithm]: hex },
            parentMade: made.has(parent),
            parentFresh: fresh.has(parent),
          };
          if (storage.writeWhole) await storage.writeWhole(full, content, whole);
          else await writeByUpload(storage, full, content, whole);
          files++;
          bytes += content.length;
        },
        failed: (rel, err) => this.#failed(who, "put", base === "" ? rel : `${base}/${rel}`, err),
        end: () => {
          const seconds = elapsed(started).toFixed(3);
          this.#log(
            `${who.peer} put -r ${escapeName(path)} ${files} files inline, ${bytes} bytes in ` +
              `${seconds} s ok`,
          );
        },
      };
    });
  }

  /** Give a directory its mode and mtime (a tree's, once its files are in). */
  setStat(who: Principal, path: string, options: { mode?: number; mtime?: number }): Promise<void> {
    return this.#audit(who, "setstat", path, async () => {
      this.#allow(who, "create", `setstat ${escapeName(path)}`);
      const canonical = normalizePath(path);
      // The served root is the operator's: its mode decides who on the host may reach the files.
      if (canonical === "") {
        throw new FerryError("PATH_REFUSED", "path refused: cannot change the root directory");
      }
      const info = await this.#storage.stat(canonical);
      if (info.type !== "dir") {
        throw new FerryError("NOT_A_DIRECTORY", `not a directory: ${escapeName(path)}`);
      }
      await this.#storage.setStat?.(canonical, options);
    });
  }

  /** Describe one path. */
  stat(who: Principal, path: string): Promise<Entry> {
    return this.#audit(who, "stat", path, () => this.#storage.stat(normalizePath(path)));
  }

  /** The checksum of a file and the bytes it covers: remembered, or computed now. */
  sum(
    who: Principal,
    path: string,
    algorithm: Algorithm = "sha256",
  ): Promise<{ digest: Digest; size: number }> {
    return this.#audit(who, "sum", path, async () => {
      const canonical = normalizePath(path);
      const handle = await this.#storage.openRead(canonical);
      try {
        const { version, size } = handle;
        let digest = stored(handle, algorithm) ?? this.#known(canonical, version, algorithm);
        if (!digest) {
          await loadAlgorithm(algorithm);
          const buf = new Uint8Array(Math.min(size, HASH_BUFFER));
          digest = await hashSource(handle, size, buf, algorithm);
          if (version) this.#remember(canonical, version, digest);
        }
        return { digest, size };
      } finally {
        handle.close();
      }
    });
  }

  /** Create a directory (with `parents`: and its parents, no error if it exists). */
  mkdir(who: Principal, path: string, options: { parents?: boolean }): Promise<void> {
    return this.#audit(who, "mkdir", path, async () => {
      this.#allow(who, "create", `mkdir ${escapeName(path)}`);
      await this.#storage.mkdir(normalizePath(path), options);
      this.#log(`${who.peer} mkdir ${escapeName(path)} ok`);
    });
  }

  /** Remove a file or an empty directory; a whole tree with `recursive`. */
  remove(who: Principal, path: string, options: { recursive?: boolean }): Promise<void> {
    return this.#audit(who, "rm", path, async () => {
      const canonical = normalizePath(path);
      this.#allow(who, "delete", `rm ${escapeName(path)}`);
      await this.#storage.remove(canonical, options);
      // Without -r it was a file or an empty directory: a `put --delete` of a large tree
      // removes files one by one, and must not scan the whole cache for each.
      this.#hashes.delete(canonical, { below: options.recursive });
      this.#log(`${who.peer} rm ${escapeName(path)} ok`);
    });
  }

  /** Rename `from` to `to`, or into `to` if it is a directory; returns the new path. */
  move(who: Principal, from: string, to: string): Promise<string> {
    return this.#audit(who, "mv", from, async () => {
      const [source, target] = [normalizePath(from), normalizePath(to)];
      // A rename takes the entry away from its name, which is deleting it there: a token
      // that could rename could move a file aside and upload another in its place.
      this.#allow(who, "delete", `mv ${escapeName(from)} ${escapeName(to)}`);
      const path = await this.#storage.move(source, target);
      this.#hashes.delete(source);
      this.#log(`${who.peer} mv ${escapeName(from)} ${escapeName(path)} ok`);
      return path;
    });
  }

  /** Bytes held of an interrupted resumable upload of this file (0 when none). */
  partialSize(
    who: Principal,
    path: string,
    options: { size: number; mtime?: number },
  ): Promise<number> {
    return this.#audit(who, "partial", path, () => {
      this.#allow(who, "create", `put ${escapeName(path)}`);
      return this.#storage.partialSize(normalizePath(path), options);
    });
  }

  /**
   * Open a file to send, from `req.offset` on when the client holds a
   * verified prefix (RESUME_MISMATCH when it does not match).
   */
  download(who: Principal, req: DownloadRequest): Promise<OutgoingFile> {
    return this.#audit(who, "get", req.path, async () => {
      const path = normalizePath(req.path);
      const started = performance.now();
      const handle = await this.#storage.openRead(path);
      try {
        const { size, mtime, mode, version } = handle;
        const { offset } = req;
        if (offset > size) {
          throw new FerryError(
            "RESUME_MISMATCH",
            `cannot resume ${escapeName(req.path)} at byte ${offset}: it has ${size} bytes now`,
          );
        }
        // Reading the prefix also moves the handle to where the body starts.
        const prefix = offset > 0
          ? await hashPrefix(
            handle,
            offset,
            new Uint8Array(Math.min(offset, HASH_BUFFER)),
            req.algorithm,
          )
          : undefined;
        if (prefix) checkResumePoint(prefix, req.prefix, offset, escapeName(req.path));
        const start = req.start ?? 0;
        if (start > 0) {
          if (start > size) {
            throw new FerryError("RESUME_MISMATCH", `byte ${start} is beyond the end (${size})`);
          }
          if (handle.skip) handle.skip(start);
          else {await hashPrefix(
              handle,
              start,
              new Uint8Array(Math.min(start, HASH_BUFFER)),
              "xxh128",
            );}
        }
        // One remembered from an upload will do for a client that asks again if it is stale.
        const known = req.fresh
          ? undefined
          : stored(handle, req.algorithm) ?? this.#known(path, version, req.algorithm, req.retries);
        return {
          size,
          mtime,
          mode,
          offset,
          source: handle,
          known,
          prefix,
          sent: (digest, bytes) => {
            if (digest && version && !known) this.#remember(path, version, digest);
            this.#transferred(who, "get", req, bytes ?? size - offset - start, started);
          },
          failed: (err) => this.#failed(who, "get", req.path, err),
          close: () => handle.close(),
        };
      } catch (err) {
        handle.close();
        throw err;
      }
    });
  }

  /**
   * Begin storing a file, continuing a kept partial from `req.offset` when
   * its bytes match `req.prefix`. Refusals (path, scope, size, existence,
   * quota) come before a byte of the body is taken.
   */
  upload(who: Principal, req: UploadRequest): Promise<IncomingFile> {
    return this.#audit(who, "put", req.path, async () => {
      const path = normalizePath(req.path);
      const started = performance.now();
      const { size, offset } = req;
      const what = `put ${escapeName(req.path)}`;
      this.#allow(who, "create", what);
      if (size !== undefined && size > this.#maxFileSize) {
        throw new FerryError(
          "LIMIT",
          `${escapeName(req.path)} is ${size} bytes: over the server's limit of ` +
            `${this.#maxFileSize}`,
        );
      }
      let { noClobber } = req;
      if (!allows(who.scope, "replace")) {
        const existing = await this.#storage.stat(path).catch(() => undefined);
        if (existing?.type === "file") {
          // Not replacing is what was asked: that needs no right to replace.
          if (noClobber) throw new FerryError("EXISTS", `already exists: ${escapeName(req.path)}`);
          this.#allow(who, "replace", `${what} over an existing file`);
        }
        // Without the right to replace, the final step also refuses a file that appeared meanwhile.
        noClobber = true;
      }
      // The kept bytes are checked before the partial is taken over, where the storage can read
      // it as it is: another upload of a file with the same name, size and mtime may be writing
      // it right now, and a resume that does not match must not cut that one off.
      let prefix: Hasher | undefined;
      const buffer = () => new Uint8Array(Math.min(offset, HASH_BUFFER));
      if (offset > 0 && this.#storage.readPartial && size !== undefined) {
        const kept = await this.#storage.readPartial(path, {
          size,
          mtime: req.mtime,
          bytes: offset,
        });
        try {
          prefix = await keptPrefix(kept, req, buffer());
        } finally {
          kept.close();
        }
      }
      const upload = await this.#storage.createUpload(path, {
        size,
        mode: req.mode,
        mtime: req.mtime,
        noClobber,
        fsync: this.#fsync,
        resume: req.resume,
        offset,
      });
      try {
        if (offset > 0 && !prefix) prefix = await keptPrefix(upload.prefix(), req, buffer());
        // The bytes sent again are checked: the upload, which may last long, does not hold them.
        const held = req.overlap ? { ...req, overlap: undefined } : req;
        return this.#incoming(who, held, path, upload, prefix, started);
      } catch (err) {
        await upload.abort();
        throw err;
      }
    });
  }

  #incoming(
    who: Principal,
    req: UploadRequest,
    path: string,
    upload: Upload,
    prefix: Hasher | undefined,
    started: number,
  ): IncomingFile {
    const limit = req.size === undefined && this.#maxFileSize < Infinity
      ? { bytes: this.#maxFileSize, what: "the server's limit for one file" }
      : undefined;
    const verifier = new Verifier(req.size, upload, {
      algorithm: req.algorithm,
      offset: req.offset,
      prefix,
      limit,
    });
    let settled = false;
    return {
      offset: req.offset,
      get received() {
        return verifier.received;
      },
      write: (chunk) => verifier.write(chunk),
      end: async (claim) => {
        const digest = verifier.end(claim);
        settled = true;
        const version = await upload.commit({ [digest.algorithm]: digest.hex });
        if (version) this.#remember(path, version, digest, true);
        this.#transferred(who, "put", req, verifier.received - req.offset, started);
        return digest;
      },
      failed: async (err) => {
        this.#failed(who, "put", req.path, err);
        if (settled) return;
        settled = true;
        // A lost connection keeps a resumable upload for the client to continue;
        // anything else (bad content included) drops it.
        if (connectionLost(toFerryError(err))) await upload.suspend();
        else await upload.abort();
      },
    };
  }

  /** Refuse unless `who` may do `action` (`what` names the request for the message). */
  #allow(who: Principal, action: Action, what: string): void {
    if (action !== "read" && this.#readOnly) {
      throw new FerryError("PERMISSION", `refused: the server is read-only (${what})`);
    }
    if (!allows(who.scope, action)) {
      throw new FerryError(
        "PERMISSION",
        `refused: ${what} needs the ${scopeFor(action)} scope (this token has ${who.scope})`,
      );
    }
  }

  #known(
    path: string,
    version: string | undefined,
    algorithm: Algorithm,
    provisional = false,
  ): Digest | undefined {
    if (version === undefined) return undefined;
    const hex = this.#hashes.get(path, version, { provisional, algorithm });
    return hex === undefined ? undefined : { algorithm, hex };
  }

  #remember(path: string, version: string, digest: Digest, provisional = false): void {
    this.#hashes.set(path, version, digest.hex, { provisional, algorithm: digest.algorithm });
  }

  /** Run `fn`, logging its failure as `who`'s `op` on `what`. */
  async #audit<T>(who: Principal, op: string, what: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      this.#failed(who, op, what, err);
      throw err;
    }
  }

  /** An iterable whose failure, when it comes, is logged as `#audit` logs. */
  async *#logged<T>(
    who: Principal,
    op: string,
    what: string,
    fn: () => AsyncIterable<T>,
  ): AsyncIterable<T> {
    try {
      yield* fn();
    } catch (err) {
      this.#failed(who, op, what, err);
      throw err;
    }
  }

  #failed(who: Principal, op: string, what: string, err: unknown): void {
    this.#log(`${who.peer} ${op} ${escapeName(what)} failed: ${toFerryError(err).message}`);
  }

  #transferred(
    who: Principal,
    op: string,
    req: { path: string; offset: number; fresh?: boolean },
    bytes: number,
    started: number,
  ): void {
    const seconds = elapsed(started);
    const rate = seconds > 0 ? (bytes / 1048576 / seconds).toFixed(1) : "-";
    const resumed = req.offset > 0 ? `, resumed at ${req.offset}` : "";
    // A client that asks for that saw the remembered checksum fail its check.
    const fresh = req.fresh ? ", hashed anew after a failed check" : "";
    this.#log(
      `${who.peer} ${op} ${escapeName(req.path)} ${bytes} bytes in ${
        seconds.toFixed(3)
      } s (${rate} MiB/s${resumed}${fresh}) ok`,
    );
  }
}

/**
 * The running checksum of the kept first `req.offset` bytes, once they are
 * shown to be the client's: by the checksum it claims for them, or by the
 * bytes just before the offset that it sent again (`req.overlap`).
 */
async function keptPrefix(
  kept: ByteSource,
  req: UploadRequest,
  buf: Uint8Array,
): Promise<Hasher> {
  const { offset, overlap } = req;
  if (!overlap) {
    const prefix = await hashPrefix(kept, offset, buf, req.algorithm);
    checkResumePoint(prefix, req.prefix, offset, escapeName(req.path));
    return prefix;
  }
  if (overlap.length === 0 || overlap.length > offset) {
    throw new FerryError("USAGE", `an overlap of ${overlap.length} bytes before byte ${offset}`);
  }
  const prefix = await hashPrefix(kept, offset - overlap.length, buf, req.algorithm);
  const held = new Uint8Array(overlap.length);
  for (let got = 0; got < held.length;) {
    const n = await kept.read(held.subarray(got));
    if (n === null) throw new FerryError("IO", `the kept part of ${escapeName(req.path)} shrank`);
    got += n;
  }
  if (!held.every((b, i) => b === overlap[i])) {
    throw new FerryError(
      "RESUME_MISMATCH",
      `cannot resume ${escapeName(req.path)}: the ${overlap.length} bytes before byte ${offset} ` +
        `differ from the kept ones`,
    );
  }
  prefix.update(held);
  return prefix;
}
