/**
 * Sending a tree as one stream, the same for ferryd's `tree` answer and the
 * client's `puttree` body: walk the items, pack their records into frames
 * in two halves of the send buffer (the next is packed while the last is
 * written), compress a frame that shrinks, and read each small file
 * straight into its record.
 *
 * @module
 */

import { type Algorithm, hashBytes } from "../checksum/checksum.ts";
import { errorToMessage, MAX_PATH_BYTES } from "../commands.ts";
import { HEADER_SIZE } from "../frame.ts";
import type { TreeItem } from "../storage/storage.ts";
import { escapeName } from "../util/display.ts";
import { FerryError, toFerryError } from "../util/errors.ts";
import { utf8Length } from "../util/utf8.ts";
import { FrameHalves } from "./frame_halves.ts";
import type { FrameConn } from "./frame_conn.ts";
import { fileOverhead, TreeWriter } from "./tree_records.ts";

/**
 * The largest file that goes inline, for a send buffer of `bufLength` bytes
 * (two frames): whatever fits in one frame with the longest path.
 *
 * @example
 * ```ts
 * import { inlineMax } from "./tree_send.ts";
 * console.assert(inlineMax(2 * (9 + 262144), "xxh128") > 250 * 1024);
 * ```
 */
export function inlineMax(bufLength: number, algorithm: Algorithm): number {
  return (bufLength >> 1) - HEADER_SIZE - fileOverhead(MAX_PATH_BYTES, algorithm);
}

/** The longest ancestor of `path` (or `""`) that a record can name. */
function ancestorWithin(path: string): string {
  let at = path.length;
  while (at > 0) {
    at = path.lastIndexOf("/", at - 1);
    if (at <= 0) return "";
    if (utf8Length(path.slice(0, at)) <= MAX_PATH_BYTES) return path.slice(0, at);
  }
  return "";
}

/** What the side that sends decides and hears (every hook optional: send everything). */
export interface TreeSendOptions {
  /** The connection's checksum, which FILE records carry. */
  algorithm: Algorithm;
  /** Compress frames that shrink (the connection agreed to zstd). */
  compress: boolean;
  /** Whether to send this item, which is no file read inline (default: yes). */
  send?(item: TreeItem): boolean;
  /** A small file went into the stream, with its checksum. */
  sent?(path: string, size: number, hex: string): void;
  /** A small file could not be read: send a SKIP record with the error (true, the default)? */
  unreadable?(path: string, err: FerryError): boolean;
  /** Stop: checked before each item; the send throws CANCELLED-like `err` it returns. */
  stopped?(): FerryError | undefined;
}

/**
 * Send `items` on `fc` as request `id`'s tree records, through `buf` (two
 * frames); returns how many files, and bytes, went inline. The frames are
 * written as they fill; an error after some were sent leaves the peer to
 * learn of it from what the caller sends next (ERROR).
 */
export async function sendTreeRecords(
  fc: FrameConn,
  id: number,
  buf: Uint8Array,
  items: AsyncIterable<TreeItem>,
  options: TreeSendOptions,
): Promise<{ files: number; bytes: number }> {
  const { algorithm } = options;
  const halves = new FrameHalves(fc, id, buf, options.compress);
  const writers = [0, 1].map((i) => new TreeWriter(halves.payload(i), algorithm));
  let i = 0;
  let w = writers[0];
  let files = 0, bytes = 0;
  const flush = async () => {
    await halves.send(i, w.length);
    i ^= 1;
    w = writers[i];
    w.reset();
  };
  /** Add a record, sending the frame first when it does not fit. */
  const add = async (fits: () => boolean) => {
    if (fits()) return;
    await flush();
    fits();
  };
  try {
    for await (const item of items) {
      const stop = options.stopped?.();
      if (stop) throw stop;
      if (utf8Length(item.path) > MAX_PATH_BYTES) {
        // No record can name it: its deepest ancestor that fits says so, and the rest goes on.
        const e = new FerryError(
          "PATH_REFUSED",
          `path refused: longer than ${MAX_PATH_BYTES} bytes: ${
            escapeName(item.path.slice(0, 200))
          }…`,
        );
        if (options.unreadable?.(item.path, e) !== false) {
          await add(() => w.addSkip(ancestorWithin(item.path), errorToMessage(e)));
        }
        continue;
      }
      if (item.kind === "file" && item.read) {
        const { path, mode, mtime, size } = item;
        let content = w.beginFile(path, mode, mtime, size);
        if (!content) {
          await flush();
          content = w.beginFile(path, mode, mtime, size)!;
        }
        try {
          const reading = item.read(content);
          if (reading instanceof Promise) await reading;
        } catch (err) {
          w.dropFile();
          const e = toFerryError(err);
          if (options.unreadable?.(path, e) !== false) {
            await add(() => w.addSkip(path, errorToMessage(e)));
          }
          continue;
        }
        const hex = hashBytes(algorithm, content);
        w.endFile(hex);
        options.sent?.(path, size, hex);
        files++;
        bytes += size;
        continue;
      }
      if (options.send?.(item) === false) continue;
      if (item.kind === "dir") await add(() => w.addDir(item.path, item.mode, item.mtime));
      else if (item.kind === "file") {
        await add(() => w.addLarge(item.path, item.mode, item.mtime, item.size));
      } else {
        const why = item.error ? errorToMessage(item.error) : { skipped: item.skipped ?? "other" };
        await add(() => w.addSkip(item.path, why));
      }
    }
    if (w.length > 0) await flush();
    await halves.flushed();
  } catch (err) {
    await halves.settled();
    throw err;
  }
  return { files, bytes };
}
