/**
 * Many files at once: trees, globs and sync. Requests go out pipelined on
 * one connection, a window of them in flight, so small files do not pay a
 * round trip each.
 *
 * @module
 */

import { type Algorithm, type Digest, hashToEnd } from "../checksum/checksum.ts";
import { join } from "node:path";
import {
  connectionOf,
  type FerryClient,
  type TransferOptions,
  type TransferResult,
} from "./client.ts";
import { type DirectoryTimes, receiveTree, setDirectoryTimes } from "./tree_get.ts";
import { sendTree } from "./tree_put.ts";
import { WroteThrough } from "./local_io.ts";
import type { Entry } from "../commands.ts";
import { FerryError, isRetriable, toFerryError } from "../util/errors.ts";
import { elapsed } from "../util/elapsed.ts";
import { pathExists, walkLocal } from "../fs/local_files.ts";
import { normalizePath } from "../util/path_jail.ts";
import { escapeName } from "../util/display.ts";
import type { Outcome, Reporter } from "./report.ts";

/** Requests in flight at once on one connection. */
export const WINDOW = 64;

/** Files from this size on keep what a lost connection cut off (smaller: size unknown too). */
const RESUMABLE_SIZE = 1024 * 1024;

/** One file to move: `from` on the sending side, `to` on the receiving side. */
export interface FileJob {
  from: string;
  to: string;
  /** Bytes, where known beforehand (0 otherwise). */
  size: number;
  /**
   * The local end is no file to replace: standard input (`put -`), standard
   * output (`get ... -`), or a FIFO or device that is written through.
   */
  stream?: "stdin" | "stdout" | "device";
}

/**
 * A tree, flattened: directories to create (parents first), files to move,
 * and outcomes known before anything moves (skipped entries, unreadable ones).
 */
export interface Plan {
  dirs: string[];
  files: FileJob[];
  skipped: Outcome[];
  /**
   * Remote trees to receive as one stream each (`get -r` from a server with
   * the `tree` feature), before the files: `from` a remote directory, `to`
   * a local one. Their large files join the files.
   */
  trees?: { from: string; to: string }[];
  /** Directories whose mode and mtime are set once everything is in (a listed tree's). */
  times?: DirectoryTimes[];
  /** Remote paths that streamed trees covered, filled in as they are sent (what `--delete` keeps). */
  covered?: string[];
}

/** How existing destination files are treated. */
export interface BatchOptions {
  /** Skip (as `exists`) rather than replace an existing destination file. */
  noClobber?: boolean;
  /**
   * Change nothing: report what each file would become (moved, or skipped as
   * existing or unchanged), and what `--delete` would remove.
   */
  dryRun?: boolean;
  /** With `delete`: remove at most this many entries (rsync's `--max-delete`). */
  maxDelete?: number;
  /** Skip files whose size and SHA-256 already match (as `unchanged`). */
  sync?: boolean;
  /** After a tree upload, remove remote entries the local tree does not have. */
  delete?: boolean;
  /** How many more times to try a file whose connection failed (default 0). */
  retries?: number;
  /**
   * Continue files that an earlier, interrupted run left partial: `true`
   * insists (and is refused where nothing can be resumed, as into a device),
   * the default does where it can, `false` starts afresh (retries always
   * continue).
   */
  resume?: boolean;
  /** The most bytes a download may announce (see `TransferOptions.maxSize`). */
  maxSize?: number;
  /** Where `put -` reads from and `get ... -` writes to (default: stdin and stdout). */
  stdio?: StdStreams;
  /**
   * Stop: no file is started once it is aborted, and the failures of those
   * in flight (the caller closed their connection) are not reported one by one.
   */
  signal?: AbortSignal;
}

/** The standard streams a transfer of `-` uses. */
export interface StdStreams {
  /** What `put -` sends, with its size when that is known (stdin redirected from a file). */
  input(): { stream: ReadableStream<Uint8Array>; size?: number };
  /** Where `get ... -` writes. */
  output(): WritableStream<Uint8Array>;
}

