/**
 * Integration: `get -r` from a server with the `tree` feature receives the
 * whole tree as one stream (docs/protocol.md, "Trees"). The real server and
 * client, and fake servers that send what a real one never would.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { decodeMessage, FrameType, HEADER_SIZE } from "../lib/frame.ts";
import { EXIT_CODES, FerryError } from "../lib/util/errors.ts";
import { writeWholeFile } from "../lib/fs/whole_file.ts";
import { decodeRecords, TreeWriter } from "../lib/wire/tree_records.ts";
import type { FrameConn } from "../lib/wire/frame_conn.ts";
import {
  cuttingProxy,
  fakeServer,
  listTree,
  randomBytes,
  rawSession,
  readMessage,
  runClient,
  sha256,
  startServer,
  tempDir,
  xxh128,
} from "./helpers.ts";

const MTIME = Date.UTC(2021, 3, 4, 5, 6, 7);

Deno.test("a whole file gets its exact mode, whatever the umask would leave of it", async () => {
  // Made private, then given its mode on the open file: neither the umask nor a directory's
  // default ACL (which the kernel applies instead of the umask) can narrow it.
  await using dir = await tempDir();
  const at = (name: string) => join(dir.path, name);
  const content = new TextEncoder().encode("mode");
  const modes = [0o640, 0o644, 0o666, 0o777, 0o604, 0o000];
  for (const [i, mode] of modes.entries()) {
    writeWholeFile(at, `f${i}`, () => `.tmp${i}`, content, { mode, mtime: MTIME });
    const info = await Deno.lstat(at(`f${i}`));
    assert.equal(info.mode! & 0o777, mode, `mode ${mode.toString(8)}`);
    assert.equal(info.mtime!.getTime(), MTIME);
  }
  // No temporary file left, whichever way.
  assert.deepEqual((await Array.fromAsync(Deno.readDir(dir.path))).length, modes.length);
  // A directory with a default ACL (u::rwx, g::r-x, o::---), set through python3's setxattr
  // (setfacl is seldom installed): a file created there with 644 would be 640.
  const acl = join(dir.path, "acl");
  await Deno.mkdir(acl);
  const set = await new Deno.Command("python3", {
    args: [
      "-c",
      "import os,struct,sys; os.setxattr(sys.argv[1], 'system.posix_acl_default', " +
      "struct.pack('<I', 2) + b''.join(struct.pack('<HHI', t, p, 0xffffffff) " +
      "for t, p in ((1, 7), (4, 5), (0x20, 0))))",
      acl,
    ],
    stderr: "null",
  }).output().catch(() => undefined);
  if (!set?.success) return; // No python3, or no ACLs on this file system.
  for (const mode of [0o644, 0o755, 0o604]) {
    const to = (name: string) => join(acl, name);
    writeWholeFile(to, `m${mode}`, () => `.tmp${mode}`, content, { mode, mtime: MTIME });
    assert.equal((await Deno.lstat(to(`m${mode}`))).mode! & 0o777, mode, `under the ACL`);
  }
});

Deno.test("get -r streams a tree: files, modes, mtimes of files and directories, large files on their own", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const src = join(server.root, "src");
  const files = new Map<string, Uint8Array>();
  for (let i = 0; i < 300; i++) {
    const path = `d${i % 3}/sub${i % 2}/f${i}.bin`;
    files.set(path, randomBytes(i % 7 === 0 ? 0 : 50 + i * 13));
  }
  files.set("big.bin", randomBytes(3 * 1024 * 1024 + 5));
  files.set("ro/inside.txt", new TextEncoder().encode("inside a read-only directory"));
  for (const [path, bytes] of files) {
    await Deno.mkdir(join(src, path, ".."), { recursive: true });
    await Deno.writeFile(join(src, path), bytes);
    await Deno.chmod(join(src, path), path.endsWith("0.bin") ? 0o600 : 0o644);
    await Deno.utime(join(src, path), MTIME / 1000, MTIME / 1000);
  }
  await Deno.mkdir(join(src, "empty"));
  await Deno.chmod(join(src, "ro"), 0o555);
  for (const dir of ["d0", "d1/sub1", "empty", "ro", ""]) {
    await Deno.utime(join(src, dir), MTIME / 1000, (MTIME + 1000 * dir.length) / 1000);
  }

  const dest = join(local.path, "dest");
  const get = await runClient(server.address, ["--json", "get", "-r", "src", dest]);
  assert.equal(get.code, 0, get.stderr);
  assert.match(server.log(), /get -r src 301 files inline/, "one tree request");
  assert.match(server.log(), /get src\/big\.bin 3145733 bytes/, "the large file on its own");
  const rows = get.stdout.trim().split("\n").map((l) => JSON.parse(l));
  const summary = rows.pop();
  assert.deepEqual([summary.files, summary.failed], [302, 0]);
  for (const row of rows) {
    const path = row.path.slice("src/".length);
    assert.equal(row.checksum.xxh128, xxh128(files.get(path)!), `checksum of ${path}`);
    assert.equal(row.bytes, files.get(path)!.length);
  }
  assert.equal(rows.length, files.size);
  for (const [path, bytes] of files) {
    assert.deepEqual(await Deno.readFile(join(dest, path)), bytes, path);
    const info = await Deno.stat(join(dest, path));
    assert.equal(info.mode! & 0o777, path.endsWith("0.bin") ? 0o600 : 0o644, `mode of ${path}`);
    assert.equal(info.mtime!.getTime(), MTIME, `mtime of ${path}`);
  }
  assert.deepEqual(await listTree(join(dest, "empty")), []);
  for (const dir of ["d0", "d1/sub1", "empty", "ro", ""]) {
    const info = await Deno.stat(join(dest, dir));
    assert.equal(info.mtime!.getTime(), MTIME + 1000 * dir.length, `mtime of directory ${dir}`);
  }
  assert.equal((await Deno.stat(join(dest, "ro"))).mode! & 0o777, 0o555);
  await Deno.chmod(join(dest, "ro"), 0o755);
  await Deno.chmod(join(src, "ro"), 0o755);
});

Deno.test("get -r of a tree: -N keeps local files, a FIFO is written through, symlinks are skipped", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const src = join(server.root, "t");
  await Deno.mkdir(join(src, "a"), { recursive: true });
  await Deno.writeTextFile(join(src, "a", "keep.txt"), "remote");
  await Deno.writeTextFile(join(src, "a", "new.txt"), "new");
  await Deno.writeTextFile(join(src, "pipe"), "through the pipe");
  await Deno.symlink("a/new.txt", join(src, "link"));
  const dest = join(local.path, "t");
  await Deno.mkdir(join(dest, "a"), { recursive: true });
  await Deno.writeTextFile(join(dest, "a", "keep.txt"), "local");
  const noClobber = await runClient(server.address, ["get", "-r", "-N", "t", dest]);
  assert.equal(noClobber.code, 0, noClobber.stderr);
  assert.match(noClobber.stdout, /skipped t\/a\/keep\.txt \(exists\)/);
  assert.match(noClobber.stdout, /skipped t\/link \(symlink\)/);
  assert.equal(await Deno.readTextFile(join(dest, "a", "keep.txt")), "local");
  assert.equal(await Deno.readTextFile(join(dest, "a", "new.txt")), "new");

  // A FIFO where a file lands is fed, not replaced: the file is fetched on its own.
  await Deno.remove(join(dest, "pipe"));
  const fifo = new Deno.Command("mkfifo", { args: [join(dest, "pipe")] }).outputSync();
  assert.ok(fifo.success);
  const reading = Deno.readTextFile(join(dest, "pipe"));
  const again = await runClient(server.address, ["get", "-r", "t", dest]);
  assert.equal(again.code, 0, again.stderr);
  assert.equal(await reading, "through the pipe");
  assert.ok((await Deno.lstat(join(dest, "pipe"))).isFifo, "still a FIFO");
  assert.equal(
    await Deno.readTextFile(join(dest, "a", "keep.txt")),
    "remote",
    "replaced without -n",
  );
});

Deno.test("get -r: a connection cut mid-stream is retried file by file, and the tree arrives whole", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const src = join(server.root, "many");
  for (let d = 0; d < 4; d++) {
    await Deno.mkdir(join(src, `d${d}`), { recursive: true });
    for (let i = 0; i < 100; i++) {
      await Deno.writeFile(join(src, `d${d}`, `f${i}`), randomBytes(4096));
    }
  }
  const proxy = cuttingProxy(server.port, { cutAfter: 600_000, cuts: 1 });
  try {
    const dest = join(local.path, "many");
    const cut = await runClient(proxy.address, ["--retries", "2", "get", "-r", "many", dest]);
    assert.equal(cut.code, 0, cut.stderr);
    assert.ok(proxy.connections >= 2, "a second connection finished it");
    const names = await listTree(src);
    assert.deepEqual(await listTree(dest), names);
    for (const name of names) {
      if (!name.includes("/f")) continue;
      assert.deepEqual(await Deno.readFile(join(dest, name)), await Deno.readFile(join(src, name)));
    }
    assert.deepEqual(
      (await listTree(dest)).filter((n) => n.includes(".ferry-")),
      [],
      "no temporary file left",
    );
  } finally {
    await proxy.close();
  }
});

/** A fake server with the tree feature: answers `stat` with a directory and `tree` with `frames`. */
function treeServer(records: (w: TreeWriter) => Uint8Array[], reply: Record<string, unknown>) {
  return fakeServer(
    async (fc: FrameConn) => {
      for (;;) {
        const frame = await fc.read();
        if (!frame) return;
        const msg = decodeMessage(frame);
        if (msg.op === "stat") {
          const entry = { name: "t", type: "dir", size: 0, mtime: 0, mode: 0o755 };
          await fc.sendMessage(FrameType.REPLY, frame.id, { entry });
        } else if (msg.op === "tree") {
          const buf = new Uint8Array(HEADER_SIZE + 65536);
          for (const payload of records(new TreeWriter(new Uint8Array(65536), "sha256"))) {
            buf.set(payload, HEADER_SIZE);
            await fc.sendFramed(FrameType.DATA, frame.id, buf, payload.length);
          }
          await fc.sendMessage(FrameType.REPLY, frame.id, reply);
        } else if (msg.op === "get") {
          const error = { code: "NOT_FOUND", message: `not found: ${msg.path}` };
          await fc.sendMessage(FrameType.ERROR, frame.id, error);
        } else if (msg.op === "close") {
          await fc.sendMessage(FrameType.REPLY, frame.id, {});
          return;
        }
      }
    },
    undefined,
    { features: ["tree"] },
  );
}

