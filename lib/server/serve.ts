/**
 * ferryd as a library: a listener, the faces that speak to clients, and the
 * one service behind them, over a {@linkcode Storage}.
 *
 * @module
 */

import { type Algorithm, ALGORITHMS, loadAlgorithm } from "../checksum/checksum.ts";
import { DEFAULT_PORT } from "../commands.ts";
import { LocalStorage } from "../storage/local/local_storage.ts";
import { QuotaStorage } from "../storage/quota.ts";
import type { Storage } from "../storage/storage.ts";
import { FerryError } from "../util/errors.ts";
import { fingerprint } from "../wire/tls_trust.ts";
import { isLoopback, type TokenGrant, TokenTable } from "./auth.ts";
import { type Face, type FaceSession, route } from "./faces/face.ts";
import { httpFace } from "./faces/http/face.ts";
import { protocolFace } from "./faces/protocol/session.ts";
import { type Accepted, listen } from "./listener.ts";
import { peerName, stderrLog } from "./log.ts";
import { maintainPeriodically } from "./maintenance.ts";
import { FerryService } from "./service.ts";

export { DEFAULT_PORT };

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
  /**
   * Transfer checksums accepted, preferred first (default `["xxh128",
   * "sha256"]`): each connection uses the first that its client offers.
   */
  checksums?: Algorithm[];
  /** Refuse compression (clients that ask for it get uncompressed frames). */
  noCompress?: boolean;
  /** Answer HTTP on the same port (default true): files for curl, listings for browsers. */
  http?: boolean;
}

/** A running server. */
export interface FerryServer {
  /** The address actually bound (useful with port 0). */
  readonly addr: Deno.NetAddr;
  /** The served directory, when serving local disk. */
  readonly root: string | undefined;
  /** Where the served files are, for people: a directory, a bucket. */
  readonly location: string;
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

const DAY_MS = 86_400_000;

function closeQuietly(conn: { close(): void }): void {
  try {
    conn.close();
  } catch {
    // Closed already.
  }
}

/** How long a connection over a limit may take to say which protocol it speaks. */
const REFUSAL_PATIENCE_MS = 250;

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
  // The one place a backend is picked: a given storage, or the local directory.
  const local = options.storage ? undefined : await LocalStorage.open(options.root ?? ".");
  const backend: Storage = options.storage ?? local!;
  const quota = options.quota === undefined
    ? undefined
    : await QuotaStorage.wrap(backend, options.quota);
  const storage = quota ?? backend;
  const log = options.log ?? stderrLog;
  const maxConnections = options.maxConnections ?? 1000;
  const maxPerClient = options.maxConnectionsPerClient ?? 64;
  const idleTimeoutMs = options.idleTimeoutMs ?? 300_000;
  // A connection that never finishes its handshake is idle too: the shorter bound holds.
  const handshakeTimeoutMs = Math.min(
    options.handshakeTimeoutMs ?? 10_000,
    idleTimeoutMs > 0 ? idleTimeoutMs : Infinity,
  );
  const service = new FerryService({
    storage,
    log,
    tokens,
    authDelayMs: options.authDelayMs,
    readOnly: options.readOnly,
    maxFileSize: options.maxFileSize,
    fsync: options.fsync,
  });
  const checksums = options.checksums ?? [...ALGORITHMS];
  if (checksums.length === 0) throw new FerryError("USAGE", "no checksum accepted");
  // Loaded now, so that no session waits for it (and a broken one fails the start, not a transfer).
  for (const algorithm of checksums) await loadAlgorithm(algorithm);
  // The protocol face comes last: bytes no face claims go to it, which explains in its own
  // protocol what is wrong.
  const faces: Face[] = [
    ...(options.http === false ? [] : [httpFace({
      service,
      headersTimeoutMs: handshakeTimeoutMs,
      idleTimeoutMs,
      secure: options.tls !== undefined,
    })]),
    protocolFace({
      service,
      handshakeTimeoutMs,
      idleTimeoutMs,
      checksums,
      compress: !options.noCompress,
    }),
  ];
  /** Every connection accepted and not yet ended, and the session serving it, once routed. */
  const live = new Map<Accepted, FaceSession | undefined>();
  const sessions = new Set<Promise<void>>();
  const perClient = new Map<string, number>();
  let closing = false;

