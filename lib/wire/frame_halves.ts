/**
 * A send buffer used as two halves of one frame each, the way every sender
 * of content works (a body, a tree stream): the next frame's payload is
 * filled in one half while the other is still being written, with room for
 * the header left in front so that nothing is copied; a payload that zstd
 * shrinks (where the connection agreed to it) goes as ZDATA.
 *
 * @module
 */

import { FrameType, HEADER_SIZE } from "../frame.ts";
import { ChunkCompressor } from "./compress.ts";
import type { FrameConn } from "./frame_conn.ts";

/**
 * Two frames' worth of `buf`, taking turns, for request `id` on `fc`.
 *
 * @example
 * ```ts ignore
 * const halves = new FrameHalves(fc, id, buf, false);
 * const n = await file.read(halves.payload(0));
 * await halves.send(0, n);
 * await halves.flushed();
 * ```
 */
export class FrameHalves {
  readonly #fc: FrameConn;
  readonly #id: number;
  readonly #halves: Uint8Array[];
  readonly #compressor: ChunkCompressor | undefined;
  /** Where a compressed payload is framed, one per half: made once, on the first need. */
  readonly #packed: Uint8Array[] = [];
  #writing: Promise<void> | undefined;
  /** Whether the last write is done (what paces the compressor). */
  #written = true;

  /** Use `buf` (two frames) for `id` on `fc`; `compress` where zstd was agreed. */
  constructor(fc: FrameConn, id: number, buf: Uint8Array, compress: boolean) {
    this.#fc = fc;
    this.#id = id;
    const half = Math.floor(buf.length / 2);
    this.#halves = [buf.subarray(0, half), buf.subarray(half, 2 * half)];
    this.#compressor = compress ? new ChunkCompressor() : undefined;
  }

  /** Where half `i`'s payload goes: everything after its header's room. */
  payload(i: number): Uint8Array {
    return this.#halves[i].subarray(HEADER_SIZE);
  }

  /**
   * Send the first `length` bytes of half `i`'s payload as one frame, once
   * the other half's write is done (then the half written two rounds ago is
   * free to be filled again). Compressed first, while that write runs.
   */
  async send(i: number, length: number): Promise<void> {
    const payload = this.payload(i).subarray(0, length);
    // Still writing the last frame now that this one is full: the link is the slower.
    this.#compressor?.pace(!this.#written);
    const packed = this.#compressor?.compress(payload);
    await this.#writing;
    if (packed) {
      const framed = this.#packed[i] ??= new Uint8Array(this.#halves[i].length);
      framed.set(packed, HEADER_SIZE);
      this.#writing = this.#fc.sendFramed(FrameType.ZDATA, this.#id, framed, packed.length);
    } else {
      this.#writing = this.#fc.sendFramed(FrameType.DATA, this.#id, this.#halves[i], length);
    }
    // Handled now, awaited (and thrown) by flushed(): a write may fail while the next payload is
    // being filled, and an unhandled rejection ends the process.
    this.#written = false;
    this.#writing.then(() => this.#written = true, () => {});
  }

  /** Wait for the last write; throws its failure. */
  async flushed(): Promise<void> {
    await this.#writing;
  }

  /** Wait for the last write, whatever became of it (a send that failed is being unwound). */
  async settled(): Promise<void> {
    await this.#writing?.catch(() => {});
  }
}
