/**
 * The ferry wire format: length-prefixed binary frames.
 *
 * Every frame is a 9-byte header followed by its payload:
 *
 * ```text
 * offset 0  u8   type      (FrameType)
 * offset 1  u32  id        request id, big endian (0 = the connection itself)
 * offset 5  u32  length    payload length in bytes, big endian
 * offset 9  ...  payload
 * ```
 *
 * Control frames (`HELLO`, `WELCOME`, `REQUEST`, `REPLY`, `END`, `ERROR`)
 * carry one UTF-8 JSON object; `DATA` frames carry raw file bytes. The full
 * layout is in `docs/protocol.md`. This module is pure: no I/O.
 *
 * @module
 */

import { FerryError } from "./util/errors.ts";

/** Size of a frame header in bytes. */
export const HEADER_SIZE = 9;

/** Frame types. The numbers are part of the protocol; never reuse one. */
export const FrameType = {
  /** Client's first frame: protocol version and credentials. */
  HELLO: 1,
  /** Server's answer to HELLO: version and limits. */
  WELCOME: 2,
  /** A command from the client. */
  REQUEST: 3,
  /** The server's answer to a request (possibly several, for listings). */
  REPLY: 4,
  /** A chunk of file content, in either direction. */
  DATA: 5,
  /** End of a file's content, with its checksum. */
  END: 6,
  /** A request or transfer failed (either direction); id 0 ends the connection. */
  ERROR: 7,
  /**
   * A chunk of file content as one zstd frame, on a connection that
   * negotiated compression; it decompresses to at most `maxData` bytes.
   */
  ZDATA: 8,
} as const;

/** One of the {@linkcode FrameType} values. */
export type FrameType = typeof FrameType[keyof typeof FrameType];

const TYPE_NAMES: Record<number, string> = Object.fromEntries(
  Object.entries(FrameType).map(([name, value]) => [value, name]),
);

/** Human-readable name of a frame type, for messages. */
export function frameTypeName(type: number): string {
  return TYPE_NAMES[type] ?? `unknown(${type})`;
}

/** Limits every decoder enforces before it allocates or buffers anything. */
export interface FrameLimits {
  /** Largest payload of a control (JSON) frame. */
  maxControl: number;
  /** Largest payload of a DATA frame. */
  maxData: number;
}

/** The limits of protocol version 1; the server announces them in WELCOME. */
export const DEFAULT_LIMITS: Readonly<FrameLimits> = {
  maxControl: 64 * 1024,
  maxData: 256 * 1024,
};

/** A decoded frame. `payload` is a view that stays valid until the decoder is next filled. */
export interface Frame {
  /** The frame type. */
  type: FrameType;
  /** Request id the frame belongs to. */
  id: number;
  /** The payload bytes (a view into the decoder's buffer). */
  payload: Uint8Array;
}

/** Whether `type` is one of the {@linkcode FrameType}s. */
export function isFrameType(type: number): type is FrameType {
  return type >= FrameType.HELLO && type <= FrameType.ZDATA;
}

/** Largest payload allowed for a (known) frame type under `limits`. */
export function payloadLimit(type: FrameType, limits: FrameLimits): number {
  return type === FrameType.DATA || type === FrameType.ZDATA ? limits.maxData : limits.maxControl;
}

/**
 * Write a frame header into `target` at `offset`.
 *
 * Senders use this to frame DATA in place: read file bytes into
 * `buf.subarray(HEADER_SIZE)`, then write the header in front of them.
 *
 * @example
 * ```ts
 * import { FrameType, HEADER_SIZE, writeHeader } from "./frame.ts";
 * const buf = new Uint8Array(HEADER_SIZE + 3);
 * buf.set([1, 2, 3], HEADER_SIZE);
 * writeHeader(buf, FrameType.DATA, 7, 3);
 * ```
 */
export function writeHeader(
  target: Uint8Array,
  type: FrameType,
  id: number,
  length: number,
  offset = 0,
): void {
  const view = new DataView(target.buffer, target.byteOffset + offset, HEADER_SIZE);
  view.setUint8(0, type);
  view.setUint32(1, id);
  view.setUint32(5, length);
}

