/**
 * `deno task build`: ferry and ferryd as self-contained executables for every
 * platform, or with `--bundle` as two single-file scripts for `deno run`, with
 * a `SHA256SUMS` file beside them.
 *
 *   deno task build [--target TARGET]... [--out DIR]
 *   deno task bundle [--out DIR]
 *
 * Everything is built in a temporary directory next to the output directory
 * and moved into it only once every file is built, so a failed build leaves
 * the previous one alone.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { onStopSignal } from "../lib/util/signals.ts";
import { VERSION } from "../lib/util/version.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SUMS = "SHA256SUMS";
const HOST = Deno.build.target;
// Long enough for a slow link to answer, short enough that a firewall that
// drops packets does not look like a hang.
const PROBE_TIMEOUT_MS = 10_000;

/** The platforms the executables are built for, in build order. */
export const TARGETS = [
  "x86_64-unknown-linux-gnu",
  "aarch64-unknown-linux-gnu",
  "x86_64-apple-darwin",
  "aarch64-apple-darwin",
  "x86_64-pc-windows-msvc",
] as const;

/** One of {@linkcode TARGETS}. */
export type Target = typeof TARGETS[number];

/**
 * A program to build: its name, its entry point, and the runtime flags baked
 * into it: the permissions granted to it, and any V8 options.
 */
export interface Program {
  name: "ferry" | "ferryd";
  entry: string;
  flags: readonly string[];
}

/**
 * ferry and ferryd, with their permissions and ferryd's V8 options.
 *
 * Both run with `--allow-all`, as the README's `deno run -A` does. They need
 * `--allow-ffi` for the native XXH3-128 (xxhash-addon; without it the
 * WebAssembly one runs, at a fifth of the speed), and native code has the
 * process's full access whatever the other flags say (Deno's FFI docs), so
 * narrower flags would promise a sandbox that is not there. And they cost:
 * with any flags but `--allow-all`, Deno 2.9.6 resolves the whole path of
 * every file it opens (a `readlink` per component, twice when the file is
 * new) before the `open`, which made a `put -r` of 10,000 small files 22%
 * slower (docs/performance.md).
 */
export const PROGRAMS: readonly Program[] = [
  {
    name: "ferry",
    entry: "client.ts",
    flags: ["--allow-all"],
  },
  {
    name: "ferryd",
    entry: "server.ts",
    // A long-running server keeps its heap small: V8 otherwise lets it grow to several times
    // what is live, and it never shrinks back (see docs/performance.md).
    flags: ["--allow-all", "--v8-flags=--optimize-for-size"],
  },
];

/** What the command line asked for. */
export interface BuildArgs {
  /** The targets named with `--target`, or undefined for the default. */
  targets?: Target[];
  /** `--out`, as given. */
  out?: string;
  bundle: boolean;
  help: boolean;
}

/** A build that cannot go on: one line for the user, and what to exit with. */
class BuildFailure extends Error {
  constructor(message: string, readonly exitCode = 1, readonly detail = "") {
    super(message);
  }
}

const HELP = `ferry build ${VERSION}: ferry and ferryd as executables, or as bundled scripts

Usage:
  deno task build [--target TARGET]... [--out DIR]
  deno task bundle [--out DIR]

Options:
  --target TARGET  build for TARGET only; repeat for several (default: all the targets
                   below, or only this machine's, ${HOST}, when DENORT_BIN is set)
  --out DIR        where the files go (default: dist, or dist/bundle with --bundle)
  --bundle         build dist/bundle/ferry.js and ferryd.js for \`deno run -A\` instead
  -h, --help       show this help

Targets:
  ${TARGETS.join("\n  ")}

Executables are named ferry-${VERSION}-TARGET and ferryd-${VERSION}-TARGET (.exe on Windows).
SHA256SUMS beside them checks them with \`sha256sum -c SHA256SUMS\`.

deno compile builds each executable on a Deno runtime (denort) for its target, which it
downloads once into DENO_DIR. Offline, set DENORT_BIN to a denort binary of Deno
${Deno.version.deno} for this machine: it serves ${HOST}; other targets still need
the download or the cache.`;

