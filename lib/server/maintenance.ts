/**
 * ferryd's housekeeping: leftovers of interrupted transfers swept once
 * stale, and the quota's count taken again from the storage.
 *
 * @module
 */

import type { QuotaStorage } from "../storage/quota.ts";
import type { Storage } from "../storage/storage.ts";
import { toFerryError } from "../util/errors.ts";

/**
 * Now and then: sweep `storage` for leftovers older than `ttlMs` (every half
 * TTL, between a second and an hour; once at start), and take the quota's
 * count again (at least every ten minutes). Returns a function that stops
 * it and waits for a round under way.
 *
 * @example
 * ```ts
 * import { LocalStorage } from "../storage/local/local_storage.ts";
 * import { maintainPeriodically } from "./maintenance.ts";
 * const storage = await LocalStorage.open(await Deno.makeTempDir());
 * const stop = maintainPeriodically(storage, 86_400_000, () => {}, undefined);
 * await stop();
 * ```
 */
export function maintainPeriodically(
  storage: Storage,
  ttlMs: number,
  log: (line: string) => void,
  quota: QuotaStorage | undefined,
): () => Promise<void> {
  const sweeping = storage.sweep !== undefined && ttlMs > 0;
  const counting = quota !== undefined;
  if (!sweeping && !counting) return () => Promise.resolve();
  let running: Promise<void> | undefined;
  const round = () => {
    running ??= (async () => {
      if (sweeping) {
        const removed = await storage.sweep!(ttlMs);
        if (removed > 0) log(`removed ${removed} stale partial or temporary file(s)`);
      }
      await quota?.recount();
    })().catch((err) => log(`maintenance failed: ${toFerryError(err).message}`))
      .finally(() => running = undefined);
  };
  if (sweeping) round();
  const every = sweeping ? Math.min(Math.max(ttlMs / 2, 1000), 3_600_000) : 3_600_000;
  const timer = setInterval(round, Math.min(every, counting ? 600_000 : every));
  return async () => {
    clearInterval(timer);
    await running;
  };
}
