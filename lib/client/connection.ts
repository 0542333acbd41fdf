/**
 * One connection to ferryd: the handshake, then requests sent in order and
 * answered in order, any number of them in flight, each answer's frames
 * handed to the request they belong to.
 *
 * @module
 */

import { type Algorithm, ALGORITHMS, loadAlgorithm } from "../checksum/checksum.ts";
import {
  type Entry,
  errorFromMessage,
  type Hello,
  MAX_LISTING_ENTRIES,
  parseLsReply,
  parseWelcome,
  PROTOCOL_VERSION,
  type Request,
  type Welcome,
} from "../commands.ts";
import { decodeMessage, type Frame, FrameType, frameTypeName, HEADER_SIZE } from "../frame.ts";
import { connectionLost, FerryError, toFerryError } from "../util/errors.ts";
import { escapeControls } from "../util/display.ts";
import { VERSION } from "../util/version.ts";
import { FrameConn } from "../wire/frame_conn.ts";
import type { TlsOptions } from "../wire/tls_trust.ts";
import { type Address, connectTcp, formatAddress } from "./address.ts";

/** The client's receive buffer: a roomy one lets a read take in several frames. */
const RECEIVE_BUFFER = 2 * 1024 * 1024;

/** How a request hears its answer: each frame, until it settles. */
export type FrameHandler<T> = (
  frame: Frame,
  done: (value: T) => void,
  fail: (err: FerryError) => void,
) => void | Promise<void>;

interface Pending {
  /** Handle one frame of this request's answer; resolves when done with it. */
  frame(frame: Frame): void | Promise<void>;
  /** The connection failed: settle with `err`. */
  fail(err: FerryError): void;
}

/** What {@linkcode openConnection} needs beyond the address. */
export interface ConnectionOptions {
  /** Stall timeout for connecting and for requests in flight (ms; 0 = never). */
  timeoutMs: number;
  /** Access token, for a server that requires one. */
  token?: string;
  /** Talk TLS, with these trust settings. */
  tls?: TlsOptions;
  /** Transfer checksums accepted; the server picks by its own order (default: every one). */
  checksums?: Algorithm[];
  /** Ask for zstd-compressed data frames. */
  compress?: boolean;
}

