/**
 * Integration: ferryd's HTTP face on its own port, driven by curl as a CI
 * job would, and by raw sockets where curl would not misbehave: every
 * method, ranges and resume, digests, conditional requests, hostile paths,
 * tokens and scopes, smuggling shapes and slow headers.
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { cuttingProxy, randomBytes, runClient, startServer, tempDir, waitFor } from "./helpers.ts";
import { onBothStores } from "./server_files.ts";

const hasUnzip = await new Deno.Command("unzip", { args: ["-v"], stdout: "null" })
  .output().then((o) => o.success, () => false);
const hasCurl = await new Deno.Command("curl", { args: ["--version"], stdout: "null" })
  .output().then((o) => o.success, () => false);

/** Run curl with `args`; its status, body (stdout) and headers (-D to a file). */
async function curl(
  args: string[],
  cwd?: string,
): Promise<{ code: number; body: string; headers: string; status: number }> {
  await using tmp = await tempDir();
  const headerFile = join(tmp.path, "headers");
  const out = await new Deno.Command("curl", {
    args: ["-sS", "-D", headerFile, ...args],
    cwd,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const headers = await Deno.readTextFile(headerFile).catch(() => "");
  const statuses = [...headers.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]));
  return {
    code: out.code,
    body: new TextDecoder().decode(out.stdout),
    headers: headers.toLowerCase(),
    status: statuses.at(-1) ?? 0,
  };
}

/** Send raw bytes, read the whole answer until the server closes (or 3 s pass). */
async function raw(port: number, text: string, waitMs = 3000): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(new TextEncoder().encode(text));
  let out = "";
  const buf = new Uint8Array(65536);
  const deadline = setTimeout(() => conn.close(), waitMs);
  try {
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      out += new TextDecoder().decode(buf.subarray(0, n));
    }
  } finally {
    clearTimeout(deadline);
    try {
      conn.close();
    } catch {
      // Closed by the deadline.
    }
  }
  return out;
}

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest();

Deno.test({
  name: "HTTP on ferryd's port: GET, HEAD, ranges and resume, conditional requests, listings",
  ignore: !hasCurl,
  async fn() {
    await using server = await startServer();
    await using local = await tempDir();
    const data = randomBytes(3 * 1024 * 1024 + 17);
    await Deno.mkdir(join(server.root, "rel"));
    await Deno.writeFile(join(server.root, "rel", "app v1.tar.gz"), data);
    await Deno.writeTextFile(join(server.root, "page.html"), "<script>alert(1)</script>");
    const base = `http://${server.address}`;

    const get = await curl(["-fo", "app.tgz", `${base}/rel/app%20v1.tar.gz`], local.path);
    assert.equal(get.code, 0, get.body);
    assert.deepEqual(await Deno.readFile(join(local.path, "app.tgz")), data);
    assert.match(get.headers, /content-type: application\/gzip/);
    assert.match(get.headers, /accept-ranges: bytes/);
    assert.match(get.headers, /last-modified: /);
    assert.match(get.headers, /x-content-type-options: nosniff/);

    // curl -C - resumes a cut download from where the local file ends.
    await Deno.writeFile(join(local.path, "part.tgz"), data.subarray(0, 1_000_000));
    const resumed = await curl(
      ["-fC", "-", "-o", "part.tgz", `${base}/rel/app%20v1.tar.gz`],
      local.path,
    );
    assert.equal(resumed.code, 0);
    assert.equal(resumed.status, 206);
    assert.match(
      resumed.headers,
      new RegExp(`content-range: bytes 1000000-${data.length - 1}/${data.length}`),
    );
    assert.deepEqual(await Deno.readFile(join(local.path, "part.tgz")), data);
    const past = await curl(["-r", `${data.length}-`, `${base}/rel/app%20v1.tar.gz`]);
    assert.equal(past.status, 416);
    assert.match(past.headers, new RegExp(`content-range: bytes \\*/${data.length}`));
    const suffix = await curl(["-r", "-5", `${base}/rel/app%20v1.tar.gz`, "-o", "/dev/null"]);
    assert.equal(suffix.status, 206);

    // A file changed in the last two seconds gets no content version (ctime is to the second),
    // and so no remembered checksum: let it age first.
    await new Promise((r) => setTimeout(r, 2100));
    const head = await curl(["-I", `${base}/rel/app%20v1.tar.gz`]);
    assert.match(head.headers, new RegExp(`content-length: ${data.length}`));
    const modified = /last-modified: (.*)\r/.exec(head.headers)![1];
    const notModified = await curl([
      "-H",
      `If-Modified-Since: ${modified}`,
      `${base}/rel/app%20v1.tar.gz`,
    ]);
    assert.equal(notModified.status, 304);
    // Once ferryd knows the checksum (it hashed the file as it sent it whole), a strong ETag.
    await curl(["-o", "/dev/null", `${base}/rel/app%20v1.tar.gz`]);
    const again = await curl(["-o", "/dev/null", `${base}/rel/app%20v1.tar.gz`]);
    const etag = /etag: (".*")/.exec(again.headers)?.[1];
    assert.ok(etag?.startsWith('"xxh128-'), again.headers);
    const byTag = await curl(["-H", `If-None-Match: ${etag}`, `${base}/rel/app%20v1.tar.gz`]);
    assert.equal(byTag.status, 304);

    const attachment = await curl([`${base}/page.html?download`, "-o", "/dev/null"]);
    assert.match(
      attachment.headers,
      /content-disposition: attachment; filename="page\.html"; filename\*=utf-8''page\.html/,
    );
    const inline = await curl([`${base}/page.html`, "-o", "/dev/null"]);
    assert.match(inline.headers, /content-security-policy: sandbox/, "uploaded HTML cannot script");

    const json = await curl(["-H", "Accept: application/json", `${base}/rel/`]);
    const entries = JSON.parse(json.body);
    assert.deepEqual(entries.map((e: { name: string; size: number }) => [e.name, e.size]), [[
      "app v1.tar.gz",
      data.length,
    ]]);
    const htmlPage = await curl([`${base}/`]);
    assert.match(htmlPage.body, /<a href="\/rel\/">rel\/<\/a>/);
    assert.match(htmlPage.headers, /content-type: text\/html/);
    const missing = await curl([`${base}/none.txt`]);
    assert.equal(missing.status, 404);
  },
});

