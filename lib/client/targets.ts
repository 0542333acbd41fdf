/**
 * Where files go: turning what the user typed (`get REMOTE [LOCAL]`,
 * `put LOCAL... [REMOTE]`, globs, `-r`) into a {@linkcode Plan} of
 * directories and file jobs.
 *
 * @module
 */

import { basename, join } from "node:path";
import { localPathFor, type Plan, planGet, planPut } from "./batch.ts";
import type { FerryClient } from "./client.ts";
import { FerryError, toFerryError } from "../util/errors.ts";
import { escapeGlob, expandGlob, hasGlob, unescapeGlob } from "../util/glob.ts";
import { destination, isStreamed, pathExists, walkLocal } from "../fs/local_files.ts";
import { normalizePath } from "../util/path_jail.ts";
import { escapeName } from "../util/display.ts";

/** The last component of `path`, which must name something (not `""`, `.` or `..`). */
function baseName(path: string): string {
  const name = basename(path);
  if (name === "" || name === "." || name === "..") {
    throw new FerryError("USAGE", `cannot name a local file after ${escapeName(path)}`);
  }
  return name;
}

/** Where a downloaded file goes: LOCAL, LOCAL/NAME if it is a directory or ends in /, ./NAME. */
async function localTarget(remote: string, local: string | undefined): Promise<string> {
  const name = baseName(remote);
  if (local === undefined) return name;
  if (local.endsWith("/")) return join(local, name);
  const info = await Deno.stat(local).catch(() => undefined);
  return info?.isDirectory ? join(local, name) : local;
}

/**
 * Plan a `get`: one file, a server-side glob's matches, or with `recursive` a tree.
 * `local` is the destination as typed, if any.
 */
export async function planGetArgs(
  client: FerryClient,
  remote: string,
  local: string | undefined,
  options: { recursive: boolean; stream?: boolean },
): Promise<Plan> {
  const { recursive } = options;
  const tree = { stream: options.stream };
  if (local === "") throw new FerryError("USAGE", "the local path is empty");
  if (local === "-") {
    // Standard output takes one file's bytes, as `cat` would: a glob must match one file.
    let from = unescapeGlob(remote);
    const matches = hasGlob(remote) ? await client.glob(remote) : [];
    if (recursive || matches.length > 1 || (matches.length === 1 && matches[0].type !== "file")) {
      throw new FerryError("USAGE", "only a single file can go to standard output ('-')");
    }
    if (matches.length === 1) from = matches[0].name;
    return { dirs: [], files: [{ from, to: "-", size: 0, stream: "stdout" }], skipped: [] };
  }
  if (hasGlob(remote)) {
    const dir = local ?? ".";
    const plan: Plan = { dirs: [], files: [], skipped: [] };
    const matches = await client.glob(remote);
    if (matches.length === 0) {
      // As a shell does with a pattern that matches nothing: the name itself, if there is one
      // (`pages/[slug].js` names that file).
      const literal = unescapeGlob(remote);
      const there = await client.stat(literal).catch(() => undefined);
      if (!there) throw new FerryError("NOT_FOUND", `no match: remote ${escapeName(remote)}`);
      return await planGetArgs(client, escapeGlob(literal), local, options);
    }
    if (matches.length > 1 && local !== undefined) await mustBeDirectory(local);
    // One file matched, and a name given that is no directory: the file takes that name, as
    // put does with such a glob.
    const only = matches.length === 1 && matches[0].type === "file" ? matches[0] : undefined;
    if (only && local !== undefined && !local.endsWith("/") && !await isDirectory(local)) {
      return planGetArgs(client, escapeGlob(only.name), local, options);
    }
    for (const e of matches) {
      const to = localPathFor(dir, baseName(e.name));
      if (e.type === "file") plan.files.push({ from: e.name, to, size: e.size });
      else if (e.type === "dir" && recursive) merge(plan, await planGet(client, e.name, to, tree));
      else plan.skipped.push({ op: "get", path: e.name, bytes: 0, seconds: 0, skipped: e.type });
    }
    return plan;
  }
  // No wildcard left: `\` escapes name the characters they escape.
  remote = unescapeGlob(remote);
  if (recursive) {
    // The root has no name of its own: it goes into the local directory given.
    if (remote === "" && local === undefined) {
      throw new FerryError("USAGE", "get -r / needs the local directory to fill (get -r / DEST)");
    }
    const target = local === undefined
      ? baseName(remote)
      : local.endsWith("/") && remote !== ""
      ? join(local, baseName(remote))
      : local;
    // A file where the tree or one of its parents would go: said once, not once for each file
    // it keeps out.
    const blocker = await fileOnPath(target);
    if (blocker !== undefined) {
      throw new FerryError("NOT_A_DIRECTORY", `local ${escapeName(blocker)} is not a directory`);
    }
    return await planGet(client, remote, target, tree);
  }
  const to = await localTarget(remote, local);
  // Size is learned from the reply; the progress total follows it.
  const job = { from: remote, to, size: 0 };
  return {
    dirs: [],
    files: [destination(to).device ? { ...job, stream: "device" } : job],
    skipped: [],
  };
}

