/** The library API (mod.ts): every client method, streams, errors and aborts, and serve(). */

import assert from "node:assert/strict";
import { join } from "node:path";
import { connect, type FerryClient, FerryError, serve } from "../mod.ts";
import { listTree, randomBytes, sha256, tempDir, xxh128 } from "./helpers.ts";

const MiB = 1024 * 1024;

async function rejectsWith(promise: Promise<unknown>, code: string): Promise<FerryError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof FerryError, String(err));
    assert.equal(err.code, code, err.message);
    return err;
  }
  assert.fail(`expected ${code}`);
}

/** A server on a temp root and a client connected to it, both closed on dispose. */
async function setup(options: Parameters<typeof serve>[0] = {}) {
  const root = await Deno.makeTempDir({ prefix: "ferry-root-" });
  const server = await serve({ root, port: 0, log: () => {}, ...options });
  const client = await connect({ hostname: "127.0.0.1", port: server.addr.port });
  return {
    root,
    server,
    client,
    async [Symbol.asyncDispose]() {
      await client.close();
      await server.close();
      await Deno.remove(root, { recursive: true });
    },
  };
}

async function collect(stream: ReadableStream<Uint8Array>): Promise<Uint8Array> {
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

Deno.test("serve() binds, reports its address and root, and close() ends it", async () => {
  const root = await Deno.makeTempDir();
  const server = await serve({ root, port: 0, log: () => {} });
  assert.equal(server.addr.hostname, "127.0.0.1");
  assert.ok(server.addr.port > 0);
  assert.equal(server.root, await Deno.realPath(root));
  assert.equal(server.fingerprint, undefined);
  await server.close();
  await server.finished;
  await rejectsWith(connect(`127.0.0.1:${server.addr.port}`, { timeoutMs: 2000 }), "CONNECT");
  await Deno.remove(root);
});

Deno.test("every client method, with its answers", async () => {
  await using t = await setup();
  const { client, root } = t;
  await using local = await tempDir();
  const content = randomBytes(300_000);
  await Deno.writeFile(join(local.path, "a.bin"), content);

  const put = await client.put(join(local.path, "a.bin"), "dir/a.bin");
  assert.deepEqual([put.bytes, put.resumed, put.checksum.hex, put.sha256], [
    content.length,
    0,
    xxh128(content),
    undefined,
  ]);
  await client.mkdir("dir/sub/deeper", { parents: true });
  await client.mkdir("empty");
  assert.deepEqual((await client.list("")).map((e) => [e.name, e.type]), [
    ["dir", "dir"],
    ["empty", "dir"],
  ]);
  assert.deepEqual(
    (await client.list("dir", { recursive: true })).map((e) => e.name),
    ["a.bin", "sub", "sub/deeper"],
  );
  assert.deepEqual((await client.glob("dir/*.bin")).map((e) => e.name), ["dir/a.bin"]);
  const entry = await client.stat("dir/a.bin");
  assert.deepEqual([entry.name, entry.type, entry.size], ["a.bin", "file", content.length]);
  assert.deepEqual(await client.sum("dir/a.bin"), {
    digest: { algorithm: "sha256", hex: sha256(content) },
    size: content.length,
  });
  assert.deepEqual(await client.sum("dir/a.bin", "xxh128"), {
    digest: { algorithm: "xxh128", hex: xxh128(content) },
    size: content.length,
  });

  const got = await client.get("dir/a.bin", join(local.path, "b.bin"));
  assert.equal(got.checksum.hex, xxh128(content));
  assert.deepEqual(await Deno.readFile(join(local.path, "b.bin")), content);

  assert.equal(await client.move("dir/a.bin", "empty"), "empty/a.bin");
  await client.remove("dir", { recursive: true });
  assert.deepEqual(await listTree(root), ["empty", "empty/a.bin"]);

  // Concurrent calls are pipelined on the one connection and all answered.
  const stats = await Promise.all(Array.from({ length: 50 }, () => client.stat("empty/a.bin")));
  assert.equal(stats.length, 50);
});

Deno.test("streams: put from a ReadableStream of odd chunks, get into a WritableStream", async () => {
  await using t = await setup();
  const content = randomBytes(3 * MiB + 17);
  let at = 0;
  const source = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (at >= content.length) return controller.close();
      const n = Math.min(1 + Math.floor(Math.random() * 100_000), content.length - at);
      controller.enqueue(content.slice(at, at += n));
    },
  });
  const mtime = Date.UTC(2024, 0, 2);
  const put = await t.client.put(source, "s.bin", { size: content.length, mode: 0o600, mtime });
  assert.equal(put.checksum.hex, xxh128(content));
  const info = await Deno.stat(join(t.root, "s.bin"));
  assert.deepEqual([info.size, info.mode! & 0o777, info.mtime?.getTime()], [
    content.length,
    0o600,
    mtime,
  ]);

  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const [got, bytes] = await Promise.all([t.client.get("s.bin", writable), collect(readable)]);
  assert.equal(got.checksum.hex, xxh128(content));
  assert.deepEqual(bytes, content);

  // A stream of unknown size goes whole, its size and hash in the trailer; one that ends
  // before the size it announced fails, and nothing is stored.
  const unsized = await t.client.put(new Blob([content]).stream(), "u.bin");
  assert.deepEqual([unsized.bytes, unsized.checksum.hex], [content.length, xxh128(content)]);
  assert.deepEqual(await Deno.readFile(join(t.root, "u.bin")), content);
  await rejectsWith(t.client.put(new Blob([content]).stream(), "u.bin", { size: -1 }), "USAGE");
  await rejectsWith(
    t.client.put(new Blob([content.slice(0, 10)]).stream(), "x.bin", { size: 20 }),
    "IO",
  );
  assert.deepEqual(await listTree(t.root), ["s.bin", "u.bin"]);
});