Deno.test({
  name:
    "HTTP PUT, DELETE, MKCOL, MOVE: atomic, digests checked, no-clobber, the ferry client sees it",
  ignore: !hasCurl,
  async fn() {
    await using server = await startServer();
    await using local = await tempDir();
    const base = `http://${server.address}`;
    const data = randomBytes(2 * 1024 * 1024 + 3);
    await Deno.writeFile(join(local.path, "up.bin"), data);
    const digest = `sha-256=:${sha256(data).toString("base64")}:`;

    const put = await curl([
      "-fT",
      "up.bin",
      "-H",
      `Content-Digest: ${digest}`,
      `${base}/in/up.bin`,
    ], local.path);
    assert.equal(put.status, 201, put.body);
    assert.ok(put.headers.includes(`content-digest: ${digest.toLowerCase()}`), put.headers);
    assert.deepEqual(await Deno.readFile(join(server.root, "in", "up.bin")), data);
    const sum = await runClient(server.address, ["sum", "in/up.bin"]);
    assert.equal(sum.stdout.split(" ")[0], sha256(data).toString("hex"));

    const wrong = `sha-256=:${sha256(new Uint8Array(1)).toString("base64")}:`;
    const bad = await curl(
      ["-T", "up.bin", "-H", `Content-Digest: ${wrong}`, `${base}/in/bad.bin`],
      local.path,
    );
    assert.equal(bad.status, 422);
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(join(server.root, "in")))).map((e) => e.name),
      ["up.bin"],
    );

    const clobber = await curl(
      ["-T", "up.bin", "-H", "If-None-Match: *", `${base}/in/up.bin`],
      local.path,
    );
    assert.equal(clobber.status, 412);
    const chunked = await curl([
      "-T",
      "-",
      "-H",
      "Transfer-Encoding: chunked",
      `${base}/in/piped.txt`,
    ], local.path);
    assert.equal(chunked.status, 201);

    assert.equal((await curl(["-X", "MKCOL", `${base}/newdir`])).status, 201);
    assert.ok((await Deno.stat(join(server.root, "newdir"))).isDirectory);
    const moved = await curl([
      "-X",
      "MOVE",
      "-H",
      `Destination: ${base}/newdir/`,
      `${base}/in/up.bin`,
    ]);
    assert.equal(moved.status, 201);
    assert.match(moved.headers, /location: \/newdir\/up\.bin/);
    assert.equal((await curl(["-X", "DELETE", `${base}/newdir`])).status, 409);
    assert.equal((await curl(["-X", "DELETE", `${base}/newdir?recursive`])).status, 204);
    assert.equal(await Deno.stat(join(server.root, "newdir")).catch(() => null), null);
    assert.deepEqual(
      (await Array.fromAsync(Deno.readDir(server.root))).filter((e) =>
        e.name.startsWith(".ferry-")
      ),
      [],
      "no temporary file left",
    );
  },
});

