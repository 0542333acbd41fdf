/** Integration: hostile and broken peers never take the server down. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { connect, serve } from "../mod.ts";
import { PROTOCOL_VERSION } from "../lib/commands.ts";
import { DEFAULT_LIMITS, FrameType, HEADER_SIZE } from "../lib/frame.ts";
import { FrameConn } from "../lib/wire/frame_conn.ts";
import {
  concat,
  inProcessServer,
  randomBytes,
  rawSession,
  readMessage,
  runClient,
  sameContent,
  startServer,
  tempDir,
  waitFor,
} from "./helpers.ts";
import { createHash } from "node:crypto";

/** Connect, write `bytes`, end the stream, and return all the server sends until it closes. */
async function sendRaw(port: number, bytes: Uint8Array): Promise<Uint8Array> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await conn.write(bytes).catch(() => 0);
  await conn.closeWrite().catch(() => {});
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(4096);
  for (;;) {
    const n = await conn.read(buf).catch(() => null);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
  }
  conn.close();
  return concat(chunks);
}

async function assertServes(address: string) {
  const run = await runClient(address, ["ls"]);
  assert.equal(run.code, 0, `server no longer serves: ${run.stderr}`);
}

Deno.test("garbage, truncated frames and absurd lengths close that connection only", async () => {
  await using server = await startServer();
  await Deno.writeTextFile(join(server.root, "a.txt"), "a");
  const header = (type: number, length: number) => {
    const h = new Uint8Array(HEADER_SIZE);
    const v = new DataView(h.buffer);
    v.setUint8(0, type);
    v.setUint32(5, length);
    return h;
  };
  const enc = new TextEncoder();
  const attacks: [string, Uint8Array][] = [
    ["http request", enc.encode("GET / HTTP/1.1\r\nHost: x\r\n\r\n")],
    ["random bytes", randomBytes(100_000)],
    ["4 GiB control frame", header(FrameType.HELLO, 0xffffffff)],
    ["oversized data frame", header(FrameType.DATA, DEFAULT_LIMITS.maxData + 1)],
    ["unknown type", header(200, 0)],
    ["truncated hello", header(FrameType.HELLO, 100).subarray(0, 5)],
    ["hello with a cut payload", new Uint8Array([...header(FrameType.HELLO, 100), 123])],
    ["hello that is not JSON", new Uint8Array([...header(FrameType.HELLO, 3), 1, 2, 3])],
  ];
  for (const [what, bytes] of attacks) {
    const answer = await sendRaw(server.port, bytes);
    // What starts like an HTTP method is HTTP's to answer (docs/http.md), in HTTP.
    const http = bytes[0] >= 0x41 && bytes[0] <= 0x5a;
    if (http) assert.match(new TextDecoder().decode(answer.subarray(0, 9)), /^HTTP\/1\.1 /, what);
    else if (answer.length > 0) assert.equal(answer[0], FrameType.ERROR, `${what}: answered ERROR`);
    await assertServes(server.address);
  }
  assert.match(server.log(), /not a ferry client|unknown frame type|exceeds the limit/);
  assert.doesNotMatch(server.log(), /\bat .*\.ts:\d+/, "no stack traces in the log");
});

