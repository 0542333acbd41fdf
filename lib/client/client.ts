/**
 * The ferry client as a library: one connection, requests sent in order and
 * answered in order, any number of them in flight.
 *
 * @module
 */

import {
  type Entry,
  errorFromMessage,
  errorToMessage,
  type GetReply,
  type GetRequest,
  type ListOptions,
  MAX_LISTING_ENTRIES,
  parseEntry,
  parseGetReply,
  parseLsReply,
  parsePartialReply,
  parseSumReply,
  parseWelcome,
  PROTOCOL_VERSION,
  type PutRequest,
  type Request,
  type SumReply,
  type Welcome,
} from "../commands.ts";
import { FerryError, toFerryError } from "../util/errors.ts";
import { decodeMessage, type Frame, FrameType, frameTypeName, HEADER_SIZE } from "../frame.ts";
import { FrameConn } from "../wire/frame_conn.ts";
import { basename, dirname } from "node:path";
import type { Hash } from "node:crypto";
import { AtomicFile, PERMISSION_BITS, resumeKey } from "../fs/atomic_file.ts";
import { BodyReceiver, ChecksumMismatch, hashPrefix, sendBody } from "../wire/body.ts";
import {
  assertUnchanged,
  checkSpace,
  destination,
  isStreamed,
  readerFor,
} from "../fs/local_files.ts";
import { escapeName } from "../util/display.ts";
import { elapsed } from "../util/elapsed.ts";
import { connectTls, type TlsOptions } from "../wire/tls.ts";
import { VERSION } from "../util/version.ts";

/**
 * Default server address.
 *
 * @example
 * ```ts
 * import { DEFAULT_ADDRESS, parseAddress } from "./client.ts";
 * console.assert(parseAddress(DEFAULT_ADDRESS).port === 9500);
 * ```
 */
export const DEFAULT_ADDRESS = "127.0.0.1:9500";

/** The client's receive buffer: a roomy one lets a read take in several frames. */
const RECEIVE_BUFFER = 2 * 1024 * 1024;

/** A host and port to connect to. */
export interface Address {
  /** Host name or IP address. */
  hostname: string;
  /** TCP port. */
  port: number;
}

/**
 * Parse `HOST:PORT`, `HOST` (port 9500), `:PORT` or `[IPv6]:PORT`.
 *
 * @example
 * ```ts
 * import { parseAddress } from "./client.ts";
 * const addr = parseAddress("files.example:9000");
 * console.assert(addr.port === 9000);
 * ```
 */
export function parseAddress(text: string): Address {
  const bad = () => new FerryError("USAGE", `bad server address: ${JSON.stringify(text)}`);
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*))(?::(\d{1,5}))?$/.exec(text.trim());
  if (!m) throw bad();
  const hostname = m[1] ?? (m[2] || "127.0.0.1");
  const port = m[3] === undefined ? 9500 : Number(m[3]);
  if (port < 1 || port > 65535) throw bad();
  return { hostname, port };
}

/**
 * `HOST:PORT`, with brackets around an IPv6 address.
 *
 * @example
 * ```ts
 * import { formatAddress } from "./client.ts";
 * console.assert(formatAddress({ hostname: "::1", port: 9500 }) === "[::1]:9500");
 * ```
 */
export function formatAddress(addr: Address): string {
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  return `${host}:${addr.port}`;
}

/**
 * Options for {@linkcode connect}.
 *
 * @example
 * ```ts
 * import type { ConnectOptions } from "./client.ts";
 * const options: ConnectOptions = {
 *   token: Deno.env.get("FERRY_TOKEN"),
 *   tls: { pin: "3a91".padEnd(64, "0") },
 *   timeoutMs: 30_000,
 * };
 * console.assert(options.timeoutMs === 30_000);
 * ```
 */
export interface ConnectOptions {
  /**
   * Fail when connecting, or a request in flight, makes no progress for this
   * long (ms; default 120 000; 0 = never). An idle connection never times out.
   */
  timeoutMs?: number;
  /** Access token, for a server that requires one. */
  token?: string;
  /**
   * Talk TLS: `true` trusts Deno's root store; an object adds CA
   * certificates or pins the server's certificate (see {@linkcode TlsOptions}).
   */
  tls?: boolean | TlsOptions;
}

