/**
 * Seeded fuzzing of the wire: the frame decoder and the message parsers in
 * process, and a live ferryd over TCP. tests/fuzz_test.ts runs it briefly
 * with a fixed seed; scripts/fuzz.ts runs it long with a fresh one. Every
 * case draws from its own generator, derived from the seed and its number,
 * so a failure reported as "case N (seed S)" replays with seed S and more
 * than N iterations, whatever the other cases do. (The live server's cases
 * replay the same bytes; how connections interleave is up to timing.)
 *
 * @module
 */

import { createHash } from "node:crypto";
import { zstdCompressSync } from "node:zlib";
import { createXXHash128 } from "hash-wasm";
import { basename, join } from "node:path";
import {
  errorFromMessage,
  MAX_PATH_BYTES,
  parseEnd,
  parseEntry,
  parseGetReply,
  parseHello,
  parseLsReply,
  parsePartialReply,
  parseRequest,
  parseSumReply,
  parseWelcome,
  PROTOCOL_VERSION,
} from "../lib/commands.ts";
import { resumeKey } from "../lib/fs/temp_names.ts";
import { type ErrorCode, FerryError, isErrorCode } from "../lib/util/errors.ts";
import {
  decodeMessage,
  DEFAULT_LIMITS,
  type Frame,
  FrameDecoder,
  type FrameLimits,
  FrameType,
  HEADER_SIZE,
} from "../lib/frame.ts";
import { normalizePath } from "../lib/util/path_jail.ts";
import {
  concat,
  listTree,
  peakRss,
  runClient,
  sameContent,
  type ServerProcess,
  tempDir,
  writeRandomFile,
} from "./helpers.ts";

/** The seed when none is given: fixed, so that CI replays the same cases every run. */
const DEFAULT_SEED = 0x5eed;

/** Cases per fuzzer when none is given: small enough for `deno task test` on two cores. */
const DEFAULT_ITERATIONS = 800;

/** How much fuzzing to do, and from which seed. */
export interface FuzzOptions {
  /** Seed of the whole run (32 bits). */
  seed: number;
  /** Cases per in-process fuzzer, and connections in the live barrage. */
  iterations: number;
}

/** Parse a non-negative integer given as decimal or `0x` hex; `what` names it in the error. */
export function parseCount(text: string, what: string): number {
  const value = Number(text.trim());
  if (text.trim() === "" || !Number.isSafeInteger(value) || value < 0) {
    throw new Error(`${what} must be a non-negative integer, not ${JSON.stringify(text)}`);
  }
  return value;
}

/** The run's options from FERRY_FUZZ_SEED and FERRY_FUZZ_ITERATIONS, else the defaults. */
export function fuzzOptionsFromEnv(): FuzzOptions {
  const seed = Deno.env.get("FERRY_FUZZ_SEED");
  const iterations = Deno.env.get("FERRY_FUZZ_ITERATIONS");
  return {
    seed: seed === undefined ? DEFAULT_SEED : parseCount(seed, "FERRY_FUZZ_SEED") >>> 0,
    iterations: iterations === undefined
      ? DEFAULT_ITERATIONS
      : parseCount(iterations, "FERRY_FUZZ_ITERATIONS"),
  };
}

/** mulberry32: tiny and fast, and plenty random for picking fuzz cases. */
class Rng {
  #state: number;

  /** A generator whose whole output is fixed by `seed`. */
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }

  /** A uniform integer in [0, 2^32). */
  uint32(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** A uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.uint32() / 2 ** 32) * n);
  }

  /** A uniform integer in [lo, hi]. */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.uint32() < p * 2 ** 32;
  }

  /** One of `items`. */
  pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)];
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const v = this.uint32();
      for (let j = 0; j < 4 && i + j < n; j++) out[i + j] = (v >>> (8 * j)) & 0xff;
    }
    return out;
  }
}

/** Which fuzzer a case belongs to; part of its generator's seed. */
const FUZZERS = { decoder: 1, parsers: 2, server: 3 } as const;

/** The generator of case `index` of `fuzzer`: independent of every other case. */
function caseRng(seed: number, fuzzer: keyof typeof FUZZERS, index: number): Rng {
  const salt = FUZZERS[fuzzer];
  const mixer = new Rng(seed ^ Math.imul(salt, 0x9e3779b9) ^ Math.imul(index + 1, 0x85ebca6b));
  mixer.uint32();
  return new Rng(mixer.uint32());
}

function failure(seed: number, what: string, index: number, message: string): Error {
  return new Error(`${what} case ${index} (seed ${seed}): ${message}`);
}

// ---------------------------------------------------------------------------
// JSON with the shapes JSON.stringify cannot make: numbers such as 1e400 or
// -0, repeated keys, and "__proto__" as a plain key, as a hostile peer sends.

/** A JSON token written exactly as given. */
class RawJson {
  constructor(readonly text: string) {}
}

/** A JSON object as a list of fields: keys may repeat, and any key is just a key. */
class JsonFields {
  constructor(readonly fields: [string, JsonValue][]) {}
}

type JsonValue = null | boolean | number | string | RawJson | JsonFields | JsonValue[];

function obj(fields: Record<string, JsonValue>): JsonFields {
  return new JsonFields(Object.entries(fields));
}

function writeJson(value: JsonValue): string {
  if (value instanceof RawJson) return value.text;
  if (value instanceof JsonFields) {
    return `{${value.fields.map(([k, v]) => `${JSON.stringify(k)}:${writeJson(v)}`).join(",")}}`;
  }
  if (Array.isArray(value)) return `[${value.map(writeJson).join(",")}]`;
  return JSON.stringify(value);
}

const encoder = new TextEncoder();

/** Numbers at and around every bound the parsers check, and some JSON cannot hold exactly. */
const NASTY_NUMBERS = [
  "-1 -0 0.5 1e400 -1e400 1e21 1023 1024 4095 4097 4095.5 65536 262145 1048576 1048577",
  "4294967295 4294967296 9007199254740991 9007199254740992 9007199254740993",
  "8.64e15 8640000000000001 1.7976931348623157e308 5e-324 4095e0 1E3",
].join(" ").split(" ").map((text) => new RawJson(text));

/** Strings that mean something to a path check, a number parser, a terminal or an object. */
const NASTY_STRINGS = [
  "",
  "NaN",
  "Infinity",
  "-1",
  "0x10",
  "1e3",
  "true",
  "null",
  "__proto__",
  "constructor",
  "toString",
  ".",
  "..",
  "../x",
  "a/../../x",
  "/etc/passwd",
  "C:\\x",
  "a\\b",
  "a\u0000b",
  "\u001b[2J\u001b]0;pwned\u0007",
  "\u009b31m",
  "\u202eexe.txt",
  "\ud800",
  "a\udfffb",
  ".ferry-0.part",
  "d/.ferry-1.part",
  "a//b/./c",
  "*",
  "**/[!a-",
  "[]]",
  "0".repeat(64),
  "A".repeat(64),
  "0".repeat(63),
  "x".repeat(256),
  "x".repeat(MAX_PATH_BYTES + 1),
  "é".repeat(MAX_PATH_BYTES / 2 + 1),
];

/** Every field name of the protocol, and names that mean something to JavaScript objects. */
const KEYS = [
  "op path pattern from to size mode mtime noClobber recursive parents version agent limits",
  "maxControl maxData entries entry more name type sha256 code message resume offset prefix",
  "__proto__ constructor prototype toString hasOwnProperty",
].join(" ").split(" ");

const OPS = [
  "ls",
  "glob",
  "stat",
  "get",
  "put",
  "partial",
  "sum",
  "mkdir",
  "rm",
  "mv",
  "close",
] as const;

/**
 * Paths for the live server: a few names that collide across connections, so
 * that concurrent requests meet on the same files, and paths the jail refuses.
 */