Deno.test("bad requests get an error reply and the session goes on", async () => {
  await using server = await startServer();
  const fc = await rawSession(server.port);
  const badRequests: [Record<string, unknown>, string][] = [
    [{ op: "rm -rf /" }, "USAGE"],
    [{ op: "get" }, "PROTOCOL"],
    [{ op: "get", path: 42 }, "PROTOCOL"],
    [{ op: "put", path: "x", size: -5 }, "PROTOCOL"],
    [{ op: "get", path: "a\u0000b" }, "PATH_REFUSED"],
    [{ op: "get", path: "x".repeat(5000) }, "PATH_REFUSED"],
  ];
  let id = 1;
  for (const [req, code] of badRequests) {
    await fc.sendMessage(FrameType.REQUEST, id, req);
    const reply = await readMessage(fc);
    assert.deepEqual([reply.type, reply.id, reply.msg.code], [FrameType.ERROR, id, code]);
    id++;
  }
  await fc.sendMessage(FrameType.REQUEST, id, { op: "ls" });
  assert.equal((await readMessage(fc)).type, FrameType.REPLY);
  // A DATA frame for no upload breaks the framing: the server ends the session.
  const buf = new Uint8Array(HEADER_SIZE + 1);
  await fc.sendFramed(FrameType.DATA, 999, buf, 1);
  const fatal = await readMessage(fc);
  assert.deepEqual([fatal.type, fatal.id, fatal.msg.code], [FrameType.ERROR, 0, "PROTOCOL"]);
  assert.equal(await fc.read(), null);
  fc.close();
  await assertServes(server.address);
});

Deno.test("stalled and half-open connections are closed by timeouts", async () => {
  await using ferryd = await inProcessServer({ handshakeTimeoutMs: 200, idleTimeoutMs: 300 });
  const port = ferryd.port;
  // Silent before the handshake, and one byte of a header then nothing.
  const silent = await Deno.connect({ hostname: "127.0.0.1", port });
  const partial = await Deno.connect({ hostname: "127.0.0.1", port });
  await partial.write(new Uint8Array([FrameType.HELLO]));
  // Past the handshake, then idle.
  const idle = await rawSession(port);
  // Meanwhile a good client is served at once.
  const client = await connect({ hostname: "127.0.0.1", port });
  assert.deepEqual(await client.list(""), []);
  await client.close();
  const buf = new Uint8Array(16);
  assert.equal(await silent.read(buf), null, "silent connection closed");
  assert.equal(await partial.read(buf), null, "partial header connection closed");
  assert.equal(await idle.read(), null, "idle session closed");
  silent.close();
  partial.close();
  idle.close();
  assert.ok(ferryd.lines.filter((l) => /TIMEOUT/.test(l)).length >= 3, ferryd.lines.join("\n"));
});

Deno.test("connections over the limit are told the server is busy", async () => {
  await using root = await tempDir();
  const server = await serve({ root: root.path, port: 0, log: () => {}, maxConnections: 1 });
  try {
    const first = await connect({ hostname: "127.0.0.1", port: server.addr.port });
    await assert.rejects(
      () => connect({ hostname: "127.0.0.1", port: server.addr.port }),
      (e: Error & { code?: string }) => e.code === "BUSY",
    );
    await first.close();
  } finally {
    await server.close();
  }
});

Deno.test("several clients at once, each independent", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const n = 8;
  const files = await Promise.all(Array.from({ length: n }, async (_, i) => {
    const path = join(local.path, `f${i}.bin`);
    await Deno.writeFile(path, randomBytes(300_000 + i * 77_777));
    return path;
  }));
  // A client that stalls mid-frame must not hold up the others.
  const staller = new FrameConn(await Deno.connect({ hostname: "127.0.0.1", port: server.port }));
  await staller.write(new Uint8Array([FrameType.HELLO, 0, 0]));
  const puts = await Promise.all(
    files.map((f, i) => runClient(server.address, ["put", f, `f${i}.bin`])),
  );
  for (const run of puts) assert.equal(run.code, 0, run.stderr);
  const gets = await Promise.all(
    files.map((_, i) =>
      runClient(server.address, ["get", `f${i}.bin`, join(local.path, `back${i}.bin`)])
    ),
  );
  for (const run of gets) assert.equal(run.code, 0, run.stderr);
  for (let i = 0; i < n; i++) {
    assert.ok(await sameContent(files[i], join(local.path, `back${i}.bin`)), `file ${i}`);
  }
  staller.close();
});

