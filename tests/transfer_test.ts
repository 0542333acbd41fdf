/** Integration: the real ferryd and the real ferry CLI, moving files both ways. */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { statfsSync } from "node:fs";
import { join } from "node:path";
import { isTempName } from "../lib/fs/temp_names.ts";
import { PROGRAMS } from "../scripts/build.ts";
import { decodeMessage, DEFAULT_LIMITS, FrameType, HEADER_SIZE } from "../lib/frame.ts";
import {
  fakeServer,
  listTree,
  peakRss,
  randomBytes,
  rawSession,
  readMessage,
  runClient,
  sameContent,
  spawnClient,
  startServer,
  tempDir,
  waitFor,
  writeRandomFile,
} from "./helpers.ts";
import { onBothStores } from "./server_files.ts";

const CHUNK = DEFAULT_LIMITS.maxData;

Deno.test("ferry and ferryd work without --allow-all: env, net, read and write are enough", async () => {
  // The binaries are built with --allow-all (see PROGRAMS); a user who runs them from source
  // with narrower flags, and without --allow-ffi (so XXH3-128 in WebAssembly), gets the same.
  const narrow = ["--allow-env", "--allow-net", "--allow-read", "--allow-write"];
  assert.ok(PROGRAMS.every((p) => p.flags.includes("--allow-all")));
  await using server = await startServer({ flags: narrow });
  await using local = await tempDir();
  const flags = narrow;
  const tree = join(local.path, "tree");
  await Deno.mkdir(join(tree, "sub"), { recursive: true });
  await Deno.writeFile(join(tree, "small.bin"), randomBytes(100));
  await Deno.writeFile(join(tree, "sub", "big.bin"), randomBytes(3 * CHUNK));
  await Deno.chmod(join(tree, "small.bin"), 0o600);
  const runs = [
    ["put", join(tree, "small.bin"), "one.bin"],
    ["put", "-r", tree, "t"],
    ["get", "one.bin", join(local.path, "one.bin")],
    ["get", "-r", "t", join(local.path, "back")],
  ];
  for (const args of runs) {
    const run = await runClient(server.address, args, { flags });
    assert.equal(run.code, 0, `${args.join(" ")}: ${run.stderr}`);
  }
  for (const name of ["small.bin", "sub/big.bin"]) {
    assert.ok(await sameContent(join(tree, name), join(local.path, "back", name)), name);
  }
  assert.ok(await sameContent(join(tree, "small.bin"), join(local.path, "one.bin")));
  // The mode travels both ways, whatever the umask would have made of it.
  assert.equal((await Deno.stat(join(server.root, "t", "small.bin"))).mode! & 0o777, 0o600);
  assert.equal((await Deno.stat(join(local.path, "back", "small.bin"))).mode! & 0o777, 0o600);
});

onBothStores(
  "put then get round-trips files of every interesting size byte for byte",
  async (server) => {
    await using local = await tempDir();
    const sizes = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 123];
    for (const size of sizes) {
      const src = join(local.path, `src-${size}.bin`);
      await Deno.writeFile(src, randomBytes(size));
      const put = await runClient(server.address, ["put", src, `f-${size}.bin`]);
      assert.equal(put.code, 0, put.stderr);
      assert.deepEqual(
        await server.files.read(`f-${size}.bin`),
        await Deno.readFile(src),
        `server copy ${size}`,
      );
      const back = join(local.path, `back-${size}.bin`);
      const get = await runClient(server.address, ["get", `f-${size}.bin`, back]);
      assert.equal(get.code, 0, get.stderr);
      assert.ok(await sameContent(src, back), `round trip ${size}`);
    }
    assert.deepEqual(
      (await server.files.tree()).filter((n) => n.startsWith(".ferry-")),
      [],
      "no temporary files left behind",
    );
  },
);

onBothStores("names with spaces and non-ASCII characters, nested directories", async (server) => {
  await using local = await tempDir();
  const name = "naïve ☃ файл.txt";
  const src = join(local.path, name);
  await Deno.writeTextFile(src, "unicode content ✓");
  const remote = "dir with space/ünïcödé/";
  const put = await runClient(server.address, ["put", src, remote]);
  assert.equal(put.code, 0, put.stderr);
  assert.equal(await server.files.readText(`${remote}${name}`), "unicode content ✓");

  const ls = await runClient(server.address, ["ls", "dir with space"]);
  assert.equal(ls.code, 0, ls.stderr);
  assert.equal(ls.stdout, "ünïcödé/\n");

  // get into an existing directory keeps the remote name.
  const into = join(local.path, "into");
  await Deno.mkdir(into);
  const get = await runClient(server.address, ["get", `${remote}${name}`, into]);
  assert.equal(get.code, 0, get.stderr);
  assert.equal(await Deno.readTextFile(join(into, name)), "unicode content ✓");

  // get with no LOCAL writes to the working directory.
  const cwd = join(local.path, "cwd");
  await Deno.mkdir(cwd);
  const plain = await runClient(server.address, ["get", `${remote}${name}`], { cwd });
  assert.equal(plain.code, 0, plain.stderr);
  assert.deepEqual(await listTree(cwd), [name]);
});

