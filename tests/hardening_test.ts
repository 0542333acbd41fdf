/** Regression tests for what adversarial testing found: each names the attack it replays. */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { connect } from "../mod.ts";
import { decodeMessage, DEFAULT_LIMITS, FrameType, HEADER_SIZE } from "../lib/frame.ts";
import { AtomicFile } from "../lib/fs/atomic_file.ts";
import { isTempName } from "../lib/fs/temp_names.ts";
import type { FrameConn } from "../lib/wire/frame_conn.ts";
import { componentMatcher } from "../lib/util/glob.ts";
import { LocalStorage } from "../lib/storage/local/local_storage.ts";
import type { FerryError } from "../lib/util/errors.ts";
import { parseClientArgs } from "../lib/client/cli/args.ts";
import {
  cuttingProxy,
  fakeServer,
  inProcessServer,
  listTree,
  randomBytes,
  rawSession,
  readMessage,
  runClient,
  startServer,
  tempDir,
  waitFor,
  writeRandomFile,
} from "./helpers.ts";

Deno.test("a refused put leaves the session usable (shell and library)", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  await Deno.writeTextFile(join(local.path, "small.txt"), "x");
  const shell = await runClient(server.address, [], {
    stdin: "put small.txt ../x\nls\n",
    cwd: local.path,
  });
  assert.equal(shell.stdout, "", "ls ran (and listed an empty root)");
  assert.deepEqual(shell.stderr.trim().split("\n"), [
    "ferry: path refused: leaves the root: ../x",
  ]);

  // A refused put larger than one chunk: the client must not cut its own connection.
  const big = join(local.path, "big.bin");
  await writeRandomFile(big, 8 * DEFAULT_LIMITS.maxData);
  const client = await connect(server.address);
  for (let i = 0; i < 3; i++) {
    await assert.rejects(
      () => client.put(big, "../x"),
      (e: FerryError) => e.code === "PATH_REFUSED",
    );
    assert.deepEqual(await client.list(""), []);
  }
  await client.close();
});

Deno.test("one bad name in a tree fails that file only", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const src = join(local.path, "src");
  await Deno.mkdir(src);
  for (let i = 0; i < 20; i++) await Deno.writeTextFile(join(src, `f${i}.txt`), `${i}`);
  await Deno.writeTextFile(join(src, "tab\there.txt"), "bad");
  const run = await runClient(server.address, ["put", "-r", src, "t"]);
  assert.equal(run.code, 10);
  assert.match(run.stderr, /^ferry: path refused: control character: t\/tab\\x09here\.txt\n$/);
  assert.equal((await listTree(join(server.root, "t"))).length, 20);
});

/** A server that starts a download and then fails it, by ERROR frame or by hanging up. */
function failingServer(how: "error" | "hangup") {
  return fakeServer(async (fc) => {
    const req = await fc.read();
    const { offset = 0 } = decodeMessage(req!) as { offset?: number };
    await fc.sendMessage(FrameType.REPLY, req!.id, { size: 100, mtime: 0, mode: 0o644, offset });
    const buf = new Uint8Array(HEADER_SIZE + 10);
    await fc.sendFramed(FrameType.DATA, req!.id, buf, 10);
    if (how === "hangup") return;
    await fc.sendMessage(FrameType.ERROR, req!.id, {
      code: "IO",
      message: "file shrank \u001b]0;pwned\u0007",
    });
    await fc.read().catch(() => null);
  });
}

Deno.test("a download that fails midway leaves no temporary file, only a partial to resume", async () => {
  for (const how of ["error", "hangup"] as const) {
    await using local = await tempDir();
    const server = failingServer(how);
    const run = await runClient(server.address, ["get", "f.bin"], { cwd: local.path });
    await server.close();
    assert.equal(run.code, how === "error" ? 9 : 3, run.stderr);
    // Cut off, what arrived is kept (each retry continued it); refused, nothing is.
    const left = await listTree(local.path);
    if (how === "error") assert.deepEqual(left, [], how);
    else {
      assert.equal(left.length, 1);
      assert.ok(isTempName(left[0]) && left[0].endsWith(".partial"), left[0]);
      assert.equal(Deno.statSync(join(local.path, left[0])).size, 40, "10 bytes a try");
    }
    if (how === "error") {
      assert.equal(
        run.stderr,
        "ferry: file shrank \\x1b]0;pwned\\x07 (on the server)\n",
        "peer text is escaped",
      );
    }
  }
});

