/** Integration: everyday file management with the real server and client. */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { FrameType, HEADER_SIZE } from "../lib/frame.ts";
import { fakeServer, listTree, randomBytes, runClient, startServer, tempDir } from "./helpers.ts";
import { onBothStores } from "./server_files.ts";

/** Create a tree of `files` small files in nested directories, plus empty directories. */
async function makeTree(root: string, files: number): Promise<void> {
  for (let i = 0; i < files; i++) {
    const dir = join(root, `d${i % 10}`, `e${i % 7}`);
    await Deno.mkdir(dir, { recursive: true });
    const path = join(dir, `f${i} ${i % 3 === 0 ? "ü" : "x"}.bin`);
    await Deno.writeFile(path, randomBytes(i % 5 === 0 ? 0 : 100 + (i * 37) % 5000));
    await Deno.chmod(path, i % 4 === 0 ? 0o755 : 0o640);
    await Deno.utime(path, new Date(), new Date(1_600_000_000_000 + i * 1000));
  }
  await Deno.mkdir(join(root, "empty", "nested", "deeper"), { recursive: true });
  await Deno.mkdir(join(root, "d1", "alone"));
}

/** Assert that two trees have the same names, bytes, permission bits and mtimes (to the second). */
async function assertSameTree(a: string, b: string): Promise<void> {
  const names = await listTree(a);
  assert.deepEqual(await listTree(b), names);
  for (const name of names) {
    const [x, y] = [await Deno.lstat(join(a, name)), await Deno.lstat(join(b, name))];
    assert.equal(x.isDirectory, y.isDirectory, name);
    if (!x.isFile) continue;
    assert.equal(y.mode! & 0o777, x.mode! & 0o777, `mode of ${name}`);
    assert.equal(
      Math.floor(y.mtime!.getTime() / 1000),
      Math.floor(x.mtime!.getTime() / 1000),
      `mtime of ${name}`,
    );
    assert.deepEqual(await Deno.readFile(join(b, name)), await Deno.readFile(join(a, name)), name);
  }
}

onBothStores(
  "put -r and get -r round-trip 1,000 files and empty directories exactly",
  async (server) => {
    await using local = await tempDir();
    const src = join(local.path, "src");
    await makeTree(src, 1000);
    const put = await runClient(server.address, ["--json", "put", "-r", src, "tree"]);
    assert.equal(put.code, 0, put.stderr);
    const summary = JSON.parse(put.stdout.trim().split("\n").at(-1)!);
    assert.deepEqual([summary.op, summary.files, summary.failed], ["summary", 1000, 0]);
    // What the server holds: the same names (its modes and times come back with get -r below).
    assert.deepEqual(await server.files.tree("tree"), await listTree(src));
    if (server.backend === "disk") await assertSameTree(src, join(server.root, "tree"));

    const back = join(local.path, "back");
    const get = await runClient(server.address, ["get", "-r", "tree", back]);
    assert.equal(get.code, 0, get.stderr);
    assert.equal(get.stdout, "", "nothing but results when not a terminal");
    await assertSameTree(src, back);
  },
);

Deno.test("setuid, setgid and sticky bits are dropped; symlinks are skipped, not followed", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  await using outside = await tempDir();
  const src = join(local.path, "src");
  await Deno.mkdir(src);
  await Deno.writeTextFile(join(src, "tool"), "#!/bin/sh\n");
  await Deno.chmod(join(src, "tool"), 0o6755);
  await Deno.writeTextFile(join(outside.path, "secret"), "secret");
  await Deno.symlink(outside.path, join(src, "escape"));
  await Deno.symlink("tool", join(src, "alias"));
  const put = await runClient(server.address, ["put", "-r", src, "t"]);
  assert.equal(put.code, 0, put.stderr);
  assert.equal(put.stdout, "skipped t/alias (symlink)\nskipped t/escape (symlink)\n");
  assert.deepEqual(await listTree(join(server.root, "t")), ["tool"]);
  assert.equal((await Deno.stat(join(server.root, "t", "tool"))).mode! & 0o7777, 0o755);
});

