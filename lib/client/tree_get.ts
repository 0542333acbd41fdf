/**
 * A remote tree received as one stream (`get -r` from a server with the
 * `tree` feature): each small file arrives inline with its checksum, is
 * verified, written to a temporary file with its mode and mtime, and
 * renamed into place, all in synchronous calls, with no request, reply or
 * transfer object per file. Larger files, and files whose destination is
 * no plain file to replace, are handed back to be fetched one by one with
 * `get` (resumable, written through a FIFO or a device).
 *
 * @module
 */

import { sep as SEP } from "node:path";
import { childPath } from "../fs/directory.ts";
import { hashBytes, sameHex } from "../checksum/checksum.ts";
import { parseTreeReply } from "../commands.ts";
import { FrameType } from "../frame.ts";
import { exists, lstatOrUndefined } from "../fs/local_files.ts";
import { tempNames } from "../fs/temp_names.ts";
import { WholeFileWriter } from "../fs/whole_file.ts";
import { checkName as jailName, normalizePath } from "../util/path_jail.ts";
import { escapeName } from "../util/display.ts";
import { type ErrorCode, FerryError, toFerryError } from "../util/errors.ts";
import { decompressChunk } from "../wire/compress.ts";
import { decodeRecords, type TreeRecord } from "../wire/tree_records.ts";
import type { Connection } from "./connection.ts";
import type { Outcome } from "./report.ts";

/** A file to fetch on its own, after the stream. */
export interface DeferredFile {
  /** Its remote path. */
  from: string;
  /** Its local path. */
  to: string;
  /** Its size, as the server announced it. */
  size: number;
}

/** A local directory and the mode and mtime it is to have once its contents are in. */
export interface DirectoryTimes {
  path: string;
  mode: number;
  mtime: number;
}

/** What {@linkcode receiveTree} did and left to do. */
export interface TreeResult {
  /** Files to fetch one by one: too large to go inline, or not to be replaced by a rename. */
  deferred: DeferredFile[];
  /** Directories received, parents first: their modes and times are set last. */
  dirs: DirectoryTimes[];
}

/** How {@linkcode receiveTree} treats what it receives. */
export interface ReceiveTreeOptions {
  /** Skip (as `exists`) a file whose local name is taken. */
  noClobber?: boolean;
  /** The most bytes one file may have (LIMIT beyond it). */
  maxSize?: number;
  /** Hears each file that landed, was skipped or failed, as it happens. */
  onOutcome: (outcome: Outcome) => void;
}

/**
 * Receive the tree below the remote directory `remote` into the local
 * directory `local` (created if missing). Every file is checked against its
 * checksum before it takes its name; one that fails is fetched again with
 * `get`. Returns what is left to fetch and the directories whose modes and
 * times {@linkcode setDirectoryTimes} sets once everything is in.
 */
