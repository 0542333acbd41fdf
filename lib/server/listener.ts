/**
 * Where ferryd's connections come from: a TCP listener, or a TLS one. Both
 * hand each new connection, with TCP_NODELAY set, to one callback, and keep
 * accepting whatever happens to a single connection.
 *
 * @module
 */

import { createSecureContext, TLSSocket } from "node:tls";
import { FerryError, toFerryError } from "../util/errors.ts";
import type { ByteConn } from "../wire/frame_conn.ts";
import { ConnStream, TlsConn } from "../wire/tls_conn.ts";

/** A connection just accepted, and where it comes from. */
export interface Accepted {
  conn: ByteConn;
  remote: Deno.NetAddr;
}

/** A listening socket that calls back for each connection. */
export interface Listener {
  /** The address actually bound. */
  readonly addr: Deno.NetAddr;
  /** Resolves once the listener is closed and accepts no more. */
  readonly done: Promise<void>;
  /** Stop accepting. Connections already handed over are not touched. */
  close(): void;
}

/** PEM certificate chain and key for a TLS listener. */
export interface TlsIdentity {
  cert: string;
  key: string;
}

/**
 * Listen on `hostname:port`, over TLS when `tls` is given (and then never in
 * cleartext), calling `onConnection` for each connection.
 */
export function listen(
  hostname: string,
  port: number,
  tls: TlsIdentity | undefined,
  onConnection: (accepted: Accepted) => void,
  log: (line: string) => void,
): Listener {
  const wrap = tls ? tlsWrapper(tls) : (conn: Deno.TcpConn) => conn;
  const listener = Deno.listen({ hostname, port });
  let closed = false;
  const loop = async () => {
    while (!closed) {
      let conn: Deno.TcpConn;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (closed || err instanceof Deno.errors.BadResource) break;
        // Out of file descriptors: back off, and keep serving those already connected.
        // Anything else (a peer that reset before accept) concerns that peer alone.
        const code = (err as { code?: string }).code;
        if (code === "EMFILE" || code === "ENFILE") {
          log("accept failed: out of file descriptors; retrying in 100 ms");
          await new Promise((r) => setTimeout(r, 100));
        } else {
          // Yield, so that a persistent error cannot spin the loop and starve the sessions.
          await new Promise((r) => setTimeout(r, 0));
        }
        continue;
      }
      try {
        // Nagle would hold each small reply ~40 ms.
        conn.setNoDelay(true);
        onConnection({ conn: wrap(conn), remote: conn.remoteAddr });
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
  };
  return {
    addr: listener.addr,
    done: loop(),
    close() {
      closed = true;
      try {
        listener.close();
      } catch {
        // Already closed.
      }
    },
  };
}

/**
 * Server-side TLS through `node:tls` over each accepted connection: one
 * whose handshake never completes must still be closable (Deno's own TLS
 * keeps such a socket open after close), or silent peers would pile up file
 * descriptors.
 */
function tlsWrapper(tls: TlsIdentity): (conn: Deno.TcpConn) => ByteConn {
  let secureContext;
  try {
    // node:tls takes a bad key without a word and fails each handshake later; Deno's own TLS
    // checks the pair at once, so a throwaway listener says now whether it is any good.
    Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: tls.cert, key: tls.key }).close();
    secureContext = createSecureContext({ cert: tls.cert, key: tls.key });
  } catch (err) {
    const why = (err as Error).message.split("\n")[0];
    throw new FerryError("USAGE", `bad TLS certificate or key: ${why}`);
  }
  return (conn) => {
    const stream = new ConnStream(conn);
    return new TlsConn(new TLSSocket(stream, { isServer: true, secureContext }), stream);
  };
}
