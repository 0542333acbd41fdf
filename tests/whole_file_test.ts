/**
 * `writeWholeFile`, the step a tree stream takes for each small file on
 * either side: through the C library where it is at hand (a nameless file,
 * linked once whole), and through `node:fs` where not. Every case here runs
 * both ways: in this process, and again in a child with `FERRY_LIBC=off`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { type WholeFileOptions, WholeFileWriter, writeWholeFile } from "../lib/fs/whole_file.ts";
import { libc } from "../lib/fs/libc.ts";
import { rerunWithoutLibc, tempDir, WITHOUT_LIBC_CHILD } from "./helpers.ts";

const MTIME = Date.UTC(2022, 1, 3, 4, 5, 6) + 789;
const CHILD = WITHOUT_LIBC_CHILD;
const way = libc() ? "C library" : "node:fs";

const bytes = (text: string) => new TextEncoder().encode(text);
const names = async (dir: string) =>
  (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();

let drawn = 0;
const temp = () => `.ferry-test${drawn++}.part`;

/** A way to write whole files into one directory, as the server does and as the client does. */
type Write = (
  at: (name: string) => string,
  name: string,
  tempName: () => string,
  content: Uint8Array,
  options: WholeFileOptions,
) => "exists" | undefined;

// The server's: writeWholeFile with paths. The client's: a WholeFileWriter holding the
// directory open (what `at(".")` names), used for every directory of a test in turn.
const writer = new WholeFileWriter();
const ways: [string, Write][] = [
  ["writeWholeFile", writeWholeFile],
  ["WholeFileWriter", (at, name, tempName, content, options) => {
    const dir = at("x").slice(0, -2); // at joins: "DIR/x"
    return writer.write(dir, name, tempName, content, options);
  }],
];

for (const [how, writeWholeFile] of ways) {
  Deno.test(`whole files (${way}, ${how}): content, mode and mtime to the millisecond, nothing else left`, async () => {
    await using dir = await tempDir();
    const at = (name: string) => join(dir.path, name);
    const big = new Uint8Array(3 * 1024 * 1024 + 7).map((_, i) => i * 31);
    const cases: [string, Uint8Array, number][] = [
      ["empty", new Uint8Array(0), 0o600],
      ["small", bytes("hello"), 0o644],
      ["big", big, 0o755],
      ["odd name ü \n x", bytes("odd"), 0o640],
    ];
    for (const [name, content, mode] of cases) {
      assert.equal(writeWholeFile(at, name, temp, content, { mode, mtime: MTIME }), undefined);
      const info = await Deno.lstat(at(name));
      assert.ok(info.isFile);
      assert.equal(info.mode! & 0o7777, mode, name);
      assert.equal(info.mtime!.getTime(), MTIME, name);
      assert.equal(info.nlink, 1, `${name}: no second name left behind`);
      assert.deepEqual(await Deno.readFile(at(name)), content, name);
    }
    assert.deepEqual(await names(dir.path), cases.map(([n]) => n).sort());
  });
}

for (const [how, writeWholeFile] of ways) {
  Deno.test(`whole files (${way}, ${how}): what is in the way is replaced, never followed; a directory refuses`, async () => {
    await using dir = await tempDir();
    const at = (name: string) => join(dir.path, name);
    const outside = join(dir.path, "outside");
    await Deno.mkdir(outside);
    const target = join(outside, "target");
    await Deno.writeTextFile(target, "untouched");
    await Deno.mkdir(at("in"));
    const into = (name: string) => join(dir.path, "in", name);
    await Deno.writeTextFile(into("file"), "old content, longer than the new");
    await Deno.symlink(target, into("link"));
    await Deno.symlink(join(outside, "nowhere"), into("dangling"));
    const fifo = await new Deno.Command("mkfifo", { args: [into("fifo")] }).output();
    await Deno.mkdir(into("dir"));
    for (const name of ["file", "link", "dangling", ...(fifo.success ? ["fifo"] : [])]) {
      assert.equal(
        writeWholeFile(into, name, temp, bytes(`new ${name}`), { mode: 0o644, mtime: MTIME }),
        undefined,
      );
      const info = await Deno.lstat(into(name));
      assert.ok(info.isFile, `${name} is now a plain file`);
      assert.equal(await Deno.readTextFile(into(name)), `new ${name}`);
    }
    assert.equal(await Deno.readTextFile(target), "untouched");
    assert.deepEqual(await names(outside), ["target"]);
    assert.throws(
      () => writeWholeFile(into, "dir", temp, bytes("x"), { mode: 0o644, mtime: MTIME }),
      (err: { code?: string }) => err.code === "EISDIR" || err.code === "ENOTEMPTY",
    );
    assert.ok((await Deno.lstat(into("dir"))).isDirectory);
    const left = ["dangling", "dir", "file", "link", ...(fifo.success ? ["fifo"] : [])].sort();
    assert.deepEqual(await names(join(dir.path, "in")), left, "no temporary file left");
  });
}

