/**
 * The S3 backend against a real Ceph radosgw: the storage contract, then
 * ferryd on a bucket driven through the real client.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { storageConformance } from "../lib/storage/conformance.ts";
import {
  cuttingProxy,
  listTree,
  randomBytes,
  runClient,
  sameContent,
  sha256,
  startServer,
  tempDir,
  waitFor,
  writeRandomFile,
  xxh128,
} from "./helpers.ts";
import { s3Config } from "../lib/storage/s3/s3_config.ts";
import { S3Storage } from "../lib/storage/s3/s3_storage.ts";
import { freshS3Storage, freshStore, rgw, rgwMissing } from "./s3_rgw.ts";

if (rgwMissing) {
  console.warn(rgwMissing);
  Deno.test({ name: "storage contract: s3 (radosgw)", ignore: true, fn() {} });
} else {
  storageConformance("s3 (radosgw)", async () => ({ storage: await freshS3Storage() }));
}

const ignore = rgwMissing !== undefined;

/** ferryd serving a fresh place in the test bucket. */
async function s3Server(store?: string, args: string[] = []) {
  const r = await rgw();
  const where = store ?? await freshStore();
  const server = await startServer({ args: ["--store", where, ...args], env: r.env });
  return Object.assign(server, { store: where });
}

async function objectKeys(store: string): Promise<string[]> {
  const r = await rgw();
  const prefix = store.replace(/^s3:\/\/[^/]+\//, "") + "/";
  const res = await r.aws.fetch(
    `${r.endpoint}/${r.bucket}?list-type=2&prefix=${encodeURIComponent(prefix)}`,
  );
  const text = await res.text();
  return [...text.matchAll(/<Key>([^<]*)<\/Key>/g)].map((m) => m[1].slice(prefix.length));
}

Deno.test({
  name: "ferryd on a bucket: put, ls, stat, get, sum, mkdir, mv, rm, globs, --json, --sync",
  ignore,
  async fn() {
    await using server = await s3Server();
    await using local = await tempDir();
    const small = randomBytes(100_000);
    const big = randomBytes(20 * 1024 * 1024 + 12345); // Several parts of a multipart upload.
    await Deno.writeFile(join(local.path, "small.bin"), small);
    await Deno.writeFile(join(local.path, "big.bin"), big);
    await Deno.utime(join(local.path, "big.bin"), 1_600_000_000, 1_600_000_000);
    await Deno.chmod(join(local.path, "big.bin"), 0o640);
    const run = (args: string[]) => runClient(server.address, args, { cwd: local.path });

    const put = await run(["--json", "put", "big.bin", "small.bin", "dir/"]);
    assert.equal(put.code, 0, put.stderr);
    const rows = put.stdout.trim().split("\n").map((l) => JSON.parse(l)).filter((r) =>
      r.op === "put"
    );
    assert.deepEqual(
      rows.map((r) => r.checksum.xxh128).sort(),
      [xxh128(big), xxh128(small)].sort(),
    );

    const ls = await run(["ls", "-l", "dir"]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /-rw-r-----.* 2020-09-13.* big\.bin/, "mode and mtime kept");
    const stat = await run(["--json", "stat", "dir/big.bin"]);
    const entry = JSON.parse(stat.stdout);
    assert.deepEqual([entry.size, entry.mtime, entry.mode & 0o777], [big.length, 1.6e12, 0o640]);

    const sum = await run(["sum", "dir/big.bin"]);
    assert.equal(sum.stdout.split(/\s+/)[0], sha256(big));
    const fast = await run(["sum", "--xxh128", "dir/big.bin"]);
    assert.equal(fast.stdout.split(/\s+/)[0], xxh128(big), "the stored checksum");

    await Deno.mkdir(join(local.path, "back"));
    const get = await run(["get", "dir/*.bin", "back/"]);
    assert.equal(get.code, 0, get.stderr);
    assert.deepEqual(await Deno.readFile(join(local.path, "back", "big.bin")), big);
    assert.deepEqual(await Deno.readFile(join(local.path, "back", "small.bin")), small);
    assert.equal((await Deno.stat(join(local.path, "back", "big.bin"))).mtime?.getTime(), 1.6e12);

    const again = await run(["--json", "put", "--sync", "big.bin", "dir/big.bin"]);
    assert.equal(JSON.parse(again.stdout.split("\n")[0]).skipped, "unchanged", again.stdout);
    await Deno.writeFile(join(local.path, "other.bin"), randomBytes(10));
    const clobber = await run(["--json", "put", "-N", "other.bin", "dir/small.bin"]);
    assert.equal(JSON.parse(clobber.stdout.split("\n")[0]).skipped, "exists", clobber.stdout);
    assert.equal((await run(["stat", "--json", "dir/small.bin"])).stdout.includes("100000"), true);

    assert.equal((await run(["mkdir", "empty"])).code, 0);
    assert.equal((await run(["mv", "dir/small.bin", "empty/"])).code, 0);
    assert.match((await run(["ls", "-R"])).stdout, /empty\/small\.bin/);
    assert.notEqual((await run(["rm", "dir"])).code, 0, "not empty");
    assert.equal((await run(["rm", "-r", "dir"])).code, 0);
    assert.equal((await run(["rm", "empty/small.bin"])).code, 0);
    assert.deepEqual(await objectKeys(server.store), ["empty/"], "only the empty directory left");
    assert.doesNotMatch(server.log(), /Error:|stack/i);
  },
});

Deno.test({
  name: "ferryd on a bucket: trees both ways, a cut upload resumes, nothing half-written listed",
  ignore,
  async fn() {
    await using server = await s3Server();
    await using local = await tempDir();
    const src = join(local.path, "src");
    for (let i = 0; i < 40; i++) {
      await Deno.mkdir(join(src, `d${i % 4}`), { recursive: true });
      await Deno.writeFile(join(src, `d${i % 4}`, `f${i}.txt`), randomBytes(100 + i * 50));
    }
    await Deno.writeFile(join(src, "d0", "large.bin"), randomBytes(3 * 1024 * 1024));
    const run = (address: string, args: string[]) => runClient(address, args, { cwd: local.path });
    const up = await run(server.address, ["put", "-r", "src", "tree"]);
    assert.equal(up.code, 0, up.stderr);
    const down = await run(server.address, ["get", "-r", "tree", "copy"]);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(await listTree(join(local.path, "copy")), await listTree(src));
    for (const name of await listTree(src)) {
      if (!(await Deno.stat(join(src, name))).isFile) continue;
      assert.ok(await sameContent(join(src, name), join(local.path, "copy", name)), name);
    }

    // An upload cut halfway keeps a partial (an object under a hidden name) and resumes.
    const size = 24 * 1024 * 1024;
    await writeRandomFile(join(local.path, "huge.bin"), size);
    const proxy = cuttingProxy(server.port, { cutAfter: 12 * 1024 * 1024, cuts: 1 });
    const cut = await run(proxy.address, ["--retries", "0", "put", "huge.bin"]);
    await proxy.close();
    assert.notEqual(cut.code, 0, "cut");
    // ferryd keeps what arrived once it sees the connection gone: a moment after the client.
    let keys: string[] = [];
    await waitFor(
      async () => {
        keys = await objectKeys(server.store);
        return keys.some((k) => /^\.ferry-.*\.partial$/.test(k));
      },
      10_000,
      "a kept partial",
    );
    assert.ok(!keys.includes("huge.bin"), "nothing under the final name");
    assert.doesNotMatch((await run(server.address, ["ls"])).stdout, /huge|ferry-/);
    const resumed = await run(server.address, ["--json", "put", "huge.bin"]);
    assert.equal(resumed.code, 0, resumed.stderr);
    const row = JSON.parse(resumed.stdout.split("\n")[0]);
    assert.ok(row.resumed >= 5 * 1024 * 1024, resumed.stdout);
    assert.equal(row.bytes + row.resumed, size);
    const back = await run(server.address, ["get", "huge.bin", "huge.back"]);
    assert.equal(back.code, 0, back.stderr);
    assert.ok(await sameContent(join(local.path, "huge.bin"), join(local.path, "huge.back")));
    assert.ok(!(await objectKeys(server.store)).some((k) => k.includes(".ferry-")), "used up");
  },
});

Deno.test({
  name:
    "two ferryd on one bucket present one tree; racing uploads of one path leave one whole file",
  ignore,
  async fn() {
    await using a = await s3Server();
    await using b = await s3Server(a.store);
    await using local = await tempDir();
    const one = randomBytes(9 * 1024 * 1024), two = randomBytes(9 * 1024 * 1024 + 1);
    await Deno.writeFile(join(local.path, "one.bin"), one);
    await Deno.writeFile(join(local.path, "two.bin"), two);
    const run = (address: string, args: string[]) => runClient(address, args, { cwd: local.path });
    assert.equal((await run(a.address, ["put", "one.bin", "shared.bin"])).code, 0);
    const seen = await run(b.address, ["ls", "-l"]);
    assert.match(seen.stdout, /shared\.bin/, "listed through the other at once");
    assert.equal((await run(b.address, ["get", "shared.bin", "via-b.bin"])).code, 0);
    assert.deepEqual(await Deno.readFile(join(local.path, "via-b.bin")), one);

    const [x, y] = await Promise.all([
      run(a.address, ["--json", "put", "one.bin", "race.bin"]),
      run(b.address, ["--json", "put", "two.bin", "race.bin"]),
    ]);
    assert.equal(x.code, 0, x.stderr);
    assert.equal(y.code, 0, y.stderr);
    const got = await run(a.address, ["get", "race.bin", "race.back"]);
    assert.equal(got.code, 0, got.stderr);
    const bytes = await Deno.readFile(join(local.path, "race.back"));
    assert.ok(bytes.length === one.length || bytes.length === two.length);
    const expected = bytes.length === one.length ? one : two;
    assert.deepEqual(bytes, expected, "one whole upload, not a mix");
    const sum = await run(b.address, ["sum", "--xxh128", "race.bin"]);
    assert.equal(sum.stdout.split(/\s+/)[0], xxh128(expected), "the checksum of what is there");
    assert.ok(!(await objectKeys(a.store)).some((k) => k.includes(".ferry-")), "no leftovers");
  },
});

Deno.test({
  name: "ferryd says what is wrong with a store it cannot use, and does not start",
  ignore,
  async fn() {
    const r = await rgw();
    const start = async (args: string[], env: Record<string, string>) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "server.ts", "--port", "0", ...args],
        cwd: new URL("..", import.meta.url).pathname,
        env: { NO_COLOR: "1", ...env },
        stdout: "piped",
        stderr: "piped",
      }).output();
      return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
    };
    const cases: [string[], Record<string, string>, RegExp][] = [
      [
        ["--store", `s3://${r.bucket}`],
        { ...r.env, AWS_SECRET_ACCESS_KEY: "wrong" },
        /credentials/,
      ],
      [["--store", "s3://no-such-bucket"], r.env, /no such bucket: s3:\/\/no-such-bucket/],
      [
        ["--store", `s3://${r.bucket}`],
        { ...r.env, AWS_ENDPOINT_URL_S3: "http://127.0.0.1:9" },
        /cannot reach the object store at http:\/\/127\.0\.0\.1:9/,
      ],
      [["--store", `s3://${r.bucket}`], { AWS_ENDPOINT_URL_S3: r.endpoint }, /needs credentials/],
      [["--store", "/srv/files"], r.env, /--store takes s3:\/\/BUCKET/],
      [["--store", `s3://${r.bucket}`, "--root", "."], r.env, /give one/],
      [["--s3-region", "eu-west-1"], r.env, /goes with --store/],
      [["--store", `s3://${r.bucket}/../x`], r.env, /refused/],
    ];
    for (const [args, env, message] of cases) {
      const run = await start(args, env);
      assert.notEqual(run.code, 0, args.join(" "));
      assert.match(run.stderr, message, args.join(" "));
      assert.doesNotMatch(run.stderr, /\n\s+at /, "no stack trace");
    }
  },
});

