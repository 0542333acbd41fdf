/**
 * ferry's commands: the one table that one-shot use and the interactive
 * shell share, each command's usage, help and what it runs.
 *
 * @module
 */

import { keptPartials } from "../../fs/atomic_file.ts";
import { walkLocal } from "../../fs/local_files.ts";
import type { Entry } from "../../commands.ts";
import { escapeName } from "../../util/display.ts";
import {
  describeError,
  EXIT_CODES,
  exitCodeFor,
  FerryError,
  isRetriable,
  toFerryError,
} from "../../util/errors.ts";
import { escapeGlob, hasGlob, unescapeGlob } from "../../util/glob.ts";
import { normalizePath } from "../../util/path_jail.ts";
import { suggest } from "../../util/suggest.ts";
import { VERSION } from "../../util/version.ts";
import { DEFAULT_ADDRESS } from "../address.ts";
import {
  type BatchOptions,
  deleteExtraneous,
  type Plan,
  restoreRemoteTimes,
  transferPlan,
} from "../batch.ts";
import type { FerryClient } from "../client.ts";
import { formatBytes, type OutputMode, Reporter, type Sink } from "../report.ts";
import { localName, planGetArgs, planGetMany, planPutArgs } from "../targets.ts";
import { GLOBAL_FLAGS } from "./args.ts";
import { type Flag, HELP_FLAG, OUTPUT_FLAGS, parseFlags, type Values } from "./flags.ts";
import { byName, longLine, permissions } from "./listing_format.ts";
import { STDIO } from "./std_streams.ts";

/** What a command runs with: the connection, where output goes, the shell's state. */
export interface Context {
  client(): Promise<FerryClient>;
  /**
   * A remote path as typed, a glob pattern, made root-relative against the
   * shell's directory (whose own glob characters are escaped in it).
   */
  remote(path: string): string;
  /** Commands come from the interactive shell (its words keep glob escapes). */
  shell?: boolean;
  sink: Sink;
  mode: OutputMode;
  /** How many more times to try after the connection fails. */
  retries: number;
  /** The most bytes a download may announce (--max-size). */
  maxSize?: number;
  /** Shell state: the remote working directory ("" is the root). */
  cwd: string;
  /** Set while a shell command runs: aborted by Ctrl-C, which stops it (and only it). */
  signal?: AbortSignal;
  /** Drop the connection at once, failing whatever is in flight on it as CANCELLED. */
  cancel?(): void;
}

/** One command: its usage, its help, and what it runs. */
export interface Command {
  usage: string;
  summary: string;
  /** What each flag does, for `COMMAND --help`. */
  details?: string[];
  /** Example command lines, for `COMMAND --help`. */
  examples?: string[];
  min: number;
  max: number;
  flags?: Record<string, Flag>;
  shellOnly?: boolean;
  /** Returns an exit status when it is not simply 0. */
  run(ctx: Context, args: string[], flags: Values): number | void | Promise<number | void>;
}

const TRANSFER_FLAGS: Record<string, Flag> = {
  recursive: { type: "boolean", short: "r" },
  "dry-run": { type: "boolean", short: "n" },
  "no-clobber": { type: "boolean", short: "N" },
  sync: { type: "boolean" },
  resume: { type: "boolean" },
  "no-resume": { type: "boolean" },
};

/** `-n` for a command that only changes things: rm, mv. */
const DRY_RUN_FLAG: Record<string, Flag> = { "dry-run": { type: "boolean", short: "n" } };

/**
 * `-n` meant --no-clobber before this release: say once what it means now,
 * on stderr, where a script's log shows it (a dry run changes nothing, so
 * nothing was lost by the change).
 */
function warnShortN(ctx: Context, flags: Values): void {
  if (!flags["-dry-run"]) return;
  ctx.sink.err(
    "ferry: -n is --dry-run now, as in rsync: nothing was changed. " +
      "-N (--no-clobber) is what -n meant before",
  );
}

/** `--max-delete N`: a count of entries. */
function maxDelete(flags: Values): number | undefined {
  const text = flags["max-delete"];
  if (text === undefined) return undefined;
  const n = Number(text);
  if (typeof text !== "string" || !/^\d+$/.test(text) || !Number.isSafeInteger(n)) {
    throw new FerryError(
      "USAGE",
      `--max-delete takes a number of entries, not ${JSON.stringify(text)}`,
    );
  }
  return n;
}