onBothStores(
  "put replaces an existing file atomically and ls hides temporary files",
  async (server) => {
    await using local = await tempDir();
    await server.files.write("a.txt", "old");
    await server.files.write(".ferry-0011223344556677.part", "stale temp");
    await Deno.writeTextFile(join(local.path, "a.txt"), "new content");
    const put = await runClient(server.address, ["put", join(local.path, "a.txt")]);
    assert.equal(put.code, 0, put.stderr);
    assert.equal(await server.files.readText("a.txt"), "new content");
    const ls = await runClient(server.address, ["ls"]);
    assert.equal(ls.stdout, "a.txt\n");
    const get = await runClient(server.address, ["get", ".ferry-0011223344556677.part"], {
      cwd: local.path,
    });
    assert.equal(get.code, 7);
    assert.match(get.stderr, /reserved name/);
  },
);

onBothStores(
  "a failed get creates no local file and exits with the documented code",
  async (server) => {
    await using local = await tempDir();
    const missing = await runClient(server.address, ["get", "missing.txt"], { cwd: local.path });
    assert.equal(missing.code, 5);
    assert.equal(missing.stderr, "ferry: not found: missing.txt (on the server)\n");
    const dir = await runClient(server.address, ["get", ""], { cwd: local.path });
    assert.equal(dir.code, 2);
    await server.files.mkdir("sub");
    const notFile = await runClient(server.address, ["get", "sub"], { cwd: local.path });
    assert.equal(notFile.code, 6);
    assert.match(notFile.stderr, /remote sub is a directory: get -r downloads it/);
    assert.deepEqual(await listTree(local.path), []);
  },
);

Deno.test("traversal and symlink escapes are refused for get and put", async () => {
  await using outside = await tempDir();
  await using server = await startServer();
  await using local = await tempDir();
  await Deno.writeTextFile(join(outside.path, "secret.txt"), "secret");
  await Deno.symlink(outside.path, join(server.root, "link-out"));
  await Deno.symlink(join(outside.path, "secret.txt"), join(server.root, "secret-link"));
  const src = join(local.path, "x.txt");
  await Deno.writeTextFile(src, "payload");
  const attempts = [
    ["get", "../secret.txt"],
    ["get", "link-out/secret.txt"],
    ["get", "secret-link"],
    ["get", "a/../../secret.txt"],
    ["put", src, "../escaped.txt"],
    ["put", src, "link-out/escaped.txt"],
    ["put", src, "link-out/new/escaped.txt"],
  ];
  for (const args of attempts) {
    const run = await runClient(server.address, args, { cwd: local.path });
    assert.equal(run.code, 7, `${args.join(" ")}: ${run.stderr}`);
    assert.match(run.stderr, /^ferry: path refused: .+\n$/, args.join(" "));
  }
  // A backslash escapes the next character (see Globs in the README): `..\secret.txt` names
  // the harmless `..secret.txt`, which is not there.
  const escaped = await runClient(server.address, ["get", "..\\secret.txt"], { cwd: local.path });
  assert.equal(escaped.code, 5, escaped.stderr);
  assert.match(escaped.stderr, /^ferry: not found: \.\.secret\.txt \(on the server\)\n$/);
  // An absolute path names a place under the root, as in the shell and sftp: never outside.
  const absoluteGet = await runClient(server.address, ["get", `${outside.path}/secret.txt`], {
    cwd: local.path,
  });
  assert.equal(absoluteGet.code, 5, absoluteGet.stderr);
  assert.match(absoluteGet.stderr, /^ferry: not found: tmp\//);
  const absolutePut = await runClient(
    server.address,
    ["put", src, `${outside.path}/escaped.txt`],
    { cwd: local.path },
  );
  assert.equal(absolutePut.code, 0, absolutePut.stderr);
  const landed = join(server.root, outside.path.replace(/^\/+/, ""), "escaped.txt");
  assert.equal(await Deno.readTextFile(landed), "payload", "under the root");
  assert.deepEqual(await listTree(outside.path), ["secret.txt"]);
  assert.deepEqual(await listTree(local.path), ["x.txt"]);
});

Deno.test("connection refused is one line and exit code 3", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const run = await runClient(`127.0.0.1:${port}`, ["ls"]);
  assert.equal(run.code, 3);
  assert.match(run.stderr, /^ferry: cannot connect to 127\.0\.0\.1:\d+: connection refused\n$/);
});

