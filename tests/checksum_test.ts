// The negotiated transfer checksum: XXH3-128 by default, SHA-256 on request,
// both implementations of XXH3-128 giving the same values, and peers of another
// protocol version told so in one line.

import assert from "node:assert/strict";
import { join } from "node:path";
import { PROTOCOL_VERSION } from "../lib/commands.ts";
import { decodeMessage, DEFAULT_LIMITS, FrameType } from "../lib/frame.ts";
import { FrameConn } from "../lib/wire/frame_conn.ts";
import { connect } from "../mod.ts";
import {
  cuttingProxy,
  inProcessServer,
  randomBytes,
  readMessage,
  runClient,
  sha256,
  startServer,
  tempDir,
  waitFor,
  xxh128,
} from "./helpers.ts";

// deno-lint-ignore no-explicit-any
function rows(stdout: string): Record<string, any>[] {
  return stdout.trim().split("\n").filter((l) => l !== "").map((l) => JSON.parse(l));
}

/** Without --allow-ffi the native addon cannot load: the WebAssembly one runs. */
const MiB = 1024 * 1024;

const WITHOUT_FFI = ["--allow-env", "--allow-net", "--allow-read", "--allow-write"];

Deno.test("XXH3-128 by default, SHA-256 when the client asks or the server prefers it", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const content = randomBytes(3 * MiB + 7);
  await Deno.writeFile(join(local.path, "a.bin"), content);
  const run = (...args: string[]) => runClient(server.address, args, { cwd: local.path });

  const fast = await run("--json", "put", "a.bin", "fast.bin");
  assert.equal(fast.code, 0, fast.stderr);
  assert.deepEqual(rows(fast.stdout)[0].checksum, { xxh128: xxh128(content) });
  assert.equal("sha256" in rows(fast.stdout)[0], false);

  const strong = await run("--json", "--checksum", "sha256", "get", "fast.bin", "b.bin");
  assert.equal(strong.code, 0, strong.stderr);
  const row = rows(strong.stdout)[0];
  assert.deepEqual([row.checksum, row.sha256], [{ sha256: sha256(content) }, sha256(content)]);
  assert.deepEqual(await Deno.readFile(join(local.path, "b.bin")), content);

  // The environment says the same; `sum` is SHA-256 unless --xxh128.
  const env = await runClient(server.address, ["--json", "get", "fast.bin", "c.bin"], {
    cwd: local.path,
    env: { FERRY_CHECKSUM: "sha256" },
  });
  assert.deepEqual(rows(env.stdout)[0].checksum, { sha256: sha256(content) });
  assert.equal((await run("sum", "fast.bin")).stdout, `${sha256(content)}  fast.bin\n`);
  assert.equal((await run("sum", "--xxh128", "fast.bin")).stdout, `${xxh128(content)}  fast.bin\n`);

  const bad = await run("--checksum", "md5", "ls");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown checksum 'md5' \(known: xxh128, sha256\)/);

  await using strict = await startServer({ args: ["--checksum", "sha256,xxh128"] });
  const preferred = await runClient(strict.address, ["--json", "put", "a.bin", "s.bin"], {
    cwd: local.path,
  });
  assert.deepEqual(rows(preferred.stdout)[0].checksum, { sha256: sha256(content) });
});

Deno.test("no checksum in common: one clear line, exit 2", async () => {
  await using server = await startServer({ args: ["--checksum", "xxh128"] });
  const run = await runClient(server.address, ["--checksum", "sha256", "ls"]);
  assert.equal(run.code, 2, run.stderr);
  assert.equal(
    run.stderr,
    "ferry: no checksum in common: the client offers sha256, this server accepts xxh128\n",
  );
  await waitFor(() => /checksums/.test(server.log()), 10_000, "the checksums line");
  assert.match(server.log(), /checksums xxh128 \(native\)/);
});