const PATHS = [
  "",
  "a",
  "b",
  "d",
  "d/x",
  "d/y",
  "d/e/f",
  "e",
  "e/x",
  "ü ñ",
  "./a",
  "d//x",
  "d/../b",
  "../x",
  "/a",
  ".ferry-0.part",
  "d/.ferry-x.part",
  "a\u0000",
  "a\u001b[1m",
  "C:x",
  "x".repeat(300),
  "y".repeat(MAX_PATH_BYTES + 1),
];

/** Where the health check's good client writes: a name no fuzz case uses. */
const GOOD_CLIENT_PATH = "fuzz-check/good.bin";

function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** The checksums a fuzz session may offer, computed here independently of ferry's own code. */
type FuzzAlgorithm = "sha256" | "xxh128";

const XXH128 = await createXXHash128();

function digestHex(algorithm: FuzzAlgorithm, bytes: Uint8Array): string {
  if (algorithm === "sha256") return sha256Hex(bytes);
  XXH128.init();
  XXH128.update(bytes);
  return XXH128.digest("hex");
}

function randomString(rng: Rng): string {
  const pool = "abcdefghijklmnopqrstuvwxyz0123456789 ./\\-_*?[]!\u0000\u001b\u00e9\u2603\ud83d";
  return Array.from({ length: rng.int(20) }, () => pool[rng.int(pool.length)]).join("");
}

function randomValue(rng: Rng, depth = 0): JsonValue {
  switch (rng.int(depth > 2 ? 6 : 9)) {
    case 0:
      return rng.pick([null, true, false]);
    case 1:
      return rng.int(10);
    case 2:
      return rng.pick(NASTY_NUMBERS);
    case 3:
      return rng.pick(NASTY_STRINGS);
    case 4:
      return randomString(rng);
    case 5:
      return rng.chance(0.1) ? "z".repeat(rng.range(4097, 70_000)) : rng.pick(NASTY_STRINGS);
    case 6:
      return Array.from({ length: rng.int(4) }, () => randomValue(rng, depth + 1));
    case 7:
      return new JsonFields(
        Array.from({ length: rng.int(4) }, () => [rng.pick(KEYS), randomValue(rng, depth + 1)]),
      );
    default: {
      // Deep nesting: a recursive parser or printer would run out of stack on it.
      const n = rng.range(100, 3000);
      return rng.chance(0.5)
        ? new RawJson("[".repeat(n) + "]".repeat(n))
        : new RawJson('{"a":'.repeat(n) + "0" + "}".repeat(n));
    }
  }
}

function pathValue(rng: Rng): JsonValue {
  return rng.chance(0.9) ? rng.pick(PATHS) : randomValue(rng);
}

function sha256Value(rng: Rng): string {
  return rng.chance(0.7) ? sha256Hex(rng.bytes(8)) : rng.pick(NASTY_STRINGS);
}

/**
 * Resumable uploads go to few paths with few sizes and one mtime, so that
 * uploads of the same file meet across connections and continue each other.
 */
const RESUME_PATHS = ["r", "d/r"];
const RESUME_SIZES = [1000, 70_000, 300_000];
const RESUME_MTIME = 1_700_000_000_000;

const MTIMES = [0, 1_700_000_000_000, 8.64e15];

/** Where a transfer resumes: mostly nowhere, else an offset with a hash that rarely matches. */
function resumePoint(rng: Rng): Record<string, JsonValue> {
  if (rng.chance(0.7)) return {};
  return { offset: rng.pick([0, 1, 1000, 70_000]), prefix: sha256Value(rng) };
}

/** A valid request for `op`, with paths from {@linkcode PATHS}. */
function requestTemplate(rng: Rng, op: string = rng.pick(OPS)): JsonFields {
  const path = () => pathValue(rng);
  const flag = () => rng.chance(0.5);
  switch (op) {
    case "ls":
      return obj({ op, path: path(), recursive: flag() });
    case "glob":
      return obj({ op, pattern: rng.pick(["*", "d/*", "*/*", "[a-e]*", "?", ...PATHS]) });
    case "get":
      return obj({ op, path: path(), ...resumePoint(rng) });
    case "put":
      return obj({
        op,
        path: path(),
        size: rng.int(100),
        mode: rng.pick([0o644, 0o755, 0o4777, 0]),
        mtime: rng.pick(MTIMES),
        noClobber: flag(),
        ...(rng.chance(0.3) ? { resume: true, ...resumePoint(rng) } : {}),
      });
    case "partial":
      return obj({
        op,
        path: rng.pick(RESUME_PATHS),
        size: rng.pick(RESUME_SIZES),
        mtime: RESUME_MTIME,
      });
    case "mkdir":
      return obj({ op, path: path(), parents: flag() });
    case "rm":
      return obj({ op, path: path(), recursive: flag() });
    case "mv":
      return obj({ op, from: path(), to: path() });
    case "close":
      return obj({ op });
    default:
      return obj({ op, path: path() });
  }
}

function entryTemplate(rng: Rng): JsonFields {
  return obj({
    name: pathValue(rng),
    type: rng.pick(["file", "dir", "symlink", "other"]),
    size: rng.int(1000),
    mtime: 1_700_000_000_000,
    mode: 0o644,
  });
}

/** A valid message of any kind the protocol carries in a control frame. */
function messageTemplate(rng: Rng): JsonFields {
  switch (rng.int(10)) {
    case 0:
      return obj({ version: 2, agent: "ferry/0.1.0", checksums: ["xxh128", "sha256"] });
    case 1:
      return obj({
        version: 2,
        agent: "ferryd/0.1.0",
        limits: obj({ maxControl: 65536, maxData: 262144 }),
        checksum: "xxh128",
      });
    case 2:
      return entryTemplate(rng);
    case 3:
      return obj({
        entries: Array.from({ length: rng.int(4) }, () => entryTemplate(rng)),
        more: rng.chance(0.5),
      });
    case 4:
      return obj({ size: rng.int(1000), mtime: 0, mode: 0o600, offset: rng.int(10) });
    case 5:
      return obj({ sha256: sha256Value(rng), size: rng.int(1000) });
    case 6:
      return obj({ sha256: sha256Value(rng) });
    case 7:
      return obj({ code: rng.pick(["IO", "NOT_FOUND", "BOGUS", "__proto__"]), message: "x" });
    case 8:
      return obj({ offset: rng.int(2 * PARTIAL_REPLY_SIZE) });
    default:
      return requestTemplate(rng);
  }
}

/** `msg` with a field or a few changed, added, repeated or removed; rarely not an object at all. */
function mutate(rng: Rng, msg: JsonFields): JsonValue {
  if (rng.chance(0.03)) return randomValue(rng);
  const fields = [...msg.fields];
  // Mostly a single change, so that it alone decides whether the message is still valid.
  for (let n = rng.chance(0.6) ? 1 : rng.range(2, 3); n > 0; n--) {
    const i = rng.int(fields.length + 1);
    const [key, old] = i < fields.length ? fields[i] : [rng.pick(KEYS), null];
    switch (rng.int(4)) {
      case 0:
        fields.splice(i, 1);
        break;
      case 1:
        // A repeated key: JSON.parse keeps the last one.
        fields.push([key, variant(rng, old)]);
        break;
      default:
        fields.splice(i, 1, [key, variant(rng, old)]);
    }
  }
  return new JsonFields(fields);
}

/** A value to put in place of `old`: mostly one of its kind at an edge, else anything. */
function variant(rng: Rng, old: JsonValue): JsonValue {
  if (old instanceof JsonFields) return mutate(rng, old);
  if (Array.isArray(old) && old.length > 0 && rng.chance(0.7)) {
    const i = rng.int(old.length);
    return old.map((item, j) => j === i ? variant(rng, item) : item);
  }
  if (rng.chance(0.3)) return randomValue(rng);
  if (typeof old === "number" || old instanceof RawJson) return rng.pick(NASTY_NUMBERS);
  if (typeof old === "string") return rng.pick(NASTY_STRINGS);
  return randomValue(rng);
}

