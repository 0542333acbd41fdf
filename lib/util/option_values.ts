/**
 * The values command-line options take, parsed one way for both CLIs:
 * durations in seconds, byte sizes with units, counts.
 *
 * @module
 */

import { FerryError } from "./errors.ts";

/** The longest a timer can wait (setTimeout's limit), in seconds. */
const MAX_SECONDS = 2_147_483;

/**
 * A duration in seconds (fractions allowed), for `flag`; USAGE otherwise.
 *
 * @example
 * ```ts
 * import { parseSeconds } from "./option_values.ts";
 * console.assert(parseSeconds("--timeout", "1.5") === 1.5);
 * ```
 */
export function parseSeconds(flag: string, text: string): number {
  const n = Number(text);
  if (text.trim() === "" || !Number.isFinite(n) || n < 0 || n > MAX_SECONDS) {
    throw new FerryError("USAGE", `${flag} takes a number of seconds, not ${JSON.stringify(text)}`);
  }
  return n;
}

const UNITS: Record<string, number> = { "": 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/**
 * A byte count: digits with an optional K, M, G or T (powers of 1024, `B`
 * or `iB` after them allowed), for `flag`; USAGE otherwise.
 *
 * @example
 * ```ts
 * import { parseBytes } from "./option_values.ts";
 * console.assert(parseBytes("--quota", "2G") === 2 * 2 ** 30);
 * ```
 */
export function parseBytes(flag: string, text: string): number {
  const m = /^(\d+)([KMGT]?)(i?B)?$/i.exec(text.trim());
  const n = m ? Number(m[1]) * UNITS[m[2].toUpperCase()] : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new FerryError(
      "USAGE",
      `${flag} takes a size like 500M or 2G, not ${JSON.stringify(text)}`,
    );
  }
  return n;
}

/**
 * A whole number from `min` to `max`, for `flag`; USAGE otherwise.
 *
 * @example
 * ```ts
 * import { parseCount } from "./option_values.ts";
 * console.assert(parseCount("--retries", "3", { min: 0, max: 999 }) === 3);
 * ```
 */
export function parseCount(
  flag: string,
  text: string,
  range: { min: number; max?: number },
): number {
  const n = Number(text);
  const max = range.max ?? Number.MAX_SAFE_INTEGER;
  if (!/^\d+$/.test(text) || n < range.min || n > max) {
    const above = range.min === 0 ? "" : ` above ${range.min - 1}`;
    const upTo = range.max === undefined ? "" : ` up to ${range.max}`;
    throw new FerryError(
      "USAGE",
      `${flag} takes a whole number${above}${upTo}, not ${JSON.stringify(text)}`,
    );
  }
  return n;
}