onBothStores("ls -l, ls -R, ls --json, stat, sum, mkdir -p, mv, rm and rm -r", async (server) => {
  await server.files.write("docs/a.txt", "hello", { mode: 0o640 });
  // A name with a control character, put there by another program: listed escaped from a disk.
  // (A bucket's such keys are passed over: docs/scale-out.md.)
  const evil = server.backend === "disk" ? ["evil\u001b[31mred.txt"] : [];
  for (const name of evil) await server.files.write(name, "x");
  const shown = evil.length > 0 ? "evil\\x1b[31mred.txt\n" : "";
  const run = (...args: string[]) => runClient(server.address, args);

  const long = await run("ls", "-l", "docs");
  assert.match(long.stdout, /^-rw-r----- +5 \d{4}-\d\d-\d\d \d\d:\d\d a\.txt\n$/);
  const plain = await run("ls");
  assert.equal(plain.stdout, `docs/\n${shown}`, "control characters escaped");
  const rec = await run("ls", "-R");
  assert.equal(rec.stdout, `docs/\ndocs/a.txt\n${shown}`);
  const json = (await run("ls", "--json", "docs")).stdout.trim().split("\n").map((l) =>
    JSON.parse(l)
  );
  assert.deepEqual(
    [json[0].name, json[0].type, json[0].size, json[0].mode],
    ["a.txt", "file", 5, 0o640],
  );

  const stat = await run("stat", "docs/a.txt");
  assert.match(stat.stdout, /type: +file\nsize: +5 \(5 B\)\nmode: +0640 \(rw-r-----\)/);
  const sum = await run("sum", "docs/a.txt");
  const sha = createHash("sha256").update("hello").digest("hex");
  assert.equal(sum.stdout, `${sha}  docs/a.txt\n`);
  const row = JSON.parse((await run("--json", "sum", "docs/a.txt")).stdout);
  assert.deepEqual([row.checksum, row.sha256], [{ sha256: sha }, sha]);
  // The fast one, as `xxhsum -H2` prints it.
  const fast = await run("sum", "--xxh128", "docs/a.txt");
  assert.equal(fast.stdout, "b5e9c1ad071b3e7fc779cfaa5e523818  docs/a.txt\n");

  assert.equal((await run("mkdir", "x/y")).code, 5, "mkdir without -p needs the parent");
  assert.equal((await run("mkdir", "-p", "x/y/z")).code, 0);
  assert.equal((await run("mkdir", "-p", "x/y/z")).code, 0, "mkdir -p of an existing dir");
  assert.equal((await run("mkdir", "x")).code, 6, "mkdir of an existing dir");
  assert.equal((await run("mv", "docs/a.txt", "x/y")).code, 0, "mv into a directory");
  assert.equal(await server.files.readText("x/y/a.txt"), "hello");
  assert.equal((await run("mv", "x/y/a.txt", "x/b.txt")).code, 0, "mv as rename");
  assert.equal((await run("mv", "x", "x/y/z")).code, 7, "mv into itself");
  assert.equal((await run("mv", "missing", "y")).code, 5);
  const notEmpty = await run("rm", "x");
  assert.equal(notEmpty.code, 6);
  assert.match(notEmpty.stderr, /not empty.*rm -r/);
  assert.equal((await run("rm", "x/b.txt")).code, 0);
  assert.equal((await run("rm", "-r", "x")).code, 0);
  assert.equal((await run("rm", "")).code, 7, "the root cannot be removed");
  assert.equal((await run("rm", "-r", "..")).code, 7);
  assert.deepEqual(await server.files.tree(), ["docs", ...evil]);
});

