/**
 * What an HTTP request names, pure: the path in its URL, decoded once and
 * put through the same jail as the protocol's paths, and its query. Every
 * encoding trick is refused here, before any storage sees it.
 *
 * @module
 */

import { FerryError } from "../../../util/errors.ts";
import { normalizePath } from "../../../util/path_jail.ts";

/** A request target, understood: the root-relative path and the query. */
export interface RequestTarget {
  /** Canonical root-relative path (`""` is the root). */
  path: string;
  /** Whether the URL path ended in `/` (a directory's own address). */
  slash: boolean;
  /** The query's parameters. */
  query: URLSearchParams;
}

/** An escape that survived one decoding: a second decoding would change the path. */
const LEFT_ESCAPE = /%[0-9a-fA-F]{2}/;

/**
 * Understand `target` (the request line's), or refuse it (PATH_REFUSED, as
 * 400): only origin-form (`/path?query`), percent-decoding done once (bad
 * escapes and malformed or overlong UTF-8 refused), then every rule of
 * `normalizePath` (`..`, backslashes, NUL and control characters, reserved
 * names), and no escape left after decoding (double encoding).
 *
 * @example
 * ```ts
 * import { parseTarget } from "./request_path.ts";
 * const t = parseTarget("/releases/app%20v1.tar.gz?download");
 * console.assert(t.path === "releases/app v1.tar.gz" && t.query.has("download"));
 * ```
 */
export function parseTarget(target: string): RequestTarget {
  if (!target.startsWith("/")) {
    throw new FerryError("PATH_REFUSED", "path refused: not an origin-form request target");
  }
  const q = target.indexOf("?");
  const raw = q < 0 ? target : target.slice(0, q);
  const query = new URLSearchParams(q < 0 ? "" : target.slice(q + 1));
  let decoded: string;
  try {
    decoded = decodeURIComponent(raw);
  } catch {
    throw new FerryError("PATH_REFUSED", "path refused: bad percent-encoding or UTF-8");
  }
  if (LEFT_ESCAPE.test(decoded)) {
    throw new FerryError("PATH_REFUSED", "path refused: encoded twice");
  }
  const relative = decoded.replace(/^\/+/, "");
  // Any ".." is refused, not resolved: a URL never needs one, and one that does is a probe.
  if (relative.split("/").includes("..")) {
    throw new FerryError("PATH_REFUSED", "path refused: leaves the root");
  }
  return { path: normalizePath(relative), slash: raw.endsWith("/"), query };
}

/**
 * The URL path of a root-relative `path`, each component percent-encoded.
 *
 * @example
 * ```ts
 * import { urlOf } from "./request_path.ts";
 * console.assert(urlOf("a b/c#d") === "/a%20b/c%23d");
 * ```
 */
export function urlOf(path: string): string {
  return "/" + path.split("/").filter((p) => p !== "").map(encodeURIComponent).join("/");
}

/** Content types by extension: what a browser or a script needs to handle a file. */
const TYPES: Record<string, string> = {
  txt: "text/plain; charset=utf-8",
  log: "text/plain; charset=utf-8",
  md: "text/markdown; charset=utf-8",
  csv: "text/csv; charset=utf-8",
  html: "text/html; charset=utf-8",
  htm: "text/html; charset=utf-8",
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  mjs: "text/javascript; charset=utf-8",
  json: "application/json",
  xml: "application/xml",
  svg: "image/svg+xml",
  png: "image/png",
  jpg: "image/jpeg",
  jpeg: "image/jpeg",
  gif: "image/gif",
  webp: "image/webp",
  ico: "image/x-icon",
  pdf: "application/pdf",
  wasm: "application/wasm",
  zip: "application/zip",
  gz: "application/gzip",
  tgz: "application/gzip",
  tar: "application/x-tar",
  zst: "application/zstd",
  xz: "application/x-xz",
  bz2: "application/x-bzip2",
  mp4: "video/mp4",
  mp3: "audio/mpeg",
};

/**
 * The `Content-Type` for a file name, by its extension; bytes otherwise.
 *
 * @example
 * ```ts
 * import { contentType } from "./request_path.ts";
 * console.assert(contentType("app.tar.gz") === "application/gzip");
 * console.assert(contentType("README") === "application/octet-stream");
 * ```
 */
export function contentType(name: string): string {
  const dot = name.lastIndexOf(".");
  return (dot > 0 && TYPES[name.slice(dot + 1).toLowerCase()]) || "application/octet-stream";
}
