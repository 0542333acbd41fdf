/**
 * A local tree sent as one stream (`put -r` to a server with the `tree`
 * feature): the tree is walked once, each small file read whole and sent
 * inline with its checksum in records packed into DATA frames, right behind
 * one `puttree` request. The server stores each file atomically as its
 * record arrives and names only the ones it could not store. Larger files
 * are handed back, to be sent one by one with `put` (resumable).
 *
 * @module
 */

import { errorToMessage, parseTreeReply } from "../commands.ts";
import { FrameType } from "../frame.ts";
import { plainDirectory } from "../fs/directory.ts";
import { readLocalTree } from "../fs/tree_read.ts";
import { escapeName } from "../util/display.ts";
import { connectionLost, type ErrorCode, FerryError, toFerryError } from "../util/errors.ts";
import { inlineMax, sendTreeRecords } from "../wire/tree_send.ts";
import type { Connection } from "./connection.ts";
import type { Outcome } from "./report.ts";
import type { DirectoryTimes } from "./tree_get.ts";

/** What {@linkcode sendTree} did and left to do. */
export interface SentTree {
  /** Files to send one by one (too large to go inline): local `from`, remote `to`. */
  deferred: { from: string; to: string; size: number }[];
  /** The tree's directories by remote path, parents first, with their modes and mtimes. */
  dirs: DirectoryTimes[];
  /** Every remote path the tree holds (what `--delete` keeps). */
  paths: string[];
}

/** How {@linkcode sendTree} sends. */
export interface SendTreeOptions {
  /** The server refuses (as `exists`) to replace files already there. */
  noClobber?: boolean;
  /** Hears each file that was stored, skipped or failed. */
  onOutcome: (outcome: Outcome) => void;
}

/**
 * Send the local directory `local` as the remote directory `remote`. Every
 * file is reported: a failure as the server names it, the rest once the
 * server confirms the whole stream.
 */
export async function sendTree(
  conn: Connection,
  local: string,
  remote: string,
  options: SendTreeOptions,
): Promise<SentTree> {
  const result: SentTree = { deferred: [], dirs: [], paths: [] };
  const prefix = remote === "" ? "" : `${remote}/`;
  const localPrefix = local.endsWith("/") ? local : `${local}/`;
  const algorithm = conn.algorithm;
  /** Files sent, waiting for the server's word: path, bytes, checksum. */
  const sent: { path: string; bytes: number; hex: string }[] = [];
  const failed = new Set<string>();
  /** Directories sent: a failure of one is a failed mkdir. */
  const dirs = new Set<string>();
  const started = performance.now();
  const report = (path: string, fields: Partial<Outcome>) =>
    options.onOutcome({ op: "put", path, bytes: 0, seconds: 0, ...fields });
  let localError: FerryError | undefined;

  const body = async (id: number) => {
    const source = {
      real: local,
      display: local,
      pin: (dir: string) => plainDirectory(dir),
      reportTemp: true,
      named: (path: string) =>
        `cannot read local ${escapeName(path === local ? local : localPrefix + path)}`,
    };
    const buf = conn.sendBuf;
    const items = readLocalTree(source, inlineMax(buf.length, algorithm));
    let counts: { files: number; bytes: number };
    try {
      counts = await sendTreeRecords(conn.frames, id, buf, items, {
        algorithm,
        compress: conn.welcome.compress !== undefined,
        // The server refused the tree (or the connection failed): stop reading.
        stopped: () =>
          conn.waiting(id) ? undefined : new FerryError("CANCELLED", "tree upload stopped"),
        // What the server need not hear of: the tree's own directory (the request names it),
        // larger files (sent on their own after), entries left out (reported here).
        send: (item) => {
          const to = prefix + item.path;
          if (item.kind === "dir") {
            result.dirs.push({
              path: item.path === "" ? remote : to,
              mode: item.mode,
              mtime: item.mtime,
            });
            if (item.path === "") return false;
            dirs.add(to);
          } else if (item.kind === "file") {
            result.deferred.push({ from: localPrefix + item.path, to, size: item.size });
            result.paths.push(to);
            return false;
          } else {
            report(to, item.error ? { error: item.error } : { skipped: item.skipped });
            result.paths.push(to);
            return false;
          }
          result.paths.push(to);
          return true;
        },
        sent: (path, size, hex) => {
          sent.push({ path: prefix + path, bytes: size, hex });
          result.paths.push(prefix + path);
        },
        unreadable: (path, err) => {
          report(prefix + path, {
            error: toFerryError(err, `local ${escapeName(localPrefix + path)}`),
          });
          result.paths.push(prefix + path);
          return false;
        },
      });
    } catch (err) {
      const e = toFerryError(err);
      if (connectionLost(e)) throw e;
      if (e.code !== "CANCELLED") {
        localError = toFerryError(err, `cannot read local ${escapeName(local)}`);
      }
      // Ends the body early: the server keeps what it stored and answers with an error.
      await conn.frames.sendMessage(FrameType.ERROR, id, errorToMessage(localError ?? e));
      return;
    }
    await conn.frames.sendMessage(FrameType.END, id, counts);
  };

  const message = { op: "puttree" as const, path: remote, noClobber: options.noClobber ?? false };
  try {
    await conn.request<void>(message, (frame, done) => {
      const reply = conn.expectReply(frame);
      const failure = reply.failed as Record<string, unknown> | undefined;
      if (failure) {
        const rel = typeof failure.path === "string" ? failure.path : "";
        const path = prefix + rel;
        failed.add(path);
        const code = String(failure.code) as ErrorCode;
        // The server's own failure: the message says so ("... (on the server)").
        const error = new FerryError(code, String(failure.message ?? "failed"), { remote: true });
        if (dirs.has(path)) options.onOutcome({ op: "mkdir", path, bytes: 0, seconds: 0, error });
        else if (code === "EXISTS" && options.noClobber) report(path, { skipped: "exists" });
        else report(path, { error });
        return;
      }
      const end = parseTreeReply(reply);
      if (end.files !== sent.length) {
        throw new FerryError(
          "PROTOCOL",
          `the server counted ${end.files} files in the tree, and ${sent.length} were sent`,
        );
      }
      done();
    }, body);
  } catch (err) {
    throw localError ?? err;
  }
  const seconds = (performance.now() - started) / 1000 / Math.max(1, sent.length);
  for (const { path, bytes, hex } of sent) {
    if (!failed.has(path)) report(path, { bytes, seconds, checksum: { algorithm, hex } });
  }
  // A directory that could not be made gets no times either.
  result.dirs = result.dirs.filter((d) => !failed.has(d.path));
  return result;
}
