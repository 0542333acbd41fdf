/**
 * ferryd as a library: accept connections and serve a {@linkcode Storage}.
 *
 * @module
 */

import {
  type Entry,
  errorToMessage,
  type GetRequest,
  parseHello,
  parseRequest,
  PROTOCOL_VERSION,
  type PutRequest,
  type Request,
  type Welcome,
} from "./commands.ts";
import { FerryError, toFerryError } from "./errors.ts";
import {
  decodeMessage,
  DEFAULT_LIMITS,
  type Frame,
  type FrameLimits,
  FrameType,
  HEADER_SIZE,
} from "./frame.ts";
import { FrameConn } from "./frame_conn.ts";
import { LocalStorage } from "./local_storage.ts";
import { escapeName, normalizePath } from "./path_jail.ts";
import type { Storage, Upload } from "./storage.ts";
import { BodyReceiver, hashPrefix, hashSource, sendBody } from "./transfer.ts";
import { elapsed } from "./elapsed.ts";
import { expandGlob } from "./glob.ts";
import { HashCache } from "./hash_cache.ts";
import { VERSION } from "./version.ts";

/** Options for {@linkcode serve}. */
export interface ServeOptions {
  /** Directory to serve (default `.`). Ignored when `storage` is given. */
  root?: string;
  /** Storage to serve instead of a local directory. */
  storage?: Storage;
  /** Address to bind (default `127.0.0.1`). */
  hostname?: string;
  /** Port to bind (default 9500; 0 picks a free one). */
  port?: number;
  /** Where log lines go (default: stderr). */
  log?: (line: string) => void;
  /** A client must complete the handshake within this many ms (default 10 000). */
  handshakeTimeoutMs?: number;
  /** Close a connection that makes no progress for this many ms (default 300 000; 0 = never). */
  idleTimeoutMs?: number;
  /** Connections served at once; more are answered BUSY (default 1000). */
  maxConnections?: number;
  /** fsync every upload (file and directory) before replying, to survive power loss. */
  fsync?: boolean;
  /**
   * Remove partial uploads (kept for resuming) and temporary files left by
   * interrupted transfers once untouched for this many ms: at start, then
   * periodically (default 86 400 000, a day; 0 = never).
   */
  partialTtlMs?: number;
}

/** A running server. */
export interface FerryServer {
  /** The address actually bound (useful with port 0). */
  readonly addr: Deno.NetAddr;
  /** The served directory, when serving local disk. */
  readonly root: string | undefined;
  /** Resolves when the server has stopped and every connection is closed. */
  readonly finished: Promise<void>;
  /** Connections in the middle of a request right now. */
  readonly busy: number;
  /**
   * Stop accepting and wait for every connection to end. With `graceMs`,
   * requests in flight may finish first (idle connections close at once);
   * without it, or when it runs out, every connection is cut. Calling it
   * again with no grace cuts them at once.
   */
  close(options?: CloseOptions): Promise<void>;
}

/** Options for {@linkcode FerryServer.close}. */
export interface CloseOptions {
  /** How long requests in flight may take to finish (ms; default 0). */
  graceMs?: number;
}

/** Default port, kept from the program ferry grew from. */
export const DEFAULT_PORT = 9500;

/**
 * Per-connection receive buffer: two DATA frames. Memory per connection is
 * this plus, while sending, two frames' worth of send buffer.
 */
const RECEIVE_BUFFER = 2 * (HEADER_SIZE + DEFAULT_LIMITS.maxData);

/** Shutting down, a session waits this long between requests for more already on their way. */
const DRAIN_LINGER_MS = 250;

/** Before the handshake a client may send one small HELLO, nothing else: no buffer grows for it. */
const HANDSHAKE_LIMITS: FrameLimits = { maxControl: 4096, maxData: 0 };

/** Size of one DATA chunk the server sends. */
const CHUNK_SIZE = DEFAULT_LIMITS.maxData;

function stderrLog(line: string): void {
  console.error(`${new Date().toISOString()} ${line}`);
}

function formatAddr(addr: Deno.Addr): string {
  if (addr.transport !== "tcp" && addr.transport !== "udp") return addr.transport;
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}

/**
 * Start ferryd.
 *
 * @example
 * ```ts
 * import { serve } from "./server.ts";
 * const server = await serve({ root: await Deno.makeTempDir(), port: 0, log: () => {} });
 * console.log(`listening on port ${server.addr.port}`);
 * await server.close();
 * ```
 */
