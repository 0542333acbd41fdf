/**
 * Checksums the server already knows, so that serving a file it stored or
 * served before costs no hashing: on two cores, hashing on both ends is the
 * next limit after the copy itself.
 *
 * @module
 */

import { type Algorithm, DEFAULT_ALGORITHM } from "../checksum/checksum.ts";

/**
 * A bounded map from path to the checksums of one version of its content,
 * one per algorithm. An entry only answers for the exact version it was
 * stored with, and the receiver verifies every checksum anyway: a stale
 * entry can fail a transfer, never corrupt one.
 *
 * A `provisional` entry is one whose version may not tell every later change
 * apart: the hash of an upload, stored under the version the file had right
 * after it was committed (ctime is to the second here, so a change within
 * that second goes unseen). It answers only callers that say they can take
 * it: downloads to a file, which the client drops and asks for again, hashed
 * anew, should it fail its check.
 *
 * @example
 * ```ts
 * import { HashCache } from "./hash_cache.ts";
 * const cache = new HashCache(2);
 * cache.set("a.txt", "v1", "ab".repeat(32), { algorithm: "sha256" });
 * console.assert(cache.get("a.txt", "v1", { algorithm: "sha256" }) !== undefined);
 * console.assert(cache.get("a.txt", "v1", { algorithm: "xxh128" }) === undefined);
 * console.assert(cache.get("a.txt", "v2", { algorithm: "sha256" }) === undefined);
 * ```
 */
export class HashCache {
  readonly #max: number;
  readonly #entries = new Map<
    string,
    { version: string; digests: Map<Algorithm, { hex: string; provisional: boolean }> }
  >();

  /** Keep at most `max` entries, dropping the least recently used. */
  constructor(max = 10_000) {
    this.#max = max;
  }

  /**
   * The checksum (hex) of `path` at `version`, if known, and firmly known
   * unless `provisional`; of `algorithm` (default: the default transfer
   * checksum, XXH3-128).
   */
  get(
    path: string,
    version: string,
    options: { provisional?: boolean; algorithm?: Algorithm } = {},
  ): string | undefined {
    const entry = this.#entries.get(path);
    if (!entry || entry.version !== version) return undefined;
    const known = entry.digests.get(options.algorithm ?? DEFAULT_ALGORITHM);
    if (!known || (known.provisional && !options.provisional)) return undefined;
    this.#entries.delete(path);
    this.#entries.set(path, entry);
    return known.hex;
  }

  /**
   * Remember the checksum (hex) of `path` at `version`; others of the same
   * version, by other algorithms, stay.
   */
  set(
    path: string,
    version: string,
    hex: string,
    options: { provisional?: boolean; algorithm?: Algorithm } = {},
  ): void {
    const entry = this.#entries.get(path);
    const digests = entry?.version === version ? entry.digests : new Map();
    digests.set(options.algorithm ?? DEFAULT_ALGORITHM, {
      hex,
      provisional: options.provisional ?? false,
    });
    this.#entries.delete(path);
    this.#entries.set(path, { version, digests });
    if (this.#entries.size > this.#max) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
  }

  /**
   * Forget `path`, and everything below it should it be a directory. With
   * `below: false`, the caller knows nothing is (a file, an empty directory), and
   * the entries are not scanned.
   */
  delete(path: string, options: { below?: boolean } = {}): void {
    this.#entries.delete(path);
    if (options.below === false) return;
    if (path === "") return this.#entries.clear();
    const prefix = `${path}/`;
    for (const key of this.#entries.keys()) {
      if (key.startsWith(prefix)) this.#entries.delete(key);
    }
  }
}