Deno.test("errors carry stable codes and leave the connection usable", async () => {
  await using t = await setup();
  const { client } = t;
  await using local = await tempDir();
  await rejectsWith(client.stat("missing"), "NOT_FOUND");
  await rejectsWith(client.get("missing", join(local.path, "m")), "NOT_FOUND");
  await rejectsWith(client.list("../etc"), "PATH_REFUSED");
  await rejectsWith(client.mkdir("a/b"), "NOT_FOUND");
  await rejectsWith(client.remove(""), "PATH_REFUSED");
  await rejectsWith(client.put(join(local.path, "nope"), "x"), "NOT_FOUND");
  await client.mkdir("d");
  await rejectsWith(client.get("d", join(local.path, "d")), "NOT_A_FILE");
  await Deno.writeTextFile(join(local.path, "f"), "f");
  await client.put(join(local.path, "f"), "f");
  await rejectsWith(client.put(join(local.path, "f"), "f", { noClobber: true }), "EXISTS");
  assert.equal((await client.stat("f")).size, 1, "still usable after the errors");
  assert.deepEqual(await listTree(local.path), ["f"], "no temporary files left");
});

Deno.test("abort: an upload stops and the connection goes on; a download closes it", async () => {
  await using t = await setup();
  await using local = await tempDir();
  const big = join(local.path, "big.bin");
  const block = randomBytes(MiB);
  {
    using file = await Deno.open(big, { write: true, create: true });
    for (let i = 0; i < 128; i++) file.writeSync(block);
  }

  const before = new AbortController();
  before.abort();
  await rejectsWith(t.client.put(big, "big.bin", { signal: before.signal }), "CANCELLED");

  const up = new AbortController();
  const upload = t.client.put(big, "big.bin", {
    signal: up.signal,
    onProgress: (n) => n > 8 * MiB && up.abort(),
  });
  await rejectsWith(upload, "CANCELLED");
  assert.deepEqual(await listTree(t.root), [], "the aborted upload left nothing");
  assert.deepEqual(await t.client.list(""), [], "the connection is still usable");

  await t.client.put(big, "big.bin");
  const down = new AbortController();
  const download = t.client.get("big.bin", join(local.path, "copy.bin"), {
    signal: down.signal,
    onProgress: (n) => n > 8 * MiB && down.abort(),
  });
  const other = t.client.stat("big.bin").catch((err) => err);
  await rejectsWith(download, "CANCELLED");
  assert.deepEqual(await listTree(local.path), ["big.bin"], "no temporary file left");
  assert.ok(t.client.failure, "the connection was closed");
  const late = await other;
  assert.ok(late instanceof FerryError, "the request queued behind the download failed too");
  assert.equal(late.code, "CANCELLED");
});