Deno.test({
  name: "HTTP safety: hostile paths, tokens and scopes, smuggling shapes, slow headers",
  ignore: !hasCurl,
  async fn() {
    await using local = await tempDir();
    const [READ, ADMIN] = ["r".repeat(32), "a".repeat(32)];
    const tokens = join(local.path, "tokens");
    await Deno.writeTextFile(tokens, `${READ} read\n${ADMIN} admin\n`);
    await using outside = await tempDir();
    await Deno.writeTextFile(join(outside.path, "secret"), "TOP-SECRET-CONTENT");
    await using server = await startServer({
      args: ["--tokens", tokens, "--idle-timeout", "2"],
    });
    await Deno.symlink(outside.path, join(server.root, "escape"));
    await Deno.writeTextFile(join(server.root, "ok.txt"), "ok");
    const base = `http://${server.address}`;
    const auth = (t: string) => ["-H", `Authorization: Bearer ${t}`];

    assert.equal((await curl([`${base}/ok.txt`])).status, 401);
    assert.match((await curl([`${base}/ok.txt`])).headers, /www-authenticate: bearer/);
    assert.equal((await curl([...auth("w".repeat(32)), `${base}/ok.txt`])).status, 401);
    assert.equal((await curl([...auth(READ), `${base}/ok.txt`])).body, "ok");
    assert.equal(
      (await curl(["-u", `ci:${READ}`, `${base}/ok.txt`])).body,
      "ok",
      "Basic, token as password",
    );
    assert.equal((await curl([...auth(READ), "-X", "DELETE", `${base}/ok.txt`])).status, 403);
    assert.equal((await curl([...auth(READ), "-T", "/etc/hostname", `${base}/x`])).status, 403);
    assert.equal((await curl([...auth(ADMIN), "-X", "DELETE", `${base}/ok.txt`])).status, 204);

    for (
      const path of [
        "/escape/secret",
        "/%2e%2e/etc/passwd",
        "/a/%2e%2e/%2e%2e/etc/passwd",
        "/%252e%252e/x",
        "/a%5cb",
        "/a%00b",
        "/%c0%ae%c0%ae/x",
        "/%0ax",
        "/.ferry-x.part",
      ]
    ) {
      const r = await curl(["--path-as-is", ...auth(ADMIN), `${base}${path}`]);
      assert.ok(r.status === 400 || r.status === 403, `${path}: ${r.status}`);
      assert.ok(!r.body.includes("TOP-SECRET") && !r.body.includes("root:x:0"), path);
    }
    const log = server.log();
    assert.ok(!log.includes(ADMIN) && !log.includes(READ), "tokens never logged");

    const smuggled = await raw(
      server.port,
      "POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    );
    assert.match(smuggled, /^HTTP\/1\.1 400/);
    const twoLengths = await raw(
      server.port,
      "PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    );
    assert.match(twoLengths, /^HTTP\/1\.1 400/);
    // Headers that trickle in are cut at the header deadline (2 s here), not served forever.
    const started = Date.now();
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
    await conn.write(new TextEncoder().encode("GET / HTTP/1.1\r\n"));
    const timer = setInterval(
      () => conn.write(new TextEncoder().encode("X-a: b\r\n")).catch(() => {}),
      300,
    );
    const closed = await conn.read(new Uint8Array(1024)).then(() => true, () => true);
    clearInterval(timer);
    conn.close();
    assert.ok(closed && Date.now() - started < 8000, `cut after ${Date.now() - started} ms`);
  },
});

Deno.test({
  name:
    "a directory as a tar (?tar), a gzipped one (?tar.gz) or a zip (?zip), streamed, extracts to the same tree",
  ignore: !hasCurl,
  async fn() {
    await using server = await startServer();
    await using local = await tempDir();
    const big = randomBytes(700_000);
    await Deno.mkdir(join(server.root, "d", "sub"), { recursive: true });
    await Deno.writeTextFile(join(server.root, "d", "a.txt"), "a");
    await Deno.writeFile(join(server.root, "d", "sub", "big.bin"), big);
    await Deno.writeFile(join(server.root, "d", "sub", "empty"), new Uint8Array(0));
    await Deno.mkdir(join(server.root, "d", "hollow"));
    // A name ferryd never serves (a newline in it) is left out, not a cut in the archive.
    await Deno.writeTextFile(join(server.root, "d", "bad\nname"), "x");
    await Deno.chmod(join(server.root, "d", "a.txt"), 0o640);
    const mtime = new Date("2024-05-06T07:08:10Z");
    await Deno.utime(join(server.root, "d", "a.txt"), mtime, mtime);
    const base = `http://${server.address}`;
    const formats = [["tar", "-xf"], ["tar.gz", "-xzf"], ...(hasUnzip ? [["zip", ""]] : [])];
    for (const [query, flag] of formats) {
      const archive = join(local.path, `d.${query}`);
      const got = await curl(["-fo", archive, `${base}/d/?${query}`]);
      const q = query.replace(".", "\\.");
      assert.equal(got.status, 200);
      assert.match(
        got.headers,
        new RegExp(
          `content-disposition: attachment; filename="d\\.${q}"; filename\\*=utf-8''d\\.${q}`,
        ),
      );
      const into = join(local.path, query);
      await Deno.mkdir(into);
      const untar = query === "zip"
        ? await new Deno.Command("unzip", { args: ["-q", archive, "-d", into] }).output()
        : await new Deno.Command("tar", { args: [flag, archive, "-C", into] }).output();
      assert.ok(untar.success, new TextDecoder().decode(untar.stderr));
      assert.deepEqual(await Deno.readFile(join(into, "d", "sub", "big.bin")), big);
      assert.equal(await Deno.readTextFile(join(into, "d", "a.txt")), "a");
      assert.equal((await Deno.stat(join(into, "d", "sub", "empty"))).size, 0);
      assert.ok((await Deno.stat(join(into, "d", "hollow"))).isDirectory);
      assert.deepEqual([...Deno.readDirSync(join(into, "d"))].map((e) => e.name).sort(), [
        "a.txt",
        "hollow",
        "sub",
      ]);
      const a = await Deno.stat(join(into, "d", "a.txt"));
      assert.equal(a.mode! & 0o777, 0o640, query);
      // A zip keeps local time in 2-second steps.
      assert.ok(Math.abs(a.mtime!.getTime() - mtime.getTime()) <= 2000, `${query}: ${a.mtime}`);
    }
    if (!hasUnzip) console.log("unzip is not installed: ?zip not extracted");
    // As the README says it: curl names the file after the directory (-J).
    await Deno.mkdir(join(local.path, "named"));
    const named = await curl(["-fsSLOJ", `${base}/d/?zip`], join(local.path, "named"));
    assert.equal(named.code, 0);
    assert.ok((await Deno.stat(join(local.path, "named", "d.zip"))).size > big.length);
  },
});

Deno.test({
  name: "--no-http answers only the ferry protocol",
  ignore: !hasCurl,
  async fn() {
    await using server = await startServer({ args: ["--no-http"] });
    const r = await curl([`http://${server.address}/`]);
    assert.notEqual(r.status, 200);
    const ls = await runClient(server.address, ["ls"]);
    assert.equal(ls.code, 0, ls.stderr);
  },
});

Deno.test({
  name:
    "HTTP: a client that leaves a tar early, a cross-site form, a rebound name, odd ranges and redirects",
  ignore: !hasCurl,
  async fn() {
    await using server = await startServer();
    await Deno.mkdir(join(server.root, "d"));
    await Deno.writeFile(join(server.root, "d", "big.bin"), randomBytes(8 * 1024 * 1024));
    await Deno.writeFile(join(server.root, "empty.bin"), new Uint8Array(0));
    const base = `http://${server.address}`;

    // Leaving an archive after a few bytes neither kills ferryd nor keeps the file open.
    for (const query of ["tar", "tar.gz", "zip"]) {
      const cut = new Deno.Command("sh", {
        args: ["-c", `curl -s --limit-rate 1M '${base}/d/?${query}' | head -c 1000 > /dev/null`],
      });
      await cut.output();
    }
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(
      (await curl([`${base}/empty.bin`, "-o", "/dev/null"])).status,
      200,
      "still serving",
    );
    const open = [...Deno.readDirSync(`/proc/${server.process.pid}/fd`)].filter((fd) => {
      try {
        return Deno.readLinkSync(`/proc/${server.process.pid}/fd/${fd.name}`).endsWith("big.bin");
      } catch {
        return false;
      }
    });
    assert.deepEqual(open, [], "no file left open");
    assert.equal((await curl(["-I", `${base}/d/?tar`])).status, 200);

    // Another site's page may change nothing, and a rebound name gets nothing.
    const forged = await curl([
      "-X",
      "POST",
      "-H",
      "Origin: http://evil.example",
      `${base}/x?mkdir`,
    ]);
    assert.equal(forged.status, 403);
    const rebound = await curl(["-H", "Host: rebind.evil.example", `${base}/empty.bin`]);
    assert.equal(rebound.status, 403);
    assert.equal(await Deno.stat(join(server.root, "x")).catch(() => null), null);

    // Ranges: an empty file has none to give; a reversed one is no range; a changed file is
    // sent whole to a client resuming an older copy.
    assert.equal((await curl(["-r", "-5", `${base}/empty.bin`])).status, 416);
    assert.equal((await curl(["-r", "5-2", `${base}/d/big.bin`, "-o", "/dev/null"])).status, 200);
    const stale = await curl([
      "-r",
      "10-",
      "-H",
      "If-Range: Mon, 01 Jan 2001 00:00:00 GMT",
      `${base}/d/big.bin`,
      "-o",
      "/dev/null",
    ]);
    assert.equal(stale.status, 200);

    // Sign-in sends back only to a plain path here.
    for (const back of ["/\\evil.com", "//evil.com", "/%09/evil.com", "/\t/evil.com"]) {
      const login = await curl([
        "-d",
        `token=x&back=${encodeURIComponent(back)}`,
        `${base}/.ferry-ui/login`,
      ]);
      assert.equal(login.status, 303, back);
      assert.match(login.headers, /\r\nlocation: \/\r\n/, back);
    }
  },
});

const [READ, WRITE] = ["r".repeat(32), "w".repeat(32)];
const TOKENS = Deno.makeTempFileSync({ prefix: "ferry-http-tokens-" });
Deno.writeTextFileSync(TOKENS, `${READ} read\n${WRITE} write\n`);
globalThis.addEventListener("unload", () => Deno.removeSync(TOKENS));

onBothStores(
  "HTTP: a cut PUT is kept; ?partial says how much; Content-Range continues it after comparing the bytes sent again",
  async (server) => {
    if (!hasCurl) return console.log("no curl: skipped");
    await using local = await tempDir();
    const auth = ["-H", `Authorization: Bearer ${WRITE}`];
    const time = ["-H", "X-OC-Mtime: 1700000000.5"];
    const size = 8 * 1024 * 1024;
    const data = randomBytes(size);
    const file = join(local.path, "big.bin");
    await Deno.writeFile(file, data);

    // The first upload is cut after 3 MiB.
    const proxy = cuttingProxy(server.port, { cutAfter: 3 * 1024 * 1024, cuts: 1 });
    const cut = await curl([...auth, ...time, "-T", file, `http://${proxy.address}/up/big.bin`]);
    await proxy.close();
    assert.notEqual(cut.code, 0);
    const base = `http://${server.address}`;
    const url = `${base}/up/big.bin`;
    const partial = (args: string[] = time) =>
      curl([...auth, ...args, "-H", "Accept: application/json", `${url}?partial&size=${size}`]);
    /** curl -C FROM -T PATH, as the writer, with the file's time and `headers`. */
    const resume = (from: number, path: string, headers: string[] = []) =>
      curl([
        ...auth,
        ...time,
        ...headers.flatMap((h) => ["-H", h]),
        "-C",
        `${from}`,
        "-T",
        path,
        url,
      ]);
    const whole = `sha-256=:${sha256(data).toString("base64")}:`;
    // What was already on its way when the client was cut still lands: the kept part grows
    // until ferryd sees the connection end. Settled when two answers agree.
    let held = 0;
    await waitFor(async () => {
      const before = held;
      held = JSON.parse((await partial()).body).offset;
      return held > 0 && held === before;
    });
    const asked = await partial();
    assert.equal(asked.status, 200);
    assert.match(asked.headers, new RegExp(`upload-offset: ${held}\\r?\\n`));
    // The kept part belongs to that size and time only, and only a writer may ask.
    assert.equal(JSON.parse((await partial([])).body).offset, 0);
    const reader = await curl([
      "-H",
      `Authorization: Bearer ${READ}`,
      `${url}?partial&size=${size}`,
    ]);
    assert.equal(reader.status, 403);

    // Continuing exactly where it stopped compares nothing: refused, naming where to start.
    const blind = await resume(held, file);
    assert.equal(blind.status, 416);
    assert.match(
      blind.body,
      new RegExp(`keeps ${held} bytes of it; send from byte ${held - 4096}`),
    );
    // The bytes sent again differ from the kept ones: refused, and the kept part stays.
    const other = join(local.path, "other.bin");
    const changed = data.slice();
    changed[held - 10] ^= 0xff;
    await Deno.writeFile(other, changed);
    const wrong = await resume(held - 65536, other);
    assert.equal(wrong.status, 416);
    assert.match(wrong.body, /differ from the kept ones/);
    assert.equal(JSON.parse((await partial()).body).offset, held);
    // Content-Digest of a ranged body would be the part's: the whole file's is Repr-Digest.
    const partDigest = await resume(held - 65536, file, [`Content-Digest: ${whole}`]);
    assert.equal(partDigest.status, 400);
    // A range that stops before the end is not a resume.
    const middle = await curl([
      ...auth,
      "-X",
      "PUT",
      "-H",
      `Content-Range: bytes 0-9/${size}`,
      "--data-binary",
      "0123456789",
      url,
    ]);
    assert.equal(middle.status, 400);

    // 64 KiB sent again, and the whole file's digest: stored whole, with its time.
    const resumed = await resume(held - 65536, file, [`Repr-Digest: ${whole}`]);
    assert.equal(resumed.status, 201, resumed.body);
    assert.match(resumed.headers, /x-oc-mtime: accepted/);
    assert.match(
      resumed.headers,
      new RegExp(`repr-digest: sha-256=:${escape(sha256(data))}:`, "i"),
    );
    assert.deepEqual(await server.files.read("up/big.bin"), data);
    const listed = JSON.parse((await curl([...auth, `${base}/up/?json`])).body);
    assert.equal(listed.find((e: { name: string }) => e.name === "big.bin").mtime, 1700000000500);
    assert.match(
      server.log(),
      new RegExp(`put up/big\\.bin ${size - held} bytes .*resumed at ${held}`),
    );
    assert.equal(JSON.parse((await partial()).body).offset, 0);
  },
  ["--tokens", TOKENS],
);

/** A digest in base64, escaped for a RegExp. */
function escape(digest: Uint8Array): string {
  return btoa(String.fromCharCode(...digest)).replace(/[+/]/g, (c) => `\\${c}`);
}

Deno.test({
  name:
    "HTTP resume limits: the bytes sent again are bounded each and all together, junk numbers refused, a body ending early is the client's error",
  ignore: !hasCurl,
  async fn() {
    await using server = await startServer();
    await using local = await tempDir();
    const MiB = 1024 * 1024;
    const size = 12 * MiB;
    const data = randomBytes(size);
    const file = join(local.path, "big.bin");
    await Deno.writeFile(file, data);
    const proxy = cuttingProxy(server.port, { cutAfter: 10 * MiB, cuts: 1 });
    await curl(["-T", file, `http://${proxy.address}/big.bin`]);
    await proxy.close();
    const url = `http://${server.address}/big.bin`;
    let held = 0;
    await waitFor(async () =>
      (held = JSON.parse((await curl([`${url}?partial&size=${size}`])).body).offset) > 9 * MiB
    );

    // More than 8 MiB again: refused, saying how much may be sent again.
    const far = await curl(["-C", String(held - 8 * MiB - 1), "-T", file, url]);
    assert.equal(far.status, 416);
    assert.match(far.body, /at most 8388608/);
    // Junk numbers.
    assert.equal((await curl([`${url}?partial&size=0x10`])).status, 400);
    assert.equal((await curl([`${url}?partial&size=`])).status, 400);
    assert.equal((await curl(["-H", "X-OC-Mtime: 0x10", "-T", file, url])).status, 400);
    // A whole chunked body that ends before the kept bytes do: the client's error, not a cut.
    const start = held - 8192;
    const short = await raw(
      server.port,
      `PUT /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Range: bytes ${start}-${
        size - 1
      }/${size}\r\n` +
        `Transfer-Encoding: chunked\r\n\r\n10\r\n${"x".repeat(16)}\r\n0\r\n\r\n`,
    );
    assert.match(short, /^HTTP\/1\.1 400 /);
    assert.match(short, /ends before byte/);

    // Eight resumes each holding 8 MiB of bytes sent again, unfinished, take the whole budget:
    // a ninth waits its turn (503), and once they go, it is served.
    const again = 8 * MiB;
    const from = held - again;
    const head = `PUT /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${size - from}\r\n` +
      `Content-Range: bytes ${from}-${size - 1}/${size}\r\n\r\n`;
    const holders: Deno.Conn[] = [];
    try {
      for (let i = 0; i < 8; i++) {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
        holders.push(conn);
        await conn.write(new TextEncoder().encode(head));
        await conn.write(data.subarray(from, from + again - 1));
      }
      await new Promise((r) => setTimeout(r, 300));
      const ninth = await curl(["-C", String(from), "-T", file, url]);
      assert.equal(ninth.status, 503, ninth.body);
    } finally {
      holders.forEach((c) => c.close());
    }
    await waitFor(async () => (await curl(["-C", String(from), "-T", file, url])).status === 201);
    assert.deepEqual(await Deno.readFile(join(server.root, "big.bin")), data);
  },
});

Deno.test("HTTP: a refused upload's answer is not lost to a reset while the body still comes", async () => {
  // ferryd answers at once and closes, but drains what the client still sends for a moment
  // (lingerClose): closed outright with the body arriving, it sent a reset, and curl, still
  // writing, failed with "Send failure" before reading the answer (1 upload in 20-40 here).
  await using server = await startServer({ args: ["--read-only"] });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: server.port });
  try {
    const size = 64 * 1024 * 1024;
    await conn.write(
      new TextEncoder().encode(
        `PUT /big.bin HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${size}\r\n\r\n`,
      ),
    );
    await conn.write(new Uint8Array(64 * 1024));
    // The whole answer first: its head, and its body by its length.
    let answer = "";
    const buf = new Uint8Array(64 * 1024);
    while (!/\r\n\r\n/.test(answer) || answer.length < answerLength(answer)) {
      const n = await conn.read(buf);
      assert.ok(n !== null, `closed before the whole answer: ${answer}`);
      answer += new TextDecoder().decode(buf.subarray(0, n));
    }
    assert.match(answer, /^HTTP\/1\.1 403 /);
    assert.match(answer, /connection: close/i);
    // A client that has not noticed yet goes on sending: no reset for a while.
    const chunk = new Uint8Array(64 * 1024);
    for (let sent = 0; sent < 2 * 1024 * 1024; sent += chunk.length) {
      await conn.write(chunk);
      await new Promise((r) => setTimeout(r, 5));
    }
    // Then it stops, and the server closes: an end, not a reset.
    await conn.closeWrite();
    assert.equal(await conn.read(buf), null);
  } finally {
    try {
      conn.close();
    } catch {
      // Closed already.
    }
  }
});

/** The length of an HTTP answer whose head is in `text`: head plus Content-Length. */
function answerLength(text: string): number {
  const end = text.indexOf("\r\n\r\n") + 4;
  const length = Number(/content-length: (\d+)/i.exec(text.slice(0, end))?.[1] ?? 0);
  return end + length;
}