/**
 * Parse the build script's arguments.
 *
 * Throws (exit code 2) on an unknown flag or target, or on `--target` with `--bundle`.
 */
export function parseBuildArgs(argv: string[]): BuildArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        target: { type: "string", multiple: true },
        out: { type: "string" },
        bundle: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    }));
  } catch (err) {
    throw new BuildFailure((err as Error).message.split("\n")[0], 2);
  }
  const unknown = values.target?.find((t) => !isTarget(t));
  if (unknown !== undefined) {
    throw new BuildFailure(`unknown target: ${unknown} (one of ${TARGETS.join(", ")})`, 2);
  }
  if (values.bundle && values.target) {
    throw new BuildFailure("--target does not apply to --bundle: a bundle runs anywhere", 2);
  }
  return {
    // A target named twice is built once.
    targets: values.target && [...new Set(values.target as Target[])],
    out: values.out,
    bundle: values.bundle,
    help: values.help,
  };
}

function isTarget(name: string): name is Target {
  return (TARGETS as readonly string[]).includes(name);
}

/**
 * The targets built when none is named: all of them, or only the host's when
 * DENORT_BIN is set, since that runtime runs on this machine alone.
 */
export function defaultTargets(denortBin: string | undefined, host: string): Target[] {
  if (!denortBin) return [...TARGETS];
  return isTarget(host) ? [host] : [];
}

/** The file name of one executable, e.g. `ferryd-0.1.0-x86_64-pc-windows-msvc.exe`. */
export function binaryName(program: string, version: string, target: string): string {
  return `${program}-${version}-${target}${target.includes("-windows-") ? ".exe" : ""}`;
}

/** The file name of one bundled script, e.g. `ferryd.js`. */
export function bundleName(program: string): string {
  return `${program}.js`;
}

/** One line of a `SHA256SUMS` file, as `sha256sum` writes it (text mode: two spaces). */
export function checksumLine(sha256: string, name: string): string {
  return `${sha256}  ${name}`;
}

/** Where `deno compile` caches the runtime for `target`: `DENO_DIR/dl/release/vX.Y.Z/`. */
export function runtimeCachePath(denoDir: string, denoVersion: string, target: string): string {
  return join(denoDir, "dl", "release", `v${denoVersion}`, `denort-${target}.zip`);
}

/** Where `deno compile` downloads the runtime for `target` from. */
export function runtimeUrl(denoVersion: string, target: string): string {
  return `https://dl.deno.land/release/v${denoVersion}/denort-${target}.zip`;
}

/** The SHA-256 of a file, read in chunks so that a large executable never sits in memory. */
async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path, { read: true });
  const buffer = new Uint8Array(1 << 20);
  for (let n; (n = await file.read(buffer)) !== null;) hash.update(buffer.subarray(0, n));
  return hash.digest("hex");
}

async function writeChecksums(dir: string, names: string[]): Promise<void> {
  const lines: string[] = [];
  for (const name of [...names].sort()) {
    lines.push(checksumLine(await sha256File(join(dir, name)), name));
  }
  await Deno.writeTextFile(join(dir, SUMS), lines.join("\n") + "\n");
}

interface Output {
  code: number;
  stdout: string;
  stderr: string;
}

interface RunOptions {
  /** Replaces the inherited environment, so that DENORT_BIN can be left out. */
  env?: Record<string, string>;
  /** Ends the subprocess, and the build with it. */
  signal?: AbortSignal;
}

