/**
 * One upload into a bucket, with bounded memory: bytes gather into parts of
 * a multipart upload under a private temporary key, a few parts in flight
 * at once; the commit completes it and copies it, on the store's side, to
 * its name with its metadata (mode, mtime, checksums), so that the object
 * appears whole or not at all. A file smaller than one part is one PUT.
 *
 * A resumable upload that stops keeps what it has as an object under its
 * partial's name (`.ferry-KEY.partial`, beside the file, as on disk), which
 * can be read back to check a resume point; a resume copies it, again on
 * the store's side, into the new upload's first part.
 *
 * @module
 */

import { escapeName } from "../../util/display.ts";
import { FerryError } from "../../util/errors.ts";
import type { Checksums, Upload } from "../storage.ts";
import type { S3Client } from "./s3_client.ts";
import { fileMeta } from "./s3_meta.ts";

/** S3's smallest part (but the last). */
export const MIN_PART = 5 * 1024 * 1024;
/** Parts are this big, unless the file is so large that 10,000 parts would not hold it. */
const PART = 8 * 1024 * 1024;
/** Parts of a stream of unknown size: 10,000 of them hold 156 GiB. */
const STREAM_PART = 16 * 1024 * 1024;
/** Most parts in flight per upload: memory is at most (this + 1) parts... */
const IN_FLIGHT = 4;
/** ...and no more than this in flight, whatever the part size (a larger file's parts are larger). */
const IN_FLIGHT_BYTES = 64 * 1024 * 1024;
/** S3's largest object. */
export const MAX_OBJECT = 5 * 1024 ** 4;
/** The largest part one UploadPartCopy may copy. */
const MAX_COPY_PART = 5 * 1024 ** 3;
/** S3's most parts in one upload. */
const MAX_PARTS = 10_000;

/** What an upload needs to know of where it goes. */
export interface S3UploadPlan {
  s3: S3Client;
  /** The object key of the file, and of a private temporary object beside it. */
  key: string;
  tempKey: string;
  /** The kept partial's key, for a resumable upload. */
  partialKey?: string;
  /** The partial as a path under the root (what usage reports it under). */
  partial?: string;
  /** The partial's bytes to continue after, and the ETag they were read at. */
  offset: number;
  keptEtag?: string;
  size?: number;
  mode?: number;
  mtime?: number;
  noClobber?: boolean;
  /** The path, for messages. */
  path: string;
  /**
   * Temporary keys of the uploads running in this process: the sweep leaves
   * them be, however long they have run. This upload is in it until it ends.
   */
  active: Set<string>;
  /** Whether the file's directory is still there: a directory removed meanwhile fails the commit. */
  parentExists(): Promise<boolean>;
}

/**
 * An {@linkcode Upload} into S3 (see the module's description).
 *
 * @example
 * ```ts ignore
 * const upload = await S3Upload.start(plan);
 * await upload.write(bytes);
 * await upload.commit({ xxh128: hex });
 * ```
 */
export class S3Upload implements Upload {
  readonly offset: number;
  readonly partial: string | undefined;
  readonly #plan: S3UploadPlan;
  readonly #partSize: number;
  #buffer: Uint8Array;
  /** Part buffers whose upload is done, to fill again: memory stays at a few parts, garbage at none. */
  readonly #spare: Uint8Array[] = [];
  #filled = 0;
  /** Bytes this upload holds: the kept prefix, and all written since. */
  #bytes = 0;
  #uploadId: string | undefined;
  /** Each part's ETag, by part number - 1, as they settle. */
  #parts: Promise<string>[] = [];
  #done = false;
  readonly #inFlight: number;
  /** The first failure of a part in flight: every later call fails with it. */
  #failure: unknown;

