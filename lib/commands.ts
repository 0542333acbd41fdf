/**
 * The command vocabulary shared by server and client: the messages carried
 * in HELLO, WELCOME, REQUEST, REPLY, END and ERROR frames, and the
 * validation of every field that arrives from the network.
 *
 * @module
 */

import { type ErrorCode, FerryError, isErrorCode } from "./errors.ts";
import type { FrameLimits } from "./frame.ts";

/** The protocol version this build speaks. */
export const PROTOCOL_VERSION = 1;

/** Largest path the protocol accepts, in UTF-8 bytes. */
export const MAX_PATH_BYTES = 4096;

/** Client's first frame. */
export interface Hello {
  /** Protocol version the client speaks. */
  version: number;
  /** Free-form client name and version, for server logs. */
  agent?: string;
}

/** Server's answer to HELLO. */
export interface Welcome {
  /** Protocol version the server speaks. */
  version: number;
  /** Server name and version. */
  agent: string;
  /** Frame limits the server enforces. */
  limits: FrameLimits;
}

/** List a directory (or describe one file). Replies are pages of entries. */
export interface LsRequest {
  op: "ls";
  path: string;
}

/** Download a file: REPLY with its metadata, then DATA frames, then END. */
export interface GetRequest {
  op: "get";
  path: string;
}

/** Upload a file: DATA frames and END follow at once; REPLY after it is stored. */
export interface PutRequest {
  op: "put";
  path: string;
  /** Exact size of the content that follows. */
  size: number;
}

/** Ask the server to end the session after replying. */
export interface CloseRequest {
  op: "close";
}

/** Every request a client may send. */
export type Request = LsRequest | GetRequest | PutRequest | CloseRequest;

/** The operations, in the order `help` lists them. */
export const OPS = ["ls", "get", "put", "close"] as const;

/** What kind of thing a directory entry is. */
export type EntryType = "file" | "dir" | "symlink" | "other";

/** One directory entry, as listed by `ls`. */
export interface Entry {
  name: string;
  type: EntryType;
  size: number;
  /** Modification time, milliseconds since the epoch (0 when unknown). */
  mtime: number;
}

/** One page of an `ls` reply; `more` says another page follows. */
export interface LsReply {
  entries: Entry[];
  more: boolean;
}

/** The REPLY that opens a download. */
export interface GetReply {
  size: number;
  mtime: number;
}

/** Trailer of a file's content. */
export interface End {
  /** Lowercase hex SHA-256 of the whole content. */
  sha256: string;
}

/** Payload of an ERROR frame. */
export interface ErrorMessage {
  code: ErrorCode;
  message: string;
}

const SHA256_HEX = /^[0-9a-f]{64}$/;
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
export const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isPath = (v: unknown): v is string =>
  typeof v === "string" && new TextEncoder().encode(v).length <= MAX_PATH_BYTES;

/** Validate a HELLO payload. */
export function parseHello(msg: Record<string, unknown>): Hello {
  const version = field(msg, "version", isCount, "a protocol version");
  const agent = msg.agent === undefined ? undefined : field(msg, "agent", isString, "a string");
  return { version, agent: agent?.slice(0, 100) };
}

/** Validate a WELCOME payload. */
export function parseWelcome(msg: Record<string, unknown>): Welcome {
  const version = field(msg, "version", isCount, "a protocol version");
  const agent = field(msg, "agent", isString, "a string");
  const limits = msg.limits as Record<string, unknown> | undefined;
  if (typeof limits !== "object" || limits === null) throw protocolError("WELCOME lacks limits");
  return {
    version,
    agent,
    limits: {
      maxControl: field(limits, "maxControl", isCount, "a count"),
      maxData: field(limits, "maxData", isCount, "a count"),
    },
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
  const path = () => field(msg, "path", isPath, `a string of at most ${MAX_PATH_BYTES} bytes`);
  switch (op) {
    case "ls":
      return { op, path: msg.path === undefined ? "" : path() };
    case "get":
      return { op, path: path() };
    case "put":
      return { op, path: path(), size: field(msg, "size", isCount, "a byte count") };
    case "close":
      return { op };
    default:
      throw new FerryError(
        "USAGE",
        `unknown command ${typeof op === "string" ? JSON.stringify(op.slice(0, 40)) : ""}`.trim(),
      );
  }
}

/** Validate one page of an `ls` reply. */
export function parseLsReply(msg: Record<string, unknown>): LsReply {
  const raw = msg.entries;
  if (!Array.isArray(raw)) throw protocolError("ls reply lacks entries");
  const entries = raw.map((e: unknown): Entry => {
    if (typeof e !== "object" || e === null) throw protocolError("bad ls entry");
    const rec = e as Record<string, unknown>;
    const type = field(rec, "type", isString, "an entry type");
    if (!ENTRY_TYPES.includes(type)) throw protocolError(`bad entry type ${type}`);
    return {
      name: field(rec, "name", isString, "a name"),
      type: type as EntryType,
      size: field(rec, "size", isCount, "a size"),
      mtime: field(rec, "mtime", isCount, "a time"),
    };
  });
  return { entries, more: field(msg, "more", isBool, "a boolean") };
}

/** Validate the REPLY that opens a download. */
export function parseGetReply(msg: Record<string, unknown>): GetReply {
  return {
    size: field(msg, "size", isCount, "a size"),
    mtime: field(msg, "mtime", isCount, "a time"),
  };
}

/** Validate an END trailer. */
export function parseEnd(msg: Record<string, unknown>): End {
  return {
    sha256: field(msg, "sha256", (v): v is string => isString(v) && SHA256_HEX.test(v), "a hash"),
  };
}

/** Turn an ERROR payload into the error it describes; unknown codes become PROTOCOL. */
export function errorFromMessage(msg: Record<string, unknown>): FerryError {
  const code = isErrorCode(msg.code) ? msg.code : "PROTOCOL";
  const message = typeof msg.message === "string" ? msg.message.slice(0, 500) : "remote error";
  return new FerryError(code, message);
}

/** The ERROR payload for `err`. */
export function errorToMessage(err: FerryError): ErrorMessage {
  return { code: err.code, message: err.message };
}
