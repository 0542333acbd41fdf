/**
 * Error classes shared by server, client and library users.
 *
 * Every expected failure is a {@linkcode FerryError} with a stable `code`. The
 * code travels over the wire in error replies, and the CLI maps it to an exit
 * status and a one-line message in {@linkcode exitCodeFor}.
 *
 * @module
 */

/**
 * Stable error codes. They appear on the wire and in `--json` output.
 *
 * @example
 * ```ts
 * import { type ErrorCode, FerryError } from "./errors.ts";
 * const retriable: ErrorCode[] = ["CONNECT", "TIMEOUT", "BUSY"];
 * console.assert(retriable.includes(new FerryError("BUSY", "try later").code));
 * ```
 */
export type ErrorCode =
  | "USAGE"
  | "CONNECT"
  | "PROTOCOL"
  | "TIMEOUT"
  | "BUSY"
  | "TLS"
  | "AUTH"
  | "NOT_FOUND"
  | "EXISTS"
  | "NOT_A_FILE"
  | "NOT_A_DIRECTORY"
  | "PATH_REFUSED"
  | "PERMISSION"
  | "INTEGRITY"
  | "RESUME_MISMATCH"
  | "IO"
  | "NO_SPACE"
  | "LIMIT"
  | "CANCELLED"
  | "PARTIAL";

/**
 * Exit status of the CLI for each error code. The table is documented in the
 * README; change both together.
 *
 * @example
 * ```ts
 * import { EXIT_CODES } from "./errors.ts";
 * console.assert(EXIT_CODES.NOT_FOUND === 5 && EXIT_CODES.PARTIAL === 10);
 * ```
 */
export const EXIT_CODES: Readonly<Record<ErrorCode, number>> = {
  USAGE: 2,
  CONNECT: 3,
  PROTOCOL: 4,
  TIMEOUT: 3,
  BUSY: 3,
  TLS: 3,
  AUTH: 7,
  NOT_FOUND: 5,
  EXISTS: 6,
  NOT_A_FILE: 6,
  NOT_A_DIRECTORY: 6,
  PATH_REFUSED: 7,
  PERMISSION: 7,
  INTEGRITY: 8,
  RESUME_MISMATCH: 8,
  IO: 9,
  NO_SPACE: 9,
  LIMIT: 9,
  CANCELLED: 9,
  PARTIAL: 10,
};

/**
 * An expected failure with a stable code.
 *
 * @example
 * ```ts
 * import { FerryError } from "./errors.ts";
 * const err = new FerryError("NOT_FOUND", "no such file: a.txt");
 * console.assert(err.code === "NOT_FOUND");
 * ```
 */
export class FerryError extends Error {
  /** Stable machine-readable code. */
  readonly code: ErrorCode;
  /** Set when the peer reported it (a client's copy of the server's error). */
  readonly remote: boolean;

  /** Create an error with a code and a one-line message (`remote`: the peer's). */
  constructor(
    code: ErrorCode,
    message: string,
    options?: ErrorOptions & { remote?: boolean },
  ) {
    super(message, options);
    this.name = "FerryError";
    this.code = code;
    this.remote = options?.remote ?? false;
  }
}

/** The codes of failures on a filesystem, whose side a message must name. */
const SIDED: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  "NOT_FOUND",
  "EXISTS",
  "NOT_A_FILE",
  "NOT_A_DIRECTORY",
  "PERMISSION",
  "IO",
  "NO_SPACE",
]);

/**
 * INTEGRITY for a source that changed while it was sent (`what` names it,
 * escaped): the receiver keeps nothing, and the next run sends the new
 * version. The one wording every sender uses.
 *
 * @example
 * ```ts
 * import { changedWhileSent } from "./errors.ts";
 * console.assert(changedWhileSent("a.txt").code === "INTEGRITY");
 * ```
 */
export function changedWhileSent(what: string): FerryError {
  return new FerryError(
    "INTEGRITY",
    `${what} changed while being sent; nothing was kept (send it again for the new version)`,
  );
}

/**
 * How the CLI shows an error: its message, and for a filesystem failure the
 * peer reported, which side it happened on (`… (on the server)`); the
 * client's own name the local side themselves.
 *
 * @example
 * ```ts
 * import { describeError, FerryError } from "./errors.ts";
 * const err = new FerryError("NO_SPACE", "cannot write a: no space", { remote: true });
 * console.assert(describeError(err) === "cannot write a: no space (on the server)");
 * ```
 */
export function describeError(err: FerryError): string {
  if (
    !err.remote || !SIDED.has(err.code) || /^refused: /.test(err.message) ||
    / on the server\b/.test(err.message)
  ) return err.message;
  return `${err.message} (on the server)`;
}

/** Whether `code` is one of the known {@linkcode ErrorCode}s. */
export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === "string" && Object.hasOwn(EXIT_CODES, code);
}