/** Connect to `addr`, say HELLO, and take the server's WELCOME. */
export async function openConnection(
  addr: Address,
  options: ConnectionOptions,
): Promise<Connection> {
  const { timeoutMs, tls } = options;
  // The checksum the client prefers loads while the connection is made (the addon takes about
  // 18 ms to load): over a real link that time is spent waiting for the server anyway.
  const offered = options.checksums ?? ALGORITHMS;
  if (offered.length > 0) loadAlgorithm(offered[0]).catch(() => {});
  const conn = tls
    // Imported only now: TLS loads Node's layer, which a plain connection does without.
    ? await (await import("../wire/tls.ts")).connectTls(addr.hostname, addr.port, {
      ...tls,
      timeoutMs,
    })
    : await connectTcp(addr, timeoutMs);
  const fc = new FrameConn(conn, { timeoutMs, bufferSize: RECEIVE_BUFFER, eager: true });
  try {
    const hello: Hello = {
      version: PROTOCOL_VERSION,
      agent: `ferry/${VERSION}`,
      token: options.token,
      checksums: [...(options.checksums ?? ALGORITHMS)],
    };
    if (options.compress) hello.compress = ["zstd"];
    await fc.sendMessage(FrameType.HELLO, 0, hello);
    // A TLS server answers cleartext by hanging up, or with a 7-byte alert, which is no ferry
    // frame; ferryd itself always says why before it closes.
    const notFerry = (why: string) =>
      new FerryError(
        "PROTOCOL",
        `${why}: not a ferry server, or one that needs TLS (--tls, --ca or --pin)`,
      );
    const frame = await fc.read().catch((err) => {
      const e = toFerryError(err);
      const garbled = e.code === "PROTOCOL" || e.message.includes("middle of a frame");
      throw tls || !garbled ? e : notFerry(e.message);
    });
    if (!frame) {
      throw tls
        ? new FerryError("CONNECT", "server closed the connection")
        : notFerry("server closed the connection before greeting");
    }
    if (frame.type === FrameType.ERROR) throw errorFromMessage(decodeMessage(frame));
    if (frame.type !== FrameType.WELCOME) {
      throw new FerryError("PROTOCOL", "not a ferry server: expected WELCOME");
    }
    const message = decodeMessage(frame);
    // Before anything else in it is read: a later version may say it differently.
    if (message.version !== PROTOCOL_VERSION) {
      const agent = typeof message.agent === "string"
        ? ` (${escapeControls(message.agent.slice(0, 40))})`
        : "";
      throw new FerryError(
        "PROTOCOL",
        `the server${agent} speaks protocol version ${String(message.version).slice(0, 10)} ` +
          `and this client (ferry ${VERSION}) version ${PROTOCOL_VERSION}: ` +
          "use client and server of one version",
      );
    }
    const welcome = parseWelcome(message);
    // The server sends DATA frames up to the size it announced.
    fc.setLimits(welcome.limits);
    if (options.checksums && !options.checksums.includes(welcome.checksum)) {
      throw new FerryError(
        "PROTOCOL",
        `the server chose ${welcome.checksum}, which was not offered`,
      );
    }
    if (welcome.compress && !options.compress) {
      throw new FerryError("PROTOCOL", "the server turned on compression, which was not asked for");
    }
    await loadAlgorithm(welcome.checksum);
    // A download's partial is named by XXH3-128 whatever the transfers use (see resumeKey):
    // loaded now, so that no request waits for it and requests leave in their order.
    if (welcome.checksum !== "xxh128") await loadAlgorithm("xxh128");
    return new Connection(fc, welcome, { timeoutMs, origin: formatAddress(addr) });
  } catch (err) {
    fc.close();
    throw toFerryError(err);
  }
}

/**
 * Requests multiplexed on one connection: sent whole and in order (a body
 * right behind its request), answered in order, any number in flight.
 */
export class Connection {
  /** What the server said in its handshake. */
  readonly welcome: Welcome;
  /** The server's address, as `HOST:PORT`. */
  readonly origin: string;
  /** The frames, for a request's body. */
  readonly frames: FrameConn;
  /** The reused send buffer for bodies: two halves, one frame each (see `sendBody`). */
  readonly sendBuf: Uint8Array;
  readonly #pending = new Map<number, Pending>();
  readonly #timeoutMs: number;
  #nextId = 1;
  #failure: FerryError | undefined;
  /** Serializes whole requests (a REQUEST and its body) on the wire. */
  #sending: Promise<unknown> = Promise.resolve();

  /** Take over `fc`, whose handshake is done. */
  constructor(
    fc: FrameConn,
    welcome: Welcome,
    options: { timeoutMs?: number; origin?: string } = {},
  ) {
    this.frames = fc;
    this.welcome = welcome;
    this.origin = options.origin ?? "";
    this.#timeoutMs = options.timeoutMs ?? 0;
    // Idle until a request goes out: the read loop's pending read is not a stall.
    fc.setTimeout(0);
    this.sendBuf = new Uint8Array(2 * (HEADER_SIZE + welcome.limits.maxData));
    this.#readLoop();
  }

  /** The checksum every transfer on this connection is verified with. */
  get algorithm(): Algorithm {
    return this.welcome.checksum;
  }

  /** Set when the connection has failed; every later request fails with it. */
  get failure(): FerryError | undefined {
    return this.#failure;
  }

  /** Whether request `id` still awaits its answer. */
  waiting(id: number): boolean {
    return this.#pending.has(id);
  }

  /** A request answered by exactly one REPLY. */
  simple(message: Request): Promise<Record<string, unknown>> {
    return this.request(message, (frame, done) => done(this.expectReply(frame)));
  }

