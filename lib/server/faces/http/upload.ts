/**
 * Uploads over HTTP: `PUT` streams the body into an upload that appears
 * whole only once complete (the service's, as for the protocol), and a cut
 * upload of a known size is kept for a later `PUT` with `Content-Range` to
 * continue; `?partial` says how much is kept.
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import { Buffer } from "node:buffer";
import { FerryError } from "../../../util/errors.ts";
import type { FerryService, IncomingFile, Principal } from "../../service.ts";
import { collectBeforeLarge, COMMON_HEADERS, done, LARGE_BODY } from "./respond.ts";
import { type RequestTarget, urlOf } from "./request_path.ts";

/**
 * A resume must send again at least this many bytes before the kept ones
 * (fewer when fewer are kept): they are compared with what the server holds,
 * which is what tells the rest belongs to the same file.
 */
export const MIN_OVERLAP = 4096;

/** ...and at most this many: they are held in memory while compared. */
export const MAX_OVERLAP = 8 * 1024 * 1024;

/**
 * Bytes held for comparison by all resumes at once: a resume past it waits
 * its turn (503, `Retry-After`), so that many connections each holding an
 * unfinished overlap cannot take the server's memory.
 */
export const OVERLAP_BUDGET = 64 * 1024 * 1024;
let overlapHeld = 0;

/** `sha-256=:BASE64:` from `Content-Digest` or `Repr-Digest`, as hex; undefined without one. */
function claimedSha256(req: IncomingMessage, ranged: boolean): string | undefined {
  // A ranged body is part of the file: only Repr-Digest speaks of the whole file then.
  for (const name of ranged ? ["repr-digest"] : ["content-digest", "repr-digest"]) {
    const header = req.headers[name];
    if (typeof header !== "string") continue;
    const m = /(?:^|,)\s*sha-256=:([A-Za-z0-9+/=]+):/.exec(header);
    if (!m) throw new FerryError("USAGE", `${name} names no sha-256 digest ferryd can check`);
    const bytes = Buffer.from(m[1], "base64");
    if (bytes.length !== 32) throw new FerryError("USAGE", `${name}: a sha-256 digest is 32 bytes`);
    return bytes.toString("hex");
  }
  if (ranged && req.headers["content-digest"] !== undefined) {
    throw new FerryError(
      "USAGE",
      "Content-Digest of a ranged PUT covers only the part: send Repr-Digest for the whole file",
    );
  }
  return undefined;
}

/** Where a ranged PUT's body goes: bytes `start` to the end of a file of `size`. */
export interface PutRange {
  start: number;
  size: number;
}

/**
 * `Content-Range: bytes S-E/N` of a PUT, which must run to the file's end
 * (E = N - 1) and agree with `Content-Length`; undefined without one.
 *
 * @example
 * ```ts
 * import { putRange } from "./upload.ts";
 * console.assert(putRange("bytes 10-99/100", "90")?.start === 10);
 * ```
 */
export function putRange(header: string | undefined, length: string | undefined) {
  if (header === undefined) return undefined;
  const m = /^bytes (\d{1,15})-(\d{1,15})\/(\d{1,15})$/.exec(header.trim());
  if (!m) throw new FerryError("USAGE", `Content-Range: not bytes START-END/SIZE: ${header}`);
  const [start, end, size] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (end !== size - 1 || start > end) {
    throw new FerryError(
      "USAGE",
      `Content-Range: ${header}: a PUT sends the file from a byte to its end (${size - 1})`,
    );
  }
  if (length !== undefined && Number(length) !== end - start + 1) {
    throw new FerryError(
      "USAGE",
      `Content-Range: ${header} is ${end - start + 1} bytes; Content-Length says ${length}`,
    );
  }
  return { start, size } satisfies PutRange;
}

/**
 * The file's modification time from `X-OC-Mtime` (seconds since the epoch,
 * as rclone and Nextcloud send it), in ms; undefined without one.
 */
function mtimeOf(req: IncomingMessage): number | undefined {
  const header = req.headers["x-oc-mtime"];
  if (typeof header !== "string") return undefined;
  // Decimal seconds, up to the year 2286: what a file system keeps as given.
  if (!/^\s*\d{1,10}(\.\d{1,9})?\s*$/.test(header)) {
    throw new FerryError("USAGE", `X-OC-Mtime: not seconds since 1970: ${header}`);
  }
  return Math.round(Number(header) * 1000);
}

/**
 * `GET /PATH?partial&size=N`: how many bytes of an interrupted upload of a
 * file of N bytes (and the `X-OC-Mtime` given, if any) the server keeps, as
 * `{"offset": K}` and in `Upload-Offset`.
 */
export async function partial(
  service: FerryService,
  who: Principal,
  target: RequestTarget,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const given = target.query.get("size") ?? "";
  if (!/^\d{1,15}$/.test(given)) {
    throw new FerryError("USAGE", "?partial needs &size=BYTES, the whole file's size");
  }
  const size = Number(given);
  const offset = await service.partialSize(who, target.path, { size, mtime: mtimeOf(req) });
  const body = JSON.stringify({ offset });
  res.writeHead(200, {
    ...COMMON_HEADERS,
    "content-type": "application/json",
    "content-length": String(body.length),
    "cache-control": "no-store",
    "upload-offset": String(offset),
  });
  res.end(req.method === "HEAD" ? undefined : body);
}