Deno.test({
  name: "on a bucket: --partial-ttl's sweep ends stale uploads; HTTP and the quota work as on disk",
  ignore,
  async fn() {
    // A kept partial, an upload this process is still running, and one another process left.
    const r = await rgw();
    const store = await freshStore();
    const storage = await S3Storage.open(s3Config({ store }, r.env));
    const kept = await storage.createUpload("k/kept.bin", { size: 100, mtime: 1, resume: true });
    await kept.write(new Uint8Array(40));
    assert.equal(await kept.suspend(), 40);
    const running = await storage.createUpload("k/running.bin", { size: 20 << 20 });
    await running.write(new Uint8Array(9 << 20)); // One part out: a multipart upload in the store.
    const left = `${store.slice(`s3://${r.bucket}/`.length)}/k/.ferry-00000000deadbeef.part`;
    const started = await r.aws.fetch(`${r.endpoint}/${r.bucket}/${left}?uploads`, {
      method: "POST",
    });
    assert.match(await started.text(), /<UploadId>/);
    await new Promise((resolve) => setTimeout(resolve, 1100));
    assert.equal(await storage.sweep(60_000), 0, "nothing is old enough");
    assert.equal(await storage.sweep(1000), 2, "the partial and the abandoned upload");
    assert.equal(await storage.partialSize("k/kept.bin", { size: 100, mtime: 1 }), 0);
    await running.write(new Uint8Array(11 << 20));
    await running.commit();
    assert.equal((await storage.stat("k/running.bin")).size, 20 << 20, "a running upload is kept");

    await using server = await s3Server(undefined, ["--quota", "1M"]);
    const base = `http://${server.address}`;
    const curl = async (...args: string[]) => {
      const out = await new Deno.Command("curl", { args: ["-sS", ...args], stdout: "piped" })
        .output();
      return new TextDecoder().decode(out.stdout);
    };
    const body = randomBytes(300_000);
    await using local = await tempDir();
    await Deno.writeFile(join(local.path, "web.bin"), body);
    const digest = `sha-256=:${
      btoa(String.fromCharCode(
        ...new Uint8Array(
          await crypto.subtle.digest("SHA-256", body),
        ),
      ))
    }:`;
    assert.equal(
      await curl(
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-T",
        join(local.path, "web.bin"),
        "-H",
        `Content-Digest: ${digest}`,
        `${base}/web/web.bin`,
      ),
      "201",
    );
    const range = await new Deno.Command("curl", {
      args: ["-sS", "-r", "10-19", `${base}/web/web.bin`],
      stdout: "piped",
    }).output();
    assert.deepEqual(range.stdout, body.subarray(10, 20), "a range, as curl -C - asks");
    const back = join(local.path, "back.bin");
    await curl("-o", back, `${base}/web/web.bin`);
    assert.deepEqual(await Deno.readFile(back), body);
    assert.match(await curl(`${base}/web/?json`), /"web\.bin"/);
    // 300 KB is there: 800 KB more is over the 1 MB quota, and nothing of it is kept.
    await Deno.writeFile(join(local.path, "big.bin"), randomBytes(800_000));
    const over = await runClient(server.address, ["put", join(local.path, "big.bin")]);
    assert.notEqual(over.code, 0);
    assert.match(over.stderr, /quota/);
    assert.doesNotMatch((await runClient(server.address, ["ls"])).stdout, /big\.bin/);
  },
});

