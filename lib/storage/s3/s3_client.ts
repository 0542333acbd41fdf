/**
 * The S3 requests ferry makes, signed with `aws4` (SigV4, in synchronous
 * `node:crypto` calls) and sent with `fetch` or `node:http`, with S3's errors turned into {@linkcode FerryError}s. Keys here
 * are whole object keys (the prefix included); what they mean as paths is
 * the storage's business (see `s3_storage.ts`).
 *
 * @module
 */

import aws4 from "aws4";
import { XMLParser } from "fast-xml-parser";
import { createHash } from "node:crypto";
import http from "node:http";
import https from "node:https";
import { Readable } from "node:stream";
import { escapeName } from "../../util/display.ts";
import { FerryError } from "../../util/errors.ts";
import type { S3Config } from "./s3_config.ts";

/** One object of a listing. */
export interface S3Object {
  key: string;
  size: number;
  /** Upload time, ms since the epoch. */
  lastModified: number;
  etag: string;
}

/** One page of a listing: objects, and the common prefixes under a delimiter. */
export interface S3Page {
  objects: S3Object[];
  prefixes: string[];
  /** Continuation token for the next page, when there is one. */
  next: string | undefined;
}

/** What a HEAD (or a GET's headers) says of an object. */
export interface S3Head {
  size: number;
  etag: string;
  lastModified: number;
  /** User metadata (`x-amz-meta-*`), names without the prefix, values decoded. */
  meta: Record<string, string>;
}

/** An in-progress multipart upload, as listed. */
export interface S3MultipartUpload {
  key: string;
  uploadId: string;
  /** When it was started, ms since the epoch. */
  initiated: number;
}

const xml = new XMLParser({
  ignoreAttributes: true,
  // Keys, ETags and tokens stay text, whatever they look like ("0123", "1e5").
  parseTagValue: false,
  isArray: (name: string) =>
    ["Contents", "CommonPrefixes", "Upload", "Error", "Part"].includes(name),
});

/** The SHA-256 of no bytes: the payload of a request without a body. */
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** Requests that carry no body, or one in hand, are retried this many times on 5xx/429. */
const RETRIES = 3;

/**
 * A bucket, through S3's REST API.
 *
 * @example
 * ```ts ignore
 * const client = new S3Client(config);
 * const page = await client.list({ prefix: "builds/", delimiter: "/" });
 * ```
 */
export class S3Client {
  readonly #config: S3Config;
  /** Connections kept alive for bodies sent with node:http (see #sendBody). */
  readonly #httpAgent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  readonly #httpsAgent = new https.Agent({ keepAlive: true, maxSockets: 64 });

  /** A client for `config`'s bucket; nothing is sent until the first request. */
  constructor(config: S3Config) {
    this.#config = config;
  }