onBothStores("globs: put expands locally, get matches on the server", async (server) => {
  await using local = await tempDir();
  const dist = join(local.path, "dist");
  await Deno.mkdir(dist);
  for (const name of ["a.tar.gz", "b.tar.gz", "notes.txt", ".hidden.tar.gz"]) {
    await Deno.writeTextFile(join(dist, name), name);
  }
  const put = await runClient(server.address, ["put", "dist/*.tar.gz", "releases/"], {
    cwd: local.path,
  });
  assert.equal(put.code, 0, put.stderr);
  assert.deepEqual(await server.files.tree("releases"), ["a.tar.gz", "b.tar.gz"]);

  for (const name of ["1.txt", "2.txt", "3.log"]) await server.files.write(`logs/${name}`, name);
  const out = join(local.path, "out");
  await Deno.mkdir(out);
  const get = await runClient(server.address, ["get", "logs/*.txt", out]);
  assert.equal(get.code, 0, get.stderr);
  assert.deepEqual(await listTree(out), ["1.txt", "2.txt"]);
  const none = await runClient(server.address, ["get", "logs/*.zip", out]);
  assert.equal(none.code, 5);
  assert.match(none.stderr, /no match: remote logs\/\*\.zip/);
  // Several plain sources go into the last argument as a directory.
  const many = await runClient(server.address, ["put", "dist/a.tar.gz", "dist/notes.txt", "m"], {
    cwd: local.path,
  });
  assert.equal(many.code, 0, many.stderr);
  assert.deepEqual(await server.files.tree("m"), ["a.tar.gz", "notes.txt"]);
});

onBothStores("--no-clobber, --sync and --delete", async (server) => {
  await using local = await tempDir();
  const src = join(local.path, "site");
  await Deno.mkdir(join(src, "css"), { recursive: true });
  await Deno.writeTextFile(join(src, "index.html"), "<h1>v1</h1>");
  await Deno.writeTextFile(join(src, "css", "main.css"), "body{}");
  assert.equal((await runClient(server.address, ["put", "-r", src, "www"])).code, 0);

  // Same content: everything skipped as unchanged, and said so.
  const same = await runClient(server.address, ["put", "-r", "--sync", src, "www"]);
  assert.equal(same.code, 0, same.stderr);
  assert.deepEqual(same.stdout.trim().split("\n").sort(), [
    "skipped www/css/main.css (unchanged)",
    "skipped www/index.html (unchanged)",
  ]);

  // One file changed with the same size: only it moves (SHA-256 decides, not size or time).
  await Deno.writeTextFile(join(src, "index.html"), "<h1>v2</h1>");
  const changed = await runClient(server.address, ["--json", "put", "-r", "--sync", src, "www"]);
  const lines = changed.stdout.trim().split("\n").map((l) => JSON.parse(l));
  const moved = lines.filter((l) => l.op === "put" && !l.skipped).map((l) => l.path);
  assert.deepEqual(moved, ["www/index.html"]);
  assert.equal(await server.files.readText("www/index.html"), "<h1>v2</h1>");

  // --no-clobber refuses to replace, and reports it.
  await Deno.writeTextFile(join(src, "index.html"), "<h1>v3</h1>");
  const nc = await runClient(server.address, ["put", "-N", join(src, "index.html"), "www/"]);
  assert.equal(nc.code, 0, nc.stderr);
  assert.equal(nc.stdout, "skipped www/index.html (exists)\n");
  assert.equal(await server.files.readText("www/index.html"), "<h1>v2</h1>");
  const ncGet = await runClient(server.address, ["get", "-N", "www/css/main.css", src + "/css/"]);
  assert.equal(ncGet.stdout, `skipped www/css/main.css (exists)\n`);

  // --delete removes what the local tree no longer has, whole directories at once.
  await server.files.write("www/old/deep/x", "x");
  await server.files.write("www/stale.txt", "x");
  const del = await runClient(server.address, ["put", "-r", "--sync", "--delete", src, "www"]);
  assert.equal(del.code, 0, del.stderr);
  assert.match(del.stdout, /deleted www\/old\n/);
  assert.match(del.stdout, /deleted www\/stale\.txt\n/);
  assert.deepEqual(await server.files.tree("www"), [
    "css",
    "css/main.css",
    "index.html",
  ]);
  const bad = await runClient(server.address, ["put", "--delete", src, "www"]);
  assert.equal(bad.code, 2);
});

