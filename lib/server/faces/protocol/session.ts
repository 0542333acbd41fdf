/**
 * The ferry protocol as a face of the service: the handshake, then
 * requests in order, each dispatched to the service, with listings sent in
 * pages and the frames of a refused upload skipped. What a request means is
 * the service's business; this module only speaks the wire.
 *
 * @module
 */

import { type Algorithm, ALGORITHMS, type Digest } from "../../../checksum/checksum.ts";
import {
  endMessage,
  type Entry,
  errorFromMessage,
  errorToMessage,
  FEATURES,
  type GetRequest,
  type Hello,
  type ListOptions,
  MAX_PAGE_ENTRIES,
  parseHello,
  parseRequest,
  parseTreeReply,
  PROTOCOL_VERSION,
  type PutRequest,
  type PutTreeRequest,
  type Request,
  type TreeRequest,
  type Welcome,
} from "../../../commands.ts";
import {
  decodeMessage,
  DEFAULT_LIMITS,
  type Frame,
  type FrameLimits,
  FrameType,
  HEADER_SIZE,
} from "../../../frame.ts";
import { escapeName } from "../../../util/display.ts";
import { elapsed } from "../../../util/elapsed.ts";
import { connectionLost, FerryError, toFerryError } from "../../../util/errors.ts";
import { utf8Length } from "../../../util/utf8.ts";
import { VERSION } from "../../../util/version.ts";
import { BodyReceiver, sendBody } from "../../../wire/body.ts";
import { decompressChunk } from "../../../wire/compress.ts";
import { type ByteConn, FrameConn } from "../../../wire/frame_conn.ts";
import { decodeRecords, type TreeRecord } from "../../../wire/tree_records.ts";
import { inlineMax, sendTreeRecords } from "../../../wire/tree_send.ts";
import type { FerryService, IncomingFile, IncomingTree, Principal } from "../../service.ts";
import type { Face, FaceSession } from "../face.ts";

/**
 * Per-connection receive buffer: two DATA frames. Memory per connection is
 * this plus, while sending, two frames' worth of send buffer.
 */
const RECEIVE_BUFFER = 2 * (HEADER_SIZE + DEFAULT_LIMITS.maxData);

/** Size of one DATA chunk the server sends. */
const CHUNK_SIZE = DEFAULT_LIMITS.maxData;

/** Shutting down, a session waits this long between requests for more already on their way. */
const DRAIN_LINGER_MS = 250;

/** Before the handshake a client may send one small HELLO, nothing else: no buffer grows for it. */
const HANDSHAKE_LIMITS: FrameLimits = { maxControl: 4096, maxData: 0 };

/** How the protocol face serves. */
export interface ProtocolOptions {
  /** What the requests mean. */
  service: FerryService;
  /** A client must complete the handshake within this many ms. */
  handshakeTimeoutMs: number;
  /** Close a connection that makes no progress for this many ms (0 = never). */
  idleTimeoutMs: number;
  /** Transfer checksums accepted, the preferred first (default: every one, XXH3-128 first). */
  checksums?: readonly Algorithm[];
  /** Agree to compress data frames when a client asks (default true). */
  compress?: boolean;
}

/**
 * The ferry protocol face: a connection whose first byte is a HELLO frame's
 * type.
 *
 * @example
 * ```ts
 * import { LocalStorage } from "../../../storage/local/local_storage.ts";
 * import { FerryService } from "../../service.ts";
 * import { protocolFace } from "./session.ts";
 * const service = new FerryService({
 *   storage: await LocalStorage.open(await Deno.makeTempDir()),
 *   log: () => {},
 * });
 * const face = protocolFace({ service, handshakeTimeoutMs: 10_000, idleTimeoutMs: 300_000 });
 * console.assert(face.accepts(new Uint8Array([1, 0, 0, 0, 0])));
 * ```
 */