/** A fake server that answers every get with the given content but a wrong SHA-256. */
/** Answers every get with `content` and a wrong SHA-256; returns the requests it saw. */
function lyingServer(content: Uint8Array) {
  const requests: Record<string, unknown>[] = [];
  const server = fakeServer(async (fc) => {
    for (let req; (req = await fc.read().catch(() => null));) {
      requests.push(decodeMessage(req));
      if (requests.at(-1)!.op !== "get") break;
      await fc.sendMessage(FrameType.REPLY, req.id, {
        size: content.length,
        mtime: 0,
        mode: 0o644,
      });
      const buf = new Uint8Array(HEADER_SIZE + content.length);
      buf.set(content, HEADER_SIZE);
      await fc.sendFramed(FrameType.DATA, req.id, buf, content.length);
      await fc.sendMessage(FrameType.END, req.id, { sha256: "0".repeat(64) });
    }
  });
  return Object.assign(server, { requests });
}

Deno.test("a corrupted download fails the integrity check and leaves no file", async () => {
  await using local = await tempDir();
  const fake = lyingServer(new TextEncoder().encode("tampered"));
  const run = await runClient(fake.address, ["get", "f.txt"], { cwd: local.path });
  await fake.close();
  assert.equal(run.code, 8);
  assert.match(run.stderr, /SHA-256 mismatch/);
  assert.deepEqual(await listTree(local.path), []);
  // Asked once more, with the content hashed as it is sent, in case the hash was a stale one.
  const gets = fake.requests.filter((r) => r.op === "get");
  assert.deepEqual(gets.map((r) => r.fresh), [undefined, true]);
});

onBothStores(
  "a corrupted upload is refused by the server and nothing is stored",
  async (server) => {
    const fc = await rawSession(server.port);
    const body = new TextEncoder().encode("hello");
    await fc.sendMessage(FrameType.REQUEST, 1, { op: "put", path: "bad.txt", size: body.length });
    const buf = new Uint8Array(HEADER_SIZE + body.length);
    buf.set(body, HEADER_SIZE);
    await fc.sendFramed(FrameType.DATA, 1, buf, body.length);
    await fc.sendMessage(FrameType.END, 1, { sha256: "f".repeat(64) });
    const reply = await readMessage(fc);
    assert.equal(reply.type, FrameType.ERROR);
    assert.equal(reply.msg.code, "INTEGRITY");

    // A short body (END before all announced bytes) is refused too.
    await fc.sendMessage(FrameType.REQUEST, 2, { op: "put", path: "short.txt", size: 10 });
    await fc.sendFramed(FrameType.DATA, 2, buf, body.length);
    const sha = createHash("sha256").update(body).digest("hex");
    await fc.sendMessage(FrameType.END, 2, { sha256: sha });
    const short = await readMessage(fc);
    assert.equal(short.msg.code, "INTEGRITY");
    assert.match(String(short.msg.message), /size mismatch/);

    // The session is still good after both.
    await fc.sendMessage(FrameType.REQUEST, 3, { op: "put", path: "good.txt", size: body.length });
    await fc.sendFramed(FrameType.DATA, 3, buf, body.length);
    await fc.sendMessage(FrameType.END, 3, { sha256: sha });
    assert.equal((await readMessage(fc)).type, FrameType.REPLY);
    fc.close();
    assert.deepEqual(await server.files.tree(), ["good.txt"]);
  },
);

Deno.test("a rejected upload's body is skipped and the session goes on", async () => {
  await using server = await startServer();
  const fc = await rawSession(server.port);
  const buf = new Uint8Array(HEADER_SIZE + 4);
  await fc.sendMessage(FrameType.REQUEST, 1, { op: "put", path: "../x", size: 8 });
  await fc.sendFramed(FrameType.DATA, 1, buf, 4);
  await fc.sendFramed(FrameType.DATA, 1, buf, 4);
  await fc.sendMessage(FrameType.END, 1, { sha256: "0".repeat(64) });
  await fc.sendMessage(FrameType.REQUEST, 2, { op: "ls", path: "" });
  const refused = await readMessage(fc);
  assert.deepEqual([refused.type, refused.id, refused.msg.code], [
    FrameType.ERROR,
    1,
    "PATH_REFUSED",
  ]);
  const ls = await readMessage(fc);
  assert.deepEqual([ls.type, ls.id, ls.msg.entries], [FrameType.REPLY, 2, []]);
  fc.close();
});

