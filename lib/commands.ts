/**
 * The command vocabulary shared by server and client: the messages carried
 * in HELLO, WELCOME, REQUEST, REPLY, END and ERROR frames, and the
 * validation of every field that arrives from the network.
 *
 * @module
 */

import { type Algorithm, type Digest, isAlgorithm, isDigestHex } from "./checksum/checksum.ts";
import { type ErrorCode, FerryError, isErrorCode } from "./util/errors.ts";
import type { FrameLimits } from "./frame.ts";
import { escapeControls, escapeName } from "./util/display.ts";
import { utf8Length } from "./util/utf8.ts";

/**
 * The protocol version this build speaks. Version 2 negotiates the
 * transfer checksum (XXH3-128 or SHA-256) and compression in the
 * handshake; version 1 always used SHA-256.
 */
export const PROTOCOL_VERSION = 2;

/**
 * ferryd's port, kept from the program ferry grew from.
 *
 * @example
 * ```ts
 * import { DEFAULT_PORT } from "./commands.ts";
 * console.assert(DEFAULT_PORT === 9500);
 * ```
 */
export const DEFAULT_PORT = 9500;

/** Largest path the protocol accepts, in UTF-8 bytes. */
export const MAX_PATH_BYTES = 4096;

/** Most entries in one page of a listing. */
export const MAX_PAGE_ENTRIES = 1000;

/** Most entries a client accepts in one listing, over all its pages. */
export const MAX_LISTING_ENTRIES = 5_000_000;

/** Longest token looked at; anything longer cannot match and is cut. */
const MAX_TOKEN_CHARS = 1024;

/** Client's first frame. */
export interface Hello {
  /** Protocol version the client speaks. */
  version: number;
  /** Free-form client name and version, for server logs. */
  agent?: string;
  /** Access token, when the server requires one. Never logged. */
  token?: string;
  /**
   * Transfer checksums the client accepts, in its order of preference; the
   * server picks the first of its own list that is here. Absent: every one.
   */
  checksums?: Algorithm[];
  /** Compression the client asks for on data frames (`"zstd"`); absent: none. */
  compress?: Compression[];
}

/** How DATA frames may be compressed: `zstd` (each ZDATA frame one zstd frame). */
export type Compression = "zstd";

/**
 * What a server can do beyond protocol version 1 as first published,
 * announced in {@linkcode Welcome.features}: `"streamed-put"`, uploads of
 * unknown size (no `size` in the request; it comes in END); `"tree"`, a
 * whole tree sent as one stream of records (see {@linkcode TreeRequest}).
 */
export type Feature = "streamed-put" | "tree";

/** Features this build's server announces. */
export const FEATURES: readonly Feature[] = ["streamed-put", "tree"];

/** Server's answer to HELLO. */
export interface Welcome {
  /** Protocol version the server speaks. */
  version: number;
  /** Server name and version. */
  agent: string;
  /** Frame limits the server enforces. */
  limits: FrameLimits;
  /** Optional capabilities (see {@linkcode Feature}); unknown ones are ignored. */
  features?: string[];
  /**
   * The checksum of every transfer on this connection: END trailers and
   * resume prefixes are in it.
   */
  checksum: Algorithm;
  /** Compression both sides use for data frames, when the client asked and the server agreed. */
  compress?: Compression;
}

/** List a directory (or describe one file). Replies are pages of entries. */
export interface LsRequest {
  op: "ls";
  path: string;
  /** Walk the whole tree below `path`; names are then relative paths. Symlinks are not followed. */
  recursive: boolean;
}

/** Entries whose root-relative path matches a glob pattern (`*`, `?`, `[...]`), in pages. */
export interface GlobRequest {
  op: "glob";
  pattern: string;
}

/** Describe one path. */
export interface StatRequest {
  op: "stat";
  path: string;
}

