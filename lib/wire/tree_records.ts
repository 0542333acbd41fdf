/**
 * A tree on the wire as one stream: records packed into DATA frames, one
 * per directory, small file (content and checksum inline), large file
 * (fetched on its own, resumable) or entry left out. A request and a reply
 * per file cost a tree of small files most of its time; a record costs a
 * few dozen bytes (see docs/protocol.md, "Trees").
 *
 * Pure encoding and decoding: no I/O. Every record lies whole inside one
 * frame, so a frame is decoded on its own.
 *
 * @module
 */

import type { Algorithm } from "../checksum/checksum.ts";
import { MAX_PATH_BYTES } from "../commands.ts";
import { FerryError } from "../util/errors.ts";

/** Record kinds. The numbers are part of the protocol. */
export const RecordKind = {
  /** A directory, before anything in it. */
  DIR: 1,
  /** A small file, its content and its checksum inline. */
  FILE: 2,
  /** A file too large to go inline: the receiver fetches it with `get`. */
  LARGE: 3,
  /** An entry left out: its type (a symlink), or the error reading it. */
  SKIP: 4,
} as const;

/** One record of a tree stream. */
export type TreeRecord =
  | { kind: "dir"; path: string; mode: number; mtime: number }
  | {
    kind: "file";
    path: string;
    mode: number;
    mtime: number;
    /** The content: a view into the frame, valid only while the frame is handled. */
    content: Uint8Array;
    /**
     * Its checksum in the connection's algorithm as lowercase hex, in ASCII
     * bytes (a view into the frame): compare with `sameHex`.
     */
    sum: Uint8Array;
  }
  | { kind: "large"; path: string; mode: number; mtime: number; size: number }
  | {
    kind: "skip";
    path: string;
    /** The entry's type (`symlink`, `other`) or `reserved name`; else `error` is set. */
    skipped?: string;
    error?: { code: string; message: string };
  };

/** Hex digits of a checksum: what a FILE record carries after its content. */
export function hexLength(algorithm: Algorithm): number {
  return algorithm === "sha256" ? 64 : 32;
}

/** Bytes of a record's fixed fields after the path: mode (u32) and mtime (f64). */
const META = 12;