  /**
   * Sign a request to `url` whose payload has the SHA-256 `payload` (hex):
   * the URL to send it to and every header to send. `aws4` signs in
   * synchronous `node:crypto` calls; `aws4fetch`, through `crypto.subtle`,
   * had cost ferryd 0.6 ms of CPU a request (most of a small file's cost).
   */
  #sign(
    method: string,
    url: string,
    headers: Record<string, string>,
    payload: string,
  ): { url: string; headers: Record<string, string> } {
    const target = new URL(url);
    const signed = aws4.sign({
      host: target.host,
      path: target.pathname + target.search,
      method,
      service: "s3",
      region: this.#config.region,
      headers: { ...headers, "x-amz-content-sha256": payload },
    }, {
      accessKeyId: this.#config.accessKeyId,
      secretAccessKey: this.#config.secretAccessKey,
      sessionToken: this.#config.sessionToken,
    });
    return { url: `${target.protocol}//${target.host}${signed.path}`, headers: signed.headers };
  }

  /** A key as people know it: its path under the prefix. */
  #shown(key: string): string {
    const { prefix } = this.#config;
    return key.startsWith(prefix) ? key.slice(prefix.length) : key;
  }

  /** `s3://bucket/prefix`, for people. */
  get location(): string {
    const { bucket, prefix } = this.#config;
    return `s3://${bucket}${prefix ? `/${prefix.replace(/\/$/, "")}` : ""}`;
  }

  /** The URL of `key` (path-style or virtual-hosted), with a query. */
  url(key: string, query: Record<string, string> = {}): string {
    if (!addressable(key)) {
      throw new FerryError(
        "PATH_REFUSED",
        `path refused: the bucket holds a key with a "." or ".." segment, which no URL can name ` +
          `(${escapeName(this.#shown(key))})`,
      );
    }
    const { endpoint, bucket, pathStyle } = this.#config;
    const base = new URL(endpoint);
    // Each segment as SigV4 encodes it (RFC 3986: `!'()*` too), so that the path sent is the
    // path signed.
    const path = key.split("/").map(encodeSegment).join("/");
    const host = pathStyle ? base.host : `${bucket}.${base.host}`;
    const prefix = base.pathname.replace(/\/$/, "") + (pathStyle ? `/${bucket}` : "");
    const search = new URLSearchParams(query).toString().replaceAll("+", "%20");
    // `?uploads` and `?delete` are bare subresources; URLSearchParams writes them as `uploads=`.
    const qs = search.replace(/(^|&)(uploads|delete)=(?=&|$)/g, "$1$2");
    return `${base.protocol}//${host}${prefix}/${path}${qs ? `?${qs}` : ""}`;
  }

  /**
   * Send a request; S3's error answers become FerryErrors (`what` names the
   * object for the message). `ok` lists statuses that are not errors.
   */
  async send(
    method: string,
    key: string,
    options: {
      query?: Record<string, string>;
      headers?: Record<string, string>;
      body?: Uint8Array | string;
      what?: string;
      ok?: number[];
      signal?: AbortSignal;
      /** The answer's body is an object's content, streamed: no deadline for all of it. */
      stream?: boolean;
    } = {},
  ): Promise<Response> {
    const url = this.url(key, options.query);
    for (let attempt = 0;; attempt++) {
      let res: Response;
      try {
        res = options.body === undefined
          ? await this.#fetch(method, url, {
            headers: options.headers ?? {},
            // An answer without a body to stream (HEAD, a listing, a DELETE) is short: a store
            // that does not give one in time is stuck. A GET's body is watched by its reader.
            signal: options.signal ?? (options.stream ? undefined : AbortSignal.timeout(IDLE_MS)),
          })
          : await this.#sendBody(method, url, options.headers ?? {}, options.body, options.signal);
      } catch (err) {
        if (options.signal?.aborted) throw err;
        if (err instanceof FerryError) throw err;
        if ((err as Error).name === "TimeoutError") throw stalled(this.#config.endpoint);
        if (attempt < RETRIES) {
          await pause(attempt);
          continue;
        }
        throw unreachable(this.#config.endpoint, err);
      }
      if (res.ok || options.ok?.includes(res.status)) return res;
      if ((res.status >= 500 || res.status === 429) && attempt < RETRIES) {
        await res.body?.cancel();
        await pause(attempt);
        continue;
      }
      throw await s3Error(res, options.what ?? escapeName(this.#shown(key)), this.location);
    }
  }

  /** A request without a body, signed and sent by `fetch`. */
  #fetch(
    method: string,
    url: string,
    init: { headers: Record<string, string>; signal?: AbortSignal },
  ): Promise<Response> {
    const signed = this.#sign(method, url, init.headers, EMPTY_SHA256);
    return fetch(signed.url, { method, headers: signed.headers, signal: init.signal });
  }

  /**
   * A request with a body in hand, signed here and sent by `node:http`:
   * `fetch` holds on to a copy of every body it sends (measured: 8 MiB parts,
   * four at a time, took ferryd from 57 to 224 MiB), while `node:http` writes
   * the bytes given and keeps nothing.
   */
  async #sendBody(
    method: string,
    url: string,
    headers: Record<string, string>,
    body: Uint8Array | string,
    signal?: AbortSignal,
  ): Promise<Response> {
    const bytes = typeof body === "string" ? new TextEncoder().encode(body) : body;
    // The payload's SHA-256 goes into the signature: the store refuses bytes that changed on
    // the way (XAmzContentSHA256Mismatch). SHA-256 runs here at 1.6 GiB/s, MD5 (Content-MD5)
    // at 0.37.
    const payload = createHash("sha256").update(bytes).digest("hex");
    const signed = this.#sign(method, url, headers, payload);
    const out = signed.headers;
    out["content-length"] = String(bytes.length);
    const target = new URL(signed.url);
    const secure = target.protocol === "https:";
    return await new Promise<Response>((resolve, reject) => {
      const req = (secure ? https : http).request({
        host: target.hostname,
        port: target.port || (secure ? 443 : 80),
        method,
        path: target.pathname + target.search,
        headers: out,
        agent: secure ? this.#httpsAgent : this.#httpAgent,
        signal,
        timeout: IDLE_MS,
      }, (res) => {
        const status = res.statusCode ?? 0;
        const answer = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          if (value !== undefined) {
            answer.set(name, Array.isArray(value) ? value.join(", ") : value);
          }
        }
        // A HEAD-like answer without content must not be given a body.
        const empty = status === 204 || status === 304;
        const stream = empty ? null : Readable.toWeb(res) as ReadableStream<Uint8Array>;
        if (empty) res.resume();
        resolve(new Response(stream, { status, headers: answer }));
      });
      req.on("error", reject);
      req.on("timeout", () => req.destroy(stalled(this.#config.endpoint)));
      req.end(bytes);
    });
  }

  /** HEAD `key`: undefined when there is no such object. */
  async head(key: string): Promise<S3Head | undefined> {
    const res = await this.send("HEAD", key, { ok: [404] });
    if (res.status === 404) return undefined;
    return headOf(res);
  }

  /** One page of ListObjectsV2 under `prefix`. */
  async list(
    options: { prefix: string; delimiter?: string; token?: string; max?: number },
  ): Promise<S3Page> {
    const query: Record<string, string> = {
      "list-type": "2",
      "encoding-type": "url",
      prefix: options.prefix,
    };
    if (options.delimiter) query.delimiter = options.delimiter;
    if (options.token) query["continuation-token"] = options.token;
    if (options.max) query["max-keys"] = String(options.max);
    const res = await this.send("GET", "", { query, what: options.prefix || "the bucket" });
    const doc = xml.parse(await res.text()).ListBucketResult ?? {};
    // Asked for with encoding-type=url: keys come encoded (radosgw does not always say so).
    const decode = urlDecode;
    return {
      objects: (doc.Contents ?? []).map((c: Record<string, string>) => ({
        key: decode(c.Key),
        size: Number(c.Size),
        lastModified: Date.parse(c.LastModified),
        etag: c.ETag ?? "",
      })),
      prefixes: (doc.CommonPrefixes ?? []).map((p: { Prefix: string }) => decode(p.Prefix)),
      next: doc.IsTruncated === "true" ? doc.NextContinuationToken : undefined,
    };
  }

  /** Every object under `prefix` (no delimiter), page by page. */
  async *listAll(prefix: string): AsyncIterable<S3Object> {
    let token: string | undefined;
    do {
      const page = await this.list({ prefix, token });
      yield* page.objects;
      token = page.next;
    } while (token);
  }

  /** PUT a whole object whose bytes are in hand: its ETag. */
  async put(
    key: string,
    body: Uint8Array,
    options: { meta?: Record<string, string>; noClobber?: boolean; what?: string } = {},
  ): Promise<string> {
    const headers = metaHeaders(options.meta);
    headers["content-length"] = String(body.length);
    if (options.noClobber) headers["if-none-match"] = "*";
    const res = await this.send("PUT", key, { headers, body, what: options.what, ok: [412] });
    await res.body?.cancel();
    if (res.status === 412) {
      throw new FerryError("EXISTS", `already exists: ${options.what ?? this.#shown(key)}`);
    }
    return res.headers.get("etag") ?? "";
  }

  /** DELETE one object (no error if it is not there). */
  async delete(key: string): Promise<void> {
    const res = await this.send("DELETE", key, { ok: [404] });
    await res.body?.cancel();
  }

  /** Delete many objects, a thousand per request (DeleteObjects). */
  async deleteMany(keys: string[]): Promise<void> {
    // XML 1.0 cannot carry most control characters, even escaped: such keys go one by one.
    for (const key of keys.filter((k) => !xmlSafe(k))) await this.delete(key);
    const safe = keys.filter(xmlSafe);
    for (let i = 0; i < safe.length; i += 1000) {
      const batch = safe.slice(i, i + 1000);
      const body = `<Delete><Quiet>true</Quiet>${
        batch.map((k) => `<Object><Key>${escapeXml(k)}</Key></Object>`).join("")
      }</Delete>`;
      const md5 = createHash("md5").update(body).digest("base64");
      const res = await this.send("POST", "", {
        query: { delete: "" },
        headers: { "content-md5": md5, "content-type": "application/xml" },
        body,
      });
      const doc = xml.parse(await res.text()).DeleteResult ?? {};
      const failed = (doc.Error ?? []) as Record<string, string>[];
      if (failed.length > 0) {
        throw new FerryError(
          "IO",
          `the object store kept ${failed.length} objects it was asked to delete ` +
            `(${failed[0].Code}: ${failed[0].Key})`,
        );
      }
    }
  }

  /**
   * Copy `from` to `to` on the server's side, with `from`'s metadata, or
   * with `meta` instead when given. Objects over 5 GiB are copied in parts.
   */
  async copy(
    from: string,
    to: string,
    options: { size: number; meta?: Record<string, string>; ifMatch?: string },
  ): Promise<void> {
    if (options.size > MAX_COPY) return await this.#copyInParts(from, to, options);
    const headers: Record<string, string> = { "x-amz-copy-source": this.#copySource(from) };
    if (options.ifMatch) headers["x-amz-copy-source-if-match"] = options.ifMatch;
    if (options.meta) {
      Object.assign(headers, metaHeaders(options.meta));
      headers["x-amz-metadata-directive"] = "REPLACE";
    }
    const res = await this.send("PUT", to, { headers, what: from });
    // A copy can fail after its 200 has begun: the error is then in the body.
    const text = await res.text();
    if (text.includes("<Error>")) {
      throw new FerryError("IO", `the object store could not copy ${from}: ${text.slice(0, 200)}`);
    }
  }

  async #copyInParts(
    from: string,
    to: string,
    options: { size: number; meta?: Record<string, string>; ifMatch?: string },
  ): Promise<void> {
    const meta = options.meta ?? (await this.head(from))?.meta ?? {};
    const upload = await this.startMultipart(to, meta);
    try {
      const count = Math.ceil(options.size / MAX_COPY);
      const each = Math.ceil(options.size / count);
      const parts: string[] = [];
      for (let n = 0; n < count; n++) {
        const start = n * each;
        const end = Math.min(options.size, start + each) - 1;
        parts.push(await this.copyPart(to, upload, n + 1, from, start, end, options.ifMatch));
      }
      await this.completeMultipart(to, upload, parts);
    } catch (err) {
      await this.abortMultipart(to, upload).catch(() => {});
      throw err;
    }
  }

  #copySource(key: string): string {
    return `/${this.#config.bucket}/${key.split("/").map(encodeURIComponent).join("/")}`;
  }

  /** CreateMultipartUpload: its upload id. */
  async startMultipart(
    key: string,
    meta: Record<string, string> = {},
    what?: string,
  ): Promise<string> {
    const res = await this.send("POST", key, {
      query: { uploads: "" },
      headers: metaHeaders(meta),
      what,
    });
    const id = xml.parse(await res.text()).InitiateMultipartUploadResult?.UploadId;
    if (!id) throw new FerryError("IO", `the object store started no upload for ${key}`);
    return id;
  }

  /** UploadPart: the part's ETag. */
  async uploadPart(
    key: string,
    uploadId: string,
    part: number,
    body: Uint8Array,
    what?: string,
  ): Promise<string> {
    const res = await this.send("PUT", key, {
      query: { partNumber: String(part), uploadId },
      headers: { "content-length": String(body.length) },
      body,
      what,
    });
    await res.body?.cancel();
    const etag = res.headers.get("etag");
    if (!etag) throw new FerryError("IO", `the object store gave part ${part} of ${key} no ETag`);
    return etag;
  }

  /** UploadPartCopy of bytes `start`..`end` (inclusive) of `from`: the part's ETag. */
  async copyPart(
    key: string,
    uploadId: string,
    part: number,
    from: string,
    start: number,
    end: number,
    ifMatch?: string,
  ): Promise<string> {
    const headers: Record<string, string> = {
      "x-amz-copy-source": this.#copySource(from),
      "x-amz-copy-source-range": `bytes=${start}-${end}`,
    };
    if (ifMatch) headers["x-amz-copy-source-if-match"] = ifMatch;
    const res = await this.send("PUT", key, {
      query: { partNumber: String(part), uploadId },
      headers,
      what: from,
    });
    const etag = xml.parse(await res.text()).CopyPartResult?.ETag;
    if (!etag) throw new FerryError("IO", `the object store copied part ${part} of ${from} badly`);
    return etag;
  }

  /** CompleteMultipartUpload with the parts' ETags, in order. */
  async completeMultipart(
    key: string,
    uploadId: string,
    etags: string[],
    what?: string,
  ): Promise<void> {
    const body = `<CompleteMultipartUpload>${
      etags.map((e, i) =>
        `<Part><PartNumber>${i + 1}</PartNumber><ETag>${escapeXml(e)}</ETag></Part>`
      )
        .join("")
    }</CompleteMultipartUpload>`;
    const res = await this.send("POST", key, { query: { uploadId }, body, what });
    // As with a copy, a failure can come inside a 200.
    const text = await res.text();
    if (text.includes("<Error>")) {
      throw new FerryError("IO", `the object store could not finish ${key}: ${text.slice(0, 200)}`);
    }
  }

  /** AbortMultipartUpload: false if it was gone already. */
  async abortMultipart(key: string, uploadId: string): Promise<boolean> {
    const res = await this.send("DELETE", key, { query: { uploadId }, ok: [404] });
    await res.body?.cancel();
    return res.status !== 404;
  }

  /** When the last part of a multipart upload arrived (else when it began: `initiated`). */
  async lastActivity(key: string, uploadId: string, initiated: number): Promise<number> {
    let latest = initiated;
    let marker: string | undefined;
    do {
      const query: Record<string, string> = { uploadId };
      if (marker) query["part-number-marker"] = marker;
      const res = await this.send("GET", key, { query, ok: [404] });
      if (res.status === 404) {
        await res.body?.cancel();
        return latest;
      }
      const doc = xml.parse(await res.text()).ListPartsResult ?? {};
      for (const part of (doc.Part ?? []) as Record<string, string>[]) {
        latest = Math.max(latest, Date.parse(part.LastModified) || 0);
      }
      marker = doc.IsTruncated === "true" ? doc.NextPartNumberMarker : undefined;
    } while (marker);
    return latest;
  }

  /** Every multipart upload in progress under `prefix`. */
  async *listMultipart(prefix: string): AsyncIterable<S3MultipartUpload> {
    let keyMarker: string | undefined, idMarker: string | undefined;
    do {
      const query: Record<string, string> = { uploads: "", prefix, "encoding-type": "url" };
      if (keyMarker) query["key-marker"] = keyMarker;
      if (idMarker) query["upload-id-marker"] = idMarker;
      const res = await this.send("GET", "", { query, what: prefix || "the bucket" });
      const doc = xml.parse(await res.text()).ListMultipartUploadsResult ?? {};
      const decode = urlDecode;
      for (const u of (doc.Upload ?? []) as Record<string, string>[]) {
        yield { key: decode(u.Key), uploadId: u.UploadId, initiated: Date.parse(u.Initiated) };
      }
      const more = doc.IsTruncated === "true";
      keyMarker = more ? decode(doc.NextKeyMarker) : undefined;
      idMarker = more ? doc.NextUploadIdMarker : undefined;
    } while (keyMarker);
  }

  /**
   * The first `bytes` of `key` at the version `etag`, read into the caller's
   * buffers as asked (the GET starts at the first read). An object that ends
   * sooner fails with `short(bytesRead)`.
   */
  readPrefix(
    key: string,
    bytes: number,
    options: { etag?: string; what?: string; short: (at: number) => FerryError },
  ): { read(buf: Uint8Array): Promise<number | null>; close(): void } {
    let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
    let rest: Uint8Array = new Uint8Array(0);
    let at = 0;
    const close = () => void reader?.cancel().catch(() => {});
    return {
      read: async (buf) => {
        if (at >= bytes) return null;
        if (rest.length === 0) {
          reader ??=
            (await this.get(key, { end: bytes - 1, etag: options.etag, what: options.what }))
              .body!.getReader();
          const { value, done } = await reader.read();
          if (done) throw options.short(at);
          rest = value;
        }
        const n = Math.min(buf.length, rest.length, bytes - at);
        buf.set(rest.subarray(0, n));
        rest = rest.subarray(n);
        at += n;
        if (at >= bytes) close();
        return n;
      },
      close,
    };
  }

  /**
   * GET `key` (bytes from `start` on), only while its ETag is `etag`: a
   * replaced object fails with INTEGRITY rather than mixing versions.
   */
  async get(
    key: string,
    options: { start?: number; end?: number; etag?: string; what?: string } = {},
  ): Promise<Response> {
    const headers: Record<string, string> = {};
    if (options.etag) headers["if-match"] = options.etag;
    if (options.start || options.end !== undefined) {
      headers.range = `bytes=${options.start ?? 0}-${options.end ?? ""}`;
    }
    const res = await this.send("GET", key, {
      headers,
      ok: [412],
      what: options.what,
      stream: true,
    });
    if (res.status === 412) {
      await res.body?.cancel();
      throw new FerryError(
        "INTEGRITY",
        `${
          options.what ?? this.#shown(key)
        } changed while it was read (it was replaced in the bucket)`,
      );
    }
    return res;
  }
}