/** The UTF-8 JSON of a message, mutated with probability `p`, sometimes with damaged bytes. */
function messageBytes(rng: Rng, template: JsonFields, p = 0.8): Uint8Array {
  const value = rng.chance(p) ? mutate(rng, template) : template;
  const bytes = encoder.encode(writeJson(value));
  return rng.chance(0.15) ? damage(rng, bytes) : bytes;
}

/** Flip, insert or drop bytes, cut the end, or plant invalid UTF-8. */
function damage(rng: Rng, bytes: Uint8Array): Uint8Array {
  const out = [...bytes];
  for (let n = rng.range(1, 4); n > 0; n--) {
    const at = rng.int(out.length + 1);
    switch (rng.int(5)) {
      case 0:
        if (at < out.length) out[at] ^= 1 << rng.int(8);
        break;
      case 1:
        out.splice(at, 0, ...rng.pick([[0xff], [0xc0, 0x80], [0xed, 0xa0, 0x80], [0xe2, 0x82]]));
        break;
      case 2:
        out.splice(at, rng.range(1, 8));
        break;
      case 3:
        out.length = at;
        break;
      default:
        out.splice(at, 0, rng.int(256));
    }
  }
  return new Uint8Array(out);
}

/** A frame with any header at all: `declared` need not be the payload's length. */
function frameBytes(type: number, id: number, payload: Uint8Array, declared = payload.length) {
  const out = new Uint8Array(HEADER_SIZE + payload.length);
  const view = new DataView(out.buffer);
  view.setUint8(0, type);
  view.setUint32(1, id);
  view.setUint32(5, declared);
  out.set(payload, HEADER_SIZE);
  return out;
}

function frameId(rng: Rng): number {
  return rng.pick([0, 1, 2, 7, 0x7fffffff, 0xffffffff, rng.uint32()]);
}

/** Lengths at every edge of `limit`, and the absurd ones. */
function edgeLength(rng: Rng, limit: number): number {
  return rng.pick([0, 1, limit, limit + 1, 2 * limit, 2 ** 31, 2 ** 32 - 1, rng.uint32()]);
}

function unknownType(rng: Rng): number {
  return rng.pick([0, 9, 10, 0x7f, 0x80, 0xff, rng.int(256)]);
}

// ---------------------------------------------------------------------------
// The frame decoder.

/** How one side of a connection sets its decoder up. */
interface DecoderSetup {
  name: string;
  limits: FrameLimits;
  capacity?: number;
  initial?: number;
  /** Limits applied once the first frame is taken, as the server does after HELLO. */
  after?: FrameLimits;
}

// Copies of ferryd's private settings, from docs/protocol.md: before the handshake
// 4 KiB control frames and no DATA; a receive buffer of two DATA frames.
const SERVER_HANDSHAKE_LIMITS: FrameLimits = { maxControl: 4096, maxData: 0 };
const SERVER_RECEIVE_BUFFER = 2 * (HEADER_SIZE + DEFAULT_LIMITS.maxData);
const CLIENT_RECEIVE_BUFFER = 2 * 1024 * 1024;
const INITIAL_BUFFER = 16 * 1024;

function decoderSetup(rng: Rng): DecoderSetup {
  switch (rng.int(4)) {
    case 0:
      return {
        name: "server",
        limits: SERVER_HANDSHAKE_LIMITS,
        capacity: SERVER_RECEIVE_BUFFER,
        after: DEFAULT_LIMITS,
      };
    case 1:
      return {
        name: "client",
        limits: DEFAULT_LIMITS,
        capacity: CLIENT_RECEIVE_BUFFER,
        initial: CLIENT_RECEIVE_BUFFER,
      };
    case 2:
      return { name: "default", limits: DEFAULT_LIMITS };
    default: {
      // Any limits a WELCOME may announce (1 KiB to 1 MiB), and any buffer sizes.
      const limits = {
        maxControl: rng.range(1024, 1 << 20),
        maxData: rng.chance(0.1) ? 0 : rng.range(1024, 1 << 20),
      };
      return {
        name: `custom ${JSON.stringify(limits)}`,
        limits,
        capacity: rng.chance(0.5) ? rng.range(0, 3 << 20) : undefined,
        initial: rng.chance(0.5) ? rng.range(1, 1 << 16) : undefined,
      };
    }
  }
}

/** What a decoder must make of a byte stream, worked out independently of it. */
interface Expected {
  frames: { type: number; id: number; start: number; length: number }[];
  /** Why the stream must be rejected, if it must. */
  error?: string;
  /** Bytes taken by the whole frames. */
  consumed: number;
  /** The largest frame the stream legitimately asks the decoder to hold. */
  largest: number;
}

/** Decode `bytes` by the protocol's rules (docs/protocol.md), the slow and obvious way. */
function expectedDecoding(bytes: Uint8Array, setup: DecoderSetup): Expected {
  const frames: Expected["frames"] = [];
  let offset = 0;
  let largest = HEADER_SIZE;
  while (bytes.length - offset >= HEADER_SIZE) {
    const view = new DataView(bytes.buffer, bytes.byteOffset + offset, HEADER_SIZE);
    const type = view.getUint8(0);
    const length = view.getUint32(5);
    const limits = frames.length > 0 && setup.after ? setup.after : setup.limits;
    if (type < FrameType.HELLO || type > FrameType.ZDATA) {
      return { frames, error: `type ${type}`, consumed: offset, largest };
    }
    const data = type === FrameType.DATA || type === FrameType.ZDATA;
    const limit = data ? limits.maxData : limits.maxControl;
    if (length > limit) {
      return { frames, error: `length ${length} > ${limit}`, consumed: offset, largest };
    }
    largest = Math.max(largest, HEADER_SIZE + length);
    if (bytes.length - offset - HEADER_SIZE < length) break;
    frames.push({ type, id: view.getUint32(1), start: offset + HEADER_SIZE, length });
    offset += HEADER_SIZE + length;
  }
  return { frames, consumed: offset, largest };
}