/**
 * Plan a `get` of several remote paths or globs into the local directory
 * `local`, as scp does (`get a b 'c/*.log' DEST/`): it must exist.
 */
export async function planGetMany(
  client: FerryClient,
  remotes: string[],
  local: string,
  options: { recursive: boolean; stream?: boolean },
): Promise<Plan> {
  await mustBeDirectory(local);
  const plan: Plan = { dirs: [], files: [], skipped: [] };
  const into = local.endsWith("/") ? local : `${local}/`;
  for (const remote of remotes) merge(plan, await planGetArgs(client, remote, into, options));
  return plan;
}

function merge(into: Plan, from: Plan): void {
  into.dirs.push(...from.dirs);
  into.files.push(...from.files);
  into.skipped.push(...from.skipped);
  if (from.trees) (into.trees ??= []).push(...from.trees);
  if (from.times) (into.times ??= []).push(...from.times);
}

/** Options for {@linkcode planPutArgs}. */
export interface PutArgsOptions {
  /** Upload directories as trees. */
  recursive: boolean;
  /** Make a remote path root-relative (the shell's working directory). */
  remote: (path: string) => string;
  /** Send trees as one stream each where the server can take one (see `Plan.trees`). */
  stream?: boolean;
  /**
   * Whether a remote path is a directory: one file put to it goes inside,
   * as scp and cp put it (without this, the name given is the file's).
   */
  remoteIsDir?: (path: string) => Promise<boolean>;
}

/**
 * Plan a `put` of `sources` (files, local globs, or with `recursive`
 * directories) to `target` as typed. `treeRoot` is the remote directory of
 * a single tree, for `--delete`.
 */
