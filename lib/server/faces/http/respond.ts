/**
 * What every HTTP answer shares: the headers every response carries, a
 * bodiless answer, and the collection a large body starts with.
 *
 * @module
 */

import type { ServerResponse } from "node:http";
import { collectGarbage } from "../../../util/gc.ts";

/** What every response says about itself: never sniffed into something runnable. */
export const COMMON_HEADERS = { "x-content-type-options": "nosniff" };

/** A bodiless answer. */
export function done(
  res: ServerResponse,
  status: number,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { ...COMMON_HEADERS, ...headers });
  res.end();
}

/** A body this large starts with a collection (see {@linkcode collectBeforeLarge}). */
export const LARGE_BODY = 64 * 1024 * 1024;

/** ...when ferryd holds more than this: an idle ferryd holds about 60 MiB. */
const RESIDENT_BEFORE_COLLECT = 100 * 1024 * 1024;

/** At most one such collection in this many ms, however many large bodies start. */
const COLLECT_GAP_MS = 1000;
let lastCollect = -Infinity;

/**
 * Collect garbage as a large body starts to move, when ferryd holds more
 * than it needs, at most once a second. V8 collects when new buffers pile
 * up, never when a burst of work ends: what earlier connections left (a
 * hundred clients' buffers, say) stays resident until something allocates
 * again, and a large transfer then peaks on top of it. A collection costs
 * tens of milliseconds, little beside a transfer of this size.
 */
export function collectBeforeLarge(): void {
  const now = performance.now();
  if (!collectGarbage || now - lastCollect < COLLECT_GAP_MS) return;
  if (Deno.memoryUsage().rss < RESIDENT_BEFORE_COLLECT) return;
  lastCollect = now;
  collectGarbage();
}