/** One FILE record for `content`, with its right SHA-256 unless `hex` is given. */
function file(w: TreeWriter, path: string, content: Uint8Array, hex = sha256(content)): void {
  w.beginFile(path, 0o644, MTIME, content.length)!.set(content);
  w.endFile(hex);
}

Deno.test("a hostile tree stream writes nothing outside the destination", async () => {
  await using local = await tempDir();
  const bytes = new TextEncoder().encode("payload");
  const cases: [string, (w: TreeWriter) => void, RegExp][] = [
    ["a path that climbs out", (w) => file(w, "../escape", bytes), /unsafe name/],
    ["a file before its directory", (w) => file(w, "nodir/x", bytes), /before its directory/],
    ["an absolute path", (w) => file(w, "/tmp/escape", bytes), /unsafe name/],
    ["a reserved name", (w) => file(w, ".ferry-x.part", bytes), /unsafe name/],
  ];
  for (const [what, write, message] of cases) {
    const server = treeServer((w) => {
      w.reset();
      w.addDir("", 0o755, MTIME);
      write(w);
      return [w.bytes().slice()];
    }, { files: 1, bytes: 7 });
    try {
      const dest = join(local.path, "in", what.replaceAll(" ", "-"));
      const got = await runClient(server.address, ["get", "-r", "t", dest]);
      assert.notEqual(got.code, 0, what);
      assert.match(got.stderr, message, `${what}: ${got.stderr}`);
      assert.deepEqual(
        (await listTree(local.path)).filter((n) => !n.startsWith("in")),
        [],
        `${what}: nothing outside`,
      );
      assert.deepEqual(await listTree(dest).catch(() => []), [], `${what}: nothing written`);
    } finally {
      await server.close();
    }
  }
});