Deno.test("SIGTERM stops the server cleanly", async () => {
  const server = await startServer();
  const code = await server.stop();
  assert.equal(code, 0);
  assert.match(server.log(), /SIGTERM, shutting down/);
  await server[Symbol.asyncDispose]();
});

Deno.test("SIGTERM lets an upload in flight finish and closes idle connections", async () => {
  await using server = await startServer({ args: ["--shutdown-grace", "20"] });
  const fc = await rawSession(server.port);
  const idle = await rawSession(server.port);
  const body = randomBytes(2 * DEFAULT_LIMITS.maxData);
  const half = DEFAULT_LIMITS.maxData;
  const buf = new Uint8Array(HEADER_SIZE + half);
  await fc.sendMessage(FrameType.REQUEST, 1, { op: "put", path: "late.bin", size: body.length });
  buf.set(body.subarray(0, half), HEADER_SIZE);
  await fc.sendFramed(FrameType.DATA, 1, buf, half);
  // Wait until the server is inside the upload, then signal.
  await waitFor(() => server.log().includes("connected (raw-test)"), 5000, "the sessions");
  await new Promise((r) => setTimeout(r, 100));
  server.process.kill("SIGTERM");
  assert.equal(await idle.read(), null, "the idle connection is closed at once");
  buf.set(body.subarray(half), HEADER_SIZE);
  await fc.sendFramed(FrameType.DATA, 1, buf, half);
  const sha256 = createHash("sha256").update(body).digest("hex");
  await fc.sendMessage(FrameType.END, 1, { sha256 });
  const reply = await readMessage(fc);
  assert.equal(reply.type, FrameType.REPLY, JSON.stringify(reply.msg));
  assert.equal(await fc.read(), null, "then the server hangs up");
  fc.close();
  idle.close();
  assert.equal((await server.process.status).code, 0);
  assert.deepEqual(await Deno.readFile(join(server.root, "late.bin")), body);
  assert.match(server.log(), /waiting up to 20 s for 1 request/);
});

Deno.test("a second signal stops at once and leaves no partial file", async () => {
  await using server = await startServer({ args: ["--shutdown-grace", "60"] });
  const fc = await rawSession(server.port);
  await fc.sendMessage(FrameType.REQUEST, 1, { op: "put", path: "never.bin", size: 100 });
  const buf = new Uint8Array(HEADER_SIZE + 10);
  await fc.sendFramed(FrameType.DATA, 1, buf, 10);
  await waitFor(
    () => [...Deno.readDirSync(server.root)].length > 0,
    5000,
    "the upload to start",
  );
  server.process.kill("SIGTERM");
  await new Promise((r) => setTimeout(r, 200));
  server.process.kill("SIGTERM");
  const started = Date.now();
  assert.equal((await server.process.status).code, 0);
  assert.ok(Date.now() - started < 5000);
  fc.close();
  assert.deepEqual([...Deno.readDirSync(server.root)], []);
  assert.match(server.log(), /SIGTERM again, stopping now/);
});

Deno.test("a peer that breaks the protocol mid-stream still gets the ERROR explaining why", async () => {
  await using ferryd = await inProcessServer();
  for (let round = 0; round < 5; round++) {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: ferryd.port });
    const fc = new FrameConn(conn);
    await fc.sendMessage(FrameType.HELLO, 0, { version: PROTOCOL_VERSION, agent: "breaker" });
    assert.equal((await fc.read())?.type, FrameType.WELCOME);
    // An unknown frame type, then a flood the server will never read: the server drains it
    // before closing, since closing with bytes unread resets the connection.
    const junk = randomBytes(512 * 1024);
    junk.set([0x7f, 0, 0, 0, 1, 0, 0, 0, 0]);
    conn.write(junk).catch(() => {});
    const error = await readMessage(fc);
    assert.deepEqual([error.type, error.id, error.msg.code], [FrameType.ERROR, 0, "PROTOCOL"]);
    fc.close();
  }
});
