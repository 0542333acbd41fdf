/**
 * A TLS client connection (the client's side; ferryd's is in
 * `lib/server/listener.ts`). It loads Node's layer (`node:tls`,
 * `node:stream`), so the client imports it only when TLS is asked for.
 *
 * @module
 */

import { FerryError } from "../util/errors.ts";
import { nodeTls } from "../util/node_builtins.ts";
import { TlsConn } from "./tls_conn.ts";
import { colonHex, parsePin, sha256Hex, type TlsOptions } from "./tls_trust.ts";

export { fingerprint, parsePin, type TlsOptions } from "./tls_trust.ts";

/**
 * Connect to `hostname:port` over TLS and finish the handshake, within
 * `timeoutMs`. Without a pin, the certificate must chain to Deno's root
 * store (or, with `caCerts`, to those CAs) and name `hostname`. With a pin,
 * the certificate of this very connection must have that fingerprint, and
 * nothing else is asked of it: it is checked before a byte of ferry's own
 * goes out, so a token is never sent to a server that is not the pinned one.
 *
 * TCP here is Node's own, unlike ferryd's: over a Deno connection every
 * encrypted record reaches JavaScript as a fresh buffer, and the collections
 * that keep memory flat cost ~40% of an upload's speed (1 GiB: 5.3 s against
 * 8.4-9.7 s, measured here). A client reads whatever its server sends anyway.
 */
export function connectTls(
  hostname: string,
  port: number,
  options: TlsOptions & { timeoutMs?: number },
): Promise<TlsConn> {
  const pin = options.pin === undefined ? undefined : parsePin(options.pin);
  const isIp = /^[\d.]+$|:/.test(hostname);
  return new Promise((resolve, reject) => {
    const socket = nodeTls().connect({
      host: hostname,
      port,
      servername: isIp ? undefined : hostname,
      ca: options.caCerts,
      rejectUnauthorized: pin === undefined,
    });
    const fail = (err: FerryError) => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    const timer = options.timeoutMs
      ? setTimeout(
        () => fail(new FerryError("TIMEOUT", "TLS handshake timed out")),
        options.timeoutMs,
      )
      : undefined;
    socket.once("error", (err: Error & { code?: string }) => {
      const refused = err.code === "ECONNREFUSED" || err.code === "ECONNRESET";
      const why = err.message.replace(/\s+/g, " ").slice(0, 300);
      fail(
        new FerryError(
          refused ? "CONNECT" : "TLS",
          `TLS handshake with ${hostname}:${port} failed: ${why}${
            /wrong version|record|InvalidContentType|CorruptMessage|eof/i.test(why)
              ? " (is the server using TLS?)"
              : ""
          }`,
        ),
      );
    });
    socket.once("secureConnect", () => {
      if (pin !== undefined) {
        const raw = socket.getPeerCertificate(true)?.raw;
        const actual = raw?.length ? sha256Hex(new Uint8Array(raw)) : "none";
        if (actual !== pin) {
          // Both in the form ferryd prints at start (and openssl x509 -fingerprint), to compare.
          return fail(
            new FerryError(
              "TLS",
              `the server's certificate is not the pinned one: refusing to talk to it ` +
                `(server: sha256 ${colonHex(actual)}, pinned: sha256 ${colonHex(pin)})`,
            ),
          );
        }
      }
      clearTimeout(timer);
      socket.setNoDelay(true);
      resolve(new TlsConn(socket));
    });
  });
}