/** A stream of legal frames, damaged headers, junk and cut frames, each up to its piece's limit. */
function decoderStream(rng: Rng, setup: DecoderSetup, big: boolean): Uint8Array {
  const parts: Uint8Array[] = [];
  for (let i = rng.range(1, 8); i > 0; i--) {
    const limits = parts.length > 0 && setup.after ? setup.after : setup.limits;
    const type = rng.range(FrameType.HELLO, FrameType.ZDATA);
    const data = type === FrameType.DATA || type === FrameType.ZDATA;
    const limit = data ? limits.maxData : limits.maxControl;
    switch (rng.int(10)) {
      case 0:
        parts.push(rng.bytes(rng.range(1, 300)));
        break;
      case 1:
      case 2: {
        const badType = rng.chance(0.4) ? unknownType(rng) : type;
        const declared = edgeLength(rng, limit);
        const payload = rng.bytes(Math.min(declared, rng.pick([0, rng.int(64), declared]), 4096));
        parts.push(frameBytes(badType, frameId(rng), payload, declared));
        break;
      }
      default: {
        // Small reads over a large frame would take millions of steps: keep those small.
        const cap = big ? limit : Math.min(limit, 2048);
        const size = rng.pick([0, rng.int(64), rng.int(cap + 1), cap, Math.max(0, cap - 1)]);
        const payload = type !== FrameType.DATA && rng.chance(0.8)
          ? messageBytes(rng, messageTemplate(rng)).subarray(0, cap)
          : rng.bytes(size);
        parts.push(frameBytes(type, frameId(rng), payload));
      }
    }
  }
  const bytes = concat(parts);
  return rng.chance(0.2) ? bytes.subarray(0, rng.int(bytes.length + 1)) : bytes;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** The only thing the wire code may throw: a FerryError with one of `codes`. */
function isExpectedError(err: unknown, codes: readonly ErrorCode[]): boolean {
  return err instanceof FerryError && codes.includes(err.code);
}

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/** What a decoder run exercised. */
export interface DecoderReport {
  cases: number;
  /** Frames decoded and checked against the expected decoding. */
  frames: number;
  /** Streams rejected, as they had to be. */
  rejected: number;
}

/**
 * Feed `iterations` generated streams to {@linkcode FrameDecoder} the way a
 * socket reader does (random read sizes, through `space`/`commit` or `push`,
 * draining between reads) and check every frame, every rejection and the
 * buffer's size against {@linkcode expectedDecoding}. Throws on the first
 * case that goes wrong, naming it.
 */
export function fuzzDecoder(seed: number, iterations: number): DecoderReport {
  const report: DecoderReport = { cases: iterations, frames: 0, rejected: 0 };
  for (let index = 0; index < iterations; index++) {
    const rng = caseRng(seed, "decoder", index);
    const setup = decoderSetup(rng);
    const maxRead = rng.pick([1, 3, 9, 64, 4096, 65536, Infinity]);
    const bytes = decoderStream(rng, setup, maxRead >= 4096);
    const problem = decodeCase(rng, bytes, setup, maxRead, report);
    if (problem) {
      const how = `setup ${setup.name}, reads ≤ ${maxRead}`;
      throw failure(seed, "decoder", index, `${problem} (${how})`);
    }
  }
  return report;
}

/** Run one stream through a decoder; the problem found, if any. */
function decodeCase(
  rng: Rng,
  bytes: Uint8Array,
  setup: DecoderSetup,
  maxRead: number,
  report: DecoderReport,
): string | undefined {
  const expected = expectedDecoding(bytes, setup);
  const { maxControl, maxData } = setup.limits;
  const capacity = Math.max(HEADER_SIZE + Math.max(maxControl, maxData), setup.capacity ?? 0);
  const initial = Math.min(setup.initial ?? INITIAL_BUFFER, capacity);
  // The buffer grows by doubling only for frames the limits allow, or at once to its capacity
  // after a read filled it; never past its capacity.
  let bound = Math.max(initial, Math.min(capacity, 2 * expected.largest));
  const dec = new FrameDecoder(setup.limits, setup.capacity, setup.initial);
  let offset = 0;
  let got = 0;
  try {
    for (;;) {
      let frame: Frame | undefined;
      while ((frame = dec.next())) {
        const want = expected.frames[got];
        if (!want) return `decoded a frame past the expected ${expected.frames.length}`;
        const payload = bytes.subarray(want.start, want.start + want.length);
        if (
          frame.type !== want.type || frame.id !== want.id || !sameBytes(frame.payload, payload)
        ) {
          return `frame ${got} decoded as type ${frame.type} id ${frame.id} ` +
            `length ${frame.payload.length}, expected ${want.type}/${want.id}/${want.length}`;
        }
        if (frame.type !== FrameType.DATA) {
          try {
            decodeMessage(frame);
          } catch (err) {
            if (!isExpectedError(err, ["PROTOCOL"])) return `decodeMessage threw ${describe(err)}`;
          }
        }
        got++;
        report.frames++;
        if (got === 1 && setup.after) dec.setLimits(setup.after);
      }
      if (offset === bytes.length) break;
      const space = dec.space();
      if (space.length === 0) return "the decoder offers no room to read into";
      const n = Math.min(space.length, bytes.length - offset, rng.range(1, Math.min(maxRead, 1e9)));
      if (rng.chance(0.5)) {
        dec.push(bytes.subarray(offset, offset + n));
      } else {
        space.set(bytes.subarray(offset, offset + n));
        dec.commit(n);
        if (n === space.length) bound = capacity;
      }
      offset += n;
      // Before next() can throw for a bad header: push() may have grown the buffer for it.
      const grown = dec.space().buffer.byteLength;
      if (grown > bound) return `buffer of ${grown} bytes, more than the ${bound} needed`;
    }
  } catch (err) {
    if (!isExpectedError(err, ["PROTOCOL"])) return `threw ${describe(err)}`;
    if (!expected.error) return `rejected a legal stream: ${describe(err)}`;
    if (got !== expected.frames.length) {
      return `rejected after ${got} frames, before the ${expected.frames.length} legal ones`;
    }
    report.rejected++;
    return undefined;
  }
  if (expected.error) return `accepted a stream it must reject (${expected.error})`;
  if (got !== expected.frames.length) {
    return `decoded ${got} frames, expected ${expected.frames.length}`;
  }
  if (dec.buffered !== bytes.length - expected.consumed) {
    return `holds ${dec.buffered} bytes, expected ${bytes.length - expected.consumed}`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// The message parsers.

const isCount = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
const isMode = (v: unknown) => isCount(v) && v <= 0o7777;
const isTime = (v: unknown) => isCount(v) && v <= 8.64e15;
const isBool = (v: unknown) => typeof v === "boolean";
const isLimit = (v: unknown) => isCount(v) && v >= 1024 && v <= 1 << 20;
const isSha = (v: unknown) => typeof v === "string" && /^[0-9a-f]{64}$/.test(v);
/** A resume prefix: a 128- or 256-bit checksum in hex (the connection's). */
const isPrefix = (v: unknown) => typeof v === "string" && /^[0-9a-f]{32}(?:[0-9a-f]{32})?$/.test(v);
const isShaDigest = (v: unknown) =>
  typeof v === "object" && v !== null && (v as Result).algorithm === "sha256" &&
  isSha((v as Result).hex);
const isPath = (v: unknown) => typeof v === "string" && encoder.encode(v).length <= MAX_PATH_BYTES;
const isOptional = (check: (v: unknown) => boolean) => (v: unknown) => v === undefined || check(v);

type Result = Record<string, unknown>;

function isEntry(v: unknown): boolean {
  const e = v as Result;
  return typeof e.name === "string" &&
    ["file", "dir", "symlink", "other"].includes(e.type as string) &&
    isCount(e.size) && isCount(e.mtime) && isMode(e.mode);
}

/** Whether each field a parsed request holds is what the protocol allows. */
function isValidRequest(r: Result): boolean {
  const checks: Record<string, (v: unknown) => boolean> = {
    path: isPath,
    pattern: isPath,
    from: isPath,
    to: isPath,
    size: isOptional(isCount),
    mode: isOptional(isMode),
    mtime: isOptional(isTime),
    noClobber: isBool,
    recursive: isBool,
    parents: isBool,
    resume: isBool,
    offset: isCount,
    prefix: isOptional(isPrefix),
  };
  const fields = Object.entries(checks).every(([key, check]) =>
    !Object.hasOwn(r, key) || check(r[key])
  );
  // A resume point past the start names the bytes it continues after; a put's stays in the file.
  const offset = (r.offset ?? 0) as number;
  const resumes = offset === 0 || isPrefix(r.prefix) && (r.op !== "put" || r.resume === true);
  // A put of unknown size (a stream) resumes nothing.
  const within = r.op !== "put" ||
    (r.size === undefined ? offset === 0 && r.resume === false : offset <= (r.size as number));
  return (OPS as readonly unknown[]).includes(r.op) && fields && resumes && within;
}

/** The upload size a `partial` reply is checked against. */
const PARTIAL_REPLY_SIZE = 1000;

/** A parser, the codes it may throw, and what its result must satisfy. */
interface Parser {
  name: string;
  parse: (msg: Result) => unknown;
  codes: readonly ErrorCode[];
  valid: (r: Result) => boolean;
}

const PARSERS: Parser[] = [
  {
    name: "parseHello",
    parse: parseHello,
    codes: ["PROTOCOL"],
    // The agent goes into log lines: bounded.
    valid: (r) =>
      isCount(r.version) && isOptional((a) => typeof a === "string" && a.length <= 100)(r.agent),
  },
  {
    name: "parseWelcome",
    parse: parseWelcome,
    codes: ["PROTOCOL"],
    valid: (r) => {
      const limits = r.limits as Result;
      return isCount(r.version) && typeof r.agent === "string" && isLimit(limits.maxControl) &&
        isLimit(limits.maxData);
    },
  },
  {
    name: "parseRequest",
    parse: parseRequest,
    codes: ["PROTOCOL", "USAGE", "PATH_REFUSED"],
    valid: isValidRequest,
  },
  { name: "parseEntry", parse: parseEntry, codes: ["PROTOCOL"], valid: isEntry },
  {
    name: "parseLsReply",
    parse: parseLsReply,
    codes: ["PROTOCOL"],
    valid: (r) =>
      Array.isArray(r.entries) && r.entries.every(isEntry) && typeof r.more === "boolean",
  },
  {
    name: "parseGetReply",
    parse: parseGetReply,
    codes: ["PROTOCOL"],
    valid: (r) => isCount(r.size) && isCount(r.mtime) && isMode(r.mode) && isCount(r.offset),
  },
  {
    name: "parsePartialReply",
    parse: (msg) => ({ offset: parsePartialReply(msg, PARTIAL_REPLY_SIZE) }),
    codes: ["PROTOCOL"],
    valid: (r) => isCount(r.offset) && (r.offset as number) <= PARTIAL_REPLY_SIZE,
  },
  {
    name: "parseSumReply",
    parse: (msg) => parseSumReply(msg, "sha256"),
    codes: ["PROTOCOL"],
    valid: (r) => isShaDigest(r.digest) && isCount(r.size),
  },
  {
    name: "parseEnd",
    parse: (msg) => parseEnd(msg, "sha256"),
    codes: ["PROTOCOL"],
    valid: (r) => isShaDigest(r.digest),
  },
];

const ENTRY_PARSER = PARSERS.find((p) => p.parse === parseEntry)!;

/** Call one parser; what is wrong with what it did, if anything. */
function checkParse(
  parser: Parser,
  call: () => unknown,
  report: ParserReport,
): string | undefined {
  let result: unknown;
  try {
    result = call();
  } catch (err) {
    if (!isExpectedError(err, parser.codes)) return `threw ${describe(err)}`;
    report.rejected++;
    return undefined;
  }
  if (Object.getPrototypeOf(result) !== Object.prototype) {
    return "returned an object with a foreign prototype";
  }
  if (!parser.valid(result as Result)) return `accepted ${JSON.stringify(result)?.slice(0, 300)}`;
  report.accepted++;
  return undefined;
}

// deno-lint-ignore no-control-regex
const UNSAFE_TEXT = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

/** Payloads per parser case: the message as generated, then mutants of it. */
const MUTANTS_PER_CASE = 16;

/** What a parser run exercised. */
export interface ParserReport {
  cases: number;
  /** Payloads that were not a JSON object, rejected by decodeMessage. */
  notObjects: number;
  /** Parser calls that returned a (checked) result. */
  accepted: number;
  /** Parser calls that threw an expected FerryError. */
  rejected: number;
}

/**
 * Run `iterations` cases, each a valid message of some kind and mutants of it
 * (in their fields or their bytes), through decodeMessage and then every
 * parser of lib/commands.ts. Each may only return a result that the protocol
 * allows, or throw a FerryError with one of its codes; errorFromMessage must
 * always give a known code and printable text. Throws on the first violation.
 */
export function fuzzParsers(seed: number, iterations: number): ParserReport {
  const report: ParserReport = { cases: iterations, notObjects: 0, accepted: 0, rejected: 0 };
  const prototypeKeys = Object.getOwnPropertyNames(Object.prototype).join();
  for (let index = 0; index < iterations; index++) {
    const rng = caseRng(seed, "parsers", index);
    const template = messageTemplate(rng);
    // Many mutants of one message: each usually changes one field, next to valid ones.
    for (let variant = 0; variant < MUTANTS_PER_CASE; variant++) {
      const payload = messageBytes(rng, template, variant === 0 ? 0 : 1);
      const problem = parseCase(rng, payload, report);
      if (problem) {
        const shown = new TextDecoder().decode(payload.subarray(0, 200));
        throw failure(seed, "parser", index, `${problem}; payload ${JSON.stringify(shown)}`);
      }
    }
    if (Object.getOwnPropertyNames(Object.prototype).join() !== prototypeKeys) {
      throw failure(seed, "parser", index, "Object.prototype was modified");
    }
  }
  return report;
}

function parseCase(rng: Rng, payload: Uint8Array, report: ParserReport): string | undefined {
  let msg: Result;
  try {
    msg = decodeMessage({ type: FrameType.REQUEST, id: 1, payload });
  } catch (err) {
    if (!isExpectedError(err, ["PROTOCOL"])) return `decodeMessage threw ${describe(err)}`;
    report.notObjects++;
    return undefined;
  }
  for (const parser of PARSERS) {
    const problem = checkParse(parser, () => parser.parse(msg), report);
    if (problem) return `${parser.name} ${problem}`;
  }
  // A listing's array may hold anything at all, and each item goes to parseEntry.
  const item = JSON.parse(writeJson(randomValue(rng)));
  const problem = checkParse(ENTRY_PARSER, () => parseEntry(item), report);
  if (problem) return `parseEntry(${JSON.stringify(item)?.slice(0, 100)}) ${problem}`;
  let remote: unknown;
  try {
    remote = errorFromMessage(msg);
  } catch (err) {
    return `errorFromMessage threw ${describe(err)}`;
  }
  if (!(remote instanceof FerryError) || !isErrorCode(remote.code)) {
    return "errorFromMessage gave no FerryError with a known code";
  }
  if (UNSAFE_TEXT.test(remote.message) || !remote.message.isWellFormed()) {
    return `errorFromMessage kept unsafe text: ${JSON.stringify(remote.message.slice(0, 100))}`;
  }
  return undefined;
}

// ---------------------------------------------------------------------------
// A live server.

/** One fuzz connection: what to write, how, and what the server may answer. */
interface Plan {
  label: string;
  writes: { bytes: Uint8Array; delayMs: number }[];
  /** "eof": half-close and read until the server hangs up; "reset": close at once. */
  ending: "eof" | "reset";
  /** What the server's first frame must be. */
  first: "WELCOME" | "ERROR" | "either";
  /** Ids of the REQUEST frames sent: every frame the server sends for a request carries one. */
  requestIds: Set<number>;
  /** Partials the server may rightly keep after this connection: it lost one of their uploads. */
  mayKeep: string[];
  /**
   * The checksum and compression the HELLO asked for; undefined when it was
   * mutated (then the server's choice is not known in advance).
   */
  asked?: { algorithm: FuzzAlgorithm; compress: boolean };
}

/** Builds the frames of one session after HELLO, and names what it did. */
class SessionBuilder {
  readonly parts: Uint8Array[] = [];
  readonly labels: string[] = [];
  readonly requestIds = new Set<number>();
  /** Partials the server keeps if the connection is lost during these resumable puts. */
  readonly partials: string[] = [];
  /** The partial of the last step's resumable put, if its body is open: an end cuts it. */
  openPartial: string | undefined;
  #lastId = 0;

  constructor(
    readonly rng: Rng,
    readonly algorithm: FuzzAlgorithm = "sha256",
    readonly compress = false,
  ) {}

  /** The id of the next request: mostly fresh, sometimes reused or odd. */
  requestId(): number {
    const rng = this.rng;
    const id = rng.chance(0.85) ? ++this.#lastId : rng.pick([0, this.#lastId, 0xffffffff]);
    this.requestIds.add(id);
    return id;
  }

  frame(type: number, id: number, payload: Uint8Array, declared = payload.length): void {
    this.parts.push(frameBytes(type, id, payload, declared));
  }

  /** A request from the command set, mostly with some fields mutated; a put gets no body. */
  request(): void {
    const template = requestTemplate(this.rng);
    this.labels.push(`request(${template.fields[0][1]})`);
    // Mostly intact: requests that are carried out reach deeper into the server.
    const bytes = messageBytes(this.rng, template, 0.3);
    this.frame(FrameType.REQUEST, this.requestId(), bytes);
    const partial = partialName(bytes);
    if (partial) this.partials.push(partial);
    this.openPartial = partial;
  }

  /** A REQUEST whose payload is not a JSON object at all. */
  junkRequest(): void {
    const rng = this.rng;
    const payload = rng.pick([
      () => new Uint8Array(0),
      () => encoder.encode(rng.pick(["[]", "1", '"put"', "null", "{", "{}"])),
      () => rng.bytes(rng.range(1, 2000)),
    ])();
    this.labels.push("junk-request");
    this.frame(FrameType.REQUEST, this.requestId(), payload);
  }

  /**
   * A put whose declared size, body, frame sizes, ids and trailer may each
   * lie; or a resumable one, continuing a partial another connection may
   * have left (content depends only on path and size, so its prefix can match).
   */
  put(): void {
    const rng = this.rng;
    const id = this.requestId();
    const template = requestTemplate(rng, "put");
    const resume = rng.chance(0.4);
    const path = resume ? rng.pick(RESUME_PATHS) : template.fields.find(([k]) => k === "path")![1];
    const actual = resume
      ? rng.pick(RESUME_SIZES)
      : rng.pick([0, rng.int(100), rng.int(70_000), rng.range(250_000, 600_000)]);
    const content = typeof path === "string" ? contentFor(path, actual) : rng.bytes(actual);
    const lies: JsonValue[] = [
      actual + rng.range(1, 1000),
      Math.max(0, actual - rng.range(1, 1000)),
      2 ** 53 - 1,
      2 ** 40,
      "10",
      rng.pick(NASTY_NUMBERS),
    ];
    const size = rng.chance(resume ? 0.9 : 0.6) ? actual : rng.pick(lies);
    const offset = resume && rng.chance(0.6)
      ? rng.pick([1, 1000, 4096, actual >> 1, actual, actual + 1])
      : 0;
    const extra: [string, JsonValue][] = resume ? [["resume", true]] : [];
    if (offset > 0) {
      const prefix = digestHex(this.algorithm, content.subarray(0, offset));
      extra.push(["offset", offset], ["prefix", rng.chance(0.8) ? prefix : sha256Value(rng)]);
    }
    const fixed: Record<string, JsonValue> = resume
      ? { path, size, mtime: RESUME_MTIME, noClobber: false }
      : { path, size };
    const request = new JsonFields([
      ...template.fields
        .filter(([k]) => !["resume", "offset", "prefix"].includes(k))
        .map(([k, v]): [string, JsonValue] => [k, Object.hasOwn(fixed, k) ? fixed[k] : v]),
      ...extra,
    ]);
    const bytes = rng.chance(0.8) ? encoder.encode(writeJson(request)) : messageBytes(rng, request);
    this.frame(FrameType.REQUEST, id, bytes);
    const body = content.subarray(Math.min(offset, content.length));
    const maxData = DEFAULT_LIMITS.maxData;
    // Each fault ends the session, so each is rare enough that most bodies arrive whole.
    const oversized = rng.chance(0.03);
    const misdirected = rng.chance(0.05);
    for (let at = 0; at < body.length;) {
      const n = Math.min(body.length - at, rng.pick([rng.range(1, 4096), maxData]));
      const last = at + n === body.length;
      const declared = oversized && at === 0 ? maxData + 1 : n;
      const dataId = misdirected && last ? id + 1 : id;
      const chunk = body.subarray(at, at + n);
      if (this.compress && declared === n && rng.chance(0.5)) {
        // Compressed as ferry does, or now and then not zstd at all.
        const packed = rng.chance(0.95) ? zstdCompressSync(chunk) : rng.bytes(rng.range(1, 600));
        this.frame(FrameType.ZDATA, dataId, packed);
      } else {
        this.frame(FrameType.DATA, dataId, chunk, declared);
      }
      at += n;
    }
    // A resumable body is often left open: cut off by the end of the stream, it is kept.
    const ending = rng.chance(resume ? 0.3 : 0.1)
      ? "open"
      : rng.pick(["END", "END", "END", "END", "END", "END", "bad END", "ERROR"]);
    if (ending === "END") {
      const end = { [this.algorithm]: digestHex(this.algorithm, content) };
      this.frame(FrameType.END, id, encoder.encode(JSON.stringify(end)));
    } else if (ending === "bad END") {
      this.frame(FrameType.END, id, messageBytes(rng, obj({ [this.algorithm]: sha256Value(rng) })));
    } else if (ending === "ERROR") {
      this.frame(FrameType.ERROR, id, messageBytes(rng, obj({ code: "CANCELLED", message: "x" })));
    }
    // An open body just stops, and whatever comes next breaks into it.
    const partial = partialName(bytes);
    if (partial) this.partials.push(partial);
    this.openPartial = ending === "open" ? partial : undefined;
    const what = resume ? `resumable at ${offset}, ` : "";
    this.labels.push(`put(${what}${actual} bytes, size ${writeJson(size)}, ending ${ending})`);
  }

  /** DATA, END or ERROR for no upload in progress. */
  stray(): void {
    const rng = this.rng;
    const type = rng.pick([FrameType.DATA, FrameType.END, FrameType.ERROR]);
    this.labels.push(`stray(${type})`);
    this.frame(type, rng.chance(0.5) ? this.#lastId : frameId(rng), rng.bytes(rng.int(100)));
  }

  /** A header that announces far more than the limits allow, and a little of it. */
  hugeHeader(): void {
    const rng = this.rng;
    const type = rng.range(FrameType.HELLO, FrameType.ERROR);
    const limit = type === FrameType.DATA ? DEFAULT_LIMITS.maxData : DEFAULT_LIMITS.maxControl;
    const declared = rng.pick([limit + 1, 2 ** 31, 2 ** 32 - 1]);
    this.labels.push(`huge(${type}, ${declared})`);
    this.frame(type, frameId(rng), rng.bytes(rng.int(5000)), declared);
  }

  /** A frame the client never sends: unknown, or meant for the other direction. */
  wrongType(): void {
    const rng = this.rng;
    const type = rng.chance(0.5)
      ? unknownType(rng)
      : rng.pick([FrameType.HELLO, FrameType.WELCOME, FrameType.REPLY]);
    this.labels.push(`type(${type})`);
    this.frame(type, frameId(rng), messageBytes(rng, messageTemplate(rng)));
  }

  /** Bytes that are no frame at all. */
  garbage(): void {
    this.labels.push("garbage");
    this.parts.push(this.rng.bytes(this.rng.range(1, 3000)));
  }
}

/** The same bytes for the same path and size, in every connection. */
function contentFor(path: string, size: number): Uint8Array {
  let hash = 0x811c9dc5;
  for (const byte of encoder.encode(`${path}\0${size}`)) hash = Math.imul(hash ^ byte, 0x01000193);
  return new Rng(hash).bytes(size);
}

/** The name of the partial a resumable put request would keep, as the server names it. */
function partialName(request: Uint8Array): string | undefined {
  try {
    const req = parseRequest(decodeMessage({ type: FrameType.REQUEST, id: 0, payload: request }));
    if (req.op !== "put" || !req.resume) return undefined;
    return `.ferry-${resumeKey("sha256", normalizePath(req.path), req.size, req.mtime)}.partial`;
  } catch {
    // The server refuses such a request before it creates anything.
    return undefined;
  }
}

/**
 * A HELLO frame offering one checksum (which the session's trailers are
 * computed in) and perhaps compression; mutated, its message, id, type or
 * length may be off.
 */
function hello(
  rng: Rng,
  mutated: boolean,
  algorithm: FuzzAlgorithm = "sha256",
  compress = false,
): Uint8Array {
  const template = obj({
    version: PROTOCOL_VERSION,
    agent: "fuzz",
    checksums: [algorithm],
    ...(compress && { compress: ["zstd"] }),
  });
  if (!mutated) return frameBytes(FrameType.HELLO, 0, encoder.encode(writeJson(template)));
  const payload = messageBytes(rng, template);
  if (rng.chance(0.7)) return frameBytes(FrameType.HELLO, frameId(rng), payload);
  const type = rng.chance(0.5) ? unknownType(rng) : FrameType.HELLO;
  return frameBytes(type, 0, payload, edgeLength(rng, 4096));
}

/** A connection's plan, from its own generator: fixed by the seed, whatever the timing. */
function connectionPlan(rng: Rng): Plan {
  const algorithm = rng.pick(["sha256", "xxh128"] as const);
  const compress = rng.chance(0.3);
  const session = new SessionBuilder(rng, algorithm, compress);
  const kind = rng.pick(["garbage", "bad-hello", "session", "session", "session", "idle"]);
  let first: Plan["first"] = "WELCOME";
  const parts: Uint8Array[] = [];
  if (kind === "garbage") {
    first = "ERROR";
    parts.push(rng.bytes(rng.pick([rng.range(1, 16), rng.range(1, 4096), rng.range(1, 65536)])));
  } else if (kind === "idle") {
    first = "either";
    parts.push(hello(rng, false).subarray(0, rng.int(HEADER_SIZE + 1)));
  } else {
    const mutated = kind === "bad-hello";
    if (mutated) first = "either";
    parts.push(hello(rng, mutated, algorithm, compress));
    // Steps the session survives first, then perhaps one that ends it.
    const survivable = [() => session.request(), () => session.put(), () => session.junkRequest()];
    const fatal = [
      () => session.stray(),
      () => session.hugeHeader(),
      () => session.wrongType(),
      () => session.garbage(),
    ];
    // A resumable upload left open ends the session, so that the end of stream cuts it off.
    for (let n = rng.range(1, 10); n > 0 && !session.openPartial; n--) rng.pick(survivable)();
    if (!session.openPartial && rng.chance(0.4)) rng.pick(fatal)();
    parts.push(...session.parts);
  }
  let bytes = concat(parts);
  // An ASCII capital first is an HTTP request line's start: HTTP's face answers that, in HTTP
  // (tests/http_test.ts); this fuzzes the protocol's.
  if (bytes[0] >= 0x41 && bytes[0] <= 0x5a) bytes[0] |= 0x80;
  let ending: Plan["ending"] = rng.chance(0.75) ? "eof" : "reset";
  let cut = "";
  if (kind !== "idle" && rng.chance(0.15)) {
    // Abruptly gone in the middle of a frame.
    bytes = bytes.subarray(0, rng.int(bytes.length));
    cut = ", cut";
  }
  const delivery = kind === "idle"
    ? "idle"
    : rng.pick(["whole", "chunks", "chunks", "stalls", "dribble"]);
  const writes = split(rng, bytes, delivery);
  if (kind === "idle") ending = "reset";
  const label = `${kind}[${session.labels.join(", ")}] ${delivery}, ${ending}${cut}`;
  // Closed or cut, any upload may be the one in progress; ended cleanly, only an unfinished one.
  const open = session.openPartial ? [session.openPartial] : [];
  const mayKeep = ending === "reset" || cut ? session.partials : open;
  const asked = kind === "session" ? { algorithm, compress } : undefined;
  return { label, writes, ending, first, requestIds: session.requestIds, mayKeep, asked };
}

/**
 * Cut `bytes` into writes: all at once; in random pieces; in pieces with a
 * few long pauses anywhere, as a stalling client (mid-upload, say) makes
 * them; or dribbled a few bytes at a time.
 */
function split(rng: Rng, bytes: Uint8Array, delivery: string): Plan["writes"] {
  if (delivery === "idle") return [{ bytes, delayMs: rng.int(200) }];
  if (delivery === "whole") return [{ bytes, delayMs: 0 }];
  const writes: Plan["writes"] = [];
  // A dribble of a long stream would take minutes: only its first bytes trickle.
  const slow = delivery === "dribble" ? Math.min(bytes.length, 512) : 0;
  const stall = () => delivery === "stalls" && rng.chance(0.3) ? rng.range(20, 200) : 0;
  for (let offset = 0; offset < bytes.length;) {
    const n = offset < slow ? rng.range(1, 16) : rng.range(1, Math.max(1, bytes.length >> 2));
    const delayMs = offset < slow ? rng.int(3) : stall();
    writes.push({ bytes: bytes.subarray(offset, offset + n), delayMs });
    offset += n;
  }
  return writes;
}

/** What a live barrage exercised. */
export interface ServerReport {
  connections: number;
  /** Connections the server welcomed. */
  welcomed: number;
  /** Frames the server sent, all checked. */
  frames: number;
  /** REPLY frames: requests the server carried out. */
  replies: number;
  /** ERROR frames the server sent, by code. */
  errors: Record<string, number>;
  /** Partials the server may rightly keep: connections were lost during their uploads. */
  mayKeep: Set<string>;
}

/** How long the server may take to hang up once a connection has said all it had. */
const HANGUP_MS = 10_000;

/** Options for {@linkcode fuzzServer}. */
export interface ServerFuzzOptions {
  /** Connections open at once (default 16). */
  concurrency?: number;
  /** Hears about progress, once per 1000 connections. */
  onProgress?: (done: number) => void;
  /** The server's log so far: a failed connection's lines are quoted in the report. */
  serverLog?: () => string;
}

/**
 * Open `connections` connections to the ferryd on `port`, each sending one
 * generated plan: garbage, mutated handshakes, sessions of mutated requests,
 * lying uploads, stray and oversized frames, delivered whole, in pieces or
 * dribbled, and ended by a half-close, a reset or a cut mid-frame. Every
 * frame the server sends back is checked (well formed, the right type, ids
 * the client used, nothing after a fatal ERROR), and a server that does not
 * hang up after the client's end of stream is a failure. Throws with the
 * failed connections' plans.
 */
export async function fuzzServer(
  port: number,
  seed: number,
  connections: number,
  options: ServerFuzzOptions = {},
): Promise<ServerReport> {
  const report: ServerReport = {
    connections,
    welcomed: 0,
    frames: 0,
    replies: 0,
    errors: {},
    mayKeep: new Set(),
  };
  const problems: string[] = [];
  let next = 0;
  const worker = async () => {
    while (next < connections) {
      const index = next++;
      const plan = connectionPlan(caseRng(seed, "server", index));
      for (const name of plan.mayKeep) report.mayKeep.add(name);
      const { problem, clientPort } = await runPlan(port, plan, report);
      if (problem) {
        // The server names each connection by the client's address in its log.
        const logged = (options.serverLog?.() ?? "").split("\n")
          .filter((line) => line.includes(`:${clientPort} `));
        const details = [`plan: ${plan.label}`, ...logged].join("\n  ");
        problems.push(failure(seed, "server", index, `${problem}\n  ${details}`).message);
      }
      if ((index + 1) % 1000 === 0) options.onProgress?.(index + 1);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 16 }, worker));
  if (problems.length > 0) {
    throw new Error(
      `${problems.length} connection(s) went wrong:\n${problems.slice(0, 10).join("\n")}`,
    );
  }
  return report;
}

/** Carry out one plan on a fresh connection; what went wrong, if anything. */
async function runPlan(
  port: number,
  plan: Plan,
  report: ServerReport,
): Promise<{ problem?: string; clientPort: number }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const clientPort = conn.localAddr.port;
  const reading = readServer(conn, plan, report);
  try {
    for (const { bytes, delayMs } of plan.writes) {
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      let rest = bytes;
      while (rest.length > 0) rest = rest.subarray(await conn.write(rest));
    }
  } catch {
    // The server hung up on this connection, as it may: what it sent is checked below.
  }
  if (plan.ending === "reset") {
    conn.close();
    return { ...await reading, clientPort };
  }
  await conn.closeWrite().catch(() => {});
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hungUp = await Promise.race([
    reading,
    new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), HANGUP_MS)),
  ]);
  clearTimeout(timer);
  conn.close();
  if (!hungUp) {
    await reading;
    const problem = `the server kept the connection open ${HANGUP_MS} ms after the end of stream`;
    return { problem, clientPort };
  }
  return { ...hungUp, clientPort };
}

