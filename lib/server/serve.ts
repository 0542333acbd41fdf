/**
 * ferryd as a library: accept connections and serve a {@linkcode Storage}.
 *
 * @module
 */

import {
  type Entry,
  errorToMessage,
  FEATURES,
  type GetRequest,
  type ListOptions,
  MAX_PAGE_ENTRIES,
  parseHello,
  parseRequest,
  PROTOCOL_VERSION,
  type PutRequest,
  type Request,
  type Welcome,
} from "../commands.ts";
import { FerryError, toFerryError } from "../util/errors.ts";
import {
  decodeMessage,
  DEFAULT_LIMITS,
  type Frame,
  type FrameLimits,
  FrameType,
  HEADER_SIZE,
} from "../frame.ts";
import { FrameConn } from "../wire/frame_conn.ts";
import { LocalStorage, partialFor } from "../storage/local/local_storage.ts";
import { normalizePath } from "../storage/path_jail.ts";
import { escapeName } from "../util/display.ts";
import type { Storage, Upload } from "../storage/storage.ts";
import { BodyReceiver, hashPrefix, hashSource, sendBody } from "../wire/body.ts";
import { elapsed } from "../util/elapsed.ts";
import { expandGlob } from "../util/glob.ts";
import { HashCache } from "./hash_cache.ts";
import { VERSION } from "../util/version.ts";
import { utf8Length } from "../util/utf8.ts";
import {
  type Action,
  allows,
  isLoopback,
  type Scope,
  scopeFor,
  type TokenGrant,
  TokenTable,
} from "./auth.ts";
import { fingerprint } from "../wire/tls.ts";
import { Quota, type Reservation } from "../storage/quota.ts";
import { type Accepted, listen } from "./listener.ts";

/**
 * Options for {@linkcode serve}.
 *
 * @example
 * ```ts
 * import type { ServeOptions } from "./serve.ts";
 * const options: ServeOptions = {
 *   root: "/srv/ferry",
 *   hostname: "0.0.0.0",
 *   tokens: [{ token: "ci-upload-0123456789abcdef", scope: "write" }],
 *   quota: 50 * 2 ** 30,
 * };
 * console.assert(options.tokens?.length === 1);
 * ```
 */
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
  /** Connections served at once from one client address; more are answered BUSY (default 64). */
  maxConnectionsPerClient?: number;
  /**
   * Accepted access tokens and their scopes. Without any, clients are not
   * asked for one, which is allowed only on a loopback address unless
   * `allowAnonymous` is set.
   */
  tokens?: TokenGrant[];
  /** Serve without tokens on a non-loopback address: anyone who can connect has full rights. */
  allowAnonymous?: boolean;
  /** Refuse every change (uploads, mkdir, rm, mv), whatever the token. */
  readOnly?: boolean;
  /** How long a failed authentication waits before its answer (ms; default 1000). */
  authDelayMs?: number;
  /** Serve over TLS with this certificate chain and key (PEM text); nothing in cleartext. */
  tls?: { cert: string; key: string };
  /** Largest file an upload may declare, in bytes (LIMIT beyond it). */
  maxFileSize?: number;
  /** Most bytes the root may hold, counting uploads in flight (LIMIT beyond it). */
  quota?: number;
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
  /** SHA-256 fingerprint of the TLS certificate (`AB:CD:…`), when serving TLS. */
  readonly fingerprint: string | undefined;
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

/**
 * Default port, kept from the program ferry grew from.
 *
 * @example
 * ```ts
 * import { DEFAULT_PORT } from "./serve.ts";
 * console.assert(DEFAULT_PORT === 9500);
 * ```
 */
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

/** Log lines not yet written: a burst of small transfers costs one write, not one per line. */
let unlogged = "";
let flushesAtExit = false;

function flushLog(): void {
  const text = unlogged;
  unlogged = "";
  let bytes = new TextEncoder().encode(text);
  try {
    while (bytes.length > 0) bytes = bytes.subarray(Deno.stderr.writeSync(bytes));
  } catch {
    // stderr is gone: there is nowhere left to say so.
  }
}

