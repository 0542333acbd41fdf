/**
 * A directory over HTTP as one archive: `?tar`, `?tar.gz` or `?zip`. One
 * walk serves every format: each file is read through the same download as
 * a GET (the jail, the token's scope, the check that it did not change, the
 * audit log), at the socket's pace; nothing is staged on disk or held whole
 * in memory. A file that cannot be read, or changes while read, cuts the
 * response: an archive with a hole would pass for a whole one.
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import { Readable } from "node:stream";
import { createGzip } from "node:zlib";
import tar from "tar-stream";
import { makeZip } from "client-zip";
import { FerryError } from "../../../util/errors.ts";
import { normalizePath } from "../../../util/path_jail.ts";
import type { FerryService, Principal } from "../../service.ts";
import { COMMON_HEADERS, contentDisposition } from "./respond.ts";

/** The archive formats a directory is served in, by the query that asks. */
export const ARCHIVE_FORMATS = ["tar", "tar.gz", "zip"] as const;

/** One of {@linkcode ARCHIVE_FORMATS}. */
export type ArchiveFormat = typeof ARCHIVE_FORMATS[number];

/** Bytes read from a file per piece of the archive. */
const CHUNK = 256 * 1024;

/** One entry of a directory's archive; a file's bytes are read when iterated. */
interface ArchiveEntry {
  /** The path inside the archive: the directory's own name first. */
  name: string;
  type: "dir" | "file";
  mode: number;
  mtime: Date;
  size: number;
  /** A file's content, read through the service as it is iterated (once). */
  bytes: AsyncIterable<Uint8Array>;
}

/**
 * The tree under `path`, directories and regular files, in the walk's
 * order. `gone` stops the walk between files and between pieces of one.
 */
async function* entriesOf(
  service: FerryService,
  who: Principal,
  path: string,
  gone: () => boolean,
  open: Set<(err?: unknown) => void>,
): AsyncGenerator<ArchiveEntry> {
  const top = path === "" ? "" : `${path.split("/").pop()}/`;
  const prefix = path === "" ? "" : `${path}/`;
  for await (const e of service.list(who, path, { recursive: true })) {
    if (gone()) throw new FerryError("CONNECT", "the client left");
    if (e.type !== "dir" && e.type !== "file") continue;
    // A name the jail would refuse to serve (a control character, a backslash) is left out, as
    // symlinks are: one such file must not cut the archive of everything else.
    if (!servable(prefix + e.name)) continue;
    yield {
      name: top + e.name,
      type: e.type,
      mode: e.mode,
      mtime: new Date(e.mtime),
      size: e.type === "file" ? e.size : 0,
      bytes: e.type === "file" ? contentOf(service, who, prefix + e.name, gone, open) : noBytes(),
    };
  }
}

async function* noBytes(): AsyncGenerator<Uint8Array> {}