const encoder = new TextEncoder();
/** Where messages are encoded: encodeInto a reused buffer is a fast call, encode an op. */
let scratch = new Uint8Array(4096);
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * Encode a control frame whose payload is `message` as JSON.
 *
 * @example
 * ```ts
 * import { encodeMessage, FrameType } from "./frame.ts";
 * const bytes = encodeMessage(FrameType.REQUEST, 1, { op: "ls", path: "" });
 * ```
 */
export function encodeMessage(
  type: FrameType,
  id: number,
  message: unknown,
  limits: FrameLimits = DEFAULT_LIMITS,
): Uint8Array {
  const text = JSON.stringify(message);
  const limit = payloadLimit(type, limits);
  // A UTF-16 code unit takes one to three bytes: the scratch buffer stays within 3x the limit.
  let length = Infinity;
  if (text.length <= limit) {
    if (scratch.length < text.length * 3) scratch = new Uint8Array(text.length * 3);
    length = encoder.encodeInto(text, scratch).written;
  }
  if (length > limit) {
    throw new FerryError("PROTOCOL", `${frameTypeName(type)} message too large`);
  }
  const out = new Uint8Array(HEADER_SIZE + length);
  writeHeader(out, type, id, length);
  out.set(scratch.subarray(0, length), HEADER_SIZE);
  return out;
}

/**
 * Parse the JSON payload of a control frame into a plain object.
 * Anything else (bad UTF-8, bad JSON, an array, a scalar) is a protocol error.
 */
export function decodeMessage(frame: Frame): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(decoder.decode(frame.payload));
  } catch {
    throw new FerryError("PROTOCOL", `malformed ${frameTypeName(frame.type)} frame`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new FerryError("PROTOCOL", `${frameTypeName(frame.type)} frame is not an object`);
  }
  return value as Record<string, unknown>;
}

/**
 * Incremental frame decoder over one reused buffer.
 *
 * Fill it with {@linkcode FrameDecoder.space} + {@linkcode FrameDecoder.commit}
 * (zero-copy, as a socket reader does) or {@linkcode FrameDecoder.push}, then
 * drain it with {@linkcode FrameDecoder.next}. Frames may be split at any byte
 * or arrive many to a read. A header that names an unknown type or a length
 * over the limit throws before any payload is buffered.
 *
 * @example
 * ```ts
 * import { encodeMessage, FrameDecoder, FrameType } from "./frame.ts";
 * const dec = new FrameDecoder();
 * dec.push(encodeMessage(FrameType.REQUEST, 1, { op: "ls" }));
 * const frame = dec.next();
 * console.assert(frame?.type === FrameType.REQUEST);
 * ```
 */
export class FrameDecoder {
  #limits: FrameLimits;
  readonly #capacity: number;
  #buf: Uint8Array;
  #view: DataView;
  #start = 0;
  #end = 0;
  /** The last read filled the buffer: the peer sends faster than frames are taken. */
  #filled = false;

  /**
   * Create a decoder for frames within `limits`. Its buffer starts at
   * `initial` bytes (16 KiB by default) and grows on demand up to `capacity`
   * (at least one frame of the largest kind; more lets one read take in
   * several frames), so an idle or handshaking connection costs little.
   */
  constructor(limits: FrameLimits = DEFAULT_LIMITS, capacity?: number, initial?: number) {
    this.#limits = limits;
    this.#capacity = Math.max(maxFrame(limits), capacity ?? 0);
    this.#buf = new Uint8Array(Math.min(initial ?? INITIAL_BUFFER, this.#capacity));
    this.#view = new DataView(this.#buf.buffer);
  }

  /** Bytes received but not yet returned as frames. */
  get buffered(): number {
    return this.#end - this.#start;
  }

  /** Whether a whole frame is buffered, so that {@linkcode next} needs no read to return it. */
  get ready(): boolean {
    const available = this.#end - this.#start;
    return available >= HEADER_SIZE &&
      available >= HEADER_SIZE + this.#view.getUint32(this.#start + 5);
  }