/** Read and check all the server sends, until it hangs up or resets, or the client closes. */
async function readServer(
  conn: Deno.Conn,
  plan: Plan,
  report: ServerReport,
): Promise<{ problem?: string }> {
  const dec = new FrameDecoder(DEFAULT_LIMITS, CLIENT_RECEIVE_BUFFER);
  let frames = 0;
  let closedBy: string | undefined;
  for (;;) {
    let n: number | null;
    try {
      n = await conn.read(dec.space());
    } catch {
      // Reset (the server closed with our bytes unread) or closed here: no more to check.
      return {};
    }
    // A stream cut mid-frame proves nothing: a server that hangs up with some of our bytes
    // unread resets the connection, the kernel drops the output it had not delivered yet, and
    // Deno may report that as a plain end of stream.
    if (n === null) return {};
    try {
      dec.commit(n);
      let frame: Frame | undefined;
      while ((frame = dec.next())) {
        const problem = checkServerFrame(frame, frames++, plan, report, closedBy);
        if (problem) return { problem };
        // An ERROR with id 0 ends the connection, unless a request used id 0 itself.
        if (frame.type === FrameType.ERROR && frame.id === 0 && !plan.requestIds.has(0)) {
          closedBy = "ERROR with id 0";
        }
      }
    } catch (err) {
      return { problem: `the server sent a malformed frame: ${describe(err)}` };
    }
  }
}