  private constructor(plan: S3UploadPlan) {
    this.#plan = plan;
    this.offset = plan.offset;
    this.partial = plan.partialKey !== undefined ? plan.partial : undefined;
    const size = plan.size ?? 0;
    this.#partSize = plan.size === undefined
      ? STREAM_PART
      : Math.max(PART, Math.ceil(size / (MAX_PARTS - 1) / 1048576) * 1048576);
    this.#inFlight = Math.max(1, Math.min(IN_FLIGHT, Math.floor(IN_FLIGHT_BYTES / this.#partSize)));
    plan.active.add(plan.tempKey);
    this.#buffer = new Uint8Array(0);
  }

  /** Begin: a resume brings the kept bytes in (small ones read, large ones copied by the store). */
  static async start(plan: S3UploadPlan): Promise<S3Upload> {
    const upload = new S3Upload(plan);
    const { offset } = plan;
    if (offset > 0 && plan.partialKey !== undefined) {
      if (offset < MIN_PART) {
        // Too small to be a part of its own: it opens the first part.
        const res = await plan.s3.get(plan.partialKey, {
          end: offset - 1,
          etag: plan.keptEtag,
          what: plan.path,
        });
        const kept = new Uint8Array(await res.arrayBuffer());
        if (kept.length !== offset) throw upload.#mismatch(kept.length);
        await upload.write(kept);
      } else {
        await upload.#begin();
        upload.#bytes = offset;
        const count = Math.ceil(offset / MAX_COPY_PART);
        const each = Math.ceil(offset / count);
        for (let n = 0; n < count; n++) {
          const start = n * each;
          const end = Math.min(offset, start + each) - 1;
          upload.#track(
            plan.s3.copyPart(
              plan.tempKey,
              upload.#uploadId!,
              n + 1,
              plan.partialKey,
              start,
              end,
              plan.keptEtag,
            ),
          );
        }
      }
    }
    return upload;
  }

  prefix(): { read(buf: Uint8Array): Promise<number | null> } {
    const { s3, partialKey, offset, keptEtag, path } = this.#plan;
    if (partialKey === undefined) return { read: () => Promise.resolve(null) };
    return s3.readPrefix(partialKey, offset, {
      etag: keptEtag,
      what: path,
      short: (at) => this.#mismatch(at),
    });
  }

  async write(chunk: Uint8Array): Promise<void> {
    this.#usable();
    this.#bytes += chunk.length;
    let at = 0;
    while (at < chunk.length) {
      if (this.#buffer.length === 0) {
        this.#buffer = this.#spare.pop() ?? new Uint8Array(this.#partSize);
      }
      const n = Math.min(chunk.length - at, this.#buffer.length - this.#filled);
      this.#buffer.set(chunk.subarray(at, at + n), this.#filled);
      this.#filled += n;
      at += n;
      if (this.#filled === this.#buffer.length) await this.#sendPart();
    }
  }

  async commit(checksums?: Checksums): Promise<string | undefined> {
    this.#usable();
    this.#done = true;
    const { s3, key, tempKey, partialKey, noClobber, path } = this.#plan;
    const meta = fileMeta({ mode: this.#plan.mode, mtime: this.#plan.mtime, checksums });
    try {
      // As on disk, where the rename fails: a tree removed while this ran is not brought back.
      if (!await this.#plan.parentExists()) {
        throw new FerryError("NOT_FOUND", `the directory of ${escapeName(path)} was removed`);
      }
      if (this.#uploadId === undefined) {
        // Smaller than a part: one PUT, conditional where asked not to replace.
        const etag = await s3.put(key, this.#buffer.subarray(0, this.#filled), {
          meta,
          noClobber,
          what: path,
        });
        if (partialKey !== undefined) await s3.delete(partialKey);
        return etag;
      }
      const size = await this.#complete();
      // A store without conditional copies (Ceph 16, S3 before 2024) is asked first.
      if (noClobber && await s3.head(key)) {
        throw new FerryError("EXISTS", `already exists: ${escapeName(path)}`);
      }
      await s3.copy(tempKey, key, { size, meta });
      if (partialKey !== undefined) await s3.delete(partialKey);
      return undefined;
    } catch (err) {
      await this.#discard();
      throw err;
    } finally {
      await s3.delete(tempKey).catch(() => {});
      this.#plan.active.delete(tempKey);
    }
  }

  async abort(): Promise<void> {
    this.#done = true;
    await this.#discard();
    this.#plan.active.delete(this.#plan.tempKey);
    // What was kept is part of what was written, and a failed upload keeps nothing.
    if (this.#plan.partialKey !== undefined) await this.#plan.s3.delete(this.#plan.partialKey);
  }

  async suspend(): Promise<number> {
    if (this.#done) return 0;
    const { s3, tempKey, partialKey } = this.#plan;
    const kept = this.#bytes;
    if (partialKey === undefined || kept === 0 || this.#failure !== undefined) {
      await this.abort();
      return 0;
    }
    this.#done = true;
    try {
      if (this.#uploadId === undefined) {
        await s3.put(partialKey, this.#buffer.subarray(0, this.#filled));
      } else {
        const size = await this.#complete();
        await s3.copy(tempKey, partialKey, { size });
      }
      return kept;
    } catch {
      await this.#discard();
      return 0;
    } finally {
      await s3.delete(tempKey).catch(() => {});
      this.#plan.active.delete(tempKey);
    }
  }

  async #begin(): Promise<void> {
    this.#uploadId = await this.#plan.s3.startMultipart(
      this.#plan.tempKey,
      {},
      escapeName(this.#plan.path),
    );
  }

  #track(part: Promise<string>): void {
    part.catch((err) => this.#failure ??= err);
    this.#parts.push(part);
  }

  async #sendPart(): Promise<void> {
    if (this.#uploadId === undefined) await this.#begin();
    // Backpressure: the writer waits while too many parts are in flight.
    const waiting = this.#parts.length - this.#inFlight;
    if (waiting >= 0) await this.#parts[waiting];
    this.#usable(false);
    const full = this.#buffer;
    const body = full.subarray(0, this.#filled);
    this.#buffer = new Uint8Array(0);
    this.#filled = 0;
    const number = this.#parts.length + 1;
    const sent = this.#plan.s3.uploadPart(
      this.#plan.tempKey,
      this.#uploadId!,
      number,
      body,
      escapeName(this.#plan.path),
    );
    // Once sent, its buffer takes the next part.
    sent.then(() => this.#spare.push(full), () => {});
    this.#track(sent);
  }

  /** Send the last part, complete the temporary object: its size. */
  async #complete(): Promise<number> {
    const size = this.#bytes;
    if (this.#filled > 0) await this.#sendPart();
    const etags = await Promise.all(this.#parts);
    await this.#plan.s3.completeMultipart(
      this.#plan.tempKey,
      this.#uploadId!,
      etags,
      escapeName(this.#plan.path),
    );
    this.#uploadId = undefined;
    return size;
  }

  /** Drop the multipart upload and what its parts hold. */
  async #discard(): Promise<void> {
    this.#buffer = new Uint8Array(0);
    this.#filled = 0;
    const id = this.#uploadId;
    this.#uploadId = undefined;
    if (id === undefined) return;
    await Promise.allSettled(this.#parts);
    await this.#plan.s3.abortMultipart(this.#plan.tempKey, id).catch(() => {});
  }

  #usable(done = true): void {
    if (done && this.#done) {
      throw new FerryError("CANCELLED", `${escapeName(this.#plan.path)} was closed`);
    }
    if (this.#failure !== undefined) throw this.#failure;
  }

  #mismatch(have: number): FerryError {
    return new FerryError(
      "RESUME_MISMATCH",
      `cannot resume ${escapeName(this.#plan.path)} at byte ${this.#plan.offset}: only ${have} ` +
        `are here`,
    );
  }
}