Deno.test("a tree stream's file that fails its checksum is asked for again, and never kept", async () => {
  await using local = await tempDir();
  const good = new TextEncoder().encode("good");
  const server = treeServer((w) => {
    w.reset();
    w.addDir("", 0o755, MTIME);
    file(w, "ok.txt", good);
    file(w, "bad.txt", good, "0".repeat(64));
    return [w.bytes().slice()];
  }, { files: 2, bytes: 8 });
  try {
    const dest = join(local.path, "t");
    const got = await runClient(server.address, ["--json", "get", "-r", "t", dest]);
    assert.equal(got.code, EXIT_CODES.PARTIAL, got.stderr);
    const rows = got.stdout.trim().split("\n").map((l) => JSON.parse(l));
    const bad = rows.find((r) => r.path === "t/bad.txt");
    assert.equal(bad.error.code, "NOT_FOUND", "the fake answers the second request so");
    assert.equal(rows.find((r) => r.path === "t/ok.txt").checksum.sha256, sha256(good));
    assert.deepEqual(await listTree(dest), ["ok.txt"], "the damaged copy was never written");
  } finally {
    await server.close();
  }
});

Deno.test("a tree stream whose count does not match what arrived is a protocol error", async () => {
  await using local = await tempDir();
  const server = treeServer((w) => {
    w.reset();
    w.addDir("", 0o755, MTIME);
    file(w, "one.txt", new Uint8Array([1]));
    return [w.bytes().slice()];
  }, { files: 5, bytes: 5 });
  try {
    const got = await runClient(server.address, ["get", "-r", "t", join(local.path, "t")]);
    assert.notEqual(got.code, 0);
    assert.match(got.stderr, /counted 5 files in the tree, and 1 arrived/);
  } finally {
    await server.close();
  }
});