/**
 * Where to continue an interrupted transfer: the first `offset` bytes are
 * already there, and `prefix` is their checksum (the connection's), which
 * the other side checks against its own copy before a byte moves.
 */
export interface ResumePoint {
  /** Bytes already transferred (0: start from the beginning). */
  offset: number;
  /** Checksum (hex) of the first `offset` bytes; present when `offset` > 0. */
  prefix?: string;
}

/**
 * Download a file: REPLY with its metadata, then DATA frames from `offset`,
 * then END with the checksum of the whole file.
 */
export interface GetRequest extends ResumePoint {
  op: "get";
  path: string;
  /**
   * Hash the content as it is sent, even where the server knows its
   * checksum: asked after a download failed its check, in case what the
   * server knew was stale. Absent means false.
   */
  fresh?: boolean;
  /**
   * The client stores the file where it can drop it, and asks again with
   * `fresh` if it fails its check: the server may then send a hash it only
   * remembers from an upload (see `HashCache`). Absent means false.
   */
  retries?: boolean;
}

/**
 * Upload a file: DATA frames from `offset` and END (with the checksum of the
 * whole file) follow at once; REPLY after it is stored.
 */
export interface PutRequest extends ResumePoint {
  op: "put";
  path: string;
  /**
   * Exact size of the content that follows; absent for a stream of unknown
   * length (feature `streamed-put`), whose size END then carries. Such an
   * upload is never resumable.
   */
  size?: number;
  /** Permission bits to give the file (setuid, setgid and sticky are dropped). */
  mode?: number;
  /** Modification time to give the file, ms since the epoch. */
  mtime?: number;
  /** Refuse (EXISTS) rather than replace an existing file. */
  noClobber: boolean;
  /**
   * If the connection is lost, keep what arrived for a later resume (see
   * {@linkcode PartialRequest}); an `offset` > 0 continues from such a partial.
   */
  resume: boolean;
}

/**
 * How much of an interrupted resumable upload of this file (same path, size
 * and mtime) the server holds. REPLY `{ offset }`, 0 when it holds none.
 */
export interface PartialRequest {
  op: "partial";
  path: string;
  size: number;
  mtime?: number;
}

/** Create a directory. */
export interface MkdirRequest {
  op: "mkdir";
  path: string;
  /** Create missing parents, and succeed if it exists. */
  parents: boolean;
}

/** Remove a file or an empty directory; with `recursive`, a whole tree. */
export interface RmRequest {
  op: "rm";
  path: string;
  recursive: boolean;
}

/** Rename `from` to `to` (into `to` if it is a directory). */
export interface MvRequest {
  op: "mv";
  from: string;
  to: string;
}

/** The checksum of a file, computed (or remembered) by the server. */
export interface SumRequest {
  op: "sum";
  path: string;
  /** Which checksum; absent: SHA-256, the one published digests use. */
  algorithm?: Algorithm;
}

/**
 * Send the tree below a directory as one stream: DATA (or ZDATA) frames of
 * records (see `lib/wire/tree_records.ts`), then `REPLY {files, bytes}`.
 * Small files come inline with their checksum; larger ones are named, to be
 * fetched with `get`.
 */
export interface TreeRequest {
  op: "tree";
  path: string;
}

/**
 * Store a tree sent as one stream below the directory `path` (made if
 * missing): DATA (or ZDATA) frames of DIR and FILE records follow the
 * request at once, then `END {files, bytes}`. The server answers each file
 * it could not store with `REPLY {"failed": {path, code, message}}` as it
 * goes, and the whole with `REPLY {files, bytes, done: true}`.
 */
export interface PutTreeRequest {
  op: "puttree";
  path: string;
  /** Refuse (per file, as EXISTS) to replace files already there. */
  noClobber: boolean;
}

/** Give a directory a mode and a modification time (a tree's, once its files are in). */
export interface SetStatRequest {
  op: "setstat";
  path: string;
  mode?: number;
  mtime?: number;
}

