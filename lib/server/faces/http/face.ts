/**
 * HTTP/1.1 as a face of the service, on ferryd's own port: a connection
 * whose first byte is an ASCII capital (`GET`, `PUT`, `HEAD`, …) is handed
 * to a `node:http` server that never listens itself (see
 * ../shared/http/NOTES.md for the measurements behind this choice and the
 * Deno workarounds it needs). Over TLS the connection arrives decrypted,
 * so HTTPS and ferry-over-TLS share the port the same way.
 *
 * @module
 */

import {
  createServer,
  type IncomingMessage,
  type Server,
  type ServerOptions,
  type ServerResponse,
} from "node:http";
import type { ByteConn } from "../../../wire/frame_conn.ts";
import type { FerryService } from "../../service.ts";
import type { Face, FaceSession } from "../face.ts";
import { checkBodiesCopied, ConnDuplex } from "./conn_duplex.ts";
import { handleRequest } from "./handler.ts";

/** How the HTTP face serves. */
export interface HttpOptions {
  /** What the requests mean. */
  service: FerryService;
  /** A request's headers must arrive within this many ms (slow headers are cut). */
  headersTimeoutMs: number;
  /** Close a connection that moves no byte for this many ms (0 = never). */
  idleTimeoutMs: number;
  /** Served over TLS: the sign-in cookie is then `Secure`. */
  secure?: boolean;
}

/** Keep an idle keep-alive connection this long for the client's next request. */
const KEEP_ALIVE_MS = 5_000;

/** The most header bytes a request may have (Node's default is 16 KiB too). */
const MAX_HEADER_BYTES = 16 * 1024;

/**
 * The HTTP face.
 *
 * @example
 * ```ts ignore
 * const face = httpFace({ service, headersTimeoutMs: 10_000, idleTimeoutMs: 300_000 });
 * face.accepts(new TextEncoder().encode("GET / HTTP/1.1")); // true
 * ```
 */
export function httpFace(options: HttpOptions): Face {
  // Whether read buffers may be reused (see conn_duplex.ts), found out once, before any client.
  checkBodiesCopied();
  const sessions = new WeakMap<object, HttpSession>();
  const serverOptions: ServerOptions & { optimizeEmptyRequests: boolean } = {
    keepAliveTimeout: KEEP_ALIVE_MS,
    headersTimeout: options.headersTimeoutMs,
    // A long upload is one request: what bounds it is progress, through the idle timeout.
    requestTimeout: 0,
    maxHeaderSize: MAX_HEADER_BYTES,
    connectionsCheckingInterval: 1000,
    // A request without Content-Length or Transfer-Encoding has no body (RFC 9112 6.3): it is
    // ended at once, rather than drained through the stream machinery after its response
    // (Node 24's option, in Deno's node:http too; not in the types yet).
    optimizeEmptyRequests: true,
  };
  const server = createServer(serverOptions, (req: IncomingMessage, res: ServerResponse) => {
    const session = sessions.get(req.socket);
    session?.started();
    res.on("close", () => session?.finished());
    handleRequest(options.service, req, res, session?.peer ?? "unknown", options.secure).catch(
      () => {
        res.destroy();
      },
    );
  });
  // Deno's node:http closes a handed-over connection after each response unless the server
  // says it listens (denoland/deno#35609); "listening" also starts its timeout checker.
  Object.defineProperty(server, "listening", { get: () => true });
  server.emit("listening");
  if (options.idleTimeoutMs > 0) server.setTimeout(options.idleTimeoutMs);
  server.on(
    "clientError",
    (_err: Error, socket: { destroy(): void; writable?: boolean; end?(data: string): void }) => {
      // A malformed request (smuggling shapes included), or headers too slow or too large.
      try {
        if (socket.writable && socket.end) {
          socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n");
        } else socket.destroy();
      } catch {
        socket.destroy();
      }
    },
  );
  return {
    name: "http",
    // Every HTTP method starts with a capital letter; a ferry HELLO starts with 0x01.
    accepts: (head) => head[0] >= 0x41 && head[0] <= 0x5a,
    open: (conn, peer) => {
      const session = new HttpSession(server, conn, peer);
      sessions.set(session.socket, session);
      return session;
    },
    refuse(conn, why) {
      const body = `server busy (${why}), try later\n`;
      const text = `HTTP/1.1 503 Service Unavailable\r\nretry-after: 1\r\nconnection: close\r\n` +
        `content-type: text/plain\r\ncontent-length: ${body.length}\r\n\r\n${body}`;
      conn.write(new TextEncoder().encode(text)).catch(() => {}).finally(() => {
        try {
          conn.close();
        } catch {
          // Closed already.
        }
      });
    },
  };
}

/** One HTTP connection, served by the shared `node:http` server. */
class HttpSession implements FaceSession {
  readonly socket: ConnDuplex;
  readonly peer: string;
  readonly #server: Server;
  #inFlight = 0;
  #draining = false;

  constructor(server: Server, conn: ByteConn, peer: string) {
    this.#server = server;
    this.peer = peer;
    this.socket = new ConnDuplex(conn, peer);
  }

  get busy(): boolean {
    return this.#inFlight > 0;
  }

  started(): void {
    this.#inFlight++;
  }

  finished(): void {
    this.#inFlight--;
    if (this.#draining && this.#inFlight === 0) this.socket.destroySoon();
  }

  run(): Promise<void> {
    const closed = new Promise<void>((resolve) => {
      this.socket.once("close", () => resolve());
      this.socket.once("error", () => {});
    });
    this.#server.emit("connection", this.socket);
    return closed;
  }

  drain(): void {
    this.#draining = true;
    if (this.#inFlight === 0) this.socket.destroySoon();
  }

  abort(): void {
    this.socket.destroy();
  }
}
