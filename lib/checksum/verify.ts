/**
 * The receiving end of every transfer: count the bytes, hash them, pass
 * them on, and at the end check both against what the sender vouched for.
 * The protocol's body receiver, ferryd's uploads and the client's
 * downloads all verify through it.
 *
 * @module
 */

import { FerryError } from "../util/errors.ts";
import { type Algorithm, algorithmName, type Digest, type Hasher, hasher } from "./checksum.ts";

/** Where verified content goes: a temporary file, a storage upload, a stream. */
export interface ByteSink {
  /** Take the next chunk; it is only valid during the call. */
  write(chunk: Uint8Array): void | Promise<void>;
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

/** Options for {@linkcode Verifier}. */
export interface VerifierOptions {
  /** The checksum the sender vouches with (the connection's). */
  algorithm: Algorithm;
  /** Bytes of the file already in the sink before these (a resumed transfer). */
  offset?: number;
  /** A running checksum (of `algorithm`) already fed with those bytes. Default: a fresh one. */
  prefix?: Hasher;
  /**
   * For content of unknown size: the most bytes taken (LIMIT beyond), and
   * what to call the limit in the message.
   */
  limit?: { bytes: number; what: string };
  /** Hears the running total, the offset included. */
  onProgress?: (bytes: number) => void;
}

/** What the sender vouched for at the end: the whole content's checksum, and its size if sent. */
export interface Claim {
  /**
   * The checksum the sender vouches for. Absent where the sender gave none
   * (an HTTP upload without `Content-Digest`): only the size is checked.
   */
  digest?: Digest;
  size?: number;
}

/**
 * Counts, hashes and passes on a file's content, then checks it.
 *
 * @example
 * ```ts
 * import { hasher } from "./checksum.ts";
 * import { Verifier } from "./verify.ts";
 * const chunks: Uint8Array[] = [];
 * const bytes = new TextEncoder().encode("hello");
 * const sink = { write: (c: Uint8Array) => void chunks.push(c.slice()) };
 * const verifier = new Verifier(5, sink, { algorithm: "sha256" });
 * await verifier.write(bytes);
 * const expected = hasher("sha256");
 * expected.update(bytes);
 * const digest = verifier.end({ digest: expected.digest() });
 * console.assert(digest.hex.startsWith("2cf24dba") && chunks.length === 1);
 * ```
 */
export class Verifier {
  readonly #size: number | undefined;
  readonly #sink: ByteSink;
  readonly #hasher: Hasher;
  readonly #limit: { bytes: number; what: string } | undefined;
  readonly #onProgress: ((bytes: number) => void) | undefined;
  #received: number;

  /** Expect a file of `size` bytes (undefined: not known up front), passed on to `sink`. */
  constructor(size: number | undefined, sink: ByteSink, options: VerifierOptions) {
    this.#size = size;
    this.#sink = sink;
    this.#hasher = options.prefix ?? hasher(options.algorithm);
    this.#limit = options.limit;
    this.#onProgress = options.onProgress;
    this.#received = options.offset ?? 0;
  }

  /** Bytes of the file so far, a resumed offset included. */
  get received(): number {
    return this.#received;
  }

  /**
   * Take the next chunk: INTEGRITY if it goes past the announced size, LIMIT
   * past the limit of content of unknown size.
   */
  write(chunk: Uint8Array): void | Promise<void> {
    const n = chunk.length;
    if (this.#size !== undefined && this.#received + n > this.#size) {
      throw new FerryError("INTEGRITY", `more data than the announced ${this.#size} bytes`);
    }
    if (this.#limit && this.#received + n > this.#limit.bytes) {
      throw new FerryError(
        "LIMIT",
        `more than ${this.#limit.bytes} bytes: over ${this.#limit.what}`,
      );
    }
    this.#hasher.update(chunk);
    this.#received += n;
    // A sink that writes at once (a file) costs no promise a chunk.
    const writing = this.#sink.write(chunk);
    if (writing) return writing.then(() => this.#onProgress?.(this.#received));
    this.#onProgress?.(this.#received);
  }

  /**
   * The end: the size (announced, or claimed now) must be what arrived, and
   * the checksum what the sender vouched for (ChecksumMismatch otherwise).
   * Returns the verified checksum.
   */
  end(claim: Claim): Digest {
    const size = this.#size ?? claim.size;
    if (size === undefined) {
      throw new FerryError("PROTOCOL", "the end of content of unknown size lacks its size");
    }
    if (this.#received !== size || (claim.size !== undefined && claim.size !== size)) {
      throw new FerryError(
        "INTEGRITY",
        `size mismatch: received ${this.#received} of ${claim.size ?? size} bytes`,
      );
    }
    const actual = this.#hasher.digest();
    if (claim.digest === undefined) return actual;
    if (actual.algorithm !== claim.digest.algorithm || actual.hex !== claim.digest.hex) {
      throw new ChecksumMismatch(
        `${algorithmName(actual.algorithm)} mismatch: content corrupted in transit`,
      );
    }
    return actual;
  }
}