function batchOptions(ctx: Context, flags: Values): BatchOptions {
  if (flags.resume && flags["no-resume"]) {
    throw new FerryError("USAGE", "--resume and --no-resume contradict each other");
  }
  warnShortN(ctx, flags);
  return {
    retries: ctx.retries,
    noClobber: Boolean(flags["no-clobber"]),
    dryRun: Boolean(flags["dry-run"]),
    maxDelete: maxDelete(flags),
    sync: Boolean(flags.sync),
    delete: Boolean(flags.delete),
    // Resuming is the default: the kept bytes are checked against the source before use.
    resume: flags.resume ? true : flags["no-resume"] ? false : undefined,
    maxSize: ctx.maxSize,
    stdio: STDIO,
    signal: ctx.signal,
  };
}

export const COMMANDS: Record<string, Command> = {
  ls: {
    usage: "ls [-l] [-R] [--json] [PATH...]",
    details: [
      "-l  long listing: type, mode, size, modification time",
      "-R  the whole tree below PATH, by relative path (symlinks not followed)",
      "--json  one JSON object per entry",
    ],
    examples: ["ferry ls", "ferry ls -l releases", "ferry ls -R --json releases | jq -r .name"],
    summary: "list a remote directory (or show one file); a glob lists what it matches",
    min: 0,
    max: Infinity,
    flags: { long: { type: "boolean", short: "l" }, recursive: { type: "boolean", short: "R" } },
    async run(ctx, paths, flags) {
      const client = await ctx.client();
      const print = (entries: Entry[]) => {
        entries.sort(byName);
        for (const e of entries) {
          if (ctx.mode === "json") ctx.sink.out(JSON.stringify(e));
          else if (flags.long) ctx.sink.out(longLine(e));
          else ctx.sink.out(escapeName(e.name) + (e.type === "dir" ? "/" : ""));
        }
      };
      // Several directories are each headed by their name, as `ls a b` heads them.
      let headed = 0;
      return await eachPath(ctx, paths.length === 0 ? [""] : paths, async (path, matched) => {
        // What a glob matched is listed as itself (sftp's `ls *.txt`), named by its path.
        if (matched) return print([matched]);
        const entries = await client.list(path, { recursive: Boolean(flags.recursive) });
        if (paths.length > 1 && ctx.mode === "human") {
          ctx.sink.out(`${headed++ > 0 ? "\n" : ""}${escapeName(path === "" ? "/" : path)}:`);
        }
        print(entries);
      });
    },
  },
  stat: {
    usage: "stat PATH...",
    examples: ["ferry stat releases/app.tar.gz", "ferry stat 'releases/*.tar.gz'"],
    summary: "show type, size, mode and modification time",
    min: 1,
    max: Infinity,
    async run(ctx, paths) {
      const client = await ctx.client();
      let first = true;
      return await eachPath(ctx, paths, async (path, matched) => {
        const e = matched ?? await client.stat(path);
        if (ctx.mode === "json") return ctx.sink.out(JSON.stringify(e));
        if (!first) ctx.sink.out("");
        first = false;
        ctx.sink.out(
          [
            `name:  ${escapeName(e.name)}`,
            `type:  ${e.type}`,
            `size:  ${e.size} (${formatBytes(e.size)})`,
            `mode:  ${e.mode.toString(8).padStart(4, "0")} (${permissions(e.mode)})`,
            `mtime: ${new Date(e.mtime).toISOString()}`,
          ].join("\n"),
        );
      });
    },
  },
  get: {
    usage: "get [-r] [-n] [-N] [--sync] [--resume] REMOTE... [LOCAL]",
    details: [
      "-r  download a directory tree",
      "-n, --dry-run  say what would be downloaded or skipped; change nothing",
      "-N, --no-clobber  never replace an existing local file",
      "--sync  skip files whose size and checksum already match (like rsync -c)",
      "--resume  continue what an interrupted download kept (default)",
      "--no-resume  start afresh, ignoring what an interrupted download kept",
      "-  as LOCAL: write the file to standard output",
    ],
    examples: [
      "ferry get releases/app.tar.gz",
      "ferry get 'releases/*.tar.gz' ./downloads/",
      "ferry get a.txt b.txt 'logs/*.log' ./downloads/",
      "ferry get -r --sync releases/v1 ./v1",
      "ferry get logs/run.txt - | grep error",
    ],
    summary: "download files, globs' matches, or with -r trees (several: into a directory)",
    min: 1,
    max: Infinity,
    flags: TRANSFER_FLAGS,
    async run(ctx, args, flags) {
      for (const remote of args.length > 1 ? args.slice(0, -1) : args) {
        refuseHostPath("get", remote);
      }
      const options = batchOptions(ctx, flags);
      const how = {
        recursive: Boolean(flags.recursive),
        // --sync compares file by file, --resume asks even small files for kept bytes, and a
        // dry run lists what a stream would move.
        stream: !options.sync && options.resume !== true && !options.dryRun,
      };
      const client = await ctx.client();
      // As scp: the last of three or more is the local directory they all go into.
      const typedLocal = args.length > 2 ? args.at(-1)! : args[1];
      // The shell's words keep glob escapes (what Tab completion writes); a one-shot name was
      // quoted by the user's own shell already and is taken as it is.
      const local = typedLocal === undefined || typedLocal === "-" || !ctx.shell
        ? typedLocal
        : await localName(typedLocal);
      if (args.length > 2 && local === "-") {
        throw new FerryError("USAGE", "only a single file can go to standard output ('-')");
      }
      const plan = args.length > 2
        ? await planGetMany(client, args.slice(0, -1).map((a) => ctx.remote(a)), local, how)
        : await planGetArgs(client, ctx.remote(args[0]), local, how);
      // Standard output carries the file: every other line goes to stderr.
      const sink = local === "-" ? { ...ctx.sink, out: ctx.sink.err } : ctx.sink;
      return await runPlan({ ...ctx, sink }, "get", plan, options);
    },
  },
  put: {
    usage: "put [-r] [-n] [-N] [--sync] [--resume] [--delete] LOCAL... [REMOTE]",
    details: [
      "-r  upload a directory tree",
      "-n, --dry-run  say what would be uploaded, skipped or deleted; change nothing",
      "-N, --no-clobber  never replace an existing remote file",
      "--sync  skip files whose size and checksum already match (like rsync -c)",
      "--resume  continue what an interrupted upload left on the server (default)",
      "--no-resume  start afresh, ignoring what an interrupted upload left on the server",
      "--delete  with -r: remove remote files the local tree does not have",
      "--max-delete N  with --delete: remove at most N entries",
      "--force  with --delete: allow an empty local directory (it deletes everything)",
      "-  as LOCAL: send standard input, to the REMOTE name given",
    ],
    examples: [
      "ferry put dist/app.tar.gz releases/",
      "ferry put 'dist/*.tar.gz' releases/",
      "ferry put -r --sync --delete site/ www",
      "tar c dist | ferry put - releases/dist.tar",
    ],
    summary: "upload files, a glob's matches, or with -r a tree",
    min: 1,
    max: Infinity,
    flags: {
      ...TRANSFER_FLAGS,
      delete: { type: "boolean" },
      "max-delete": { type: "string" },
      force: { type: "boolean" },
    },
    async run(ctx, args, flags) {
      if (flags.delete && (!flags.recursive || args.length > 2)) {
        throw new FerryError("USAGE", "--delete goes with put -r and one source directory");
      }
      if (args.length > 1) refuseHostPath("put", args.at(-1)!);
      // The destination names one remote path: its `\` escapes are undone (see remoteName).
      const [sources, target] = args.length > 2
        ? [args.slice(0, -1), `${unescapeGlob(args.at(-1)!).replace(/\/+$/, "")}/`]
        : [[args[0]], args[1] === undefined ? undefined : unescapeGlob(args[1])];
      // Refused before anything is said about the options (-n's warning among them).
      if (flags.delete && !flags.force) await refuseEmptySource(sources[0]);
      const options = batchOptions(ctx, flags);
      if (options.maxDelete !== undefined && !flags.delete) {
        throw new FerryError("USAGE", "--max-delete goes with --delete");
      }
      const plan = await planPutArgs(sources, target, {
        recursive: Boolean(flags.recursive),
        // The destination and the names it gets are literal paths here.
        remote: (path) => remoteName(ctx, escapeGlob(path)),
        remoteIsDir: async (path) => {
          const client = await ctx.client();
          return await client.stat(path).then((e) => e.type === "dir", () => false);
        },
        // --sync compares file by file, --resume asks even small files for kept bytes, and a
        // dry run lists what a stream would move.
        stream: !options.sync && options.resume !== true && !options.dryRun,
      });
      if (options.delete && plan.treeRoot === undefined) {
        throw new FerryError("USAGE", "--delete goes with put -r and one source directory");
      }
      return await runPlan(ctx, "put", plan.plan, options, async (reporter) => {
        if (!options.delete) return;
        // As rsync: after a failure, what the remote tree should keep is not known for sure.
        if (reporter.failed > 0) {
          ctx.sink.err(
            `ferry: not deleting anything: ${reporter.failed} ` +
              `${reporter.failed === 1 ? "entry" : "entries"} failed`,
          );
          return;
        }
        const client = await ctx.client();
        await deleteExtraneous(client, plan.treeRoot!, plan.plan, reporter, options);
        // Removing entries changed their directories' mtimes: they get the tree's again.
        if (!options.dryRun) await restoreRemoteTimes(client, plan.plan, reporter);
      });
    },
  },
  mkdir: {
    usage: "mkdir [-p] PATH",
    details: ["-p  create missing parents; no error if it exists"],
    examples: ["ferry mkdir -p releases/v2"],
    summary: "create a remote directory (-p: and its parents)",
    min: 1,
    max: 1,
    flags: { parents: { type: "boolean", short: "p" } },
    async run(ctx, [path], flags) {
      await (await ctx.client()).mkdir(remoteName(ctx, path), { parents: Boolean(flags.parents) });
    },
  },
  rm: {
    usage: "rm [-r] [-n] PATH...",
    examples: [
      "ferry rm releases/old.tar.gz",
      "ferry rm -r releases/v0",
      "ferry rm -rn releases/v0",
    ],
    summary: "remove a remote file or empty directory (-r: a whole tree)",
    details: [
      "-r  remove a whole directory tree",
      "-n, --dry-run  say what would go; change nothing",
    ],
    min: 1,
    max: Infinity,
    flags: { recursive: { type: "boolean", short: "r" }, ...DRY_RUN_FLAG },
    async run(ctx, paths, flags) {
      const client = await ctx.client();
      // rm never had -n as --no-clobber: no warning about what it meant before.
      return await eachPath(ctx, paths, async (remote) => {
        if (!flags["dry-run"]) {
          return void await client.remove(remote, { recursive: Boolean(flags.recursive) });
        }
        const entry = await client.stat(remote);
        let what: string = entry.type;
        if (entry.type === "dir") {
          const inside = await client.list(remote, { recursive: true });
          if (inside.length > 0 && !flags.recursive) {
            throw new FerryError(
              "EXISTS",
              `directory not empty: ${escapeName(remote)} (use rm -r)`,
            );
          }
          what = `directory, ${inside.length} ${inside.length === 1 ? "entry" : "entries"} in it`;
        }
        dryRunLine(ctx, { op: "rm", path: remote }, `would delete ${escapeName(remote)} (${what})`);
      });
    },
  },
  mv: {
    usage: "mv [-n] SRC DST",
    examples: ["ferry mv upload.tmp releases/app.tar.gz", "ferry mv releases/v1 archive/"],
    summary: "rename or move a remote file or directory",
    details: ["-n, --dry-run  say where it would go; change nothing"],
    min: 2,
    max: 2,
    flags: DRY_RUN_FLAG,
    async run(ctx, [from, to], flags) {
      const client = await ctx.client();
      const [source, target] = [remoteName(ctx, from), remoteName(ctx, to)];
      if (!flags["dry-run"]) return void await client.move(source, target);
      await client.stat(source);
      const into = await client.stat(target).then((e) => e.type === "dir", () => false);
      const final = into
        ? `${target === "" ? "" : `${target}/`}${source.split("/").pop()}`
        : target;
      // A file already there is replaced by the real mv: the dry run says so.
      const replaced = await client.stat(final).then((e) => e.type === "file", () => false);
      dryRunLine(
        ctx,
        { op: "mv", path: source, to: final, ...(replaced ? { replaces: true } : {}) },
        `would move ${escapeName(source)} to ${escapeName(final)}${
          replaced ? ", replacing it" : ""
        }`,
      );
    },
  },
  sum: {
    usage: "sum [--xxh128] PATH...",
    examples: [
      "ferry sum releases/app.tar.gz",
      "ferry sum 'releases/*.tar.gz' > SHA256SUMS",
      "ferry sum releases/app.tar.gz | sha256sum -c  # in the same directory",
      "ferry sum --xxh128 releases/app.tar.gz  # as xxhsum -H2 prints it",
    ],
    details: [
      "--xxh128  XXH3-128 (fast; the checksum transfers use) instead of SHA-256",
      "--sha256  SHA-256, as published digests are (default)",
    ],
    summary: "checksum of a remote file (SHA-256 unless --xxh128), computed by the server",
    min: 1,
    max: Infinity,
    flags: { xxh128: { type: "boolean" }, sha256: { type: "boolean" } },
    async run(ctx, paths, flags) {
      if (flags.xxh128 && flags.sha256) {
        throw new FerryError("USAGE", "--xxh128 and --sha256 contradict each other");
      }
      const algorithm = flags.xxh128 ? "xxh128" : "sha256";
      const client = await ctx.client();
      return await eachPath(ctx, paths, async (path, matched) => {
        // A glob's directories have no checksum: they are passed over, as sha256sum would not.
        if (matched && matched.type !== "file") return;
        const { digest, size } = await client.sum(path, algorithm);
        if (ctx.mode === "json") {
          const checksum = { [algorithm]: digest.hex };
          ctx.sink.out(JSON.stringify({ op: "sum", path, checksum, ...checksum, size }));
        } else ctx.sink.out(sumLine(digest.hex, path));
      });
    },
  },
  cd: {
    usage: "cd [PATH]",
    summary: "change the remote directory (shell)",
    min: 0,
    max: 1,
    shellOnly: true,
    async run(ctx, [path = "/"]) {
      // `cd ..` at the root stays there, as sftp does.
      const target = normalizePath(clampToRoot(remoteName(ctx, path)));
      const e = await (await ctx.client()).stat(target);
      if (e.type !== "dir") throw new FerryError("NOT_A_DIRECTORY", `not a directory: ${path}`);
      ctx.cwd = target;
    },
  },
  pwd: {
    usage: "pwd",
    summary: "show the remote directory (shell)",
    min: 0,
    max: 0,
    shellOnly: true,
    run(ctx) {
      ctx.sink.out(`/${escapeName(ctx.cwd)}`);
    },
  },
  lcd: {
    usage: "lcd PATH",
    summary: "change the local directory (shell)",
    min: 1,
    max: 1,
    shellOnly: true,
    async run(_ctx, [typed]) {
      const path = await localName(typed);
      try {
        Deno.chdir(path);
      } catch (err) {
        throw toFerryError(err, `local ${escapeName(path)}`);
      }
    },
  },
  lpwd: {
    usage: "lpwd",
    summary: "show the local directory (shell)",
    min: 0,
    max: 0,
    shellOnly: true,
    run(ctx) {
      ctx.sink.out(escapeName(Deno.cwd()));
    },
  },
  lls: {
    usage: "lls [-l] [PATH]",
    summary: "list a local directory (shell)",
    min: 0,
    max: 1,
    shellOnly: true,
    flags: { long: { type: "boolean", short: "l" } },
    async run(ctx, [typed = "."], flags) {
      const path = await localName(typed);
      let entries: Entry[];
      try {
        entries = await Array.fromAsync(walkLocal(path));
      } catch (err) {
        throw toFerryError(err, `local ${escapeName(path)}`);
      }
      for (const e of entries) {
        ctx.sink.out(
          flags.long ? longLine(e) : escapeName(e.name) + (e.type === "dir" ? "/" : ""),
        );
      }
    },
  },
};