  /** A request answered by pages of entries; reserved names left out go to `onReserved`. */
  entries(message: Request, onReserved?: (path: string) => void): Promise<Entry[]> {
    const entries: Entry[] = [];
    return this.request(message, (frame, done) => {
      const page = parseLsReply(this.expectReply(frame));
      if (entries.length + page.entries.length > MAX_LISTING_ENTRIES) {
        throw new FerryError("PROTOCOL", `listing longer than ${MAX_LISTING_ENTRIES} entries`);
      }
      entries.push(...page.entries);
      for (const path of page.reserved ?? []) onReserved?.(path);
      if (!page.more) done(entries);
    });
  }

  /**
   * Send a request and feed the frames answering it to `onFrame` until it
   * calls `done` or `fail`. `sendBody`, if given, runs right after the
   * REQUEST frame, before any other request may use the wire.
   */
  request<T>(
    message: Request,
    onFrame: FrameHandler<T>,
    sendBody?: (id: number) => Promise<void>,
  ): Promise<T> {
    if (this.#failure) return Promise.reject(this.#failure);
    const fc = this.frames;
    const id = this.#nextId++;
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    const settle = (fn: () => void) => {
      this.#pending.delete(id);
      if (this.#pending.size === 0) fc.setTimeout(0);
      fn();
    };
    const done = (value: T) => settle(() => resolve(value));
    const fail = (err: FerryError) => settle(() => reject(err));
    this.#pending.set(id, {
      frame: (frame) => {
        if (frame.type === FrameType.ERROR) return fail(errorFromMessage(decodeMessage(frame)));
        return onFrame(frame, done, fail);
      },
      fail,
    });
    if (this.#pending.size === 1) fc.setTimeout(this.#timeoutMs);
    const send = this.#sending.then(async () => {
      if (this.#failure) throw this.#failure;
      // A request without a body may wait to leave with the next ones (see postMessage).
      if (sendBody) {
        await fc.sendMessage(FrameType.REQUEST, id, message);
        await sendBody(id);
      } else {
        await fc.postMessage(FrameType.REQUEST, id, message);
      }
    });
    this.#sending = send.catch(() => {});
    send.catch((err) => {
      const e = toFerryError(err);
      if (connectionLost(e)) this.close(e);
      else fail(e);
    });
    return promise;
  }

  /** The REPLY payload of `frame`; PROTOCOL for any other frame. */
  expectReply(frame: Frame): Record<string, unknown> {
    if (frame.type !== FrameType.REPLY) {
      throw new FerryError("PROTOCOL", `expected REPLY, got ${frameTypeName(frame.type)}`);
    }
    return decodeMessage(frame);
  }

  /**
   * Settle one request with `err`, and close the connection to stop its
   * body: the other requests in flight fail as on a lost connection, which
   * a batch retries on a new one.
   */
  abandon(fail: (err: FerryError) => void, err: FerryError): void {
    fail(err);
    this.close(new FerryError("CONNECT", "connection closed to stop a refused download"));
  }

  /** Say goodbye to the server, then close. */
  async goodbye(): Promise<void> {
    if (!this.#failure) {
      await this.request<void>({ op: "close" }, (frame, done) => {
        this.expectReply(frame);
        done();
      }).catch(() => {});
    }
    this.close(new FerryError("CONNECT", "connection closed"));
  }

  /** Close now: every request in flight, and every later one, fails with `err`. */
  close(err: FerryError): void {
    if (this.#failure) return;
    this.#failure = err;
    this.frames.close();
    for (const pending of this.#pending.values()) pending.fail(err);
    this.#pending.clear();
  }

  async #readLoop(): Promise<void> {
    try {
      for (;;) {
        const frame = await this.frames.read();
        if (!frame) throw new FerryError("CONNECT", "server closed the connection");
        if (frame.id === 0 && frame.type === FrameType.ERROR) {
          throw errorFromMessage(decodeMessage(frame));
        }
        const pending = this.#pending.get(frame.id);
        if (!pending) {
          throw new FerryError("PROTOCOL", `unexpected frame for request ${frame.id}`);
        }
        try {
          await pending.frame(frame);
        } catch (err) {
          pending.fail(toFerryError(err));
        }
      }
    } catch (err) {
      this.close(toFerryError(err));
    }
  }
}