/** The REPLY that ends a tree stream: what it held inline. */
export interface TreeReply {
  /** Files sent inline. */
  files: number;
  /** Their bytes. */
  bytes: number;
}

/** Ask the server to end the session after replying. */
export interface CloseRequest {
  op: "close";
}

/** Every request a client may send. */
export type Request =
  | LsRequest
  | GlobRequest
  | StatRequest
  | GetRequest
  | PutRequest
  | PartialRequest
  | MkdirRequest
  | RmRequest
  | MvRequest
  | SumRequest
  | TreeRequest
  | PutTreeRequest
  | SetStatRequest
  | CloseRequest;

/** What kind of thing a directory entry is. */
export type EntryType = "file" | "dir" | "symlink" | "other";

/** One directory entry, as listed by `ls`. */
export interface Entry {
  /** Name, or path relative to the listed directory in recursive listings. */
  name: string;
  /** File, directory, symlink (never followed) or anything else. */
  type: EntryType;
  /** Size in bytes. */
  size: number;
  /** Modification time, milliseconds since the epoch (0 when unknown). */
  mtime: number;
  /** Permission bits (0 when unknown). */
  mode: number;
}

/**
 * How to list a directory, for a client's and a storage's `list` alike.
 *
 * @example
 * ```ts
 * import type { ListOptions } from "./commands.ts";
 * const skipped: string[] = [];
 * const options: ListOptions = { recursive: true, onReserved: (path) => skipped.push(path) };
 * console.assert(options.recursive);
 * ```
 */
export interface ListOptions {
  /** Every entry below the path, named by relative path. */
  recursive?: boolean;
  /**
   * Hears about each entry left out because its name is reserved for ferry
   * (`.ferry-*`, but ferry's own temporary files), by relative path: it can
   * be neither listed nor sent.
   */
  onReserved?: (path: string) => void;
}

/** One page of an `ls` reply; `more` says another page follows. */
export interface LsReply {
  entries: Entry[];
  more: boolean;
  /**
   * Paths (named like entries) left out because their names are reserved
   * for ferry (`.ferry-*`): they can be neither listed nor sent, and a
   * client reports them as skipped. Absent when there are none.
   */
  reserved?: string[];
}

/** The REPLY that opens a download. */
export interface GetReply {
  size: number;
  mtime: number;
  mode: number;
  /** Where the content that follows starts: the offset asked for (0 when none was). */
  offset: number;
}

/**
 * Check the REPLY that ends a tree stream.
 *
 * @example
 * ```ts
 * import { parseTreeReply } from "./commands.ts";
 * console.assert(parseTreeReply({ files: 2, bytes: 10 }).files === 2);
 * ```
 */
export function parseTreeReply(msg: Record<string, unknown>): TreeReply {
  return {
    files: field(msg, "files", isCount, "a count"),
    bytes: field(msg, "bytes", isCount, "a byte count"),
  };
}

/** The REPLY to `sum`: on the wire `{ <algorithm>: hex, size }`, as END. */
export interface SumReply {
  /** The file's checksum. */
  digest: Digest;
  /** Size in bytes that was hashed. */
  size: number;
}

/**
 * Trailer of a file's content: on the wire `{ <algorithm>: hex, size }`,
 * for example `{ "xxh128": "…", "size": 5 }` (a version 1 trailer was the
 * same with `sha256`).
 */
export interface End {
  /** The checksum of the whole content. */
  digest: Digest;
  /** Bytes of the whole content: required after a body of unknown size, checked when present. */
  size?: number;
}

/**
 * The END trailer (or `sum` reply) that vouches for `size` bytes with
 * checksum `digest`, as sent.
 *
 * @example
 * ```ts
 * import { endMessage } from "./commands.ts";
 * const end = endMessage({ algorithm: "xxh128", hex: "ab".repeat(16) }, 5);
 * console.assert(end.xxh128 === "ab".repeat(16) && end.size === 5);
 * ```
 */