/** Reserved names (`.ferry-*`) in a tree: reported as skipped, never dropped in silence. */
const RESERVED = "reserved name";

/**
 * Refuse a plan in which two files would land on the same name: pipelined,
 * the last would silently win.
 */
function checkDistinct(plan: Plan): void {
  const seen = new Set<string>();
  for (const { to } of plan.files) {
    if (seen.has(to)) {
      throw new FerryError("USAGE", `two sources would both be written to ${escapeName(to)}`);
    }
    seen.add(to);
  }
}

/** Run `fn` over `items` with at most `limit` running at once, in order of start. */
async function runPool<T>(
  items: T[],
  limit: number,
  fn: (item: T, worker: number) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  let next = 0;
  const worker = async (w: number) => {
    while (next < items.length && !signal?.aborted) await fn(items[next++], w);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, (_, w) => worker(w)));
}

/**
 * The local path for `name`, a relative path received from the server,
 * under `base`. Anything that is not a plain relative path (absolute, `..`,
 * control characters, reserved names) is refused, so whatever a server
 * sends, nothing is written outside `base`.
 *
 * @example
 * ```ts
 * import { localPathFor } from "./batch.ts";
 * console.assert(localPathFor("/tmp/dest", "a/b.txt") === "/tmp/dest/a/b.txt");
 * ```
 */
export function localPathFor(base: string, name: string): string {
  let canonical: string;
  try {
    canonical = normalizePath(name);
  } catch (err) {
    throw new FerryError("PROTOCOL", `server sent an unsafe name: ${(err as Error).message}`);
  }
  if (canonical === "" || canonical !== name) {
    throw new FerryError("PROTOCOL", `server sent an unsafe name: ${escapeName(name)}`);
  }
  return join(base, ...canonical.split("/"));
}

/** Walk a local directory into a plan for uploading it to `remoteBase`. */
export async function planPut(localDir: string, remoteBase: string): Promise<Plan> {
  const top = await Deno.stat(localDir).catch(() => undefined);
  const plan: Plan = {
    dirs: [remoteBase],
    files: [],
    skipped: [],
    times: top
      ? [{ path: remoteBase, mode: (top.mode ?? 0) & 0o777, mtime: top.mtime?.getTime() ?? 0 }]
      : [],
  };
  const prefix = remoteBase === "" ? "" : `${remoteBase}/`;
  try {
    const onError = (path: string, err: unknown) => {
      const error = toFerryError(err, `cannot read ${escapeName(join(localDir, path))}`);
      plan.skipped.push({ op: "put", path: prefix + path, bytes: 0, seconds: 0, error });
    };
    const onReserved = (path: string) =>
      plan.skipped.push({
        op: "put",
        path: prefix + path,
        bytes: 0,
        seconds: 0,
        skipped: RESERVED,
      });
    for await (const e of walkLocal(localDir, { recursive: true, onError, onReserved })) {
      const to = prefix + e.name;
      if (e.type === "dir") {
        plan.dirs.push(to);
        plan.times!.push({ path: to, mode: e.mode, mtime: e.mtime });
      } else if (e.type === "file") {
        plan.files.push({ from: join(localDir, e.name), to, size: e.size });
      } else plan.skipped.push({ op: "put", path: to, bytes: 0, seconds: 0, skipped: e.type });
    }
  } catch (err) {
    throw toFerryError(err, escapeName(localDir));
  }
  return plan;
}

/**
 * Plan downloading the remote directory `remoteDir` to `localBase`: as one
 * stream when `stream` allows it and the server can (feature `tree`), else
 * by listing it.
 */
