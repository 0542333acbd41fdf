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
  CACHE_FRESH_MS,
  CACHED_FILE_MAX,
  SmallFileCache,
} from "../lib/storage/local/small_file_cache.ts";
import { identityOf } from "../lib/storage/local/file_version.ts";
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
  await Deno.symlink("a.txt", join(root, "link.txt"));
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

    // Over the size kept, changed just now, or reached through a symlink: opened each time.
    await read(storage, "big.txt");
    await read(storage, "big.txt");
    await read(storage, "new.txt");
    await read(storage, "new.txt");
    assert.equal(await read(storage, "link.txt"), "one");
    assert.equal(await read(storage, "link.txt"), "one");
    assert.equal(opens(), 7);
    // A second after the read, it is read again.
    await new Promise((r) => setTimeout(r, CACHE_FRESH_MS + 50));
    assert.equal(await read(storage, "a.txt"), "one");
    assert.equal(opens(), 8);

    // Rewritten in place, the same size, its mtime put back: the change time tells.
    const before = Deno.statSync(join(root, "a.txt"));
    await write("a.txt", "two");
    await Deno.utime(join(root, "a.txt"), before.atime!, before.mtime!);
    assert.equal(await read(storage, "a.txt"), "two");
    assert.equal(opens(), 9);

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

Deno.test("SmallFileCache: bounded in bytes and entries, each entry for a second", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "f");
  await Deno.writeTextFile(path, "f");
  const info = Deno.statSync(path);
  const identity = identityOf(info)!;
  const entry = (size: number, readAt = 0) => ({
    data: new Uint8Array(size),
    identity,
    version: "v",
    mtime: 0,
    mode: 0o644,
    readAt,
  });
  // What an entry of `size` bytes at a one-letter path costs, bookkeeping included.
  const probe = new SmallFileCache();
  probe.keep("a", entry(0));
  const overhead = probe.bytes;
  assert.ok(overhead > 100, "an empty file costs its bookkeeping");

  const cache = new SmallFileCache(2 * overhead + 100);
  cache.keep("a", entry(40));
  cache.keep("b", entry(40));
  cache.keep("a", entry(30)); // replaced, and now the newest
  assert.equal(cache.bytes, 2 * overhead + 70);
  cache.keep("c", entry(40)); // over: the oldest goes
  assert.deepEqual([cache.has("a"), cache.has("b"), cache.has("c")], [true, false, true]);
  cache.keep("d", entry(2 * overhead + 101)); // larger than the whole cache: not kept
  assert.equal(cache.has("d"), false);
  assert.ok(cache.lookup("a", info, 999));
  // A second after the read, or another file's stat: a miss, and the entry goes.
  assert.equal(cache.lookup("a", info, 1000), undefined);
  assert.equal(cache.has("a"), false);
  assert.equal(cache.lookup("c", Deno.statSync(dir.path), 0), undefined);
  assert.equal(cache.bytes, 0);

  // Empty files count: the number of entries is bounded too.
  const few = new SmallFileCache(1 << 20, 3);
  for (const name of ["a", "b", "c", "d"]) few.keep(name, entry(0));
  assert.equal(few.size, 3);
  assert.equal(few.has("a"), false);
  // Entries past their second go when a newer one is kept.
  few.keep("e", entry(0, 1000));
  assert.deepEqual([few.size, few.has("e")], [1, true]);
});

/** Stores through a shared mapping of a file, step by step, in python3 (Deno has no mmap). */
const MAPPER = `
import mmap, sys
f = open(sys.argv[1], "r+b")
m = mmap.mmap(f.fileno(), 0)
m[0:4] = b"BBBB"
print("mapped", flush=True)
sys.stdin.readline()
m[0:4] = b"CCCC"
m.flush()
print("stored", flush=True)
sys.stdin.readline()
`;

const python = await new Deno.Command("python3", { args: ["--version"], stdout: "null" }).output()
  .then((o) => o.success, () => false);

Deno.test({
  name: "LocalStorage: bytes stored through a shared mapping, which moves no time, are read again",
  ignore: !python,
  async fn() {
    await using dir = await tempDir();
    const path = join(dir.path, "m.txt");
    await Deno.writeTextFile(path, "A".repeat(4096));
    const mapper = new Deno.Command("python3", {
      args: ["-c", MAPPER, path],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const lines = mapper.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const writer = mapper.stdin.getWriter();
    let pending = "";
    /** The mapper's next line, which must be `line` (chunks do not follow lines). */
    const expect = async (line: string) => {
      while (!pending.includes("\n")) {
        const { value, done } = await lines.read();
        if (done) break;
        pending += value;
      }
      const end = pending.indexOf("\n");
      assert.equal(end < 0 ? pending : pending.slice(0, end), line);
      pending = pending.slice(end + 1);
    };
    try {
      await expect("mapped"); // the first store into a clean page stamps the file's times
      await new Promise((r) => setTimeout(r, 2100));
      const storage = await LocalStorage.open(dir.path);
      assert.equal((await read(storage, "m.txt")).slice(0, 4), "BBBB");
      const before = Deno.statSync(path);
      await writer.write(new TextEncoder().encode("go\n"));
      await expect("stored"); // a store into the same dirty page stamps nothing
      const after = Deno.statSync(path);
      assert.equal(after.ctime?.getTime(), before.ctime?.getTime(), "no new change time");
      assert.equal(after.mtime?.getTime(), before.mtime?.getTime(), "no new modification time");
      await new Promise((r) => setTimeout(r, CACHE_FRESH_MS + 50));
      assert.equal((await read(storage, "m.txt")).slice(0, 4), "CCCC");
    } finally {
      await writer.close();
      await lines.cancel();
      await mapper.status;
    }
  },
});