export function endMessage(digest: Digest, size: number): Record<string, string | number> {
  return { [digest.algorithm]: digest.hex, size };
}

/** Payload of an ERROR frame. */
export interface ErrorMessage {
  code: ErrorCode;
  message: string;
}

/** A resume prefix: lowercase hex of a 128- or 256-bit checksum (the connection's algorithm). */
const PREFIX_HEX = /^[0-9a-f]{32}(?:[0-9a-f]{32})?$/;
const ENTRY_TYPES: readonly string[] = ["file", "dir", "symlink", "other"];

function protocolError(message: string): FerryError {
  return new FerryError("PROTOCOL", message);
}

function field<T>(
  msg: Record<string, unknown>,
  name: string,
  check: (v: unknown) => v is T,
  what: string,
): T {
  const value = msg[name];
  if (!check(value)) throw protocolError(`field '${name}' must be ${what}`);
  return value;
}

const isString = (v: unknown): v is string => typeof v === "string";
const isBool = (v: unknown): v is boolean => typeof v === "boolean";
/** A non-negative safe integer: every size, offset and count on the wire is one. */
const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isMode = (v: unknown): v is number => isCount(v) && (v as number) <= 0o7777;
const isTime = (v: unknown): v is number => isCount(v) && (v as number) <= 8.64e15;

/** Validate a HELLO payload. */
export function parseHello(msg: Record<string, unknown>): Hello {
  const version = field(msg, "version", isCount, "a protocol version");
  const agent = msg.agent === undefined ? undefined : field(msg, "agent", isString, "a string");
  const token = msg.token === undefined ? undefined : field(msg, "token", isString, "a string");
  const hello: Hello = {
    version,
    agent: agent?.slice(0, 100),
    token: token?.slice(0, MAX_TOKEN_CHARS),
  };
  // Names this build does not know are someone else's future: ignored, not refused.
  const list = (name: string) => {
    const value = msg[name];
    if (value === undefined) return undefined;
    if (!Array.isArray(value)) throw protocolError(`field '${name}' must be a list`);
    return value.slice(0, 16);
  };
  const checksums = list("checksums");
  if (checksums) hello.checksums = checksums.filter(isAlgorithm);
  const compress = list("compress");
  if (compress) hello.compress = compress.filter(isCompression);
  return hello;
}

const isCompression = (v: unknown): v is Compression => v === "zstd";

/** Validate a WELCOME payload. */
export function parseWelcome(msg: Record<string, unknown>): Welcome {
  const version = field(msg, "version", isCount, "a protocol version");
  const agent = field(msg, "agent", isString, "a string");
  const features = Array.isArray(msg.features)
    ? msg.features.filter(isString).slice(0, 64).map((f) => f.slice(0, 64))
    : [];
  const limits = msg.limits as Record<string, unknown> | undefined;
  if (typeof limits !== "object" || limits === null) throw protocolError("WELCOME lacks limits");
  const sane = (v: unknown): v is number => isCount(v) && v >= 1024 && v <= 1024 * 1024;
  const checksum = field(msg, "checksum", isAlgorithm, "a checksum this client knows");
  const compress = msg.compress === undefined
    ? undefined
    : field(msg, "compress", isCompression, "a compression this client knows");
  return {
    version,
    agent,
    checksum,
    ...(compress && { compress }),
    limits: {
      maxControl: field(limits, "maxControl", sane, "a size from 1 KiB to 1 MiB"),
      maxData: field(limits, "maxData", sane, "a size from 1 KiB to 1 MiB"),
    },
    features,
  };
}

/**
 * Validate a REQUEST payload. Paths are checked for type and length here;
 * what they may name is the storage's decision (see `path_jail.ts`).
 *
 * @example
 * ```ts
 * import { parseRequest } from "./commands.ts";
 * const req = parseRequest({ op: "get", path: "a.txt" });
 * console.assert(req.op === "get");
 * ```
 */
