/**
 * Trust at every edge: concurrent downloads, special destinations and
 * sources, sources that change while sent, a client's own disk, moves under
 * uploads, reserved names, interrupted transfers, silent connections. Each
 * case is driven through the real CLIs.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { isTempName } from "../lib/fs/temp_names.ts";
import { FrameType, HEADER_SIZE } from "../lib/frame.ts";
import {
  clientCommand,
  cuttingProxy,
  fakeServer,
  listTree,
  peakRss,
  randomBytes,
  runClient,
  runClientBytes,
  sha256,
  spawnClient,
  startServer,
  tempDir,
  throttledProxy,
  waitFor,
  writeRandomFile,
  xxh128,
} from "./helpers.ts";

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** The JSON rows a --json run printed. */
// deno-lint-ignore no-explicit-any
function rows(stdout: string): Record<string, any>[] {
  return stdout.trim().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

/** The hidden temporary and partial files in `dir`, recursively. */
async function temps(dir: string): Promise<string[]> {
  const names = await listTree(dir).catch(() => []);
  return names.filter((n) => isTempName(n.split("/").at(-1)!));
}

/** Wait until some file in `dir` holds at least `bytes` bytes under a hidden temporary name. */
async function partialOf(dir: string, bytes: number): Promise<string> {
  let found = "";
  await waitFor(
    async () => {
      for (const name of await temps(dir)) {
        const size = await Deno.stat(join(dir, name)).then((i) => i.size, () => 0);
        if (size >= bytes) found = name;
      }
      return found !== "";
    },
    30_000,
    `a partial of ${bytes} bytes in ${dir}`,
  );
  return found;
}

/** Overwrite `bytes.length` bytes of `path` at each of `offsets`, in place. */
async function overwriteInPlace(path: string, offsets: number[], bytes: Uint8Array) {
  using file = await Deno.open(path, { write: true });
  for (const offset of offsets) {
    await file.seek(offset, Deno.SeekMode.Start);
    await file.write(bytes);
  }
}

async function fileHash(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk);
  return hash.digest("hex");
}

/** Replace `path` with `content` the way a publisher does: a new file renamed over it. */
async function republish(path: string, content: Uint8Array) {
  await Deno.writeFile(`${path}.new`, content);
  await Deno.rename(`${path}.new`, path);
}

Deno.test("two gets of a republished file into one directory each leave one whole version", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const v1 = randomBytes(24 * MiB);
  const v2 = randomBytes(24 * MiB);
  await Deno.writeFile(join(server.root, "latest.bin"), v1);
  // The first download is slowed down, so that the second starts while it runs.
  const slow = throttledProxy(server.port, 40 * MiB);
  const first = spawnClient(slow.address, ["--json", "get", "latest.bin"], { cwd: local.path });
  await partialOf(local.path, MiB);
  await republish(join(server.root, "latest.bin"), v2);
  const second = await runClient(server.address, ["--json", "get", "latest.bin"], {
    cwd: local.path,
  });
  const firstOut = await first.output();
  await slow.close();
  assert.equal(second.code, 0, second.stderr);
  assert.equal(firstOut.code, 0, new TextDecoder().decode(firstOut.stderr));
  const firstRow = rows(new TextDecoder().decode(firstOut.stdout))[0];
  const secondRow = rows(second.stdout)[0];
  assert.equal(firstRow.checksum.xxh128, xxh128(v1), "the first got the version it started with");
  assert.equal(secondRow.checksum.xxh128, xxh128(v2));
  // Whichever finished last left its version, whole: one of the two that were reported.
  const onDisk = await fileHash(join(local.path, "latest.bin"));
  assert.ok([sha256(v1), sha256(v2)].includes(onDisk), "one whole version, not a mix");
  assert.deepEqual(await listTree(local.path), ["latest.bin"], "no partial left");
});

