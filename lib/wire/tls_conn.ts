/**
 * TLS through `node:tls`, as the byte connection `FrameConn` reads and
 * writes. Deno's own TLS cannot do two things ferry needs: show the client
 * the certificate of the connection it is using (for pinning), and close a
 * server-side connection whose handshake never finished. ferryd runs it over
 * Deno's TCP ({@linkcode ConnStream}): a `node:net` server stops accepting
 * for good once it runs out of file descriptors, and Node's TCP under
 * `node:tls` reads from the network however far behind the reader is.
 *
 * @module
 */

import { Duplex } from "node:stream";
import type { TLSSocket } from "node:tls";
import { FerryError } from "../util/errors.ts";
import { collectGarbage } from "../util/gc.ts";
import type { ByteConn } from "./frame_conn.ts";

/**
 * Bytes sent or received over all connections between two full garbage
 * collections. Deno's `node:tls` hands every TLS record over in a fresh
 * buffer, both ways, and V8, seeing a small heap, collects those buffers so
 * late that memory grew with the file (366 MiB for a 1 GiB download measured
 * here; 144 MiB with collections). Each costs about 20 ms on this project's
 * build machine.
 */
const COLLECT_EVERY = 16 * 1024 * 1024;
let sinceCollect = 0;

function churned(n: number): void {
  sinceCollect += n;
  if (sinceCollect < COLLECT_EVERY) return;
  sinceCollect = 0;
  collectGarbage();
}

/**
 * Ciphertext read from the network ahead of what the reader has taken, at
 * most. `node:tls` decrypts whatever reaches it into memory, read or not, so
 * without this a peer that sends while never reading (a flood during a
 * large `get`) grew ferryd by the megabytes it sent.
 */
const READ_AHEAD = 2 * 1024 * 1024;
const READ_SIZE = 256 * 1024;
/** Encrypted bytes queued for the network while a write is in flight, at most. */
const WRITE_BATCH = 1024 * 1024;

/** How long closing waits for the last batch to go out. */
const LINGER_MS = 1000;
/** How long a read waits for `node:tls` to hand over anything more once the network has ended. */
const END_GRACE_MS = 100;

function lost(err: Error): FerryError {
  const code = (err as { code?: string }).code;
  const why = code === "ETIMEDOUT" ? "timed out" : "connection lost";
  return new FerryError(code === "ETIMEDOUT" ? "TIMEOUT" : "CONNECT", `${why}: ${err.message}`);
}

/**
 * A Deno connection as the Node stream `node:tls` runs over, reading from
 * the network only while the plaintext reader keeps up.
 *
 * @example
 * ```ts ignore
 * import { TLSSocket } from "node:tls";
 * import { ConnStream } from "./tls_conn.ts";
 * const stream = new ConnStream(await Deno.connect({ port: 9500 }));
 * const socket = new TLSSocket(stream, { isServer: true, secureContext });
 * ```
 */
export class ConnStream extends Duplex {
  readonly #conn: Deno.Conn;
  readonly #buffer = new Uint8Array(READ_SIZE);
  readonly #out = [new Uint8Array(WRITE_BATCH), new Uint8Array(WRITE_BATCH)];
  #turn = 0;
  /** The last write handed to the connection. */
  #writing: Promise<void> = Promise.resolve();
  /** Ciphertext pulled but not yet matched by plaintext taken. */
  #ahead = 0;
  #parked = false;

  /** Wrap `conn`, which nothing else may read from or write to. */
  constructor(conn: Deno.Conn) {
    super({ writableHighWaterMark: WRITE_BATCH });
    this.#conn = conn;
  }

