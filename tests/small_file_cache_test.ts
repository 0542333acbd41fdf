/**
 * The local store's cache of small files: a file read again costs no open
 * while it is the very file that was read, and whatever happened to it
 * since (rewritten in place with its mtime put back, replaced, removed, a
 * symlink out of the root put at its path or at its directory's) is seen.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { FerryError } from "../lib/util/errors.ts";
import { LocalStorage } from "../lib/storage/local/local_storage.ts";
import {
  CACHED_FILE_MAX,
  identityOf,
  SmallFileCache,
} from "../lib/storage/local/small_file_cache.ts";
import { tempDir } from "./helpers.ts";

/** Count Deno.openSync calls while `fn` runs. */
async function countingOpens(fn: (opens: () => number) => Promise<void>): Promise<void> {
  const open = Deno.openSync;
  let count = 0;
  Deno.openSync = (...args: Parameters<typeof open>) => {
    count++;
    return open(...args);
  };
  try {
    await fn(() => count);
  } finally {
    Deno.openSync = open;
  }
}

async function read(storage: LocalStorage, path: string): Promise<string> {
  const handle = await storage.openRead(path);
  try {
    const buf = new Uint8Array(handle.size);
    for (let at = 0; at < buf.length;) at += (await handle.read(buf.subarray(at)))!;
    handle.check?.();
    return new TextDecoder().decode(buf);
  } finally {
    handle.close();
  }
}

const rejectsWith = (p: Promise<unknown>, code: string) =>
  assert.rejects(p, (e) => e instanceof FerryError && e.code === code);

Deno.test("LocalStorage: a small file is read from memory only while it is the same file", async () => {
  await using dir = await tempDir();
  const root = join(dir.path, "root");
  const outside = join(dir.path, "outside");
  await Deno.mkdir(join(root, "d"), { recursive: true });
  await Deno.mkdir(outside);
  const write = (path: string, text: string) => Deno.writeTextFile(join(root, path), text);
  await write("a.txt", "one");
  await write("d/b.txt", "bee");
  await write("c.txt", "sea");
  await write("e.txt", "eee");
  await write("big.txt", "x".repeat(CACHED_FILE_MAX + 1));
  await Deno.writeTextFile(join(outside, "c.txt"), "secret");
  // Deno reports the change time to the second: only a file changed two seconds ago or more
  // can be told apart from its next version, and only such a file is kept.
  await write("new.txt", "new");
  await new Promise((r) => setTimeout(r, 2100));
  await write("new.txt", "new");
  const storage = await LocalStorage.open(root);

  await countingOpens(async (opens) => {
    assert.equal(await read(storage, "a.txt"), "one");
    assert.equal(opens(), 1);
    assert.equal(await read(storage, "a.txt"), "one");
    assert.equal(opens(), 1, "read again without an open");

    // Over the size kept, and changed just now: opened each time.
    await read(storage, "big.txt");
    await read(storage, "big.txt");
    await read(storage, "new.txt");
    await read(storage, "new.txt");
    assert.equal(opens(), 5);

    // Rewritten in place, the same size, its mtime put back: the change time tells.
    const before = Deno.statSync(join(root, "a.txt"));
    await write("a.txt", "two");
    await Deno.utime(join(root, "a.txt"), before.atime!, before.mtime!);
    assert.equal(await read(storage, "a.txt"), "two");
    assert.equal(opens(), 6);

    // Another file renamed over it.
    await write("a.tmp", "six");
    await Deno.rename(join(root, "a.tmp"), join(root, "a.txt"));
    assert.equal(await read(storage, "a.txt"), "six");

    // A symlink out of the root put in its place.
    assert.equal(await read(storage, "c.txt"), "sea");
    await Deno.remove(join(root, "c.txt"));
    await Deno.symlink(join(outside, "c.txt"), join(root, "c.txt"));
    await rejectsWith(storage.openRead("c.txt"), "PATH_REFUSED");

    // Its directory moved out of the root, and a symlink to it left in its place: the file
    // itself is untouched, but its path now leaves the root.
    assert.equal(await read(storage, "d/b.txt"), "bee");
    await Deno.rename(join(root, "d"), join(outside, "d"));
    await Deno.symlink(join(outside, "d"), join(root, "d"));
    await rejectsWith(storage.openRead("d/b.txt"), "PATH_REFUSED");

    // Removed.
    assert.equal(await read(storage, "e.txt"), "eee");
    await Deno.remove(join(root, "e.txt"));
    await rejectsWith(storage.openRead("e.txt"), "NOT_FOUND");
  });
});

Deno.test("SmallFileCache: bounded in bytes, the oldest entries going first", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "f");
  await Deno.writeTextFile(path, "f");
  const info = Deno.statSync(path);
  const entry = (size: number) => ({
    data: new Uint8Array(size),
    identity: identityOf(info)!,
    version: "v",
    mtime: 0,
    mode: 0o644,
  });
  const cache = new SmallFileCache(100);
  cache.keep("a", entry(40));
  cache.keep("b", entry(40));
  cache.keep("a", entry(30)); // replaced, and now the newest
  assert.equal(cache.bytes, 70);
  cache.keep("c", entry(40));
  assert.deepEqual([cache.has("a"), cache.has("b"), cache.has("c")], [true, false, true]);
  assert.equal(cache.bytes, 70);
  cache.keep("d", entry(101)); // larger than the whole cache: not kept
  assert.equal(cache.has("d"), false);
  assert.ok(cache.lookup("a", info));
  // Another file's stat does not match, and the stale entry goes.
  assert.equal(cache.lookup("a", Deno.statSync(dir.path)), undefined);
  assert.equal(cache.has("a"), false);
  cache.forget("c");
  assert.equal(cache.bytes, 0);
});