/**
 * What a finished transfer moved.
 *
 * @example
 * ```ts
 * import type { TransferResult } from "./client.ts";
 * const report = (r: TransferResult) =>
 *   `${r.bytes} bytes (+${r.resumed} resumed) in ${r.seconds.toFixed(1)} s, sha256 ${r.sha256}`;
 * console.log(report({ bytes: 10, resumed: 0, sha256: "ab", seconds: 0.1 }));
 * ```
 */
export interface TransferResult {
  /** Bytes of content moved by this transfer. */
  bytes: number;
  /** Bytes that an earlier, interrupted transfer had already moved (the file is `bytes + resumed`). */
  resumed: number;
  /** SHA-256 of the whole file, verified by the receiver. */
  sha256: string;
  /** Wall-clock duration. */
  seconds: number;
}

/**
 * Options for {@linkcode FerryClient.get} and {@linkcode FerryClient.put}.
 *
 * @example
 * ```ts
 * import type { TransferOptions } from "./client.ts";
 * const options: TransferOptions = {
 *   resume: true,
 *   onProgress: (bytes) => console.log(`${bytes} bytes`),
 *   signal: AbortSignal.timeout(60_000),
 * };
 * console.assert(options.resume);
 * ```
 */
export interface TransferOptions {
  /** Refuse (EXISTS) rather than replace an existing destination file. */
  noClobber?: boolean;
  /**
   * Called once the size is known, before any content moves; undefined for
   * an upload of unknown size (a FIFO, a stream without `size`).
   */
  onStart?: (size: number | undefined) => void;
  /** Called as content moves, with the bytes of the file there so far (resumed ones included). */
  onProgress?: (bytes: number) => void;
  /**
   * If the connection is lost, keep what arrived (hidden, beside the
   * destination) so that a later transfer with `resume` can continue it.
   */
  keepPartial?: boolean;
  /**
   * Continue from what an earlier, interrupted transfer of the same file
   * kept, sending only the missing bytes (implies `keepPartial`). The kept
   * bytes are checked by SHA-256 first; if they differ from the source, the
   * transfer starts over, and the final check covers the whole file.
   */
  resume?: boolean;
  /**
   * The most bytes a download may announce (LIMIT beyond it, before a byte is
   * written). A download is also refused (NO_SPACE) when its local
   * filesystem has not room for it.
   */
  maxSize?: number;
  /**
   * Stop the transfer. An upload stops sending and fails with CANCELLED; the
   * connection goes on. A download cannot be stopped mid-body in protocol
   * version 1, so aborting one closes the connection: every request in
   * flight on it fails with CANCELLED, and the client must connect again.
   */
  signal?: AbortSignal;
}

/**
 * Options for {@linkcode FerryClient.put}.
 *
 * @example
 * ```ts
 * import type { PutOptions } from "./client.ts";
 * const options: PutOptions = { size: 1024, mode: 0o644, mtime: Date.now(), noClobber: true };
 * console.assert(options.size === 1024);
 * ```
 */
export interface PutOptions extends TransferOptions {
  /** Exact byte count of a stream source (required for a stream; ignored for a file). */
  size?: number;
  /** Permission bits to give the stored file (a stream source; a file's own are used otherwise). */
  mode?: number;
  /** Modification time to give the stored file, ms since the epoch (a stream source). */
  mtime?: number;
}

/**
 * Where a download goes: a local file path, or a stream that receives the bytes as they arrive.
 *
 * @example
 * ```ts
 * import type { GetTarget } from "./client.ts";
 * const targets: GetTarget[] = ["./app.tar.gz", new WritableStream<Uint8Array>()];
 * console.assert(targets.length === 2);
 * ```
 */
export type GetTarget = string | WritableStream<Uint8Array>;

/**
 * What an upload sends: a local file path, or a stream of exactly `size` bytes.
 *
 * @example
 * ```ts
 * import type { PutSource } from "./client.ts";
 * const sources: PutSource[] = ["dist/app.tar.gz", new Blob(["hi"]).stream()];
 * console.assert(sources.length === 2);
 * ```
 */
export type PutSource = string | ReadableStream<Uint8Array>;

/** Where a download's bytes go; an `AtomicFile`, or a caller's stream. */
interface Sink {
  write(chunk: Uint8Array): void | Promise<void>;
  commit(options: { mode?: number; mtime?: number; noClobber?: boolean }): Promise<void>;
  abort(): Promise<void>;
  suspend(): Promise<number | void>;
}

