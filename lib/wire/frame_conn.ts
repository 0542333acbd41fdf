/**
 * Frames over a Deno connection: reads into one reused buffer, writes whole
 * frames, and closes the connection when it stalls for longer than its
 * timeout.
 *
 * @module
 */

import { FerryError, toFerryError } from "../util/errors.ts";
import {
  DEFAULT_LIMITS,
  encodeMessage,
  type Frame,
  FrameDecoder,
  type FrameLimits,
  type FrameType,
  HEADER_SIZE,
  writeHeader,
} from "../frame.ts";

/** What a {@linkcode FrameConn} needs of a connection; `Deno.Conn` and `Deno.TlsConn` fit. */
export interface ByteConn {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
  /** Send end-of-stream while still reading (TCP half-close). */
  closeWrite?(): Promise<void>;
}

/** How long, and how many bytes, {@linkcode FrameConn.closeAfterLast} drains at most. */
const LINGER_MS = 500;
const LINGER_BYTES = 1024 * 1024;

/** Small writes queued behind a write in flight are merged up to this many bytes. */
const COALESCE_LIMIT = 64 * 1024;

interface QueuedWrite {
  bytes: Uint8Array;
  resolve(): void;
  reject(err: unknown): void;
}

function concat(batch: QueuedWrite[]): Uint8Array {
  const out = new Uint8Array(batch.reduce((n, w) => n + w.bytes.length, 0));
  let offset = 0;
  for (const { bytes } of batch) {
    out.set(bytes, offset);
    offset += bytes.length;
  }
  return out;
}

/** Options for {@linkcode FrameConn}. */
export interface FrameConnOptions {
  /** Limits applied to incoming frames. */
  limits?: FrameLimits;
  /** Close the connection when a read or write makes no progress for this long (ms). 0 = never. */
  timeoutMs?: number;
  /**
   * Receive buffer size; at least one frame of the largest kind. Larger lets
   * one read take in several frames.
   */
  bufferSize?: number;
  /** Allocate the whole receive buffer at once instead of growing it as frames need. */
  eager?: boolean;
}

/**
 * A framed, bidirectional connection.
 *
 * @example
 * ```ts ignore
 * import { FrameConn } from "./frame_conn.ts";
 * import { FrameType } from "../frame.ts";
 * const fc = new FrameConn(await Deno.connect({ port: 9500 }));
 * await fc.sendMessage(FrameType.HELLO, 0, { version: 1 });
 * const frame = await fc.read();
 * ```
 */
export class FrameConn {
  readonly #conn: ByteConn;
  readonly #decoder: FrameDecoder;
  #timeoutMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #lastProgress = Date.now();
  #pending = 0;
  #timedOut = false;
  #closed = false;
  #queue: QueuedWrite[] = [];
  #queued = 0;
  #flushing: Promise<void> | undefined;
  /** Kicks the queue when the event loop next turns, should nothing else do it first. */
  #backstop: ReturnType<typeof setTimeout> | undefined;