/**
 * Store the body at the path: streamed into an upload that appears whole
 * only once complete, checked against `Content-Digest` when given (a
 * mismatch keeps nothing: 422); `If-None-Match: *` never replaces. A body of
 * known size that is cut is kept; `Content-Range: bytes S-(N-1)/N` continues
 * it, S at or before the kept bytes' end, and the bytes sent again are
 * compared with the kept ones (see {@linkcode MIN_OVERLAP}).
 */
export async function put(
  service: FerryService,
  who: Principal,
  target: RequestTarget,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  if (target.slash || target.path === "") {
    throw new FerryError("NOT_A_FILE", "PUT names a file, not a directory");
  }
  const length = req.headers["content-length"];
  const range = putRange(req.headers["content-range"], length);
  const claimed = claimedSha256(req, range !== undefined);
  const mtime = mtimeOf(req);
  const size = range ? range.size : length === undefined ? undefined : Number(length);
  const body = req[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
  let offset = 0;
  let overlap: Uint8Array | undefined;
  let rest: Uint8Array | undefined;
  let reserved = 0;
  let file: IncomingFile;
  try {
    if (range && range.start > 0) {
      const kept = await service.partialSize(who, target.path, { size: range.size, mtime });
      const again = kept - range.start;
      if (again < 0 || again < Math.min(kept, MIN_OVERLAP) || again > MAX_OVERLAP) {
        throw new FerryError(
          "RESUME_MISMATCH",
          `cannot resume ${target.path} at byte ${range.start}: the server keeps ${kept} bytes ` +
            `of it; send from byte ${Math.max(0, kept - MIN_OVERLAP)} (the last bytes it keeps ` +
            `again, at most ${MAX_OVERLAP})`,
        );
      }
      if (overlapHeld + again > OVERLAP_BUDGET) {
        throw new FerryError("BUSY", "too many resumed uploads at once: try again");
      }
      overlapHeld += reserved = again;
      offset = kept;
      ({ head: overlap, rest } = await readHead(body, again));
      if (overlap.length < again) {
        throw req.complete
          ? new FerryError("USAGE", `the body ends before byte ${kept}, where the kept bytes end`)
          : new FerryError("CONNECT", "the request body was cut short");
      }
    }
    file = await service.upload(who, {
      path: target.path,
      size,
      mtime,
      noClobber: req.headers["if-none-match"] === "*",
      // A cut body of known size is kept, to be continued; one without a size could not be.
      resume: size !== undefined,
      offset,
      overlap,
      algorithm: "sha256",
    });
  } finally {
    // Compared by now, or refused: the overlap is not needed any more.
    overlapHeld -= reserved;
    overlap = undefined;
  }
  let received = offset;
  try {
    if (size !== undefined && size - offset >= LARGE_BODY) collectBeforeLarge();
    for (let chunk = rest;; chunk = undefined) {
      if (!chunk) {
        const next = await nextOf(body);
        if (next.done) break;
        chunk = next.value;
      }
      if (size === undefined && received < LARGE_BODY) {
        if (received + chunk.length >= LARGE_BODY) collectBeforeLarge();
      }
      received += chunk.length;
      const writing = file.write(chunk);
      if (writing) await writing;
    }
    if (!req.complete) throw new FerryError("CONNECT", "the request body was cut short");
    const digest = await file.end({
      size: size ?? received,
      ...(claimed !== undefined && { digest: { algorithm: "sha256", hex: claimed } }),
    });
    const b64 = Buffer.from(digest.hex, "hex").toString("base64");
    // The stored file's digest: the whole of it, whatever part this request sent.
    done(res, 201, {
      "content-digest": `sha-256=:${b64}:`,
      "repr-digest": `sha-256=:${b64}:`,
      location: urlOf(target.path),
      ...(mtime !== undefined && { "x-oc-mtime": "accepted" }),
    });
  } catch (err) {
    await file.failed(err);
    // As a for-await would: the rest of the body is not wanted.
    await body.return?.().catch(() => {});
    throw err;
  }
}

/** The first `bytes` of the body, copied out, and what came after them in the last chunk. */
async function readHead(
  body: AsyncIterator<Uint8Array>,
  bytes: number,
): Promise<{ head: Uint8Array; rest: Uint8Array | undefined }> {
  const head = new Uint8Array(bytes);
  let got = 0;
  while (got < bytes) {
    const next = await nextOf(body);
    if (next.done) return { head: head.subarray(0, got), rest: undefined };
    const take = Math.min(bytes - got, next.value.length);
    head.set(next.value.subarray(0, take), got);
    got += take;
    // Read buffers may be reused once handed back: the rest is copied too.
    if (take < next.value.length) return { head, rest: next.value.slice(take) };
  }
  return { head, rest: undefined };
}

/**
 * The body's next chunk. A client that goes away mid-body fails the read
 * (node:http's "aborted"): that is a lost connection, which keeps the upload
 * to be continued, not a fault of the file.
 */
async function nextOf(body: AsyncIterator<Uint8Array>): Promise<IteratorResult<Uint8Array>> {
  try {
    return await body.next();
  } catch (err) {
    throw new FerryError("CONNECT", `the request body was cut short (${(err as Error).message})`);
  }
}