for (const [how, writeWholeFile] of ways) {
  Deno.test(`whole files (${way}, ${how}): noClobber keeps whatever has the name, even a dangling symlink`, async () => {
    await using dir = await tempDir();
    const at = (name: string) => join(dir.path, name);
    await Deno.writeTextFile(at("file"), "mine");
    await Deno.symlink(join(dir.path, "nowhere"), at("dangling"));
    const options = { mode: 0o644, mtime: MTIME, noClobber: true };
    assert.equal(writeWholeFile(at, "file", temp, bytes("theirs"), options), "exists");
    assert.equal(writeWholeFile(at, "dangling", temp, bytes("theirs"), options), "exists");
    assert.equal(writeWholeFile(at, "new", temp, bytes("theirs"), options), undefined);
    assert.equal(await Deno.readTextFile(at("file")), "mine");
    assert.ok((await Deno.lstat(at("dangling"))).isSymlink);
    assert.equal(await Deno.readTextFile(at("new")), "theirs");
    assert.deepEqual(await names(dir.path), ["dangling", "file", "new"]);
  });
}

for (const [how, writeWholeFile] of ways) {
  Deno.test(`whole files (${way}, ${how}): a missing directory is an error, and leaves nothing`, async () => {
    await using dir = await tempDir();
    const at = (name: string) => join(dir.path, "missing", name);
    assert.throws(
      () => writeWholeFile(at, "f", temp, bytes("x"), { mode: 0o644, mtime: MTIME }),
      (err: { code?: string }) => err.code === "ENOENT",
    );
    assert.deepEqual(await names(dir.path), []);
  });
}

Deno.test({
  name: "whole files: no temporary name ever appears where the C library is at hand",
  ignore: CHILD || Deno.build.os !== "linux",
  async fn() {
    // Where it should be, it is: a build that lost it would go on working, only slower.
    if (["x86_64", "aarch64"].includes(Deno.build.arch)) assert.ok(libc(), "libc.so.6 through FFI");
    if (!libc()) return;
    await using dir = await tempDir();
    const at = (name: string) => join(dir.path, name);
    const watcher = Deno.watchFs(dir.path, { recursive: false });
    const seen: string[] = [];
    const watching = (async () => {
      for await (const event of watcher) {
        for (const path of event.paths) {
          seen.push(`${event.kind} ${path.slice(dir.path.length + 1)}`);
        }
      }
    })();
    for (let i = 0; i < 20; i++) {
      ways[i % 2][1](at, `f${i}`, temp, bytes(`file ${i}`), { mode: 0o644, mtime: MTIME });
    }
    await Deno.writeTextFile(at("last"), "a marker, seen after the rest");
    for (let i = 0; i < 100 && !seen.some((s) => s.endsWith(" last")); i++) {
      await new Promise((r) => setTimeout(r, 10));
    }
    watcher.close();
    await watching;
    assert.ok(seen.some((s) => s.endsWith(" f19")), seen.join(", "));
    assert.deepEqual(seen.filter((s) => s.includes(".part")), []);
  },
});

Deno.test({
  name: "whole files: the same cases pass through node:fs (FERRY_LIBC=off)",
  ignore: CHILD,
  async fn() {
    const text = await rerunWithoutLibc(import.meta.url);
    assert.match(text, /\(node:fs, WholeFileWriter\): content, mode/);
    assert.match(text, /ok \| 12 passed/);
  },
});

Deno.test(`whole files (${way}): a WholeFileWriter follows its directory, and one made anew`, async () => {
  await using dir = await tempDir();
  using writer = new WholeFileWriter();
  const options = { mode: 0o644, mtime: MTIME };
  const a = join(dir.path, "a"), b = join(dir.path, "b");
  await Deno.mkdir(a);
  await Deno.mkdir(b);
  assert.equal(writer.write(a, "1", temp, bytes("a1"), options), undefined);
  assert.equal(writer.write(b, "1", temp, bytes("b1"), options), undefined);
  assert.equal(writer.write(a, "2", temp, bytes("a2"), options), undefined);
  // Removed and made again at the same path while held: the new directory gets the file.
  await Deno.remove(a, { recursive: true });
  await Deno.mkdir(a);
  assert.equal(writer.write(a, "3", temp, bytes("a3"), options), undefined);
  assert.deepEqual(await names(a), ["3"]);
  assert.deepEqual(await names(b), ["1"]);
  assert.equal(await Deno.readTextFile(join(a, "3")), "a3");
  // Gone altogether: the error the path meets.
  await Deno.remove(b, { recursive: true });
  assert.throws(
    () => writer.write(b, "2", temp, bytes("b2"), options),
    (err: { code?: string }) => err.code === "ENOENT",
  );
});