Deno.test("native and WebAssembly XXH3-128 agree, across a transfer and its resume", async () => {
  // ferryd without --allow-ffi computes XXH3-128 in WebAssembly; the client natively.
  await using server = await startServer({ flags: WITHOUT_FFI });
  await waitFor(() => /checksums/.test(server.log()), 10_000, "the checksums line");
  assert.match(server.log(), /checksums xxh128 \(wasm\), sha256/);
  await using local = await tempDir();
  const sizes = [0, 1, 4096, 3 * MiB + 1];
  for (const size of sizes) {
    const content = randomBytes(size);
    const name = `f${size}.bin`;
    await Deno.writeFile(join(local.path, name), content);
    const put = await runClient(server.address, ["--json", "put", name], { cwd: local.path });
    assert.equal(put.code, 0, put.stderr);
    assert.deepEqual(rows(put.stdout)[0].checksum, { xxh128: xxh128(content) });
    // And back, with a WebAssembly client too.
    const get = await runClient(server.address, ["--json", "get", name, `back-${name}`], {
      cwd: local.path,
      flags: WITHOUT_FFI,
      env: { FERRY_XXH128: "wasm" },
    });
    assert.equal(get.code, 0, get.stderr);
    assert.deepEqual(rows(get.stdout)[0].checksum, { xxh128: xxh128(content) });
    assert.deepEqual(await Deno.readFile(join(local.path, `back-${name}`)), content);
  }
  // An interrupted get and put, retried: each resumes, and the prefix's XXH3-128 computed by
  // one implementation is checked by the other.
  const size = 4 * MiB;
  const content = randomBytes(size);
  await Deno.writeFile(join(server.root, "big.bin"), content);
  await Deno.writeFile(join(local.path, "up.bin"), content);
  for (const args of [["get", "big.bin"], ["put", "up.bin", "up.bin"]]) {
    const proxy = cuttingProxy(server.port, { cutAfter: MiB, cuts: 1 });
    const run = await runClient(proxy.address, ["--json", ...args], { cwd: local.path });
    await proxy.close();
    assert.equal(run.code, 0, run.stderr);
    const row = rows(run.stdout)[0];
    assert.ok(row.resumed > 0 && row.attempts === 2, `${args[0]} resumed: ${run.stdout}`);
    assert.deepEqual(row.checksum, { xxh128: xxh128(content) });
  }
  assert.deepEqual(await Deno.readFile(join(local.path, "big.bin")), content);
  assert.deepEqual(await Deno.readFile(join(server.root, "up.bin")), content);

  // FERRY_XXH128=wasm chooses the fallback even where the addon would load.
  const forced = await runClient(server.address, ["--version"], {
    env: { FERRY_XXH128: "wasm" },
  });
  assert.match(forced.stdout, /xxh128 wasm/);
});

Deno.test("many hashers at once share the one WebAssembly instance without mixing", async () => {
  // In one process with the WebAssembly XXH3-128: hashers fed in turn, one peeked while
  // another holds the instance, one made before another's digest, each checked against a
  // one-shot value; and a hasher used after its digest throws.
  const code = `
    import { hasher, loadAlgorithm } from "./lib/checksum/checksum.ts";
    import { createXXHash128 } from "hash-wasm";
    if (await loadAlgorithm("xxh128") !== "wasm") throw new Error("not wasm");
    const ref = await createXXHash128();
    const oneShot = (parts) => { ref.init(); for (const p of parts) ref.update(p); return ref.digest("hex"); };
    const chunk = (i, n) => Uint8Array.from({ length: n }, (_, k) => (i * 31 + k * 7) & 255);
    const hs = Array.from({ length: 5 }, () => hasher("xxh128"));
    const fed = hs.map(() => []);
    for (let round = 0; round < 7; round++) {
      for (let i = 0; i < hs.length; i++) {
        const c = chunk(i + round, 1000 + i * 77 + round);
        hs[i].update(c); fed[i].push(c);
        if ((i + round) % 3 === 0 && hs[i].peek().hex !== oneShot(fed[i])) throw new Error("peek " + i);
      }
    }
    const late = hasher("xxh128");
    if (hs[0].digest().hex !== oneShot(fed[0])) throw new Error("digest 0");
    late.update(chunk(9, 500));
    for (let i = 1; i < hs.length; i++) if (hs[i].digest().hex !== oneShot(fed[i])) throw new Error("digest " + i);
    if (late.digest().hex !== oneShot([chunk(9, 500)])) throw new Error("late");
    let threw = false;
    try { hs[0].update(chunk(1, 1)); } catch { threw = true; }
    if (!threw) throw new Error("used after digest");
    console.log("ok");
  `;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", code],
    env: { FERRY_XXH128: "wasm", NO_COLOR: "1" },
    cwd: new URL("..", import.meta.url).pathname,
  }).output();
  const dec = new TextDecoder();
  assert.equal(dec.decode(out.stdout).trim(), "ok", dec.decode(out.stderr));
});