Deno.test("ferry interrupted mid-download keeps only a hidden partial, which --resume finishes", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const size = 256 * 1024 * 1024;
  await writeRandomFile(join(server.root, "big.bin"), size);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../client.ts", import.meta.url).pathname,
      "-s",
      server.address,
      "get",
      "big.bin",
    ],
    cwd: local.path,
    stdout: "null",
    stderr: "null",
  }).spawn();
  const partial = () => listTree(local.path).then((names) => names.filter(isTempName));
  await waitFor(
    async () => {
      const [name] = await partial();
      return name !== undefined && (await Deno.stat(join(local.path, name))).size > 0;
    },
    20_000,
    "the download to start",
  );
  child.kill("SIGINT");
  const status = await child.status;
  assert.equal(status.code, 130);
  const names = await listTree(local.path);
  assert.equal(names.length, 1, "nothing under the final name");
  assert.match(names[0], /^\.ferry-[0-9a-f]+\.partial$/);

  const run = await runClient(server.address, ["--json", "get", "--resume", "big.bin"], {
    cwd: local.path,
  });
  assert.equal(run.code, 0, run.stderr);
  const line = JSON.parse(run.stdout.split("\n")[0]);
  assert.ok(line.resumed > 0, run.stdout);
  assert.equal(line.bytes + line.resumed, size);
  assert.deepEqual(await listTree(local.path), ["big.bin"], "the partial is gone");
  assert.deepEqual(
    await Deno.readFile(join(local.path, "big.bin")),
    await Deno.readFile(join(server.root, "big.bin")),
  );
});

Deno.test("a client trickling its handshake is cut off at the deadline", async () => {
  await using ferryd = await inProcessServer({ handshakeTimeoutMs: 300 });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: ferryd.port });
  const started = Date.now();
  let closed = false;
  for (let i = 0; i < 40 && !closed; i++) {
    await new Promise((r) => setTimeout(r, 50));
    closed = await conn.write(new Uint8Array([FrameType.HELLO])).then(() => false, () => true);
  }
  const buf = new Uint8Array(64);
  while (!closed && await conn.read(buf).catch(() => null) !== null);
  assert.ok(Date.now() - started < 1500, "closed near the 300 ms deadline");
  conn.close();
  assert.ok(ferryd.lines.some((l) => /TIMEOUT/.test(l)), ferryd.lines.join("\n"));
});

Deno.test("nothing but a small HELLO is accepted before the handshake", async () => {
  await using server = await startServer();
  for (const [type, length] of [[FrameType.DATA, 1], [FrameType.HELLO, 5000]]) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    const h = new Uint8Array(HEADER_SIZE);
    new DataView(h.buffer).setUint8(0, type);
    new DataView(h.buffer).setUint32(5, length);
    await conn.write(h);
    const buf = new Uint8Array(256);
    const n = await conn.read(buf);
    assert.equal(buf[0], FrameType.ERROR, `type ${type}`);
    assert.match(new TextDecoder().decode(buf.subarray(HEADER_SIZE, n!)), /exceeds the limit/);
    conn.close();
  }
});

Deno.test("glob patterns cannot make the matcher backtrack for ever", () => {
  const name = "a".repeat(200);
  assert.equal(componentMatcher("************b")(name), false);
  assert.equal(componentMatcher("*a*a*a*a*a*a*a*a*a*a*b")(name), false);
  assert.equal(componentMatcher("*a*a*a*a*a*a*a*a*a*a*")(name), true);
  assert.equal(componentMatcher("[]a]")("]"), true);
});

Deno.test("a FIFO in the tree is refused, not opened, and the server keeps serving", async () => {
  await using server = await startServer();
  const mk = await new Deno.Command("mkfifo", { args: [join(server.root, "pipe")] }).output();
  assert.ok(mk.success);
  for (const cmd of [["get", "pipe"], ["sum", "pipe"]]) {
    const run = await runClient(server.address, cmd, { cwd: server.root });
    assert.equal(run.code, 6, run.stderr);
  }
  assert.equal((await runClient(server.address, ["ls"])).stdout, "pipe\n");
});

