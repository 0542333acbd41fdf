/**
 * A face is one protocol ferryd speaks on its port, in front of the one
 * service. The listener hands each new connection to the face its first
 * bytes belong to: a ferry HELLO to the protocol session, and, beside it,
 * whatever face comes next.
 *
 * @module
 */

import type { ByteConn } from "../../wire/frame_conn.ts";

/** One connection a face serves. */
export interface FaceSession {
  /** Serve until the connection ends; never rejects. */
  run(): Promise<void>;
  /** Finish the requests already received, then end (a graceful shutdown). */
  drain(): void;
  /** End now. */
  abort(): void;
  /** Whether a request is being handled right now. */
  readonly busy: boolean;
}

/** A protocol ferryd speaks. */
export interface Face {
  /** Its name, for the log. */
  readonly name: string;
  /** Whether a connection that starts with `head` (at least one byte) speaks it. */
  accepts(head: Uint8Array): boolean;
  /** Serve `conn`, whose first bytes are still to be read, from `peer`. */
  open(conn: ByteConn, peer: string): FaceSession;
  /** Turn `conn` away, saying why in its protocol (the server is busy), then close it. */
  refuse(conn: ByteConn, why: string): void;
}

/**
 * A connection whose first bytes were read already, to choose its face:
 * they are read again first.
 */
export class PeekedConn implements ByteConn {
  readonly #conn: ByteConn;
  #head: Uint8Array;

  /** `conn`, from which `head` was read. */
  constructor(conn: ByteConn, head: Uint8Array) {
    this.#conn = conn;
    this.#head = head;
  }

  read(p: Uint8Array): Promise<number | null> {
    if (this.#head.length === 0) return this.#conn.read(p);
    const n = Math.min(p.length, this.#head.length);
    p.set(this.#head.subarray(0, n));
    this.#head = this.#head.subarray(n);
    return Promise.resolve(n);
  }

  write(p: Uint8Array): Promise<number> {
    return this.#conn.write(p);
  }

  close(): void {
    this.#conn.close();
  }

  closeWrite(): Promise<void> {
    return this.#conn.closeWrite?.() ?? Promise.resolve();
  }
}

/** What became of a connection's first bytes (see {@linkcode route}). */
export type Routed =
  | { face: Face; conn: ByteConn }
  | { face?: undefined; silent: boolean };

/**
 * Read the first bytes of `conn`, waiting at most `timeoutMs`, and find the
 * face they belong to; bytes no face claims go to the last face, which
 * explains in its own protocol what is wrong. Returns the face and the
 * connection with those bytes still to read. A connection that closed is
 * closed; one that stayed silent (`silent`) is closed too, unless `keep`
 * says its caller still has something to tell it.
 *
 * @example
 * ```ts ignore
 * const routed = await route(conn, [protocolFace], 10_000);
 * if (routed.face) routed.face.open(routed.conn, peer).run();
 * ```
 */
export async function route(
  conn: ByteConn,
  faces: readonly Face[],
  timeoutMs: number,
  options: { keep?: boolean } = {},
): Promise<Routed> {
  const buf = new Uint8Array(16);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const silence = new Promise<"silent">((resolve) => {
    timer = setTimeout(() => resolve("silent"), timeoutMs);
  });
  try {
    const read = conn.read(buf);
    read.catch(() => {});
    const n = await Promise.race([read, silence]);
    if (n === "silent") {
      if (!options.keep) close(conn);
      return { silent: true };
    }
    if (n === null || n === 0) return close(conn);
    const head = buf.subarray(0, n);
    const face = faces.find((f) => f.accepts(head)) ?? faces[faces.length - 1];
    return { face, conn: new PeekedConn(conn, head) };
  } catch {
    return close(conn);
  } finally {
    clearTimeout(timer);
  }
}

function close(conn: ByteConn): { silent: false } {
  try {
    conn.close();
  } catch {
    // Closed already.
  }
  return { silent: false };
}
