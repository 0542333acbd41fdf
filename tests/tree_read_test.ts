/**
 * `readLocalTree`, the walk both ends send a tree with: entries listed,
 * small files opened and read on the spot, and a file that changed between
 * its listing and the end of its read refused (INTEGRITY). Through the C
 * library where it is at hand (`statx`, `openat`, `read`, and `fstat` of the
 * open file after the read), and through Deno's and `node:fs`'s calls where
 * not: every case runs in this process, and again in a child with
 * `FERRY_LIBC=off`.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { readLocalTree } from "../lib/fs/tree_read.ts";
import { plainDirectory } from "../lib/fs/directory.ts";
import { libc } from "../lib/fs/libc.ts";
import type { TreeItem } from "../lib/storage/storage.ts";
import { FerryError } from "../lib/util/errors.ts";
import { rerunWithoutLibc, tempDir, WITHOUT_LIBC_CHILD } from "./helpers.ts";

const CHILD = WITHOUT_LIBC_CHILD;
const way = libc() ? "C library" : "node:fs";

const walk = (root: string) =>
  readLocalTree({ real: root, display: "t", pin: (dir) => plainDirectory(dir) }, 1 << 20);

/** Read every small file as the walk offers it, after `meddle` had its way with it. */
async function readAll(root: string, meddle?: (path: string) => void) {
  const read = new Map<string, string | FerryError>();
  const items: TreeItem[] = [];
  for await (const item of walk(root)) {
    items.push(item);
    if (item.kind !== "file" || !item.read) continue;
    meddle?.(join(root, item.path));
    const into = new Uint8Array(item.size);
    try {
      await item.read(into);
      read.set(item.path, new TextDecoder().decode(into));
    } catch (err) {
      assert.ok(err instanceof FerryError, String(err));
      read.set(item.path, err);
    }
  }
  return { items, read };
}

Deno.test(`tree read (${way}): kinds, modes, mtimes and contents as listed`, async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "t");
  await Deno.mkdir(join(root, "sub"), { recursive: true });
  await Deno.writeTextFile(join(root, "a.txt"), "alpha");
  await Deno.writeTextFile(join(root, "sub", "b.txt"), "beta!");
  await Deno.chmod(join(root, "sub", "b.txt"), 0o640);
  const mtime = new Date(Date.UTC(2021, 5, 7, 8, 9, 10) + 123);
  await Deno.utime(join(root, "a.txt"), mtime, mtime);
  await Deno.symlink("a.txt", join(root, "link"));
  // Before 1970 and between milliseconds: rounded as Deno's own lstat rounds it, both ways.
  await Deno.writeTextFile(join(root, "old.txt"), "old");
  await Deno.utime(join(root, "old.txt"), -1576799999.8765, -1576799999.8765);
  await new Deno.Command("mkfifo", { args: [join(root, "fifo")] }).output();
  const { items, read } = await readAll(root);
  const byPath = new Map(items.map((i) => [i.path, i]));
  assert.deepEqual(
    items.map((i) => `${i.kind} ${i.path}`),
    ["dir ", "file a.txt", "skip fifo", "skip link", "file old.txt", "dir sub", "file sub/b.txt"],
  );
  const a = byPath.get("a.txt") as TreeItem & { kind: "file" };
  assert.equal(a.mtime, mtime.getTime());
  const old = byPath.get("old.txt") as TreeItem & { kind: "file" };
  assert.equal(old.mtime, Deno.lstatSync(join(root, "old.txt")).mtime!.getTime());
  assert.ok(old.mtime < -1576799999000, String(old.mtime));
  assert.equal(a.size, 5);
  assert.equal((byPath.get("sub/b.txt") as TreeItem & { kind: "file" }).mode, 0o640);
  assert.equal((byPath.get("sub") as TreeItem & { kind: "dir" }).mode, 0o755 & ~umask());
  assert.deepEqual([...read.entries()], [
    ["a.txt", "alpha"],
    ["old.txt", "old"],
    ["sub/b.txt", "beta!"],
  ]);
  assert.equal((byPath.get("link") as TreeItem & { kind: "skip" }).skipped, "symlink");
});

function umask(): number {
  const old = Deno.umask(0o022);
  Deno.umask(old);
  return old;
}

Deno.test(`tree read (${way}): a file changed between listing and read is refused`, async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "t");
  await Deno.mkdir(root);
  for (const name of ["grown", "rewritten", "shrunk", "kept"]) {
    await Deno.writeTextFile(join(root, name), "0123456789");
  }
  const past = new Date(Date.now() - 60_000);
  await Deno.utime(join(root, "rewritten"), past, past);
  const { read } = await readAll(root, (path) => {
    if (path.endsWith("grown")) Deno.writeTextFileSync(path, "!", { append: true });
    // The same size, other bytes, a new mtime: only the times tell.
    if (path.endsWith("rewritten")) Deno.writeTextFileSync(path, "abcdefghij");
    if (path.endsWith("shrunk")) Deno.truncateSync(path, 4);
  });
  for (const name of ["grown", "rewritten", "shrunk"]) {
    const got = read.get(name);
    assert.ok(got instanceof FerryError && got.code === "INTEGRITY", `${name}: ${got}`);
    assert.match(got.message, new RegExp(`${name} changed while being sent`));
  }
  assert.equal(read.get("kept"), "0123456789");
});

Deno.test(`tree read (${way}): a file renamed away or removed after its open is read as listed`, async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "t");
  await Deno.mkdir(root);
  await Deno.writeTextFile(join(root, "gone"), "listed bytes");
  await Deno.writeTextFile(join(root, "moved"), "listed too");
  const { read } = await readAll(root, (path) => {
    if (path.endsWith("gone")) Deno.removeSync(path);
    if (path.endsWith("moved")) {
      Deno.renameSync(path, join(dir.path, "elsewhere"));
      Deno.writeTextFileSync(path, "other bytes");
    }
  });
  // What was read is the file that was listed, whole and unchanged: its name is another matter.
  // (Without the C library the name is what is looked up again, and a name gone is refused.)
  const gone = read.get("gone");
  if (libc()) assert.equal(gone, "listed bytes");
  else assert.ok(gone instanceof FerryError && gone.code === "INTEGRITY", String(gone));
  const moved = read.get("moved");
  assert.ok(
    moved === "listed too" || (moved instanceof FerryError && moved.code === "INTEGRITY"),
    String(moved),
  );
});

Deno.test({
  name: "tree read: the same cases pass through Deno's and node:fs's calls (FERRY_LIBC=off)",
  ignore: CHILD,
  async fn() {
    const text = await rerunWithoutLibc(import.meta.url);
    assert.match(text, /tree read \(node:fs\): kinds/);
    assert.match(text, /ok \| 3 passed/);
  },
});