/** Bytes a FILE record takes beyond its content, for a path of `pathBytes` UTF-8 bytes. */
export function fileOverhead(pathBytes: number, algorithm: Algorithm): number {
  return 1 + 2 + pathBytes + META + 4 + hexLength(algorithm);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Packs records into one frame's payload, written in place in a buffer the
 * caller frames and sends. Each `add*` returns false when the record does
 * not fit in what is left: send the frame, `reset`, and add it again.
 *
 * @example
 * ```ts
 * import { decodeRecords, TreeWriter } from "./tree_records.ts";
 * const w = new TreeWriter(new Uint8Array(1024), "xxh128");
 * w.addDir("d", 0o755, 0);
 * const content = w.beginFile("d/a.txt", 0o644, 0, 2)!;
 * content.set([104, 105]);
 * w.endFile("0".repeat(32));
 * const kinds: string[] = [];
 * decodeRecords(w.bytes(), "xxh128", (r) => kinds.push(r.kind));
 * console.assert(kinds.join() === "dir,file");
 * ```
 */
export class TreeWriter {
  readonly #buf: Uint8Array;
  readonly #view: DataView;
  readonly #hex: number;
  #at = 0;
  /** Where the open file's checksum goes (see beginFile). */
  #digestAt = -1;

  /** Pack into `buf` (the payload area of a frame), with checksums in `algorithm`. */
  constructor(buf: Uint8Array, algorithm: Algorithm) {
    this.#buf = buf;
    this.#view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    this.#hex = hexLength(algorithm);
  }

  /** Bytes packed so far. */
  get length(): number {
    return this.#at;
  }

  /** The packed records. */
  bytes(): Uint8Array {
    return this.#buf.subarray(0, this.#at);
  }

  /** Start the next frame's payload. */
  reset(): void {
    this.#at = 0;
    this.#digestAt = -1;
  }

  /** A directory. */
  addDir(path: string, mode: number, mtime: number): boolean {
    const at = this.#head(RecordKind.DIR, path, META);
    if (at < 0) return false;
    this.#meta(at, mode, mtime);
    this.#at = at + META;
    return true;
  }

  /** A file fetched on its own. */
  addLarge(path: string, mode: number, mtime: number, size: number): boolean {
    const at = this.#head(RecordKind.LARGE, path, META + 8);
    if (at < 0) return false;
    this.#meta(at, mode, mtime);
    this.#view.setFloat64(at + META, size);
    this.#at = at + META + 8;
    return true;
  }

  /** An entry left out, with its type or the error that kept it out. */
  addSkip(
    path: string,
    why: { skipped: string } | { code: string; message: string },
  ): boolean {
    const text = encoder.encode(JSON.stringify(why).slice(0, 4096));
    const at = this.#head(RecordKind.SKIP, path, 2 + text.length);
    if (at < 0) return false;
    this.#view.setUint16(at, text.length);
    this.#buf.set(text, at + 2);
    this.#at = at + 2 + text.length;
    return true;
  }

  /**
   * Open a small file's record: returns where its `size` bytes of content go
   * (to be filled before {@linkcode endFile}), or undefined when it does not fit.
   */
  beginFile(path: string, mode: number, mtime: number, size: number): Uint8Array | undefined {
    const at = this.#head(RecordKind.FILE, path, META + 4 + size + this.#hex);
    if (at < 0) return undefined;
    this.#meta(at, mode, mtime);
    this.#view.setUint32(at + META, size);
    const start = at + META + 4;
    this.#digestAt = start + size;
    return this.#buf.subarray(start, start + size);
  }

  /** Close the open file's record with its checksum (lowercase hex); it then counts. */
  endFile(hex: string): void {
    if (this.#digestAt < 0 || hex.length !== this.#hex) throw new Error("no file record open");
    encoder.encodeInto(hex, this.#buf.subarray(this.#digestAt, this.#digestAt + this.#hex));
    this.#at = this.#digestAt + this.#hex;
    this.#digestAt = -1;
  }

  /** Drop the open file's record (its content could not be read). */
  dropFile(): void {
    this.#digestAt = -1;
  }

  /** Kind and path; returns where the rest goes, or -1 when `rest` more bytes do not fit. */
  #head(kind: number, path: string, rest: number): number {
    const free = this.#buf.length - this.#at;
    // A path's UTF-8 is at most 3 bytes a UTF-16 unit: most records need no exact count.
    if (3 + path.length * 3 + rest > free) {
      const exact = utf8Bytes(path);
      if (3 + exact + rest > free) return -1;
    }
    this.#buf[this.#at] = kind;
    const { written } = encoder.encodeInto(path, this.#buf.subarray(this.#at + 3));
    if (written > MAX_PATH_BYTES) throw new FerryError("PATH_REFUSED", "path too long");
    this.#view.setUint16(this.#at + 1, written);
    return this.#at + 3 + written;
  }

  #meta(at: number, mode: number, mtime: number): void {
    this.#view.setUint32(at, mode & 0o7777);
    this.#view.setFloat64(at + 4, mtime);
  }
}

function utf8Bytes(text: string): number {
  return encoder.encode(text).length;
}

function malformed(what: string): FerryError {
  return new FerryError("PROTOCOL", `malformed tree record: ${what}`);
}

/**
 * Decode every record in one frame's `payload`, in order, calling
 * `onRecord` for each (a FILE record's content is a view into the payload).
 * Anything out of shape (an unknown kind, a record cut short, a bad path
 * encoding, mode bits beyond 0o7777, a size that is not a byte count) is a
 * PROTOCOL error: the sender is broken or hostile. A checksum that is not
 * lowercase hex simply never matches (see `sameHex`).
 *
 * @example
 * ```ts
 * import { decodeRecords } from "./tree_records.ts";
 * let threw = false;
 * try {
 *   decodeRecords(new Uint8Array([9]), "xxh128", () => {});
 * } catch {
 *   threw = true;
 * }
 * console.assert(threw);
 * ```
 */
export function decodeRecords(
  payload: Uint8Array,
  algorithm: Algorithm,
  onRecord: (record: TreeRecord) => void,
): void {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const hexLen = hexLength(algorithm);
  const end = payload.length;
  let at = 0;
  const need = (n: number, what: string) => {
    if (at + n > end) throw malformed(`${what} cut short`);
  };
  while (at < end) {
    const kind = payload[at];
    need(3, "header");
    const pathLen = view.getUint16(at + 1);
    if (pathLen > MAX_PATH_BYTES) throw malformed("path longer than 4096 bytes");
    at += 3;
    need(pathLen, "path");
    let path: string;
    try {
      path = decodePath(payload.subarray(at, at + pathLen));
    } catch {
      throw malformed("path is not UTF-8");
    }
    at += pathLen;
    if (kind === RecordKind.SKIP) {
      need(2, "skip");
      const len = view.getUint16(at);
      need(2 + len, "skip");
      let why: Record<string, unknown>;
      try {
        why = JSON.parse(decoder.decode(payload.subarray(at + 2, at + 2 + len)));
      } catch {
        throw malformed("skip reason is not JSON");
      }
      at += 2 + len;
      if (typeof why?.skipped === "string") {
        onRecord({ kind: "skip", path, skipped: why.skipped });
      } else if (typeof why?.code === "string" && typeof why.message === "string") {
        onRecord({ kind: "skip", path, error: { code: why.code, message: why.message } });
      } else throw malformed("skip without a reason");
      continue;
    }
    need(META, "record");
    const mode = view.getUint32(at);
    const mtime = view.getFloat64(at + 4);
    if (mode > 0o7777) throw malformed("mode beyond 0o7777");
    if (!Number.isFinite(mtime)) throw malformed("mtime is not a time");
    at += META;
    switch (kind) {
      case RecordKind.DIR:
        onRecord({ kind: "dir", path, mode, mtime });
        break;
      case RecordKind.LARGE: {
        need(8, "large file");
        const size = view.getFloat64(at);
        if (!Number.isSafeInteger(size) || size < 0) throw malformed("size is not a byte count");
        at += 8;
        onRecord({ kind: "large", path, mode, mtime, size });
        break;
      }
      case RecordKind.FILE: {
        need(4, "file");
        const size = view.getUint32(at);
        at += 4;
        need(size + hexLen, "file content");
        const content = payload.subarray(at, at + size);
        at += size;
        const sum = payload.subarray(at, at + hexLen);
        at += hexLen;
        onRecord({ kind: "file", path, mode, mtime, content, sum });
        break;
      }
      default:
        throw malformed(`unknown kind ${kind}`);
    }
  }
}

/** A path's UTF-8: most are ASCII, made into a string without a call into the runtime. */
function decodePath(bytes: Uint8Array): string {
  if (bytes.length <= 256) {
    let ascii = true;
    for (let i = 0; i < bytes.length; i++) {
      if (bytes[i] >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) return String.fromCharCode.apply(null, bytes as unknown as number[]);
  }
  return decoder.decode(bytes);
}
