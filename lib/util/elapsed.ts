/**
 * Wall-clock durations, one way everywhere.
 *
 * @module
 */

/**
 * Seconds since `started` (a `performance.now()` reading).
 *
 * @example
 * ```ts
 * import { elapsed } from "./elapsed.ts";
 * const started = performance.now();
 * console.assert(elapsed(started) >= 0);
 * ```
 */
export function elapsed(started: number): number {
  return (performance.now() - started) / 1000;
}