/**
 * A caller's stream as a download sink. Bytes reach it before the final
 * check, so on INTEGRITY the stream is aborted with that error: the caller
 * must discard what it got. Each chunk is copied, since the frame buffer is
 * reused; `ready` carries the stream's backpressure back to the socket.
 */
function streamSink(stream: WritableStream<Uint8Array>): Sink {
  const writer = stream.getWriter();
  let failed: unknown;
  return {
    async write(chunk) {
      await writer.ready;
      writer.write(chunk.slice()).catch((err) => failed = err);
    },
    async commit() {
      if (failed) throw toFerryError(failed, "writing the download stream");
      await writer.close();
    },
    abort() {
      // Not awaited: aborting waits for a write in flight, which a stalled consumer never ends.
      writer.abort(new FerryError("CANCELLED", "download failed")).catch(() => {});
      return Promise.resolve();
    },
    suspend() {
      return this.abort();
    },
  };
}

/**
 * A FIFO or a device as a download sink: opened as it is (a FIFO's open
 * waits for its reader, off the event loop), written through as bytes
 * arrive, never replaced, closed at the end. Bytes reach it before the
 * final check; a failure says how many did.
 */
async function deviceSink(target: { path: string; shown: string }): Promise<Sink> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(target.path, { write: true, append: true });
  } catch (err) {
    throw toFerryError(err, `cannot write local ${escapeName(target.shown)}`);
  }
  let closed = false;
  const close = () => {
    if (!closed) file.close();
    closed = true;
    return Promise.resolve();
  };
  return {
    async write(chunk) {
      try {
        for (let done = 0; done < chunk.length;) done += await file.write(chunk.subarray(done));
      } catch (err) {
        throw toFerryError(err, `cannot write local ${escapeName(target.shown)}`);
      }
    },
    commit: close,
    abort: close,
    suspend: close,
  };
}

/** `err`, saying that `bytes` bytes had already gone to the write-through destination `shown`. */
function wroteThrough(err: FerryError, shown: string, bytes: number): FerryError {
  if (bytes === 0) return err;
  return new FerryError(
    err.code,
    `${err.message} (${bytes} bytes were already written to local ${escapeName(shown)})`,
    { cause: err },
  );
}

/**
 * The most of a refused download's body worth reading to keep the
 * connection; beyond it the connection is closed instead.
 */
const DRAIN_LIMIT = 16 * 1024 * 1024;

/** An upload's content, size (undefined: not known until its end) and metadata. */
interface Source {
  size: number | undefined;
  mode?: number;
  mtime?: number;
  read(buf: Uint8Array): Promise<number | null>;
  /** Throw if the content changed while it was read (see `ByteSource.check`). */
  check?(): void;
  close(): void;
}

/**
 * Open the local file `path` to upload. A regular file is read as it is and
 * checked afterwards for changes made meanwhile. A FIFO or a device is
 * streamed to its end, its size unknown; opening one waits for a writer,
 * which happens off the event loop, so that signals still stop the wait.
 */
async function openFile(path: string): Promise<Source> {
  let file: Deno.FsFile;
  try {
    // Stat first (a FIFO's open blocks until a writer comes), following symlinks as cp does.
    const named = Deno.statSync(path);
    if (named.isDirectory) {
      throw new FerryError("NOT_A_FILE", `local ${escapeName(path)} is a directory (use -r)`);
    }
    file = isStreamed(named)
      ? await Deno.open(path, { read: true })
      : Deno.openSync(path, { read: true });
  } catch (err) {
    throw toFerryError(err, `local ${escapeName(path)}`);
  }
  try {
    const info = file.statSync();
    const mode = info.mode === null ? undefined : info.mode & PERMISSION_BITS;
    if (isStreamed(info)) {
      return { size: undefined, mode, read: (buf) => file.read(buf), close: () => file.close() };
    }
    if (!info.isFile) throw new FerryError("NOT_A_FILE", `not a file: ${escapeName(path)}`);
    return {
      size: info.size,
      mode,
      mtime: info.mtime?.getTime(),
      read: readerFor(file, info.size),
      check: () => assertUnchanged(file, info, `local ${escapeName(path)}`),
      close: () => file.close(),
    };
  } catch (err) {
    file.close();
    throw toFerryError(err, `local ${escapeName(path)}`);
  }
}

