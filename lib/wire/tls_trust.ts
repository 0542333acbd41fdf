/**
 * Whom a TLS client trusts, apart from the connection itself: certificate
 * fingerprints, pins, and the options naming CAs. Nothing here loads Node's
 * layer until a fingerprint is computed, so a command line that merely
 * parses `--pin` starts as fast as one without (see `tls.ts` for the
 * connection, loaded only when TLS is used).
 *
 * @module
 */

import { FerryError } from "../util/errors.ts";
import { nodeCrypto } from "../util/node_builtins.ts";

/**
 * How a client trusts the server's certificate.
 *
 * @example
 * ```ts
 * import type { TlsOptions } from "./tls_trust.ts";
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

/** The SHA-256 of a certificate's DER bytes, in lowercase hex. */
export function sha256Hex(der: Uint8Array): string {
  return nodeCrypto().createHash("sha256").update(der).digest("hex");
}

/**
 * The SHA-256 fingerprint of the first certificate in `pem`, as
 * `AB:CD:…` (the form `openssl x509 -fingerprint -sha256` prints).
 *
 * @example
 * ```ts ignore
 * import { fingerprint } from "./tls_trust.ts";
 * console.log(fingerprint(await Deno.readTextFile("cert.pem")));
 * ```
 */
export function fingerprint(pem: string): string {
  return colonHex(sha256Hex(firstCertificate(pem)));
}

/** Hex as ferryd prints fingerprints: `AB:CD:…`. */
export function colonHex(hex: string): string {
  return /^[0-9a-f]+$/.test(hex) ? hex.toUpperCase().replace(/..(?!$)/g, "$&:") : hex;
}

/**
 * A pin in canonical form (64 lowercase hex digits), from hex with or
 * without colons and an optional `sha256:` prefix, or pasted as ferryd
 * prints it (`sha256 AB:CD:…`) or openssl does (`SHA256 Fingerprint=…`).
 *
 * @example
 * ```ts
 * import { parsePin } from "./tls_trust.ts";
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