Deno.test("connect() with a token; the server's scopes apply", async () => {
  const token = "api-test-token-0123456789";
  const root = await Deno.makeTempDir({ prefix: "ferry-root-" });
  const server = await serve({
    root,
    port: 0,
    log: () => {},
    tokens: [{ token, scope: "read" }],
    authDelayMs: 10,
  });
  const address = { hostname: "127.0.0.1", port: server.addr.port };
  try {
    await rejectsWith(connect(address), "AUTH");
    await rejectsWith(connect(address, { token: "wrong-token-0123456789" }), "AUTH");
    const reader: FerryClient = await connect(address, { token });
    assert.deepEqual(await reader.list(""), []);
    await rejectsWith(reader.mkdir("d"), "PERMISSION");
    await reader.close();
  } finally {
    await server.close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("abort ends a transfer stalled on the caller's own stream", async () => {
  await using t = await setup();
  const stalled = new ReadableStream<Uint8Array>({
    start(controller) {
      controller.enqueue(new Uint8Array(1000));
    },
  });
  const started = Date.now();
  const upload = t.client.put(stalled, "s.bin", {
    size: 1_000_000,
    signal: AbortSignal.timeout(300),
  });
  await rejectsWith(upload, "CANCELLED");
  assert.ok(Date.now() - started < 5000, "the stalled upload ended with the abort");
  assert.deepEqual(await t.client.list(""), [], "nothing stored; the connection goes on");

  await Deno.writeFile(join(t.root, "big.bin"), randomBytes(8 * MiB));
  const never = new WritableStream<Uint8Array>({ write: () => new Promise(() => {}) });
  const download = t.client.get("big.bin", never, { signal: AbortSignal.timeout(300) });
  await rejectsWith(download, "CANCELLED");
  assert.ok(Date.now() - started < 10_000, "the stalled download ended with the abort");
});

Deno.test("on a SHA-256 connection a resumable get still leaves in order, and hears an abort", async () => {
  // In a fresh process, where nothing has loaded XXH3-128 yet (a download's partial is named by
  // it whatever the connection checks with): a get that waited for it would be overtaken by
  // the remove sent after it, and an abort made meanwhile would go unheard.
  const code = `
    import { connect, serve } from "./mod.ts";
    const root = await Deno.makeTempDir();
    Deno.writeTextFileSync(root + "/f.txt", "hello");
    Deno.writeFileSync(root + "/big", new Uint8Array(4 << 20));
    const server = await serve({ root, port: 0, checksums: ["sha256"], log: () => {} });
    const local = await Deno.makeTempDir();
    const client = await connect({ hostname: "127.0.0.1", port: server.addr.port }, {
      checksum: "sha256",
    });
    const [got, removed] = await Promise.allSettled([
      client.get("f.txt", local + "/f.txt", { resume: true }),
      client.remove("f.txt"),
    ]);
    const ac = new AbortController();
    const late = client.get("big", local + "/big", { resume: true, signal: ac.signal });
    ac.abort();
    const aborted = await late.then(() => "completed", (e) => e.code);
    await client.close().catch(() => {});
    await server.close();
    console.log(JSON.stringify({ got: got.status, removed: removed.status, aborted }));
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", code],
    cwd: new URL("..", import.meta.url).pathname,
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  assert.deepEqual(
    JSON.parse(text || "{}"),
    { got: "fulfilled", removed: "fulfilled", aborted: "CANCELLED" },
    new TextDecoder().decode(out.stderr),
  );
});