Deno.test("tree records: any bytes decode to records or a PROTOCOL error, nothing else", () => {
  const w = new TreeWriter(new Uint8Array(4096), "xxh128");
  w.addDir("d", 0o755, MTIME);
  w.beginFile("d/f", 0o644, MTIME, 3)!.set([1, 2, 3]);
  w.endFile("0".repeat(32));
  w.addLarge("d/big", 0o600, MTIME, 2 ** 40);
  w.addSkip("d/l", { skipped: "symlink" });
  const valid = w.bytes().slice();
  const kinds: string[] = [];
  decodeRecords(valid, "xxh128", (r) => kinds.push(r.kind));
  assert.deepEqual(kinds, ["dir", "file", "large", "skip"]);
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (let round = 0; round < 5000; round++) {
    const bytes = valid.slice(0, Math.floor(rand() * (valid.length + 1)));
    for (let flips = Math.floor(rand() * 4); flips > 0; flips--) {
      bytes[Math.floor(rand() * bytes.length)] = Math.floor(rand() * 256);
    }
    try {
      decodeRecords(bytes, "xxh128", () => {});
    } catch (err) {
      assert.ok(err instanceof FerryError && err.code === "PROTOCOL", String(err));
    }
  }
});

Deno.test("put -r streams a tree: files, modes, mtimes of files and directories, large files on their own", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const src = join(local.path, "src");
  const files = new Map<string, Uint8Array>();
  for (let i = 0; i < 200; i++) files.set(`a${i % 4}/b${i % 3}/f${i}`, randomBytes(i * 17));
  files.set("big.bin", randomBytes(2 * 1024 * 1024 + 1));
  for (const [path, bytes] of files) {
    await Deno.mkdir(join(src, path, ".."), { recursive: true });
    await Deno.writeFile(join(src, path), bytes);
    await Deno.chmod(join(src, path), path.endsWith("1") ? 0o600 : 0o644);
    await Deno.utime(join(src, path), MTIME / 1000, MTIME / 1000);
  }
  await Deno.mkdir(join(src, "empty"));
  for (const dir of ["a0", "a1/b2", "empty", ""]) {
    await Deno.utime(join(src, dir), MTIME / 1000, (MTIME + 1000 * dir.length) / 1000);
  }
  const put = await runClient(server.address, ["--json", "put", "-r", src, "up"]);
  assert.equal(put.code, 0, put.stderr);
  assert.match(server.log(), /put -r up 200 files inline/, "one tree request");
  assert.match(server.log(), /put up\/big\.bin 2097153 bytes/, "the large file on its own");
  const rows = put.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual([rows.at(-1).files, rows.at(-1).failed], [201, 0]);
  for (const row of rows.slice(0, -1)) {
    const bytes = files.get(row.path.slice("up/".length))!;
    assert.equal(row.checksum.xxh128, xxh128(bytes), row.path);
  }
  const dest = join(server.root, "up");
  for (const [path, bytes] of files) {
    assert.deepEqual(await Deno.readFile(join(dest, path)), bytes, path);
    const info = await Deno.stat(join(dest, path));
    assert.equal(info.mode! & 0o777, path.endsWith("1") ? 0o600 : 0o644, `mode of ${path}`);
    assert.equal(info.mtime!.getTime(), MTIME, `mtime of ${path}`);
  }
  for (const dir of ["a0", "a1/b2", "empty", ""]) {
    const info = await Deno.stat(join(dest, dir));
    assert.equal(info.mtime!.getTime(), MTIME + 1000 * dir.length, `mtime of directory ${dir}`);
  }
  assert.deepEqual((await listTree(dest)).filter((n) => n.includes(".ferry-")), []);
});