  override _read(): void {
    if (this.#ahead > READ_AHEAD) this.#parked = true;
    else this.#pull();
  }

  async #pull(): Promise<void> {
    try {
      const n = await this.#conn.read(this.#buffer);
      if (n === null) {
        this.push(null);
        return;
      }
      this.#ahead += n;
      // node:tls keeps the chunk, so it needs its own copy.
      this.push(this.#buffer.slice(0, n));
    } catch (err) {
      this.destroy(err as Error);
    }
  }

  /** The reader took `n` bytes of plaintext. */
  taken(n: number): void {
    this.#ahead -= n;
    if (this.#ahead <= READ_AHEAD) this.#unpark();
  }

  /**
   * The reader has taken everything decrypted so far and waits for more.
   * Records cost a few bytes each over their plaintext, so "ahead" drifts
   * upward; here it is known to be nothing.
   */
  starving(): void {
    this.#ahead = 0;
    this.#unpark();
  }

  #unpark(): void {
    if (!this.#parked) return;
    this.#parked = false;
    this.#pull();
  }

  override _write(
    chunk: Uint8Array,
    _encoding: string,
    callback: (err?: Error | null) => void,
  ): void {
    this._writev([{ chunk }], callback);
  }

  /**
   * TLS hands over a record (16 KiB at most) at a time: everything queued
   * goes out in one system call. A batch is accepted as soon as the write
   * before it is done, so TLS encrypts the next one while this one is on its
   * way; two buffers take turns.
   */
  override _writev(
    chunks: { chunk: Uint8Array }[],
    callback: (err?: Error | null) => void,
  ): void {
    let size = 0;
    for (const { chunk } of chunks) size += chunk.length;
    // Sent records are garbage too, but fewer collections do for them.
    churned(size / 4);
    const turn = this.#turn;
    this.#turn ^= 1;
    if (size > this.#out[turn].length) this.#out[turn] = new Uint8Array(size);
    const out = this.#out[turn].subarray(0, size);
    let off = 0;
    for (const { chunk } of chunks) {
      out.set(chunk, off);
      off += chunk.length;
    }
    const previous = this.#writing;
    this.#writing = previous.then(() => this.#writeAll(out));
    // A failure after the batch was accepted must still end the stream.
    this.#writing.catch((err) => this.destroy(err));
    previous.then(() => callback(), callback);
  }

  async #writeAll(chunk: Uint8Array): Promise<void> {
    for (let off = 0; off < chunk.length;) off += await this.#conn.write(chunk.subarray(off));
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.#writing.then(() => this.#conn.closeWrite()).then(() => callback(), callback);
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    const close = () => {
      clearTimeout(timer);
      try {
        this.#conn.close();
      } catch {
        // Already closed.
      }
    };
    // A batch already accepted is still on its way out: the last reply before a close, say.
    // It may go, but a peer that does not read must not hold the connection open for it.
    const timer = setTimeout(close, LINGER_MS);
    this.#writing.then(close, close);
    callback(err);
  }
}

/**
 * Reads pull from the TLS socket's own buffer (paused mode), and the
 * {@linkcode ConnStream} under it reads from the network only as fast as
 * they do, so memory stays bounded whatever the peer sends; writes resolve
 * once the socket has taken the bytes, so the caller may reuse its buffer
 * and feels the peer's backpressure.
 */
export class TlsConn implements ByteConn {
  readonly #socket: TLSSocket;
  readonly #stream: ConnStream | undefined;
  /** What was pulled from the socket but did not fit the last read. */
  #rest: Uint8Array | undefined;
  #ended = false;
  /** The network side has ended, whether or not `node:tls` has said so. */
  #streamEnded = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  /**
   * Wrap `socket`, which must not have a reader yet. Over a `stream`, reads
   * also pace the network; a socket on Node's own TCP reads on regardless.
   */
  constructor(socket: TLSSocket, stream?: ConnStream) {
    this.#socket = socket;
    this.#stream = stream;
    socket.on("readable", () => this.#notify());
    const end = () => this.#end();
    socket.on("end", end);
    socket.on("close", end);
    stream?.on("end", () => {
      this.#streamEnded = true;
      this.#notify();
    });
    socket.on("error", (err: Error) => {
      this.#error ??= err;
      this.#notify();
    });
  }

  #end(): void {
    this.#ended = true;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async read(p: Uint8Array): Promise<number | null> {
    for (;;) {
      const fresh = this.#rest === undefined;
      const chunk: Uint8Array | null = this.#rest ?? this.#socket.read();
      this.#rest = undefined;
      if (chunk !== null) {
        if (fresh) {
          this.#stream?.taken(chunk.length);
          churned(chunk.length);
        }
        const n = Math.min(chunk.length, p.length);
        p.set(chunk.subarray(0, n));
        if (n < chunk.length) this.#rest = chunk.subarray(n);
        return n;
      }
      if (this.#error) throw lost(this.#error);
      if (this.#ended) return null;
      this.#stream?.starving();
      // node:tls has taken every byte the peer sent, yet when the end of the stream came
      // behind a backlog it may never say so: what it has not handed over by now, it won't.
      const grace = this.#streamEnded ? setTimeout(() => this.#end(), END_GRACE_MS) : undefined;
      await new Promise<void>((resolve) => this.#wake = resolve);
      clearTimeout(grace);
    }
  }

  write(p: Uint8Array): Promise<number> {
    if (this.#error) return Promise.reject(lost(this.#error));
    if (this.#socket.destroyed) return Promise.reject(new FerryError("CONNECT", "connection lost"));
    return new Promise((resolve, reject) => {
      this.#socket.write(p, (err?: Error | null) => err ? reject(lost(err)) : resolve(p.length));
    });
  }

  closeWrite(): Promise<void> {
    return new Promise((resolve) => this.#socket.end(resolve));
  }

  close(): void {
    this.#socket.destroy();
    this.#stream?.destroy();
    this.#end();
  }
}
