/** Resumable transfers: what an interrupted transfer keeps, how it is continued, and when not. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { AtomicFile } from "../lib/fs/atomic_file.ts";
import { isTempName, partialPath, resumeKey } from "../lib/fs/temp_names.ts";
import { loadAlgorithm } from "../lib/checksum/checksum.ts";
import { FrameType, HEADER_SIZE } from "../lib/frame.ts";
import {
  inProcessServer,
  listTree,
  randomBytes,
  rawSession,
  readMessage,
  runClient,
  sha256,
  spawnClient,
  startServer,
  tempDir,
  waitFor,
  writeRandomFile,
} from "./helpers.ts";

const MiB = 1024 * 1024;

function temps(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter(isTempName);
}

/** Wait until `dir` holds a partial with some content; returns its name. */
async function partialStarted(dir: string): Promise<string> {
  let name = "";
  await waitFor(
    () => {
      name = temps(dir).find((n) => Deno.statSync(join(dir, n)).size > 0) ?? "";
      return name !== "";
    },
    20_000,
    "a partial with content",
  );
  return name;
}

/** The one JSON result line of a single-file transfer. */
function result(stdout: string): { bytes: number; resumed: number; attempts: number } {
  return JSON.parse(stdout.split("\n")[0]);
}

Deno.test("a server killed mid-upload and restarted lets the upload resume", async () => {
  await using first = await startServer();
  await using local = await tempDir();
  const src = join(local.path, "big.bin");
  const size = 256 * MiB;
  await writeRandomFile(src, size);
  const child = spawnClient(first.address, ["--retries", "0", "put", src, "big.bin"]);
  const name = await partialStarted(first.root);
  first.process.kill("SIGKILL");
  await first.process.status;
  const failed = await child.output();
  assert.equal(failed.code, 3, "the client reports the lost connection");
  const kept = Deno.statSync(join(first.root, name)).size;

  await using second = await startServer({ root: first.root });
  const run = await runClient(second.address, ["--json", "put", "--resume", src, "big.bin"]);
  assert.equal(run.code, 0, run.stderr);
  const line = result(run.stdout);
  assert.ok(line.resumed > 0 && line.resumed <= kept, run.stdout);
  assert.equal(line.bytes + line.resumed, size);
  assert.deepEqual(await Deno.readFile(join(second.root, "big.bin")), await Deno.readFile(src));
  assert.deepEqual(temps(second.root), []);
  assert.match(second.log(), /put big\.bin \d+ bytes .*resumed at \d+\) ok/);
});

Deno.test("a partial upload whose bytes differ from the source is restarted, not kept", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const src = join(local.path, "a.bin");
  const content = randomBytes(3 * MiB);
  await Deno.writeFile(src, content);
  const { mtime } = await Deno.stat(src);
  // A partial of the same file (path, size, mtime) whose bytes were damaged.
  const partial = partialPath(
    join(server.root, "a.bin"),
    resumeKey("sha256", "a.bin", 3 * MiB, mtime!.getTime()),
  );
  const damaged = content.slice(0, MiB);
  damaged[100] ^= 0xff;
  await Deno.writeFile(partial, damaged);

  const run = await runClient(server.address, ["--json", "put", "--resume", src, "a.bin"]);
  assert.equal(run.code, 0, run.stderr);
  assert.equal(result(run.stdout).resumed, 0, "nothing of the damaged partial was used");
  assert.equal(result(run.stdout).bytes, 3 * MiB);
  assert.equal(sha256(await Deno.readFile(join(server.root, "a.bin"))), sha256(content));
  assert.deepEqual(temps(server.root), []);
});

