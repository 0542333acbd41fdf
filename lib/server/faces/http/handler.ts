/**
 * HTTP requests as the service's operations: GET and HEAD of files (ranges,
 * conditional requests) and of directories (HTML or JSON), PUT, DELETE,
 * MKCOL and MOVE. Every one goes through the same service as the ferry
 * protocol: the jail, the token's scope, `--read-only`, the quota, the
 * checksum cache and the audit log are the service's, not repeated here.
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import { Buffer } from "node:buffer";
import { hasher } from "../../../checksum/checksum.ts";
import type { Entry } from "../../../commands.ts";
import { FerryError, toFerryError } from "../../../util/errors.ts";
import type { FerryService, OutgoingFile, Principal } from "../../service.ts";
import {
  collectBeforeLarge,
  COMMON_HEADERS,
  contentDisposition,
  done,
  LARGE_BODY,
} from "./respond.ts";
import { partial, put } from "./upload.ts";
import { ARCHIVE_FORMATS, sendArchive } from "./archive.ts";
import { listingPage, signInPage } from "./listing.ts";
import { UI_CSS, UI_JS, UI_PREFIX } from "./ui_assets.ts";
import { contentType, parseTarget, type RequestTarget, urlOf } from "./request_path.ts";

/** Bytes read from a file per write to the socket: a tar's files, a small file whole. */
const CHUNK = 256 * 1024;

/**
 * Bytes read from a large file per write to the socket: each write costs
 * the same whatever its size (node:http's stream machinery, a read through
 * the thread pool), so a large file goes in larger pieces.
 */
const LARGE_CHUNK = 1024 * 1024;

/** HTTP statuses for ferry's error codes. */
const STATUS: Record<string, number> = {
  USAGE: 400,
  PROTOCOL: 400,
  PATH_REFUSED: 403,
  AUTH: 401,
  PERMISSION: 403,
  NOT_FOUND: 404,
  EXISTS: 412,
  NOT_A_FILE: 409,
  NOT_A_DIRECTORY: 409,
  INTEGRITY: 422,
  LIMIT: 413,
  NO_SPACE: 507,
  RESUME_MISMATCH: 416,
  // Another upload of the same file took its kept part over.
  CANCELLED: 409,
  BUSY: 503,
  TIMEOUT: 408,
  IO: 500,
};

/**
 * A file is served from the UI's origin only in a sandbox: an uploaded
 * `.html` or `.svg` opened there cannot run script against it.
 */
const FILE_CSP =
  "sandbox; default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'";

/** A page of the UI: its own script and style, requests to itself only. */
const PAGE_CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
  "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/** The cookie a browser signed in with keeps the token in. */
const COOKIE = "ferry_token";

/**
 * The token a request carries: `Authorization: Bearer T`, Basic with T as
 * the password, or the sign-in cookie (`fromCookie` then).
 */
function tokenOf(req: IncomingMessage): { token?: string; fromCookie: boolean } {
  const header = req.headers.authorization;
  if (header) {
    const [scheme, value = ""] = header.trim().split(/\s+/, 2);
    if (/^bearer$/i.test(scheme)) return { token: value, fromCookie: false };
    if (/^basic$/i.test(scheme)) {
      const decoded = Buffer.from(value, "base64").toString("utf8");
      return { token: decoded.slice(decoded.indexOf(":") + 1), fromCookie: false };
    }
  }
  const cookie = /(?:^|;\s*)ferry_token=([^;]*)/.exec(req.headers.cookie ?? "")?.[1];
  if (cookie === undefined) return { fromCookie: false };
  try {
    return { token: decodeURIComponent(cookie), fromCookie: true };
  } catch {
    // Not one ferryd set: as good as none.
    return { fromCookie: false };
  }
}

/**
 * Whether a browser sent the request from another origin's page (its
 * `Origin` names another host than the one it asked): such a page may send
 * a form or a credentialed request, so it may change nothing (CSRF), whatever
 * credentials the browser added (a cookie, cached Basic ones, or none).
 */
function crossOrigin(req: IncomingMessage): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return false;
  try {
    return new URL(origin).host !== req.headers.host;
  } catch {
    return true; // "null" (a sandboxed or file page): not this server's own.
  }
}

