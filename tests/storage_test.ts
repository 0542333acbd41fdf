/** The storage contract, run against every backend ferry has. */

import assert from "node:assert/strict";
import { connect, serve } from "../mod.ts";
import { storageConformance } from "../lib/storage/conformance.ts";
import { LocalStorage } from "../lib/storage/local/local_storage.ts";
import { MemoryStorage } from "../lib/storage/memory/memory_storage.ts";
import { QuotaStorage } from "../lib/storage/quota.ts";
import { sha256, xxh128 } from "./helpers.ts";

storageConformance("local disk", async () => {
  const root = await Deno.makeTempDir({ prefix: "ferry-storage-" });
  return {
    storage: await LocalStorage.open(root),
    close: () => Deno.remove(root, { recursive: true }),
  };
});

storageConformance("memory", () => Promise.resolve({ storage: new MemoryStorage() }));

// The quota is a wrapper: around any backend, it must keep the contract too.
storageConformance("memory, under a quota", async () => ({
  storage: await QuotaStorage.wrap(new MemoryStorage(), 1 << 30),
}));

Deno.test("ferryd serves a MemoryStorage through the same service and protocol", async () => {
  const server = await serve({ storage: new MemoryStorage(), port: 0, log: () => {}, quota: 100 });
  const client = await connect(`127.0.0.1:${server.addr.port}`);
  try {
    assert.equal(server.location, "memory");
    assert.equal(server.root, undefined, "no local root");
    const body = new TextEncoder().encode("hello");
    const put = await client.put(new Blob([body]).stream(), "d/hello.txt", { size: 5 });
    assert.equal(put.checksum.hex, xxh128(body));
    assert.deepEqual((await client.list("d")).map((e) => e.name), ["hello.txt"]);
    assert.equal((await client.sum("d/hello.txt")).digest.hex, sha256(body));
    const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
    const [, text] = await Promise.all([
      client.get("d/hello.txt", writable),
      new Response(readable).text(),
    ]);
    assert.equal(text, "hello");
    await assert.rejects(
      client.put(new Blob([new Uint8Array(200)]).stream(), "big", { size: 200 }),
      /over quota/,
    );
    assert.equal(await client.move("d/hello.txt", "e.txt"), "e.txt");
    await client.remove("d");
    assert.deepEqual((await client.list("")).map((e) => e.name), ["e.txt"]);
  } finally {
    await client.close();
    await server.close();
  }
});