export async function serve(options: ServeOptions = {}): Promise<FerryServer> {
  const storage = options.storage ?? await LocalStorage.open(options.root ?? ".");
  const log = options.log ?? stderrLog;
  const listener = Deno.listen({
    hostname: options.hostname ?? "127.0.0.1",
    port: options.port ?? DEFAULT_PORT,
  });
  const maxConnections = options.maxConnections ?? 1000;
  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? 10_000;
  const sessions = new Set<Promise<void>>();
  const live = new Set<Session>();
  const hashes = new HashCache();
  let closing = false;

  const welcome: Welcome = {
    version: PROTOCOL_VERSION,
    agent: `ferryd/${VERSION}`,
    limits: { ...DEFAULT_LIMITS },
  };

  function start(conn: Deno.TcpConn): void {
    conn.setNoDelay(true);
    const fc = new FrameConn(conn, {
      timeoutMs: handshakeTimeoutMs,
      limits: HANDSHAKE_LIMITS,
      bufferSize: RECEIVE_BUFFER,
    });
    const peer = formatAddr(conn.remoteAddr);
    if (live.size >= maxConnections) {
      log(`${peer} refused: busy (${live.size} connections)`);
      fc.sendMessage(FrameType.ERROR, 0, { code: "BUSY", message: "server busy, try later" })
        .catch(() => {}).finally(() => fc.close());
      return;
    }
    const session = new Session(fc, {
      storage,
      peer,
      welcome,
      log,
      idleTimeoutMs: options.idleTimeoutMs ?? 300_000,
      handshakeTimeoutMs,
      fsync: options.fsync ?? false,
      hashes,
    });
    live.add(session);
    const done = session.run().finally(() => {
      live.delete(session);
      sessions.delete(done);
    });
    sessions.add(done);
  }

  async function acceptLoop(): Promise<void> {
    while (!closing) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (closing || err instanceof Deno.errors.BadResource) break;
        // Out of file descriptors: back off, and keep serving those already connected.
        // Anything else (a peer that reset before accept) concerns that peer alone.
        const code = (err as { code?: string }).code;
        if (code === "EMFILE" || code === "ENFILE") {
          log(`accept failed: out of file descriptors; retrying in 100 ms`);
          await new Promise((r) => setTimeout(r, 100));
        } else {
          // Yield, so that a persistent error cannot spin the loop and starve the sessions.
          await new Promise((r) => setTimeout(r, 0));
        }
        continue;
      }
      try {
        start(conn);
      } catch (err) {
        // A peer that vanished between accept and setup: its socket may already be gone.
        log(`connection setup failed: ${toFerryError(err).message}`);
        try {
          conn.close();
        } catch {
          // Already closed.
        }
      }
    }
  }

  const stopSweeping = sweepPeriodically(storage, options.partialTtlMs ?? DAY_MS, log);
  const accepting = acceptLoop();
  const finished = accepting.then(async () => {
    await stopSweeping();
    while (sessions.size > 0) await Promise.all(sessions);
  });

  return {
    addr: listener.addr,
    root: storage instanceof LocalStorage ? storage.root : undefined,
    finished,
    get busy() {
      return [...live].filter((s) => s.busy).length;
    },
    async close(options: CloseOptions = {}) {
      const graceMs = options.graceMs ?? 0;
      if (!closing) {
        closing = true;
        try {
          listener.close();
        } catch {
          // Already closed.
        }
      }
      for (const session of live) {
        if (graceMs > 0) session.drain();
        else session.abort();
      }
      const timer = graceMs > 0
        ? setTimeout(() => live.forEach((session) => session.abort()), graceMs)
        : undefined;
      await finished;
      clearTimeout(timer);
    },
  };
}

const DAY_MS = 86_400_000;

/**
 * Sweep `storage` for leftovers older than `ttlMs` now and then every half
 * TTL (between a second and an hour); returns a function that stops it and
 * waits for a sweep under way.
 */
function sweepPeriodically(
  storage: Storage,
  ttlMs: number,
  log: (line: string) => void,
): () => Promise<void> {
  if (!storage.sweep || ttlMs <= 0) return () => Promise.resolve();
  let running: Promise<void> | undefined;
  const sweep = () => {
    running ??= storage.sweep!(ttlMs).then(
      (removed) => {
        if (removed > 0) log(`removed ${removed} stale partial or temporary file(s)`);
      },
      (err) => log(`sweeping stale partial files failed: ${toFerryError(err).message}`),
    ).finally(() => running = undefined);
  };
  sweep();
  const timer = setInterval(sweep, Math.min(Math.max(ttlMs / 2, 1000), 3_600_000));
  return async () => {
    clearInterval(timer);
    await running;
  };
}

