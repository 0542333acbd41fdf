/**
 * A ferryd connection as the Node socket `node:http` expects: a Duplex over
 * a {@linkcode ByteConn} (plain TCP, or TLS already terminated, with the
 * bytes read to pick the face still to come), with the socket calls an HTTP
 * server makes on it. `node:http` implements its keep-alive timeout through
 * `setTimeout`, so that one is real: it fires after that long without a byte
 * either way.
 *
 * @module
 */

import { Duplex } from "node:stream";
import type { ByteConn } from "../../../wire/frame_conn.ts";

/** Bytes read at once, and read ahead of the HTTP parser at most. */
const READ_SIZE = 256 * 1024;

/**
 * `conn` as a Node Duplex for `node:http` (see the module doc).
 *
 * @example
 * ```ts ignore
 * server.emit("connection", new ConnDuplex(conn, "127.0.0.1:40000"));
 * ```
 */
export class ConnDuplex extends Duplex {
  readonly #conn: ByteConn;
  /** The peer, as the log names it. */
  readonly remoteAddress: string;
  readonly #buffer = new Uint8Array(READ_SIZE);
  #reading = false;
  #idleMs = 0;
  #last = 0;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;

  /** Wrap `conn`, from `peer`; nothing else may read or write it. */
  constructor(conn: ByteConn, peer: string) {
    super({ readableHighWaterMark: READ_SIZE, writableHighWaterMark: READ_SIZE });
    this.#conn = conn;
    this.remoteAddress = peer;
  }

  override _read(): void {
    if (this.#reading) return;
    this.#reading = true;
    this.#conn.read(this.#buffer).then((n) => {
      this.#reading = false;
      this.#active();
      // A copy of its own: the HTTP parser may keep a body's bytes past this call.
      if (n === null) this.push(null);
      else if (this.push(this.#buffer.slice(0, n))) this._read();
    }, (err) => this.destroy(err));
  }

  override _write(
    chunk: Uint8Array,
    _encoding: string,
    callback: (err?: Error | null) => void,
  ): void {
    this.#writeAll(chunk).then(() => {
      this.#active();
      callback();
    }, callback);
  }

  /** A response's headers and body, queued together, go out in one write. */
  override _writev(
    chunks: { chunk: Uint8Array }[],
    callback: (err?: Error | null) => void,
  ): void {
    if (chunks.length === 1) return this._write(chunks[0].chunk, "", callback);
    let size = 0;
    for (const { chunk } of chunks) size += chunk.length;
    const all = new Uint8Array(size);
    let at = 0;
    for (const { chunk } of chunks) {
      all.set(chunk, at);
      at += chunk.length;
    }
    this._write(all, "", callback);
  }

  async #writeAll(chunk: Uint8Array): Promise<void> {
    for (let off = 0; off < chunk.length;) off += await this.#conn.write(chunk.subarray(off));
  }

  override _final(callback: (err?: Error | null) => void): void {
    (this.#conn.closeWrite?.() ?? Promise.resolve()).then(() => callback(), () => callback());
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    clearTimeout(this.#idleTimer);
    try {
      this.#conn.close();
    } catch {
      // Closed already.
    }
    callback(err);
  }

  /** Emit `timeout` after `ms` without a byte either way (0: never), as `net.Socket` does. */
  setTimeout(ms: number, onTimeout?: () => void): this {
    this.#idleMs = ms;
    if (onTimeout) this.once("timeout", onTimeout);
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    this.#active();
    if (ms > 0) this.#arm(ms);
    return this;
  }

  /**
   * Note activity. A timer per read or write cost more than the request it
   * timed: the one timer, when it fires, checks the last activity and waits
   * again for what is left.
   */
  #active(): void {
    this.#last = performance.now();
  }

  #arm(ms: number): void {
    this.#idleTimer = setTimeout(() => {
      const idle = performance.now() - this.#last;
      if (idle >= this.#idleMs) this.emit("timeout");
      else if (this.#idleMs > 0) this.#arm(this.#idleMs - idle);
    }, ms);
  }

  /** TCP_NODELAY is set on every connection already. */
  setNoDelay(): this {
    return this;
  }

  /** Keep-alive probes are not ferryd's business. */
  setKeepAlive(): this {
    return this;
  }

  /** End once what is written has gone out. */
  destroySoon(): void {
    this.end();
  }
}
