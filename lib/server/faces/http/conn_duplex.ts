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

import { Buffer } from "node:buffer";
import { createServer } from "node:http";
import { Duplex } from "node:stream";
import type { ByteConn } from "../../../wire/frame_conn.ts";

/**
 * Bytes read at once at first: a request's head, or a small body. A read
 * that fills the buffer (a large body on its way) makes the next buffers
 * larger, up to {@linkcode MAX_READ}.
 */
const FIRST_READ = 16 * 1024;

/**
 * Bytes read at once at most, and read ahead of the HTTP parser at most;
 * also how much written may wait in the Duplex before `write` says to wait.
 * (Reads of 1 MiB, each a new buffer, cost more than they saved: large
 * allocations are zero-filled and page-faulted anew.)
 */
const MAX_READ = 256 * 1024;

/**
 * The most bytes of queued writes (a small response's head and body) that
 * are joined in the connection's own buffer, reused from one response to
 * the next; more get a buffer of their own.
 */
const JOIN_MAX = 64 * 1024;

/**
 * How long, and how many bytes of an unread body, {@linkcode ConnDuplex.lingerClose}
 * drains at most before it closes: time for a client to see the answer and
 * stop sending (curl looks for one between writes).
 */
const LINGER_MS = 1000;
const LINGER_BYTES = 16 * 1024 * 1024;

const encoder = new TextEncoder();

/** Whether a string written with `encoding` is one byte per character (a response's head). */
function isLatin1(encoding: string): boolean {
  return encoding === "latin1" || encoding === "binary" || encoding === "ascii";
}

/**
 * The bytes of a chunk written with `encoding`. Node's own conversion of a
 * string (`Buffer.from`) cost more than the rest of a small response's write.
 */
function bytesOf(chunk: string | Uint8Array, encoding: string): Uint8Array {
  if (typeof chunk !== "string") return chunk;
  if (isLatin1(encoding)) {
    const bytes = new Uint8Array(chunk.length);
    latin1Into(chunk, bytes, 0);
    return bytes;
  }
  return encoding === "utf8" || encoding === "utf-8"
    ? encoder.encode(chunk)
    : Buffer.from(chunk, encoding as BufferEncoding);
}

/** Text whose UTF-8 is its latin1: one byte per character either way. */
// deno-lint-ignore no-control-regex
const ASCII = /^[\x00-\x7f]*$/;

/** Write `text` into `bytes` at `at`, a byte per character (what latin1 means to Node). */
function latin1Into(text: string, bytes: Uint8Array, at: number): void {
  // A response's head is ASCII: encoded natively, which is several times faster than a loop.
  if (ASCII.test(text)) {
    encoder.encodeInto(text, at === 0 ? bytes : bytes.subarray(at));
    return;
  }
  for (let i = 0; i < text.length; i++) bytes[at + i] = text.charCodeAt(i);
}

/**
 * Whether `node:http` is known to keep nothing of a chunk it has parsed at
 * once: it copies a request's body out (Deno's parser does; Node's own
 * hands out views), and keeps the head as strings. Then a read buffer whose
 * chunk was taken at once is read into again, rather than a new one made
 * for every read: an upload allocated a buffer per read, which cost a fifth
 * of its time in zero-filled pages and collections. Unknown until
 * {@linkcode checkBodiesCopied} has seen it for itself.
 */
let bodiesCopied = false;
let bodiesChecked = false;

/**
 * Find out, once, whether this runtime's `node:http` copies a request's
 * body out of the bytes it is given (see `bodiesCopied`): a request is fed
 * to a throwaway server, its bytes overwritten as soon as the server has
 * taken them, and the body the handler then reads must be the one sent.
 * Until then (and if not) every read gets a buffer of its own.
 */