export function receiveTree(
  conn: Connection,
  remote: string,
  local: string,
  options: ReceiveTreeOptions,
): Promise<TreeResult> {
  const result: TreeResult = { deferred: [], dirs: [] };
  const prefix = remote === "" ? "" : `${remote}/`;
  const algorithm = conn.algorithm;
  const compressed = conn.welcome.compress !== undefined;
  const maxData = conn.welcome.limits.maxData;
  let inline = 0;
  let last = performance.now();
  const outcome = (path: string, fields: Partial<Outcome>) => {
    const now = performance.now();
    options.onOutcome({ op: "get", path, bytes: 0, seconds: (now - last) / 1000, ...fields });
    last = now;
  };
  // Local paths of the directories received, by remote relative path: a record names its
  // parent, which must have come first, and only its own last component needs checking.
  const dirs = new Map<string, string>();
  // Directories this run made: nothing can be in the way of a file there.
  const made = new Set<string>();
  const nextTemp = tempNames();
  // The directory files land in, held open from one file to the next (let go at the end).
  const writer = new WholeFileWriter();
  const localPath = (path: string): string => {
    if (path === "") return local;
    const slash = path.lastIndexOf("/");
    const parent = dirs.get(slash < 0 ? "" : path.slice(0, slash));
    const name = path.slice(slash + 1);
    if (parent === undefined) {
      checkName(path);
      throw new FerryError("PROTOCOL", `server sent ${escapeName(path)} before its directory`);
    }
    try {
      jailName(name);
    } catch (err) {
      throw new FerryError("PROTOCOL", `server sent an unsafe name: ${(err as Error).message}`);
    }
    return childPath(parent, name);
  };
  // Directories that could not be made here: what the tree holds below them is reported, one
  // by one, as not written, and the rest of the tree goes on.
  const failedDirs = new Set<string>();
  const underFailed = (path: string): string | undefined => {
    if (failedDirs.has("")) return "";
    for (let i = path.lastIndexOf("/"); i > 0; i = path.lastIndexOf("/", i - 1)) {
      if (failedDirs.has(path.slice(0, i))) return path.slice(0, i);
    }
    return undefined;
  };
  const onRecord = (record: TreeRecord) => {
    const from = prefix + record.path;
    if (record.kind === "skip") {
      if (record.skipped !== undefined) return outcome(from, { skipped: record.skipped });
      const { code, message } = record.error!;
      // Read on the server and failed there: the message says so.
      return outcome(from, { error: new FerryError(code as ErrorCode, message, { remote: true }) });
    }
    const blocked = failedDirs.size > 0 ? underFailed(record.path) : undefined;
    if (blocked !== undefined) {
      if (record.kind === "dir") return void failedDirs.add(record.path);
      if (record.kind === "file") inline++;
      // Named by the file, and the local directory that failed (said once, before, with why).
      const dir = blocked === "" ? local : `${local}${SEP}${blocked.replaceAll("/", SEP)}`;
      const why = `${escapeName(from)} not written: local ${escapeName(dir)} could not be made`;
      return outcome(from, { error: new FerryError("NOT_A_DIRECTORY", why) });
    }
    const to = localPath(record.path);
    if (record.kind === "dir") {
      try {
        if (makeDirectory(to, record.path === "")) made.add(to);
        dirs.set(record.path, to);
        result.dirs.push({ path: to, mode: record.mode, mtime: record.mtime });
      } catch (err) {
        failedDirs.add(record.path);
        outcome(from, { error: toFerryError(err, `cannot create local ${escapeName(to)}`) });
      }
      return;
    }
    if (record.kind === "large") {
      if (options.maxSize !== undefined && record.size > options.maxSize) {
        return outcome(from, { error: overLimit(from, record.size, options.maxSize) });
      }
      return void result.deferred.push({ from, to, size: record.size });
    }
    inline++;
    const { content } = record;
    if (options.maxSize !== undefined && content.length > options.maxSize) {
      return outcome(from, { error: overLimit(from, content.length, options.maxSize) });
    }
    const hex = hashBytes(algorithm, content);
    // Damaged on the way, or a broken sender: asked for again on its own, which checks again.
    if (!sameHex(record.sum, hex)) {
      return void result.deferred.push({ from, to, size: content.length });
    }
    const fresh = made.has(to.slice(0, to.lastIndexOf(SEP)));
    const placed = place(writer, to, nextTemp, content, record, fresh, options.noClobber);
    if (placed === "defer") result.deferred.push({ from, to, size: content.length });
    else if (placed === "exists") outcome(from, { skipped: "exists" });
    else if (placed) outcome(from, { error: placed });
    else outcome(from, { bytes: content.length, checksum: { algorithm, hex } });
  };
  return conn.request<TreeResult>({ op: "tree", path: remote }, (frame, done) => {
    if (frame.type === FrameType.REPLY) {
      const reply = parseTreeReply(conn.expectReply(frame));
      if (reply.files !== inline) {
        throw new FerryError(
          "PROTOCOL",
          `the server counted ${reply.files} files in the tree, and ${inline} arrived`,
        );
      }
      return done(result);
    }
    let payload: Uint8Array;
    if (frame.type === FrameType.DATA) payload = frame.payload;
    else if (frame.type === FrameType.ZDATA && compressed) {
      payload = decompressChunk(frame.payload, maxData);
    } else {
      throw new FerryError("PROTOCOL", `unexpected frame type ${frame.type} in a tree`);
    }
    decodeRecords(payload, algorithm, onRecord);
  }).finally(() => writer.close());
}