export async function planGet(
  client: FerryClient,
  remoteDir: string,
  localBase: string,
  options: { stream?: boolean } = {},
): Promise<Plan> {
  const top = await client.stat(remoteDir);
  if (top.type !== "dir") {
    throw new FerryError("NOT_A_DIRECTORY", `not a directory: ${escapeName(remoteDir)} (drop -r)`);
  }
  if (options.stream && client.welcome.features?.includes("tree")) {
    return { dirs: [], files: [], skipped: [], trees: [{ from: remoteDir, to: localBase }] };
  }
  const plan: Plan = {
    dirs: [localBase],
    files: [],
    skipped: [],
    times: [{ path: localBase, mode: top.mode, mtime: top.mtime }],
  };
  const prefix = remoteDir === "" ? "" : `${remoteDir}/`;
  const onReserved = (path: string) =>
    plan.skipped.push({ op: "get", path: prefix + path, bytes: 0, seconds: 0, skipped: RESERVED });
  for (const e of await client.list(remoteDir, { recursive: true, onReserved })) {
    const to = localPathFor(localBase, e.name);
    const from = prefix + e.name;
    if (e.type === "dir") {
      plan.dirs.push(to);
      plan.times!.push({ path: to, mode: e.mode, mtime: e.mtime });
    } else if (e.type === "file") plan.files.push({ from, to, size: e.size });
    else plan.skipped.push({ op: "get", path: from, bytes: 0, seconds: 0, skipped: e.type });
  }
  return plan;
}

/** The checksum of the local file at `path`, read through `buf`; undefined when it cannot be read. */
async function hashLocal(
  path: string,
  buf: Uint8Array,
  algorithm: Algorithm,
): Promise<Digest | undefined> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch {
    return undefined;
  }
  try {
    return await hashToEnd(file, buf, algorithm);
  } finally {
    file.close();
  }
}

type Direction = "put" | "get";

/** Pause before attempt `attempt + 1`: 0.5 s, 1 s, 2 s, ... up to 10 s. */
export function backoffMs(attempt: number): number {
  return Math.min(10_000, 500 * 2 ** (attempt - 1));
}

/**
 * Move `plan`'s files in one direction, `WINDOW` requests in flight,
 * reporting each outcome. Directories are created first (empty ones too).
 * Files that fail because the connection did are retried on a new one
 * (`client()` reconnects), up to `options.retries` more times, with backoff.
 */
export async function transferPlan(
  client: () => Promise<FerryClient>,
  direction: Direction,
  plan: Plan,
  reporter: Reporter,
  options: BatchOptions = {},
): Promise<void> {
  checkDistinct(plan);
  for (const skipped of plan.skipped) reporter.result(skipped);
  // Directories first, so that empty ones exist too; a failure is reported and the rest go on.
  const first = await client();
  await runPool(options.dryRun ? [] : plan.dirs, WINDOW, async (dir) => {
    try {
      if (direction === "put") await first.mkdir(dir, { parents: true });
      else await Deno.mkdir(dir, { recursive: true });
    } catch (err) {
      reporter.result({
        op: "mkdir",
        path: dir,
        bytes: 0,
        seconds: 0,
        error: toFerryError(err, escapeName(dir)),
      });
    }
  });
  const times = [...plan.times ?? []];
  let jobs = plan.files;
  for (const tree of plan.trees ?? []) {
    if (options.signal?.aborted) return;
    const more = direction === "get"
      ? await receiveTreeOrList(client, tree, reporter, options)
      : await sendTreeOrWalk(client, tree, reporter, options);
    jobs = [...jobs, ...more.files];
    times.push(...more.times);
    (plan.covered ??= []).push(...more.covered);
  }
  reporter.plan(jobs.length, jobs.reduce((n, f) => n + f.size, 0));
  const buffers: Uint8Array[] = [];
  const retries = options.retries ?? 0;
  try {
    await transferJobs(client, direction, jobs, reporter, options, buffers, retries);
  } finally {
    // Last, deepest first: files landing in a directory change its mtime.
    if (options.dryRun || options.signal?.aborted) {
      // Nothing was made or moved, or the user stopped: no times to give.
    } else if (direction === "get") {
      for (const { path, error } of setDirectoryTimes(times)) {
        reporter.result({ op: "get", path, bytes: 0, seconds: 0, error });
      }
    } else if (times.length > 0) {
      // Without a connection the files' own failures said so already.
      const conn = await client().catch(() => undefined);
      plan.times = times.reverse();
      if (conn) await setRemoteTimes(conn, plan.times, reporter);
    }
  }
}

