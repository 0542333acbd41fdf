/**
 * SHA-256s the server already knows, so that serving a file it stored or
 * served before costs no hashing: on two cores, hashing on both ends is the
 * next limit after the copy itself.
 *
 * @module
 */

/**
 * A bounded map from path to the SHA-256 of one version of its content. An
 * entry only answers for the exact version it was stored with, and the
 * receiver verifies every hash anyway: a stale entry can fail a transfer,
 * never corrupt one.
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
 * cache.set("a.txt", "v1", "ab".repeat(32));
 * console.assert(cache.get("a.txt", "v1") !== undefined);
 * console.assert(cache.get("a.txt", "v2") === undefined);
 * ```
 */
export class HashCache {
  readonly #max: number;
  readonly #entries = new Map<
    string,
    { version: string; sha256: string; provisional: boolean }
  >();

  /** Keep at most `max` entries, dropping the least recently used. */
  constructor(max = 10_000) {
    this.#max = max;
  }

  /** The hash of `path` at `version`, if known (and firmly known, unless `provisional`). */
  get(
    path: string,
    version: string,
    options: { provisional?: boolean } = {},
  ): string | undefined {
    const entry = this.#entries.get(path);
    if (!entry || entry.version !== version) return undefined;
    if (entry.provisional && !options.provisional) return undefined;
    this.#entries.delete(path);
    this.#entries.set(path, entry);
    return entry.sha256;
  }

  /** Remember the hash of `path` at `version`. */
  set(
    path: string,
    version: string,
    sha256: string,
    options: { provisional?: boolean } = {},
  ): void {
    this.#entries.delete(path);
    this.#entries.set(path, { version, sha256, provisional: options.provisional ?? false });
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