export function checkBodiesCopied(): void {
  if (bodiesChecked) return;
  bodiesChecked = true;
  const body = "ferry body check";
  const socket = new Duplex({
    read() {},
    write(_chunk, _encoding, callback) {
      callback();
    },
  });
  socket.on("error", () => {});
  const server = createServer((req, res) => {
    req.once("data", (chunk: Uint8Array) => {
      bodiesCopied = new TextDecoder().decode(chunk) === body;
      res.destroy();
      socket.destroy();
    });
  });
  server.on("clientError", () => socket.destroy());
  // Fed as a connection is, once it flows: bytes taken at once are overwritten, as a read into
  // the same buffer would overwrite them.
  socket.once("resume", () => {
    const bytes = encoder.encode(
      `PUT /check HTTP/1.1\r\nHost: ferry\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    socket.push(bytes);
    if (socket.readableLength === 0) bytes.fill(0);
    else socket.destroy();
  });
  try {
    server.emit("connection", socket);
  } catch {
    socket.destroy();
  }
}

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
  /** Where the next read goes (made when needed), and how large it is made. */
  #buffer: Uint8Array | undefined;
  #readSize = FIRST_READ;
  #reading = false;
  /** Bytes dropped so far while draining for {@linkcode lingerClose}; undefined before. */
  #lingered: number | undefined;
  /** Where small queued writes are joined (see `_writev`), made when first needed. */
  #joined: Uint8Array | undefined;
  #idleMs = 0;
  /** When a byte last went either way (`performance.now()`). */
  #last = 0;
  #idleTimer: ReturnType<typeof setTimeout> | undefined;
  /** When the armed timer fires (`performance.now()`). */
  #timerAt = 0;

  /** Wrap `conn`, from `peer`; nothing else may read or write it. */
  constructor(conn: ByteConn, peer: string) {
    // Strings are taken as they come (as net.Socket does): see bytesOf.
    super({
      readableHighWaterMark: MAX_READ,
      writableHighWaterMark: MAX_READ,
      decodeStrings: false,
    });
    this.#conn = conn;
    this.remoteAddress = peer;
  }

  override _read(): void {
    if (this.#reading) return;
    this.#reading = true;
    const buffer = this.#buffer ??= new Uint8Array(this.#readSize);
    this.#conn.read(buffer).then((n) => {
      this.#reading = false;
      this.#last = performance.now();
      if (this.#lingered !== undefined) return this.#drain(buffer, n);
      if (n === null) return void this.push(null);
      if (n === buffer.length) this.#readSize = Math.min(MAX_READ, this.#readSize * 4);
      // The chunk is the reader's to keep unless it was taken at once by a parser that keeps
      // nothing of it (see bodiesCopied): a buffer read mostly full is handed over whole, and
      // the next read gets a new one; a few bytes are copied out, and the buffer read again.
      let chunk: Uint8Array;
      if (bodiesCopied || n > buffer.length / 2) {
        chunk = buffer.subarray(0, n);
        this.#buffer = undefined;
      } else chunk = buffer.slice(0, n);
      const more = this.push(chunk);
      // Nothing left in the Duplex: node:http has parsed it already, keeping nothing.
      if (
        bodiesCopied && chunk.buffer === buffer.buffer && this.readableLength === 0 &&
        buffer.length === this.#readSize && this.#buffer === undefined
      ) {
        this.#buffer = buffer;
      }
      if (more) this._read();
    }, (err) => this.destroy(err));
  }

  /**
   * Close once the answer is out, with a body still arriving that nobody
   * will read (a request refused before its body): closing a socket with
   * unread bytes makes the kernel send a reset, and curl, still sending,
   * then fails with "Send failure" before it reads the answer (1 upload in
   * 20 of a 256 MiB file to a read-only ferryd). So this stops writing once
   * what is queued is out, reads and drops what the peer still sends, and
   * closes at its end, or after {@linkcode LINGER_MS} or
   * {@linkcode LINGER_BYTES}, as `FrameConn.closeAfterLast` does.
   */
  lingerClose(): void {
    if (this.#lingered !== undefined || this.destroyed) return;
    this.#lingered = 0;
    const deadline = setTimeout(() => this.destroy(), LINGER_MS);
    this.once("close", () => clearTimeout(deadline));
    this.end();
    // A read in flight drains when it completes; otherwise one starts now.
    if (!this.#reading) this.#drain(new Uint8Array(64 * 1024), 0);
  }

  /** Drop `n` bytes read while lingering, and read on until the end or a limit. */
  #drain(buffer: Uint8Array, n: number | null): void {
    if (n === null || this.destroyed) return void this.destroy();
    this.#lingered! += n;
    if (this.#lingered! > LINGER_BYTES) return void this.destroy();
    this.#reading = true;
    this.#conn.read(buffer).then((m) => {
      this.#reading = false;
      this.#drain(buffer, m);
    }, () => this.destroy());
  }

  override _write(
    chunk: Uint8Array | string,
    encoding: string,
    callback: (err?: Error | null) => void,
  ): void {
    this.#writeAll(bytesOf(chunk, encoding), 0, callback);
  }

  /**
   * Writes queued together: a small response's head and body go out in one
   * write, joined in a buffer of the connection's, reused once the write
   * before is done (Node calls this again only then). Large pieces (a large
   * file's, two of which may be queued at once) go as they are, one after
   * the other: joining them would copy megabytes.
   */
  override _writev(
    chunks: { chunk: Uint8Array | string; encoding: string }[],
    callback: (err?: Error | null) => void,
  ): void {
    if (chunks.length === 1) return this._write(chunks[0].chunk, chunks[0].encoding, callback);
    const parts = chunks.map(({ chunk, encoding }) =>
      typeof chunk === "string" && isLatin1(encoding) ? chunk : bytesOf(chunk, encoding)
    );
    let size = 0;
    for (const part of parts) size += part.length;
    if (size > JOIN_MAX) {
      return this.#writeParts(parts.map((part) => bytesOf(part, "latin1")), 0, callback);
    }
    if (!this.#joined || this.#joined.length < size) {
      this.#joined = new Uint8Array(Math.max(size, 8 * 1024));
    }
    const all = this.#joined.subarray(0, size);
    let at = 0;
    for (const part of parts) {
      if (typeof part === "string") latin1Into(part, all, at);
      else all.set(part, at);
      at += part.length;
    }
    this.#writeAll(all, 0, callback);
  }

  /** Write `parts` from the `i`th on, one after the other, then call back. */
  #writeParts(
    parts: Uint8Array[],
    i: number,
    callback: (err?: Error | null) => void,
  ): void {
    if (i === parts.length) return callback();
    this.#writeAll(parts[i], 0, (err) => {
      if (err) callback(err);
      else this.#writeParts(parts, i + 1, callback);
    });
  }

  /** Write `bytes` from `from` on, then call back (Deno may take part of them at a time). */
  #writeAll(bytes: Uint8Array, from: number, callback: (err?: Error | null) => void): void {
    this.#conn.write(from === 0 ? bytes : bytes.subarray(from)).then((n) => {
      this.#last = performance.now();
      if (from + n < bytes.length) this.#writeAll(bytes, from + n, callback);
      else callback();
    }, callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    (this.#conn.closeWrite?.() ?? Promise.resolve()).then(() => callback(), () => callback());
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    clearTimeout(this.#idleTimer);
    this.#idleTimer = undefined;
    try {
      this.#conn.close();
    } catch {
      // Closed already.
    }
    callback(err);
  }

  /**
   * Emit `timeout` after `ms` without a byte either way (0: never), as
   * `net.Socket` does. `node:http` calls this twice a request (the request
   * timeout as it starts, the keep-alive one as it ends), and a timer made
   * each time cost more than a small request: the one timer stays armed,
   * and is armed anew only when it would fire too late. When it fires, it
   * checks the last activity and waits again for what is left.
   */
  setTimeout(ms: number, onTimeout?: () => void): this {
    if (onTimeout) this.once("timeout", onTimeout);
    const now = performance.now();
    this.#last = now;
    this.#idleMs = ms;
    // Without a timeout, the armed timer finds nothing to do when it fires.
    if (ms > 0 && (this.#idleTimer === undefined || this.#timerAt > now + ms)) {
      clearTimeout(this.#idleTimer);
      this.#arm(now, ms);
    }
    return this;
  }

  #arm(now: number, ms: number): void {
    this.#timerAt = now + ms;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = undefined;
      if (this.#idleMs <= 0 || this.destroyed) return;
      const at = performance.now();
      const idle = at - this.#last;
      if (idle >= this.#idleMs) this.emit("timeout");
      else this.#arm(at, this.#idleMs - idle);
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
