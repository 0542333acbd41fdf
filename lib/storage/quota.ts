/**
 * The bytes a served root holds, against `--quota`: stored files, partial
 * uploads kept for resuming, and uploads in flight; and a storage that keeps
 * to it, around any other.
 *
 * @module
 */

import { walkTree } from "./tree_walk.ts";
import type { Entry, ListOptions } from "../commands.ts";
import { FerryError } from "../util/errors.ts";
import type { ReadHandle, Storage, TreeItem, Upload, UploadOptions, Usage } from "./storage.ts";

/** An upload's hold on the quota (see {@linkcode Quota.reserve}). */
export interface Reservation {
  /** The upload now writes its partial (or, with false, a private file after all). */
  started(writesPartial?: boolean): void;
  /** Hold `bytes` more (an upload of unknown size), or fail with LIMIT. */
  grow(bytes: number): void;
  /** Give the reservation back. */
  release(): void;
}

/**
 * Bytes held under a root against a limit. An upload reserves its whole size
 * while it runs (a resumed one's earlier bytes included), so concurrent
 * uploads cannot overshoot together and a partial that one upload takes over
 * from another is counted once. A kept partial is counted by its path until
 * an upload claims it; the count is taken again from disk now and then, which
 * corrects whatever happened behind ferryd's back.
 *
 * @example
 * ```ts
 * import { Quota } from "./quota.ts";
 * const quota = new Quota(1000, { files: 600, partials: new Map([["k", 300]]) });
 * const held = quota.reserve(100, "k"); // the partial "k" is this upload's own
 * held.started();
 * quota.claim("k");
 * held.release();
 * console.assert(quota.used === 600);
 * ```
 */
export class Quota {
  readonly limit: number;
  #files: number;
  #partials: Map<string, number>;
  #reserved = 0;
  /** Reservations of resumable uploads, by the key of the partial they write. */
  readonly #active = new Map<string, { bytes: number; held: boolean }>();

  constructor(limit: number, usage: Usage) {
    this.limit = limit;
    this.#files = usage.files;
    this.#partials = new Map(usage.partials);
  }

  /** Bytes held now: files, kept partials and reservations. */
  get used(): number {
    let partials = 0;
    for (const bytes of this.#partials.values()) partials += bytes;
    return this.#files + partials + this.#reserved;
  }

  /**
   * Hold `bytes` for an upload, or fail with LIMIT. `resumes` names the
   * partial the upload writes, whose bytes are part of `bytes` already: a
   * kept one's, and with `takeover` (it continues a partial that another
   * connection, gone quiet, is still writing) that upload's reservation too.
   * That reservation moves to this one only by `started()`, once the upload
   * has really taken the partial over: a takeover that fails leaves it be.
   * `started(false)` says the upload writes a private file after all (the
   * partial was busy), so nothing is taken over under `resumes`.
   * `grow(more)` adds to the reservation as an upload of unknown size
   * arrives (LIMIT when that would exceed the quota). `release()` gives
   * this reservation back.
   */
  reserve(
    bytes: number,
    resumes?: string,
    options: { takeover?: boolean } = {},
  ): Reservation {
    const active = resumes === undefined ? undefined : this.#active.get(resumes);
    const takeover = options.takeover && active?.held ? active : undefined;
    const own = (resumes === undefined ? 0 : this.#partials.get(resumes) ?? 0) +
      (takeover?.bytes ?? 0);
    this.#check(this.used - own, bytes);
    const reservation = { bytes, held: true };
    this.#reserved += bytes;
    return {
      grow: (more) => {
        if (!reservation.held) return;
        this.#check(this.used, more);
        reservation.bytes += more;
        this.#reserved += more;
      },
      started: (writesPartial = true) => {
        if (!writesPartial) return;
        if (takeover?.held) {
          this.#reserved -= takeover.bytes;
          takeover.held = false;
        }
        if (resumes !== undefined) this.#active.set(resumes, reservation);
      },
      release: () => {
        if (reservation.held) this.#reserved -= reservation.bytes;
        reservation.held = false;
        if (resumes !== undefined && this.#active.get(resumes) === reservation) {
          this.#active.delete(resumes);
        }
      },
    };
  }

  #check(used: number, bytes: number): void {
    if (used + bytes > this.limit) {
      throw new FerryError(
        "LIMIT",
        `over quota: ${bytes} more bytes would exceed the server's ${this.limit}-byte quota ` +
          `(${used} held)`,
      );
    }
  }

  /** An upload took over the kept partial `key`: its reservation counts those bytes now. */
  claim(key: string): void {
    this.#partials.delete(key);
  }

  /** An interrupted upload kept `bytes` under `key`. */
  keep(key: string, bytes: number): void {
    this.#partials.set(key, bytes);
  }

  /** Files were stored (positive) or removed (negative). */
  addFiles(bytes: number): void {
    this.#files = Math.max(0, this.#files + bytes);
  }

  /** What was under a path that is gone now. */
  remove(usage: Usage): void {
    this.addFiles(-usage.files);
    for (const key of usage.partials.keys()) this.#partials.delete(key);
  }

  /** What is under a path that is new (moved there). */
  add(usage: Usage): void {
    this.addFiles(usage.files);
    for (const [key, bytes] of usage.partials) this.#partials.set(key, bytes);
  }

  /** The count from disk. */
  recount(usage: Usage): void {
    this.#files = usage.files;
    this.#partials = new Map(usage.partials);
  }
}

const NOTHING: Usage = { files: 0, partials: new Map() };

/**
 * Any {@linkcode Storage}, held to a quota: uploads reserve their size (or
 * grow their hold as bytes arrive, when the size is not known), stored,
 * kept and removed bytes are counted as they change, and the count is
 * taken again from the backend now and then ({@linkcode QuotaStorage.recount}).
 * Partials are counted under the names the backend gives them
 * ({@linkcode Upload.partial}).
 *
 * @example
 * ```ts
 * import { LocalStorage } from "./local/local_storage.ts";
 * import { QuotaStorage } from "./quota.ts";
 * const storage = await QuotaStorage.wrap(await LocalStorage.open(await Deno.makeTempDir()), 10);
 * const upload = await storage.createUpload("a.txt", { size: 11 }).catch((e) => e);
 * console.assert(upload.code === "LIMIT");
 * ```
 */
export class QuotaStorage implements Storage {
  readonly #inner: Storage;
  readonly #quota: Quota;