/** A stream as an upload source: reads are filled from its chunks, whatever their sizes. */
function openStream(stream: ReadableStream<Uint8Array>, options: PutOptions): Source {
  if (options.size !== undefined && (!Number.isSafeInteger(options.size) || options.size < 0)) {
    throw new FerryError("USAGE", "a stream's size (options.size) must be a byte count");
  }
  const reader = stream.getReader();
  const { signal } = options;
  // A stream that stalls must not outlast an abort: the read is raced against it.
  const aborted = signal && new Promise<never>((_, reject) => {
    const stop = () => {
      reader.cancel().catch(() => {});
      reject(cancelled("upload"));
    };
    if (signal.aborted) stop();
    else signal.addEventListener("abort", stop, { once: true });
  });
  aborted?.catch(() => {});
  let rest: Uint8Array = new Uint8Array(0);
  return {
    size: options.size,
    mode: options.mode,
    mtime: options.mtime,
    async read(buf) {
      let n = 0;
      while (n < buf.length) {
        if (rest.length === 0) {
          const { value, done } =
            await (aborted ? Promise.race([reader.read(), aborted]) : reader.read());
          if (done) break;
          rest = value;
        }
        const take = Math.min(rest.length, buf.length - n);
        buf.set(rest.subarray(0, take), n);
        rest = rest.subarray(take);
        n += take;
      }
      return n === 0 && buf.length > 0 ? null : n;
    },
    close: () => void reader.cancel().catch(() => {}),
  };
}

function cancelled(what: string): FerryError {
  return new FerryError("CANCELLED", `${what} cancelled`);
}

/** Bytes hashed at once when checking a resumed transfer's first bytes. */
const PREFIX_BUFFER = 256 * 1024;

/** Whether a failure is the connection's, which a resumable transfer survives. */
function connectionLost(err: FerryError): boolean {
  return err.code === "CONNECT" || err.code === "TIMEOUT";
}

interface Pending {
  /** Handle one frame of this request's answer; resolves when done with it. */
  frame(frame: Frame): void | Promise<void>;
  /** The connection failed: settle with `err`. */
  fail(err: FerryError): void;
}

async function connectTcp(addr: Address, timeoutMs: number): Promise<Deno.TcpConn> {
  try {
    const signal = timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined;
    const tcp = await Deno.connect({ hostname: addr.hostname, port: addr.port, signal });
    tcp.setNoDelay(true);
    return tcp;
  } catch (err) {
    const e = toFerryError(err, `cannot connect to ${addr.hostname}:${addr.port}`);
    throw e.code === "IO" || e.code === "NOT_FOUND" ? new FerryError("CONNECT", e.message) : e;
  }
}

/**
 * Connect to ferryd and complete the handshake.
 *
 * @example
 * ```ts
 * import { connect } from "./client.ts";
 * import { serve } from "../server/serve.ts";
 * const server = await serve({ root: await Deno.makeTempDir(), port: 0, log: () => {} });
 * const client = await connect(`127.0.0.1:${server.addr.port}`, { timeoutMs: 10_000 });
 * console.assert((await client.list("")).length === 0);
 * await client.close();
 * await server.close();
 * ```
 */
export async function connect(
  address: string | Address,
  options: ConnectOptions = {},
): Promise<FerryClient> {
  const addr = typeof address === "string" ? parseAddress(address) : address;
  const timeoutMs = options.timeoutMs ?? 120_000;
  const tls = options.tls === true ? {} : options.tls || undefined;
  const conn = tls
    ? await connectTls(addr.hostname, addr.port, { ...tls, timeoutMs })
    : await connectTcp(addr, timeoutMs);
  const fc = new FrameConn(conn, { timeoutMs, bufferSize: RECEIVE_BUFFER, eager: true });
  try {
    await fc.sendMessage(FrameType.HELLO, 0, {
      version: PROTOCOL_VERSION,
      agent: `ferry/${VERSION}`,
      token: options.token,
    });
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
    const welcome = parseWelcome(decodeMessage(frame));
    // The server sends DATA frames up to the size it announced.
    fc.setLimits(welcome.limits);
    if (welcome.version !== PROTOCOL_VERSION) {
      throw new FerryError("PROTOCOL", `server speaks protocol version ${welcome.version}`);
    }
    return new FerryClient(fc, welcome, { timeoutMs, origin: formatAddress(addr) });
  } catch (err) {
    fc.close();
    throw toFerryError(err);
  }
}

