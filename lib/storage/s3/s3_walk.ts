/**
 * Reading a bucket's keys as a tree: which keys can be served as paths,
 * and the walk of a whole prefix for a tree stream (`Storage.readTree`):
 * one listing, the directories implied by the keys, and the small files
 * fetched a few at once ahead of the reader.
 *
 * @module
 */

import { isTempName } from "../../fs/temp_names.ts";
import { escapeName } from "../../util/display.ts";
import { changedWhileSent, type FerryError } from "../../util/errors.ts";
import { checkName, RESERVED_PREFIX } from "../../util/path_jail.ts";
import type { TreeItem } from "../storage.ts";
import { headOf, type S3Client, type S3Object } from "./s3_client.ts";
import { readMeta } from "./s3_meta.ts";

/**
 * Why a relative path from the bucket cannot be served, if it cannot: keys
 * written by other tools may hold anything (`..`, empty segments, control
 * characters), and are skipped rather than followed. Ferry's temporary
 * names answer `temp`.
 */
export function refusal(rel: string): "temp" | "reserved" | FerryError | undefined {
  const parts = rel.split("/");
  for (const part of parts) {
    try {
      checkName(part);
    } catch (err) {
      if (part.startsWith(RESERVED_PREFIX)) return isTempName(part) ? "temp" : "reserved";
      return err as FerryError;
    }
  }
  return undefined;
}

/**
 * Map `source` through `fn` with up to `width` calls at once, in order:
 * what a listing needs when each object costs a request.
 */
export async function* mapOrdered<T, R>(
  source: AsyncIterable<T>,
  width: number,
  fn: (item: T) => Promise<R>,
): AsyncIterable<R> {
  const queue: Promise<R>[] = [];
  const start = (item: T) => {
    const result = fn(item);
    // Awaited in turn below; a failure before then must not go unhandled.
    result.catch(() => {});
    queue.push(result);
  };
  for await (const item of source) {
    start(item);
    if (queue.length >= width) yield await queue.shift()!;
  }
  while (queue.length > 0) yield await queue.shift()!;
}

/**
 * Walk every key under `base` (a directory's key prefix, ending in `/` or
 * empty) as {@linkcode TreeItem}s: the directory itself first, each
 * directory before what it holds, files of at most `inlineMax` bytes read
 * whole, `width` requests at once.
 */
export async function* walkS3Tree(
  s3: S3Client,
  base: string,
  options: { inlineMax: number; width: number },
): AsyncIterable<TreeItem> {
  type Step =
    | { kind: "dir"; rel: string; marker?: S3Object }
    | { kind: "file"; rel: string; object: S3Object }
    | { kind: "skip"; rel: string; why: "reserved" | FerryError };
  const made = new Set<string>();
  async function* steps(): AsyncIterable<Step> {
    yield { kind: "dir", rel: "" };
    for await (const object of s3.listAll(base)) {
      const rel = object.key.slice(base.length);
      if (rel === "") continue; // The walked directory's own marker.
      const isMarker = rel.endsWith("/");
      const parts = (isMarker ? rel.slice(0, -1) : rel).split("/");
      const why = refusal(parts.join("/"));
      if (why === "temp") continue;
      if (why !== undefined) {
        yield { kind: "skip", rel, why };
        continue;
      }
      for (let i = 1; i < parts.length; i++) {
        const d = parts.slice(0, i).join("/");
        if (!made.has(d)) {
          made.add(d);
          yield { kind: "dir", rel: d };
        }
      }
      const own = parts.join("/");
      if (isMarker) {
        if (!made.has(own)) {
          made.add(own);
          yield { kind: "dir", rel: own, marker: object };
        }
      } else yield { kind: "file", rel, object };
    }
  }
  // Small files are fetched whole, a few at once, ahead of the reader; larger ones need only
  // their metadata, and are sent by a get of their own.
  yield* mapOrdered(steps(), options.width, async (step): Promise<TreeItem> => {
    if (step.kind === "skip") {
      return step.why === "reserved"
        ? { kind: "skip", path: step.rel, skipped: "reserved name" }
        : { kind: "skip", path: step.rel, error: step.why };
    }
    if (step.kind === "dir") {
      const marker = step.marker || step.rel === ""
        ? await s3.head(step.rel === "" ? base : step.marker!.key)
        : undefined;
      const { mode, mtime } = marker
        ? readMeta(marker.meta, marker.lastModified, true)
        : { mode: 0o755, mtime: 0 };
      return { kind: "dir", path: step.rel, mode, mtime };
    }
    const { object, rel } = step;
    if (object.size > options.inlineMax) {
      const head = await s3.head(object.key);
      const { mode, mtime } = readMeta(head?.meta ?? {}, object.lastModified);
      return { kind: "file", path: rel, size: head?.size ?? object.size, mode, mtime };
    }
    const res = await s3.get(object.key, { what: escapeName(rel) }).catch((err) => err);
    if (!(res instanceof Response)) return { kind: "skip", path: rel, error: res };
    const head = headOf(res);
    const bytes = new Uint8Array(await res.arrayBuffer());
    const { mode, mtime } = readMeta(head.meta, head.lastModified);
    // Grown since it was listed: too large to go inline now, so it goes by a get of its own.
    if (bytes.length > options.inlineMax) {
      return { kind: "file", path: rel, size: bytes.length, mode, mtime };
    }
    return {
      kind: "file",
      path: rel,
      size: bytes.length,
      mode,
      mtime,
      read: (into) => {
        if (into.length !== bytes.length) {
          throw changedWhileSent(escapeName(rel));
        }
        into.set(bytes);
      },
    };
  });
}