/**
 * Refuse a remote path written as scp's `HOST:PATH` (`put a.txt
 * build-host:releases/`): ferry names its server with `-s`, and taken as a
 * name it would make a directory called `build-host:releases`. A name that
 * really starts with a colon-holding word is written `./NAME`, as rsync asks.
 */
function refuseHostPath(command: string, typed: string): void {
  // `host:path`, `user@host:path`, `[::1]:path`.
  const m = /^(?:[\w.-]+@)?([A-Za-z0-9][\w.-]*|\[[0-9A-Fa-f:.]+\]):(.*)$/.exec(typed);
  if (!m) return;
  throw new FerryError(
    "USAGE",
    `${escapeName(typed)} looks like scp's HOST:PATH: ferry names the server with -s ` +
      `(ferry -s ${m[1]} ${command} ... ${m[2] || "."}); for a remote name with a colon, ` +
      `write ./${typed}`,
  );
}

/**
 * The remote path a typed argument that names one entry means (`cd`, `mkdir`,
 * `mv`, `put`'s destination): its `\` escapes undone, as the shell's Tab
 * completion writes them (`g\[1]` is `g[1]`; a stored name never holds a
 * backslash).
 */
function remoteName(ctx: Context, typed: string): string {
  return unescapeGlob(ctx.remote(typed));
}