/**
 * A connection to ferryd. Methods may be called concurrently: requests are
 * pipelined on the one connection and answered in order.
 *
 * @example
 * ```ts
 * import { connect } from "./client.ts";
 * import { serve } from "../server/serve.ts";
 * const server = await serve({ root: await Deno.makeTempDir(), port: 0, log: () => {} });
 * const client = await connect({ hostname: "127.0.0.1", port: server.addr.port });
 * const text = new TextEncoder().encode("hello");
 * await client.put(new Blob([text]).stream(), "notes/hello.txt", { size: text.length });
 * const [entry] = await client.list("notes");
 * const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
 * const [got, body] = await Promise.all([
 *   client.get("notes/hello.txt", writable),
 *   new Response(readable).text(),
 * ]);
 * console.assert(entry.size === 5 && body === "hello" && got.bytes === 5);
 * await client.close();
 * await server.close();
 * ```
 */
export class FerryClient {
  /** What the server said in its handshake. */
  readonly welcome: Welcome;
  readonly #fc: FrameConn;
  readonly #pending = new Map<number, Pending>();
  readonly #sendBuf: Uint8Array;
  #nextId = 1;
  readonly #timeoutMs: number;
  #failure: FerryError | undefined;
  /** Serializes whole requests (a REQUEST and its body) on the wire. */
  #sending: Promise<unknown> = Promise.resolve();
  /** The server's address, as `HOST:PORT`: part of the name of a download's partial. */
  readonly #origin: string;

  /** Use {@linkcode connect}. */
  constructor(
    fc: FrameConn,
    welcome: Welcome,
    options: { timeoutMs?: number; origin?: string } = {},
  ) {
    this.#fc = fc;
    this.welcome = welcome;
    this.#timeoutMs = options.timeoutMs ?? 0;
    this.#origin = options.origin ?? "";
    // Idle until a request goes out: the read loop's pending read is not a stall.
    fc.setTimeout(0);
    // Two halves, one frame each: see sendBody.
    this.#sendBuf = new Uint8Array(2 * (HEADER_SIZE + welcome.limits.maxData));
    this.#readLoop();
  }

  /** Set when the connection has failed; every later call fails with it. */
  get failure(): FerryError | undefined {
    return this.#failure;
  }