/** Whether `host` (a Host header) is an IP address or localhost, with or without a port. */
function plainHost(host: string | undefined): boolean {
  if (host === undefined) return true; // HTTP/1.0: nothing a rebinding page can forge.
  // A client sends the same Host with every request: the last answer is remembered.
  if (host === lastHost.host) return lastHost.plain;
  const name = host.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1").toLowerCase();
  const plain = name === "localhost" || /^[\d.]+$/.test(name) || name.includes(":");
  lastHost = { host, plain };
  return plain;
}

let lastHost = { host: "", plain: false };

/**
 * A modification time (ms) as an HTTP date, to the second. Formatting a
 * date costs more than a small file's read: the last one is remembered.
 */
function httpDate(mtime: number): string {
  const second = Math.floor(mtime / 1000);
  if (second !== lastDate.second) {
    lastDate = { second, text: new Date(second * 1000).toUTCString() };
  }
  return lastDate.text;
}

let lastDate = { second: NaN, text: "" };

/** Whether the request comes from a browser that wants a page (not from curl or a script). */
function wantsPage(req: IncomingMessage): boolean {
  return (req.method === "GET" || req.method === "HEAD") &&
    /text\/html/.test(req.headers.accept ?? "");
}

/** Methods that change something: with the cookie, only from the UI's own script (CSRF). */
const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);

/** Send an error as its status, with the message as text (or JSON when asked for). */
function fail(req: IncomingMessage, res: ServerResponse, err: FerryError): void {
  if (res.headersSent) {
    // Part of a body is on its way: cutting the connection is the only way to say it failed.
    res.destroy();
    return;
  }
  // EXISTS is a failed precondition only where the request set one (If-None-Match).
  const status = err.code === "EXISTS" && req.headers["if-none-match"] === undefined
    ? 409
    : STATUS[err.code] ?? 500;
  const json = /application\/json/.test(req.headers.accept ?? "");
  const body = json
    ? JSON.stringify({ error: { code: err.code, message: err.message } })
    : `${err.message}\n`;
  const headers: Record<string, string> = {
    ...COMMON_HEADERS,
    "content-type": json ? "application/json" : "text/plain; charset=utf-8",
  };
  if (err.code === "AUTH") {
    headers["www-authenticate"] = 'Bearer realm="ferry", Basic realm="ferry"';
  }
  // A body left half read cannot be told from the next request: answer, then close, draining
  // what still comes for a moment so that no reset overtakes the answer (see lingerClose).
  const unread = !req.complete;
  if (unread) headers.connection = "close";
  res.writeHead(status, headers);
  res.end(req.method === "HEAD" ? undefined : body);
  if (unread) {
    const socket = req.socket as typeof req.socket & { lingerClose?(): void };
    res.once("finish", () => socket.lingerClose ? socket.lingerClose() : socket.destroy());
  }
}

/** Handle one request; never rejects (a failure is answered, or the connection cut). */
export async function handleRequest(
  service: FerryService,
  req: IncomingMessage,
  res: ServerResponse,
  peer: string,
  secure = false,
): Promise<void> {
  try {
    if (req.url?.startsWith(UI_PREFIX)) return await ui(service, req, res, peer, secure);
    const target = parseTarget(req.url ?? "");
    const { token, fromCookie } = tokenOf(req);
    // A cookie goes with every request a browser makes, whoever's page asked for it: a change
    // needs the header only the UI's own script sets (another origin cannot, without CORS).
    const changes = !SAFE.has(req.method ?? "");
    if (changes && (fromCookie || crossOrigin(req)) && req.headers["x-ferry-csrf"] !== "1") {
      throw new FerryError(
        "PERMISSION",
        "refused: a change from a browser needs the UI's request header",
      );
    }
    // A server without tokens trusts whoever reaches it, which a web page can, through DNS
    // rebinding: it answers only to its own names (an address, or localhost).
    if (!service.needsToken && !plainHost(req.headers.host)) {
      throw new FerryError(
        "PERMISSION",
        "refused: this server answers only to an address or localhost without tokens",
      );
    }
    let who: Principal;
    try {
      who = await service.authenticate(peer, token);
    } catch (err) {
      if (!wantsPage(req)) throw err;
      return page(res, 401, signInPage(req.url ?? "/", token !== undefined));
    }
    switch (req.method) {
      case "GET":
      case "HEAD":
        return await getOrHead(service, who, target, req, res);
      case "PUT":
        return await put(service, who, target, req, res);
      case "DELETE":
        await service.remove(who, target.path, { recursive: target.query.has("recursive") });
        return done(res, 204);
      case "MKCOL":
        await service.mkdir(who, target.path, { parents: false });
        return done(res, 201);
      case "MOVE":
        return await move(service, who, target, destinationOf(req), res);
      case "POST":
        if (target.query.has("mkdir")) {
          await service.mkdir(who, target.path, { parents: false });
          return done(res, 201);
        }
        if (target.query.has("move")) {
          return await move(service, who, target, target.query.get("move") ?? "", res);
        }
        throw new FerryError("USAGE", "POST takes ?mkdir or ?move=DEST");
      case "OPTIONS":
        res.writeHead(204, { ...COMMON_HEADERS, allow: ALLOW });
        return void res.end();
      default:
        res.writeHead(405, { ...COMMON_HEADERS, allow: ALLOW });
        return void res.end();
    }
  } catch (err) {
    fail(req, res, toFerryError(err));
  }
}