/**
 * Run `fn` for each remote path typed: a glob for each path it matches
 * (with the entry that matched; a glob that matches nothing names itself,
 * if there is such a file, as a shell would), a plain path for itself (its
 * `\` escapes undone). A failure is reported and the others go on; the
 * status is that failure's exit code for one path, PARTIAL for several.
 */
async function eachPath(
  ctx: Context,
  typed: string[],
  fn: (path: string, matched?: Entry) => Promise<void> | void,
): Promise<number> {
  const client = await ctx.client();
  const targets: { path: string; matched?: Entry }[] = [];
  let failed: FerryError | undefined;
  let failures = 0;
  const fail = (err: unknown) => {
    failed = toFerryError(err);
    failures++;
    ctx.sink.err(`ferry: ${describeError(failed)}`);
  };
  for (const path of typed.map((p) => ctx.remote(p))) {
    if (!hasGlob(path)) {
      targets.push({ path: unescapeGlob(path) });
      continue;
    }
    try {
      const matches = await client.glob(path);
      if (matches.length > 0) {
        for (const m of matches.sort(byName)) targets.push({ path: m.name, matched: m });
      } else if (await client.stat(unescapeGlob(path)).catch(() => undefined)) {
        targets.push({ path: unescapeGlob(path) });
      } else throw new FerryError("NOT_FOUND", `no match: remote ${escapeName(path)}`);
    } catch (err) {
      fail(err);
    }
  }
  for (const { path, matched } of targets) {
    try {
      await fn(path, matched);
    } catch (err) {
      fail(err);
    }
  }
  if (!failed) return 0;
  return failures === 1 && typed.length === 1 && targets.length <= 1
    ? exitCodeFor(failed)
    : EXIT_CODES.PARTIAL;
}