Deno.test("a tree with some failures exits 10 and reports each failure", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const src = join(local.path, "src");
  await Deno.mkdir(join(src, "sub"), { recursive: true });
  await Deno.writeTextFile(join(src, "ok.txt"), "ok");
  await Deno.writeTextFile(join(src, "sub", "blocked.txt"), "x");
  await Deno.mkdir(join(server.root, "t"));
  await Deno.writeTextFile(join(server.root, "t", "sub"), "a file where a directory should go");
  const run = await runClient(server.address, ["--json", "put", "-r", src, "t"]);
  assert.equal(run.code, 10, run.stderr);
  const lines = run.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(
    lines.filter((l) => l.error).map((l) => [l.op, l.path, l.error.code]),
    [["mkdir", "t/sub", "NOT_A_DIRECTORY"], ["put", "t/sub/blocked.txt", "NOT_A_DIRECTORY"]],
  );
  assert.equal(lines.at(-1).failed, 2);
  assert.equal(await Deno.readTextFile(join(server.root, "t", "ok.txt")), "ok");
  assert.equal(run.stderr.trim().split("\n").length, 2, "one line per failure");
});

Deno.test("get -r where a local directory cannot be made names each file it kept out", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  await Deno.mkdir(join(server.root, "t", "sub"), { recursive: true });
  await Deno.writeTextFile(join(server.root, "t", "ok.txt"), "ok");
  await Deno.writeTextFile(join(server.root, "t", "sub", "one.txt"), "1");
  await Deno.writeTextFile(join(server.root, "t", "sub", "two.txt"), "2");
  const dest = join(local.path, "dest");
  await Deno.mkdir(dest);
  await Deno.writeTextFile(join(dest, "sub"), "a file where a directory should go");
  const run = await runClient(server.address, ["get", "-r", "t", dest]);
  assert.equal(run.code, 10, run.stderr);
  const lines = run.stderr.trim().split("\n");
  assert.match(lines[0], /^ferry: local .*dest\/sub is not a directory$/);
  assert.deepEqual(lines.slice(1), [
    `ferry: t/sub/one.txt not written: local ${dest}/sub could not be made`,
    `ferry: t/sub/two.txt not written: local ${dest}/sub could not be made`,
  ]);
  assert.equal(await Deno.readTextFile(join(dest, "ok.txt")), "ok");
});

/** A server that lists whatever names it likes and serves "pwned" for any get. */
function hostileServer(names: string[]) {
  return fakeServer(async (fc) => {
    for (;;) {
      const frame = await fc.read();
      if (!frame) return;
      const req = JSON.parse(new TextDecoder().decode(frame.payload));
      const reply = (msg: unknown) => fc.sendMessage(FrameType.REPLY, frame.id, msg);
      if (req.op === "ls" || req.op === "glob") {
        const entries = names.map((name) => ({
          name,
          type: "file",
          size: 5,
          mtime: 0,
          mode: 0o644,
        }));
        await reply({ entries, more: false });
      } else if (req.op === "stat") {
        await reply({ entry: { name: ".", type: "dir", size: 0, mtime: 0, mode: 0o755 } });
      } else if (req.op === "get") {
        const body = new TextEncoder().encode("pwned");
        await reply({ size: 5, mtime: 0, mode: 0o644 });
        const buf = new Uint8Array(HEADER_SIZE + 5);
        buf.set(body, HEADER_SIZE);
        await fc.sendFramed(FrameType.DATA, frame.id, buf, 5);
        const sha256 = createHash("sha256").update(body).digest("hex");
        await fc.sendMessage(FrameType.END, frame.id, { sha256 });
      } else {
        await reply({});
      }
    }
  });
}

