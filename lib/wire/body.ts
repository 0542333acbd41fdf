/**
 * File content on the wire, the same in both directions: DATA frames, then
 * an END trailer with the SHA-256 of everything sent. The receiver checks
 * the size and the hash before it lets the content be committed.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { errorFromMessage, parseEnd } from "../commands.ts";
import { FerryError } from "../util/errors.ts";
import { decodeMessage, type Frame, FrameType, frameTypeName, HEADER_SIZE } from "../frame.ts";
import type { FrameConn } from "./frame_conn.ts";

/** Where content is read from: a `Deno.FsFile` or a storage read handle. */
export interface ByteSource {
  read(buf: Uint8Array): Promise<number | null>;
  /**
   * Throw if the content changed since it was opened; {@linkcode sendBody}
   * calls it after the last read, before it vouches for the bytes with END.
   */
  check?(): void;
}

/** Where received content goes: an `AtomicFile` or a storage upload. */
export interface ByteSink {
  write(chunk: Uint8Array): void | Promise<void>;
}

/** Options for {@linkcode sendBody}. */
export interface SendBodyOptions {
  /** Checked between chunks; when it returns true the body stops early and the call throws CANCELLED. */
  stopped?: () => boolean;
  /** Called after each chunk with the bytes sent so far. */
  onProgress?: (bytes: number) => void;
  /** The content's SHA-256, when already known: skips hashing on this side. */
  sha256?: string;
  /**
   * A hash already fed with content before this body (a resumed transfer's
   * first bytes, see {@linkcode hashPrefix}): END then carries the SHA-256
   * of the whole file, not just of the bytes sent.
   */
  hash?: Hash;
  /** Bytes of the file before this body (a resumed transfer), for the count in END. */
  offset?: number;
}

/**
 * Send exactly `size` bytes of `source` as DATA frames, then END with their
 * SHA-256 and count; with `size` undefined, everything up to the source's
 * end. Returns the SHA-256 (hex) and the byte count of what was sent. A
 * source that ends early is an IO error; bytes past `size` are not sent; a
 * source that changed while it was read (see {@linkcode ByteSource.check})
 * fails before END.
 *
 * `buf` is the reused send buffer, used as two halves: the next chunk is read
 * and hashed into one while the other is still being written to the socket.
 * Each half keeps `HEADER_SIZE` bytes of room in front, so that the header is
 * written in place and no chunk is ever copied.
 *
 * With `options.sha256` (a hash the caller already knows, e.g. cached by the
 * server) nothing is hashed here; the receiver still checks it, so a stale
 * hash can only fail the transfer, never corrupt it.
 */
export async function sendBody(
  fc: FrameConn,
  id: number,
  source: ByteSource,
  size: number | undefined,
  buf: Uint8Array,
  options: SendBodyOptions = {},
): Promise<{ sha256: string; bytes: number }> {
  const hash = options.sha256 ? undefined : options.hash ?? createHash("sha256");
  const half = Math.floor(buf.length / 2);
  const halves = [buf.subarray(0, half), buf.subarray(half, 2 * half)];
  const chunk = half - HEADER_SIZE;
  let sent = 0;
  let writing: Promise<void> | undefined;
  try {
    for (let i = 0; size === undefined || sent < size; i ^= 1) {
      if (options.stopped?.()) throw new FerryError("CANCELLED", "transfer stopped");
      const b = halves[i];
      const want = size === undefined ? chunk : Math.min(chunk, size - sent);
      const n = await source.read(b.subarray(HEADER_SIZE, HEADER_SIZE + want));
      if (n === null) {
        if (size === undefined) break;
        throw new FerryError("IO", `file shrank while being read (${sent} of ${size} bytes)`);
      }
      if (n === 0) continue;
      hash?.update(b.subarray(HEADER_SIZE, HEADER_SIZE + n));
      // The other half's write must finish before this one starts: then this
      // half, used two rounds ago, is free again by the time it is refilled.
      await writing;
      writing = fc.sendFramed(FrameType.DATA, id, b, n);
      // Mark it handled now: it may fail while the next read is pending, and an
      // unhandled rejection ends the process. It is still awaited, and throws, below.
      writing.catch(() => {});
      sent += n;
      options.onProgress?.(sent);
    }
    await writing;
    source.check?.();
  } catch (err) {
    await writing?.catch(() => {});
    throw err;
  }
  const sha256 = hash ? hash.digest("hex") : options.sha256!;
  // The count is the whole content's, like the hash: a resumed body's earlier bytes too.
  const bytes = (options.offset ?? 0) + sent;
  await fc.postMessage(FrameType.END, id, { sha256, size: bytes });
  return { sha256, bytes: sent };
}

/**
 * The receiver's own check failed: what arrived does not hash to what the
 * sender vouched for. (A sender's refusal, such as a file that changed while
 * it was sent, is an INTEGRITY error too, but not this one.)
 */
export class ChecksumMismatch extends FerryError {
  /** `message` says what did not match. */
  constructor(message: string) {
    super("INTEGRITY", message);
    this.name = "ChecksumMismatch";
  }
}

