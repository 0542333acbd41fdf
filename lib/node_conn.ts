/**
 * A `node:net` or `node:tls` socket as the byte connection `FrameConn`
 * reads and writes. TLS goes through `node:tls` on both ends because
 * Deno's own TLS cannot do two things ferry needs: show the client the
 * certificate of the connection it is using (for pinning), and close a
 * server-side connection whose handshake never finished.
 *
 * @module
 */

import type { Socket } from "node:net";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { FerryError } from "./errors.ts";
import type { ByteConn } from "./frame_conn.ts";

/**
 * A full garbage collection, where the runtime allows one. Deno's `node:tls`
 * hands every TLS record over in a fresh buffer, and V8, seeing a small heap,
 * collects those buffers so late that a receiver's memory grew with the file
 * (366 MiB for 1 GiB measured here; 144 MiB with collections). So a receiver
 * asks for a collection every {@linkcode COLLECT_EVERY} bytes: with a heap of
 * a few MiB, each takes about a millisecond.
 */
const collect = (() => {
  try {
    setFlagsFromString("--expose-gc");
    return runInNewContext("gc") as () => void;
  } catch {
    return undefined;
  }
})();

/** Bytes received over all connections between two collections. */
const COLLECT_EVERY = 16 * 1024 * 1024;
let receivedSinceCollect = 0;

function lost(err: Error): FerryError {
  const code = (err as { code?: string }).code;
  const why = code === "ETIMEDOUT" ? "timed out" : "connection lost";
  return new FerryError(code === "ETIMEDOUT" ? "TIMEOUT" : "CONNECT", `${why}: ${err.message}`);
}

/**
 * Reads pull from the socket's own buffer (paused mode), so the socket reads
 * from the network only as fast as ferry consumes and memory stays bounded
 * whatever the peer sends; writes resolve once the socket has taken the
 * bytes, so the caller may reuse its buffer and feels the peer's backpressure.
 */
export class NodeSocketConn implements ByteConn {
  readonly #socket: Socket;
  /** What was pulled from the socket but did not fit the last read. */
  #rest: Uint8Array | undefined;
  #ended = false;
  #error: Error | undefined;
  #wake: (() => void) | undefined;

  /** Wrap `socket`; it must not have a reader yet. */
  constructor(socket: Socket) {
    this.#socket = socket;
    socket.on("readable", () => this.#notify());
    const end = () => {
      this.#ended = true;
      this.#notify();
    };
    socket.on("end", end);
    socket.on("close", end);
    socket.on("error", (err: Error) => {
      this.#error ??= err;
      this.#notify();
    });
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
        if (fresh) receivedSinceCollect += chunk.length;
        if (receivedSinceCollect >= COLLECT_EVERY) {
          receivedSinceCollect = 0;
          collect?.();
        }
        const n = Math.min(chunk.length, p.length);
        p.set(chunk.subarray(0, n));
        if (n < chunk.length) this.#rest = chunk.subarray(n);
        return n;
      }
      if (this.#error) throw lost(this.#error);
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
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
    this.#ended = true;
    this.#notify();
  }
}