const ALLOW = "GET, HEAD, PUT, DELETE, MKCOL, MOVE, POST, OPTIONS";

/** The `Destination` of a MOVE: an absolute URL or a path. */
function destinationOf(req: IncomingMessage): string {
  const header = req.headers.destination;
  if (typeof header !== "string" || header === "") {
    throw new FerryError("USAGE", "MOVE needs a Destination header");
  }
  return /^https?:\/\//i.test(header) ? header.replace(/^https?:\/\/[^/]*/i, "") : header;
}

async function move(
  service: FerryService,
  who: Principal,
  target: RequestTarget,
  destination: string,
  res: ServerResponse,
): Promise<void> {
  const to = parseTarget(destination.startsWith("/") ? destination : `/${destination}`).path;
  const path = await service.move(who, target.path, to);
  done(res, 201, { location: urlOf(path) });
}

/** A directory as HTML or JSON; a file as its bytes, whole or a range. */
async function getOrHead(
  service: FerryService,
  who: Principal,
  target: RequestTarget,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  if (target.query.has("partial")) return await partial(service, who, target, req, res);
  // A name ending in / or asking for an archive is a directory (the log then has no failed get).
  if (target.slash || target.path === "" || ARCHIVE_FORMATS.some((f) => target.query.has(f))) {
    const entry = await service.stat(who, target.path);
    if (entry.type === "dir") return await listing(service, who, target, req, res);
  }
  // Most requests name a file: it is opened at once, and a directory found so instead.
  let file: OutgoingFile;
  try {
    file = await service.download(who, { path: target.path, offset: 0, algorithm: "xxh128" });
  } catch (err) {
    if (toFerryError(err).code !== "NOT_A_FILE") throw err;
    const entry = await service.stat(who, target.path);
    if (entry.type !== "dir") throw err;
    return await listing(service, who, target, req, res);
  }
  const size = file.size;
  // Conditions first: a client whose copy is current gets 304 whatever range it asks.
  const tag = file.known ? `"${file.known.algorithm}-${file.known.hex}"` : undefined;
  const lastModified = httpDate(file.mtime);
  if (notModified(req, tag, file.mtime)) {
    file.close();
    res.writeHead(304, {
      ...COMMON_HEADERS,
      ...(tag && { etag: tag }),
      "last-modified": lastModified,
    });
    return void res.end();
  }
  // A range of a file that changed since the client's part of it (If-Range) is the whole file.
  const ifRange = req.headers["if-range"];
  const current = ifRange === undefined || ifRange === tag || ifRange === lastModified;
  const range = current ? parseRange(req.headers.range, size) : undefined;
  if (range === "unsatisfiable") {
    file.close();
    res.writeHead(416, { ...COMMON_HEADERS, "content-range": `bytes */${size}` });
    return void res.end();
  }
  let [etag, modified] = [tag, lastModified];
  if (range && range.start > 0) {
    // The one place a read starts inside a file: see DownloadRequest.start.
    file.close();
    file = await service.download(who, {
      path: target.path,
      offset: 0,
      algorithm: "xxh128",
      start: range.start,
    });
    etag = file.known ? `"${file.known.algorithm}-${file.known.hex}"` : undefined;
    modified = httpDate(file.mtime);
  }
  let open = true;
  const close = () => {
    if (open) file.close();
    open = false;
  };
  try {
    const slash = target.path.lastIndexOf("/");
    const name = slash < 0 ? target.path : target.path.slice(slash + 1);
    // One object, in the order the headers go out (spreading them cost more than the rest).
    const headers: Record<string, string> = {
      "x-content-type-options": "nosniff",
      "content-type": contentType(name),
      "accept-ranges": "bytes",
      "last-modified": modified,
      "content-security-policy": FILE_CSP,
    };
    if (etag) headers.etag = etag;
    if (target.query.has("download")) {
      headers["content-disposition"] = contentDisposition(name);
    }
    const start = range?.start ?? 0;
    const end = range ? range.end : file.size - 1;
    const length = Math.max(0, end - start + 1);
    headers["content-length"] = String(length);
    if (range) headers["content-range"] = `bytes ${start}-${end}/${file.size}`;
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === "HEAD") return void res.end();
    const hash = !range && !file.known;
    if (length > CHUNK) {
      if (length >= LARGE_BODY) collectBeforeLarge();
      const digest = await pump(file.source, length, res, hash);
      file.sent(range ? undefined : digest, length);
      return;
    }
    // A small file is read whole (a local one synchronously) and released before a byte of it
    // goes: the body leaves with the end of the response, in one write, and is logged once out.
    const body = new Uint8Array(length);
    for (let at = 0; at < length;) {
      const n = await file.source.read(at === 0 ? body : body.subarray(at));
      if (n === null || n === 0) throw new FerryError("INTEGRITY", "the file shrank while sent");
      at += n;
    }
    let digest: { algorithm: "xxh128"; hex: string } | undefined;
    if (hash) {
      const h = hasher("xxh128");
      h.update(body);
      digest = h.digest() as { algorithm: "xxh128"; hex: string };
    }
    file.source.check?.();
    close();
    const sent = file;
    res.end(body, () => {
      try {
        sent.sent(range ? undefined : digest, length);
      } catch {
        // The answer is out whole: there is nobody left to tell.
      }
    });
  } catch (err) {
    file.failed(err);
    throw err;
  } finally {
    close();
  }
}