async function run(command: string, args: string[], options: RunOptions = {}): Promise<Output> {
  const out = await new Deno.Command(command, {
    args,
    cwd: ROOT,
    env: { ...(options.env ?? Deno.env.toObject()), NO_COLOR: "1" },
    clearEnv: true,
    stdin: "null",
    signal: options.signal,
  }).output();
  throwIfInterrupted(options.signal);
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

function throwIfInterrupted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new BuildFailure("interrupted", 130);
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

async function denoDir(): Promise<string> {
  const info = await run(Deno.execPath(), ["info", "--json"]);
  if (info.code !== 0) throw new BuildFailure("deno info failed", 1, info.stderr);
  return JSON.parse(info.stdout).denoDir;
}

/** Why the runtime cannot be downloaded, or undefined if it can. */
async function probeDownload(url: string): Promise<string | undefined> {
  const host = new URL(url).host;
  try {
    const res = await fetch(url, { method: "HEAD", signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
    await res.body?.cancel();
    return res.ok ? undefined : `${host} answered ${res.status}`;
  } catch (err) {
    if ((err as Error).name === "TimeoutError") {
      return `offline (no answer from ${host} in ${PROBE_TIMEOUT_MS / 1000} s)`;
    }
    // The cause reads "error sending request for url (...): ...: dns error: Name or service not known".
    const cause = String((err as Error).cause ?? (err as Error).message);
    return `offline (${cause.split(": ").at(-1)?.replace(/ \(os error \d+\)$/, "")})`;
  }
}

/**
 * Fail with one line, before anything is written, when a runtime is neither
 * in DENORT_BIN, nor cached, nor downloadable. deno compile would try the same
 * download, but only after type-checking, and it prints a page of causes.
 */
async function ensureRuntimes(targets: Target[], denortBin: string | undefined): Promise<void> {
  const dir = await denoDir();
  const missing: Target[] = [];
  for (const target of targets) {
    if (target === HOST && denortBin) {
      if (!(await exists(denortBin))) {
        throw new BuildFailure(
          `cannot get the Deno runtime (denort) for ${target}: DENORT_BIN=${denortBin} does not exist`,
        );
      }
    } else if (!(await exists(runtimeCachePath(dir, Deno.version.deno, target)))) {
      missing.push(target);
    }
  }
  if (missing.length === 0) return;
  const problem = await probeDownload(runtimeUrl(Deno.version.deno, missing[0]));
  if (problem === undefined) return;
  const fallback = denortBin ? `DENORT_BIN serves only ${HOST}` : "DENORT_BIN is not set";
  throw new BuildFailure(
    `cannot get the Deno runtime (denort) for ${missing.join(", ")}: ${problem} and ${fallback}`,
  );
}

/** The environment for compiling `target`: DENORT_BIN only where it is that target's runtime. */
function compileEnv(target: Target): Record<string, string> {
  const env = Deno.env.toObject();
  // deno compile would embed DENORT_BIN whatever the target, making a binary that cannot run there.
  if (target !== HOST) delete env.DENORT_BIN;
  return env;
}

async function compile(
  program: Program,
  target: Target,
  output: string,
  signal: AbortSignal,
): Promise<void> {
  const args = ["compile", ...program.flags, "--target", target, "--output", output];
  const env = compileEnv(target);
  const result = await run(Deno.execPath(), [...args, program.entry], { env, signal });
  if (result.code !== 0) {
    throw new BuildFailure(
      `deno compile failed for ${program.name} on ${target}`,
      1,
      result.stderr,
    );
  }
}

async function bundle(program: Program, output: string, signal: AbortSignal): Promise<void> {
  const args = ["bundle", "--platform", "deno", "--output", output, program.entry];
  const result = await run(Deno.execPath(), args, { signal });
  if (result.code !== 0) {
    throw new BuildFailure(`deno bundle failed for ${program.name}`, 1, result.stderr);
  }
}

/**
 * Run what was built with `--version`: it proves that deno.json's version was
 * embedded, and that DENORT_BIN was a runtime and not, say, the deno CLI.
 */
async function checkVersion(
  program: Program,
  command: string[],
  signal: AbortSignal,
  hint = "",
): Promise<string> {
  const expected = `${program.name} ${VERSION}`;
  const result = await run(command[0], [...command.slice(1), "--version"], { signal }).catch(
    (err) => {
      if (err instanceof BuildFailure) throw err;
      throw new BuildFailure(`cannot run the new ${program.name}: ${err.message}${hint}`);
    },
  );
  const got = result.stdout.trim().split("\n")[0];
  // After the version, in parentheses: the protocol, and which XXH3-128 the build runs.
  if (result.code !== 0 || (got !== expected && !got.startsWith(`${expected} (`))) {
    throw new BuildFailure(
      `the new ${program.name} --version printed "${got}", not "${expected}"${hint}`,
      1,
      result.stderr,
    );
  }
  return got.slice(expected.length);
}

/**
 * Build into a fresh directory beside `out`, so that the final moves are
 * renames on one file system; move the files and SHA256SUMS into `out` only
 * when `produce` has built them all.
 */
async function buildInto(
  out: string,
  produce: (staging: string, signal: AbortSignal) => Promise<string[]>,
): Promise<string[]> {
  await Deno.mkdir(dirname(out), { recursive: true });
  const staging = await Deno.makeTempDir({ dir: dirname(out), prefix: ".ferry-build-" });
  // Interrupted: end the deno subprocess first, since deno compile recreates the
  // directory it writes to, then remove the half-built files below.
  const interrupt = new AbortController();
  const unlisten = onStopSignal(() => interrupt.abort());
  try {
    const names = await produce(staging, interrupt.signal);
    await writeChecksums(staging, names);
    throwIfInterrupted(interrupt.signal);
    await Deno.mkdir(out, { recursive: true });
    for (const name of [...names, SUMS]) await Deno.rename(join(staging, name), join(out, name));
    return names;
  } finally {
    unlisten();
    await Deno.remove(staging, { recursive: true }).catch(() => {});
  }
}

async function buildBinaries(targets: Target[], out: string): Promise<string[]> {
  const denortBin = Deno.env.get("DENORT_BIN") || undefined;
  if (targets.length === 0) {
    throw new BuildFailure(`DENORT_BIN runs on ${HOST}, which is not a target; name one`, 2);
  }
  await ensureRuntimes(targets, denortBin);
  const hint = denortBin ? ` (is DENORT_BIN=${denortBin} a denort binary?)` : "";
  return await buildInto(out, async (staging, signal) => {
    const names: string[] = [];
    for (const target of targets) {
      for (const program of PROGRAMS) {
        const name = binaryName(program.name, VERSION, target);
        const path = join(staging, name);
        await compile(program, target, path, signal);
        // The host's build is run: it says which XXH3-128 it embeds (native, or wasm).
        const runs = target === HOST ? await checkVersion(program, [path], signal, hint) : "";
        console.log(`ferry build: built ${name}${runs}`);
        names.push(name);
      }
    }
    return names;
  });
}

async function buildBundles(out: string): Promise<string[]> {
  return await buildInto(out, async (staging, signal) => {
    const names: string[] = [];
    for (const program of PROGRAMS) {
      const name = bundleName(program.name);
      const path = join(staging, name);
      await bundle(program, path, signal);
      const command = [Deno.execPath(), "run", "--no-prompt", ...program.flags, path];
      const runs = await checkVersion(program, command, signal);
      console.log(`ferry build: built ${name}${runs}`);
      names.push(name);
    }
    return names;
  });
}

async function main(argv: string[]): Promise<number> {
  try {
    const args = parseBuildArgs(argv);
    if (args.help) {
      console.log(HELP);
      return 0;
    }
    const out = args.out !== undefined
      ? resolve(args.out)
      : join(ROOT, "dist", ...(args.bundle ? ["bundle"] : []));
    const names = args.bundle
      ? await buildBundles(out)
      : await buildBinaries(args.targets ?? defaultTargets(Deno.env.get("DENORT_BIN"), HOST), out);
    console.log(`ferry build: ${names.length} files and ${SUMS} in ${out}`);
    return 0;
  } catch (err) {
    // Anything else (a full disk, a read-only --out) is reported the same way, in one line.
    const failure = err instanceof BuildFailure ? err : new BuildFailure((err as Error).message);
    if (failure.detail.trim()) console.error(failure.detail.trimEnd());
    console.error(`ferry build: ${failure.message}`);
    return failure.exitCode;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