Deno.test("gets of one name from two servers into one directory never mix", async () => {
  await using a = await startServer();
  await using b = await startServer();
  await using local = await tempDir();
  const versions = [randomBytes(16 * MiB), randomBytes(16 * MiB)];
  await Deno.writeFile(join(a.root, "latest.bin"), versions[0]);
  await Deno.writeFile(join(b.root, "latest.bin"), versions[1]);
  for (let round = 0; round < 3; round++) {
    const slowA = throttledProxy(a.port, 60 * MiB);
    const slowB = throttledProxy(b.port, 60 * MiB);
    const runs = await Promise.all(
      [slowA, slowB].map((proxy) =>
        runClient(proxy.address, ["--json", "get", "latest.bin"], { cwd: local.path })
      ),
    );
    await Promise.all([slowA.close(), slowB.close()]);
    for (const run of runs) assert.equal(run.code, 0, run.stderr);
    const reported = runs.map((r) => rows(r.stdout)[0].checksum.xxh128);
    assert.deepEqual(reported, versions.map(xxh128), "each reports its own server's file");
    const onDisk = xxh128(await Deno.readFile(join(local.path, "latest.bin")));
    assert.ok(reported.includes(onDisk), `round ${round}: the file is one whole version`);
    assert.deepEqual(await listTree(local.path), ["latest.bin"], "no partial left");
  }
});

Deno.test("get writes through a FIFO, a device and a symlink, never replacing them", async (t) => {
  await using server = await startServer();
  await using local = await tempDir();
  const content = randomBytes(3 * MiB + 5);
  await Deno.writeFile(join(server.root, "f.bin"), content);

  await t.step("a FIFO: its reader gets the bytes, and it stays a FIFO", async () => {
    const fifo = join(local.path, "pipe");
    assert.ok((await new Deno.Command("mkfifo", { args: [fifo] }).output()).success);
    // Bounded: had the FIFO been replaced, its reader would wait for a writer for ever.
    const reader = new Deno.Command("timeout", { args: ["30", "cat", fifo], stdout: "piped" })
      .output();
    const [run, read] = await Promise.all([
      runClient(server.address, ["get", "f.bin", fifo]),
      reader,
    ]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(sha256(read.stdout), sha256(content));
    assert.ok(Deno.lstatSync(fifo).isFifo);
    const resume = await runClient(server.address, ["get", "--resume", "f.bin", fifo]);
    assert.equal(resume.code, 2);
    assert.match(resume.stderr, /--resume needs a regular file, and local .*pipe is not one/);
    const sync = await runClient(server.address, ["get", "--sync", "f.bin", fifo]);
    assert.equal(sync.code, 2);
    assert.match(sync.stderr, /--sync compares files, and local .*pipe is not a regular file/);
  });

  await t.step("a character device made with mknod (root only)", async () => {
    if (Deno.uid() !== 0) {
      console.log("skipped: making a device with mknod needs root");
      return;
    }
    const device = join(local.path, "null");
    const made = await new Deno.Command("mknod", { args: [device, "c", "1", "3"] }).output();
    assert.ok(made.success, new TextDecoder().decode(made.stderr));
    const run = await runClient(server.address, ["--json", "get", "f.bin", device]);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(rows(run.stdout)[0].checksum.xxh128, xxh128(content));
    assert.ok(Deno.lstatSync(device).isCharDevice, "still the device, not a regular file");
  });

  await t.step("a symlink is followed: its target is replaced, the link stays", async () => {
    const target = join(local.path, "target.bin");
    const link = join(local.path, "link.bin");
    await Deno.writeTextFile(target, "old");
    await Deno.symlink("target.bin", link);
    const run = await runClient(server.address, ["get", "f.bin", link]);
    assert.equal(run.code, 0, run.stderr);
    assert.ok(Deno.lstatSync(link).isSymlink);
    assert.equal(await fileHash(target), sha256(content));
    // A dangling one leads nowhere: the file takes its place.
    const dangling = join(local.path, "dangling.bin");
    await Deno.symlink("nowhere.bin", dangling);
    assert.equal((await runClient(server.address, ["get", "f.bin", dangling])).code, 0);
    assert.ok(Deno.lstatSync(dangling).isFile);
    assert.equal(await fileHash(dangling), sha256(content));
  });
  assert.deepEqual(await temps(local.path), []);
});

Deno.test("put - and get - move 1 GiB through pipes in flat memory, verified", async () => {
  await using server = await startServer();
  const block = randomBytes(MiB);
  const expected = createHash("sha256");
  // With SHA-256 asked for: the --json row then names it twice, as `checksum` and `sha256`.
  const put = spawnClient(server.address, [
    "--json",
    "--checksum",
    "sha256",
    "put",
    "-",
    "piped/big.bin",
  ]);
  let peakPut = 0;
  const writer = put.stdin.getWriter();
  for (let i = 0; i < 1024; i++) {
    block[0] = i & 0xff; // every MiB differs from the one before
    expected.update(block);
    await writer.write(block);
    if (i % 64 === 0) peakPut = Math.max(peakPut, peakRss(put.pid), peakRss(server.process.pid));
  }
  await writer.close();
  const putOut = await put.output();
  assert.equal(putOut.code, 0, new TextDecoder().decode(putOut.stderr));
  const sha = expected.digest("hex");
  const row = rows(new TextDecoder().decode(putOut.stdout))[0];
  assert.deepEqual([row.bytes, row.checksum, row.sha256], [GiB, { sha256: sha }, sha]);
  assert.equal(Deno.statSync(join(server.root, "piped/big.bin")).size, GiB);

  const get = spawnClient(server.address, ["get", "piped/big.bin", "-"]);
  await get.stdin.close();
  const got = createHash("sha256");
  let bytes = 0;
  let peakGet = 0;
  for await (const chunk of get.stdout) {
    got.update(chunk);
    bytes += chunk.length;
    if (bytes % (64 * MiB) < chunk.length) peakGet = Math.max(peakGet, peakRss(get.pid));
  }
  assert.equal((await get.status).code, 0);
  assert.deepEqual([bytes, got.digest("hex")], [GiB, sha]);
  assert.ok(peakPut < 150 * MiB, `put: peak RSS ${peakPut / MiB} MiB`);
  assert.ok(peakGet < 150 * MiB, `get: peak RSS ${peakGet / MiB} MiB`);

  // An upload from stdin cut off before its end leaves nothing under the final name.
  const cut = spawnClient(server.address, ["put", "-", "piped/cut.bin"]);
  const cutWriter = cut.stdin.getWriter();
  for (let i = 0; i < 8; i++) await cutWriter.write(block);
  await partialOf(join(server.root, "piped"), MiB);
  cut.kill("SIGKILL");
  await cut.status;
  await waitFor(async () => (await temps(server.root)).length === 0, 10_000, "the temp to go");
  assert.deepEqual(await listTree(join(server.root, "piped")), ["big.bin"]);
});

Deno.test("put of a FIFO streams what its writer sends, and a signal ends the wait for one", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const fifo = join(local.path, "pipe");
  assert.ok((await new Deno.Command("mkfifo", { args: [fifo] }).output()).success);
  const content = randomBytes(5 * MiB + 3);
  const writer = (async () => {
    using file = await Deno.open(fifo, { write: true });
    for (let done = 0; done < content.length;) {
      done += await file.write(content.subarray(done));
    }
  })();
  const run = await runClient(server.address, ["--json", "put", fifo, "from-fifo.bin"]);
  await writer;
  assert.equal(run.code, 0, run.stderr);
  assert.equal(rows(run.stdout)[0].checksum.xxh128, xxh128(content));
  assert.equal(await fileHash(join(server.root, "from-fifo.bin")), sha256(content));

  // Nobody writes: the open waits, and SIGTERM still ends it at once.
  const waiting = spawnClient(server.address, ["put", fifo, "never.bin"]);
  await new Promise((r) => setTimeout(r, 1000));
  const started = performance.now();
  waiting.kill("SIGTERM");
  const out = await waiting.output();
  assert.equal(out.code, 130);
  assert.ok(performance.now() - started < 5000, "it did not hang");
  assert.deepEqual(await listTree(server.root), ["from-fifo.bin"]);
});