export function parseRequest(msg: Record<string, unknown>): Request {
  const op = msg.op;
  const path = (name = "path") => {
    const value = field(msg, name, isString, "a string");
    if (utf8Length(value) > MAX_PATH_BYTES) {
      throw new FerryError("PATH_REFUSED", `path refused: longer than ${MAX_PATH_BYTES} bytes`);
    }
    return value;
  };
  const flag = (name: string) =>
    msg[name] === undefined ? false : field(msg, name, isBool, "a boolean");
  const optional = (name: string, check: (v: unknown) => v is number, what: string) =>
    msg[name] === undefined ? undefined : field(msg, name, check, what);
  switch (op) {
    case "ls":
      return { op, path: msg.path === undefined ? "" : path(), recursive: flag("recursive") };
    case "glob":
      return { op, pattern: path("pattern") };
    case "stat":
      return { op, path: path() };
    case "sum":
      return msg.algorithm === undefined
        ? { op, path: path() }
        : { op, path: path(), algorithm: field(msg, "algorithm", isAlgorithm, "a checksum") };
    case "get":
      return {
        op,
        path: path(),
        fresh: flag("fresh"),
        retries: flag("retries"),
        ...resumePoint(msg),
      };
    case "put": {
      const size = optional("size", isCount, "a byte count");
      const point = resumePoint(msg);
      const resume = flag("resume");
      if (size === undefined && (resume || point.offset > 0)) {
        throw protocolError("an upload of unknown size cannot resume");
      }
      if (point.offset > (size ?? 0)) {
        throw protocolError(`offset ${point.offset} is beyond the size`);
      }
      if (point.offset > 0 && !resume) throw protocolError("an offset needs resume");
      return {
        op,
        path: path(),
        size,
        mode: optional("mode", isMode, "permission bits"),
        mtime: optional("mtime", isTime, "a time"),
        noClobber: flag("noClobber"),
        resume,
        ...point,
      };
    }
    case "partial":
      return {
        op,
        path: path(),
        size: field(msg, "size", isCount, "a byte count"),
        mtime: optional("mtime", isTime, "a time"),
      };
    case "mkdir":
      return { op, path: path(), parents: flag("parents") };
    case "rm":
      return { op, path: path(), recursive: flag("recursive") };
    case "mv":
      return { op, from: path("from"), to: path("to") };
    case "tree":
      return { op, path: path() };
    case "puttree":
      return { op, path: path(), noClobber: flag("noClobber") };
    case "setstat":
      return {
        op,
        path: path(),
        mode: optional("mode", isMode, "permission bits"),
        mtime: optional("mtime", isTime, "a time"),
      };
    case "close":
      return { op };
    default:
      throw new FerryError(
        "USAGE",
        `unknown command${typeof op === "string" ? ` ${escapeName(op.slice(0, 40))}` : ""}`,
      );
  }
}

const isPrefix = (v: unknown): v is string => isString(v) && PREFIX_HEX.test(v);

/** The resume point of a get or put: no offset is offset 0; a positive one needs its hash. */
function resumePoint(msg: Record<string, unknown>): ResumePoint {
  const offset = msg.offset === undefined ? 0 : field(msg, "offset", isCount, "a byte count");
  if (offset === 0) return { offset };
  return {
    offset,
    prefix: field(msg, "prefix", isPrefix, "the checksum of the first offset bytes"),
  };
}

/** Validate one directory entry from a listing or a stat reply. */
export function parseEntry(value: unknown): Entry {
  if (typeof value !== "object" || value === null) throw protocolError("bad entry");
  const rec = value as Record<string, unknown>;
  const type = field(rec, "type", isString, "an entry type");
  if (!ENTRY_TYPES.includes(type)) throw protocolError(`bad entry type ${type.slice(0, 20)}`);
  return {
    name: field(rec, "name", isString, "a name"),
    type: type as EntryType,
    size: field(rec, "size", isCount, "a size"),
    mtime: field(rec, "mtime", isCount, "a time"),
    mode: field(rec, "mode", isMode, "permission bits"),
  };
}

