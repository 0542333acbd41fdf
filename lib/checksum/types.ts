/**
 * What a checksum is, whatever computes it: the algorithms' names, a
 * value, and a running computation.
 *
 * @module
 */

/**
 * The checksum algorithms ferry knows: `xxh128` (XXH3-128, fast; detects
 * corruption) and `sha256` (SHA-256, cryptographic; what published digests
 * use).
 */
export type Algorithm = "xxh128" | "sha256";

/**
 * A checksum: its algorithm and its value, in lowercase hex.
 *
 * @example
 * ```ts
 * import type { Digest } from "./types.ts";
 * const empty: Digest = {
 *   algorithm: "sha256",
 *   hex: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
 * };
 * console.assert(empty.hex.length === 64);
 * ```
 */
export interface Digest {
  /** Which checksum it is. */
  algorithm: Algorithm;
  /** Its value, lowercase hex. */
  hex: string;
}

/** A running checksum over content fed to it in order. */
export interface Hasher {
  /** The algorithm it computes. */
  readonly algorithm: Algorithm;
  /** Feed the next bytes; they are only read during the call. */
  update(bytes: Uint8Array): void;
  /** The checksum of what was fed so far; the hasher goes on. */
  peek(): Digest;
  /** The checksum of everything fed. The hasher is used up. */
  digest(): Digest;
}