Deno.test("a source rewritten in place while it is sent fails with exit 8, both ways", async (t) => {
  await using server = await startServer();
  await using local = await tempDir();
  const size = 300 * 1000 * 1000;
  const spot = randomBytes(4096);

  await t.step("put: the client notices its own file changed", async () => {
    const src = join(local.path, "up.bin");
    await writeRandomFile(src, size);
    const slow = throttledProxy(server.port, 150 * MiB);
    const child = spawnClient(slow.address, ["put", src, "up.bin"]);
    await partialOf(server.root, 20 * MiB);
    await overwriteInPlace(src, [MiB, 250 * MiB], spot);
    const out = await child.output();
    await slow.close();
    assert.equal(out.code, 8, new TextDecoder().decode(out.stderr));
    assert.match(new TextDecoder().decode(out.stderr), /up\.bin changed while being sent/);
    assert.deepEqual(await listTree(server.root), [], "the server kept nothing");
    // Sent again, the new version goes whole.
    const again = await runClient(server.address, ["--json", "put", src, "up.bin"]);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(rows(again.stdout)[0].resumed, 0);
    assert.equal(await fileHash(join(server.root, "up.bin")), await fileHash(src));
  });

  await t.step("get: ferryd notices the served file changed", async () => {
    const served = join(server.root, "down.bin");
    await writeRandomFile(served, size);
    const slow = throttledProxy(server.port, 150 * MiB);
    const child = spawnClient(slow.address, ["get", "down.bin"], { cwd: local.path });
    await partialOf(local.path, 20 * MiB);
    await overwriteInPlace(served, [MiB, 250 * MiB], spot);
    const out = await child.output();
    await slow.close();
    assert.equal(out.code, 8, new TextDecoder().decode(out.stderr));
    assert.match(new TextDecoder().decode(out.stderr), /down\.bin changed while being sent/);
    assert.deepEqual(await listTree(local.path), ["up.bin"], "the client kept nothing");
    const again = await runClient(server.address, ["get", "down.bin"], { cwd: local.path });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(await fileHash(join(local.path, "down.bin")), await fileHash(served));
  });
});