Deno.test("a file rewritten in place with the same size and mtime is served fresh", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const path = join(server.root, "f.txt");
  await Deno.writeTextFile(path, "version 1");
  const mtime = new Date(1_700_000_000_000);
  await Deno.utime(path, mtime, mtime);
  const back = join(local.path, "back.txt");
  assert.equal((await runClient(server.address, ["get", "f.txt", back])).code, 0);
  // Same inode, same size, same mtime: only ctime tells.
  using f = await Deno.open(path, { write: true });
  await f.write(new TextEncoder().encode("version 2"));
  await Deno.utime(path, mtime, mtime);
  const again = await runClient(server.address, ["get", "f.txt", back]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(await Deno.readTextFile(back), "version 2");
});

Deno.test("the root may be /; symlink loops and long paths are refused without host paths", async () => {
  const slash = await LocalStorage.open("/");
  const tmp = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(join(tmp, "x"), "x");
    assert.equal((await slash.stat(join(tmp, "x").slice(1))).size, 1);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
  await using server = await startServer();
  await Deno.symlink("loop", join(server.root, "loop"));
  const loop = await runClient(server.address, ["get", "loop/x"]);
  assert.equal(loop.code, 7, loop.stderr);
  assert.ok(!loop.stderr.includes(server.root), loop.stderr);
  const long = await runClient(server.address, ["get", "a/".repeat(2100)]);
  assert.equal(long.code, 7, long.stderr);
});

Deno.test("a server announcing absurd limits is refused", async () => {
  const server = fakeServer(async (fc) => void await fc.read(), { maxControl: 65536, maxData: 0 });
  await assert.rejects(
    () => connect({ hostname: "127.0.0.1", port: server.port }),
    (e: FerryError) => e.code === "PROTOCOL",
  );
  await server.close();
});

Deno.test("a client's ERROR text is escaped in the server log", async () => {
  await using server = await startServer();
  const fc = await rawSession(server.port);
  await fc.sendMessage(FrameType.REQUEST, 1, { op: "put", path: "x.txt", size: 10 });
  await fc.sendMessage(FrameType.ERROR, 1, {
    code: "IO",
    message: "bye\n2026 forged line\u001b[2J",
  });
  const reply = await readMessage(fc);
  assert.equal(reply.type, FrameType.ERROR);
  fc.close();
  await new Promise((r) => setTimeout(r, 100));
  assert.ok(!server.log().includes("\u001b"), "no raw escape in the log");
  assert.ok(!server.log().includes("\n2026 forged"), "no forged line");
});

Deno.test("an idle client connection outlives its stall timeout", async () => {
  await using server = await startServer();
  const client = await connect(server.address, { timeoutMs: 200 });
  await new Promise((r) => setTimeout(r, 600));
  assert.deepEqual(await client.list(""), []);
  await client.close();
});

Deno.test("review findings: get --sync of one file, get -r of a file, --delete misuse, collisions, get -n", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  await Deno.writeTextFile(join(server.root, "f.txt"), "same");
  await Deno.writeTextFile(join(local.path, "f.txt"), "same");
  const sync = await runClient(server.address, ["get", "--sync", "f.txt"], { cwd: local.path });
  assert.equal(sync.stdout, "skipped f.txt (unchanged)\n", sync.stderr);

  const notDir = await runClient(server.address, ["get", "-r", "f.txt", "out"], {
    cwd: local.path,
  });
  assert.equal(notDir.code, 6);
  assert.match(notDir.stderr, /not a directory: f\.txt \(drop -r\)/);
  assert.deepEqual(await listTree(local.path), ["f.txt"], "nothing created locally");

  const del = await runClient(server.address, ["put", "-r", "--delete", "f.txt", "x"], {
    cwd: local.path,
  });
  assert.equal(del.code, 2);

  await Deno.mkdir(join(local.path, "a"));
  await Deno.mkdir(join(local.path, "b"));
  await Deno.writeTextFile(join(local.path, "a", "x"), "a");
  await Deno.writeTextFile(join(local.path, "b", "x"), "b");
  const clash = await runClient(server.address, ["put", "a/x", "b/x", "dst"], { cwd: local.path });
  assert.equal(clash.code, 2);
  assert.match(clash.stderr, /two sources would both be written to dst\/x/);

  await Deno.writeTextFile(join(local.path, "f.txt"), "mine");
  const before = server.log().split("\n").filter((l) => / get f\.txt /.test(l)).length;
  const nc = await runClient(server.address, ["get", "-N", "f.txt"], { cwd: local.path });
  assert.equal(nc.stdout, "skipped f.txt (exists)\n");
  assert.equal(await Deno.readTextFile(join(local.path, "f.txt")), "mine");
  const after = server.log().split("\n").filter((l) => / get f\.txt /.test(l)).length;
  assert.equal(after, before, "nothing was downloaded");
});