Deno.test("put -r of a tree: -N, a write token that cannot replace, --max-file-size and a quota fail per file", async () => {
  await using local = await tempDir();
  const src = join(local.path, "src");
  await Deno.mkdir(join(src, "d"), { recursive: true });
  await Deno.writeTextFile(join(src, "d", "old.txt"), "new content");
  await Deno.writeTextFile(join(src, "d", "fresh.txt"), "fresh");
  await Deno.writeFile(join(src, "d", "large.bin"), randomBytes(3000));
  const WRITE = "w".repeat(32);
  await Deno.writeTextFile(join(local.path, "tokens"), `${WRITE} write\n`);
  await using server = await startServer({
    args: ["--tokens", join(local.path, "tokens"), "--max-file-size", "2000"],
  });
  await Deno.mkdir(join(server.root, "t", "d"), { recursive: true });
  await Deno.writeTextFile(join(server.root, "t", "d", "old.txt"), "old content");
  const env = { FERRY_TOKEN: WRITE };

  const noClobber = await runClient(server.address, ["--json", "put", "-r", "-N", src, "t"], {
    env,
  });
  const rows = noClobber.stdout.trim().split("\n").map((l) => JSON.parse(l));
  const row = (path: string) => rows.find((r) => r.path === path);
  assert.equal(row("t/d/old.txt").skipped, "exists");
  assert.equal(row("t/d/large.bin").error.code, "LIMIT");
  assert.equal(row("t/d/fresh.txt").error, undefined);
  assert.equal(noClobber.code, 10, noClobber.stderr);
  assert.equal(await Deno.readTextFile(join(server.root, "t", "d", "old.txt")), "old content");
  assert.equal(await Deno.readTextFile(join(server.root, "t", "d", "fresh.txt")), "fresh");

  const replace = await runClient(server.address, ["--json", "put", "-r", src, "t"], { env });
  const again = replace.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.equal(again.find((r) => r.path === "t/d/old.txt").error.code, "PERMISSION");
  assert.equal(await Deno.readTextFile(join(server.root, "t", "d", "old.txt")), "old content");

  await using quota = await startServer({ args: ["--quota", "2000"] });
  const over = await runClient(quota.address, ["--json", "put", "-r", src, "q"]);
  const failed = over.stdout.trim().split("\n").map((l) => JSON.parse(l)).filter((r) => r.error);
  assert.ok(failed.length >= 1, over.stdout);
  assert.ok(failed.every((r) => ["LIMIT", "NO_SPACE"].includes(r.error.code)), over.stdout);
  assert.equal(over.code, 10);
  let stored = 0;
  for (const name of await listTree(join(quota.root, "q"))) {
    const info = await Deno.stat(join(quota.root, "q", name));
    if (info.isFile) stored += info.size;
  }
  assert.ok(stored <= 2000, `the quota holds: ${stored} bytes stored`);
});