/** Options for {@linkcode BodyReceiver}. */
export interface ReceiveOptions {
  /** Bytes of the file already in the sink before this body (a resumed transfer). */
  offset?: number;
  /**
   * For a body of unknown size: the most bytes taken (LIMIT beyond), and
   * what to call the limit in the message.
   */
  limit?: { bytes: number; what: string };
  /** A hash already fed with those bytes (see {@linkcode hashPrefix}). */
  hash?: Hash;
  /** Hears the running total, `offset` included. */
  onProgress?: (bytes: number) => void;
}

/**
 * Receives one body: feed it the DATA and END frames of a transfer; it
 * writes DATA to the sink and, at END, checks size and hash of the whole
 * file (with `offset`, the bytes already there count too).
 *
 * @example
 * ```ts ignore
 * const receiver = new BodyReceiver(size, file);
 * for (;;) {
 *   const sha256 = await receiver.accept(await fc.read());
 *   if (sha256) break;
 * }
 * ```
 */
export class BodyReceiver {
  readonly #size: number | undefined;
  readonly #limit: { bytes: number; what: string } | undefined;
  readonly #sink: ByteSink;
  readonly #onProgress: ((bytes: number) => void) | undefined;
  readonly #hash: Hash;
  #received: number;
  #done = false;

  /** Expect a file of `size` bytes (undefined: not known up front), written to `sink`. */
  constructor(size: number | undefined, sink: ByteSink, options: ReceiveOptions = {}) {
    this.#size = size;
    this.#limit = options.limit;
    this.#sink = sink;
    this.#onProgress = options.onProgress;
    this.#received = options.offset ?? 0;
    this.#hash = options.hash ?? createHash("sha256");
  }

  /** Bytes of the file in the sink so far, the resumed offset included. */
  get received(): number {
    return this.#received;
  }

  /** Whether END (or ERROR) was seen: no more frames of this body will come. */
  get done(): boolean {
    return this.#done;
  }

  /**
   * Take the next frame of the body. Returns the verified SHA-256 at END,
   * `undefined` while more is expected. Throws INTEGRITY on a size or hash
   * mismatch, the sender's error on ERROR, PROTOCOL on any other frame.
   */
  async accept(frame: Frame): Promise<string | undefined> {
    switch (frame.type) {
      case FrameType.DATA: {
        const n = frame.payload.length;
        if (this.#size !== undefined && this.#received + n > this.#size) {
          throw new FerryError("INTEGRITY", `more data than the announced ${this.#size} bytes`);
        }
        if (this.#limit && this.#received + n > this.#limit.bytes) {
          throw new FerryError(
            "LIMIT",
            `more than ${this.#limit.bytes} bytes: over ${this.#limit.what}`,
          );
        }
        this.#hash.update(frame.payload);
        this.#received += n;
        await this.#sink.write(frame.payload);
        this.#onProgress?.(this.#received);
        return undefined;
      }
      case FrameType.END: {
        this.#done = true;
        const end = parseEnd(decodeMessage(frame));
        const size = this.#size ?? end.size;
        if (size === undefined) {
          throw new FerryError("PROTOCOL", "END of a body of unknown size lacks its size");
        }
        if (this.#received !== size || (end.size !== undefined && end.size !== size)) {
          throw new FerryError(
            "INTEGRITY",
            `size mismatch: received ${this.#received} of ${end.size ?? size} bytes`,
          );
        }
        const { sha256 } = end;
        const actual = this.#hash.digest("hex");
        if (actual !== sha256) {
          throw new ChecksumMismatch("SHA-256 mismatch: content corrupted in transit");
        }
        return actual;
      }
      case FrameType.ERROR:
        this.#done = true;
        throw errorFromMessage(decodeMessage(frame));
      default:
        throw new FerryError("PROTOCOL", `unexpected ${frameTypeName(frame.type)} frame in a body`);
    }
  }
}

/** SHA-256 (hex) of exactly `size` bytes of `source`, read through `buf`. */
export async function hashSource(
  source: ByteSource,
  size: number,
  buf: Uint8Array,
): Promise<string> {
  return (await hashPrefix(source, size, buf)).digest("hex");
}

/**
 * A SHA-256 state fed with exactly the next `size` bytes of `source`: the
 * first bytes of a resumed transfer. Its `copy().digest("hex")` is the hash
 * to compare with the other side's; the state itself goes on to hash the
 * rest, so the whole file is checked without reading the prefix twice.
 */
export async function hashPrefix(
  source: ByteSource,
  size: number,
  buf: Uint8Array,
): Promise<Hash> {
  const hash = createHash("sha256");
  let done = 0;
  while (done < size) {
    const n = await source.read(buf.subarray(0, Math.min(buf.length, size - done)));
    if (n === null) {
      throw new FerryError("IO", `file shrank while being read (${done} of ${size} bytes)`);
    }
    hash.update(buf.subarray(0, n));
    done += n;
  }
  return hash;
}
