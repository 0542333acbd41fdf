/**
 * Compression of file content on the wire: each chunk that zstd shrinks is
 * sent as one ZDATA frame (a whole zstd frame, compressed on its own), the
 * others as plain DATA. Chunks are compressed independently, so memory
 * stays one chunk per direction whatever the file, and a receiver bounds
 * what a frame may decompress to before it allocates it.
 *
 * @module
 */

import { FerryError } from "../util/errors.ts";
import { nodeZlib } from "../util/node_builtins.ts";

/**
 * The zstd levels a sender moves between, fastest first. Measured here on
 * the bench's text, JSON and logs in 256 KiB chunks: level 1 compresses 190
 * MiB/s to 0.250 of the size, level 6 53 MiB/s to 0.226 (`rsync -z`'s zlib
 * 6 over the whole stream: 0.228). The levels between are no sure gain: 3
 * made 0.239 of that text, but 7% more than level 1 of log lines. Level 1
 * while compressing is what holds the sender up, 6 while the link does (see
 * {@linkcode ChunkCompressor.pace}).
 */
const LEVELS = [1, 6];

/** Chunks smaller than this go plain: a call costs about 50 µs, more than a few bytes save. */
const MIN_CHUNK = 512;

/** After a chunk that did not shrink, this many go plain before zstd is tried again. */
const BACKOFF_CHUNKS = 7;

/**
 * Every level with level 1's window, 512 KiB (2^19): more than a chunk, and
 * under what a receiver accepts (see `DECOMPRESS_OPTIONS`). Left to zstd,
 * level 3 and up declare 2 MiB, and a receiver refuses the frame.
 */
let options: { params: Record<number, number> }[] | undefined;

/** The compressor's options per level, made at first use (node:zlib is loaded then). */
function compressOptions(): { params: Record<number, number> }[] {
  const { constants } = nodeZlib();
  return options ??= LEVELS.map((level) => ({
    params: { [constants.ZSTD_c_compressionLevel]: level, [constants.ZSTD_c_windowLog]: 19 },
  }));
}

/**
 * The largest window a receiver lets a frame use: 1 MiB (2^20). ferry's own
 * frames need at most their 256 KiB chunk; zstd's default limit (128 MiB)
 * would let a hostile frame make the decoder reserve that much.
 */
let decompressOptions: { params: Record<number, number> } | undefined;

/** See the window above: made at first use. */
function decompressOptionsOf(): { params: Record<number, number> } {
  return decompressOptions ??= {
    params: { [nodeZlib().constants.ZSTD_d_windowLogMax]: 20 },
  };
}

/**
 * Compresses a sender's chunks, and stops trying for a while where they do
 * not shrink (random or already compressed content), so that such a file
 * costs about an eighth of the compression it would otherwise.
 *
 * @example
 * ```ts
 * import { ChunkCompressor, decompressChunk } from "./compress.ts";
 * const text = new TextEncoder().encode("ferry ".repeat(1000));
 * const packed = new ChunkCompressor().compress(text)!;
 * console.assert(packed.length < text.length);
 * console.assert(decompressChunk(packed, 256 * 1024).length === text.length);
 * ```
 */
export class ChunkCompressor {
  #skip = 0;
  #level = 0;

  /** The zstd level the next chunk is compressed at. */
  get level(): number {
    return LEVELS[this.#level];
  }

  /**
   * Tell the compressor who sets the pace, before each chunk: `linkBehind`
   * when the chunk before is still being written (the link or the receiver
   * is slower than the sender: time to spend on a smaller chunk), not when
   * it went out while this one was being filled (the sender is the slower:
   * time to compress faster), as `zstd --adapt` does. On loopback and a
   * fast link the sender is the slower and stays at level 1; on a 100
   * Mbit/s link it goes to 6.
   */
  pace(linkBehind: boolean): void {
    if (linkBehind) this.#level = Math.min(this.#level + 1, LEVELS.length - 1);
    else this.#level = Math.max(this.#level - 1, 0);
  }

  /** The chunk compressed, or undefined when it goes plain (it would not shrink enough). */
  compress(chunk: Uint8Array): Uint8Array | undefined {
    if (chunk.length < MIN_CHUNK) return undefined;
    if (this.#skip > 0) {
      this.#skip--;
      return undefined;
    }
    const packed = nodeZlib().zstdCompressSync(chunk, compressOptions()[this.#level]);
    // Saving under 1/32 is not worth the receiver's decompression.
    if (packed.length <= chunk.length - (chunk.length >> 5)) return packed;
    this.#skip = BACKOFF_CHUNKS;
    return undefined;
  }
}

/**
 * The content of a ZDATA payload: PROTOCOL when it is not zstd data, would
 * decompress beyond `max` bytes (decompression stops there), or asks for a
 * window over 1 MiB. A small hostile frame can make the receiver hold at
 * most `max` bytes of output and a 1 MiB window, briefly.
 */
export function decompressChunk(payload: Uint8Array, max: number): Uint8Array {
  const zlib = nodeZlib();
  const options = decompressOptionsOf();
  try {
    // One output buffer of the most a frame may hold, not 16 KiB pieces joined at the end:
    // half the garbage, and a receiver makes one a frame.
    return zlib.zstdDecompressSync(payload, {
      ...options,
      maxOutputLength: max,
      chunkSize: max,
    });
  } catch (err) {
    const code = (err as { code?: string }).code;
    const message = (err as Error).message ?? "";
    throw new FerryError(
      "PROTOCOL",
      code === "ERR_BUFFER_TOO_LARGE"
        ? `a compressed frame decompresses to more than ${max} bytes`
        : /too much memory/.test(message)
        ? "a compressed frame asks for a window over 1 MiB"
        : `a compressed frame is not valid zstd (${message.slice(0, 80)})`,
    );
  }
}