  private constructor(inner: Storage, quota: Quota) {
    this.#inner = inner;
    this.#quota = quota;
    this.readPartial = inner.readPartial?.bind(inner);
    this.setStat = inner.setStat?.bind(inner);
  }

  /** Hold `inner` to `limit` bytes, counting what it holds now. */
  static async wrap(inner: Storage, limit: number): Promise<QuotaStorage> {
    return new QuotaStorage(inner, new Quota(limit, await inner.usage?.("") ?? NOTHING));
  }

  /** Bytes held now: files, kept partials and uploads in flight. */
  get used(): number {
    return this.#quota.used;
  }

  get location(): string {
    return this.#inner.location;
  }

  get parallelWrites(): number | undefined {
    return this.#inner.parallelWrites;
  }

  /** Take the count again from the backend, correcting what changed behind ferryd's back. */
  async recount(): Promise<void> {
    if (this.#inner.usage) this.#quota.recount(await this.#inner.usage(""));
  }

  list(path: string, options?: ListOptions): AsyncIterable<Entry> {
    return this.#inner.list(path, options);
  }

  readTree(path: string, options: { inlineMax: number }): AsyncIterable<TreeItem> {
    return walkTree(this.#inner, path, options);
  }

  stat(path: string): Promise<Entry> {
    return this.#inner.stat(path);
  }

  openRead(path: string): Promise<ReadHandle> {
    return this.#inner.openRead(path);
  }

  partialSize(path: string, options: { size: number; mtime?: number }): Promise<number> {
    return this.#inner.partialSize(path, options);
  }

  /** The inner storage's, where it has one (see `Storage.readPartial`). */
  readonly readPartial?: Storage["readPartial"];
  /** The inner storage's, where it has one: a quota has nothing to say of directory times. */
  readonly setStat?: Storage["setStat"];

  sweep(maxAgeMs: number): Promise<number> {
    return this.#inner.sweep?.(maxAgeMs) ?? Promise.resolve(0);
  }

  usage(path: string): Promise<Usage> {
    return this.#inner.usage?.(path) ?? Promise.resolve(NOTHING);
  }

  mkdir(path: string, options?: { parents?: boolean }): Promise<boolean | void> {
    return this.#inner.mkdir(path, options);
  }

  async createUpload(path: string, options: UploadOptions): Promise<Upload> {
    const quota = this.#quota;
    const existing = await this.#inner.stat(path).catch(() => undefined);
    const previous = existing?.type === "file" ? existing.size : 0;
    const upload = await this.#inner.createUpload(path, options);
    const partial = upload.partial;
    let held: Reservation;
    try {
      // The whole size: a resumed upload's earlier bytes are its own again, and so is the
      // reservation of an older connection it takes the partial over from.
      held = quota.reserve(options.size ?? 0, partial, { takeover: upload.offset > 0 });
    } catch (err) {
      // Refused before a byte came: what a partial held stays kept, as it was.
      const kept = await upload.suspend();
      if (partial !== undefined && kept > 0) quota.keep(partial, kept);
      throw err;
    }
    held.started(partial !== undefined);
    if (partial !== undefined) quota.claim(partial);
    let written = upload.offset;
    // Whatever an older connection said it kept in this partial is this upload's now.
    const forget = () => partial !== undefined && quota.claim(partial);
    return {
      offset: upload.offset,
      partial,
      prefix: () => upload.prefix(),
      write: (chunk) => {
        // An upload of unknown size holds the quota as its bytes arrive.
        if (options.size === undefined) held.grow(chunk.length);
        written += chunk.length;
        return upload.write(chunk);
      },
      commit: async (checksums) => {
        try {
          const version = await upload.commit(checksums);
          quota.addFiles(written - previous);
          forget();
          return version;
        } finally {
          held.release();
        }
      },
      abort: async () => {
        try {
          await upload.abort();
          forget();
        } finally {
          held.release();
        }
      },
      suspend: async () => {
        try {
          // Kept as far as it is still there: `rm -r` may have taken its directory meanwhile.
          const kept = await upload.suspend();
          if (partial !== undefined && kept > 0) quota.keep(partial, kept);
          else forget();
          return kept;
        } finally {
          held.release();
        }
      },
    };
  }

  async remove(path: string, options?: { recursive?: boolean }): Promise<void> {
    const held = await this.usage(path);
    await this.#inner.remove(path, options);
    this.#quota.remove(held);
  }

  async move(from: string, to: string): Promise<string> {
    const existing = (p: string) => this.#inner.stat(p).catch(() => undefined);
    const entry = await existing(from);
    const target = entry && (await existing(to))?.type === "dir" ? `${to}/${entry.name}` : to;
    const there = target === from ? undefined : await existing(target);
    // Kept partials move along, and are counted where they are now.
    const moved = await this.usage(from);
    const path = await this.#inner.move(from, to);
    if (there?.type === "file") this.#quota.addFiles(-there.size);
    this.#quota.remove(moved);
    this.#quota.add(await this.usage(path));
    return path;
  }
}