Deno.test("a client killed mid-upload leaves no file under the final name; --resume finishes it", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const src = join(local.path, "big.bin");
  await writeRandomFile(src, 1024 * CHUNK);
  await Deno.writeTextFile(join(server.root, "big.bin"), "previous version");
  const partials = () => [...Deno.readDirSync(server.root)].filter((e) => isTempName(e.name));
  const child = spawnClient(server.address, ["put", src, "big.bin"]);
  await waitFor(
    () => partials().some((e) => Deno.statSync(join(server.root, e.name)).size > 0),
    20_000,
    "the upload to start",
  );
  child.kill("SIGKILL");
  await child.output();
  await waitFor(() => /put big\.bin failed/.test(server.log()), 5000, "the failure to be logged");
  assert.equal(await Deno.readTextFile(join(server.root, "big.bin")), "previous version");
  assert.equal(partials().length, 1, "the partial upload is kept for a resume");
  assert.match(partials()[0].name, /\.partial$/);

  const run = await runClient(server.address, ["--json", "put", "--resume", src, "big.bin"]);
  assert.equal(run.code, 0, run.stderr);
  const line = JSON.parse(run.stdout.split("\n")[0]);
  assert.ok(line.resumed > 0, run.stdout);
  assert.equal(line.bytes + line.resumed, 1024 * CHUNK);
  assert.deepEqual(await Deno.readFile(join(server.root, "big.bin")), await Deno.readFile(src));
  assert.deepEqual(partials(), [], "the partial is gone");
});

/** Free bytes where the tests make their temporary directories. */
function freeTempSpace(): number {
  const fs = statfsSync(Deno.env.get("TMPDIR") ?? "/tmp");
  return Number(fs.bavail) * Number(fs.bsize);
}

Deno.test({
  name: "a 1 GiB put and get keep both processes under 150 MiB resident",
  // Three copies of 1 GiB on disk: a machine short of space reports this test ignored.
  ignore: freeTempSpace() < 4 * 1024 ** 3,
  async fn() {
    await using server = await startServer();
    await using local = await tempDir();
    const size = 1024 * 1024 * 1024;
    const src = join(local.path, "gib.bin");
    await writeRandomFile(src, size);
    const limit = 150 * 1024 * 1024;
    for (
      const args of [["put", src, "gib.bin"], ["get", "gib.bin", join(local.path, "back.bin")]]
    ) {
      const child = spawnClient(server.address, args);
      child.stdin.close();
      let clientPeak = 0;
      const poll = setInterval(() => {
        clientPeak = Math.max(clientPeak, peakRss(child.pid));
      }, 10);
      const out = await child.output();
      clearInterval(poll);
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      assert.ok(clientPeak > 0 && clientPeak < limit, `client ${args[0]} peak ${clientPeak}`);
    }
    const serverPeak = peakRss(server.process.pid);
    assert.ok(serverPeak > 0 && serverPeak < limit, `server peak ${serverPeak}`);
    assert.equal((await Deno.stat(join(local.path, "back.bin"))).size, size);
    assert.ok(await sameContent(src, join(local.path, "back.bin")));
  },
});

Deno.test("a receiver that stops reading slows the sender instead of growing its memory", async () => {
  await using server = await startServer();
  await writeRandomFile(join(server.root, "big.bin"), 256 * CHUNK);
  const fc = await rawSession(server.port);
  const before = peakRss(server.process.pid);
  await fc.sendMessage(FrameType.REQUEST, 1, { op: "get", path: "big.bin" });
  const reply = await readMessage(fc);
  assert.equal(reply.msg.size, 256 * CHUNK);
  await new Promise((r) => setTimeout(r, 1000));
  const stalled = peakRss(server.process.pid);
  assert.ok(stalled - before < 32 * CHUNK, `server grew by ${stalled - before} bytes`);
  // Now drain it all: the content and the hash the server sent match the file.
  const hash = createHash("sha256");
  let received = 0;
  let trailer: Record<string, unknown> = {};
  for (;;) {
    const frame = await fc.read();
    if (frame!.type === FrameType.END) {
      trailer = decodeMessage(frame!);
      break;
    }
    hash.update(frame!.payload);
    received += frame!.payload.length;
  }
  fc.close();
  assert.equal(received, 256 * CHUNK);
  const onDisk = createHash("sha256").update(await Deno.readFile(join(server.root, "big.bin")));
  const expected = onDisk.digest("hex");
  assert.equal(hash.digest("hex"), expected);
  assert.equal(trailer.sha256, expected);
});

Deno.test("ferryd --fsync stores uploads the same way, flushed before the reply", async () => {
  await using server = await startServer({ args: ["--fsync"] });
  await using local = await tempDir();
  const src = join(local.path, "a.bin");
  await Deno.writeFile(src, randomBytes(3 * CHUNK + 7));
  const put = await runClient(server.address, ["put", src, "d/a.bin"]);
  assert.equal(put.code, 0, put.stderr);
  assert.ok(await sameContent(src, join(server.root, "d", "a.bin")));
});
