/**
 * An experiment, not part of ferry: how fast a whole tree of small files can
 * move in Deno when it is one stream instead of a request per file, written
 * with `node:fs` synchronous calls (docs/performance.md, "Small files").
 *
 * The sender walks a tree and sends, per file, `[u16 path length][path][u32
 * size][u32 mode][f64 mtime][content][16-byte XXH3-128]`; the receiver checks
 * each file's XXH3-128, writes it to a temporary file (O_EXCL), sets its mode
 * and mtime, and renames it into place. No path checks, no resume, no
 * errors per file: the floor, not a design to ship as it is.
 *
 *   deno run -A scripts/experiments/tree_stream.ts send SRC_DIR PORT &
 *   deno run -A scripts/experiments/tree_stream.ts recv DST_DIR PORT
 *
 * @module
 */
import {
  closeSync,
  constants,
  fchmodSync,
  fstatSync,
  futimesSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  writeSync,
} from "node:fs";
import addon from "xxhash-addon";
const [mode, dir, portText] = Deno.args;
const port = Number(portText);
const SEED = new Uint8Array(8);
const hasher = new (addon as unknown as {
  XXHash128: new (seed: Uint8Array) => {
    reset(): void;
    update(b: Uint8Array): void;
    digest(): Uint8Array;
  };
}).XXHash128(SEED);
const enc = new TextEncoder(), dec = new TextDecoder();

if (mode === "send") {
  const listener = Deno.listen({ hostname: "127.0.0.1", port });
  const conn = await listener.accept();
  conn.setNoDelay(true);
  const out = new Uint8Array(1 << 20);
  let at = 0;
  const flush = async () => {
    let o = 0;
    while (o < at) o += await conn.write(out.subarray(o, at));
    at = 0;
  };
  const files: string[] = [];
  const walk = (d: string, rel: string) => {
    for (const e of Deno.readDirSync(d)) {
      if (e.isDirectory) walk(`${d}/${e.name}`, `${rel}${e.name}/`);
      else if (e.isFile) files.push(`${rel}${e.name}`);
    }
  };
  walk(dir, "");
  const view = new DataView(out.buffer);
  for (const rel of files) {
    const fd = openSync(`${dir}/${rel}`, constants.O_RDONLY | constants.O_NOFOLLOW);
    const st = fstatSync(fd);
    const size = st.size;
    const name = enc.encode(rel);
    if (at + 2 + name.length + 16 + size + 16 > out.length) await flush();
    view.setUint16(at, name.length);
    at += 2;
    out.set(name, at);
    at += name.length;
    view.setUint32(at, size);
    view.setUint32(at + 4, st.mode & 0o7777);
    view.setFloat64(at + 8, st.mtimeMs);
    at += 16;
    const n = readSync(fd, out, at, size, 0);
    closeSync(fd);
    hasher.reset();
    hasher.update(out.subarray(at, at + n));
    at += n;
    out.set(hasher.digest(), at);
    at += 16;
  }
  view.setUint16(at, 0xffff);
  at += 2;
  await flush();
  conn.close();
  listener.close();
} else {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const buf = new Uint8Array(4 << 20);
  let start = 0, end = 0;
  const view = new DataView(buf.buffer);
  const need = async (n: number) => {
    if (end - start >= n) return;
    if (start > 0) {
      buf.copyWithin(0, start, end);
      end -= start;
      start = 0;
    }
    while (end < n) {
      const r = await conn.read(buf.subarray(end));
      if (r === null) throw new Error("eof");
      end += r;
    }
  };
  const made = new Set<string>();
  let files = 0, serial = 0;
  for (;;) {
    await need(2);
    const len = view.getUint16(start);
    start += 2;
    if (len === 0xffff) break;
    await need(len + 16);
    const rel = dec.decode(buf.subarray(start, start + len));
    start += len;
    const size = view.getUint32(start),
      fmode = view.getUint32(start + 4),
      mtime = view.getFloat64(start + 8);
    start += 16;
    await need(size + 16);
    const data = buf.subarray(start, start + size);
    start += size;
    hasher.reset();
    hasher.update(data);
    const got = hasher.digest();
    for (let i = 0; i < 16; i++) {
      if (got[i] !== buf[start + i]) throw new Error("checksum mismatch " + rel);
    }
    start += 16;
    const slash = rel.lastIndexOf("/");
    const parent = slash < 0 ? dir : `${dir}/${rel.slice(0, slash)}`;
    if (!made.has(parent)) {
      mkdirSync(parent, { recursive: true });
      made.add(parent);
    }
    const tmp = `${parent}/.ferry-${++serial}.part`;
    const fd = openSync(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    let o = 0;
    while (o < size) o += writeSync(fd, data, o, size - o);
    fchmodSync(fd, fmode);
    futimesSync(fd, mtime / 1000, mtime / 1000);
    closeSync(fd);
    renameSync(tmp, `${dir}/${rel}`);
    files++;
  }
  console.error(`received ${files} files`);
}