export function protocolFace(options: ProtocolOptions): Face {
  const welcome: Welcome = {
    version: PROTOCOL_VERSION,
    agent: `ferryd/${VERSION}`,
    limits: { ...DEFAULT_LIMITS },
    features: [...FEATURES],
    // Until the handshake names the session's own.
    checksum: (options.checksums ?? ALGORITHMS)[0],
  };
  const frames = (conn: ByteConn) =>
    new FrameConn(conn, {
      timeoutMs: options.handshakeTimeoutMs,
      limits: HANDSHAKE_LIMITS,
      bufferSize: RECEIVE_BUFFER,
    });
  return {
    name: "ferry",
    accepts: (head) => head[0] === FrameType.HELLO,
    open: (conn, peer) => new Session(frames(conn), peer, welcome, options),
    refuse(conn, why) {
      const fc = frames(conn);
      const busy = { code: "BUSY", message: `server busy (${why}), try later` };
      // Over TLS the answer waits for a handshake that may never come: not for long.
      const patience = new Promise((r) => setTimeout(r, 1000));
      Promise.race([fc.sendMessage(FrameType.ERROR, 0, busy), patience])
        .catch(() => {}).finally(() => fc.close());
    },
  };
}

/** One client connection: handshake, then requests in order until close or end of stream. */
class Session implements FaceSession {
  readonly #fc: FrameConn;
  readonly #peer: string;
  #welcome: Welcome;
  readonly #options: ProtocolOptions;
  readonly #service: FerryService;
  #who: Principal | undefined;
  #sendBuf: Uint8Array | undefined;
  /** Id of a refused upload whose remaining DATA/END frames are skipped. */
  #discardId: number | undefined;
  #busy = false;
  #draining = false;

  constructor(fc: FrameConn, peer: string, welcome: Welcome, options: ProtocolOptions) {
    this.#fc = fc;
    this.#peer = peer;
    this.#welcome = welcome;
    this.#options = options;
    this.#service = options.service;
  }

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

  abort(): void {
    this.#fc.close();
  }

  async run(): Promise<void> {
    const started = performance.now();
    let reason = "closed";
    try {
      const agent = await this.#handshake();
      const scope = this.#service.needsToken ? `, scope ${this.#who!.scope}` : "";
      this.#service.log(`${this.#peer} connected (${escapeName(agent)}${scope})`);
      this.#fc.setLimits(this.#welcome.limits);
      this.#fc.setTimeout(this.#options.idleTimeoutMs);
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
      this.#service.log(`${this.#peer} disconnected after ${seconds} s (${reason})`);
    }
  }

  async #handshake(): Promise<string> {
    // A whole-handshake deadline, not just a stall timeout: a client trickling one
    // byte at a time must not hold a connection slot.
    const deadline = setTimeout(() => this.#fc.close("TIMEOUT"), this.#options.handshakeTimeoutMs);
    try {
      const frame = await this.#fc.read();
      if (!frame) throw new FerryError("CONNECT", "closed before the handshake");
      if (frame.type !== FrameType.HELLO) {
        throw new FerryError("PROTOCOL", "not a ferry client: expected HELLO");
      }
      const hello = parseHello(decodeMessage(frame));
      if (hello.version !== PROTOCOL_VERSION) {
        throw new FerryError(
          "PROTOCOL",
          `the client speaks protocol version ${hello.version} and this server ` +
            `(ferryd ${VERSION}) version ${PROTOCOL_VERSION}: use client and server of one version`,
        );
      }
      this.#who = await this.#service.authenticate(this.#peer, hello.token);
      this.#welcome = this.#negotiate(hello);
      await this.#fc.sendMessage(FrameType.WELCOME, 0, this.#welcome);
      return hello.agent ?? "unknown client";
    } finally {
      clearTimeout(deadline);
    }
  }

