import assert from "node:assert/strict";
import {
  decodeMessage,
  DEFAULT_LIMITS,
  encodeMessage,
  type Frame,
  FrameDecoder,
  FrameType,
  HEADER_SIZE,
  writeHeader,
} from "../lib/frame.ts";
import { FerryError } from "../lib/util/errors.ts";
import { type ByteConn, FrameConn } from "../lib/wire/frame_conn.ts";
import { concat, randomBytes } from "./helpers.ts";

function dataFrame(id: number, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + payload.length);
  writeHeader(out, FrameType.DATA, id, payload.length);
  out.set(payload, HEADER_SIZE);
  return out;
}

/** Feed `bytes` in reads of at most `step` bytes, as a socket would, collecting copies of every frame. */
function decodeAll(bytes: Uint8Array, step: number, dec = new FrameDecoder()) {
  const frames: { type: number; id: number; payload: Uint8Array }[] = [];
  let offset = 0;
  const drain = () => {
    let f: Frame | undefined;
    while ((f = dec.next())) frames.push({ type: f.type, id: f.id, payload: f.payload.slice() });
  };
  while (offset < bytes.length) {
    const space = dec.space();
    const n = Math.min(step, space.length, bytes.length - offset);
    space.set(bytes.subarray(offset, offset + n));
    dec.commit(n);
    offset += n;
    drain();
  }
  return frames;
}

const sample = () => {
  const big = randomBytes(DEFAULT_LIMITS.maxData);
  const parts = [
    encodeMessage(FrameType.HELLO, 0, { version: 1 }),
    encodeMessage(FrameType.REQUEST, 1, { op: "put", path: "ä b.txt", size: 3 }),
    dataFrame(1, new Uint8Array([1, 2, 3])),
    dataFrame(1, new Uint8Array(0)),
    dataFrame(2, big),
    encodeMessage(FrameType.END, 2, { sha256: "0".repeat(64) }),
  ];
  return { bytes: concat(parts), big };
};

Deno.test("frame: many frames in one read", () => {
  const { bytes, big } = sample();
  const frames = decodeAll(bytes, bytes.length);
  assert.deepEqual(frames.map((f) => [f.type, f.id]), [[1, 0], [3, 1], [5, 1], [5, 1], [5, 2], [
    6,
    2,
  ]]);
  assert.deepEqual(frames[2].payload, new Uint8Array([1, 2, 3]));
  assert.equal(frames[3].payload.length, 0);
  assert.deepEqual(frames[4].payload, big);
  assert.deepEqual({ ...decodeMessage(frames[1] as Frame) }, {
    op: "put",
    path: "ä b.txt",
    size: 3,
  });
});

Deno.test("frame: split at every byte boundary gives the same frames", () => {
  const parts = [
    encodeMessage(FrameType.REQUEST, 7, { op: "ls", path: "x" }),
    dataFrame(7, new Uint8Array([9, 8, 7, 6, 5])),
    encodeMessage(FrameType.END, 7, { sha256: "a".repeat(64) }),
  ];
  const bytes = concat(parts);
  const whole = decodeAll(bytes, bytes.length);
  for (let split = 1; split < bytes.length; split++) {
    const dec = new FrameDecoder();
    const frames = [
      ...decodeAll(bytes.subarray(0, split), split, dec),
      ...decodeAll(bytes.subarray(split), bytes.length, dec),
    ];
    assert.deepEqual(frames, whole, `split at ${split}`);
  }
  assert.deepEqual(decodeAll(bytes, 1), whole);
});

Deno.test("frame: large frames survive odd read sizes and buffer compaction", () => {
  const { bytes, big } = sample();
  for (const step of [1000, 65536, 333_333, DEFAULT_LIMITS.maxData + 5]) {
    const frames = decodeAll(bytes, step);
    assert.equal(frames.length, 6, `step ${step}`);
    assert.deepEqual(frames[4].payload, big, `step ${step}`);
  }
});