Deno.test("a server announcing more than the client can or will take gets nothing written", async () => {
  await using local = await tempDir();
  let announced = 2 ** 52;
  let sentData = 0;
  const server = fakeServer(async (fc) => {
    const req = await fc.read();
    await fc.sendMessage(FrameType.REPLY, req!.id, { size: announced, mtime: 0, mode: 0o644 });
    const buf = new Uint8Array(HEADER_SIZE + 256 * 1024);
    for (let i = 0; i < 64; i++) {
      await fc.sendFramed(FrameType.DATA, req!.id, buf, 256 * 1024);
      sentData += 256 * 1024;
    }
  });
  try {
    const started = performance.now();
    const huge = await runClient(server.address, ["--retries", "0", "get", "f.bin"], {
      cwd: local.path,
    });
    assert.equal(huge.code, 9, huge.stderr);
    assert.match(huge.stderr, /not enough space for local f\.bin: 4503599627370496 bytes needed/);
    assert.ok(performance.now() - started < 10_000, "refused at once");
    assert.deepEqual(await listTree(local.path), [], "nothing written, no partial");

    announced = 2 * MiB;
    const capped = await runClient(
      server.address,
      ["--retries", "0", "--max-size", "1M", "get", "f.bin"],
      { cwd: local.path },
    );
    assert.equal(capped.code, 9, capped.stderr);
    assert.match(capped.stderr, /is 2097152 bytes, over the 1048576-byte limit .*--max-size/);
    assert.deepEqual(await listTree(local.path), []);

    // More than announced is never written: the download fails its check and keeps nothing.
    announced = 100;
    const more = await runClient(server.address, ["--retries", "0", "get", "f.bin"], {
      cwd: local.path,
    });
    assert.equal(more.code, 8, more.stderr);
    assert.match(more.stderr, /more data than the announced 100 bytes/);
    assert.deepEqual(await listTree(local.path), []);
    assert.ok(sentData > 0);
  } finally {
    await server.close();
  }
});

Deno.test("mv of a directory under a running upload: the partial moves along and resumes there", async () => {
  const quota = 400 * MiB;
  await using server = await startServer({ args: ["--quota", String(quota)] });
  await using local = await tempDir();
  const src = join(local.path, "big.bin");
  await writeRandomFile(src, 200 * MiB);
  const slow = throttledProxy(server.port, 60 * MiB);
  const child = spawnClient(slow.address, ["--retries", "0", "put", src, "d/big.bin"]);
  await partialOf(join(server.root, "d"), 10 * MiB);
  const mv = await runClient(server.address, ["mv", "d", "e"]);
  assert.equal(mv.code, 0, mv.stderr);
  const out = await child.output();
  await slow.close();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 9, stderr);
  assert.match(stderr, /d was moved to e while it was being written/);
  // What was kept moved with the directory, and a resume at the new place finds it.
  const kept = await temps(join(server.root, "e"));
  assert.equal(kept.length, 1, "one partial, in the moved directory");
  assert.ok(!(await listTree(server.root)).includes("d"), "nothing was left at the old place");
  const resumed = await runClient(server.address, ["--json", "put", src, "e/big.bin"]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.ok((rows(resumed.stdout)[0].resumed as number) > 0, resumed.stdout);
  assert.equal(await fileHash(join(server.root, "e/big.bin")), await fileHash(src));
  assert.deepEqual(await temps(server.root), []);
  // The quota counts the file once, and the partial not at all: 200 MiB are free, no more.
  const fits = join(local.path, "fits.bin");
  await writeRandomFile(fits, 199 * MiB);
  assert.equal((await runClient(server.address, ["put", fits, "fits.bin"])).code, 0);
  const over = await runClient(server.address, ["put", src, "over.bin"]);
  assert.equal(over.code, 9);
  assert.match(over.stderr, /over quota/);
});