/** The largest object one CopyObject may copy. */
const MAX_COPY = 5 * 1024 ** 3;

/** What a HEAD or GET response says of its object. */
export function headOf(res: Response): S3Head {
  const meta: Record<string, string> = {};
  for (const [name, value] of res.headers) {
    if (name.startsWith("x-amz-meta-")) meta[name.slice(11)] = safeDecode(value);
  }
  const range = res.headers.get("content-range");
  const size = range ? Number(range.slice(range.lastIndexOf("/") + 1)) : Number(
    res.headers.get("content-length") ?? 0,
  );
  return {
    size,
    etag: res.headers.get("etag") ?? "",
    lastModified: Date.parse(res.headers.get("last-modified") ?? "") || 0,
    meta,
  };
}

/**
 * Metadata as headers. Values are percent-encoded: header values go out as
 * Latin-1 while the signature is over their UTF-8 bytes, so anything but
 * ASCII would fail the signature.
 */
function metaHeaders(meta: Record<string, string> = {}): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(meta)) {
    headers[`x-amz-meta-${name}`] = encodeURIComponent(value);
  }
  return headers;
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** A key from a listing with `encoding-type=url` (a `+` there is a space: `+` itself is `%2B`). */
function urlDecode(text: string): string {
  return decodeURIComponent(text.replaceAll("+", " "));
}