Deno.test({
  name: "whole files: no C library calls where writing is granted only somewhere",
  ignore: CHILD || Deno.build.os !== "linux",
  async fn() {
    // FFI calls pass by Deno's permission checks: under --allow-write=DIR they could write
    // elsewhere, so they are not used at all; under --allow-all they are.
    await using dir = await tempDir();
    const module = new URL("../lib/fs/libc.ts", import.meta.url).href;
    const script = join(dir.path, "which.ts");
    await Deno.writeTextFile(
      script,
      `import { libc } from "${module}"; console.log(libc() ? "libc" : "node:fs");`,
    );
    const run = async (flags: string[]) => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "--no-check", ...flags, script],
        stdout: "piped",
        stderr: "inherit",
      }).output();
      return new TextDecoder().decode(out.stdout).trim();
    };
    assert.equal(await run(["--allow-ffi", "--allow-read", "--allow-write=/tmp"]), "node:fs");
    assert.equal(await run(["--allow-ffi", "--allow-read=/", "--allow-write"]), "node:fs");
    if (libc()) assert.equal(await run(["--allow-all"]), "libc");
  },
});

for (const [how, writeWholeFile] of ways) {
  Deno.test(`whole files (${way}, ${how}): a temporary name taken is somebody else's, and stays`, async () => {
    await using dir = await tempDir();
    const at = (name: string) => join(dir.path, name);
    await Deno.writeTextFile(at("file"), "old");
    await Deno.symlink("/nowhere", at(".ferry-taken.part"));
    assert.throws(
      () =>
        writeWholeFile(at, "file", () => ".ferry-taken.part", bytes("new"), {
          mode: 0o644,
          mtime: MTIME,
        }),
      (err: { code?: string }) => err.code === "EEXIST",
    );
    assert.ok((await Deno.lstat(at(".ferry-taken.part"))).isSymlink);
    assert.equal(await Deno.readTextFile(at("file")), "old");
  });
}

Deno.test(`whole files (${way}): a time no Date holds fails or goes through node:fs, leaking nothing`, async () => {
  await using dir = await tempDir();
  const at = (name: string) => join(dir.path, name);
  const open = () => Array.from(Deno.readDirSync("/proc/self/fd")).length;
  const before = open();
  for (let i = 0; i < 50; i++) {
    try {
      writeWholeFile(at, `nan${i}`, temp, bytes("x"), { mode: 0o644, mtime: NaN });
    } catch {
      // node:fs refuses it; what matters is what is left.
    }
  }
  assert.ok(open() <= before + 1, `descriptors: ${before} -> ${open()}`);
  assert.deepEqual((await names(dir.path)).filter((n) => n.startsWith(".")), []);
  writeWholeFile(at, "far", temp, bytes("x"), { mode: 0o644, mtime: 1e300 });
  // Whatever node:fs makes of it, not the epoch that 64-bit seconds would wrap around to.
  assert.notEqual((await Deno.lstat(at("far"))).mtime!.getTime(), 0);
});

Deno.test({
  name: "whole files: a close that fails drops only the file this step linked, and says so",
  ignore: CHILD || !libc(),
  async fn() {
    // As NFS or FUSE report a failed write: the descriptor is gone, and close answers -1.
    await using dir = await tempDir();
    const at = (name: string) => join(dir.path, name);
    await Deno.writeTextFile(at("keep"), "precious");
    const c = libc()!;
    const close = c.close;
    c.close = (fd) => (close(fd), -1);
    try {
      const options = { mode: 0o644, mtime: MTIME };
      assert.equal(
        writeWholeFile(at, "keep", temp, bytes("theirs"), { ...options, noClobber: true }),
        "exists",
      );
      assert.throws(
        () => writeWholeFile(at, "new", temp, bytes("short?"), options),
        (err: { code?: string }) => err.code === "EIO",
      );
    } finally {
      c.close = close;
    }
    assert.equal(await Deno.readTextFile(at("keep")), "precious");
    assert.deepEqual(await names(dir.path), ["keep"]);
  },
});