/**
 * Send `length` bytes of `source` to `res` (more than {@linkcode CHUNK}),
 * two buffers taking turns so that each is reused only once the socket has
 * taken it; hashed when `hash`. Returns the checksum of what was sent whole,
 * when hashed.
 */
async function pump(
  source: { read(buf: Uint8Array): Promise<number | null>; check?(): void },
  length: number,
  res: ServerResponse,
  hash: boolean,
): Promise<{ algorithm: "xxh128"; hex: string } | undefined> {
  const h = hash ? hasher("xxh128") : undefined;
  const size = Math.min(LARGE_CHUNK, length);
  const buffers = [new Uint8Array(size), new Uint8Array(size)];
  const flushed: (Promise<void> | undefined)[] = [undefined, undefined];
  let sent = 0;
  for (let i = 0; sent < length; i ^= 1) {
    await flushed[i];
    const buf = buffers[i].subarray(0, Math.min(size, length - sent));
    const n = await source.read(buf);
    if (n === null || n === 0) throw new FerryError("INTEGRITY", "the file shrank while sent");
    const chunk = buf.subarray(0, n);
    h?.update(chunk);
    flushed[i] = new Promise<void>((resolve, reject) => {
      res.write(chunk, (err) => err ? reject(err) : resolve());
    });
    flushed[i]!.catch(() => {});
    sent += n;
  }
  await Promise.all(flushed);
  source.check?.();
  await new Promise<void>((resolve) => res.end(resolve));
  return h?.digest() as { algorithm: "xxh128"; hex: string } | undefined;
}

/** A single `bytes=` range of a file of `size` bytes; undefined for none (the whole file). */
function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | "unsatisfiable" | undefined {
  if (!header) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  // Several ranges, another unit, or one that is not a range at all (`5-2`): the whole file is
  // a valid answer (RFC 9110 14.2).
  if (!m || (m[1] === "" && m[2] === "")) return undefined;
  if (m[1] !== "" && m[2] !== "" && Number(m[2]) < Number(m[1])) return undefined;
  if (size === 0) return "unsatisfiable";
  if (m[1] === "") {
    const suffix = Number(m[2]);
    if (suffix === 0) return "unsatisfiable";
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === "" ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size) return "unsatisfiable";
  return { start, end };
}