function servable(path: string): boolean {
  try {
    normalizePath(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * A file's content in fresh pieces (the archive keeps each until the socket
 * takes it). The file is in `open` while it is: a reader left suspended by a
 * client that went away is released from there.
 */
async function* contentOf(
  service: FerryService,
  who: Principal,
  path: string,
  gone: () => boolean,
  open: Set<(err?: unknown) => void>,
): AsyncGenerator<Uint8Array> {
  const file = await service.download(who, { path, offset: 0, algorithm: "xxh128" });
  let released = false;
  const release = (err?: unknown) => {
    if (released) return;
    released = true;
    open.delete(release);
    if (err !== undefined) file.failed(err);
    file.close();
  };
  open.add(release);
  try {
    for (let sent = 0; sent < file.size;) {
      const piece = new Uint8Array(Math.min(CHUNK, file.size - sent));
      const n = await file.source.read(piece);
      if (n === null || n === 0) throw new FerryError("INTEGRITY", "a file shrank while sent");
      if (gone()) throw new FerryError("CONNECT", "the client left");
      sent += n;
      yield n === piece.length ? piece : piece.subarray(0, n);
    }
    file.source.check?.();
    file.sent(undefined, file.size);
  } catch (err) {
    release(err);
    throw err;
  } finally {
    release();
  }
}

/**
 * Send the directory `path` as an archive of `format`, named after it.
 * Resolves when the response has ended, or was cut; rejects only when the
 * walk failed while the client was still there (the response is cut then).
 */
export async function sendArchive(
  service: FerryService,
  who: Principal,
  path: string,
  format: ArchiveFormat,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const name = `${path === "" ? "root" : path.split("/").pop()!}.${format}`;
  res.writeHead(200, {
    ...COMMON_HEADERS,
    "content-type": format === "zip"
      ? "application/zip"
      : format === "tar.gz"
      ? "application/gzip"
      : "application/x-tar",
    "content-disposition": contentDisposition(name),
  });
  if (req.method === "HEAD") return void res.end();
  // The client may leave at any moment: every stream's error is handled (one unhandled would end
  // the process), and a gone client stops the walk.
  let gone = false;
  let failure: unknown;
  const closed = new Promise<void>((resolve) => {
    res.once("close", () => {
      gone = true;
      resolve();
    });
  });
  const cut = (err?: unknown) => {
    if (!gone && failure === undefined && err !== undefined) failure = err;
    gone = true;
    res.destroy();
  };
  res.on("error", () => cut());
  const open = new Set<(err?: unknown) => void>();
  const entries = entriesOf(service, who, path, () => gone, open);
  let body: Readable;
  let fed = Promise.resolve();
  if (format === "zip") {
    body = Readable.fromWeb(makeZip(zipInputs(entries)) as never);
  } else {
    const pack = tar.pack();
    body = pack as unknown as Readable;
    fed = feedTar(pack, entries, closed, () => gone).catch(cut);
  }
  body.on("error", cut);
  if (format === "tar.gz") {
    const gzip = createGzip({ level: 6 });
    gzip.on("error", cut);
    body = body.pipe(gzip);
  }
  body.pipe(res);
  await Promise.all([closed, fed]);
  body.destroy();
  for (const release of open) release(new FerryError("CONNECT", "the client left"));
  if (failure !== undefined && !(failure instanceof FerryError && failure.code === "CONNECT")) {
    throw failure;
  }
}

/** The entries as client-zip's inputs: folders have no input, files stream theirs. */
async function* zipInputs(entries: AsyncIterable<ArchiveEntry>) {
  for await (const e of entries) {
    yield e.type === "dir" ? { name: e.name, lastModified: e.mtime, mode: e.mode & 0o777 } : {
      name: e.name,
      lastModified: e.mtime,
      mode: e.mode & 0o777,
      size: e.size,
      input: e.bytes,
    };
  }
}

/** What ferryd uses of a tar-stream pack. */
type TarPack = ReturnType<typeof tar.pack>;

/** Write the entries into the tar, each file at the socket's pace, then end it. */
async function feedTar(
  pack: TarPack,
  entries: AsyncIterable<ArchiveEntry>,
  closed: Promise<void>,
  gone: () => boolean,
): Promise<void> {
  try {
    for await (const e of entries) {
      const header = { name: e.name, mode: e.mode, mtime: e.mtime };
      if (e.type === "dir") {
        const entry = pack.entry({ ...header, type: "directory" }) as unknown as TarEntry;
        entry.on("error", () => {});
        entry.end();
        continue;
      }
      let ended: () => void = () => {};
      let failed: (err: Error) => void = () => {};
      const done = new Promise<void>((resolve, reject) => [ended, failed] = [resolve, reject]);
      done.catch(() => {});
      const entry = pack.entry(
        { ...header, size: e.size },
        (err?: Error | null) => err ? failed(err) : ended(),
      ) as unknown as TarEntry;
      entry.on("error", () => {});
      for await (const piece of e.bytes) {
        if (!entry.write(piece)) {
          await Promise.race([new Promise<void>((r) => entry.once("drain", () => r())), closed]);
          if (gone()) throw new FerryError("CONNECT", "the client left");
        }
      }
      entry.end();
      await Promise.race([done, closed]);
      if (gone()) throw new FerryError("CONNECT", "the client left");
    }
    pack.finalize();
  } catch (err) {
    (pack as unknown as { destroy(): void }).destroy();
    throw err;
  }
}

/** What ferryd uses of a tar-stream entry (its published types are streamx's, stricter). */
interface TarEntry {
  write(chunk: Uint8Array): boolean;
  end(): void;
  once(event: "drain", fn: () => void): void;
  on(event: "error", fn: () => void): void;
}