Deno.test("the native XXH3-128, through FFI and through Node-API, gives hash-wasm's values", async () => {
  // On Linux the prebuilt library's own C functions are called through FFI (FERRY_XXH128 unset);
  // FERRY_XXH128=node-api loads it as the addon. Each in a process of its own, on the sizes where
  // XXH3's code paths change, fed in one piece and in two with a peek between, one-shot, and
  // with hashers made after others were digested (the pooled states must start afresh).
  const code = `
    import { hasher, hashBytes, loadAlgorithm } from "./lib/checksum/checksum.ts";
    import { xxh128Binding } from "./lib/checksum/xxh128.ts";
    import { createXXHash128 } from "hash-wasm";
    if (await loadAlgorithm("xxh128") !== "native") throw new Error("not native");
    const ref = await createXXHash128();
    const want = (b) => { ref.init(); ref.update(b); return ref.digest("hex"); };
    const sizes = [0, 1, 3, 16, 17, 128, 129, 240, 241, 1024, 4096, 100003, 3 * 1048576 + 5];
    for (const round of [0, 1]) {
      for (const n of sizes) {
        const b = Uint8Array.from({ length: n }, (_, k) => (k * 131 + n + round) & 255);
        if (hashBytes("xxh128", b) !== want(b)) throw new Error("one-shot " + n);
        const h = hasher("xxh128");
        h.update(b.subarray(0, n >> 1));
        if (h.peek().hex !== want(b.subarray(0, n >> 1))) throw new Error("peek " + n);
        h.update(b.subarray(n >> 1));
        if (h.digest().hex !== want(b)) throw new Error("digest " + n);
      }
    }
    // More hashers at once than the pool keeps: those it has no room for are freed, and every
    // one still gives its own value.
    const many = Array.from({ length: 100 }, (_, i) => {
      const h = hasher("xxh128");
      h.update(Uint8Array.of(i, i + 1));
      return h;
    });
    for (const [i, h] of many.entries()) {
      if (h.digest().hex !== want(Uint8Array.of(i, i + 1))) throw new Error("many " + i);
    }
    if (hashBytes("xxh128", Uint8Array.of(7)) !== want(Uint8Array.of(7))) throw new Error("after");
    console.log(xxh128Binding());
  `;
  const expected = Deno.build.os === "linux" && Deno.build.env !== "musl" ? "ffi" : "node-api";
  for (const [choice, binding] of [["", expected], ["node-api", "node-api"]]) {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--ext=ts", code],
      env: { FERRY_XXH128: choice, NO_COLOR: "1" },
      cwd: new URL("..", import.meta.url).pathname,
    }).output();
    const dec = new TextDecoder();
    assert.equal(dec.decode(out.stdout).trim(), binding, dec.decode(out.stderr));
  }
});

Deno.test("concurrent uploads into a WebAssembly ferryd are each verified", async () => {
  await using server = await startServer({ flags: WITHOUT_FFI });
  await using local = await tempDir();
  // Four clients at once: ferryd's sessions hash their bodies in one shared instance, chunk by
  // chunk in turn.
  const files = Array.from({ length: 4 }, (_, i) => randomBytes(3 * MiB + i * 1000));
  for (const [i, content] of files.entries()) {
    await Deno.writeFile(join(local.path, `c${i}.bin`), content);
  }
  const runs = await Promise.all(
    files.map((_, i) =>
      runClient(server.address, ["--json", "put", `c${i}.bin`], { cwd: local.path })
    ),
  );
  for (const [i, run] of runs.entries()) {
    assert.equal(run.code, 0, run.stderr);
    assert.deepEqual(rows(run.stdout)[0].checksum, { xxh128: xxh128(files[i]) });
    assert.deepEqual(await Deno.readFile(join(server.root, `c${i}.bin`)), files[i]);
  }
});