Deno.test("a lost connection is retried with backoff, and --retries 0 gives up", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const size = 4 * 1024 * 1024;
  await writeRandomFile(join(server.root, "big.bin"), size);
  await writeRandomFile(join(local.path, "up.bin"), size);
  for (const args of [["get", "big.bin"], ["put", "up.bin", "up.bin"]]) {
    const proxy = cuttingProxy(server.port, { cutAfter: 1024 * 1024, cuts: 1 });
    const run = await runClient(proxy.address, ["--json", ...args], { cwd: local.path });
    await proxy.close();
    assert.equal(run.code, 0, run.stderr);
    const line = JSON.parse(run.stdout.split("\n")[0]);
    assert.equal(line.attempts, 2, run.stdout);
    assert.ok(line.resumed > 0, `the retry resumed: ${run.stdout}`);
    assert.equal(line.bytes + line.resumed, size);
    assert.equal(proxy.connections, 2);
  }
  assert.deepEqual((await listTree(server.root)).filter(isTempName), [], "no partial upload left");
  assert.deepEqual(
    await Deno.readFile(join(local.path, "big.bin")),
    await Deno.readFile(join(server.root, "big.bin")),
  );
  assert.deepEqual(
    await Deno.readFile(join(server.root, "up.bin")),
    await Deno.readFile(join(local.path, "up.bin")),
  );

  await Deno.remove(join(local.path, "big.bin"));
  const proxy = cuttingProxy(server.port, { cutAfter: 1024 * 1024, cuts: 5 });
  const once = await runClient(proxy.address, ["--retries", "0", "get", "big.bin"], {
    cwd: local.path,
  });
  await proxy.close();
  assert.equal(once.code, 3, once.stderr);
  assert.match(once.stderr, /run the same command again to continue/);
  assert.equal(proxy.connections, 1);
  const left = await listTree(local.path);
  assert.deepEqual(left.filter((n) => !isTempName(n)), ["up.bin"], "nothing under the final name");
  assert.equal(left.filter(isTempName).length, 1, "a hidden partial is kept for --resume");
  // A write that fails while the next chunk is being read once killed ferryd (unhandled rejection).
  assert.equal((await runClient(server.address, ["ls"])).code, 0, "ferryd is still serving");
});

Deno.test("--retries and --timeout are parsed, also from the environment", () => {
  const a = parseClientArgs(["--retries", "5", "--timeout", "2.5", "ls"], {});
  assert.deepEqual([a.retries, a.timeoutMs, a.command], [5, 2500, ["ls"]]);
  const b = parseClientArgs(["ls"], { FERRY_RETRIES: "0", FERRY_TIMEOUT: "0" });
  assert.deepEqual([b.retries, b.timeoutMs], [0, 0]);
  const c = parseClientArgs([], {});
  assert.deepEqual([c.retries, c.timeoutMs], [3, 120_000]);
  for (const bad of [["--retries", "-1"], ["--retries", "x"], ["--timeout", "soon"]]) {
    assert.throws(() => parseClientArgs(bad, {}), (e: FerryError) => e.code === "USAGE");
  }
});