  /** Apply new limits to the frames that follow (never above the capacity). */
  setLimits(limits: FrameLimits): void {
    if (maxFrame(limits) > this.#capacity) throw new RangeError("limits exceed the capacity");
    this.#limits = limits;
  }

  /**
   * Free space to read into. Frames returned earlier by {@linkcode next} may
   * be overwritten once this is called.
   */
  space(): Uint8Array {
    if (this.#start === this.#end) {
      this.#start = this.#end = 0;
    }
    const needed = this.#needed();
    // Read more at a time from a peer that sends faster than frames are taken. Straight to
    // the capacity: growing by steps left the steps behind as garbage, 1 MiB per connection.
    if (this.#filled && this.#buf.length < this.#capacity) this.#grow(this.#capacity);
    this.#filled = false;
    // Compact before the free tail gets so small that reads become tiny.
    const wanted = Math.max(needed, this.#buf.length >> 2);
    if (this.#buf.length - this.#end < wanted) {
      if (this.#start > 0) {
        this.#buf.copyWithin(0, this.#start, this.#end);
        this.#end -= this.#start;
        this.#start = 0;
      }
      if (this.#buf.length - this.#end < needed) this.#grow(this.#end + needed);
    }
    return this.#buf.subarray(this.#end);
  }

  /**
   * Record that `n` bytes were written at the start of {@linkcode space}.
   * When they fill it, the next {@linkcode space} grows the buffer to its
   * capacity: the peer sends faster than frames are taken.
   */
  commit(n: number): void {
    if (n < 0 || this.#end + n > this.#buf.length) throw new RangeError("commit out of range");
    this.#end += n;
    this.#filled = this.#end === this.#buf.length;
  }

  /** Copy `bytes` in; for sources that hand over their own buffers. Drain with next() as you go. */
  push(bytes: Uint8Array): void {
    let offset = 0;
    while (offset < bytes.length) {
      const space = this.space();
      if (space.length === 0) throw new RangeError("decoder full: call next() between pushes");
      const n = Math.min(space.length, bytes.length - offset);
      space.set(bytes.subarray(offset, offset + n));
      this.commit(n);
      // Not a sign of a fast reader: these bytes are not even checked yet.
      this.#filled = false;
      offset += n;
    }
  }

  /** The next complete frame, or `undefined` if more bytes are needed. */
  next(): Frame | undefined {
    const available = this.#end - this.#start;
    if (available < HEADER_SIZE) return undefined;
    const { type, length } = this.#header();
    if (available < HEADER_SIZE + length) return undefined;
    const id = this.#view.getUint32(this.#start + 1);
    const begin = this.#start + HEADER_SIZE;
    this.#start = begin + length;
    return { type, id, payload: this.#buf.subarray(begin, begin + length) };
  }

  /** The header at the head of the buffer, checked against the limits before anything grows. */
  #header(): { type: FrameType; length: number } {
    const type = this.#view.getUint8(this.#start);
    const length = this.#view.getUint32(this.#start + 5);
    if (!isFrameType(type)) throw new FerryError("PROTOCOL", `unknown frame type ${type}`);
    const limit = payloadLimit(type, this.#limits);
    if (length > limit) {
      throw new FerryError(
        "PROTOCOL",
        `${frameTypeName(type)} frame of ${length} bytes exceeds the limit of ${limit}`,
      );
    }
    return { type, length };
  }

  /** Bytes the frame at the head of the buffer still needs (a header's worth if unknown). */
  #needed(): number {
    const available = this.#end - this.#start;
    if (available < HEADER_SIZE) return HEADER_SIZE - available;
    return HEADER_SIZE + this.#header().length - available;
  }

  #grow(atLeast: number): void {
    let size = this.#buf.length;
    while (size < atLeast) size *= 2;
    const grown = new Uint8Array(Math.min(size, this.#capacity));
    grown.set(this.#buf.subarray(0, this.#end));
    this.#buf = grown;
    this.#view = new DataView(grown.buffer);
  }
}

/** Where a decoder's buffer starts before frames make it grow. */
const INITIAL_BUFFER = 16 * 1024;

function maxFrame(limits: FrameLimits): number {
  return HEADER_SIZE + Math.max(limits.maxControl, limits.maxData);
}
