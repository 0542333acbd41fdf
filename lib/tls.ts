/**
 * TLS for both ends: certificate fingerprints, and the client's ways to
 * trust a server (Deno's root store, extra CAs, or one pinned certificate).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { connect as nodeTlsConnect } from "node:tls";
import { FerryError } from "./errors.ts";

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
  /** CA certificates (PEM) trusted besides Deno's root store. */
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

function pemOf(der: Uint8Array): string {
  const b64 = btoa(String.fromCharCode(...der)).replace(/.{1,64}/g, "$&\n");
  return `-----BEGIN CERTIFICATE-----\n${b64}-----END CERTIFICATE-----\n`;
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
  return sha256Hex(firstCertificate(pem)).toUpperCase().replace(/..(?!$)/g, "$&:");
}

/**
 * A pin in canonical form (64 lowercase hex digits), from hex with or
 * without colons and an optional `sha256:` prefix.
 *
 * @example
 * ```ts
 * import { parsePin } from "./tls.ts";
 * console.assert(parsePin("sha256:" + "AB:".repeat(31) + "AB") === "ab".repeat(32));
 * ```
 */
export function parsePin(text: string): string {
  const hex = text.trim().replace(/^sha256:/i, "").replaceAll(":", "").toLowerCase();
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new FerryError("USAGE", "--pin takes a SHA-256 fingerprint: 64 hex digits");
  }
  return hex;
}

/**
 * The certificate a TLS server presents, unverified: only to compare with a
 * pin, which is what makes it trusted.
 */
function peerCertificate(hostname: string, port: number, timeoutMs: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    const socket = nodeTlsConnect({
      host: hostname,
      port,
      rejectUnauthorized: false,
      servername: /^[\d.]+$|:/.test(hostname) ? undefined : hostname,
    });
    const fail = (err: Error) => {
      socket.destroy();
      reject(
        new FerryError("TLS", `TLS handshake with ${hostname}:${port} failed: ${err.message}`),
      );
    };
    if (timeoutMs > 0) socket.setTimeout(timeoutMs, () => fail(new Error("timed out")));
    socket.once("error", fail);
    socket.once("secureConnect", () => {
      const raw = socket.getPeerCertificate(true)?.raw;
      socket.destroy();
      if (raw?.length) resolve(new Uint8Array(raw));
      else reject(new FerryError("TLS", "the server sent no certificate"));
    });
  });
}

/**
 * Run TLS over the connected `tcp` to `hostname:port` and finish the
 * handshake. Without a pin, the certificate must chain to Deno's root store
 * or `caCerts` and name `hostname`. With a pin, the server's certificate is
 * fetched first and compared with it; the connection then trusts that one
 * certificate alone, so a server that presents another fails the handshake.
 */
export async function startClientTls(
  tcp: Deno.TcpConn,
  hostname: string,
  port: number,
  options: TlsOptions & { timeoutMs?: number },
): Promise<Deno.TlsConn> {
  let caCerts = options.caCerts;
  if (options.pin) {
    const der = await peerCertificate(hostname, port, options.timeoutMs ?? 0);
    const actual = sha256Hex(der);
    if (actual !== parsePin(options.pin)) {
      throw new FerryError(
        "TLS",
        `the server's certificate (sha256 ${actual}) is not the pinned one: refusing to talk to it`,
      );
    }
    caCerts = [pemOf(der)];
  }
  let conn: Deno.TlsConn | undefined;
  try {
    conn = await Deno.startTls(tcp, {
      hostname,
      caCerts,
      unsafelyDisableHostnameVerification: Boolean(options.pin),
    });
    await conn.handshake();
    return conn;
  } catch (err) {
    try {
      (conn ?? tcp).close();
    } catch {
      // Already closed.
    }
    const why = (err as Error).message.replace(/\s+/g, " ").slice(0, 300);
    throw new FerryError(
      "TLS",
      `TLS handshake with ${hostname}:${port} failed: ${why}${
        /InvalidContentType|CorruptMessage|unexpected eof/i.test(why)
          ? " (is the server using TLS?)"
          : ""
      }`,
    );
  }
}