Deno.test("when reconnecting fails for good, every unsent file is reported and the summary printed", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const src = join(local.path, "src");
  await Deno.mkdir(src);
  for (let i = 0; i < 50; i++) await writeRandomFile(join(src, `f${i}.bin`), 64 * 1024);
  const proxy = cuttingProxy(server.port, { cutAfter: 512 * 1024, cuts: 1, acceptOnce: true });
  const run = await runClient(proxy.address, ["--json", "--retries", "1", "put", "-r", src, "t"]);
  await proxy.close();
  assert.equal(run.code, 10, run.stderr);
  const lines = run.stdout.trim().split("\n").map((l) => JSON.parse(l));
  const summary = lines.at(-1);
  assert.equal(summary.op, "summary");
  assert.equal(summary.files + summary.failed, 50, JSON.stringify(summary));
  assert.ok(summary.failed > 0);
  assert.equal(lines.filter((l) => l.error?.code === "CONNECT").length, summary.failed);
});

Deno.test("put -r reports entries it cannot read instead of leaving them out", async () => {
  await using local = await tempDir();
  await using server = await startServer();
  // Deeper than PATH_MAX from the top: built with relative steps, unreachable by full path.
  const top = join(local.path, "deep");
  await Deno.mkdir(top);
  const cwd = Deno.cwd();
  try {
    Deno.chdir(top);
    for (let i = 0; i < 150; i++) {
      Deno.mkdirSync("d".repeat(30));
      Deno.chdir("d".repeat(30));
    }
    Deno.writeTextFileSync("leaf.txt", "leaf");
  } finally {
    Deno.chdir(cwd);
  }
  const run = await runClient(server.address, ["--json", "put", "-r", top, "t"]);
  assert.equal(run.code, 10, run.stderr);
  const summary = JSON.parse(run.stdout.trim().split("\n").at(-1)!);
  assert.ok(summary.failed >= 1, JSON.stringify(summary));
  assert.match(run.stderr, /cannot read/);
});

Deno.test("a graceful shutdown finishes the requests already received, not just the current one", async () => {
  await using server = await startServer({ args: ["--shutdown-grace", "20"] });
  const fc = await rawSession(server.port);
  const body = new TextEncoder().encode("hello");
  const sha256 = createHash("sha256").update(body).digest("hex");
  const buf = new Uint8Array(HEADER_SIZE + body.length);
  buf.set(body, HEADER_SIZE);
  for (let id = 1; id <= 20; id++) {
    await fc.sendMessage(FrameType.REQUEST, id, { op: "put", path: `p${id}.txt`, size: 5 });
    await fc.sendFramed(FrameType.DATA, id, buf, 5);
    await fc.sendMessage(FrameType.END, id, { sha256 });
  }
  server.process.kill("SIGTERM");
  let replies = 0;
  while ((await fc.read().catch(() => null))?.type === FrameType.REPLY) replies++;
  fc.close();
  assert.equal((await server.process.status).code, 0);
  assert.equal(replies, 20);
  assert.equal((await listTree(server.root)).length, 20);
});

/** A 2 MiB tmpfs, where the test may mount one (root on Linux); undefined elsewhere. */
async function smallDisk(): Promise<
  { path: string; [Symbol.asyncDispose](): Promise<void> } | undefined
> {
  if (Deno.build.os !== "linux" || Deno.uid() !== 0) return undefined;
  const path = await Deno.makeTempDir({ prefix: "ferry-tmpfs-" });
  const mount = await new Deno.Command("mount", {
    args: ["-t", "tmpfs", "-o", "size=2m", "tmpfs", path],
    stderr: "null",
  }).output().catch(() => undefined);
  if (!mount?.success) {
    await Deno.remove(path, { recursive: true });
    return undefined;
  }
  return {
    path,
    async [Symbol.asyncDispose]() {
      await new Deno.Command("umount", { args: [path] }).output();
      await Deno.remove(path, { recursive: true });
    },
  };
}