/** Refuse (PROTOCOL) a relative path from the server that is not plain: `..`, `/x`, `.ferry-*`. */
function checkName(path: string): void {
  let canonical: string;
  try {
    canonical = normalizePath(path);
  } catch (err) {
    throw new FerryError("PROTOCOL", `server sent an unsafe name: ${(err as Error).message}`);
  }
  if (canonical !== path || path === "") {
    throw new FerryError("PROTOCOL", `server sent an unsafe name: ${escapeName(path)}`);
  }
}

function overLimit(path: string, size: number, max: number): FerryError {
  return new FerryError(
    "LIMIT",
    `remote ${escapeName(path)} is ${size} bytes, over the ${max}-byte limit for a download ` +
      "(--max-size)",
  );
}

/** Create the directory `path`; one there already will do. Returns whether this call made it. */
function makeDirectory(path: string, parents: boolean): boolean {
  if (exists(path)) {
    if (!Deno.statSync(path).isDirectory) {
      throw new FerryError("NOT_A_DIRECTORY", `local ${escapeName(path)} is not a directory`);
    }
    return false;
  }
  try {
    Deno.mkdirSync(path, { recursive: parents });
    return true;
  } catch (err) {
    if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
    if (!Deno.statSync(path).isDirectory) {
      throw new FerryError("NOT_A_DIRECTORY", `local ${escapeName(path)} is not a directory`);
    }
    return false;
  }
}

/**
 * Write `content` to `to` atomically: a temporary file beside it, its mode
 * and mtime set on the open file, then a rename (a hard link with
 * `noClobber`, which fails if the name is taken). Returns undefined when it
 * is in place, `exists` when `noClobber` found the name taken, `defer` when
 * the destination is no plain file to replace (a FIFO, a device, a symlink,
 * a directory: `get` on its own knows what to do there), or the error.
 */
function place(
  writer: WholeFileWriter,
  to: string,
  tempName: () => string,
  content: Uint8Array,
  { mode, mtime }: { mode: number; mtime: number },
  fresh: boolean,
  noClobber: boolean | undefined,
): undefined | "exists" | "defer" | FerryError {
  // In a directory this run made, nothing is in the way but what another process put there
  // meanwhile, which a rename replaces (as it would a moment later). Elsewhere, most files are
  // new: exists() tells a miss without the exception lstat costs. A dangling symlink counts
  // as absent, and the rename replaces the link itself.
  const slash = to.lastIndexOf(SEP);
  const dir = to.slice(0, slash);
  try {
    if (!fresh && exists(to)) {
      const info = lstatOrUndefined(to);
      if (info && !info.isFile) return "defer";
      if (info && noClobber) return "exists";
    }
    const placed = writer.write(dir || SEP, to.slice(slash + 1), tempName, content, {
      mode,
      mtime,
      noClobber,
    });
    return placed;
  } catch (err) {
    return toFerryError(err, `cannot write local ${escapeName(to)}`);
  }
}

/**
 * Give each directory the mode and mtime it has on the server, deepest
 * first (a directory's mtime changes while files land in it, and a
 * read-only one could not take them). Returns the failures, by directory.
 */
export function setDirectoryTimes(dirs: DirectoryTimes[]): { path: string; error: FerryError }[] {
  const failed: { path: string; error: FerryError }[] = [];
  for (let i = dirs.length - 1; i >= 0; i--) {
    const { path, mode, mtime } = dirs[i];
    try {
      // Only a directory this tree is in: a symlink the user placed there is followed to write
      // into, never changed itself or through (and no setuid, setgid or sticky bit, ever).
      if (!lstatOrUndefined(path)?.isDirectory) continue;
      // 0 is "not known" (a store whose directories have no times, such as S3 without a
      // marker object): such a directory keeps the times and mode it was made with.
      if (mode !== 0) Deno.chmodSync(path, mode & 0o777);
      if (mtime !== 0) Deno.utimeSync(path, mtime / 1000, mtime / 1000);
    } catch (err) {
      failed.push({
        path,
        error: toFerryError(err, `cannot set the times of local ${escapeName(path)}`),
      });
    }
  }
  return failed;
}