  /**
   * List a directory (`""` is the root), or describe a single file. With
   * `recursive`, every entry below it, named by relative path.
   */
  list(path: string, options: ListOptions = {}): Promise<Entry[]> {
    return this.#entries(
      { op: "ls", path, recursive: options.recursive ?? false },
      options.onReserved,
    );
  }

  /** Entries whose root-relative path matches `pattern` (`*`, `?`, `[...]`); names are paths. */
  glob(pattern: string): Promise<Entry[]> {
    return this.#entries({ op: "glob", pattern });
  }

  /** Describe one remote path. */
  async stat(path: string): Promise<Entry> {
    return parseEntry((await this.#simple({ op: "stat", path })).entry);
  }

  /** SHA-256 and size of a remote file, computed by the server. */
  async sum(path: string): Promise<SumReply> {
    return parseSumReply(await this.#simple({ op: "sum", path }));
  }

  /** Create a remote directory; with `parents`, also its parents, and no error if it exists. */
  async mkdir(path: string, options: { parents?: boolean } = {}): Promise<void> {
    await this.#simple({ op: "mkdir", path, parents: options.parents ?? false });
  }

  /** Remove a remote file or empty directory; with `recursive`, a whole tree. */
  async remove(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    await this.#simple({ op: "rm", path, recursive: options.recursive ?? false });
  }

  /** Rename `from` to `to` (into `to` if it is a directory); returns the new path. */
  async move(from: string, to: string): Promise<string> {
    const reply = await this.#simple({ op: "mv", from, to });
    if (typeof reply.path !== "string") throw new FerryError("PROTOCOL", "mv reply lacks path");
    return reply.path;
  }

  /**
   * Download `remote` into the local file `local`, or into a stream. A file
   * lands under a temporary name and is renamed into place only after its
   * size and SHA-256 check out, with the remote file's mode and modification
   * time; on any failure no file is left behind (but a kept partial, see
   * {@linkcode TransferOptions.keepPartial}). A stream gets the bytes as they
   * arrive, and is closed once they check out (aborted if they do not).
   */
  async get(
    remote: string,
    local: GetTarget,
    options: TransferOptions = {},
  ): Promise<TransferResult> {
    try {
      return await this.#get(remote, local, options);
    } catch (err) {
      const code = toFerryError(err).code;
      if (options.resume && code === "RESUME_MISMATCH") {
        return await this.#get(remote, local, { ...options, resume: false, keepPartial: true });
      }
      // The server may have sent a hash it remembered for content changed since (see
      // HashCache): once more, hashed as it is sent. A stream or a device has had the bytes
      // already; and a file that changed while it was sent fails as it is, to be sent again.
      if (
        err instanceof ChecksumMismatch && typeof local === "string" && !destination(local).device
      ) {
        return await this.#get(remote, local, { ...options, resume: false }, true);
      }
      throw err;
    }
  }

  async #get(
    remote: string,
    local: GetTarget,
    options: TransferOptions,
    fresh = false,
  ): Promise<TransferResult> {
    const started = performance.now();
    if (options.signal?.aborted) throw cancelled("download");
    const target = typeof local === "string" ? destination(local) : undefined;
    if (options.resume && (target === undefined || target.device)) {
      throw new FerryError(
        "USAGE",
        typeof local === "string"
          ? `cannot resume into local ${escapeName(local)}: not a regular file`
          : "resuming a download needs a local file, not a stream",
      );
    }
    // A resumable download writes to a partial named after what it fetches (the server, the
    // remote path, the local name), which a later one can find; with `resume` it keeps what
    // the partial holds, else it starts it afresh. A partial that another transfer is writing
    // is left to it: this one then writes a private temporary file.
    let file: Sink | undefined = target === undefined
      ? streamSink(local as WritableStream<Uint8Array>)
      : target.device
      ? undefined // opened once the server answers: a FIFO's open waits for its reader
      : options.resume || options.keepPartial
      ? AtomicFile.resume(target.path, resumeKey(this.#origin, remote, basename(target.path)), {
        offset: options.resume ? undefined : 0,
        takeover: false,
      })
      : undefined;
    const offset = file instanceof AtomicFile ? file.offset : 0;
    let hash: Hash | undefined;
    try {
      if (offset > 0) hash = await (file as AtomicFile).hashPrefix(new Uint8Array(PREFIX_BUFFER));
    } catch (err) {
      await file!.abort();
      throw err;
    }
    const release = async (err: FerryError) => {
      const keep = connectionLost(err) || err.code === "CANCELLED" ||
        (err.code === "NO_SPACE" && offset > 0);
      if (keep) await file?.suspend();
      else await file?.abort();
    };
    let receiver: BodyReceiver | undefined;
    let meta: GetReply | undefined;
    let localError: FerryError | undefined;
    const message: GetRequest = {
      op: "get",
      path: remote,
      offset: hash ? offset : 0,
      ...(hash && { prefix: hash.copy().digest("hex") }),
      // Only a file can be dropped and asked for again (see GetRequest.retries).
      ...(fresh ? { fresh } : target !== undefined && !target.device && { retries: true }),
    };
    let drained = 0;
    const request = this.#request<TransferResult>(message, async (frame, done, fail) => {
      if (localError) {
        // Drain the rest of the body, then report the local failure; a sender that goes on
        // past what it announced is not drained for ever.
        drained += frame.payload.length;
        if (frame.type !== FrameType.DATA) fail(localError);
        else if (drained > (meta?.size ?? 0) - offset) this.#abandon(fail, localError);
        return;
      }
      try {
        if (!meta) {
          meta = parseGetReply(this.#expectReply(frame));
          if (meta.offset !== offset) {
            throw new FerryError("PROTOCOL", `asked for byte ${offset} on, got ${meta.offset}`);
          }
          // Refused before a byte is written: the size is the server's word, and a hostile or
          // broken server must not fill this disk.
          if (options.maxSize !== undefined && meta.size > options.maxSize) {
            throw new FerryError(
              "LIMIT",
              `remote ${escapeName(remote)} is ${meta.size} bytes, over the ${options.maxSize}` +
                "-byte limit for a download (--max-size)",
            );
          }
          if (target && !target.device) {
            const dir = dirname(target.path);
            checkSpace(dir, meta.size - offset, `local ${escapeName(target.shown)}`, dir);
          }
          options.onStart?.(meta.size);
          file ??= target!.device
            ? await deviceSink(target!)
            : AtomicFile.create(target!.path, { mode: meta.mode });
          receiver = new BodyReceiver(meta.size, file, {
            offset,
            hash,
            onProgress: options.onProgress,
          });
          return;
        }
        const sha256 = await receiver!.accept(frame);
        if (sha256 === undefined) return;
        await file!.commit({ mode: meta.mode, mtime: meta.mtime, noClobber: options.noClobber });
        const bytes = receiver!.received - offset;
        done({ bytes, resumed: offset, sha256, seconds: elapsed(started) });
      } catch (err) {
        const e = toFerryError(err);
        if (meta && !receiver) {
          // Refused on the announcement, before a byte was written. A large body is not worth
          // draining: the connection goes, and whatever else was in flight on it is retried
          // on a new one.
          await release(e);
          if (meta.size - offset > DRAIN_LIMIT) return this.#abandon(fail, e);
          localError = e;
          return;
        }
        await file?.abort();
        if (meta && !receiver?.done) localError = e;
        else fail(e);
      }
    });
    const onAbort = () => this.#fail(cancelled("download"));
    options.signal?.addEventListener("abort", onAbort, { once: true });
    // However the request ends (an ERROR from the server, a lost connection), no temp file
    // stays, but a partial that a lost connection interrupted.
    try {
      return await request;
    } catch (err) {
      // A local failure outranks the lost connection that may have cut its draining short.
      const e = localError ?? toFerryError(err);
      await release(e);
      if (target?.device && meta) throw wroteThrough(e, target.shown, receiver?.received ?? 0);
      throw e;
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Upload the local file `local` (or a stream of exactly `options.size`
   * bytes) to `remote`, with its mode and modification time, replacing any
   * file there atomically once verified.
   */
  async put(local: PutSource, remote: string, options: PutOptions = {}): Promise<TransferResult> {
    try {
      return await this.#put(local, remote, options);
    } catch (err) {
      if (!options.resume || toFerryError(err).code !== "RESUME_MISMATCH") throw err;
      if (typeof local !== "string") throw err; // a stream cannot be read again from its start
      return await this.#put(local, remote, { ...options, resume: false, keepPartial: true });
    }
  }

  async #put(local: PutSource, remote: string, options: PutOptions): Promise<TransferResult> {
    const started = performance.now();
    if (options.signal?.aborted) throw cancelled("upload");
    const source = typeof local === "string" ? await openFile(local) : openStream(local, options);
    // The body owns the source once it starts: it may still be reading when an early
    // error from the server settles the request.
    let bodyStarted = false;
    try {
      const { size, mtime } = source;
      if (size === undefined && !this.welcome.features?.includes("streamed-put")) {
        throw new FerryError(
          "USAGE",
          `${this.welcome.agent} cannot take an upload of unknown size (a pipe or a device); ` +
            "update it, or give the size",
        );
      }
      options.onStart?.(size);
      let offset = 0;
      let hash: Hash | undefined;
      // A stream of unknown size cannot be read again: it is never resumable.
      const resumable = size !== undefined && Boolean(options.resume || options.keepPartial);
      if (options.resume && size !== undefined) {
        const held = await this.#simple({ op: "partial", path: remote, size, mtime });
        offset = parsePartialReply(held, size);
        // Hashing the first bytes also moves the source to where the body starts.
        if (offset > 0) hash = await hashPrefix(source, offset, new Uint8Array(PREFIX_BUFFER));
      }
      let sent = { sha256: "", bytes: 0 };
      let localError: FerryError | undefined;
      const message: PutRequest = {
        op: "put",
        path: remote,
        size,
        mode: source.mode,
        mtime,
        noClobber: options.noClobber ?? false,
        resume: resumable,
        offset,
        ...(hash && { prefix: hash.copy().digest("hex") }),
      };
      const { onProgress, signal } = options;
      const reply = this.#request<void>(
        message,
        (frame, done) => {
          this.#expectReply(frame);
          done();
        },
        async (id) => {
          bodyStarted = true;
          try {
            const rest = size === undefined ? undefined : size - offset;
            sent = await sendBody(this.#fc, id, source, rest, this.#sendBuf, {
              stopped: () => !this.#pending.has(id) || Boolean(signal?.aborted),
              onProgress: onProgress && ((bytes) => onProgress(offset + bytes)),
              hash,
              offset,
            });
          } catch (err) {
            const e = toFerryError(err);
            if (connectionLost(e)) throw e;
            if (e.code !== "CANCELLED") localError = e;
            // Ends the body early; the server drops what it has and answers with an error.
            await this.#fc.sendMessage(FrameType.ERROR, id, errorToMessage(e));
          } finally {
            source.close();
          }
        },
      );
      try {
        await reply;
      } catch (err) {
        throw localError ?? (signal?.aborted ? cancelled("upload") : err);
      }
      return { bytes: sent.bytes, resumed: offset, sha256: sent.sha256, seconds: elapsed(started) };
    } finally {
      if (!bodyStarted) source.close();
    }
  }

  /** Say goodbye to the server and close the connection. */
  async close(): Promise<void> {
    if (!this.#failure) {
      await this.#request<void>({ op: "close" }, (frame, done) => {
        this.#expectReply(frame);
        done();
      }).catch(() => {});
    }
    this.#fail(new FerryError("CONNECT", "connection closed"));
  }

  /** A request answered by exactly one REPLY. */
  #simple(message: Request): Promise<Record<string, unknown>> {
    return this.#request(message, (frame, done) => done(this.#expectReply(frame)));
  }

  /** A request answered by pages of entries. */
  #entries(message: Request, onReserved?: (path: string) => void): Promise<Entry[]> {
    const entries: Entry[] = [];
    return this.#request(message, (frame, done) => {
      const page = parseLsReply(this.#expectReply(frame));
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
  #request<T>(
    message: Request,
    onFrame: (
      frame: Frame,
      done: (value: T) => void,
      fail: (err: FerryError) => void,
    ) => void | Promise<void>,
    sendBody?: (id: number) => Promise<void>,
  ): Promise<T> {
    if (this.#failure) return Promise.reject(this.#failure);
    const id = this.#nextId++;
    const { promise, resolve, reject } = Promise.withResolvers<T>();
    const settle = (fn: () => void) => {
      this.#pending.delete(id);
      if (this.#pending.size === 0) this.#fc.setTimeout(0);
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
    if (this.#pending.size === 1) this.#fc.setTimeout(this.#timeoutMs);
    const send = this.#sending.then(async () => {
      if (this.#failure) throw this.#failure;
      // A request without a body may wait to leave with the next ones (see postMessage).
      if (sendBody) {
        await this.#fc.sendMessage(FrameType.REQUEST, id, message);
        await sendBody(id);
      } else {
        await this.#fc.postMessage(FrameType.REQUEST, id, message);
      }
    });
    this.#sending = send.catch(() => {});
    send.catch((err) => {
      const e = toFerryError(err);
      if (e.code === "CONNECT" || e.code === "TIMEOUT") this.#fail(e);
      else fail(e);
    });
    return promise;
  }

  #expectReply(frame: Frame): Record<string, unknown> {
    if (frame.type !== FrameType.REPLY) {
      throw new FerryError("PROTOCOL", `expected REPLY, got ${frameTypeName(frame.type)}`);
    }
    return decodeMessage(frame);
  }

  async #readLoop(): Promise<void> {
    try {
      for (;;) {
        const frame = await this.#fc.read();
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
      this.#fail(toFerryError(err));
    }
  }

  /**
   * Settle one request with `err`, and close the connection to stop its
   * body: the other requests in flight fail as on a lost connection, which
   * a batch retries on a new one.
   */
  #abandon(fail: (err: FerryError) => void, err: FerryError): void {
    fail(err);
    this.#fail(new FerryError("CONNECT", "connection closed to stop a refused download"));
  }

  #fail(err: FerryError): void {
    if (this.#failure) return;
    this.#failure = err;
    this.#fc.close();
    for (const pending of this.#pending.values()) pending.fail(err);
    this.#pending.clear();
  }
}