Deno.test("a full disk: refused up front, or failed mid-write, cleaned up, server still serving", async (t) => {
  await using disk = await smallDisk();
  if (!disk) {
    // Without a small filesystem to fill, this cannot be tested for real here.
    return void await t.step({
      name: "no tmpfs available (needs root on Linux)",
      ignore: true,
      fn() {},
    });
  }
  await using server = await startServer({ root: disk.path });
  await using local = await tempDir();
  const big = join(local.path, "big.bin");
  await writeRandomFile(big, 3 * 1024 * 1024);
  const upFront = await runClient(server.address, ["put", big]);
  assert.equal(upFront.code, 9, upFront.stderr);
  assert.match(upFront.stderr, /not enough space for big\.bin on the server: 3145728 bytes needed/);
  assert.doesNotMatch(upFront.stderr, /on the server.*on the server/, "the side said once");

  // Two uploads that each fit alone: the second runs out of space mid-write.
  const half = join(local.path, "half.bin");
  await writeRandomFile(half, 1200 * 1024);
  const first = await runClient(server.address, ["put", half, "one.bin"]);
  assert.equal(first.code, 0, first.stderr);
  const file = AtomicFile.create(join(disk.path, "two.bin"));
  assert.throws(
    () => file.write(new Uint8Array(1200 * 1024)),
    (e: FerryError) => e.code === "NO_SPACE",
  );
  await file.abort();
  assert.deepEqual(await listTree(disk.path), ["one.bin"], "no temporary file left");
  assert.equal((await runClient(server.address, ["ls"])).stdout, "one.bin\n");

  // A tree that does not fit: each file the server could not store names the server's side.
  const tree = join(local.path, "tree");
  await Deno.mkdir(tree);
  for (let i = 0; i < 40; i++) await writeRandomFile(join(tree, `f${i}`), 40 * 1024);
  const full = await runClient(server.address, ["put", "-r", tree, "t"]);
  assert.equal(full.code, 10, full.stderr);
  const lines = full.stderr.trim().split("\n").filter((l) => /no space/.test(l));
  assert.ok(lines.length > 0, full.stderr);
  for (const line of lines) assert.match(line, /^ferry: t\/f\d+: .*no space.*\(on the server\)$/);
});

Deno.test("two clients uploading one path at once leave one complete upload, never a mix", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const a = join(local.path, "a.bin");
  const b = join(local.path, "b.bin");
  await writeRandomFile(a, 6 * 1024 * 1024);
  await writeRandomFile(b, 6 * 1024 * 1024);
  // One size and one mtime: they share a resume key, and each may find the other's live
  // partial and try to continue it. Its kept bytes are checked before it is taken over, so
  // the one that does not match starts afresh and cuts nobody off.
  await Deno.utime(a, 1_700_000_000, 1_700_000_000);
  await Deno.utime(b, 1_700_000_000, 1_700_000_000);
  const [aBytes, bBytes] = [await Deno.readFile(a), await Deno.readFile(b)];
  for (let round = 0; round < 3; round++) {
    const [ra, rb] = await Promise.all([
      runClient(server.address, ["put", a, "same.bin"]),
      runClient(server.address, ["put", b, "same.bin"]),
    ]);
    assert.equal(ra.code + rb.code, 0, ra.stderr + rb.stderr);
    const stored = await Deno.readFile(join(server.root, "same.bin"));
    const isA = stored.every((v, i) => v === aBytes[i]);
    const isB = stored.every((v, i) => v === bBytes[i]);
    assert.ok(isA !== isB, "exactly one of the two, whole");
  }
});

Deno.test("ferryd killed with SIGKILL mid-upload and restarted: the old file stays, whole", async () => {
  await using local = await tempDir();
  const root = await Deno.makeTempDir({ prefix: "ferry-root-" });
  await Deno.writeTextFile(join(root, "f.bin"), "old version");
  const first = await startServer({ root });
  const fc = await rawSession(first.port);
  await fc.sendMessage(FrameType.REQUEST, 1, { op: "put", path: "f.bin", size: 1 << 20 });
  const buf = new Uint8Array(HEADER_SIZE + 4096);
  await fc.sendFramed(FrameType.DATA, 1, buf, 4096);
  await waitFor(() => [...Deno.readDirSync(root)].length === 2, 5000, "the temporary file");
  first.process.kill("SIGKILL");
  await first.process.status;
  fc.close();
  await using second = await startServer({ root });
  assert.equal(await Deno.readTextFile(join(root, "f.bin")), "old version");
  const ls = await runClient(second.address, ["ls"], { cwd: local.path });
  assert.equal(ls.stdout, "f.bin\n", "the abandoned temporary file is not listed");
  const get = await runClient(second.address, ["get", "f.bin"], { cwd: local.path });
  assert.equal(get.code, 0);
  assert.equal(await Deno.readTextFile(join(local.path, "f.bin")), "old version");
});

