/**
 * File content on the wire, the same in both directions: DATA frames, then
 * an END trailer with the checksum and size of the whole file. The
 * receiver verifies both (see `Verifier`) before it lets the content be
 * committed.
 *
 * @module
 */

import { type Algorithm, type Digest, type Hasher, hasher } from "../checksum/checksum.ts";
import type { Claim } from "../checksum/verify.ts";
import { endMessage, errorFromMessage, parseEnd } from "../commands.ts";
import { FerryError } from "../util/errors.ts";
import { decodeMessage, type Frame, FrameType, frameTypeName } from "../frame.ts";
import { decompressChunk } from "./compress.ts";
import { FrameHalves } from "./frame_halves.ts";
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

/** Options for {@linkcode sendBody}. */
export interface SendBodyOptions {
  /** The checksum END vouches with (the connection's). */
  algorithm: Algorithm;
  /** Checked between chunks; when it returns true the body stops early and the call throws CANCELLED. */
  stopped?: () => boolean;
  /** Called after each chunk with the bytes sent so far. */
  onProgress?: (bytes: number) => void;
  /** The content's checksum, when already known: skips hashing on this side. */
  known?: Digest;
  /**
   * A running checksum already fed with content before this body (a resumed
   * transfer's first bytes, see `hashPrefix`): END then vouches for the
   * whole file, not just the bytes sent.
   */
  prefix?: Hasher;
  /** Bytes of the file before this body (a resumed transfer), for the count in END. */
  offset?: number;
  /** Send chunks that zstd shrinks as ZDATA (the connection negotiated compression). */
  compress?: boolean;
}

/**
 * Send exactly `size` bytes of `source` as DATA frames, then END with their
 * checksum and count; with `size` undefined, everything up to the source's
 * end. Returns the checksum and the bytes sent. A source that ends early is
 * an IO error; bytes past `size` are not sent; a source that changed while
 * it was read (see {@linkcode ByteSource.check}) fails before END.
 *
 * `buf` is the reused send buffer, used as two halves: the next chunk is read
 * and hashed into one while the other is still being written to the socket.
 * Each half keeps `HEADER_SIZE` bytes of room in front, so that the header is
 * written in place and no chunk is ever copied.
 *
 * With `options.known` (a checksum the caller already knows, e.g. cached by
 * the server) nothing is hashed here; the receiver still checks it, so a
 * stale one can only fail the transfer, never corrupt it.
 */
export async function sendBody(
  fc: FrameConn,
  id: number,
  source: ByteSource,
  size: number | undefined,
  buf: Uint8Array,
  options: SendBodyOptions,
): Promise<{ digest: Digest; bytes: number }> {
  const running = options.known ? undefined : options.prefix ?? hasher(options.algorithm);
  const halves = new FrameHalves(fc, id, buf, options.compress === true);
  const chunk = halves.payload(0).length;
  let sent = 0;
  try {
    for (let i = 0; size === undefined || sent < size; i ^= 1) {
      if (options.stopped?.()) throw new FerryError("CANCELLED", "transfer stopped");
      const want = size === undefined ? chunk : Math.min(chunk, size - sent);
      const payload = halves.payload(i);
      const n = await source.read(payload.subarray(0, want));
      if (n === null) {
        if (size === undefined) break;
        // A file shrunk under the reader: a change like any other, which it names.
        source.check?.();
        throw new FerryError("IO", `file shrank while being read (${sent} of ${size} bytes)`);
      }
      if (n === 0) continue;
      // Hashed (and compressed) while the other half is still being written: the checksum is the
      // plain bytes'.
      running?.update(payload.subarray(0, n));
      await halves.send(i, n);
      sent += n;
      options.onProgress?.(sent);
    }
    await halves.flushed();
    source.check?.();
  } catch (err) {
    await halves.settled();
    throw err;
  }
  const digest = running ? running.digest() : options.known!;
  // The count is the whole content's, like the checksum: a resumed body's earlier bytes too.
  await fc.postMessage(FrameType.END, id, endMessage(digest, (options.offset ?? 0) + sent));
  return { digest, bytes: sent };
}

/**
 * What a received body goes to: something that counts and checks what it is
 * given, such as a `Verifier`, or a server's incoming file, which also
 * stores it at the end.
 */
export interface BodyTarget {
  /** Bytes of the file so far, a resumed offset included. */
  readonly received: number;
  /** The next chunk (valid during the call only). */
  write(chunk: Uint8Array): void | Promise<void>;
  /** The sender's claim at the end: check it, and answer the verified checksum. */
  end(claim: Claim): Digest | Promise<Digest>;
}

/**
 * Receives one body: feed it the DATA and END frames of a transfer; it hands
 * DATA to its {@linkcode BodyTarget} and, at END, has it check the size and
 * checksum of the whole file.
 *
 * @example
 * ```ts ignore
 * const receiver = new BodyReceiver(new Verifier(size, file, { algorithm }), algorithm);
 * for (;;) {
 *   const digest = await receiver.accept(await fc.read());
 *   if (digest) break;
 * }
 * ```
 */
export class BodyReceiver {
  readonly #verifier: BodyTarget;
  readonly #algorithm: Algorithm;
  /** The most a ZDATA frame may decompress to; undefined when compression was not negotiated. */
  readonly #maxPlain: number | undefined;
  #done = false;

  /**
   * Receive into `target`, with END's checksum in `algorithm` (the
   * connection's). With `maxPlain`, the connection negotiated compression:
   * ZDATA frames are taken, each decompressing to at most that many bytes.
   */
  constructor(target: BodyTarget, algorithm: Algorithm, maxPlain?: number) {
    this.#verifier = target;
    this.#algorithm = algorithm;
    this.#maxPlain = maxPlain;
  }

  /** Bytes of the file so far, a resumed offset included. */
  get received(): number {
    return this.#verifier.received;
  }

  /** Whether END (or ERROR) was seen: no more frames of this body will come. */
  get done(): boolean {
    return this.#done;
  }

  /**
   * Take the next frame of the body. Returns the verified checksum at END,
   * `undefined` while more is expected. Throws INTEGRITY on a size or
   * checksum mismatch, the sender's error on ERROR, PROTOCOL on any other
   * frame.
   */
  async accept(frame: Frame): Promise<Digest | undefined> {
    switch (frame.type) {
      case FrameType.DATA: {
        const writing = this.#verifier.write(frame.payload);
        if (writing) await writing;
        return undefined;
      }
      case FrameType.ZDATA: {
        if (this.#maxPlain === undefined) {
          throw new FerryError(
            "PROTOCOL",
            "a compressed frame on a connection without compression",
          );
        }
        const writing = this.#verifier.write(decompressChunk(frame.payload, this.#maxPlain));
        if (writing) await writing;
        return undefined;
      }
      case FrameType.END: {
        this.#done = true;
        const end = parseEnd(decodeMessage(frame), this.#algorithm);
        return await this.#verifier.end(end);
      }
      case FrameType.ERROR:
        this.#done = true;
        throw errorFromMessage(decodeMessage(frame));
      default:
        throw new FerryError("PROTOCOL", `unexpected ${frameTypeName(frame.type)} frame in a body`);
    }
  }
}