/**
 * Give the remote directories of an uploaded `plan` their modes and mtimes
 * again: after `--delete` removed entries in them, which changed their
 * mtimes.
 */
export async function restoreRemoteTimes(
  client: FerryClient,
  plan: Plan,
  reporter: Reporter,
): Promise<void> {
  if (plan.times && plan.times.length > 0) await setRemoteTimes(client, plan.times, reporter);
}

/** Give remote directories their modes and mtimes, in the order given; failures are reported. */
async function setRemoteTimes(
  client: FerryClient,
  times: DirectoryTimes[],
  reporter: Reporter,
): Promise<void> {
  // A server of the first version 2 releases knows no setstat: the directories keep their times.
  if (!client.welcome.features?.includes("tree")) return;
  // The served root is the operator's, not the tree's (`put -r src /`).
  await runPool(times.filter((t) => t.path !== ""), WINDOW, async ({ path, mode, mtime }) => {
    try {
      await client.setStat(path, { mode, mtime });
    } catch (err) {
      reporter.result({ op: "put", path, bytes: 0, seconds: 0, error: toFerryError(err) });
    }
  });
}

/** What a tree left to do once streamed: files to move one by one, directory times, paths. */
interface TreeRest {
  files: FileJob[];
  times: DirectoryTimes[];
  /** The tree's remote paths (what `--delete` keeps). */
  covered: string[];
}

/**
 * Receive one remote tree as a stream, reporting each file; returns the
 * files left to fetch one by one, and the directories to give their times.
 * If the connection fails midway and retries are allowed, the tree is
 * listed instead and what was not yet reported is fetched file by file.
 */
async function receiveTreeOrList(
  client: () => Promise<FerryClient>,
  tree: { from: string; to: string },
  reporter: Reporter,
  options: BatchOptions,
): Promise<TreeRest> {
  const reported = new Set<string>();
  let err: FerryError;
  try {
    const conn = await client();
    const result = await receiveTree(connectionOf(conn), tree.from, tree.to, {
      noClobber: options.noClobber,
      maxSize: options.maxSize,
      onOutcome: (o) => {
        reported.add(o.path);
        reporter.result(o);
      },
    });
    return { files: result.deferred, times: result.dirs, covered: [] };
  } catch (e) {
    err = toFerryError(e);
  }
  if (options.signal?.aborted) return { files: [], times: [], covered: [] };
  if (!isRetriable(err) || (options.retries ?? 0) < 1) {
    reporter.result({ op: "get", path: tree.from, bytes: 0, seconds: 0, error: err });
    return { files: [], times: [], covered: [] };
  }
  const listed = await planGet(await client(), tree.from, tree.to);
  for (const dir of listed.dirs) await Deno.mkdir(dir, { recursive: true }).catch(() => {});
  for (const s of listed.skipped) if (!reported.has(s.path)) reporter.result(s);
  return {
    files: listed.files.filter((f) => !reported.has(f.from)),
    times: listed.times ?? [],
    covered: [],
  };
}

/**
 * Send one local tree as a stream where the server can take one and
 * `--sync` does not compare file by file; otherwise (or after a lost
 * connection, when retries are allowed) walk it into file jobs. Returns
 * the files left to send one by one, the directories to give their times,
 * and the remote paths the tree covers.
 */