Deno.test("a file that shrinks while being served fails that download as changed, and nothing else", async () => {
  await using server = await startServer();
  const path = join(server.root, "shrinking.bin");
  await writeRandomFile(path, 64 * 1024 * 1024);
  const fc = await rawSession(server.port);
  await fc.sendMessage(FrameType.REQUEST, 1, { op: "get", path: "shrinking.bin" });
  const reply = await readMessage(fc);
  assert.equal(reply.type, FrameType.REPLY);
  // The server is now blocked on a reader that does not read; cut the file under it.
  await new Promise((r) => setTimeout(r, 200));
  await Deno.truncate(path, 1024 * 1024);
  let frame;
  do frame = await fc.read(); while (frame?.type === FrameType.DATA);
  assert.equal(frame?.type, FrameType.ERROR);
  const msg = decodeMessage(frame!);
  assert.equal(msg.code, "INTEGRITY");
  assert.match(String(msg.message), /shrinking\.bin changed while being sent/);
  // The session goes on.
  await fc.sendMessage(FrameType.REQUEST, 2, { op: "ls" });
  assert.equal((await readMessage(fc)).type, FrameType.REPLY);
  fc.close();
});

/** Send an upload of `body` to `path` by hand, stopping after `stage`. */
async function partialPut(
  fc: FrameConn,
  path: string,
  body: Uint8Array,
  stage: "header" | "first byte" | "middle" | "last byte" | "before ack",
): Promise<void> {
  await fc.sendMessage(FrameType.REQUEST, 1, { op: "put", path, size: body.length });
  if (stage === "header") return;
  const upTo = {
    "first byte": 1,
    middle: body.length >> 1,
    "last byte": body.length,
    "before ack": body.length,
  }[stage];
  const chunk = DEFAULT_LIMITS.maxData;
  const buf = new Uint8Array(HEADER_SIZE + chunk);
  for (let at = 0; at < upTo; at += chunk) {
    const n = Math.min(chunk, upTo - at);
    buf.set(body.subarray(at, at + n), HEADER_SIZE);
    await fc.sendFramed(FrameType.DATA, 1, buf, n);
  }
  if (stage === "before ack") {
    await fc.sendMessage(FrameType.END, 1, {
      sha256: createHash("sha256").update(body).digest("hex"),
    });
  }
}

const STAGES = ["header", "first byte", "middle", "last byte", "before ack"] as const;

Deno.test("killed at any point of an upload, client or server: the old file or the whole new one", async () => {
  const fresh = randomBytes(3 * DEFAULT_LIMITS.maxData + 5);
  const isOldOrNew = (bytes: Uint8Array) =>
    new TextDecoder().decode(bytes) === "old" ||
    (bytes.length === fresh.length && bytes.every((v, i) => v === fresh[i]));
  for (const stage of STAGES) {
    // The client dies: its connection just ends.
    await using server = await startServer();
    await Deno.writeTextFile(join(server.root, "f.bin"), "old");
    const fc = await rawSession(server.port);
    await partialPut(fc, "f.bin", fresh, stage);
    fc.close();
    await waitFor(
      () => [...Deno.readDirSync(server.root)].every((e) => !e.name.startsWith(".ferry-")),
      5000,
      `temp file removed after the client died at ${stage}`,
    );
    assert.ok(
      isOldOrNew(await Deno.readFile(join(server.root, "f.bin"))),
      `client died at ${stage}`,
    );
  }
  for (const stage of STAGES) {
    // The server dies with SIGKILL, and comes back.
    const root = await Deno.makeTempDir({ prefix: "ferry-root-" });
    await Deno.writeTextFile(join(root, "f.bin"), "old");
    const first = await startServer({ root });
    const fc = await rawSession(first.port);
    await partialPut(fc, "f.bin", fresh, stage);
    await new Promise((r) => setTimeout(r, 50));
    first.process.kill("SIGKILL");
    await first.process.status;
    fc.close();
    await using second = await startServer({ root });
    assert.ok(isOldOrNew(await Deno.readFile(join(root, "f.bin"))), `server died at ${stage}`);
    assert.equal(
      (await runClient(second.address, ["ls"])).stdout,
      "f.bin\n",
      `${stage}: no temp listed`,
    );
  }
});