Deno.test("reserved .ferry-* names in a tree are reported as skipped, both ways", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const src = join(local.path, "src");
  await Deno.mkdir(join(src, "sub"), { recursive: true });
  await Deno.writeTextFile(join(src, "a.txt"), "a");
  await Deno.writeTextFile(join(src, ".ferry-config"), "mine");
  await Deno.writeTextFile(join(src, "sub", ".ferry-x"), "mine too");
  const put = await runClient(server.address, ["put", "-r", src, "t"]);
  assert.equal(put.code, 0, put.stderr);
  assert.equal(
    put.stdout,
    "skipped t/.ferry-config (reserved name)\nskipped t/sub/.ferry-x (reserved name)\n",
  );
  const json = await runClient(server.address, ["--json", "put", "-r", src, "t"]);
  const skipped = rows(json.stdout).filter((r) => r.skipped === "reserved name").map((r) => r.path);
  assert.deepEqual(skipped.sort(), ["t/.ferry-config", "t/sub/.ferry-x"]);
  assert.deepEqual(await listTree(join(server.root, "t")), ["a.txt", "sub"]);

  // On the server side, such a file (put there by other means) is reported by get -r too.
  await Deno.writeTextFile(join(server.root, "t", ".ferry-config"), "theirs");
  const get = await runClient(server.address, ["get", "-r", "t", join(local.path, "copy")]);
  assert.equal(get.code, 0, get.stderr);
  assert.equal(get.stdout, "skipped t/.ferry-config (reserved name)\n");
  assert.deepEqual(await listTree(join(local.path, "copy")), ["a.txt", "sub"]);
});

Deno.test("a write token with --no-clobber skips existing files, one file or a tree", async () => {
  await using tokens = await tempDir();
  const file = join(tokens.path, "tokens");
  await Deno.writeTextFile(file, "write-token-0123456789 write\n");
  await using server = await startServer({ args: ["--tokens", file] });
  await using local = await tempDir();
  const env = { FERRY_TOKEN: "write-token-0123456789" };
  await Deno.writeTextFile(join(local.path, "a"), "new a");
  await Deno.writeTextFile(join(server.root, "a"), "old a");
  const one = await runClient(server.address, ["put", "-N", "a", "a"], {
    cwd: local.path,
    env,
  });
  assert.equal(one.code, 0, one.stderr);
  assert.equal(one.stdout, "skipped a (exists)\n");
  assert.equal(await Deno.readTextFile(join(server.root, "a")), "old a");

  await Deno.mkdir(join(local.path, "t"));
  await Deno.writeTextFile(join(local.path, "t", "x"), "new x");
  await Deno.writeTextFile(join(local.path, "t", "y"), "new y");
  await Deno.mkdir(join(server.root, "t"));
  await Deno.writeTextFile(join(server.root, "t", "x"), "old x");
  const tree = await runClient(server.address, ["put", "-r", "-N", "t", "t"], {
    cwd: local.path,
    env,
  });
  assert.equal(tree.code, 0, tree.stderr);
  assert.equal(tree.stdout, "skipped t/x (exists)\n");
  assert.equal(await Deno.readTextFile(join(server.root, "t", "x")), "old x");
  assert.equal(await Deno.readTextFile(join(server.root, "t", "y")), "new y");
  // Without -n, replacing still needs the admin scope.
  const replace = await runClient(server.address, ["put", "a", "a"], { cwd: local.path, env });
  assert.equal(replace.code, 7);
});