async function sendTreeOrWalk(
  client: () => Promise<FerryClient>,
  tree: { from: string; to: string },
  reporter: Reporter,
  options: BatchOptions,
): Promise<TreeRest> {
  const reported = new Set<string>();
  const conn = await client();
  if (conn.welcome.features?.includes("tree") && !options.sync) {
    let err: FerryError;
    try {
      const sent = await sendTree(connectionOf(conn), tree.from, tree.to, {
        noClobber: options.noClobber,
        onOutcome: (o) => {
          reported.add(o.path);
          reporter.result(o);
        },
      });
      return {
        files: sent.deferred,
        times: sent.dirs,
        covered: [tree.to, ...sent.paths],
      };
    } catch (e) {
      err = toFerryError(e);
    }
    if (options.signal?.aborted) return { files: [], times: [], covered: [] };
    if (!isRetriable(err) || (options.retries ?? 0) < 1) {
      // Each file the server did not confirm is reported with what stopped the stream.
      const walked = await planPut(tree.from, tree.to);
      for (const f of walked.files) {
        if (!reported.has(f.to)) {
          reporter.result({ op: "put", path: f.to, bytes: 0, seconds: 0, error: err });
        }
      }
      return { files: [], times: [], covered: [] };
    }
  }
  const walked = await planPut(tree.from, tree.to);
  // Only empty directories need making: an upload makes its parents. Without a connection,
  // the files' own attempts report it.
  const again = await client().catch(() => undefined);
  await runPool(again ? walked.dirs : [], WINDOW, async (dir) => {
    try {
      await again!.mkdir(dir, { parents: true });
    } catch (err) {
      reporter.result({ op: "mkdir", path: dir, bytes: 0, seconds: 0, error: toFerryError(err) });
    }
  });
  for (const s of walked.skipped) if (!reported.has(s.path)) reporter.result(s);
  return {
    files: walked.files.filter((f) => !reported.has(f.to)),
    times: walked.times ?? [],
    covered: [
      ...walked.dirs,
      ...walked.files.map((f) => f.to),
      ...walked.skipped.map((s) => s.path),
    ],
  };
}