/**
 * A `sum` line as sha256sum and xxhsum print one, so that `sha256sum -c`
 * reads it: a name with a backslash or a newline gets a leading `\` and
 * those escaped, as GNU coreutils does.
 */
function sumLine(hex: string, path: string): string {
  // Other control characters are never printed raw to a terminal: shown escaped instead.
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u0009\u000b\u000c\u000e-\u001f\u007f-\u009f]/.test(path)) {
    return `${hex}  ${escapeName(path)}`;
  }
  if (!/[\\\n\r]/.test(path)) return `${hex}  ${path}`;
  const escaped = path.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll("\r", "\\r");
  return `\\${hex}  ${escaped}`;
}

/** Print one dry-run result: a line for people, or a JSON row. */
function dryRunLine(ctx: Context, row: Record<string, string | boolean>, line: string): void {
  if (ctx.mode === "json") ctx.sink.out(JSON.stringify({ ...row, dryRun: true }));
  else if (ctx.mode === "human") ctx.sink.out(line);
}

/**
 * `put -r --delete` from a local directory with no file to send (empty, or
 * holding only empty directories, symlinks, FIFOs, devices or reserved
 * `.ferry-*` names, none of which a tree sends) would delete every file under the destination:
 * refused without `--force`. The walk stops at the first file.
 */
