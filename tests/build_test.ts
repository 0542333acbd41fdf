/** scripts/build.ts: the bundle and the executables it makes work, and it fails cleanly offline. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import meta from "../deno.json" with { type: "json" };
import {
  binaryName,
  bundleName,
  checksumLine,
  defaultTargets,
  parseBuildArgs,
  runtimeCachePath,
  TARGETS,
} from "../scripts/build.ts";
import { sameContent, tempDir, writeRandomFile } from "./helpers.ts";

const BUILD = fileURLToPath(new URL("../scripts/build.ts", import.meta.url));
const HOST = Deno.build.target;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `command` to completion; `env` replaces the environment when given. */
async function run(
  command: string[],
  options: { cwd?: string; env?: Record<string, string> } = {},
): Promise<Run> {
  const out = await new Deno.Command(command[0], {
    args: command.slice(1),
    cwd: options.cwd,
    env: options.env ?? { NO_COLOR: "1" },
    clearEnv: options.env !== undefined,
    stdin: "null",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

async function build(args: string[]): Promise<void> {
  const result = await run([Deno.execPath(), "run", "-A", BUILD, ...args]);
  assert.equal(result.code, 0, result.stderr);
}

/** The compiled runtime is there to build with: DENORT_BIN, or a download cached earlier. */
function canCompileHere(): boolean {
  if (!(TARGETS as readonly string[]).includes(HOST)) return false;
  if (Deno.env.get("DENORT_BIN")) return true;
  const info = new Deno.Command(Deno.execPath(), { args: ["info", "--json"] }).outputSync();
  const { denoDir } = JSON.parse(new TextDecoder().decode(info.stdout));
  try {
    return Deno.statSync(runtimeCachePath(denoDir, Deno.version.deno, HOST)).isFile;
  } catch {
    return false;
  }
}

/** ferryd started by `command` on port 0, serving `root`, with its port read from the banner. */
async function startFerryd(command: string[], root: string) {
  const child = new Deno.Command(command[0], {
    args: [...command.slice(1), "--port", "0", "--root", root],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const log = new Response(child.stderr).text();
  const stdout = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let banner = "";
  while (!banner.includes("\n")) {
    const { value, done } = await stdout.read();
    if (done) {
      await child.status;
      throw new Error(`ferryd exited before listening: ${await log}`);
    }
    banner += value;
  }
  const drained = (async () => {
    while (!(await stdout.read()).done);
  })();
  const port = /listening on \S+:(\d+)/.exec(banner)?.[1];
  assert.ok(port, `unexpected banner: ${banner}`);
  return {
    address: `127.0.0.1:${port}`,
    async [Symbol.asyncDispose]() {
      child.kill("SIGTERM");
      const status = await child.status;
      await drained;
      assert.equal(status.code, 0, await log);
    },
  };
}

/** Upload a file with `ferry` to `ferryd` and download it back; both copies must be exact. */
async function roundTrip(ferryd: string[], ferry: string[]): Promise<void> {
  await using root = await tempDir("ferry-build-root-");
  await using local = await tempDir("ferry-build-local-");
  await using server = await startFerryd(ferryd, root.path);
  await writeRandomFile(join(local.path, "a.bin"), 300_000);
  const client = [...ferry, "--server", server.address];
  const put = await run([...client, "put", "a.bin", "in/a.bin"], { cwd: local.path });
  assert.equal(put.code, 0, put.stderr);
  assert.ok(await sameContent(join(local.path, "a.bin"), join(root.path, "in", "a.bin")));
  const get = await run([...client, "get", "in/a.bin", "b.bin"], { cwd: local.path });
  assert.equal(get.code, 0, get.stderr);
  assert.ok(await sameContent(join(local.path, "a.bin"), join(local.path, "b.bin")));
}

async function assertVersion(command: string[], program: string): Promise<void> {
  const result = await run([...command, "--version"]);
  assert.equal(result.code, 0, result.stderr);
  // Which XXH3-128 a build runs is said after the version: native, or the WebAssembly fallback.
  assert.match(
    result.stdout.trim(),
    new RegExp(
      `^${program} ${meta.version.replaceAll(".", "\\.")} \\(protocol 2, xxh128 (native|wasm)\\)$`,
    ),
  );
}

/** `dir` holds exactly `names` and a SHA256SUMS that `sha256sum -c` would accept. */
async function assertChecksums(dir: string, names: string[]): Promise<void> {
  const listed = [];
  for await (const entry of Deno.readDir(dir)) listed.push(entry.name);
  assert.deepEqual(listed.sort(), [...names, "SHA256SUMS"].sort());
  const expected = [];
  for (const name of [...names].sort()) {
    const digest = await crypto.subtle.digest("SHA-256", await Deno.readFile(join(dir, name)));
    const hex = Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
    expected.push(`${hex}  ${name}\n`);
  }
  assert.equal(await Deno.readTextFile(join(dir, "SHA256SUMS")), expected.join(""));
}

Deno.test("build names, checksum lines and arguments", () => {
  assert.equal(
    binaryName("ferry", "1.2.3", "aarch64-apple-darwin"),
    "ferry-1.2.3-aarch64-apple-darwin",
  );
  assert.equal(
    binaryName("ferryd", "1.2.3", "x86_64-pc-windows-msvc"),
    "ferryd-1.2.3-x86_64-pc-windows-msvc.exe",
  );
  assert.equal(bundleName("ferryd"), "ferryd.js");
  assert.equal(checksumLine("ab".repeat(32), "ferry.js"), `${"ab".repeat(32)}  ferry.js`);
  assert.deepEqual(defaultTargets(undefined, "x86_64-unknown-linux-gnu"), [...TARGETS]);
  assert.deepEqual(defaultTargets("/opt/denort", "aarch64-apple-darwin"), ["aarch64-apple-darwin"]);
  assert.equal(
    runtimeCachePath("/cache/deno", "2.9.6", "x86_64-apple-darwin"),
    join("/cache/deno", "dl", "release", "v2.9.6", "denort-x86_64-apple-darwin.zip"),
  );
  const args = parseBuildArgs(["--target", TARGETS[0], "--target", TARGETS[4], "--out", "o"]);
  assert.deepEqual(args, {
    targets: [TARGETS[0], TARGETS[4]],
    out: "o",
    bundle: false,
    help: false,
  });
  assert.deepEqual(parseBuildArgs(["--target", TARGETS[1], "--target", TARGETS[1]]).targets, [
    TARGETS[1],
  ]);
  assert.throws(() => parseBuildArgs(["--target", "x86_64-linux"]), /unknown target/);
  assert.throws(() => parseBuildArgs(["--bundle", "--target", TARGETS[0]]), /--target/);
  assert.throws(() => parseBuildArgs(["extra"]), /extra/);
});

Deno.test("the bundles serve and move files, carry the version, and match SHA256SUMS", async () => {
  await using out = await tempDir("ferry-build-out-");
  const dir = join(out.path, "bundle");
  await build(["--bundle", "--out", dir]);
  const names = ["ferry", "ferryd"].map(bundleName);
  await assertChecksums(dir, names);
  const [ferry, ferryd] = names.map((name) => [Deno.execPath(), "run", "-A", join(dir, name)]);
  await assertVersion(ferry, "ferry");
  await assertVersion(ferryd, "ferryd");
  await roundTrip(ferryd, ferry);
});

Deno.test("without a runtime the build says so in one line and leaves --out alone", async (t) => {
  await using work = await tempDir("ferry-build-offline-");
  const out = join(work.path, "out");
  await Deno.mkdir(out);
  await Deno.writeTextFile(join(out, "marker"), "previous build");
  // A proxy on a closed loopback port makes the download fail at once even where
  // the internet is reachable; a fresh DENO_DIR has no runtime cached.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const refused = `http://127.0.0.1:${listener.addr.port}`;
  listener.close();
  const env = Deno.env.toObject();
  for (const name of ["DENORT_BIN", "NO_PROXY", "no_proxy"]) delete env[name];
  Object.assign(env, {
    DENO_DIR: join(work.path, "deno-dir"),
    HTTPS_PROXY: refused,
    https_proxy: refused,
    NO_COLOR: "1",
  });

  const assertFailsCleanly = async (extraEnv: Record<string, string>, why: RegExp) => {
    const started = Date.now();
    const result = await run([Deno.execPath(), "run", "-A", BUILD, "--out", out], {
      env: { ...env, ...extraEnv },
    });
    assert.notEqual(result.code, 0);
    assert.ok(Date.now() - started < 15_000, "the build should fail fast");
    const lines = result.stderr.trimEnd().split("\n");
    assert.equal(lines.length, 1, result.stderr);
    assert.match(lines[0], /^ferry build: cannot get the Deno runtime \(denort\) for /);
    assert.match(lines[0], why);
    assert.deepEqual([...Deno.readDirSync(out)].map((e) => e.name), ["marker"]);
    assert.equal(await Deno.readTextFile(join(out, "marker")), "previous build");
    const beside = [...Deno.readDirSync(work.path)].map((e) => e.name).sort();
    assert.deepEqual(beside.filter((name) => name.startsWith(".ferry-build-")), []);
  };

  await t.step("offline, DENORT_BIN unset", async () => {
    await assertFailsCleanly({}, /offline .* and DENORT_BIN is not set$/);
  });
  await t.step("DENORT_BIN names no file", async () => {
    const missing = join(work.path, "no-denort");
    await assertFailsCleanly({ DENORT_BIN: missing }, /DENORT_BIN=.*no-denort does not exist$/);
  });
});

Deno.test({
  name: "the compiled executables serve and move files and carry the version",
  // Only with a runtime: offline, deno compile cannot get one without DENORT_BIN.
  ignore: !canCompileHere(),
  async fn() {
    await using out = await tempDir("ferry-build-bin-");
    await build(["--target", HOST, "--out", out.path]);
    const names = ["ferry", "ferryd"].map((p) => binaryName(p, meta.version, HOST));
    await assertChecksums(out.path, names);
    const [ferry, ferryd] = names.map((name) => [join(out.path, name)]);
    await assertVersion(ferry, "ferry");
    await assertVersion(ferryd, "ferryd");
    await roundTrip(ferryd, ferry);
  },
});
