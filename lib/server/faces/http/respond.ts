/**
 * What every HTTP answer shares: the headers every response carries, a
 * bodiless answer, an attachment's name, and the collection a large body
 * starts with.
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

/**
 * `attachment` with the name twice, as RFC 6266 advises: `filename*` in RFC
 * 8187's form (`'()*!` encoded too, as it requires) for clients that read
 * it, and a plain ASCII `filename` for those that do not (`curl -J`), with
 * anything else in it replaced by `_`.
 *
 * @example
 * ```ts
 * import { contentDisposition } from "./respond.ts";
 * console.assert(contentDisposition("ü.zip") === `attachment; filename="_.zip"; filename*=UTF-8''%C3%BC.zip`);
 * ```
 */
export function contentDisposition(name: string): string {
  const encoded = encodeURIComponent(name).replace(
    /['()*!]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  const plain = name.replace(/[^\x20-\x7e]|["\\%]/gu, "_");
  return `attachment; filename="${plain}"; filename*=UTF-8''${encoded}`;
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
  if (now - lastCollect < COLLECT_GAP_MS) return;
  if (Deno.memoryUsage().rss < RESIDENT_BEFORE_COLLECT) return;
  lastCollect = now;
  collectGarbage();
}