Deno.test("the library negotiates too, and sum takes either algorithm", async () => {
  await using ferryd = await inProcessServer({ checksums: ["sha256", "xxh128"] });
  const content = randomBytes(100_000);
  const client = await connect(`127.0.0.1:${ferryd.port}`, { checksum: "xxh128" });
  try {
    assert.equal(client.welcome.checksum, "xxh128", "the server's first that the client offers");
    const put = await client.put(new Blob([content]).stream(), "x.bin", { size: content.length });
    assert.deepEqual(put.checksum, { algorithm: "xxh128", hex: xxh128(content) });
    assert.equal(put.sha256, undefined);
    assert.equal((await client.sum("x.bin", "xxh128")).digest.hex, xxh128(content));
    assert.equal((await client.sum("x.bin")).digest.hex, sha256(content));
  } finally {
    await client.close();
  }
  const preferring = await connect(`127.0.0.1:${ferryd.port}`);
  try {
    assert.equal(preferring.welcome.checksum, "sha256", "the server's preference wins");
  } finally {
    await preferring.close();
  }
});

Deno.test("a peer of another protocol version gets one line naming both versions", async () => {
  await using ferryd = await inProcessServer();
  // An old client says HELLO with version 1.
  const fc = new FrameConn(await Deno.connect({ hostname: "127.0.0.1", port: ferryd.port }));
  await fc.sendMessage(FrameType.HELLO, 0, { version: 1, agent: "ferry/0.0.9" });
  const error = await readMessage(fc);
  fc.close();
  assert.equal(error.type, FrameType.ERROR);
  assert.match(
    String(error.msg.message),
    new RegExp(
      `^the client speaks protocol version 1 and this server \\(ferryd [^)]+\\) ` +
        `version ${PROTOCOL_VERSION}: use client and server of one version$`,
    ),
  );

  // An old server answers with version 1 (and no checksum).
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const serving = (async () => {
    for await (const conn of listener) {
      const fc = new FrameConn(conn);
      const hello = await fc.read();
      assert.equal(decodeMessage(hello!).version, PROTOCOL_VERSION);
      await fc.sendMessage(FrameType.WELCOME, 0, {
        version: 1,
        agent: "ferryd/0.0.9",
        limits: DEFAULT_LIMITS,
      });
      await fc.read().catch(() => {});
      fc.close();
    }
  })();
  const run = await runClient(`127.0.0.1:${(listener.addr as Deno.NetAddr).port}`, ["ls"]);
  listener.close();
  await serving.catch(() => {});
  assert.equal(run.code, 4, run.stderr);
  assert.equal(
    run.stderr.replace(/ferry \d+\.\d+\.\d+/, "ferry X"),
    `ferry: the server (ferryd/0.0.9) speaks protocol version 1 and this client (ferry X) ` +
      `version ${PROTOCOL_VERSION}: use client and server of one version\n`,
  );
});

Deno.test("ferry's own options work after the command too; in the shell they say where they go", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const content = randomBytes(200_000);
  await Deno.writeFile(join(local.path, "a.bin"), content);
  // After the command and its arguments, as with rsync: the checksum and compression apply.
  const late = await runClient(server.address, [
    "--json",
    "put",
    "a.bin",
    "late.bin",
    "-z",
    "--checksum",
    "sha256",
  ], { cwd: local.path });
  assert.equal(late.code, 0, late.stderr);
  assert.deepEqual(rows(late.stdout)[0].checksum, { sha256: sha256(content) });
  // After --, a name that looks like an option is a name.
  await Deno.writeFile(join(local.path, "-z"), content);
  const named = await runClient(server.address, ["put", "--", "-z", "dash.bin"], {
    cwd: local.path,
  });
  assert.equal(named.code, 0, named.stderr);
  assert.deepEqual(await Deno.readFile(join(server.root, "dash.bin")), content);
  // In the shell the connection is open already.
  const shell = await runClient(server.address, [], { stdin: "get -z late.bin x\n" });
  assert.match(
    shell.stderr,
    /-z is an option of ferry itself: give it when starting ferry \(ferry -z \.\.\.\)/,
  );
  const help = await runClient(server.address, ["--help"]);
  assert.match(help.stdout, /--checksum NAME/);
  assert.match(help.stdout, /-z, --compress/);
});