/** Whether a conditional GET may be answered 304 (`If-None-Match` first, then the date). */
function notModified(req: IncomingMessage, etag: string | undefined, mtime: number): boolean {
  const match = req.headers["if-none-match"];
  if (match !== undefined) {
    if (!etag) return false;
    return match.split(",").map((t) => t.trim().replace(/^W\//, "")).some((t) =>
      t === "*" || t === etag
    );
  }
  const since = req.headers["if-modified-since"];
  if (!since) return false;
  const when = Date.parse(since);
  return Number.isFinite(when) && Math.floor(mtime / 1000) * 1000 <= when;
}

/** A directory: JSON for scripts (`?json`, `Accept: application/json`), HTML for browsers. */
async function listing(
  service: FerryService,
  who: Principal,
  target: RequestTarget,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const format = ARCHIVE_FORMATS.find((f) => target.query.has(f));
  if (format) return await sendArchive(service, who, target.path, format, req, res);
  const entries: Entry[] = await Array.fromAsync(service.list(who, target.path));
  const json = target.query.has("json") || /application\/json/.test(req.headers.accept ?? "");
  // The page offers what the token may do; the server checks every request all the same.
  const scope = service.readOnly ? "read" : who.scope;
  const body = json ? JSON.stringify(entries) : listingPage(target.path, entries, scope);
  res.writeHead(200, {
    ...COMMON_HEADERS,
    "content-type": json ? "application/json" : "text/html; charset=utf-8",
    "content-length": String(Buffer.byteLength(body)),
    "cache-control": "no-cache",
    ...(!json && { "content-security-policy": PAGE_CSP }),
  });
  res.end(req.method === "HEAD" ? undefined : body);
}

/** Answer with an HTML page of the UI. */
function page(
  res: ServerResponse,
  status: number,
  body: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    ...COMMON_HEADERS,
    "content-type": "text/html; charset=utf-8",
    "content-length": String(Buffer.byteLength(body)),
    "content-security-policy": PAGE_CSP,
    "cache-control": "no-store",
    ...headers,
  });
  res.end(body);
}

/** The most bytes a sign-in form may have. */
const FORM_LIMIT = 8 * 1024;

/**
 * The UI's own addresses: its script and style, and the sign-in form, which
 * checks the token (with the same delay on failure as anywhere) and keeps
 * it in an HttpOnly, SameSite=Strict cookie (Secure over TLS).
 */
async function ui(
  service: FerryService,
  req: IncomingMessage,
  res: ServerResponse,
  peer: string,
  secure: boolean,
): Promise<void> {
  const name = (req.url ?? "").slice(UI_PREFIX.length).split("?")[0];
  if (
    (req.method === "GET" || req.method === "HEAD") && (name === "app.js" || name === "app.css")
  ) {
    const body = name === "app.js" ? UI_JS : UI_CSS;
    res.writeHead(200, {
      ...COMMON_HEADERS,
      "content-type": name === "app.js"
        ? "text/javascript; charset=utf-8"
        : "text/css; charset=utf-8",
      "content-length": String(Buffer.byteLength(body)),
      "cache-control": "max-age=300",
    });
    return void res.end(req.method === "HEAD" ? undefined : body);
  }
  if (req.method === "POST" && name === "login") {
    let form = "";
    for await (const chunk of req) {
      form += new TextDecoder().decode(chunk as Uint8Array);
      if (form.length > FORM_LIMIT) throw new FerryError("LIMIT", "sign-in form too large");
    }
    const fields = new URLSearchParams(form);
    const token = fields.get("token") ?? "";
    const back = fields.get("back") ?? "/";
    // Only a path on this server: never a redirect elsewhere.
    // Only a plain path on this server: never `//host`, `/\host` or anything a browser might
    // read as another origin (no backslash, whitespace or control character anywhere).
    // Checked as sent and once decoded (`/%09/evil.com` is `/\t/evil.com` to a browser).
    // deno-lint-ignore no-control-regex
    const plain = (text: string) => /^\/(?![/\\])[^\\\s\u0000-\u001f\u007f]*$/.test(text);
    let decoded = "";
    try {
      decoded = decodeURIComponent(back);
    } catch {
      // Not a path, then.
    }
    const to = plain(back) && plain(decoded) ? back : "/";
    try {
      await service.authenticate(peer, token);
    } catch {
      return page(res, 401, signInPage(to, true));
    }
    const cookie = `${COOKIE}=${encodeURIComponent(token)}; Path=/; HttpOnly; SameSite=Strict` +
      (secure ? "; Secure" : "");
    res.writeHead(303, { ...COMMON_HEADERS, location: to, "set-cookie": cookie });
    return void res.end();
  }
  throw new FerryError("NOT_FOUND", `not found: ${name}`);
}
