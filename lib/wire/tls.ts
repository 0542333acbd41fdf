/**
 * TLS for both ends: certificate fingerprints, and the client's ways to
 * trust a server (Deno's root store, extra CAs, or one pinned certificate).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { connect as nodeTlsConnect } from "node:tls";
import { FerryError } from "../util/errors.ts";
import { TlsConn } from "./tls_conn.ts";

/**
 * How a client trusts the server's certificate.
 *
 * @example
 * ```ts
 * import type { TlsOptions } from "./tls.ts";
 * const pinned: TlsOptions = { pin: "3A:91".padEnd(95, ":00") };
 * const viaCa: TlsOptions = { caCerts: ["-----BEGIN CERTIFICATE-----\n..."] };
 * console.assert(pinned.pin !== undefined && viaCa.caCerts?.length === 1);
 * ```
 */
export interface TlsOptions {
  /** CA certificates (PEM) to trust instead of Deno's root store. */
  caCerts?: string[];
  /**
   * Trust exactly the certificate with this SHA-256 fingerprint (hex, colons
   * optional), e.g. a self-signed one; its host names are then not checked.
   */
  pin?: string;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/;

/** The DER bytes of the first certificate in a PEM text. */
function firstCertificate(pem: string): Uint8Array {
  const m = PEM_CERT.exec(pem);
  if (!m) throw new FerryError("USAGE", "no PEM certificate found");
  return Uint8Array.from(atob(m[1].replace(/\s+/g, "")), (c) => c.charCodeAt(0));
}

function sha256Hex(der: Uint8Array): string {
  return createHash("sha256").update(der).digest("hex");
}

/**
 * The SHA-256 fingerprint of the first certificate in `pem`, as
 * `AB:CD:…` (the form `openssl x509 -fingerprint -sha256` prints).
 *
 * @example
 * ```ts ignore
 * import { fingerprint } from "./tls.ts";
 * console.log(fingerprint(await Deno.readTextFile("cert.pem")));
 * ```
 */
export function fingerprint(pem: string): string {
  return colonHex(sha256Hex(firstCertificate(pem)));
}

/** Hex as ferryd prints fingerprints: `AB:CD:…`. */
function colonHex(hex: string): string {
  return /^[0-9a-f]+$/.test(hex) ? hex.toUpperCase().replace(/..(?!$)/g, "$&:") : hex;
}

/**
 * A pin in canonical form (64 lowercase hex digits), from hex with or
 * without colons and an optional `sha256:` prefix, or pasted as ferryd
 * prints it (`sha256 AB:CD:…`) or openssl does (`SHA256 Fingerprint=…`).
 *
 * @example
 * ```ts
 * import { parsePin } from "./tls.ts";
 * console.assert(parsePin("sha256:" + "AB:".repeat(31) + "AB") === "ab".repeat(32));
 * ```
 */
export function parsePin(text: string): string {
  // As ferryd prints it (`sha256 AB:CD:...`), as openssl does (`SHA256 Fingerprint=AB:...`),
  // as `sha256:abcd...`, or bare.
  const hex = text.trim().replace(/^sha256(\s+fingerprint)?\s*[:=]?\s*/i, "")
    .replaceAll(":", "").toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new FerryError("USAGE", "--pin takes a SHA-256 fingerprint: 64 hex digits");
  }
  return hex;
}

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
    const socket = nodeTlsConnect({
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