/** Move `jobs` (see {@linkcode transferPlan}). */
async function transferJobs(
  client: () => Promise<FerryClient>,
  direction: Direction,
  jobs: FileJob[],
  reporter: Reporter,
  options: BatchOptions,
  buffers: Uint8Array[],
  retries: number,
): Promise<void> {
  for (let attempt = 1; jobs.length > 0; attempt++) {
    const retry: FileJob[] = [];
    let conn: FerryClient;
    try {
      conn = await client();
    } catch (err) {
      const e = toFerryError(err);
      if (isRetriable(e) && attempt <= retries) {
        await new Promise((r) => setTimeout(r, backoffMs(attempt)));
        continue;
      }
      // Out of tries: every file still to go is a failure, reported like any other.
      for (const job of jobs) {
        const path = direction === "put" ? job.to : job.from;
        reporter.result({ op: direction, path, bytes: 0, seconds: 0, attempts: attempt, error: e });
      }
      return;
    }
    if (options.signal?.aborted) return;
    await runPool(jobs, WINDOW, async (job, worker) => {
      const path = direction === "put" ? job.to : job.from;
      const started = performance.now();
      const outcome = (fields: Partial<Outcome>): Outcome => ({
        op: direction,
        path,
        bytes: 0,
        seconds: elapsed(started),
        attempts: attempt,
        ...fields,
      });
      try {
        if (options.dryRun) {
          const buf = buffers[worker] ??= new Uint8Array(256 * 1024);
          return reporter.result(outcome(await dryRun(conn, direction, job, options, buf)));
        }
        // Known to exist locally: skip before moving a byte (the atomic link still guards the race).
        if (
          direction === "get" && options.noClobber && job.stream !== "stdout" &&
          await pathExists(job.to)
        ) {
          return reporter.result(outcome({ skipped: "exists" }));
        }
        if (options.sync) {
          if (job.stream) {
            const local = direction === "put" ? job.from : job.to;
            throw new FerryError(
              "USAGE",
              `--sync compares files, and local ${escapeName(local)} is not a regular file`,
            );
          }
          const buf = buffers[worker] ??= new Uint8Array(256 * 1024);
          const checksum = await sameContent(conn, direction, job, buf);
          if (checksum) return reporter.result(outcome({ checksum, skipped: "unchanged" }));
        }
        // Whatever is cut off is kept, so that a retry, or a later run, continues it; a small
        // file is simply sent again, which costs less than keeping track of it. What is
        // written through (a pipe, a device) keeps nothing: it cannot be taken back.
        const keepPartial = !job.stream && (job.size === 0 || job.size >= RESUMABLE_SIZE);
        if (job.stream && options.resume === true) {
          const local = direction === "put" ? job.from : job.to;
          throw new FerryError(
            "USAGE",
            `--resume needs a regular file, and local ${escapeName(local)} is not one`,
          );
        }
        const transfer: TransferOptions = {
          noClobber: options.noClobber,
          keepPartial,
          // Asked for, even a small file looks for what an earlier run kept.
          resume: options.resume === true ||
            (keepPartial && (options.resume !== false || attempt > 1)),
          maxSize: options.maxSize,
          // What an interruption keeps on the server; a download's own partial speaks for itself.
          ...reporter.track(path, keepPartial && direction === "put"),
        };
        const r: TransferResult = direction === "put"
          ? await putJob(conn, job, transfer, options.stdio)
          : await conn.get(
            job.from,
            job.stream === "stdout" ? stdio(options).output() : job.to,
            transfer,
          );
        const { bytes, resumed, checksum, seconds } = r;
        reporter.result(outcome({ bytes, resumed, checksum, seconds }));
      } catch (err) {
        let e = toFerryError(err);
        if (direction === "get" && e.code === "NOT_A_FILE" && e.remote) {
          // The one hint a user of scp needs here.
          const entry = await conn.stat(job.from).catch(() => undefined);
          if (entry?.type === "dir") {
            e = new FerryError(
              "NOT_A_FILE",
              `remote ${escapeName(job.from)} is a directory: get -r downloads it`,
            );
          }
        }
        if (
          attempt > 1 && direction === "put" && (e.code === "EXISTS" || e.code === "PERMISSION")
        ) {
          // The attempt before may have stored the file and lost only the reply saying so.
          const buf = buffers[worker] ??= new Uint8Array(256 * 1024);
          const checksum = await sameContent(conn, direction, job, buf).catch(() => undefined);
          if (checksum) return reporter.result(outcome({ bytes: job.size, checksum }));
        }
        if (e.code === "EXISTS" && options.noClobber) {
          return reporter.result(outcome({ skipped: "exists" }));
        }
        // Stopped by the user: the interruption is reported once, not per file.
        if (options.signal?.aborted) return;
        // A pipe or a device cannot be read again, nor what it was given taken back.
        const again = !job.stream && !(err instanceof WroteThrough);
        if (again && isRetriable(e) && attempt <= retries) return void retry.push(job);
        reporter.result(outcome({ error: e }));
      }
    }, options.signal);
    if (retry.length > 0) await new Promise((r) => setTimeout(r, backoffMs(attempt)));
    jobs = retry;
  }
}

function stdio(options: BatchOptions): StdStreams {
  if (!options.stdio) throw new FerryError("USAGE", "no standard streams to transfer '-' with");
  return options.stdio;
}

/** Upload one job: a local file, or standard input. */
function putJob(
  conn: FerryClient,
  job: FileJob,
  transfer: TransferOptions,
  streams: StdStreams | undefined,
): Promise<TransferResult> {
  if (job.stream !== "stdin") return conn.put(job.from, job.to, transfer);
  const { stream, size } = stdio({ stdio: streams }).input();
  return conn.put(stream, job.to, { ...transfer, size });
}

/**
 * What `job` would become, found without changing anything: skipped as
 * existing (`noClobber`) or unchanged (`sync`), or moved, with its size.
 */
async function dryRun(
  client: FerryClient,
  direction: Direction,
  job: FileJob,
  options: BatchOptions,
  buf: Uint8Array,
): Promise<Partial<Outcome>> {
  let size = job.size;
  if (direction === "get" && size === 0) size = (await client.stat(job.from)).size;
  if (options.noClobber && !job.stream) {
    const there = direction === "get"
      ? await pathExists(job.to)
      : await client.stat(job.to).then((e) => e.type === "file", () => false);
    if (there) return { skipped: "exists", dryRun: true };
  }
  if (options.sync && !job.stream) {
    const checksum = await sameContent(client, direction, { ...job, size }, buf);
    if (checksum) return { checksum, skipped: "unchanged", dryRun: true };
  }
  return { bytes: size, dryRun: true };
}

