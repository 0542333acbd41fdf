/**
 * Where ferryd is: server addresses as users type them, as ferry shows
 * them, and the TCP connection to one.
 *
 * @module
 */

import { DEFAULT_PORT } from "../commands.ts";
import { FerryError, toFerryError } from "../util/errors.ts";

/**
 * Default server address.
 *
 * @example
 * ```ts
 * import { DEFAULT_ADDRESS, parseAddress } from "./address.ts";
 * console.assert(parseAddress(DEFAULT_ADDRESS).port === 9500);
 * ```
 */
export const DEFAULT_ADDRESS = `127.0.0.1:${DEFAULT_PORT}`;

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
 * import { parseAddress } from "./address.ts";
 * const addr = parseAddress("files.example:9000");
 * console.assert(addr.port === 9000);
 * ```
 */
export function parseAddress(text: string): Address {
  const bad = () => new FerryError("USAGE", `bad server address: ${JSON.stringify(text)}`);
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]\s]*))(?::(\d{1,5}))?$/.exec(text.trim());
  if (!m && /^[0-9a-fA-F]*:[0-9a-fA-F:.]*$/.test(text.trim())) {
    // A bare IPv6 address: its port would be ambiguous without brackets. When its last group
    // could be a port (`::1:9500`), both readings are offered.
    const t = text.trim();
    const cut = /^(.*):(\d{1,5})$/.exec(t);
    const port = cut && /::|^(?:[^:]*:){7}[^:]*$/.test(cut[1]) && !/[^:]:$/.test(cut[1])
      ? `[${cut[1]}]:${cut[2]}`
      : undefined;
    // Read as a whole address, the last group is hex of up to 4 digits (`::1:19603` is not one).
    const address = /(?::[0-9a-fA-F]{1,4}|::)$/.test(t) ? `[${t}]:${DEFAULT_PORT}` : undefined;
    const readings = port && address
      ? `${port} (port ${cut![2]}), or ${address}`
      : port ?? address ?? `[${t}]:${DEFAULT_PORT}`;
    throw new FerryError(
      "USAGE",
      `bad server address: ${JSON.stringify(text)}: write an IPv6 address in brackets, ` +
        `as ${readings}`,
    );
  }
  if (!m) throw bad();
  const hostname = m[1] ?? (m[2] || "127.0.0.1");
  const port = m[3] === undefined ? DEFAULT_PORT : Number(m[3]);
  if (port < 1 || port > 65535) throw bad();
  return { hostname, port };
}

/**
 * `HOST:PORT`, with brackets around an IPv6 address.
 *
 * @example
 * ```ts
 * import { formatAddress } from "./address.ts";
 * console.assert(formatAddress({ hostname: "::1", port: 9500 }) === "[::1]:9500");
 * ```
 */
export function formatAddress(addr: { hostname: string; port: number }): string {
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  return `${host}:${addr.port}`;
}

/** A TCP connection to `addr`, Nagle off, given up after `timeoutMs` (0: never). */
export async function connectTcp(addr: Address, timeoutMs: number): Promise<Deno.TcpConn> {
  try {
    const signal = timeoutMs > 0 ? AbortSignal.timeout(timeoutMs) : undefined;
    const tcp = await Deno.connect({ hostname: addr.hostname, port: addr.port, signal });
    tcp.setNoDelay(true);
    return tcp;
  } catch (err) {
    const e = toFerryError(err, `cannot connect to ${formatAddress(addr)}`);
    throw e.code === "IO" || e.code === "NOT_FOUND" ? new FerryError("CONNECT", e.message) : e;
  }
}
