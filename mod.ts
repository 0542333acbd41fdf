/**
 * ferry: fast, verified file transfer between machines.
 *
 * Start a server and talk to it from the same program:
 *
 * ```ts
 * import { connect, serve } from "./mod.ts";
 *
 * const root = await Deno.makeTempDir();
 * await Deno.writeTextFile(`${root}/hello.txt`, "hello");
 * const server = await serve({ root, port: 0, log: () => {} });
 * const client = await connect({ hostname: "127.0.0.1", port: server.addr.port });
 * const entries = await client.list("");
 * console.assert(entries[0].name === "hello.txt");
 * await client.close();
 * await server.close();
 * ```
 *
 * @module
 */

export {
  type Address,
  connect,
  type ConnectOptions,
  DEFAULT_ADDRESS,
  FerryClient,
  type GetTarget,
  parseAddress,
  type PutOptions,
  type PutSource,
  type TransferOptions,
  type TransferResult,
} from "./lib/client/client.ts";
export {
  type CloseOptions,
  DEFAULT_PORT,
  type FerryServer,
  serve,
  type ServeOptions,
} from "./lib/server/serve.ts";
export type {
  Compression,
  Entry,
  EntryType,
  ListOptions,
  SumReply,
  Welcome,
} from "./lib/commands.ts";
export type { FrameLimits } from "./lib/frame.ts";
export type { Algorithm, Digest } from "./lib/checksum/checksum.ts";
export { type ErrorCode, EXIT_CODES, FerryError } from "./lib/util/errors.ts";
export { LocalStorage } from "./lib/storage/local/local_storage.ts";
export { MemoryStorage } from "./lib/storage/memory/memory_storage.ts";
export { openStore, type S3Flags } from "./lib/storage/open_store.ts";
export { storageConformance, type StorageUnderTest } from "./lib/storage/conformance.ts";
export { parseTokens, type Scope, type TokenGrant } from "./lib/server/auth.ts";
export { fingerprint, parsePin, type TlsOptions } from "./lib/wire/tls_trust.ts";
export type {
  Checksums,
  ReadHandle,
  Storage,
  TreeItem,
  Upload,
  UploadOptions,
  Usage,
  WholeOptions,
} from "./lib/storage/storage.ts";
export { VERSION } from "./lib/util/version.ts";
