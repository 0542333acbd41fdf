import assert from "node:assert/strict";
import { join } from "node:path";
import { connect, LocalStorage } from "../mod.ts";
import { HashCache } from "../lib/server/hash_cache.ts";
import { concat, randomBytes, runClient, sha256, startServer } from "./helpers.ts";

/** Deno reports a file's version only once its ctime (whole seconds) is two seconds old. */
async function untilVersioned(ctime: Date): Promise<void> {
  const wait = ctime.getTime() + 2100 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
}

Deno.test("hash cache: a provisional entry answers only those who can take it", () => {
  const cache = new HashCache();
  cache.set("a", "v1", "aa", { provisional: true });
  assert.equal(cache.get("a", "v1"), undefined);
  assert.equal(cache.get("a", "v1", { provisional: true }), "aa");
  assert.equal(cache.get("a", "v2", { provisional: true }), undefined);
  cache.set("a", "v1", "bb");
  assert.equal(cache.get("a", "v1"), "bb");
  // Removing or moving a directory forgets what was under it.
  cache.set("d/x", "v1", "cc");
  cache.set("d/y/z", "v1", "dd");
  cache.set("dx", "v1", "ee");
  cache.delete("d");
  assert.deepEqual(["d/x", "d/y/z", "dx"].map((p) => cache.get(p, "v1")), [
    undefined,
    undefined,
    "ee",
  ]);
  // A file (below: false) takes only itself; the root takes everything.
  cache.set("f", "v1", "ff");
  cache.delete("f", { below: false });
  assert.deepEqual(["f", "dx"].map((p) => cache.get(p, "v1")), [undefined, "ee"]);
  cache.delete("");
  assert.equal(cache.get("dx", "v1"), undefined);
});

Deno.test("LocalStorage: a committed upload reports the version a later read has", async () => {
  const root = await Deno.makeTempDir();
  try {
    const storage = await LocalStorage.open(root);
    const body = randomBytes(300 * 1024);
    const upload = await storage.createUpload("big.bin", { size: body.length, mtime: 1e12 });
    upload.write(body);
    const version = await upload.commit();
    assert.ok(version);
    await untilVersioned(Deno.statSync(join(root, "big.bin")).ctime!);
    const handle = await storage.openRead("big.bin");
    handle.close();
    assert.equal(handle.version, version);
    // A small file costs less to hash again than to stat after its commit.
    const small = await storage.createUpload("small.bin", { size: 1 });
    small.write(new Uint8Array(1));
    assert.equal(await small.commit(), undefined);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

/**
 * Upload `first` under a new name, then rewrite the stored file in place within the second of
 * its upload, keeping size and mtime: its version (inode, size, mtime, ctime to the second)
 * stays the one ferryd remembered the hash of `first` under. Returns the name, once Deno
 * reports versions for it.
 */
async function staleUpload(
  server: { address: string; root: string },
  src: string,
  second: Uint8Array,
): Promise<string> {
  for (let attempt = 0;; attempt++) {
    const name = `${crypto.randomUUID()}.bin`;
    const client = await connect(server.address);
    await client.put(src, name);
    await client.close();
    const stored = join(server.root, name);
    const before = Deno.statSync(stored);
    using file = Deno.openSync(stored, { write: true });
    for (let rest = second.subarray(0); rest.length > 0;) {
      rest = rest.subarray(file.writeSync(rest));
    }
    file.utimeSync(before.atime!, before.mtime!);
    const ctime = file.statSync().ctime!;
    if (ctime.getTime() === before.ctime!.getTime()) {
      await untilVersioned(ctime);
      return name;
    }
    assert.ok(attempt < 5, "could not rewrite the file within the second of its upload");
  }
}

Deno.test("a download sent with a stale remembered hash is fetched again, hashed as it is sent", async () => {
  await using server = await startServer();
  const dir = await Deno.makeTempDir();
  try {
    const first = randomBytes(300 * 1024);
    const second = randomBytes(first.length);
    const src = join(dir, "src.bin");
    await Deno.writeFile(src, first);
    const name = await staleUpload(server, src, second);
    const out = join(dir, "back.bin");
    const run = await runClient(server.address, ["get", name, out]);
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(await Deno.readFile(out), second);
    assert.match(server.log(), new RegExp(`get ${name} .*hashed anew after a failed check`));
    // A stream has had the bytes before their check, so it is never sent such a hash at all.
    const streamed = await staleUpload(server, src, second);
    const chunks: Uint8Array[] = [];
    const stream = new WritableStream<Uint8Array>({ write: (c) => void chunks.push(c.slice()) });
    const reader = await connect(server.address);
    try {
      await reader.get(streamed, stream);
    } finally {
      await reader.close();
    }
    assert.equal(sha256(concat(chunks)), sha256(second));
    // `sum` answers only from what ferryd hashed itself, never from an upload's hash.
    const client = await connect(server.address);
    try {
      const other = await staleUpload(server, src, second);
      assert.equal((await client.sum(other)).digest.hex, sha256(second));
    } finally {
      await client.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