Deno.test("frame: zero-copy fill with space() and commit()", () => {
  const dec = new FrameDecoder();
  const bytes = encodeMessage(FrameType.REPLY, 3, { ok: true });
  const space = dec.space();
  space.set(bytes);
  dec.commit(bytes.length);
  const f = dec.next();
  assert.equal(f?.type, FrameType.REPLY);
  assert.equal(f?.id, 3);
  assert.equal(dec.buffered, 0);
  assert.throws(() => dec.commit(dec.space().length + 1), RangeError);
  assert.throws(() => dec.commit(-1), RangeError);
});

function header(type: number, id: number, length: number): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE);
  new DataView(out.buffer).setUint8(0, type);
  new DataView(out.buffer).setUint32(1, id);
  new DataView(out.buffer).setUint32(5, length);
  return out;
}

function assertProtocolError(fn: () => unknown, pattern: RegExp) {
  assert.throws(fn, (err) =>
    err instanceof FerryError && err.code === "PROTOCOL" &&
    pattern.test(err.message));
}

Deno.test("frame: an oversized header is refused before its payload arrives", () => {
  for (
    const [type, length] of [
      [FrameType.DATA, DEFAULT_LIMITS.maxData + 1],
      [FrameType.REQUEST, DEFAULT_LIMITS.maxControl + 1],
      [FrameType.HELLO, 0xffffffff],
    ]
  ) {
    const dec = new FrameDecoder();
    dec.push(header(type, 1, length));
    assertProtocolError(() => dec.next(), /exceeds the limit/);
  }
  const ok = new FrameDecoder();
  ok.push(header(FrameType.DATA, 1, DEFAULT_LIMITS.maxData));
  assert.equal(ok.next(), undefined, "a frame at the limit is just incomplete");
});

Deno.test("frame: unknown types are refused, even with length 0", () => {
  for (const type of [0, 9, 255]) {
    const dec = new FrameDecoder();
    dec.push(header(type, 0, 0));
    assertProtocolError(() => dec.next(), /unknown frame type/);
  }
});

Deno.test("frame: custom limits are honoured", () => {
  const limits = { maxControl: 100, maxData: 10 };
  const dec = new FrameDecoder(limits);
  dec.push(dataFrame(1, new Uint8Array(10)));
  assert.equal(dec.next()?.payload.length, 10);
  dec.push(header(FrameType.DATA, 1, 11));
  assertProtocolError(() => dec.next(), /exceeds/);
  assertProtocolError(
    () => encodeMessage(FrameType.REQUEST, 1, { path: "x".repeat(200) }, limits),
    /too large/,
  );
  // Under the limit in characters, over it in bytes.
  assertProtocolError(
    () => encodeMessage(FrameType.REQUEST, 1, { path: "é".repeat(60) }, limits),
    /too large/,
  );
  const fits = { path: "é🦕".repeat(10) };
  const fresh = new FrameDecoder(limits);
  fresh.push(encodeMessage(FrameType.REQUEST, 2, fits, limits));
  assert.deepEqual(decodeMessage(fresh.next()!), fits);
});

Deno.test("frame: decodeMessage refuses non-objects and bad UTF-8", () => {
  const frame = (payload: Uint8Array): Frame => ({ type: FrameType.REQUEST, id: 1, payload });
  const enc = new TextEncoder();
  for (const text of ["", "nope", "[1,2]", "42", "null", '"str"', "{"]) {
    assertProtocolError(() => decodeMessage(frame(enc.encode(text))), /REQUEST/);
  }
  assertProtocolError(() => decodeMessage(frame(new Uint8Array([0x7b, 0xff, 0x7d]))), /malformed/);
  assert.deepEqual({ ...decodeMessage(frame(enc.encode('{"a":1}'))) }, { a: 1 });
});

Deno.test("frame: pushing more than fits without draining is an error, not an overflow", () => {
  const dec = new FrameDecoder({ maxControl: 16, maxData: 16 });
  const frames = concat(Array.from({ length: 10 }, () => dataFrame(1, new Uint8Array(16))));
  assert.throws(() => dec.push(frames), RangeError);
});