function checkServerFrame(
  frame: Frame,
  index: number,
  plan: Plan,
  report: ServerReport,
  closedBy: string | undefined,
): string | undefined {
  const what = `server frame ${index} (type ${frame.type}, id ${frame.id})`;
  report.frames++;
  if (closedBy) return `${what} came after ${closedBy}`;
  if (index === 0 && plan.first !== "either") {
    const want = plan.first === "WELCOME" ? FrameType.WELCOME : FrameType.ERROR;
    // At its connection limits the server turns anyone away, before the handshake.
    const busy = frame.type === FrameType.ERROR && decodeMessage(frame).code === "BUSY";
    if (frame.type !== want && !busy) return `${what}: the first frame must be ${plan.first}`;
  }
  switch (frame.type) {
    case FrameType.WELCOME:
      if (index !== 0 || frame.id !== 0) return `${what}: WELCOME only as the first frame, id 0`;
      parseWelcome(decodeMessage(frame));
      report.welcomed++;
      return undefined;
    case FrameType.ERROR: {
      const msg = decodeMessage(frame);
      if (!isErrorCode(msg.code)) return `${what}: unknown error code ${JSON.stringify(msg.code)}`;
      if (frame.id !== 0 && !plan.requestIds.has(frame.id)) {
        return `${what}: no request has that id`;
      }
      report.errors[msg.code] = (report.errors[msg.code] ?? 0) + 1;
      return undefined;
    }
    case FrameType.REPLY:
    case FrameType.DATA:
    case FrameType.ZDATA:
    case FrameType.END:
      if (!plan.requestIds.has(frame.id)) return `${what}: no request has that id`;
      if (frame.type === FrameType.REPLY) report.replies++;
      if (frame.type === FrameType.REPLY) decodeMessage(frame);
      if (frame.type === FrameType.ZDATA && plan.asked && !plan.asked.compress) {
        return `${what}: ZDATA on a connection that did not ask for compression`;
      }
      if (frame.type === FrameType.END) {
        // In the checksum the session offered; after a mutated HELLO, in either one.
        const msg = decodeMessage(frame);
        parseEnd(msg, plan.asked?.algorithm ?? ("xxh128" in msg ? "xxh128" : "sha256"));
      }
      return undefined;
    default:
      return `${what}: the server never sends this type`;
  }
}