/** Validate one page of an `ls` or `glob` reply. */
export function parseLsReply(msg: Record<string, unknown>): LsReply {
  const raw = msg.entries;
  if (!Array.isArray(raw)) throw protocolError("listing reply lacks entries");
  const reserved = msg.reserved === undefined ? [] : msg.reserved;
  if (!Array.isArray(reserved) || !reserved.every(isString)) {
    throw protocolError("field 'reserved' must be a list of names");
  }
  if (raw.length + reserved.length > MAX_PAGE_ENTRIES) {
    throw protocolError(`listing page of ${raw.length} entries (at most ${MAX_PAGE_ENTRIES})`);
  }
  const page: LsReply = {
    entries: raw.map(parseEntry),
    more: field(msg, "more", isBool, "a boolean"),
  };
  if (reserved.length > 0) page.reserved = reserved;
  return page;
}

/** Validate the REPLY that opens a download. */
export function parseGetReply(msg: Record<string, unknown>): GetReply {
  return {
    size: field(msg, "size", isCount, "a size"),
    mtime: field(msg, "mtime", isCount, "a time"),
    mode: field(msg, "mode", isMode, "permission bits"),
    offset: msg.offset === undefined ? 0 : field(msg, "offset", isCount, "a byte count"),
  };
}

/** Validate the REPLY to `partial`: an offset within the upload's `size`. */
export function parsePartialReply(msg: Record<string, unknown>, size: number): number {
  const offset = field(msg, "offset", isCount, "a byte count");
  if (offset > size) throw protocolError(`resume offset ${offset} is beyond the size ${size}`);
  return offset;
}

/** Validate a `sum` reply in `algorithm`. */
export function parseSumReply(msg: Record<string, unknown>, algorithm: Algorithm): SumReply {
  return {
    digest: parseEnd(msg, algorithm).digest,
    size: field(msg, "size", isCount, "a size"),
  };
}

/**
 * Validate an END trailer, whose checksum must be in `algorithm` (the
 * connection's).
 *
 * @example
 * ```ts
 * import { parseEnd } from "./commands.ts";
 * const end = parseEnd({ sha256: "ab".repeat(32), size: 3 }, "sha256");
 * console.assert(end.digest.algorithm === "sha256" && end.size === 3);
 * ```
 */
export function parseEnd(msg: Record<string, unknown>, algorithm: Algorithm): End {
  const other = msg[algorithm] === undefined
    ? (["xxh128", "sha256"] as const).find((a) => msg[a] !== undefined)
    : undefined;
  if (other) {
    throw protocolError(`the trailer is in ${other}, but this connection checks with ${algorithm}`);
  }
  const hex = field(msg, algorithm, (v): v is string => isDigestHex(algorithm, v), "a checksum");
  const digest: Digest = { algorithm, hex };
  return msg.size === undefined
    ? { digest }
    : { digest, size: field(msg, "size", isCount, "a byte count") };
}

/**
 * Turn an ERROR payload into the error it describes; unknown codes become
 * PROTOCOL. The message comes from the peer: it is bounded and escaped here,
 * once, so that no log line or terminal ever sees its control characters.
 */
export function errorFromMessage(msg: Record<string, unknown>): FerryError {
  const code = isErrorCode(msg.code) ? msg.code : "PROTOCOL";
  const message = typeof msg.message === "string"
    ? escapeControls(msg.message.slice(0, 500))
    : "remote error";
  return new FerryError(code, message, { remote: true });
}

/** The ERROR payload for `err`. */
export function errorToMessage(err: FerryError): ErrorMessage {
  return { code: err.code, message: err.message };
}