/**
 * Whether the destination of `job` already holds the same content: same
 * size, then the same checksum, in the connection's algorithm (computed, or
 * remembered, by the server for the remote side).
 * Returns the shared hash, or undefined if they differ.
 */
async function sameContent(
  client: FerryClient,
  direction: Direction,
  job: FileJob,
  buf: Uint8Array,
): Promise<Digest | undefined> {
  const [localPath, remotePath] = direction === "put" ? [job.from, job.to] : [job.to, job.from];
  const local = await Deno.stat(localPath).catch(() => undefined);
  // A planned size of 0 may mean "not known yet" (a single get): then sum decides.
  if (!local?.isFile || (job.size > 0 && local.size !== job.size)) return undefined;
  const algorithm = client.welcome.checksum;
  const remote = await client.sum(remotePath, algorithm).catch((err) => {
    if (toFerryError(err).code === "NOT_FOUND") return undefined;
    throw err;
  });
  if (!remote || remote.size !== local.size) return undefined;
  const digest = await hashLocal(localPath, buf, algorithm);
  return digest?.hex === remote.digest.hex ? digest : undefined;
}

/**
 * Remove what the remote tree under `remoteBase` has and `plan` does not:
 * whole directories at once, deepest last. Dangerous by design (`--delete`).
 */
export async function deleteExtraneous(
  client: FerryClient,
  remoteBase: string,
  plan: Plan,
  reporter: Reporter,
  options: { dryRun?: boolean; maxDelete?: number } = {},
): Promise<void> {
  const keep = new Set([
    ...plan.covered ?? [],
    ...plan.dirs,
    ...plan.files.map((f) => f.to),
    ...plan.skipped.map((s) => s.path),
  ]);
  const prefix = remoteBase === "" ? "" : `${remoteBase}/`;
  // A destination that is not there yet (a dry run made nothing) holds nothing to delete.
  const remote: Entry[] = await client.list(remoteBase, { recursive: true }).catch((err) => {
    if (options.dryRun && toFerryError(err).code === "NOT_FOUND") return [];
    throw err;
  });
  const doomed: Entry[] = [];
  const doomedDirs = new Set<string>();
  // Listings name a directory before its contents, so an ancestor is always seen first.
  const insideDoomed = (name: string) => {
    for (let i = name.lastIndexOf("/"); i > 0; i = name.lastIndexOf("/", i - 1)) {
      if (doomedDirs.has(name.slice(0, i))) return true;
    }
    return false;
  };
  for (const e of remote) {
    if (keep.has(prefix + e.name) || insideDoomed(e.name)) continue;
    doomed.push(e);
    if (e.type === "dir") doomedDirs.add(e.name);
  }
  const limit = options.maxDelete ?? Infinity;
  if (doomed.length > limit) {
    // As rsync: the first ones up to the limit, then a failure that says how many were left.
    const left = doomed.length - limit;
    doomed.length = limit;
    reporter.result({
      op: "rm",
      path: remoteBase,
      bytes: 0,
      seconds: 0,
      error: new FerryError(
        "LIMIT",
        `deletions stopped at --max-delete ${limit}: ${left} more ` +
          `${left === 1 ? "entry" : "entries"} not deleted`,
      ),
    });
  }
  await runPool(doomed, WINDOW, async (e) => {
    const path = prefix + e.name;
    const started = performance.now();
    if (options.dryRun) {
      return reporter.result({ op: "rm", path, bytes: 0, seconds: 0, dryRun: true });
    }
    try {
      await client.remove(path, { recursive: e.type === "dir" });
      reporter.result({ op: "rm", path, bytes: 0, seconds: elapsed(started) });
    } catch (err) {
      reporter.result({ op: "rm", path, bytes: 0, seconds: 0, error: toFerryError(err) });
    }
  });
}