async function refuseEmptySource(source: string | undefined): Promise<void> {
  if (source === undefined) return;
  try {
    if (!(await Deno.stat(source)).isDirectory) return;
    // Only regular files go in a tree; symlinks, FIFOs and devices in it are skipped.
    for await (const entry of walkLocal(source, { recursive: true, onError: () => {} })) {
      if (entry.type === "file") return;
    }
  } catch {
    return; // Not a readable directory: planning says what is wrong with it.
  }
  throw new FerryError(
    "USAGE",
    `local ${escapeName(source)} holds no file to send: --delete would remove everything under ` +
      "the destination; add --force if that is what you want",
  );
}

/** Names that end the interactive shell. */
export const SHELL_EXIT = new Set(["close", "quit", "exit"]);

/** The reporter of the plan running now, which an interruption asks what it keeps. */
let running: Reporter | undefined;

/** The reporter of the plan running now, if any: what an interruption asks. */
export function runningReporter(): Reporter | undefined {
  return running;
}

/** Run a plan with a reporter; the exit status says whether anything failed. */
async function runPlan(
  ctx: Context,
  direction: "get" | "put",
  plan: Plan,
  options: BatchOptions,
  after?: (reporter: Reporter) => Promise<void>,
): Promise<number> {
  const reporter = new Reporter(ctx.mode, ctx.sink);
  running = reporter;
  try {
    await transferPlan(ctx.client, direction, plan, reporter, options);
    await after?.(reporter);
  } finally {
    running = undefined;
  }
  const many = plan.files.length + plan.dirs.length + (plan.trees?.length ?? 0) > 1 ||
    (plan.trees?.length ?? 0) > 0;
  if (many || ctx.mode === "json") reporter.summary(direction);
  if (reporter.failed === 0) return 0;
  const kept = reporter.kept + keptPartials().length > 0;
  if (kept && reporter.lastError && isRetriable(reporter.lastError) && ctx.mode !== "json") {
    ctx.sink.err("ferry: what arrived is kept; run the same command again to continue");
  }
  return !many && reporter.lastError ? exitCodeFor(reporter.lastError) : EXIT_CODES.PARTIAL;
}