Deno.test({
  name: "on a bucket: keys other tools wrote (.., control characters) neither escape nor stick",
  ignore,
  async fn() {
    const r = await rgw();
    const store = await freshStore();
    const prefix = store.slice(`s3://${r.bucket}/`.length);
    const storage = await S3Storage.open(s3Config({ store }, r.env));
    const raw = async (key: string) => {
      const res = await r.aws.fetch(`${r.endpoint}/${r.bucket}/${key}`, {
        method: "PUT",
        body: "x",
      });
      assert.equal(res.status, 200, key);
      await res.body?.cancel();
    };
    const enc = (key: string) => key.split("/").map(encodeURIComponent).join("/");
    // `..` as a key segment: what a URL cannot name must not be moved to where it points.
    await raw(`${prefix}/d/ok.txt`);
    // A key with `..` in it, as a store keeps it: curl sends the path as it is, signed.
    const curl = await new Deno.Command("curl", {
      args: [
        "-sf",
        "--path-as-is",
        "-X",
        "PUT",
        "--aws-sigv4",
        "aws:amz:us-east-1:s3",
        "--user",
        `${r.env.AWS_ACCESS_KEY_ID}:${r.env.AWS_SECRET_ACCESS_KEY}`,
        "-H",
        `x-amz-content-sha256: ${sha256(new Uint8Array(0))}`,
        "--data-binary",
        "",
        `${r.endpoint}/${r.bucket}/${prefix}/d/../../escaped`,
      ],
    }).output();
    assert.ok(curl.success, "the key with .. was made");
    await assert.rejects(storage.move("d", "e"), /no path can name/);
    assert.equal((await storage.stat("d/ok.txt")).size, 1, "nothing was moved");
    const outside = await r.aws.fetch(`${r.endpoint}/${r.bucket}/escaped`, { method: "HEAD" });
    assert.equal(outside.status, 404, "nothing outside the prefix");
    // Keys XML cannot carry (\x01) or would change (\r): rm -r removes them all.
    await raw(enc(`${prefix}/c/a\rb`));
    await raw(enc(`${prefix}/c/a\x01b`));
    await raw(enc(`${prefix}/c/plain`));
    await storage.remove("c", { recursive: true });
    await assert.rejects(storage.stat("c"), /not found/);
    // Directories made with parents each stay: removing the deepest leaves the others.
    await storage.mkdir("m1/m2/m3", { parents: true });
    await storage.remove("m1/m2/m3", { recursive: true });
    assert.equal((await storage.stat("m1/m2")).type, "dir");
    // A directory does not move onto a file, and a key too long for S3 is refused at once.
    const up = await storage.createUpload("f", { size: 1 });
    await up.write(new Uint8Array(1));
    await up.commit();
    await assert.rejects(storage.move("m1", "f"), /not a directory/);
    await assert.rejects(storage.createUpload("x".repeat(200) + "/" + "y".repeat(900), {}), /1024/);
  },
});