Deno.test("frame: ready says whether a whole frame is buffered", () => {
  const dec = new FrameDecoder();
  const bytes = encodeMessage(FrameType.REQUEST, 1, { op: "ls", path: "" });
  assert.equal(dec.ready, false);
  dec.push(bytes.subarray(0, HEADER_SIZE + 1));
  assert.equal(dec.ready, false);
  dec.push(bytes.subarray(HEADER_SIZE + 1));
  assert.equal(dec.ready, true);
  assert.equal(dec.next()?.id, 1);
  assert.equal(dec.ready, false);
});

Deno.test("frame: a read that fills the buffer makes the next one as large as the capacity", () => {
  const capacity = 512 * 1024;
  const dec = new FrameDecoder(DEFAULT_LIMITS, capacity, 16 * 1024);
  const small = encodeMessage(FrameType.REPLY, 1, { ok: true });
  const stream = concat(Array.from({ length: 20_000 }, () => small));
  let offset = 0;
  const sizes: number[] = [];
  while (offset < stream.length) {
    const space = dec.space();
    sizes.push(space.buffer.byteLength);
    const n = Math.min(space.length, stream.length - offset);
    space.set(stream.subarray(offset, offset + n));
    dec.commit(n);
    offset += n;
    while (dec.next());
  }
  assert.equal(sizes[0], 16 * 1024);
  assert.equal(Math.max(...sizes), capacity);
  // Reads that do not fill it leave it as it is.
  const calm = new FrameDecoder(DEFAULT_LIMITS, capacity, 16 * 1024);
  for (let i = 0; i < 100; i++) {
    const space = calm.space();
    space.set(small);
    calm.commit(small.length);
    assert.equal(calm.next()?.id, 1);
  }
  assert.equal(calm.space().buffer.byteLength, 16 * 1024);
});

/** A loopback TCP pair; the accepted side counts its writes. */
async function countedPair() {
  using listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [peer, conn] = await Promise.all([
    Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port }),
    listener.accept(),
  ]);
  const counted = {
    writes: 0,
    read: (p: Uint8Array) => conn.read(p),
    write: (p: Uint8Array) => {
      counted.writes++;
      return conn.write(p);
    },
    close: () => conn.close(),
  } satisfies ByteConn & { writes: number };
  return { peer: new FrameConn(peer), local: new FrameConn(counted), counted };
}

Deno.test("frame conn: replies posted while requests wait in the buffer leave in one write", async () => {
  const { peer, local, counted } = await countedPair();
  try {
    const requests = Array.from(
      { length: 10 },
      (_, i) => encodeMessage(FrameType.REQUEST, i + 1, { op: "stat", path: `f${i}` }),
    );
    await peer.write(concat(requests));
    for (let i = 0; i < 10; i++) {
      const frame = await local.read();
      await local.postMessage(FrameType.REPLY, frame!.id, { n: i });
    }
    for (let i = 0; i < 10; i++) {
      const reply = await peer.read();
      assert.equal(reply?.id, i + 1);
      assert.deepEqual(decodeMessage(reply!), { n: i });
    }
    assert.equal(counted.writes, 1);
    // With nothing more from the peer, a posted reply goes out at once.
    await peer.write(requests[0]);
    await local.postMessage(FrameType.REPLY, (await local.read())!.id, { n: 0 });
    assert.equal((await peer.read())?.id, 1);
    assert.equal(counted.writes, 2);
  } finally {
    peer.close();
    local.close();
  }
});

Deno.test("frame conn: a posted reply does not wait for a long request after it", async () => {
  const { peer, local } = await countedPair();
  try {
    const requests = [1, 2].map((id) => encodeMessage(FrameType.REQUEST, id, { op: "sum" }));
    await peer.write(concat(requests));
    await local.postMessage(FrameType.REPLY, (await local.read())!.id, {});
    // Request 2 is buffered, and its handling takes long, with no read or write meanwhile.
    let timer: ReturnType<typeof setTimeout> | undefined;
    const handled = new Promise((r) => timer = setTimeout(r, 2000));
    const first = await Promise.race([peer.read(), handled.then(() => "held back")]);
    clearTimeout(timer);
    assert.equal((first as Frame | null)?.id, 1);
  } finally {
    peer.close();
    local.close();
  }
});
