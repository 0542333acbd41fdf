/**
 * Downloads and uploads over a {@linkcode Connection}: resuming what an
 * interrupted transfer kept, verifying what arrives, and asking again when
 * a resume point or a remembered checksum turns out stale.
 *
 * @module
 */

import { basename, dirname } from "node:path";
import { type Digest, type Hasher, hashPrefix } from "../checksum/checksum.ts";
import { ChecksumMismatch, Verifier } from "../checksum/verify.ts";
import {
  errorToMessage,
  type GetReply,
  type GetRequest,
  parseGetReply,
  parsePartialReply,
  type PutRequest,
} from "../commands.ts";
import { FrameType } from "../frame.ts";
import { AtomicFile } from "../fs/atomic_file.ts";
import { resumeKey } from "../fs/temp_names.ts";
import { checkSpace, destination, SMALL_FILE } from "../fs/local_files.ts";
import { escapeName } from "../util/display.ts";
import { elapsed } from "../util/elapsed.ts";
import { connectionLost, FerryError, toFerryError } from "../util/errors.ts";
import { BodyReceiver, sendBody } from "../wire/body.ts";
import type { Connection, FrameHandler } from "./connection.ts";
import {
  cancelled,
  deviceSink,
  openFile,
  openStream,
  type Sink,
  streamSink,
  WroteThrough,
} from "./local_io.ts";

/**
 * What a finished transfer moved.
 *
 * @example
 * ```ts
 * import type { TransferResult } from "./transfers.ts";
 * const report = (r: TransferResult) =>
 *   `${r.bytes} bytes (+${r.resumed} resumed) in ${r.seconds.toFixed(1)} s, ` +
 *   `${r.checksum.algorithm} ${r.checksum.hex}`;
 * const checksum = { algorithm: "xxh128" as const, hex: "ab" };
 * console.log(report({ bytes: 10, resumed: 0, checksum, seconds: 0.1 }));
 * ```
 */
export interface TransferResult {
  /** Bytes of content moved by this transfer. */
  bytes: number;
  /** Bytes that an earlier, interrupted transfer had already moved (the file is `bytes + resumed`). */
  resumed: number;
  /** The whole file's checksum, verified by the receiver, in the connection's algorithm. */
  checksum: Digest;
  /** The same as hex, when the connection's checksum is SHA-256 (`--checksum sha256`). */
  sha256?: string;
  /** Wall-clock duration. */
  seconds: number;
}

/**
 * Options for `FerryClient.get` and `FerryClient.put`.
 *
 * @example
 * ```ts
 * import type { TransferOptions } from "./transfers.ts";
 * const options: TransferOptions = {
 *   resume: true,
 *   onProgress: (bytes) => console.log(`${bytes} bytes`),
 *   signal: AbortSignal.timeout(60_000),
 * };
 * console.assert(options.resume);
 * ```
 */
export interface TransferOptions {
  /** Refuse (EXISTS) rather than replace an existing destination file. */
  noClobber?: boolean;
  /**
   * Called once the size is known, before any content moves; undefined for
   * an upload of unknown size (a FIFO, a stream without `size`).
   */
  onStart?: (size: number | undefined) => void;
  /** Called as content moves, with the bytes of the file there so far (resumed ones included). */
  onProgress?: (bytes: number) => void;
  /**
   * If the connection is lost, keep what arrived (hidden, beside the
   * destination) so that a later transfer with `resume` can continue it.
   */
  keepPartial?: boolean;
  /**
   * Continue from what an earlier, interrupted transfer of the same file
   * kept, sending only the missing bytes (implies `keepPartial`). The kept
   * bytes are checked by checksum first; if they differ from the source, the
   * transfer starts over, and the final check covers the whole file. A
   * download written through (to a stream or a device) resumes nothing.
   */
  resume?: boolean;
  /**
   * The most bytes a download may announce (LIMIT beyond it, before a byte is
   * written). A download is also refused (NO_SPACE) when its local
   * filesystem has not room for it.
   */
  maxSize?: number;
  /**
   * Stop the transfer. An upload stops sending and fails with CANCELLED; the
   * connection goes on. A download cannot be stopped mid-body in protocol
   * version 1, so aborting one closes the connection: every request in
   * flight on it fails with CANCELLED, and the client must connect again.
   */
  signal?: AbortSignal;
}

/**
 * Options for `FerryClient.put`.
 *
 * @example
 * ```ts
 * import type { PutOptions } from "./transfers.ts";
 * const options: PutOptions = { size: 1024, mode: 0o644, mtime: Date.now(), noClobber: true };
 * console.assert(options.size === 1024);
 * ```
 */