/** What every session of one server shares. */
interface SessionContext {
  storage: Storage;
  peer: string;
  welcome: Welcome;
  log: (line: string) => void;
  idleTimeoutMs: number;
  handshakeTimeoutMs: number;
  fsync: boolean;
  hashes: HashCache;
}

/** One client connection: handshake, then requests in order until close or end of stream. */
class Session {
  readonly #fc: FrameConn;
  readonly #storage: Storage;
  readonly #peer: string;
  readonly #welcome: Welcome;
  readonly #log: (line: string) => void;
  readonly #idleTimeoutMs: number;
  readonly #handshakeTimeoutMs: number;
  readonly #fsync: boolean;
  readonly #hashes: HashCache;
  #sendBuf: Uint8Array | undefined;
  /** Id of a rejected upload whose remaining DATA/END frames are skipped. */
  #discardId: number | undefined;
  #busy = false;
  #draining = false;

  constructor(fc: FrameConn, ctx: SessionContext) {
    this.#fc = fc;
    this.#storage = ctx.storage;
    this.#peer = ctx.peer;
    this.#welcome = ctx.welcome;
    this.#log = ctx.log;
    this.#idleTimeoutMs = ctx.idleTimeoutMs;
    this.#handshakeTimeoutMs = ctx.handshakeTimeoutMs;
    this.#fsync = ctx.fsync;
    this.#hashes = ctx.hashes;
  }

  /** Whether a request is being handled right now. */
  get busy(): boolean {
    return this.#busy;
  }