  /** Turn a connection away: told at once, in its own protocol if it speaks up soon. */
  async function refuse({ conn, remote }: Accepted, why: string): Promise<void> {
    log(`${peerName(remote)} refused: busy (${why})`);
    const routed = await route(conn, faces, REFUSAL_PATIENCE_MS, { keep: true });
    if (routed.face) routed.face.refuse(routed.conn, why);
    else faces[faces.length - 1].refuse(conn, why);
  }

  /** Serve one connection: route it by its first bytes to a face, and let the face serve it. */
  async function admit(accepted: Accepted, started: number): Promise<void> {
    const peer = peerName(accepted.remote);
    // A silent connection is dropped at the handshake deadline, like one that never
    // finishes its handshake.
    const routed = await route(accepted.conn, faces, handshakeTimeoutMs);
    if (!routed.face) {
      const seconds = ((performance.now() - started) / 1000).toFixed(1);
      const why = routed.silent
        ? `TIMEOUT: nothing received within ${handshakeTimeoutMs / 1000} s`
        : "closed";
      return log(`${peer} disconnected after ${seconds} s (${why})`);
    }
    const session = routed.face.open(routed.conn, peer);
    live.set(accepted, session);
    if (closing) session.abort();
    await session.run();
  }

  function start(accepted: Accepted): void {
    const client = accepted.remote.hostname;
    const fromClient = perClient.get(client) ?? 0;
    const over = live.size >= maxConnections
      ? `${live.size} connections`
      : fromClient >= maxPerClient
      ? `${fromClient} connections from ${client}`
      : undefined;
    // A refused connection holds no slot: the limits count those being served.
    if (over) return track(refuse(accepted, over));
    live.set(accepted, undefined);
    perClient.set(client, fromClient + 1);
    track(admit(accepted, performance.now()), () => {
      live.delete(accepted);
      const left = (perClient.get(client) ?? 1) - 1;
      if (left > 0) perClient.set(client, left);
      else perClient.delete(client);
    });
  }

  /** Keep `work` among what closing waits for; `then` runs once it is over. */
  function track(work: Promise<void>, then?: () => void): void {
    const done: Promise<void> = work.catch(() => {}).finally(() => {
      sessions.delete(done);
      then?.();
    });
    sessions.add(done);
  }

  const listener = listen(hostname, options.port ?? DEFAULT_PORT, options.tls, start, log);
  const stopSweeping = maintainPeriodically(storage, options.partialTtlMs ?? DAY_MS, log, quota);
  const finished = listener.done.then(async () => {
    await stopSweeping();
    while (sessions.size > 0) await Promise.all(sessions);
  });

  const endAll = (how: "drain" | "abort") => {
    for (const [accepted, session] of live) {
      if (session) session[how]();
      else if (how === "abort") closeQuietly(accepted.conn);
    }
  };
  return {
    addr: listener.addr,
    root: local?.root,
    location: storage.location,
    fingerprint: options.tls ? fingerprint(options.tls.cert) : undefined,
    finished,
    get busy() {
      return [...live.values()].filter((s) => s?.busy).length;
    },
    async close(options: CloseOptions = {}) {
      const graceMs = options.graceMs ?? 0;
      if (!closing) {
        closing = true;
        listener.close();
      }
      endAll(graceMs > 0 ? "drain" : "abort");
      const timer = graceMs > 0 ? setTimeout(() => endAll("abort"), graceMs) : undefined;
      await finished;
      clearTimeout(timer);
    },
  };
}