export interface PutOptions extends TransferOptions {
  /**
   * Exact byte count of a stream source, when known (without it, the stream
   * is sent to its end and its size goes in the trailer); ignored for a file.
   */
  size?: number;
  /** Permission bits to give the stored file (a stream source; a file's own are used otherwise). */
  mode?: number;
  /** Modification time to give the stored file, ms since the epoch (a stream source). */
  mtime?: number;
}

/**
 * Where a download goes: a local file path, or a stream that receives the bytes as they arrive.
 *
 * @example
 * ```ts
 * import type { GetTarget } from "./transfers.ts";
 * const targets: GetTarget[] = ["./app.tar.gz", new WritableStream<Uint8Array>()];
 * console.assert(targets.length === 2);
 * ```
 */
export type GetTarget = string | WritableStream<Uint8Array>;

/**
 * What an upload sends: a local file path, or a stream.
 *
 * @example
 * ```ts
 * import type { PutSource } from "./transfers.ts";
 * const sources: PutSource[] = ["dist/app.tar.gz", new Blob(["hi"]).stream()];
 * console.assert(sources.length === 2);
 * ```
 */
export type PutSource = string | ReadableStream<Uint8Array>;

/** Bytes hashed at once when checking a resumed transfer's first bytes. */
const PREFIX_BUFFER = 256 * 1024;

/**
 * The most of a refused download's body worth reading to keep the
 * connection; beyond it the connection is closed instead.
 */
const DRAIN_LIMIT = 16 * 1024 * 1024;

/**
 * Download `remote` to `local`. When the kept bytes turn out not to match
 * (RESUME_MISMATCH), it starts over; when what arrived fails its check and
 * the server may have sent a checksum it only remembered (see
 * `GetRequest.retries`), it asks once more for one computed as it sends.
 */
export async function download(
  conn: Connection,
  remote: string,
  local: GetTarget,
  options: TransferOptions,
): Promise<TransferResult> {
  try {
    return await new Download(conn, remote, local, options).run();
  } catch (err) {
    if (options.resume && toFerryError(err).code === "RESUME_MISMATCH") {
      const fresh = { ...options, resume: false, keepPartial: true };
      return await new Download(conn, remote, local, fresh).run();
    }
    // A stream or a device has had the bytes already; and a file that changed while it was
    // sent fails as it is, to be sent again.
    if (
      err instanceof ChecksumMismatch && typeof local === "string" && !destination(local).device
    ) {
      return await new Download(conn, remote, local, { ...options, resume: false }, true).run();
    }
    throw err;
  }
}

/** One download attempt, from the request to the committed file. */
class Download {
  readonly #conn: Connection;
  readonly #remote: string;
  readonly #options: TransferOptions;
  readonly #fresh: boolean;
  readonly #started = performance.now();
  /** The local file the bytes go to; undefined for a caller's stream. */
  readonly #target: { path: string; shown: string; device: boolean } | undefined;
  #sink: Sink | undefined;
  #offset = 0;
  #prefix: Hasher | undefined;
  #meta: GetReply | undefined;
  #receiver: BodyReceiver | undefined;
  /** A local failure: the rest of the body is drained, then this is the answer. */
  #refused: FerryError | undefined;
  #drained = 0;

  constructor(
    conn: Connection,
    remote: string,
    local: GetTarget,
    options: TransferOptions,
    fresh = false,
  ) {
    this.#conn = conn;
    this.#remote = remote;
    this.#options = options;
    this.#fresh = fresh;
    if (typeof local === "string") this.#target = destination(local);
    else this.#sink = streamSink(local);
  }