  /**
   * The checksum is the first of the server's list that the client offers;
   * compression is on when the client asks and the server allows it.
   */
  #negotiate(hello: Hello): Welcome {
    const accepted = this.#options.checksums ?? ALGORITHMS;
    const offered = hello.checksums ?? ALGORITHMS;
    const checksum = accepted.find((a) => offered.includes(a));
    if (!checksum) {
      throw new FerryError(
        "USAGE",
        `no checksum in common: the client offers ${
          offered.join(", ") || "none this server knows"
        }` +
          `, this server accepts ${accepted.join(", ")}`,
      );
    }
    const compress = this.#options.compress !== false && hello.compress?.includes("zstd");
    return { ...this.#welcome, checksum, ...(compress && { compress: "zstd" as const }) };
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
      if (this.#draining) this.#fc.setTimeout(this.#options.idleTimeoutMs);
      this.#busy = true;
      try {
        return await this.#request(frame);
      } finally {
        this.#busy = false;
      }
    }
    // ZDATA is content only where compression was agreed; elsewhere it is a protocol error.
    const data = frame.type === FrameType.DATA ||
      (frame.type === FrameType.ZDATA && this.#welcome.compress !== undefined);
    const bodyFrame = data || frame.type === FrameType.END || frame.type === FrameType.ERROR;
    if (bodyFrame && frame.id === this.#discardId) {
      if (!data) this.#discardId = undefined;
      return true;
    }
    throw new FerryError("PROTOCOL", `unexpected frame type ${frame.type} for request ${frame.id}`);
  }

  async #request(frame: Frame): Promise<boolean> {
    const id = frame.id;
    this.#discardId = undefined;
    let req: Request | undefined;
    try {
      req = parseRequest(decodeMessage(frame));
      if (req.op === "close") {
        await this.#reply(id, {});
        return false;
      }
      await this.#dispatch(id, req);
      return true;
    } catch (err) {
      const e = toFerryError(err);
      // A request that parsed but then broke the framing leaves the stream in an unknown state.
      const fatal = connectionLost(e) || (e.code === "PROTOCOL" && req !== undefined);
      if (this.#fc.closed || fatal) throw e;
      // An unreadable request may have a body on its way: skip it.
      if (!req) this.#discardId = id;
      await this.#fc.sendMessage(FrameType.ERROR, id, errorToMessage(e));
      return true;
    }
  }

  async #dispatch(id: number, req: Exclude<Request, { op: "close" }>): Promise<void> {
    const service = this.#service;
    const who = this.#who!;
    switch (req.op) {
      case "ls": {
        const { path, recursive } = req;
        return await this.#sendEntries(id, (o) => service.list(who, path, { ...o, recursive }));
      }
      case "glob":
        return await this.#sendEntries(id, () => service.glob(who, req.pattern));
      case "stat":
        return await this.#reply(id, { entry: await service.stat(who, req.path) });
      case "sum": {
        const { digest, size } = await service.sum(who, req.path, req.algorithm);
        return await this.#reply(id, endMessage(digest, size));
      }
      case "partial":
        return await this.#reply(id, { offset: await service.partialSize(who, req.path, req) });
      case "mkdir":
        await service.mkdir(who, req.path, { parents: req.parents });
        return await this.#reply(id, {});
      case "rm":
        await service.remove(who, req.path, { recursive: req.recursive });
        return await this.#reply(id, {});
      case "mv":
        return await this.#reply(id, { path: await service.move(who, req.from, req.to) });
      case "get":
        return await this.#get(id, who, req);
      case "put":
        return await this.#put(id, who, req);
      case "tree":
        return await this.#tree(id, who, req);
      case "puttree":
        return await this.#putTree(id, who, req);
      case "setstat":
        await service.setStat(who, req.path, req);
        return await this.#reply(id, {});
    }
  }