function stderrLog(line: string): void {
  if (unlogged === "") {
    // Written when the event loop next turns, or at exit, even by an uncaught error.
    setTimeout(flushLog, 0);
    if (!flushesAtExit) {
      flushesAtExit = true;
      for (const type of ["unload", "error", "unhandledrejection"]) {
        globalThis.addEventListener(type, flushLog);
      }
    }
  }
  unlogged += `${new Date().toISOString()} ${line}\n`;
  if (unlogged.length > 65536) flushLog();
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
 * import { serve } from "./serve.ts";
 * const server = await serve({ root: await Deno.makeTempDir(), port: 0, log: () => {} });
 * console.log(`listening on port ${server.addr.port}`);
 * await server.close();
 * ```
 */
export async function serve(options: ServeOptions = {}): Promise<FerryServer> {
  const hostname = options.hostname ?? "127.0.0.1";
  const tokens = options.tokens ? new TokenTable(options.tokens) : undefined;
  if (!tokens && !options.allowAnonymous && !isLoopback(hostname)) {
    throw new FerryError(
      "USAGE",
      `refusing to serve ${hostname} without tokens: anyone who can reach it could read, ` +
        "replace and delete files. Give tokens (--token, --tokens, FERRY_TOKEN), " +
        "bind a loopback address, or accept the risk with --allow-anonymous",
    );
  }
  const storage = options.storage ?? await LocalStorage.open(options.root ?? ".");
  const log = options.log ?? stderrLog;
  const maxConnections = options.maxConnections ?? 1000;
  const maxPerClient = options.maxConnectionsPerClient ?? 64;
  const idleTimeoutMs = options.idleTimeoutMs ?? 300_000;
  // A connection that never finishes its handshake is idle too: the shorter bound holds.
  const handshakeTimeoutMs = Math.min(
    options.handshakeTimeoutMs ?? 10_000,
    idleTimeoutMs > 0 ? idleTimeoutMs : Infinity,
  );
  const sessions = new Set<Promise<void>>();
  const live = new Set<Session>();
  const perClient = new Map<string, number>();
  const hashes = new HashCache();
  const quota = options.quota === undefined
    ? undefined
    : new Quota(options.quota, await storage.usage?.("") ?? { files: 0, partials: new Map() });
  const auth = tokens && { tokens, delayMs: options.authDelayMs ?? 1000, failures: 0 };
  let closing = false;

  const welcome: Welcome = {
    version: PROTOCOL_VERSION,
    agent: `ferryd/${VERSION}`,
    limits: { ...DEFAULT_LIMITS },
    features: [...FEATURES],
  };

  function refuse(fc: FrameConn, peer: string, why: string): void {
    log(`${peer} refused: busy (${why})`);
    const busy = { code: "BUSY", message: `server busy (${why}), try later` };
    // Over TLS the answer waits for a handshake that may never come: not for long.
    const patience = new Promise((r) => setTimeout(r, 1000));
    Promise.race([fc.sendMessage(FrameType.ERROR, 0, busy), patience])
      .catch(() => {}).finally(() => fc.close());
  }

  function start({ conn, remote }: Accepted): void {
    const fc = new FrameConn(conn, {
      timeoutMs: handshakeTimeoutMs,
      limits: HANDSHAKE_LIMITS,
      bufferSize: RECEIVE_BUFFER,
    });
    const peer = formatAddr(remote);
    const client = remote.hostname;
    const fromClient = perClient.get(client) ?? 0;
    if (live.size >= maxConnections) return refuse(fc, peer, `${live.size} connections`);
    if (fromClient >= maxPerClient) {
      return refuse(fc, peer, `${fromClient} connections from ${client}`);
    }
    const session = new Session(fc, {
      storage,
      peer,
      welcome,
      log,
      idleTimeoutMs,
      handshakeTimeoutMs,
      fsync: options.fsync ?? false,
      hashes,
      auth,
      readOnly: options.readOnly ?? false,
      maxFileSize: options.maxFileSize ?? Infinity,
      quota,
    });
    live.add(session);
    perClient.set(client, fromClient + 1);
    const done = session.run().finally(() => {
      live.delete(session);
      sessions.delete(done);
      const left = (perClient.get(client) ?? 1) - 1;
      if (left > 0) perClient.set(client, left);
      else perClient.delete(client);
    });
    sessions.add(done);
  }

  const listener = listen(hostname, options.port ?? DEFAULT_PORT, options.tls, start, log);
  const stopSweeping = maintainPeriodically(storage, options.partialTtlMs ?? DAY_MS, log, quota);
  const finished = listener.done.then(async () => {
    await stopSweeping();
    while (sessions.size > 0) await Promise.all(sessions);
  });

  return {
    addr: listener.addr,
    root: storage instanceof LocalStorage ? storage.root : undefined,
    fingerprint: options.tls ? fingerprint(options.tls.cert) : undefined,
    finished,
    get busy() {
      return [...live].filter((s) => s.busy).length;
    },
    async close(options: CloseOptions = {}) {
      const graceMs = options.graceMs ?? 0;
      if (!closing) {
        closing = true;
        listener.close();
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
 * Now and then: sweep `storage` for leftovers older than `ttlMs` (every half
 * TTL, between a second and an hour), and take the quota's count again from
 * disk (at least every ten minutes). Returns a function that stops it and
 * waits for a round under way.
 */
function maintainPeriodically(
  storage: Storage,
  ttlMs: number,
  log: (line: string) => void,
  quota: Quota | undefined,
): () => Promise<void> {
  const sweeping = storage.sweep !== undefined && ttlMs > 0;
  const counting = quota !== undefined && storage.usage !== undefined;
  if (!sweeping && !counting) return () => Promise.resolve();
  let running: Promise<void> | undefined;
  const round = () => {
    running ??= (async () => {
      if (sweeping) {
        const removed = await storage.sweep!(ttlMs);
        if (removed > 0) log(`removed ${removed} stale partial or temporary file(s)`);
      }
      if (counting) quota.recount(await storage.usage!(""));
    })().catch((err) => log(`maintenance failed: ${toFerryError(err).message}`))
      .finally(() => running = undefined);
  };
  if (sweeping) round();
  const every = sweeping ? Math.min(Math.max(ttlMs / 2, 1000), 3_600_000) : 3_600_000;
  const timer = setInterval(round, Math.min(every, counting ? 600_000 : every));
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
  /** Tokens to check, with the delay for a failure and the count of failures so far. */
  auth: { tokens: TokenTable; delayMs: number; failures: number } | undefined;
  readOnly: boolean;
  maxFileSize: number;
  quota: Quota | undefined;
}

/** One client connection: handshake, then requests in order until close or end of stream. */
class Session {
  readonly #fc: FrameConn;
  readonly #ctx: SessionContext;
  /** What this client may do: from its token, or everything when the server has no tokens. */
  #scope: Scope = "admin";
  #sendBuf: Uint8Array | undefined;
  /** Id of a rejected upload whose remaining DATA/END frames are skipped. */
  #discardId: number | undefined;
  #busy = false;
  #draining = false;

  constructor(fc: FrameConn, ctx: SessionContext) {
    this.#fc = fc;
    this.#ctx = ctx;
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
      const scope = this.#ctx.auth ? `, scope ${this.#scope}` : "";
      this.#ctx.log(`${this.#ctx.peer} connected (${escapeName(agent)}${scope})`);
      this.#fc.setLimits(this.#ctx.welcome.limits);
      this.#fc.setTimeout(this.#ctx.idleTimeoutMs);
      while (await this.#next());
      await this.#fc.flushed();
    } catch (err) {
      const e = toFerryError(err);
      reason = `${e.code}: ${e.message}`;
      if (e.code === "PROTOCOL" || e.code === "USAGE" || e.code === "AUTH") {
        await this.#fc.sendMessage(FrameType.ERROR, 0, errorToMessage(e)).catch(() => {});
        await this.#fc.closeAfterLast();
      }
    } finally {
      this.#fc.close();
      const seconds = elapsed(started).toFixed(1);
      this.#ctx.log(`${this.#ctx.peer} disconnected after ${seconds} s (${reason})`);
    }
  }

  async #handshake(): Promise<string> {
    // A whole-handshake deadline, not just a stall timeout: a client trickling one
    // byte at a time must not hold a connection slot.
    const deadline = setTimeout(() => this.#fc.close("TIMEOUT"), this.#ctx.handshakeTimeoutMs);
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
    await this.#authenticate(hello.token);
    await this.#fc.sendMessage(FrameType.WELCOME, 0, this.#ctx.welcome);
    return hello.agent ?? "unknown client";
  }

  /** Take the scope of `token`, or fail with AUTH after a delay that makes guessing slow. */
  async #authenticate(token: string | undefined): Promise<void> {
    const auth = this.#ctx.auth;
    if (!auth) return;
    const scope = auth.tokens.check(token);
    if (scope) {
      this.#scope = scope;
      return;
    }
    auth.failures++;
    const what = token ? "a wrong token" : "no token";
    this.#ctx.log(
      `${this.#ctx.peer} authentication failed: ${what} (${auth.failures} failures since start)`,
    );
    await new Promise((r) => setTimeout(r, auth.delayMs));
    throw new FerryError("AUTH", "authentication failed: this server needs a valid token");
  }

  /** Refuse unless this session may do `action` (`what` names the request for the message). */
  #allow(action: Action, what: string): void {
    if (action !== "read" && this.#ctx.readOnly) {
      throw new FerryError("PERMISSION", `refused: the server is read-only (${what})`);
    }
    if (!allows(this.#scope, action)) {
      throw new FerryError(
        "PERMISSION",
        `refused: ${what} needs the ${scopeFor(action)} scope (this token has ${this.#scope})`,
      );
    }
  }

  /** The entry at `path`, or undefined if there is none. */
  #existing(path: string): Promise<Entry | undefined> {
    return this.#ctx.storage.stat(path).catch(() => undefined);
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
      if (this.#draining) this.#fc.setTimeout(this.#ctx.idleTimeoutMs);
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
      const storage = this.#ctx.storage;
      switch (req.op) {
        case "ls": {
          const path = normalizePath(req.path);
          const { recursive } = req;
          await this.#sendEntries(id, (options) => storage.list(path, { ...options, recursive }));
          break;
        }
        case "glob": {
          const pattern = normalizePath(req.pattern);
          await this.#sendEntries(id, () => this.#glob(pattern));
          break;
        }
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
          this.#allow("create", `put ${escapeName(req.path)}`);
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
              if (handle.version) this.#ctx.hashes.set(path, handle.version, sha256);
            }
            await reply({ sha256, size: handle.size });
          } finally {
            handle.close();
          }
          break;
        }
        case "mkdir":
          this.#allow("create", `mkdir ${escapeName(req.path)}`);
          await storage.mkdir(normalizePath(req.path), { parents: req.parents });
          this.#ctx.log(`${this.#ctx.peer} mkdir ${escapeName(req.path)} ok`);
          await reply({});
          break;
        case "rm": {
          const path = normalizePath(req.path);
          this.#allow("delete", `rm ${escapeName(req.path)}`);
          const held = this.#ctx.quota ? await storage.usage?.(path) : undefined;
          await storage.remove(path, { recursive: req.recursive });
          if (held) this.#ctx.quota?.remove(held);
          // Without -r it was a file or an empty directory: a `put --delete` of a large tree
          // removes files one by one, and must not scan the whole cache for each.
          this.#ctx.hashes.delete(path, { below: req.recursive });
          this.#ctx.log(`${this.#ctx.peer} rm ${escapeName(req.path)} ok`);
          await reply({});
          break;
        }
        case "mv": {
          const [from, to] = [normalizePath(req.from), normalizePath(req.to)];
          // A rename takes the entry away from its name, which is deleting it there: a token
          // that could rename could move a file aside and upload another in its place.
          this.#allow("delete", `mv ${escapeName(req.from)} ${escapeName(req.to)}`);
          const replaced = this.#ctx.quota
            ? await this.#existing(from).then(async (entry) => {
              const target = (await this.#existing(to))?.type === "dir" && entry
                ? `${to}/${entry.name}`
                : to;
              const there = await this.#existing(target);
              return there?.type === "file" && target !== from ? there.size : 0;
            })
            : 0;
          // Kept partials move along, and are counted where they are now.
          const moved = this.#ctx.quota ? await storage.usage?.(from) : undefined;
          const path = await storage.move(from, to);
          this.#ctx.quota?.addFiles(-replaced);
          if (moved) {
            this.#ctx.quota?.remove(moved);
            this.#ctx.quota?.add(await storage.usage!(path));
          }
          this.#ctx.hashes.delete(normalizePath(req.from));
          this.#ctx.log(`${this.#ctx.peer} mv ${escapeName(req.from)} ${escapeName(path)} ok`);
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
        this.#ctx.log(`${this.#ctx.peer} ${req.op} ${escapeName(what)} failed: ${e.message}`);
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
    req: { path: string; offset: number; fresh?: boolean },
    bytes: number,
    started: number,
  ): void {
    const seconds = elapsed(started);
    const rate = seconds > 0 ? (bytes / 1048576 / seconds).toFixed(1) : "-";
    const resumed = req.offset > 0 ? `, resumed at ${req.offset}` : "";
    // A client that asks for that saw the remembered hash fail its check.
    const fresh = req.fresh ? ", hashed anew after a failed check" : "";
    this.#ctx.log(
      `${this.#ctx.peer} ${op} ${escapeName(req.path)} ${bytes} bytes in ${
        seconds.toFixed(3)
      } s (${rate} MiB/s${resumed}${fresh}) ok`,
    );
  }

  /**
   * Send entries as REPLY pages, each under the control-frame limit, with
   * the names left out as reserved (which the client reports as skipped).
   */
  async #sendEntries(
    id: number,
    list: (options: ListOptions) => AsyncIterable<Entry>,
  ): Promise<void> {
    const budget = this.#ctx.welcome.limits.maxControl - 64;
    let page: Entry[] = [];
    let reserved: string[] = [];
    let pageBytes = 0;
    const send = (more: boolean) => {
      const reply = reserved.length > 0
        ? { entries: page, more, reserved }
        : { entries: page, more };
      page = [];
      reserved = [];
      pageBytes = 0;
      return this.#fc.sendMessage(FrameType.REPLY, id, reply);
    };
    const full = (bytes: number) =>
      pageBytes + bytes > budget || page.length + reserved.length >= MAX_PAGE_ENTRIES;
    const pending: string[] = [];
    for await (const entry of list({ onReserved: (path) => pending.push(path) })) {
      for (const path of pending.splice(0)) {
        const bytes = utf8Length(JSON.stringify(path)) + 1;
        if (full(bytes)) await send(true);
        reserved.push(path);
        pageBytes += bytes;
      }
      const bytes = utf8Length(JSON.stringify(entry)) + 1;
      if (full(bytes)) await send(true);
      page.push(entry);
      pageBytes += bytes;
    }
    for (const path of pending) {
      const bytes = utf8Length(JSON.stringify(path)) + 1;
      if (full(bytes)) await send(true);
      reserved.push(path);
      pageBytes += bytes;
    }
    await send(false);
  }

  async *#glob(pattern: string): AsyncGenerator<Entry> {
    const list = (dir: string) => this.#ctx.storage.list(dir);
    for await (const { path, entry } of expandGlob(pattern, list)) yield { ...entry, name: path };
  }

  #knownHash(path: string, version: string | undefined, provisional = false): string | undefined {
    return version === undefined ? undefined : this.#ctx.hashes.get(path, version, { provisional });
  }

  #buffer(): Uint8Array {
    // Two halves, one frame each: see sendBody.
    return this.#sendBuf ??= new Uint8Array(2 * (HEADER_SIZE + CHUNK_SIZE));
  }

  /** Send a file, from `req.offset` on when the client holds a verified prefix. Returns bytes sent. */
  async #get(id: number, req: GetRequest): Promise<number> {
    const path = normalizePath(req.path);
    const { offset } = req;
    const handle = await this.#ctx.storage.openRead(path);
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
      await this.#fc.postMessage(FrameType.REPLY, id, { size, mtime, mode, offset });
      // One remembered from an upload will do for a client that asks again if it is stale.
      const known = req.fresh ? undefined : this.#knownHash(path, version, req.retries);
      const { sha256 } = await sendBody(this.#fc, id, handle, size - offset, this.#buffer(), {
        sha256: known,
        hash,
        offset,
      });
      if (version && !known) this.#ctx.hashes.set(path, version, sha256);
      return size - offset;
    } finally {
      handle.close();
    }
  }

  /** Receive and store a file, continuing a kept partial from `req.offset`. Returns bytes received. */
  async #put(id: number, req: PutRequest): Promise<number> {
    const { size, mode, mtime, resume, offset } = req;
    let { noClobber } = req;
    let upload: Upload | undefined;
    let receiver: BodyReceiver | undefined;
    let sha256: string | undefined;
    let path = "";
    let held: Reservation | undefined;
    let previous = 0;
    try {
      path = normalizePath(req.path);
      const what = `put ${escapeName(req.path)}`;
      this.#allow("create", what);
      if (size !== undefined && size > this.#ctx.maxFileSize) {
        throw new FerryError(
          "LIMIT",
          `${
            escapeName(req.path)
          } is ${size} bytes: over the server's limit of ${this.#ctx.maxFileSize}`,
        );
      }
      const mayReplace = allows(this.#scope, "replace");
      if (!mayReplace || this.#ctx.quota) {
        const existing = await this.#existing(path);
        if (existing?.type === "file") {
          previous = existing.size;
          // Not replacing is what was asked: that needs no right to replace.
          if (noClobber) throw new FerryError("EXISTS", `already exists: ${escapeName(req.path)}`);
          this.#allow("replace", `${what} over an existing file`);
        }
        // Without the right to replace, the final step also refuses a file that appeared meanwhile.
        noClobber ||= !mayReplace;
      }
      // The whole size: a resumed upload's earlier bytes are its own again.
      const partial = resume && size !== undefined ? partialFor(path, size, mtime) : undefined;
      held = this.#ctx.quota?.reserve(size ?? 0, partial, { takeover: offset > 0 });
      upload = await this.#ctx.storage.createUpload(path, {
        size,
        mode,
        mtime,
        noClobber,
        fsync: this.#ctx.fsync,
        resume,
        offset,
      });
      held?.started(upload.partial !== undefined);
      if (upload.partial !== undefined) this.#ctx.quota?.claim(upload.partial);
      const hash = offset > 0 ? await upload.hashPrefix(this.#buffer()) : undefined;
      if (hash && hash.copy().digest("hex") !== req.prefix) {
        throw new FerryError(
          "RESUME_MISMATCH",
          `cannot resume ${escapeName(req.path)}: the first ${offset} bytes held differ`,
        );
      }
      const limit = size === undefined && this.#ctx.maxFileSize < Infinity
        ? { bytes: this.#ctx.maxFileSize, what: "the server's limit for one file" }
        : undefined;
      receiver = new BodyReceiver(size, upload, { offset, hash, limit });
      for (;;) {
        const frame = await this.#fc.read();
        if (!frame) throw new FerryError("CONNECT", "client closed the connection mid-upload");
        if (frame.id !== id) {
          throw new FerryError("PROTOCOL", `frame for request ${frame.id} inside upload ${id}`);
        }
        // An upload of unknown size holds the quota as its bytes arrive.
        if (size === undefined && frame.type === FrameType.DATA) held?.grow(frame.payload.length);
        sha256 = await receiver.accept(frame);
        if (sha256) break;
      }
      const version = await upload.commit();
      if (version) this.#ctx.hashes.set(path, version, sha256, { provisional: true });
      this.#ctx.quota?.addFiles(receiver.received - previous);
      // Whatever an older connection said it kept in this partial went into this file.
      if (upload.partial !== undefined) this.#ctx.quota?.claim(upload.partial);
    } catch (err) {
      // A lost connection keeps a resumable upload for the client to continue;
      // anything else (bad content included) drops it.
      const code = toFerryError(err).code;
      if (code === "CONNECT" || code === "TIMEOUT") {
        // Kept as far as it is still there: `rm -r` may have taken its directory meanwhile.
        const kept = await upload?.suspend() ?? 0;
        if (upload?.partial !== undefined) {
          if (kept > 0) this.#ctx.quota?.keep(upload.partial, kept);
          else this.#ctx.quota?.claim(upload.partial);
        }
      } else {
        await upload?.abort();
        if (upload?.partial !== undefined) this.#ctx.quota?.claim(upload.partial);
      }
      // Failed before the body's END or ERROR: skip the frames still on their way.
      if (!receiver?.done) this.#discardId = id;
      throw err;
    } finally {
      held?.release();
    }
    await this.#fc.postMessage(FrameType.REPLY, id, {});
    return receiver.received - offset;
  }
}