  async run(): Promise<TransferResult> {
    const options = this.#options;
    if (options.signal?.aborted) throw cancelled("download");
    const target = this.#target;
    // Requests leave in the order they were made: nothing is awaited before this one is sent
    // but the hash of a kept prefix.
    const partial = this.#openPartial();
    if (partial) {
      await this.#hashPrefix(partial);
      // Stopped while the prefix was hashed (the listener below was not there to see it): the
      // partial is kept, as any interruption keeps it.
      if (options.signal?.aborted) {
        const e = cancelled("download");
        await this.#release(e);
        throw e;
      }
    }
    const message: GetRequest = {
      op: "get",
      path: this.#remote,
      offset: this.#prefix ? this.#offset : 0,
      ...(this.#prefix && { prefix: this.#prefix.peek().hex }),
      // Only a file can be dropped and asked for again (see GetRequest.retries).
      ...(this.#fresh
        ? { fresh: true }
        : target !== undefined && !target.device && { retries: true }),
    };
    const onAbort = () => this.#conn.close(cancelled("download"));
    options.signal?.addEventListener("abort", onAbort, { once: true });
    // However the request ends (an ERROR from the server, a lost connection), no temp file
    // stays, but a partial that a lost connection interrupted.
    try {
      return await this.#conn.request(message, this.#onFrame);
    } catch (err) {
      // A local failure outranks the lost connection that may have cut its draining short.
      const e = this.#refused ?? toFerryError(err);
      await this.#release(e);
      // What a stream or a device was given cannot be taken back.
      if ((!target || target.device) && this.#meta) {
        const shown = target ? `local ${escapeName(target.shown)}` : "the stream";
        throw new WroteThrough(e, shown, this.#receiver?.received ?? 0);
      }
      throw e;
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * A resumable download writes to a partial named after what it fetches
   * (the server, the remote path, the local name), which a later one can
   * find; with `resume` it keeps what the partial holds, else it starts it
   * afresh. A partial that another transfer is writing is left to it: this
   * one then writes a private temporary file.
   */
  #openPartial(): AtomicFile | undefined {
    const { resume, keepPartial } = this.#options;
    const target = this.#target;
    if (!target || target.device || !(resume || keepPartial)) return undefined;
    const key = resumeKey("xxh128", this.#conn.origin, this.#remote, basename(target.path));
    const partial = AtomicFile.resume(target.path, key, {
      offset: resume ? undefined : 0,
      takeover: false,
      shown: `local ${escapeName(target.shown)}`,
    });
    this.#sink = partial;
    this.#offset = partial?.offset ?? 0;
    return this.#offset > 0 ? partial : undefined;
  }

  /** The checksum of the kept bytes, which the server checks before it sends the rest. */
  async #hashPrefix(partial: AtomicFile): Promise<void> {
    try {
      const buf = new Uint8Array(PREFIX_BUFFER);
      this.#prefix = await hashPrefix(partial.prefix(), this.#offset, buf, this.#conn.algorithm);
    } catch (err) {
      await partial.abort();
      throw err;
    }
  }

  /** Keep what a lost connection (or a full disk, of a resumed file) interrupted; drop the rest. */
  async #release(err: FerryError): Promise<void> {
    const keep = connectionLost(err) || err.code === "CANCELLED" ||
      (err.code === "NO_SPACE" && this.#offset > 0);
    if (keep) await this.#sink?.suspend();
    else await this.#sink?.abort();
  }

  readonly #onFrame: FrameHandler<TransferResult> = async (frame, done, fail) => {
    if (this.#refused) {
      // Drain the rest of the body, then report the local failure; a sender that goes on
      // past what it announced is not drained for ever.
      this.#drained += frame.payload.length;
      const data = frame.type === FrameType.DATA ||
        (frame.type === FrameType.ZDATA && this.#conn.welcome.compress !== undefined);
      if (!data) fail(this.#refused);
      else if (this.#drained > (this.#meta?.size ?? 0) - this.#offset) {
        this.#conn.abandon(fail, this.#refused);
      }
      return;
    }
    try {
      if (!this.#meta) return await this.#begin(parseGetReply(this.#conn.expectReply(frame)));
      const digest = await this.#receiver!.accept(frame);
      if (digest === undefined) return;
      const meta = this.#meta;
      await this.#sink!.commit({
        mode: meta.mode,
        mtime: meta.mtime,
        noClobber: this.#options.noClobber,
      });
      done({
        bytes: this.#receiver!.received - this.#offset,
        resumed: this.#offset,
        checksum: digest,
        ...(digest.algorithm === "sha256" && { sha256: digest.hex }),
        seconds: elapsed(this.#started),
      });
    } catch (err) {
      const e = toFerryError(err);
      if (this.#meta && !this.#receiver) {
        // Refused on the announcement, before a byte was written. A large body is not worth
        // draining: the connection goes, and whatever else was in flight on it is retried
        // on a new one.
        await this.#release(e);
        if (this.#meta.size - this.#offset > DRAIN_LIMIT) return this.#conn.abandon(fail, e);
        this.#refused = e;
        return;
      }
      await this.#sink?.abort();
      if (this.#meta && !this.#receiver?.done) this.#refused = e;
      else fail(e);
    }
  };

  /**
   * The server's answer, before the body: check what it announces against
   * this disk, then open where the bytes go. The size is the server's word,
   * and a hostile or broken server must not fill this disk.
   */
  async #begin(meta: GetReply): Promise<void> {
    this.#meta = meta;
    const { maxSize, onStart, onProgress } = this.#options;
    if (meta.offset !== this.#offset) {
      throw new FerryError("PROTOCOL", `asked for byte ${this.#offset} on, got ${meta.offset}`);
    }
    if (maxSize !== undefined && meta.size > maxSize) {
      throw new FerryError(
        "LIMIT",
        `remote ${escapeName(this.#remote)} is ${meta.size} bytes, over the ${maxSize}` +
          "-byte limit for a download (--max-size)",
      );
    }
    const target = this.#target;
    // A small file that does not fit fails at its first write, as soon as a check would.
    if (target && !target.device && meta.size - this.#offset > SMALL_FILE) {
      const dir = dirname(target.path);
      checkSpace(dir, meta.size - this.#offset, `local ${escapeName(target.shown)}`, dir);
    }
    onStart?.(meta.size);
    // A FIFO is opened only now: its open waits for its reader.
    this.#sink ??= target!.device ? await deviceSink(target!) : AtomicFile.create(target!.path, {
      mode: meta.mode,
      shown: `local ${escapeName(target!.shown)}`,
    });
    const algorithm = this.#conn.algorithm;
    this.#receiver = new BodyReceiver(
      new Verifier(meta.size, this.#sink, {
        algorithm,
        offset: this.#offset,
        prefix: this.#prefix,
        onProgress,
      }),
      algorithm,
      this.#conn.welcome.compress ? this.#conn.welcome.limits.maxData : undefined,
    );
  }
}

/**
 * Upload `local` (a file, or a stream) to `remote`. When the bytes the
 * server kept turn out not to match (RESUME_MISMATCH), a file starts over.
 */
export async function upload(
  conn: Connection,
  local: PutSource,
  remote: string,
  options: PutOptions,
): Promise<TransferResult> {
  try {
    return await uploadOnce(conn, local, remote, options);
  } catch (err) {
    if (!options.resume || toFerryError(err).code !== "RESUME_MISMATCH") throw err;
    if (typeof local !== "string") throw err; // a stream cannot be read again from its start
    return await uploadOnce(conn, local, remote, { ...options, resume: false, keepPartial: true });
  }
}

async function uploadOnce(
  conn: Connection,
  local: PutSource,
  remote: string,
  options: PutOptions,
): Promise<TransferResult> {
  const started = performance.now();
  if (options.signal?.aborted) throw cancelled("upload");
  // Opened at once, so that the request leaves in the order it was made; only a FIFO or a
  // device waits (for a writer).
  const opening = typeof local === "string" ? openFile(local) : openStream(local, options);
  const source = opening instanceof Promise ? await opening : opening;
  // The body owns the source once it starts: it may still be reading when an early
  // error from the server settles the request.
  let bodyStarted = false;
  try {
    const { size, mtime } = source;
    if (size === undefined && !conn.welcome.features?.includes("streamed-put")) {
      throw new FerryError(
        "USAGE",
        `${conn.welcome.agent} cannot take an upload of unknown size (a pipe or a device); ` +
          "update it, or give the size",
      );
    }
    options.onStart?.(size);
    let offset = 0;
    let prefix: Hasher | undefined;
    // A stream of unknown size cannot be read again: it is never resumable.
    const resumable = size !== undefined && Boolean(options.resume || options.keepPartial);
    if (options.resume && size !== undefined) {
      const held = await conn.simple({ op: "partial", path: remote, size, mtime });
      offset = parsePartialReply(held, size);
      // Hashing the first bytes also moves the source to where the body starts.
      if (offset > 0) {
        prefix = await hashPrefix(source, offset, new Uint8Array(PREFIX_BUFFER), conn.algorithm);
      }
    }
    let sent: { digest?: Digest; bytes: number } = { bytes: 0 };
    let localError: FerryError | undefined;
    const message: PutRequest = {
      op: "put",
      path: remote,
      size,
      mode: source.mode,
      mtime,
      noClobber: options.noClobber ?? false,
      resume: resumable,
      offset,
      ...(prefix && { prefix: prefix.peek().hex }),
    };
    const { onProgress, signal } = options;
    const reply = conn.request<void>(
      message,
      (frame, done) => {
        conn.expectReply(frame);
        done();
      },
      async (id) => {
        bodyStarted = true;
        try {
          const rest = size === undefined ? undefined : size - offset;
          const body = await sendBody(conn.frames, id, source, rest, conn.sendBuf, {
            stopped: () => !conn.waiting(id) || Boolean(signal?.aborted),
            onProgress: onProgress && ((bytes) => onProgress(offset + bytes)),
            algorithm: conn.algorithm,
            compress: conn.welcome.compress === "zstd",
            prefix,
            offset,
          });
          sent = body;
        } catch (err) {
          const e = toFerryError(err);
          if (connectionLost(e)) throw e;
          if (e.code !== "CANCELLED") localError = e;
          // Ends the body early; the server drops what it has and answers with an error.
          await conn.frames.sendMessage(FrameType.ERROR, id, errorToMessage(e));
        } finally {
          source.close();
        }
      },
    );
    try {
      await reply;
    } catch (err) {
      throw localError ?? (signal?.aborted ? cancelled("upload") : err);
    }
    const checksum = sent.digest!;
    return {
      bytes: sent.bytes,
      resumed: offset,
      checksum,
      ...(checksum.algorithm === "sha256" && { sha256: checksum.hex }),
      seconds: elapsed(started),
    };
  } finally {
    if (!bodyStarted) source.close();
  }
}