/** `ferry COMMAND --help`: usage, what it does, its flags, examples. */
export function commandHelp(cmd: Command): string {
  const lines = [
    `Usage: ferry ${cmd.usage}`,
    "",
    `${cmd.summary[0].toUpperCase()}${cmd.summary.slice(1)}.`,
  ];
  if (cmd.details) {
    const rows = cmd.details.map((d) => d.split(/ {2,}/));
    const width = Math.max(...rows.map(([flag]) => flag.length)) + 2;
    lines.push("", ...rows.map(([flag, text]) => `  ${flag.padEnd(width)}${text}`));
  }
  if (cmd.examples) lines.push("", "Examples:", ...cmd.examples.map((e) => `  ${e}`));
  return lines.join("\n");
}

function helpLines(shell: boolean): string[] {
  const shown = Object.values(COMMANDS).filter((c) => shell || !c.shellOnly);
  const width = Math.max(...shown.map((c) => c.usage.length)) + 2;
  return shown.map((c) => `  ${c.usage.padEnd(width)}${c.summary}`);
}

/** The help text for the CLI, or with `shell` for the shell's `help`. */
export function helpText(shell = false): string {
  if (shell) {
    return [
      "Commands:",
      ...helpLines(true),
      "  help                      show this help",
      "  close                     end the session (also quit, exit, end of input)",
    ].join("\n");
  }
  return [
    `ferry ${VERSION}: list, download and upload files on a ferryd server`,
    "",
    "Usage:",
    "  ferry [OPTIONS] COMMAND [ARGS]   run one command",
    "  ferry [OPTIONS]                  interactive shell (reads commands from stdin)",
    "",
    "Commands:",
    ...helpLines(false),
    "",
    "Options:",
    `  -s, --server HOST:PORT  server address (env FERRY_SERVER; default ${DEFAULT_ADDRESS})`,
    "      --retries N         retry after a lost connection N times, with backoff",
    "                          (env FERRY_RETRIES; default 3; 0: never)",
    "      --timeout SECONDS   give up connecting, or on a request that stalls, after this long",
    "                          (env FERRY_TIMEOUT; default 120; 0: never)",
    "      --max-size BYTES    refuse a download larger than this (e.g. 2G; env FERRY_MAX_SIZE)",
    "      --token TOKEN       access token for a server that requires one (env FERRY_TOKEN)",
    "      --token-file FILE   read the token from FILE, so it is not on the command line",
    "                          (env FERRY_TOKEN_FILE)",
    "      --tls               talk TLS, trusting Deno's root store (env FERRY_TLS=1)",
    "      --ca FILE           talk TLS, trusting only the CA certificates in FILE (env FERRY_CA)",
    "      --pin SHA256        talk TLS, trusting only the certificate with this fingerprint,",
    "                          as ferryd prints it (env FERRY_PIN)",
    "      --checksum NAME     check transfers with sha256 (or xxh128, the default; a list:",
    "                          those accepted, the server picks) (env FERRY_CHECKSUM)",
    "  -z, --compress          compress file data with zstd, both ways (env FERRY_COMPRESS=1)",
    "      --json              one JSON object per line per result, and a summary",
    "  -q, --quiet             no progress, no summaries; only errors",
    "  -h, --help              show this help",
    "  -V, --version           show the version",
    "",
    "Transfer options: -r recursive, -n/--dry-run change nothing and say what would happen,",
    "-N/--no-clobber never replace, --sync skip files whose size and checksum already match,",
    "--no-resume start afresh rather than continue what an interrupted transfer kept,",
    "--delete (put -r) remove remote files absent locally (--max-delete N at most N).",
    "Options may come before or after the command and its arguments; -- ends them.",
    "A LOCAL of - is standard input (put) or standard output (get).",
    "",
    "Examples:",
    "  ferry put dist/app.tar.gz releases/",
    "  ferry put 'dist/*.tar.gz' releases/",
    "  ferry put -r --sync --delete site/ www",
    "  ferry --server files.internal:9500 get -r releases/v1 ./v1",
    "  printf 'put a.txt\\nls\\nclose\\n' | ferry",
  ].join("\n");
}