/**
 * Text for an XML element. Tab, newline and carriage return are written as
 * character references: a parser would turn a literal carriage return into
 * a newline, and so name another key.
 */
function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;").replaceAll("'", "&apos;").replaceAll("\t", "&#9;")
    .replaceAll("\n", "&#10;").replaceAll("\r", "&#13;");
}

/** Whether XML 1.0 can carry `text` at all (no control characters but tab, newline, return). */
function xmlSafe(text: string): boolean {
  // deno-lint-ignore no-control-regex
  return !/[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/.test(text);
}

/** Whether `key` can be named in a URL's path: `.` and `..` segments are folded away by URLs. */
export function addressable(key: string): boolean {
  return !key.split("/").some((segment) => segment === "." || segment === "..");
}

/** Deadline for an answer without a body to stream, and for a request body's progress. */
const IDLE_MS = 30_000;

function stalled(endpoint: string): FerryError {
  return new FerryError(
    "TIMEOUT",
    `the object store at ${endpoint} did not answer for ${IDLE_MS / 1000} s`,
  );
}

function pause(attempt: number): Promise<void> {
  return new Promise((r) => setTimeout(r, 100 * 4 ** attempt));
}

function unreachable(endpoint: string, err: unknown): FerryError {
  const why = err instanceof Error ? err.message : String(err);
  return new FerryError("IO", `cannot reach the object store at ${endpoint}: ${why}`);
}

/** S3's error answer as a FerryError. */
async function s3Error(res: Response, what: string, location: string): Promise<FerryError> {
  const text = res.status === 404 && res.headers.get("content-length") === "0"
    ? ""
    : await res.text().catch(() => "");
  const doc = text ? xml.parse(text).Error?.[0] ?? {} : {};
  // A HEAD's error has no body: its status says what it can.
  const code: string = doc.Code ??
    (res.status === 404 ? "NoSuchKey" : res.status === 403 ? "AccessDenied" : `HTTP ${res.status}`);
  const detail = doc.Message ? `: ${doc.Message}` : "";
  switch (code) {
    case "NoSuchKey":
      return new FerryError("NOT_FOUND", `not found: ${what}`);
    case "NoSuchBucket":
      return new FerryError("IO", `no such bucket: ${location}`);
    case "InvalidAccessKeyId":
    case "SignatureDoesNotMatch":
    case "ExpiredToken":
    case "InvalidToken":
      return new FerryError(
        "IO",
        `the object store refused ferryd's credentials (${code}): check AWS_ACCESS_KEY_ID, ` +
          `AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN`,
      );
    case "AccessDenied":
      return new FerryError("IO", `the object store denied access to ${what} in ${location}`);
    case "EntityTooLarge":
      return new FerryError("LIMIT", `too large for the object store: ${what}`);
    case "QuotaExceeded":
      return new FerryError("NO_SPACE", `the bucket's quota is exhausted: ${what}`);
    default:
      return new FerryError("IO", `the object store failed on ${what} (${code}${detail})`);
  }
}

/** A key's segment percent-encoded as SigV4's canonical URI has it (RFC 3986). */
function encodeSegment(segment: string): string {
  return encodeURIComponent(segment).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}