Deno.test("a local partial download that differs from the remote file is restarted", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const content = randomBytes(2 * MiB);
  await Deno.writeFile(join(server.root, "r.bin"), content);
  // Named after the server, the remote path and the local name, by XXH3-128.
  await loadAlgorithm("xxh128");
  const key = resumeKey("xxh128", server.address, "r.bin", "r.bin");
  const partial = partialPath(join(local.path, "r.bin"), key);
  await Deno.writeFile(partial, new Uint8Array(MiB)); // zeros: not what the server has

  const run = await runClient(server.address, ["--json", "get", "--resume", "r.bin"], {
    cwd: local.path,
  });
  assert.equal(run.code, 0, run.stderr);
  assert.equal(result(run.stdout).resumed, 0);
  assert.equal(sha256(await Deno.readFile(join(local.path, "r.bin"))), sha256(content));
  assert.deepEqual(await listTree(local.path), ["r.bin"]);

  // A good partial is continued: only the rest moves.
  await Deno.remove(join(local.path, "r.bin"));
  await Deno.writeFile(partial, content.slice(0, MiB + 5));
  const again = await runClient(server.address, ["--json", "get", "--resume", "r.bin"], {
    cwd: local.path,
  });
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(
    [result(again.stdout).resumed, result(again.stdout).bytes],
    [MiB + 5, MiB - 5],
  );
  assert.equal(sha256(await Deno.readFile(join(local.path, "r.bin"))), sha256(content));
});

Deno.test("resume offsets beyond the size, for another file, or with the wrong hash are refused", async () => {
  await using ferryd = await inProcessServer();
  const root = ferryd.server.root!;
  const content = randomBytes(1000);
  await Deno.writeFile(join(root, "f.bin"), content);
  const fc = await rawSession(ferryd.port);
  const prefix = sha256(content.subarray(0, 10));
  const refused = async (id: number, request: Record<string, unknown>, why: RegExp) => {
    await fc.sendMessage(FrameType.REQUEST, id, request);
    const answer = await readMessage(fc);
    assert.deepEqual([answer.type, answer.id, answer.msg.code], [
      FrameType.ERROR,
      id,
      "RESUME_MISMATCH",
    ]);
    assert.match(String(answer.msg.message), why);
  };
  await refused(1, { op: "get", path: "f.bin", offset: 1001, prefix }, /has 1000 bytes/);
  await refused(2, { op: "get", path: "f.bin", offset: 10, prefix: "0".repeat(64) }, /differ/);
  // No partial of this upload exists: an offset into it belongs to another file.
  await refused(
    3,
    { op: "put", path: "f.bin", size: 1000, resume: true, offset: 10, prefix },
    /only 0 are here/,
  );
  // The refused upload's body, sent right behind it, is skipped: the session goes on.
  await fc.sendMessage(FrameType.END, 3, { sha256: sha256(content) });
  await fc.sendMessage(FrameType.REQUEST, 4, { op: "get", path: "f.bin", offset: 10, prefix });
  const reply = await readMessage(fc);
  assert.deepEqual([reply.type, reply.id, reply.msg.offset], [FrameType.REPLY, 4, 10]);
  const data = await fc.read();
  assert.equal(data?.payload.length, 990, "only the missing bytes are sent");
  const end = await readMessage(fc);
  assert.equal(end.msg.sha256, sha256(content), "END carries the hash of the whole file");
  await fc.sendMessage(FrameType.REQUEST, 5, { op: "partial", path: "f.bin", size: 1000 });
  assert.deepEqual((await readMessage(fc)).msg, { offset: 0 });
  fc.close();
});

Deno.test("ferryd removes partials older than --partial-ttl and keeps newer ones", async () => {
  await using root = await tempDir("ferry-root-");
  await Deno.mkdir(join(root.path, "sub"));
  const old = join(root.path, "sub", ".ferry-0123456789abcdef.partial");
  const oldTemp = join(root.path, ".ferry-00aa.part");
  const fresh = join(root.path, ".ferry-fedcba9876543210.partial");
  const unrelated = join(root.path, "sub", "keep.partial");
  for (const path of [old, oldTemp, fresh, unrelated]) await Deno.writeTextFile(path, "x");
  const longAgo = new Date(Date.now() - 2 * 3600_000);
  for (const path of [old, oldTemp, unrelated]) await Deno.utime(path, longAgo, longAgo);

  const server = await startServer({ root: root.path, args: ["--partial-ttl", "3600"] });
  try {
    await waitFor(() => /removed 2 stale/.test(server.log()), 10_000, "the sweep");
    assert.deepEqual(await listTree(root.path), [
      ".ferry-fedcba9876543210.partial",
      "sub",
      "sub/keep.partial",
    ]);
  } finally {
    await server.stop();
  }
});

