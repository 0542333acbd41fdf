/**
 * Checksums, one way for every transfer: which algorithms there are, a
 * running hash of content as it passes, the hash of a source, a prefix
 * hashed so that the rest continues it, and the check of a resume point.
 * Nothing else in ferry names an algorithm: the wire, the reports and the
 * storage carry {@linkcode Digest}s.
 *
 * @module
 */

import { FerryError } from "../util/errors.ts";
import { sha256Hasher } from "./sha256.ts";
import type { Algorithm, Digest, Hasher } from "./types.ts";

export type { Algorithm, Digest, Hasher } from "./types.ts";

/** The algorithm every transfer is checked with (until peers negotiate another). */
export const DEFAULT_ALGORITHM: Algorithm = "sha256";

/**
 * A fresh running checksum.
 *
 * @example
 * ```ts
 * import { hasher } from "./checksum.ts";
 * const h = hasher("sha256");
 * h.update(new TextEncoder().encode("abc"));
 * console.assert(h.digest().hex.startsWith("ba7816bf"));
 * ```
 */
export function hasher(algorithm: Algorithm = DEFAULT_ALGORITHM): Hasher {
  switch (algorithm) {
    case "sha256":
      return sha256Hasher();
  }
}

/**
 * How an algorithm is called in messages.
 *
 * @example
 * ```ts
 * import { algorithmName } from "./checksum.ts";
 * console.assert(algorithmName("sha256") === "SHA-256");
 * ```
 */
export function algorithmName(algorithm: Algorithm): string {
  return NAMES[algorithm];
}

const NAMES: Record<Algorithm, string> = { sha256: "SHA-256" };

/** Whether `text` is a well-formed value of `algorithm` (lowercase hex of its length). */
export function isDigestHex(algorithm: Algorithm, text: unknown): text is string {
  return typeof text === "string" && HEX[algorithm].test(text);
}

const HEX: Record<Algorithm, RegExp> = { sha256: /^[0-9a-f]{64}$/ };

/** What content is read from for hashing: a file, a storage read handle, an upload's prefix. */
export interface Readable {
  read(buf: Uint8Array): Promise<number | null>;
}

/**
 * A running checksum fed with exactly the next `size` bytes of `source`,
 * read through `buf`: the first bytes of a resumed transfer. Its copy's
 * digest is what is compared with the other side's; the state itself goes
 * on to hash the rest, so the whole file is checked without reading the
 * prefix twice. A source that ends early is an IO error.
 *
 * @example
 * ```ts
 * import { hashPrefix } from "./checksum.ts";
 * const bytes = new TextEncoder().encode("abcdef");
 * let at = 0;
 * const source = {
 *   read: (buf: Uint8Array) => {
 *     const n = Math.min(buf.length, bytes.length - at);
 *     buf.set(bytes.subarray(at, at + n));
 *     at += n;
 *     return Promise.resolve(n === 0 ? null : n);
 *   },
 * };
 * const state = await hashPrefix(source, 3, new Uint8Array(2));
 * console.assert(state.copy().digest().hex.startsWith("ba7816bf")); // "abc"
 * ```
 */
export async function hashPrefix(
  source: Readable,
  size: number,
  buf: Uint8Array,
  algorithm: Algorithm = DEFAULT_ALGORITHM,
): Promise<Hasher> {
  const state = hasher(algorithm);
  let done = 0;
  while (done < size) {
    const n = await source.read(buf.subarray(0, Math.min(buf.length, size - done)));
    if (n === null) {
      throw new FerryError("IO", `file shrank while being read (${done} of ${size} bytes)`);
    }
    state.update(buf.subarray(0, n));
    done += n;
  }
  return state;
}

/** The checksum of exactly `size` bytes of `source`, read through `buf`. */
export async function hashSource(
  source: Readable,
  size: number,
  buf: Uint8Array,
  algorithm: Algorithm = DEFAULT_ALGORITHM,
): Promise<Digest> {
  return (await hashPrefix(source, size, buf, algorithm)).digest();
}

/** The checksum of everything `source` holds, to its end, read through `buf`. */
export async function hashToEnd(
  source: Readable,
  buf: Uint8Array,
  algorithm: Algorithm = DEFAULT_ALGORITHM,
): Promise<Digest> {
  const state = hasher(algorithm);
  for (;;) {
    const n = await source.read(buf);
    if (n === null) return state.digest();
    state.update(buf.subarray(0, n));
  }
}

/**
 * Check a resume point: the `offset` bytes held here (hashed into `held`)
 * must be those the other side vouched for (`claimed`), or the transfer
 * cannot continue from them (RESUME_MISMATCH; the caller starts over).
 * `what` names the file and where its bytes are, for the message.
 *
 * @example
 * ```ts
 * import { checkResumePoint, hasher } from "./checksum.ts";
 * const held = hasher();
 * checkResumePoint(held, held.copy().digest().hex, 0, "a.bin"); // the same: no throw
 * ```
 */
export function checkResumePoint(
  held: Hasher,
  claimed: string | undefined,
  offset: number,
  what: string,
): void {
  if (claimed === undefined || held.copy().digest().hex !== claimed) {
    throw new FerryError(
      "RESUME_MISMATCH",
      `cannot resume ${what}: the first ${offset} bytes differ`,
    );
  }
}
