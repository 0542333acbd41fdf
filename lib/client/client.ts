/**
 * The ferry client as a library: {@linkcode connect} to ferryd, then list,
 * download and upload through a {@linkcode FerryClient}. Requests are
 * pipelined on one connection, any number of them in flight.
 *
 * @module
 */

import type { Algorithm } from "../checksum/checksum.ts";
import {
  type Entry,
  type ListOptions,
  parseEntry,
  parseSumReply,
  type SumReply,
  type Welcome,
} from "../commands.ts";
import { FerryError } from "../util/errors.ts";
import type { TlsOptions } from "../wire/tls_trust.ts";
import { type Address, parseAddress } from "./address.ts";
import { type Connection, openConnection } from "./connection.ts";
import {
  download,
  type GetTarget,
  type PutOptions,
  type PutSource,
  type TransferOptions,
  type TransferResult,
  upload,
} from "./transfers.ts";

/**
 * The connection under a client, for this package's own batch code (a tree
 * stream speaks to it directly); not part of the public API.
 */
export let connectionOf: (client: FerryClient) => Connection;

export { type Address, DEFAULT_ADDRESS, formatAddress, parseAddress } from "./address.ts";
export type {
  GetTarget,
  PutOptions,
  PutSource,
  TransferOptions,
  TransferResult,
} from "./transfers.ts";

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
  /**
   * Check transfers with this checksum only (`"sha256"`), or with one of
   * these: the server picks the first of its own list that is here.
   * Default: every one, so the server's choice (XXH3-128 unless it prefers
   * another).
   */
  checksum?: Algorithm | Algorithm[];
  /** Ask the server to compress data frames with zstd, both ways (default false). */
  compress?: boolean;
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
  const connection = await openConnection(addr, {
    timeoutMs: options.timeoutMs ?? 120_000,
    token: options.token,
    tls: options.tls === true ? {} : options.tls || undefined,
    checksums: typeof options.checksum === "string" ? [options.checksum] : options.checksum,
    compress: options.compress,
  });
  return new FerryClient(connection);
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
  readonly #conn: Connection;

  static {
    connectionOf = (client) => client.#conn;
  }

  /** Use {@linkcode connect}. */
  constructor(connection: Connection) {
    this.#conn = connection;
  }

  /** What the server said in its handshake. */
  get welcome(): Welcome {
    return this.#conn.welcome;
  }

  /** Set when the connection has failed; every later call fails with it. */
  get failure(): FerryError | undefined {
    return this.#conn.failure;
  }

  /**
   * List a directory (`""` is the root), or describe a single file. With
   * `recursive`, every entry below it, named by relative path.
   */
  list(path: string, options: ListOptions = {}): Promise<Entry[]> {
    return this.#conn.entries(
      { op: "ls", path, recursive: options.recursive ?? false },
      options.onReserved,
    );
  }

  /** Entries whose root-relative path matches `pattern` (`*`, `?`, `[...]`); names are paths. */
  glob(pattern: string): Promise<Entry[]> {
    return this.#conn.entries({ op: "glob", pattern });
  }

  /** Describe one remote path. */
  async stat(path: string): Promise<Entry> {
    return parseEntry((await this.#conn.simple({ op: "stat", path })).entry);
  }

  /**
   * The checksum and size of a remote file, computed (or remembered) by the
   * server: SHA-256 unless `algorithm` says otherwise.
   */
  async sum(path: string, algorithm: Algorithm = "sha256"): Promise<SumReply> {
    const request = algorithm === "sha256"
      ? { op: "sum" as const, path }
      : { op: "sum" as const, path, algorithm };
    return parseSumReply(await this.#conn.simple(request), algorithm);
  }

  /** Create a remote directory; with `parents`, also its parents, and no error if it exists. */
  async mkdir(path: string, options: { parents?: boolean } = {}): Promise<void> {
    await this.#conn.simple({ op: "mkdir", path, parents: options.parents ?? false });
  }

  /**
   * Give a remote directory a mode and a modification time (ms since the
   * epoch), as a tree's directories get once their files are in.
   */
  async setStat(path: string, options: { mode?: number; mtime?: number }): Promise<void> {
    await this.#conn.simple({ op: "setstat", path, ...options });
  }

  /** Remove a remote file or empty directory; with `recursive`, a whole tree. */
  async remove(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    await this.#conn.simple({ op: "rm", path, recursive: options.recursive ?? false });
  }

  /** Rename `from` to `to` (into `to` if it is a directory); returns the new path. */
  async move(from: string, to: string): Promise<string> {
    const reply = await this.#conn.simple({ op: "mv", from, to });
    if (typeof reply.path !== "string") throw new FerryError("PROTOCOL", "mv reply lacks path");
    return reply.path;
  }

  /**
   * Download `remote` into the local file `local`, or into a stream. A file
   * lands under a temporary name and is renamed into place only after its
   * size and checksum check out, with the remote file's mode and
   * modification time; on any failure no file is left behind (but a kept
   * partial, see {@linkcode TransferOptions.keepPartial}). A FIFO or a
   * device is written through. A stream gets the bytes as they arrive, and
   * is closed once they check out (aborted if they do not).
   */
  get(remote: string, local: GetTarget, options: TransferOptions = {}): Promise<TransferResult> {
    return download(this.#conn, remote, local, options);
  }

  /**
   * Upload the local file `local` (or a stream, of `options.size` bytes
   * when known) to `remote`, with its mode and modification time, replacing
   * any file there atomically once verified.
   */
  put(local: PutSource, remote: string, options: PutOptions = {}): Promise<TransferResult> {
    return upload(this.#conn, local, remote, options);
  }

  /** Say goodbye to the server and close the connection. */
  close(): Promise<void> {
    return this.#conn.goodbye();
  }
}