  /** Wrap `conn`. */
  constructor(conn: ByteConn, options: FrameConnOptions = {}) {
    this.#conn = conn;
    this.#decoder = new FrameDecoder(
      options.limits ?? DEFAULT_LIMITS,
      options.bufferSize,
      options.eager ? options.bufferSize : undefined,
    );
    this.#timeoutMs = options.timeoutMs ?? 0;
    this.#arm();
  }

  /** Whether {@linkcode close} was called or the connection timed out. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Change the stall timeout (ms); 0 disables it. */
  setTimeout(ms: number): void {
    this.#timeoutMs = ms;
    this.#lastProgress = Date.now();
    this.#arm();
  }

  /**
   * The next frame, or `null` at a clean end of stream. The payload is valid
   * until the next call. End of stream inside a frame is a protocol error.
   */
  async read(): Promise<Frame | null> {
    for (;;) {
      const frame = this.#decoder.next();
      if (frame) return frame;
      this.#kick();
      const n = await this.#io(() => this.#conn.read(this.#decoder.space()));
      if (n === null) {
        if (this.#decoder.buffered === 0) return null;
        throw new FerryError("CONNECT", "connection lost in the middle of a frame");
      }
      this.#decoder.commit(n);
    }
  }

  /**
   * Write `bytes` completely; resolves once they are handed to the kernel, so
   * the caller may then reuse the buffer. Writes never interleave. Small
   * frames queued while a write is in flight go out together in one syscall:
   * pipelined replies and requests cost one write per batch, not per frame.
   */
  write(bytes: Uint8Array): Promise<void> {
    const sent = this.#enqueue(bytes);
    this.#kick();
    return sent;
  }

  #enqueue(bytes: Uint8Array): Promise<void> {
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    this.#queue.push({ bytes, resolve, reject });
    this.#queued += bytes.length;
    return promise;
  }

  /** Start writing out the queue, unless that is under way. */
  #kick(): void {
    if (this.#queue.length > 0) this.#flushing ??= this.#flush();
  }

  /** Send a control frame carrying `message` as JSON. */
  sendMessage(type: FrameType, id: number, message: unknown): Promise<void> {
    return this.write(encodeMessage(type, id, message));
  }

  /**
   * Queue a control frame without waiting for the kernel to take it. While
   * the peer's next frame is already here, it stays queued, and leaves
   * with everything queued behind it: with the next {@linkcode write},
   * before the next read that has to wait for the peer, or when the event
   * loop next turns (a long request in between must not hold it back). So
   * the replies to a run of pipelined requests cost one write, not one each.
   * Waits only when more than a batch is queued, so a peer that never reads
   * cannot make the queue grow. A failed write surfaces in the next read or
   * write.
   */
  async postMessage(type: FrameType, id: number, message: unknown): Promise<void> {
    const sent = this.#enqueue(encodeMessage(type, id, message));
    if (this.#queued > COALESCE_LIMIT) {
      this.#kick();
      return await sent;
    }
    sent.catch(() => {});
    if (!this.#decoder.ready) return this.#kick();
    this.#backstop ??= setTimeout(() => {
      this.#backstop = undefined;
      this.#kick();
    }, 0);
  }

  /** Resolves once everything queued has been handed to the kernel, or failed. */
  async flushed(): Promise<void> {
    this.#kick();
    await this.#flushing;
  }

  /**
   * Send `length` bytes that the caller placed at `buf[HEADER_SIZE..]` as one
   * frame; the header is written in place, so the payload is never copied.
   */
  sendFramed(type: FrameType, id: number, buf: Uint8Array, length: number): Promise<void> {
    writeHeader(buf, type, id, length);
    return this.write(buf.subarray(0, HEADER_SIZE + length));
  }

  /** Apply new limits to incoming frames, e.g. once the handshake is done. */
  setLimits(limits: FrameLimits): void {
    this.#decoder.setLimits(limits);
  }

  /**
   * Close the connection; pending reads and writes fail, with TIMEOUT if
   * `reason` says so. Safe to call twice.
   */
  close(reason?: "TIMEOUT"): void {
    if (this.#closed) return;
    if (reason === "TIMEOUT") this.#timedOut = true;
    this.#closed = true;
    clearInterval(this.#timer);
    clearTimeout(this.#backstop);
    try {
      this.#conn.close();
    } catch {
      // Already closed by the peer or the runtime: nothing left to release.
    }
  }

  /**
   * Close after a last message, so that the peer gets it. Closing a socket
   * with bytes from the peer still unread makes the kernel send a reset,
   * which may destroy the message on its way; so this half-closes, reads
   * and drops what the peer still sends (briefly, and only so much), then
   * closes.
   */
  async closeAfterLast(): Promise<void> {
    if (this.#closed) return;
    const scratch = new Uint8Array(64 * 1024);
    const deadline = setTimeout(() => this.close(), LINGER_MS);
    try {
      await this.flushed();
      await this.#conn.closeWrite?.();
      for (let drained = 0; drained < LINGER_BYTES;) {
        const n = await this.#conn.read(scratch);
        if (n === null) break;
        drained += n;
      }
    } catch {
      // Reset or closed meanwhile: nothing more to save.
    } finally {
      clearTimeout(deadline);
      this.close();
    }
  }

  async #flush(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#takeBatch();
      for (const item of batch) this.#queued -= item.bytes.length;
      try {
        await this.#writeAll(batch.length === 1 ? batch[0].bytes : concat(batch));
        for (const item of batch) item.resolve();
      } catch (err) {
        for (const item of [...batch, ...this.#queue.splice(0)]) item.reject(err);
        this.#queued = 0;
      }
    }
    this.#flushing = undefined;
  }

  /** The next write: one large buffer as it is, or a run of small ones. */
  #takeBatch(): QueuedWrite[] {
    const batch = [this.#queue.shift()!];
    let size = batch[0].bytes.length;
    while (
      size < COALESCE_LIMIT && this.#queue.length > 0 &&
      size + this.#queue[0].bytes.length <= COALESCE_LIMIT
    ) {
      const next = this.#queue.shift()!;
      batch.push(next);
      size += next.bytes.length;
    }
    return batch;
  }

  async #writeAll(bytes: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < bytes.length) {
      offset += await this.#io(() => this.#conn.write(bytes.subarray(offset)));
    }
  }

  async #io<T>(op: () => Promise<T>): Promise<T> {
    if (this.#closed) throw this.#closedError();
    this.#pending++;
    try {
      const result = await op();
      this.#lastProgress = Date.now();
      return result;
    } catch (err) {
      throw this.#closed ? this.#closedError() : toFerryError(err);
    } finally {
      this.#pending--;
    }
  }

  #closedError(): FerryError {
    return this.#timedOut
      ? new FerryError("TIMEOUT", `no progress for ${this.#timeoutMs / 1000} s`)
      : new FerryError("CONNECT", "connection closed");
  }

  /** One interval per connection, instead of a timer per read. */
  #arm(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    if (this.#timeoutMs <= 0 || this.#closed) return;
    const every = Math.max(10, Math.min(1000, this.#timeoutMs / 4));
    this.#timer = setInterval(() => {
      if (this.#pending > 0 && Date.now() - this.#lastProgress > this.#timeoutMs) {
        this.close("TIMEOUT");
      }
    }, every);
    Deno.unrefTimer(this.#timer);
  }
}