Deno.test("an upload whose partial was taken over keeps nothing of its own when it stops", async () => {
  await using dir = await tempDir();
  const target = join(dir.path, "f.bin");
  const first = AtomicFile.resume(target, "k")!;
  first.write(new Uint8Array(1000));
  // A reconnected client continues the partial before the first connection is known dead.
  const second = AtomicFile.resume(target, "k", { offset: 1000 })!;
  second.write(new Uint8Array(500));
  assert.equal(await first.suspend(), 0, "its bytes are the second upload's now");
  assert.equal(await second.suspend(), 1500);
});

Deno.test("a partial resumed short of its end is cut there; one resumed at its end is kept", async () => {
  await using dir = await tempDir();
  const target = join(dir.path, "f.bin");
  const first = AtomicFile.resume(target, "k")!;
  first.write(new Uint8Array(1000).fill(1));
  assert.equal(await first.suspend(), 1000);
  const second = AtomicFile.resume(target, "k", { offset: 400 })!;
  second.write(new Uint8Array(100).fill(2));
  assert.equal(await second.suspend(), 500);
  const third = AtomicFile.resume(target, "k", { offset: 500 })!;
  assert.equal(third.offset, 500);
  await third.commit();
  const bytes = await Deno.readFile(target);
  assert.deepEqual(
    [bytes.length, bytes[399], bytes[400], bytes[499]],
    [500, 1, 2, 2],
  );
});

Deno.test("a resume that does not match a live upload's partial is refused without cutting that upload off", async () => {
  await using server = await startServer();
  const size = 2 * 1024 * 1024;
  const mtime = 1_700_000_000_000;
  const content = randomBytes(size);
  // Upload A: resumable, half sent, still going.
  const a = await rawSession(server.port);
  await a.sendMessage(FrameType.REQUEST, 1, {
    op: "put",
    path: "same.bin",
    size,
    mtime,
    resume: true,
  });
  const half = size / 2;
  const chunk = 256 * 1024;
  const frame = new Uint8Array(HEADER_SIZE + chunk);
  for (let at = 0; at < half; at += chunk) {
    frame.set(content.subarray(at, at + chunk), HEADER_SIZE);
    await a.sendFramed(FrameType.DATA, 1, frame, chunk);
  }
  await waitFor(
    async () => {
      for await (const e of Deno.readDir(server.root)) {
        if (
          e.name.endsWith(".partial") && (await Deno.stat(join(server.root, e.name))).size >= half
        ) {
          return true;
        }
      }
      return false;
    },
    10_000,
    "A's partial",
  );
  // Upload B: the same name, size and mtime, other bytes, asking to continue at 1000.
  const b = await rawSession(server.port);
  const other = sha256(randomBytes(1000));
  await b.sendMessage(FrameType.REQUEST, 1, {
    op: "put",
    path: "same.bin",
    size,
    mtime,
    resume: true,
    offset: 1000,
    prefix: other,
  });
  const refused = await readMessage(b);
  assert.deepEqual([refused.type, refused.msg.code], [FrameType.ERROR, "RESUME_MISMATCH"]);
  b.close();
  // A goes on, and ends whole.
  for (let at = half; at < size; at += chunk) {
    frame.set(content.subarray(at, at + chunk), HEADER_SIZE);
    await a.sendFramed(FrameType.DATA, 1, frame, chunk);
  }
  await a.sendMessage(FrameType.END, 1, { sha256: sha256(content), size });
  const done = await readMessage(a);
  assert.equal(done.type, FrameType.REPLY, JSON.stringify(done.msg));
  a.close();
  assert.deepEqual(await Deno.readFile(join(server.root, "same.bin")), content);
});