Deno.test("a hostile tree upload stores nothing outside the root, nothing damaged", async () => {
  await using server = await startServer();
  const fc = await rawSession(server.port);
  try {
    await fc.sendMessage(FrameType.REQUEST, 1, { op: "puttree", path: "in", noClobber: false });
    const w = new TreeWriter(new Uint8Array(65536), "sha256");
    const good = new TextEncoder().encode("good");
    file(w, "ok.txt", good);
    file(w, "../escape.txt", good);
    file(w, "damaged.txt", good, "0".repeat(64));
    w.addDir("sub", 0o755, MTIME);
    file(w, "sub/.ferry-x.part", good);
    file(w, "sub/a\\b", good);
    const payload = w.bytes();
    const buf = new Uint8Array(HEADER_SIZE + payload.length);
    buf.set(payload, HEADER_SIZE);
    await fc.sendFramed(FrameType.DATA, 1, buf, payload.length);
    await fc.sendMessage(FrameType.END, 1, { files: 5, bytes: 20 });
    const failures: Record<string, string> = {};
    for (;;) {
      const { type, msg } = await readMessage(fc);
      assert.equal(type, FrameType.REPLY, JSON.stringify(msg));
      const failed = msg.failed as { path: string; code: string } | undefined;
      if (!failed) {
        assert.deepEqual([msg.files, msg.done], [5, true]);
        break;
      }
      failures[failed.path] = failed.code;
    }
    assert.deepEqual(failures, {
      "../escape.txt": "PATH_REFUSED",
      "damaged.txt": "INTEGRITY",
      "sub/.ferry-x.part": "PATH_REFUSED",
      "sub/a\\b": "PATH_REFUSED",
    });
    assert.deepEqual(await listTree(server.root), ["in", "in/ok.txt", "in/sub"]);
  } finally {
    fc.close();
  }
});

Deno.test("put -r --delete after a failure deletes nothing, as rsync", async () => {
  await using server = await startServer({ args: ["--max-file-size", "10"] });
  await using local = await tempDir();
  const src = join(local.path, "src");
  await Deno.mkdir(src);
  await Deno.writeTextFile(join(src, "small"), "s");
  await Deno.writeTextFile(join(src, "too-big"), "over the limit");
  await Deno.mkdir(join(server.root, "t"));
  await Deno.writeTextFile(join(server.root, "t", "extra"), "keep me: the run failed");
  const put = await runClient(server.address, ["put", "-r", "--delete", src, "t"]);
  assert.equal(put.code, 10);
  assert.match(put.stderr, /not deleting anything: 1 entry failed/);
  assert.equal(await Deno.readTextFile(join(server.root, "t", "extra")), "keep me: the run failed");
  await Deno.remove(join(src, "too-big"));
  const clean = await runClient(server.address, ["put", "-r", "--delete", src, "t"]);
  assert.equal(clean.code, 0, clean.stderr);
  assert.deepEqual(await listTree(join(server.root, "t")), ["small"]);
});

Deno.test("put -r: a connection cut mid-stream is retried file by file, and the tree arrives whole", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const src = join(local.path, "many");
  for (let d = 0; d < 4; d++) {
    await Deno.mkdir(join(src, `d${d}`), { recursive: true });
    for (let i = 0; i < 100; i++) {
      await Deno.writeFile(join(src, `d${d}`, `f${i}`), randomBytes(4096));
    }
  }
  const proxy = cuttingProxy(server.port, { cutAfter: 600_000, cuts: 1 });
  try {
    const cut = await runClient(proxy.address, ["--retries", "2", "put", "-r", src, "many"]);
    assert.equal(cut.code, 0, cut.stderr);
    assert.ok(proxy.connections >= 2, "a second connection finished it");
    const dest = join(server.root, "many");
    const names = await listTree(src);
    assert.deepEqual(await listTree(dest), names, "no temporary file left either");
    for (const name of names) {
      if (!name.includes("/f")) continue;
      assert.deepEqual(await Deno.readFile(join(dest, name)), await Deno.readFile(join(src, name)));
    }
  } finally {
    await proxy.close();
  }
});