  /**
   * End the session once the requests already sent are done. A client
   * pipelines many at once and some may still be in the socket, so between
   * requests the session waits a moment (DRAIN_LINGER_MS) for the next one
   * and ends when none comes.
   */
  drain(): void {
    this.#draining = true;
    if (!this.#busy) this.#fc.setTimeout(DRAIN_LINGER_MS);
  }

  /** End the session now. */
  abort(): void {
    this.#fc.close();
  }

  async run(): Promise<void> {
    const started = performance.now();
    let reason = "closed";
    try {
      const agent = await this.#handshake();
      this.#log(`${this.#peer} connected (${escapeName(agent)})`);
      this.#fc.setLimits(this.#welcome.limits);
      this.#fc.setTimeout(this.#idleTimeoutMs);
      while (await this.#next());
    } catch (err) {
      const e = toFerryError(err);
      reason = `${e.code}: ${e.message}`;
      if (e.code === "PROTOCOL" || e.code === "USAGE") {
        await this.#fc.sendMessage(FrameType.ERROR, 0, errorToMessage(e)).catch(() => {});
      }
    } finally {
      this.#fc.close();
      const seconds = elapsed(started).toFixed(1);
      this.#log(`${this.#peer} disconnected after ${seconds} s (${reason})`);
    }
  }

  async #handshake(): Promise<string> {
    // A whole-handshake deadline, not just a stall timeout: a client trickling one
    // byte at a time must not hold a connection slot.
    const deadline = setTimeout(() => this.#fc.close("TIMEOUT"), this.#handshakeTimeoutMs);
    try {
      return await this.#hello();
    } finally {
      clearTimeout(deadline);
    }
  }

  async #hello(): Promise<string> {
    const frame = await this.#fc.read();
    if (!frame) throw new FerryError("CONNECT", "closed before the handshake");
    if (frame.type !== FrameType.HELLO) {
      throw new FerryError("PROTOCOL", "not a ferry client: expected HELLO");
    }
    const hello = parseHello(decodeMessage(frame));
    if (hello.version !== PROTOCOL_VERSION) {
      throw new FerryError(
        "PROTOCOL",
        `unsupported protocol version ${hello.version} (server speaks ${PROTOCOL_VERSION})`,
      );
    }
    await this.#fc.sendMessage(FrameType.WELCOME, 0, this.#welcome);
    return hello.agent ?? "unknown client";
  }

  /** Handle one incoming frame; false when the session is over. */
  async #next(): Promise<boolean> {
    if (this.#draining) this.#fc.setTimeout(DRAIN_LINGER_MS);
    const frame = await this.#fc.read().catch((err) => {
      // Shutting down and nothing more came: a normal end, not a timeout.
      if (this.#draining && toFerryError(err).code === "TIMEOUT") return null;
      throw err;
    });
    if (!frame) return false;
    if (frame.type === FrameType.REQUEST) {
      if (this.#draining) this.#fc.setTimeout(this.#idleTimeoutMs);
      this.#busy = true;
      try {
        return await this.#request(frame);
      } finally {
        this.#busy = false;
      }
    }
    const bodyFrame = frame.type === FrameType.DATA || frame.type === FrameType.END ||
      frame.type === FrameType.ERROR;
    if (bodyFrame && frame.id === this.#discardId) {
      if (frame.type !== FrameType.DATA) this.#discardId = undefined;
      return true;
    }
    throw new FerryError("PROTOCOL", `unexpected frame type ${frame.type} for request ${frame.id}`);
  }

  async #request(frame: Frame): Promise<boolean> {
    const id = frame.id;
    this.#discardId = undefined;
    let req: Request | undefined;
    const started = performance.now();
    try {
      req = parseRequest(decodeMessage(frame));
      const reply = (msg: unknown) => this.#fc.sendMessage(FrameType.REPLY, id, msg);
      const storage = this.#storage;
      switch (req.op) {
        case "ls":
          await this.#sendEntries(
            id,
            storage.list(normalizePath(req.path), { recursive: req.recursive }),
          );
          break;
        case "glob":
          await this.#sendEntries(id, this.#glob(normalizePath(req.pattern)));
          break;
        case "stat":
          await reply({ entry: await storage.stat(normalizePath(req.path)) });
          break;
        case "get":
          this.#logTransfer("get", req, await this.#get(id, req), started);
          break;
        case "put":
          this.#logTransfer("put", req, await this.#put(id, req), started);
          break;
        case "partial": {
          const offset = await storage.partialSize(normalizePath(req.path), req);
          await reply({ offset });
          break;
        }
        case "sum": {
          const path = normalizePath(req.path);
          const handle = await storage.openRead(path);
          try {
            let sha256 = this.#knownHash(path, handle.version);
            if (!sha256) {
              sha256 = await hashSource(handle, handle.size, this.#buffer());
              if (handle.version) this.#hashes.set(path, handle.version, sha256);
            }
            await reply({ sha256, size: handle.size });
          } finally {
            handle.close();
          }
          break;
        }
        case "mkdir":
          await storage.mkdir(normalizePath(req.path), { parents: req.parents });
          this.#log(`${this.#peer} mkdir ${escapeName(req.path)} ok`);
          await reply({});
          break;
        case "rm":
          await storage.remove(normalizePath(req.path), { recursive: req.recursive });
          this.#hashes.delete(normalizePath(req.path));
          this.#log(`${this.#peer} rm ${escapeName(req.path)} ok`);
          await reply({});
          break;
        case "mv": {
          const path = await storage.move(normalizePath(req.from), normalizePath(req.to));
          this.#hashes.delete(normalizePath(req.from));
          this.#log(`${this.#peer} mv ${escapeName(req.from)} ${escapeName(path)} ok`);
          await reply({ path });
          break;
        }
        case "close":
          await reply({});
          return false;
      }
      return true;
    } catch (err) {
      const e = toFerryError(err);
      if (req && req.op !== "close") {
        const what = "path" in req ? req.path : "pattern" in req ? req.pattern : req.from;
        this.#log(`${this.#peer} ${req.op} ${escapeName(what)} failed: ${e.message}`);
      }
      // A request that parsed but then broke the framing leaves the stream in an unknown state.
      const fatal = e.code === "CONNECT" || e.code === "TIMEOUT" || (e.code === "PROTOCOL" && req);
      if (this.#fc.closed || fatal) throw e;
      // An unreadable request may have a body on its way: skip it.
      if (!req) this.#discardId = id;
      await this.#fc.sendMessage(FrameType.ERROR, id, errorToMessage(e));
      return true;
    }
  }

  #logTransfer(
    op: string,
    req: { path: string; offset: number },
    bytes: number,
    started: number,
  ): void {
    const seconds = elapsed(started);
    const rate = seconds > 0 ? (bytes / 1048576 / seconds).toFixed(1) : "-";
    const resumed = req.offset > 0 ? `, resumed at ${req.offset}` : "";
    this.#log(
      `${this.#peer} ${op} ${escapeName(req.path)} ${bytes} bytes in ${
        seconds.toFixed(3)
      } s (${rate} MiB/s${resumed}) ok`,
    );
  }

  /** Send entries as REPLY pages, each under the control-frame limit. */
  async #sendEntries(id: number, entries: AsyncIterable<Entry>): Promise<void> {
    const budget = this.#welcome.limits.maxControl - 64;
    const encoder = new TextEncoder();
    let page: Entry[] = [];
    let pageBytes = 0;
    for await (const entry of entries) {
      const bytes = encoder.encode(JSON.stringify(entry)).length + 1;
      if (page.length > 0 && pageBytes + bytes > budget) {
        await this.#fc.sendMessage(FrameType.REPLY, id, { entries: page, more: true });
        page = [];
        pageBytes = 0;
      }
      page.push(entry);
      pageBytes += bytes;
    }
    await this.#fc.sendMessage(FrameType.REPLY, id, { entries: page, more: false });
  }

  async *#glob(pattern: string): AsyncGenerator<Entry> {
    const list = (dir: string) => this.#storage.list(dir);
    for await (const { path, entry } of expandGlob(pattern, list)) yield { ...entry, name: path };
  }

  #knownHash(path: string, version: string | undefined): string | undefined {
    return version === undefined ? undefined : this.#hashes.get(path, version);
  }

  #buffer(): Uint8Array {
    // Two halves, one frame each: see sendBody.
    return this.#sendBuf ??= new Uint8Array(2 * (HEADER_SIZE + CHUNK_SIZE));
  }

  /** Send a file, from `req.offset` on when the client holds a verified prefix. Returns bytes sent. */
  async #get(id: number, req: GetRequest): Promise<number> {
    const path = normalizePath(req.path);
    const { offset } = req;
    const handle = await this.#storage.openRead(path);
    try {
      const { size, mtime, mode, version } = handle;
      if (offset > size) {
        throw new FerryError(
          "RESUME_MISMATCH",
          `cannot resume ${escapeName(req.path)} at byte ${offset}: it has ${size} bytes now`,
        );
      }
      // Reading the prefix also moves the handle to where the body starts.
      const hash = offset > 0 ? await hashPrefix(handle, offset, this.#buffer()) : undefined;
      if (hash && hash.copy().digest("hex") !== req.prefix) {
        throw new FerryError(
          "RESUME_MISMATCH",
          `cannot resume ${escapeName(req.path)}: the first ${offset} bytes differ`,
        );
      }
      await this.#fc.sendMessage(FrameType.REPLY, id, { size, mtime, mode, offset });
      const known = this.#knownHash(path, version);
      const sha256 = await sendBody(this.#fc, id, handle, size - offset, this.#buffer(), {
        sha256: known,
        hash,
      });
      if (version && !known) this.#hashes.set(path, version, sha256);
      return size - offset;
    } finally {
      handle.close();
    }
  }

  /** Receive and store a file, continuing a kept partial from `req.offset`. Returns bytes received. */
  async #put(id: number, req: PutRequest): Promise<number> {
    const { size, mode, mtime, noClobber, resume, offset } = req;
    let upload: Upload | undefined;
    let receiver: BodyReceiver | undefined;
    let sha256: string | undefined;
    let path = "";
    try {
      path = normalizePath(req.path);
      upload = await this.#storage.createUpload(path, {
        size,
        mode,
        mtime,
        noClobber,
        fsync: this.#fsync,
        resume,
        offset,
      });
      const hash = offset > 0 ? await upload.hashPrefix(this.#buffer()) : undefined;
      if (hash && hash.copy().digest("hex") !== req.prefix) {
        throw new FerryError(
          "RESUME_MISMATCH",
          `cannot resume ${escapeName(req.path)}: the first ${offset} bytes held differ`,
        );
      }
      receiver = new BodyReceiver(size, upload, { offset, hash });
      for (;;) {
        const frame = await this.#fc.read();
        if (!frame) throw new FerryError("CONNECT", "client closed the connection mid-upload");
        if (frame.id !== id) {
          throw new FerryError("PROTOCOL", `frame for request ${frame.id} inside upload ${id}`);
        }
        sha256 = await receiver.accept(frame);
        if (sha256) break;
      }
      await upload.commit();
    } catch (err) {
      // A lost connection keeps a resumable upload for the client to continue;
      // anything else (bad content included) drops it.
      const code = toFerryError(err).code;
      if (code === "CONNECT" || code === "TIMEOUT") await upload?.suspend();
      else await upload?.abort();
      // Failed before the body's END or ERROR: skip the frames still on their way.
      if (!receiver?.done) this.#discardId = id;
      throw err;
    }
    await this.#fc.sendMessage(FrameType.REPLY, id, {});
    return size - offset;
  }
}