Deno.test("Ctrl-C says what it kept; running the same command again resumes it", async (t) => {
  await using server = await startServer();
  await using local = await tempDir();
  const content = randomBytes(48 * MiB);
  await Deno.writeFile(join(server.root, "big.bin"), content);
  await Deno.writeFile(join(local.path, "up.bin"), content);

  // One address throughout: a download's partial is named after the server it came from.
  const slow = throttledProxy(server.port, 20 * MiB);
  try {
    await t.step("get", async () => {
      const child = spawnClient(slow.address, ["get", "big.bin"], { cwd: local.path });
      await partialOf(local.path, 4 * MiB);
      child.kill("SIGINT");
      const out = await child.output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 130);
      assert.match(
        stderr,
        /^ferry: interrupted; kept [\d.]+ MiB of big\.bin: run the same command again to resume \(ferry --server 127\.0\.0\.1:\d+ get big\.bin\)\n$/,
      );
      const again = await runClient(slow.address, ["--json", "get", "big.bin"], {
        cwd: local.path,
      });
      assert.equal(again.code, 0, again.stderr);
      const row = rows(again.stdout)[0];
      assert.ok((row.resumed as number) >= 4 * MiB, again.stdout);
      assert.equal(await fileHash(join(local.path, "big.bin")), sha256(content));
      assert.deepEqual(await temps(local.path), []);
    });

    await t.step("put", async () => {
      const child = spawnClient(slow.address, ["put", "up.bin", "up.bin"], { cwd: local.path });
      await partialOf(server.root, 4 * MiB);
      child.kill("SIGTERM");
      const out = await child.output();
      assert.equal(out.code, 130);
      assert.match(
        new TextDecoder().decode(out.stderr),
        /^ferry: interrupted; kept up to [\d.]+ MiB of up\.bin: run the same command again/,
      );
      await waitFor(async () => (await temps(server.root)).length === 1, 10_000, "the partial");
      const again = await runClient(server.address, ["--json", "put", "up.bin", "up.bin"], {
        cwd: local.path,
      });
      assert.equal(again.code, 0, again.stderr);
      assert.ok((rows(again.stdout)[0].resumed as number) > 0, again.stdout);
      assert.equal(await fileHash(join(server.root, "up.bin")), sha256(content));
    });

    await t.step("--no-resume starts afresh", async () => {
      const child = spawnClient(slow.address, ["get", "big.bin", "again.bin"], {
        cwd: local.path,
      });
      await partialOf(local.path, 4 * MiB);
      child.kill("SIGINT");
      await child.output();
      const fresh = await runClient(
        slow.address,
        ["--json", "get", "--no-resume", "big.bin", "again.bin"],
        { cwd: local.path },
      );
      assert.equal(fresh.code, 0, fresh.stderr);
      assert.equal(rows(fresh.stdout)[0].resumed, 0);
      assert.deepEqual(await temps(local.path), []);
    });
  } finally {
    await slow.close();
  }
});

Deno.test("--idle-timeout also bounds a connection that never says hello", async () => {
  await using server = await startServer({ args: ["--idle-timeout", "2"] });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  const started = performance.now();
  const n = await conn.read(new Uint8Array(64)).catch(() => null);
  const seconds = (performance.now() - started) / 1000;
  conn.close();
  assert.ok(n === null || n > 0, "the server ended it");
  assert.ok(seconds >= 1.5 && seconds < 5, `closed after ${seconds.toFixed(1)} s`);
});