/** node:fs errno names, as Deno's own error classes map them. */
const NODE_CODES: Record<string, [ErrorCode, string]> = {
  ENOENT: ["NOT_FOUND", "not found"],
  EEXIST: ["EXISTS", "already exists"],
  EACCES: ["PERMISSION", "permission denied"],
  EPERM: ["PERMISSION", "permission denied"],
  EROFS: ["PERMISSION", "read-only file system"],
  EISDIR: ["NOT_A_FILE", "is a directory"],
  ENOTDIR: ["NOT_A_DIRECTORY", "not a directory"],
  ELOOP: ["PATH_REFUSED", "symlink loop"],
  ENAMETOOLONG: ["PATH_REFUSED", "name too long"],
};

/**
 * Turn any thrown value into a {@linkcode FerryError}, mapping Deno's I/O
 * errors to codes so that callers never show a raw stack trace.
 *
 * @example
 * ```ts
 * import { toFerryError } from "./errors.ts";
 * const err = toFerryError(new Deno.errors.NotFound("x"));
 * console.assert(err.code === "NOT_FOUND");
 * ```
 */
export function toFerryError(err: unknown, context?: string): FerryError {
  if (err instanceof FerryError) return err;
  const where = context ? `${context}: ` : "";
  // Deno's messages end in the syscall and the full host path ("...: realpath '/srv/x'"):
  // that path is not the peer's business, and may hold control characters.
  const detail = (err instanceof Error ? err.message : String(err))
    .replace(/ \(os error \d+\)/, "").replace(/: \w+ '.*$/s, "").replace(/, \w+ '.*$/s, "");
  const make = (code: ErrorCode, text: string) =>
    new FerryError(code, `${where}${text}`, { cause: err });
  if (err instanceof Deno.errors.NotFound) return make("NOT_FOUND", "not found");
  if (err instanceof Deno.errors.AlreadyExists) return make("EXISTS", "already exists");
  if (err instanceof Deno.errors.PermissionDenied) return make("PERMISSION", "permission denied");
  if (err instanceof Deno.errors.IsADirectory) return make("NOT_A_FILE", "is a directory");
  if (err instanceof Deno.errors.NotADirectory) return make("NOT_A_DIRECTORY", "not a directory");
  if (err instanceof Deno.errors.ConnectionRefused) {
    return make("CONNECT", "connection refused");
  }
  if (
    err instanceof Deno.errors.ConnectionReset || err instanceof Deno.errors.BrokenPipe ||
    err instanceof Deno.errors.ConnectionAborted || err instanceof Deno.errors.UnexpectedEof ||
    err instanceof Deno.errors.NotConnected || err instanceof Deno.errors.Interrupted ||
    err instanceof Deno.errors.BadResource
  ) {
    return make("CONNECT", "connection lost");
  }
  if (err instanceof Deno.errors.TimedOut) return make("TIMEOUT", "timed out");
  if (err instanceof Deno.errors.FilesystemLoop) return make("PATH_REFUSED", "symlink loop");
  const code = (err as { code?: string } | undefined)?.code;
  if (code === "ENOSPC" || code === "EDQUOT") return make("NO_SPACE", "no space left on the disk");
  // node:fs errors carry errno names, and a message that ends in the host path.
  const node = code === undefined ? undefined : NODE_CODES[code];
  if (node) return make(node[0], node[1]);
  if (err instanceof Deno.errors.AddrNotAvailable || err instanceof Deno.errors.AddrInUse) {
    return make("CONNECT", detail);
  }
  if (err instanceof Error && err.name === "AbortError") return make("CANCELLED", "cancelled");
  return make("IO", detail);
}

/**
 * Exit status for an error: the code's entry in {@linkcode EXIT_CODES}, or 1
 * for anything unexpected.
 */
export function exitCodeFor(err: unknown): number {
  return err instanceof FerryError ? EXIT_CODES[err.code] : 1;
}

/**
 * Whether a failure is the connection's, not the request's: a resumable
 * transfer keeps what it moved, and the other side keeps serving.
 *
 * @example
 * ```ts
 * import { connectionLost, FerryError } from "./errors.ts";
 * console.assert(connectionLost(new FerryError("TIMEOUT", "no progress")));
 * ```
 */
export function connectionLost(err: FerryError): boolean {
  return err.code === "CONNECT" || err.code === "TIMEOUT";
}

/**
 * Whether an error may go away by connecting again: the connection, not the
 * request, failed, or the server was busy.
 *
 * @example
 * ```ts
 * import { FerryError, isRetriable } from "./errors.ts";
 * console.assert(isRetriable(new FerryError("BUSY", "try later")));
 * ```
 */
export function isRetriable(err: FerryError): boolean {
  return connectionLost(err) || err.code === "BUSY";
}
