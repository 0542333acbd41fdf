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
import { loadXxh128, xxh128Hasher, xxh128Hex, type Xxh128Implementation } from "./xxh128.ts";

export type { Algorithm, Digest, Hasher } from "./types.ts";
export type { Xxh128Implementation } from "./xxh128.ts";
export { xxh128Implementation } from "./xxh128.ts";

/**
 * Every algorithm, in ferry's order of preference: what a client offers and
 * a server accepts unless told otherwise.
 */
export const ALGORITHMS: readonly Algorithm[] = ["xxh128", "sha256"];

/** The algorithm transfers are checked with when nobody asks for another. */
export const DEFAULT_ALGORITHM: Algorithm = "xxh128";

/**
 * Whether `text` names an algorithm.
 *
 * @example
 * ```ts
 * import { isAlgorithm } from "./checksum.ts";
 * console.assert(isAlgorithm("xxh128") && !isAlgorithm("md5"));
 * ```
 */
export function isAlgorithm(text: unknown): text is Algorithm {
  return text === "xxh128" || text === "sha256";
}

/**
 * Parse a comma-separated list of algorithms (`xxh128,sha256`), as the
 * `--checksum` options take it: USAGE for an unknown name or an empty list.
 *
 * @example
 * ```ts
 * import { parseAlgorithms } from "./checksum.ts";
 * console.assert(parseAlgorithms("sha256, xxh128").join() === "sha256,xxh128");
 * ```
 */
export function parseAlgorithms(text: string): Algorithm[] {
  const names = text.split(",").map((n) => n.trim().toLowerCase()).filter((n) => n !== "");
  const list: Algorithm[] = [];
  for (const name of names) {
    const algorithm = ALIASES[name] ?? name;
    if (!isAlgorithm(algorithm)) {
      throw new FerryError("USAGE", `unknown checksum '${name}' (known: ${ALGORITHMS.join(", ")})`);
    }
    if (!list.includes(algorithm)) list.push(algorithm);
  }
  if (list.length === 0) {
    throw new FerryError("USAGE", `no checksum named (known: ${ALGORITHMS.join(", ")})`);
  }
  return list;
}

const ALIASES: Record<string, Algorithm> = {
  "xxh3-128": "xxh128",
  "xxh3": "xxh128",
  "sha-256": "sha256",
};

/**
 * Make `algorithm` ready to use: XXH3-128 loads its implementation (see
 * `xxh128.ts`) on first use. Resolves to how it is computed.
 *
 * @example
 * ```ts
 * import { loadAlgorithm } from "./checksum.ts";
 * console.assert(await loadAlgorithm("sha256") === "node:crypto");
 * ```
 */
export async function loadAlgorithm(
  algorithm: Algorithm,
): Promise<Xxh128Implementation | "node:crypto"> {
  return algorithm === "xxh128" ? await loadXxh128() : "node:crypto";
}

/**
 * A fresh running checksum. XXH3-128 needs {@linkcode loadAlgorithm} first.
 *
 * @example
 * ```ts
 * import { hasher } from "./checksum.ts";
 * const h = hasher("sha256");
 * h.update(new TextEncoder().encode("abc"));
 * console.assert(h.digest().hex.startsWith("ba7816bf"));
 * ```
 */
export function hasher(algorithm: Algorithm): Hasher {
  switch (algorithm) {
    case "sha256":
      return sha256Hasher();
    case "xxh128":
      return xxh128Hasher();
  }
}

/**
 * The checksum of `bytes` at once, in lowercase hex (see
 * {@linkcode loadAlgorithm}): what a small file's record carries.
 *
 * @example
 * ```ts
 * import { hashBytes } from "./checksum.ts";
 * const hex = hashBytes("sha256", new TextEncoder().encode("abc"));
 * console.assert(hex.startsWith("ba7816bf"));
 * ```
 */
export function hashBytes(algorithm: Algorithm, bytes: Uint8Array): string {
  if (algorithm === "xxh128") return xxh128Hex(bytes);
  const h = sha256Hasher();
  h.update(bytes);
  return h.digest().hex;
}

/**
 * Whether the ASCII bytes `sum` spell `hex` (a checksum received against
 * one computed): no string is made of what arrived.
 *
 * @example
 * ```ts
 * import { sameHex } from "./checksum.ts";
 * console.assert(sameHex(new TextEncoder().encode("0a"), "0a"));
 * console.assert(!sameHex(new TextEncoder().encode("0A"), "0a"));
 * ```
 */
export function sameHex(sum: Uint8Array, hex: string): boolean {
  if (sum.length !== hex.length) return false;
  for (let i = 0; i < sum.length; i++) if (sum[i] !== hex.charCodeAt(i)) return false;
  return true;
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

const NAMES: Record<Algorithm, string> = { sha256: "SHA-256", xxh128: "XXH3-128" };

/** Whether `text` is a well-formed value of `algorithm` (lowercase hex of its length). */
export function isDigestHex(algorithm: Algorithm, text: unknown): text is string {
  return typeof text === "string" && HEX[algorithm].test(text);
}

const HEX: Record<Algorithm, RegExp> = {
  sha256: /^[0-9a-f]{64}$/,
  xxh128: /^[0-9a-f]{32}$/,
};

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
 * const state = await hashPrefix(source, 3, new Uint8Array(2), "sha256");
 * console.assert(state.peek().hex.startsWith("ba7816bf")); // "abc"
 * ```
 */
export async function hashPrefix(
  source: Readable,
  size: number,
  buf: Uint8Array,
  algorithm: Algorithm,
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
  algorithm: Algorithm,
): Promise<Digest> {
  return (await hashPrefix(source, size, buf, algorithm)).digest();
}

/** The checksum of everything `source` holds, to its end, read through `buf`. */
export async function hashToEnd(
  source: Readable,
  buf: Uint8Array,
  algorithm: Algorithm,
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
 * const held = hasher("sha256");
 * checkResumePoint(held, held.peek().hex, 0, "a.bin"); // the same: no throw
 * ```
 */
export function checkResumePoint(
  held: Hasher,
  claimed: string | undefined,
  offset: number,
  what: string,
): void {
  if (claimed === undefined || held.peek().hex !== claimed) {
    throw new FerryError(
      "RESUME_MISMATCH",
      `cannot resume ${what}: the first ${offset} bytes differ`,
    );
  }
}