/**
 * What ferryd may take at its peak: the runtime's ~50 MiB plus, by design, at
 * most about 1 MiB per connection (see docs/protocol.md, Memory), for a few
 * dozen fuzz connections at once.
 */
const MAX_RSS = 200 * 1024 * 1024;

/** What {@linkcode checkServerAfterFuzz} measured. */
export interface HealthReport {
  /** Peak resident memory of the server process over its whole life (bytes). */
  peakRss: number;
}

/**
 * After a barrage: the ferryd subprocess is still running; the real CLI puts
 * and gets a file through it byte for byte; its peak resident memory stayed
 * under {@linkcode MAX_RSS}; its log holds no stack trace; and once the fuzz connections
 * are gone its root holds no `.ferry-` temporary file, nor any resumable
 * partial but those whose upload `fuzzed` cut off. Throws on the first that
 * fails.
 */
export async function checkServerAfterFuzz(
  server: ServerProcess,
  fuzzed: ServerReport,
): Promise<HealthReport> {
  const exited = await Promise.race([
    server.process.status.then(() => true),
    new Promise<boolean>((r) => setTimeout(() => r(false), 100)),
  ]);
  if (exited) throw new Error(`the server died:\n${server.log().slice(-3000)}`);
  await using local = await tempDir("ferry-fuzz-");
  const src = join(local.path, "good.bin");
  const back = join(local.path, "back.bin");
  await writeRandomFile(src, 700_000);
  const put = await runClient(server.address, ["put", src, GOOD_CLIENT_PATH]);
  if (put.code !== 0) throw new Error(`a good client's put failed (${put.code}): ${put.stderr}`);
  const get = await runClient(server.address, ["get", GOOD_CLIENT_PATH, back]);
  if (get.code !== 0) throw new Error(`a good client's get failed (${get.code}): ${get.stderr}`);
  if (!await sameContent(src, back)) throw new Error("a good client got back other bytes");
  const peak = peakRss(server.process.pid);
  if (peak > MAX_RSS) {
    throw new Error(`the server peaked at ${peak >> 20} MiB resident, over ${MAX_RSS >> 20} MiB`);
  }
  const trace = /\bat .*\.ts:\d+/.exec(server.log());
  if (trace) throw new Error(`a stack trace in the server log: ${trace[0]}`);
  await noTempFiles(server.root, fuzzed.mayKeep);
  return { peakRss: peak };
}

/**
 * Wait until `root` holds no temporary upload files (sessions remove theirs as
 * they notice the end of their connection), and no partials but those in `mayKeep`.
 */
async function noTempFiles(root: string, mayKeep: ReadonlySet<string>): Promise<void> {
  const deadline = Date.now() + 5000;
  for (;;) {
    const left = (await listTree(root)).filter((path) => {
      const name = basename(path);
      return name.startsWith(".ferry-") && !mayKeep.has(name);
    });
    if (left.length === 0) return;
    if (Date.now() > deadline) {
      const sizes = left.slice(0, 10).map((p) =>
        `${p} (${Deno.statSync(join(root, p)).size} bytes)`
      );
      throw new Error(`temporary files left in the root: ${sizes.join(", ")}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