Deno.test("names from a hostile server can never escape the local destination", async () => {
  await using local = await tempDir();
  const dest = join(local.path, "dest");
  const evil = [
    "../escaped.txt",
    "/tmp/ferry-absolute-escape.txt",
    "a/../../escaped2.txt",
    "..\\escaped3.txt",
    "ok/../../../escaped4.txt",
    ".ferry-0000.part",
    "bad\u001b[2Jname",
  ];
  for (const name of evil) {
    const server = hostileServer(["fine.txt", name]);
    const run = await runClient(server.address, ["get", "-r", "", dest]);
    await server.close();
    assert.equal(run.code, 4, `${JSON.stringify(name)}: ${run.stderr}`);
    assert.match(run.stderr, /^ferry: server sent an unsafe name: .*\n$/);
    assert.ok(!run.stderr.includes("\u001b"), "the name is escaped in the message");
  }
  // Globs keep only the last component of whatever the server answers.
  const server = hostileServer(["../../escaped5.txt", "sub/../../escaped6.txt"]);
  await Deno.mkdir(dest, { recursive: true });
  const glob = await runClient(server.address, ["get", "*.txt", dest]);
  await server.close();
  assert.equal(glob.code, 0, glob.stderr);
  assert.deepEqual(await listTree(local.path), ["dest", "dest/escaped5.txt", "dest/escaped6.txt"]);
  await assert.rejects(() => Deno.stat("/tmp/ferry-absolute-escape.txt"));
});

Deno.test("shell: cd, pwd, lcd, lpwd, lls and relative paths", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  await Deno.mkdir(join(server.root, "a", "b"), { recursive: true });
  await Deno.writeTextFile(join(server.root, "a", "b", "f.txt"), "f");
  await Deno.mkdir(join(local.path, "work"));
  await Deno.writeTextFile(join(local.path, "work", "up.txt"), "up");
  const script = [
    "pwd",
    "cd a/b",
    "pwd",
    "ls",
    "get f.txt",
    "lcd work",
    "lpwd",
    "lls",
    "put up.txt",
    "cd ..",
    "ls b",
    "cd /",
    "pwd",
    "cd a/b/f.txt",
    "cd ..",
  ].join("\n");
  const run = await runClient(server.address, [], { stdin: script, cwd: local.path });
  assert.equal(
    run.stdout,
    `/\n/a/b\nf.txt\n${await Deno.realPath(join(local.path, "work"))}\nup.txt\nf.txt\nup.txt\n/\n`,
  );
  // `cd ..` at the root stays there, as in sftp: no error.
  assert.deepEqual(run.stderr.trim().split("\n"), ["ferry: not a directory: a/b/f.txt"]);
  assert.equal(await Deno.readTextFile(join(local.path, "f.txt")), "f");
  assert.equal(await Deno.readTextFile(join(server.root, "a", "b", "up.txt")), "up");
});

Deno.test("a local destination that cannot take what comes is refused once, up front", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  await Deno.mkdir(join(server.root, "m"));
  for (let i = 0; i < 5; i++) await Deno.writeTextFile(join(server.root, "m", `f${i}`), "x");
  const file = join(local.path, "afile");
  await Deno.writeTextFile(file, "mine");
  const tree = await runClient(server.address, ["get", "-r", "m", file]);
  assert.equal(tree.code, 6, tree.stderr);
  assert.equal(tree.stderr, `ferry: local ${file} is not a directory\n`);
  assert.equal(await Deno.readTextFile(file), "mine");
  // Or on the way to it: said once too.
  for (const dest of [`${file}/`, `${file}/sub`]) {
    const run = await runClient(server.address, ["get", "-r", "m", dest]);
    assert.equal(run.code, 6, run.stderr);
    assert.equal(run.stderr, `ferry: local ${file} is not a directory\n`);
  }
  // Several matches of a glob into a directory that is not there: one line, as get a b DIR.
  const missing = join(local.path, "none");
  const glob = await runClient(server.address, ["get", "m/f*", missing]);
  assert.equal(glob.code, 5, glob.stderr);
  assert.equal(
    glob.stderr,
    `ferry: local ${missing} does not exist: several sources go into one directory\n`,
  );
});