  #reply(id: number, message: unknown): Promise<void> {
    return this.#fc.sendMessage(FrameType.REPLY, id, message);
  }

  /**
   * Send entries as REPLY pages, each under the control-frame limit, with
   * the names left out as reserved (which the client reports as skipped).
   */
  async #sendEntries(
    id: number,
    list: (options: ListOptions) => AsyncIterable<Entry>,
  ): Promise<void> {
    const budget = this.#welcome.limits.maxControl - 64;
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
      return this.#reply(id, reply);
    };
    const add = async (bytes: number, push: () => void) => {
      if (pageBytes + bytes > budget || page.length + reserved.length >= MAX_PAGE_ENTRIES) {
        await send(true);
      }
      push();
      pageBytes += bytes;
    };
    const pending: string[] = [];
    const flushReserved = async () => {
      for (const path of pending.splice(0)) {
        await add(utf8Length(JSON.stringify(path)) + 1, () => reserved.push(path));
      }
    };
    for await (const entry of list({ onReserved: (path) => pending.push(path) })) {
      await flushReserved();
      await add(utf8Length(JSON.stringify(entry)) + 1, () => page.push(entry));
    }
    await flushReserved();
    await send(false);
  }

  #buffer(): Uint8Array {
    // Two halves, one frame each: see sendBody.
    return this.#sendBuf ??= new Uint8Array(2 * (HEADER_SIZE + CHUNK_SIZE));
  }

  /** Send a file: REPLY with its metadata, then the body from the offset asked for. */
  async #get(id: number, who: Principal, req: GetRequest): Promise<void> {
    const algorithm = this.#welcome.checksum;
    const file = await this.#service.download(who, { ...req, algorithm });
    try {
      const { size, mtime, mode, offset } = file;
      await this.#fc.postMessage(FrameType.REPLY, id, { size, mtime, mode, offset });
      const { digest } = await sendBody(this.#fc, id, file.source, size - offset, this.#buffer(), {
        algorithm,
        compress: this.#welcome.compress === "zstd",
        known: file.known,
        prefix: file.prefix,
        offset,
      });
      file.sent(digest);
    } catch (err) {
      file.failed(err);
      throw err;
    } finally {
      file.close();
    }
  }

  /**
   * Send a tree as one stream: records packed into DATA frames (ZDATA where
   * compression was agreed and a frame shrinks), double-buffered like a
   * body, then `REPLY {files, bytes}`. A file that cannot be read goes as a
   * SKIP record with its error; the stream goes on.
   */
  async #tree(id: number, who: Principal, req: TreeRequest): Promise<void> {
    const algorithm = this.#welcome.checksum;
    const buf = this.#buffer();
    const items = this.#service.tree(who, req.path, {
      inlineMax: inlineMax(buf.length, algorithm),
    });
    const { files, bytes } = await sendTreeRecords(this.#fc, id, buf, items, {
      algorithm,
      compress: this.#welcome.compress === "zstd",
    });
    await this.#fc.postMessage(FrameType.REPLY, id, { files, bytes });
  }

  /**
   * Take in a tree sent as one stream: its records follow the request at
   * once. Each file is stored as its record is read; a file that cannot be
   * is answered with a `failed` REPLY, and the stream goes on.
   */
  async #putTree(id: number, who: Principal, req: PutTreeRequest): Promise<void> {
    const { checksum, compress, limits } = this.#welcome;
    let tree: IncomingTree;
    try {
      tree = await this.#service.treeUpload(who, req.path, {
        noClobber: req.noClobber,
        algorithm: checksum,
      });
    } catch (err) {
      // Refused before its body: skip the frames already on their way.
      this.#discardId = id;
      throw err;
    }
    let received = 0, bytes = 0;
    const records: TreeRecord[] = [];
    const collect = (record: TreeRecord) => records.push(record);
    // Files being stored, when the storage takes several at once (tree.parallel); a failure
    // that ends the whole tree (a lost connection) waits in `fatal` for the loop to see it.
    const pending = new Set<Promise<void>>();
    let fatal: FerryError | undefined;
    const refuse = async (path: string, err: unknown) => {
      const e = toFerryError(err);
      if (e.code === "PROTOCOL" || connectionLost(e)) throw e;
      tree.failed(path, e);
      const failed = { path, ...errorToMessage(e) };
      await this.#fc.postMessage(FrameType.REPLY, id, { failed });
    };
    const store = async (
      path: string,
      content: Uint8Array,
      meta: Parameters<IncomingTree["file"]>[2],
    ) => {
      try {
        await tree.file(path, content, meta);
        bytes += content.length;
      } catch (err) {
        await refuse(path, err);
      }
    };
    const settle = async () => {
      await Promise.all(pending);
      if (fatal) throw fatal;
    };
    try {
      for (;;) {
        const frame = await this.#fc.read();
        if (!frame) throw new FerryError("CONNECT", "client closed the connection mid-tree");
        if (frame.id !== id) {
          throw new FerryError("PROTOCOL", `frame for request ${frame.id} inside tree ${id}`);
        }
        if (frame.type === FrameType.END) {
          const end = parseTreeReply(decodeMessage(frame));
          await settle();
          if (end.files !== received) {
            throw new FerryError(
              "PROTOCOL",
              `the client counted ${end.files} files in the tree, and ${received} arrived`,
            );
          }
          break;
        }
        if (frame.type === FrameType.ERROR) throw errorFromMessage(decodeMessage(frame));
        let payload: Uint8Array;
        if (frame.type === FrameType.DATA) payload = frame.payload;
        else if (frame.type === FrameType.ZDATA && compress) {
          payload = decompressChunk(frame.payload, limits.maxData);
        } else throw new FerryError("PROTOCOL", `unexpected frame type ${frame.type} in a tree`);
        // Every record of the frame is handled before the next read reuses its bytes.
        records.length = 0;
        decodeRecords(payload, checksum, collect);
        for (const record of records) {
          if (fatal) throw fatal;
          if (record.kind === "file") {
            received++;
            if (tree.parallel <= 1) {
              await store(record.path, record.content, record);
              continue;
            }
            // Copies: the frame's bytes are read over by the next frame.
            const meta = { mode: record.mode, mtime: record.mtime, sum: record.sum.slice() };
            const storing = store(record.path, record.content.slice(), meta)
              .catch((err) => void (fatal ??= toFerryError(err)))
              .finally(() => pending.delete(storing));
            pending.add(storing);
            if (pending.size >= tree.parallel) await Promise.race(pending);
          } else {
            try {
              if (record.kind !== "dir") {
                throw new FerryError("PROTOCOL", `a ${record.kind} record in an upload`);
              }
              await tree.dir(record.path);
            } catch (err) {
              await refuse(record.path, err);
            }
          }
        }
      }
    } catch (err) {
      await Promise.allSettled(pending);
      tree.failed("", err);
      // Failed before the body's END or ERROR: skip the frames still on their way.
      this.#discardId = id;
      throw err;
    }
    tree.end();
    await this.#fc.postMessage(FrameType.REPLY, id, { files: received, bytes, done: true });
  }

  /** Receive and store a file; its body follows the request at once. */
  async #put(id: number, who: Principal, req: PutRequest): Promise<void> {
    let file: IncomingFile;
    try {
      file = await this.#service.upload(who, { ...req, algorithm: this.#welcome.checksum });
    } catch (err) {
      // Refused before its body: skip the frames already on their way.
      this.#discardId = id;
      throw err;
    }
    const { checksum, compress, limits } = this.#welcome;
    const receiver = new BodyReceiver(file, checksum, compress ? limits.maxData : undefined);
    try {
      let digest: Digest | undefined;
      while (!digest) {
        const frame = await this.#fc.read();
        if (!frame) throw new FerryError("CONNECT", "client closed the connection mid-upload");
        if (frame.id !== id) {
          throw new FerryError("PROTOCOL", `frame for request ${frame.id} inside upload ${id}`);
        }
        digest = await receiver.accept(frame);
      }
    } catch (err) {
      await file.failed(err);
      // Failed before the body's END or ERROR: skip the frames still on their way.
      if (!receiver.done) this.#discardId = id;
      throw err;
    }
    await this.#fc.postMessage(FrameType.REPLY, id, {});
  }
}