Deno.test("put x / puts at the root; get -r / DEST takes the whole root; listed trees keep directory times too", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  await Deno.writeTextFile(join(local.path, "x.txt"), "x");
  const put = await runClient(server.address, ["put", join(local.path, "x.txt"), "/"]);
  assert.equal(put.code, 0, put.stderr);
  assert.equal(await Deno.readTextFile(join(server.root, "x.txt")), "x");
  await Deno.mkdir(join(server.root, "d"));
  await Deno.utime(join(server.root, "d"), MTIME / 1000, MTIME / 1000);
  for (const [how, extra] of [["stream", []], ["listing", ["--sync"]]] as const) {
    const dest = join(local.path, `all-${how}`);
    const get = await runClient(server.address, ["get", "-r", ...extra, "/", `${dest}/`]);
    assert.equal(get.code, 0, get.stderr);
    assert.deepEqual(await listTree(dest), ["d", "x.txt"], how);
    assert.equal(
      (await Deno.stat(join(dest, "d"))).mtime!.getTime(),
      MTIME,
      `${how}: directory mtime`,
    );
  }
  const noDest = await runClient(server.address, ["get", "-r", "/"]);
  assert.equal(noDest.code, 2);
  assert.match(noDest.stderr, /get -r \/ needs the local directory/);
});

Deno.test("trees: a local directory that cannot be made fails what is in it only; --delete keeps directory times; the root's mode is the operator's", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const src = join(server.root, "t");
  await Deno.mkdir(join(src, "sub"), { recursive: true });
  await Deno.mkdir(join(src, "zdir"));
  await Deno.writeTextFile(join(src, "sub", "x"), "x");
  await Deno.writeTextFile(join(src, "zdir", "y"), "y");
  await Deno.writeTextFile(join(src, "zz.txt"), "z");
  const dest = join(local.path, "t");
  await Deno.mkdir(dest);
  await Deno.writeTextFile(join(dest, "sub"), "a file where the directory goes");
  const get = await runClient(server.address, ["--json", "get", "-r", "t", dest]);
  assert.equal(get.code, 10, get.stderr);
  const rows = get.stdout.trim().split("\n").map((l) => JSON.parse(l));
  const failed = rows.filter((r) => r.error).map((r) => r.path).sort();
  assert.deepEqual(failed, ["t/sub", "t/sub/x"]);
  assert.equal(await Deno.readTextFile(join(dest, "zdir", "y")), "y");
  assert.equal(await Deno.readTextFile(join(dest, "zz.txt")), "z");

  // put -r --delete: the directory's mtime is the tree's, after the deletion too.
  const up = join(local.path, "up");
  await Deno.mkdir(join(up, "d"), { recursive: true });
  await Deno.writeTextFile(join(up, "d", "keep"), "k");
  await Deno.utime(join(up, "d"), MTIME / 1000, MTIME / 1000);
  await Deno.mkdir(join(server.root, "u", "d"), { recursive: true });
  await Deno.writeTextFile(join(server.root, "u", "d", "extra"), "e");
  const put = await runClient(server.address, ["put", "-r", "--delete", up, "u"]);
  assert.equal(put.code, 0, put.stderr);
  assert.deepEqual(await listTree(join(server.root, "u")), ["d", "d/keep"]);
  assert.equal((await Deno.stat(join(server.root, "u", "d"))).mtime!.getTime(), MTIME);

  // The served root keeps its own mode and time, whatever a tree put into it had.
  const before = await Deno.stat(server.root);
  await Deno.chmod(up, 0o700);
  const toRoot = await runClient(server.address, ["put", "-r", up, "/"]);
  assert.equal(toRoot.code, 0, toRoot.stderr);
  const after = await Deno.stat(server.root);
  assert.equal(after.mode! & 0o777, before.mode! & 0o777);
  const fc = await rawSession(server.port);
  try {
    await fc.sendMessage(FrameType.REQUEST, 1, { op: "setstat", path: "", mode: 0 });
    const answer = await readMessage(fc);
    assert.deepEqual([answer.type, answer.msg.code], [FrameType.ERROR, "PATH_REFUSED"]);
  } finally {
    fc.close();
  }
});