Deno.test("pipes and devices are never read or written twice: a cut transfer fails, saying so", async (t) => {
  await using server = await startServer();
  await using local = await tempDir();
  const content = randomBytes(24 * MiB);
  await Deno.writeFile(join(server.root, "big.bin"), content);

  await t.step("get to stdout, cut mid-body: no retry, no duplicate bytes", async () => {
    const proxy = cuttingProxy(server.port, { cutAfter: 8 * MiB, cuts: 1 });
    const run = await runClientBytes(proxy.address, ["get", "big.bin", "-"]);
    await proxy.close();
    assert.equal(run.code, 3, run.stderr);
    assert.ok(run.stdout.length > 0 && run.stdout.length <= content.length, `${run.stdout.length}`);
    assert.deepEqual(run.stdout, content.subarray(0, run.stdout.length), "a prefix, once");
    assert.match(run.stderr, /connection lost .*bytes were already written/);
    assert.doesNotMatch(run.stderr, /kept/);
    assert.equal(proxy.connections, 1, "not tried again");
  });

  await t.step("put from stdin, cut mid-body: no retry, nothing stored", async () => {
    const proxy = cuttingProxy(server.port, { cutAfter: 8 * MiB, cuts: 1 });
    const run = await runClient(proxy.address, ["put", "-", "piped.bin"], {
      stdinBytes: content,
    });
    await proxy.close();
    assert.equal(run.code, 3, run.stderr);
    assert.equal(proxy.connections, 1, "not tried again");
    assert.ok(!(await listTree(server.root)).includes("piped.bin"));
  });

  await t.step("a reader that goes away (| head) stops the download at once", async () => {
    const started = performance.now();
    const shell = await new Deno.Command("sh", {
      args: [
        "-c",
        `"$@" | head -c 10 > /dev/null`,
        "sh",
        ...clientCommand(server.address, [
          "get",
          "big.bin",
          "-",
        ]),
      ],
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(shell.stderr);
    assert.ok(performance.now() - started < 15_000);
    assert.doesNotMatch(stderr, /kept|connection lost/, stderr);
    const gets = server.log().split("\n").filter((l) => / get big\.bin /.test(l));
    assert.ok(gets.length <= 2, `downloaded ${gets.length} times`);
  });

  await t.step(
    "stdin redirected from a file: read from where it stands, checked for changes",
    async () => {
      const file = join(local.path, "in.bin");
      await Deno.writeFile(file, content.subarray(0, 2 * MiB));
      // Whatever read the first 1000 bytes already, the rest is what goes.
      const skip = await new Deno.Command("sh", {
        args: [
          "-c",
          `{ head -c 1000 > /dev/null; "$@"; } < "${file}"`,
          "sh",
          ...clientCommand(
            server.address,
            ["--json", "put", "-", "rest.bin"],
          ),
        ],
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(skip.code, 0, new TextDecoder().decode(skip.stderr));
      assert.equal(Deno.statSync(join(server.root, "rest.bin")).size, 2 * MiB - 1000);
      // Rewritten in place while it is sent: refused.
      await writeRandomFile(file, 300 * 1000 * 1000);
      const slow = throttledProxy(server.port, 150 * MiB);
      const child = new Deno.Command("sh", {
        args: [
          "-c",
          `exec "$@" < "${file}"`,
          "sh",
          ...clientCommand(slow.address, [
            "put",
            "-",
            "changing.bin",
          ]),
        ],
        stderr: "piped",
      }).spawn();
      await partialOf(server.root, 20 * MiB);
      await overwriteInPlace(file, [MiB, 250 * MiB], randomBytes(4096));
      const out = await child.output();
      await slow.close();
      assert.equal(out.code, 8, new TextDecoder().decode(out.stderr));
      assert.match(new TextDecoder().decode(out.stderr), /standard input changed while being sent/);
      assert.ok(!(await listTree(server.root)).includes("changing.bin"));
    },
  );

  await t.step("get -r writes through a device already in the tree", async () => {
    await Deno.mkdir(join(server.root, "t"));
    await Deno.writeFile(join(server.root, "t", "big.bin"), content.subarray(0, 2 * MiB));
    await Deno.writeTextFile(join(server.root, "t", "small.txt"), "small");
    const dest = join(local.path, "tree");
    await Deno.mkdir(dest);
    await Deno.symlink("/dev/null", join(dest, "big.bin"));
    const run = await runClient(server.address, ["get", "-r", "t", dest]);
    assert.equal(run.code, 0, run.stderr);
    assert.ok(Deno.lstatSync(join(dest, "big.bin")).isSymlink, "the link to the device stays");
    assert.equal(await Deno.readTextFile(join(dest, "small.txt")), "small");
  });
});

Deno.test("a download stopped before its answer keeps no empty partial", async () => {
  await using local = await tempDir();
  const silent = fakeServer(async (fc) => {
    await fc.read();
    await new Promise((r) => setTimeout(r, 20_000));
  });
  try {
    const timedOut = await runClient(silent.address, [
      "--retries",
      "0",
      "--timeout",
      "1",
      "get",
      "x",
    ], {
      cwd: local.path,
    });
    assert.equal(timedOut.code, 3, timedOut.stderr);
    assert.doesNotMatch(timedOut.stderr, /kept/);
    assert.deepEqual(await listTree(local.path), []);
    const child = spawnClient(silent.address, ["get", "y"], { cwd: local.path });
    await new Promise((r) => setTimeout(r, 1000));
    child.kill("SIGINT");
    const out = await child.output();
    assert.equal(out.code, 130);
    assert.equal(new TextDecoder().decode(out.stderr), "ferry: interrupted; nothing was kept\n");
    assert.deepEqual(await listTree(local.path), []);
  } finally {
    await silent.close();
  }
});