export async function planPutArgs(
  sources: string[],
  target: string | undefined,
  options: PutArgsOptions,
): Promise<{ plan: Plan; treeRoot?: string }> {
  const { recursive, remote } = options;
  if (sources.includes("-")) {
    // Standard input is one file, and only the remote name given says what to call it.
    if (sources.length > 1 || target === undefined || target === "" || target.endsWith("/")) {
      throw new FerryError("USAGE", "put - needs the remote file name to write (put - NAME)");
    }
    if (recursive) {
      throw new FerryError("USAGE", "put -r takes directories, not - (standard input)");
    }
    return {
      plan: {
        dirs: [],
        files: [{ from: "-", to: remote(target), size: 0, stream: "stdin" }],
        skipped: [],
      },
    };
  }
  const locals: string[] = [];
  for (const source of sources) {
    if (!hasGlob(source)) {
      locals.push(await localName(source));
      continue;
    }
    const absolute = source.startsWith("/");
    const base = absolute ? "/" : ".";
    const list = (dir: string) => walkLocal(join(base, dir));
    const before = locals.length;
    for await (const { path } of expandGlob(source, list)) {
      locals.push(absolute ? `/${path}` : path);
    }
    if (locals.length === before) {
      // As a shell does with a pattern that matches nothing: the name itself, if there is one.
      const literal = unescapeGlob(source);
      if (!await pathExists(literal)) {
        throw new FerryError("NOT_FOUND", `no match: local ${escapeName(source)}`);
      }
      locals.push(literal);
    }
  }
  // Several sources always go into a directory, and so does a directory a glob matched. One
  // file goes into a directory named by the target if the server has one (scp's way), and
  // otherwise takes the target's name.
  const single = locals.length === 1 ? locals[0] : undefined;
  const singleIsDir = single !== undefined && await isDirectory(single);
  const named = target !== undefined && target !== "" && !target.endsWith("/");
  const intoDir = locals.length > 1 || (singleIsDir && sources.some(hasGlob)) ||
    (single !== undefined && !singleIsDir && named && options.remoteIsDir !== undefined &&
      await options.remoteIsDir(remote(target)));
  const dest = (local: string) => {
    if (target === undefined || target === "") return remote(baseName(local));
    if (target.endsWith("/") || intoDir) {
      return remote(`${target.replace(/\/+$/, "")}/${baseName(local)}`);
    }
    return remote(target);
  };
  const plan: Plan = { dirs: [], files: [], skipped: [] };
  let treeRoot: string | undefined;
  for (const local of locals) {
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(local);
    } catch (err) {
      throw toFerryError(err, `local ${escapeName(local)}`);
    }
    if (info.isDirectory) {
      if (!recursive) {
        plan.skipped.push({ op: "put", path: local, bytes: 0, seconds: 0, skipped: "directory" });
        continue;
      }
      treeRoot = normalizePath(dest(local));
      if (options.stream) (plan.trees ??= []).push({ from: local, to: treeRoot });
      else merge(plan, await planPut(local, treeRoot));
    } else if (isStreamed(info)) {
      // A FIFO or a device is read to its end, of a size nobody knows up front.
      plan.files.push({ from: local, to: dest(local), size: 0, stream: "device" });
    } else {
      plan.files.push({ from: local, to: dest(local), size: info.size });
    }
  }
  return { plan, treeRoot: locals.length === 1 ? treeRoot : undefined };
}

/** Whether a local path is a directory (following symlinks); false when it cannot be seen. */
async function isDirectory(path: string): Promise<boolean> {
  return await Deno.stat(path).then((info) => info.isDirectory, () => false);
}

/**
 * The local path a typed name without wildcards means: itself when a file
 * of that very name exists (a name with a backslash), otherwise with its
 * `\` escapes undone (`g\[1]`, as the shell's Tab completion writes
 * `g[1]`, is `g[1]`).
 */
export async function localName(typed: string): Promise<string> {
  const literal = unescapeGlob(typed);
  return literal === typed || await pathExists(typed) ? typed : literal;
}

/** Refuse a local destination for several sources that is no directory, or not there. */
async function mustBeDirectory(local: string): Promise<void> {
  const info = await Deno.stat(local).catch(() => undefined);
  if (info?.isDirectory) return;
  throw new FerryError(
    info ? "NOT_A_DIRECTORY" : "NOT_FOUND",
    `local ${escapeName(local)} ${
      info ? "is not a directory" : "does not exist"
    }: several sources go into one directory`,
  );
}

/**
 * The first existing entry on the way to `path` (itself included) that is
 * no directory (a symlink to one counts as one), if any.
 */
async function fileOnPath(path: string): Promise<string | undefined> {
  const parts = path.split("/");
  for (let i = 1; i <= parts.length; i++) {
    const prefix = parts.slice(0, i).join("/");
    if (prefix === "" || prefix === "." || prefix === "..") continue;
    const info = await Deno.stat(prefix).catch(() => undefined);
    if (info === undefined) return undefined; // Nothing there yet: it will be made.
    if (!info.isDirectory) return prefix;
  }
  return undefined;
}