/**
 * A command's flags. In the shell, where the connection is already open,
 * one of ferry's own options (server, TLS, checksum, compression) says
 * where it goes instead: on the command line that starts ferry.
 */
function parseCommandFlags(args: string[], cmd: Command): ReturnType<typeof parseFlags> {
  // A value joined to its option, so that one that starts with '-' (`--max-delete -1`) reaches
  // the option's own check, not the parser's ambiguity.
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = /^--([\w-]+)$/.exec(args[i])?.[1];
    if (name && cmd.flags?.[name]?.type === "string" && i + 1 < args.length) {
      joined.push(`--${name}=${args[++i]}`);
    } else joined.push(args[i]);
    if (args[i] === "--") {
      joined.push(...args.slice(i + 1));
      break;
    }
  }
  try {
    return parseFlags(joined, { ...OUTPUT_FLAGS, ...HELP_FLAG, ...cmd.flags });
  } catch (err) {
    const unknown = /^unknown option (-{1,2})([^\s=]+)/.exec((err as Error).message);
    const name = unknown?.[2];
    const ours = name !== undefined &&
      Object.entries(GLOBAL_FLAGS).some(([long, flag]) =>
        unknown![1] === "--" ? long === name : flag.short === name
      );
    if (!ours) {
      // A near miss of ferry's own long options counts too (`ls --sever HOST`).
      const near = unknown?.[1] === "--" && !/did you mean/.test((err as Error).message)
        ? suggest(name!, Object.keys(GLOBAL_FLAGS))
        : undefined;
      if (near) {
        throw new FerryError("USAGE", `unknown option --${name} (did you mean --${near}?)`);
      }
      throw err;
    }
    const typed = `${unknown![1]}${name}`;
    throw new FerryError(
      "USAGE",
      `${typed} is an option of ferry itself: give it when starting ferry (ferry ${typed} ...)`,
    );
  }
}

/** `path` with every `..` that would climb above the root dropped. */
function clampToRoot(path: string): string {
  const parts: string[] = [];
  for (const part of path.split("/")) {
    if (part === "..") parts.pop();
    else if (part !== "" && part !== ".") parts.push(part);
  }
  return parts.join("/");
}

function findCommand(name: string, shell: boolean): Command {
  const cmd = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (!cmd || (cmd.shellOnly && !shell)) {
    const names = Object.keys(COMMANDS).filter((n) => shell || !COMMANDS[n].shellOnly);
    const near = suggest(name, shell ? [...names, ...SHELL_EXIT] : names);
    const hint = near ? `did you mean '${near}'?` : `try '${shell ? "help" : "ferry --help"}'`;
    throw new FerryError("USAGE", `unknown command: ${escapeName(name)} (${hint})`);
  }
  return cmd;
}

/**
 * Check one command line (split into words, global options already taken
 * off): the command exists, its flags are its own, the argument count fits.
 *
 * @example
 * ```ts
 * import { parseCommand } from "./commands.ts";
 * console.assert(parseCommand(["put", "-r", "dist", "out"], false).values.recursive === true);
 * ```
 */
export function parseCommand(
  words: string[],
  shell: boolean,
): { cmd: Command; values: Values; positionals: string[] } {
  const [name, ...rest] = words;
  const cmd = findCommand(name, shell);
  const { values, positionals } = parseCommandFlags(rest, cmd);
  const counted = values.help || (positionals.length >= cmd.min && positionals.length <= cmd.max);
  if (!counted) throw new FerryError("USAGE", `usage: ${cmd.usage}`);
  return { cmd, values, positionals };
}
