/**
 * The bytes a served root holds, against `--quota`: stored files, partial
 * uploads kept for resuming, and uploads in flight.
 *
 * @module
 */

import { FerryError } from "../util/errors.ts";

/**
 * What a root holds: bytes in files, and bytes in each kept partial upload,
 * by its path under the root.
 *
 * @example
 * ```ts
 * import type { Usage } from "./quota.ts";
 * const partial = "dist/.ferry-3f2a.partial";
 * const usage: Usage = { files: 4096, partials: new Map([[partial, 1024]]) };
 * console.assert(usage.partials.get(partial) === 1024);
 * ```
 */
export interface Usage {
  /** Bytes in files (partial uploads left out). */
  files: number;
  /** Bytes in each kept partial upload, by its path under the root. */
  partials: Map<string, number>;
}

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
