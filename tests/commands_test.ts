import assert from "node:assert/strict";
import {
  errorFromMessage,
  MAX_PATH_BYTES,
  parseEnd,
  parseHello,
  parseLsReply,
  parseRequest,
} from "../lib/commands.ts";
import { FerryError } from "../lib/util/errors.ts";

const rejects = (fn: () => unknown, code: string) =>
  assert.throws(fn, (e) => e instanceof FerryError && e.code === code);

Deno.test("parseRequest: valid requests", () => {
  assert.deepEqual(parseRequest({ op: "ls" }), { op: "ls", path: "", recursive: false });
  assert.deepEqual(parseRequest({ op: "ls", path: "a", recursive: true }), {
    op: "ls",
    path: "a",
    recursive: true,
  });
  assert.deepEqual(parseRequest({ op: "get", path: "a" }), {
    op: "get",
    path: "a",
    fresh: false,
    retries: false,
    offset: 0,
  });
  assert.equal(
    (parseRequest({ op: "get", path: "a", fresh: true }) as { fresh: boolean }).fresh,
    true,
  );
  assert.deepEqual(parseRequest({ op: "put", path: "a", size: 0 }), {
    op: "put",
    path: "a",
    size: 0,
    mode: undefined,
    mtime: undefined,
    noClobber: false,
    resume: false,
    offset: 0,
  });
  assert.deepEqual(
    parseRequest({ op: "put", path: "a", size: 1, mode: 0o755, mtime: 5, noClobber: true }),
    {
      op: "put",
      path: "a",
      size: 1,
      mode: 0o755,
      mtime: 5,
      noClobber: true,
      resume: false,
      offset: 0,
    },
  );
  const prefix = "a".repeat(64);
  assert.deepEqual(
    parseRequest({ op: "put", path: "a", size: 9, resume: true, offset: 4, prefix }),
    {
      op: "put",
      path: "a",
      size: 9,
      mode: undefined,
      mtime: undefined,
      noClobber: false,
      resume: true,
      offset: 4,
      prefix,
    },
  );
  assert.deepEqual(parseRequest({ op: "get", path: "a", offset: 7, prefix }), {
    op: "get",
    path: "a",
    fresh: false,
    retries: false,
    offset: 7,
    prefix,
  });
  assert.deepEqual(parseRequest({ op: "partial", path: "a", size: 3 }), {
    op: "partial",
    path: "a",
    size: 3,
    mtime: undefined,
  });
  assert.deepEqual(parseRequest({ op: "mv", from: "a", to: "b" }), {
    op: "mv",
    from: "a",
    to: "b",
  });
  assert.deepEqual(parseRequest({ op: "rm", path: "a" }), {
    op: "rm",
    path: "a",
    recursive: false,
  });
  assert.deepEqual(parseRequest({ op: "mkdir", path: "a", parents: true }), {
    op: "mkdir",
    path: "a",
    parents: true,
  });
  assert.deepEqual(parseRequest({ op: "glob", pattern: "*.txt" }), {
    op: "glob",
    pattern: "*.txt",
  });
  assert.deepEqual(parseRequest({ op: "sum", path: "a" }), { op: "sum", path: "a" });
  assert.deepEqual(parseRequest({ op: "stat", path: "a" }), { op: "stat", path: "a" });
  assert.deepEqual(parseRequest({ op: "close" }), { op: "close" });
});

Deno.test("parseRequest: every field from the network is checked", () => {
  rejects(() => parseRequest({}), "USAGE");
  rejects(() => parseRequest({ op: "rm -rf" }), "USAGE");
  rejects(() => parseRequest({ op: 5 }), "USAGE");
  rejects(() => parseRequest({ op: "get" }), "PROTOCOL");
  rejects(() => parseRequest({ op: "get", path: 5 }), "PROTOCOL");
  rejects(() => parseRequest({ op: "get", path: "a", fresh: "yes" }), "PROTOCOL");
  rejects(() => parseRequest({ op: "get", path: "x".repeat(MAX_PATH_BYTES + 1) }), "PATH_REFUSED");
  for (const size of [-1, 1.5, "10", null, 2 ** 53, Infinity, NaN]) {
    rejects(() => parseRequest({ op: "put", path: "a", size }), "PROTOCOL");
  }
  rejects(() => parseRequest({ op: "put", path: "a", size: 1, mode: 0o10000 }), "PROTOCOL");
  rejects(() => parseRequest({ op: "put", path: "a", size: 1, noClobber: "yes" }), "PROTOCOL");
  rejects(() => parseRequest({ op: "rm", path: "a", recursive: 1 }), "PROTOCOL");
  rejects(() => parseRequest({ op: "mv", from: "a" }), "PROTOCOL");
  rejects(() => parseRequest({ op: "glob" }), "PROTOCOL");
  // Resume points: no negative or fractional offsets, none beyond the size, none without a
  // hash of what precedes them, and an upload offset only for a resumable upload.
  const prefix = "a".repeat(64);
  for (const offset of [-1, 1.5, "3", null, 2 ** 53]) {
    rejects(() => parseRequest({ op: "get", path: "a", offset, prefix }), "PROTOCOL");
  }
  rejects(() => parseRequest({ op: "get", path: "a", offset: 3 }), "PROTOCOL");
  rejects(() => parseRequest({ op: "get", path: "a", offset: 3, prefix: "xyz" }), "PROTOCOL");
  rejects(
    () => parseRequest({ op: "put", path: "a", size: 2, resume: true, offset: 3, prefix }),
    "PROTOCOL",
  );
  rejects(() => parseRequest({ op: "put", path: "a", size: 5, offset: 3, prefix }), "PROTOCOL");
  rejects(() => parseRequest({ op: "partial", path: "a" }), "PROTOCOL");
});

Deno.test("parseHello / parseEnd / parseLsReply validate their fields", () => {
  assert.equal(parseHello({ version: 1, agent: "x".repeat(500) }).agent?.length, 100);
  rejects(() => parseHello({ version: "1" }), "PROTOCOL");
  rejects(() => parseEnd({ sha256: "abc" }, "sha256"), "PROTOCOL");
  rejects(() => parseEnd({ sha256: "A".repeat(64) }, "sha256"), "PROTOCOL");
  assert.equal(parseEnd({ sha256: "a".repeat(64) }, "sha256").digest.hex, "a".repeat(64));
  // A trailer in another checksum than the connection's is refused.
  rejects(() => parseEnd({ sha256: "a".repeat(64) }, "xxh128"), "PROTOCOL");
  rejects(() => parseEnd({ xxh128: "a".repeat(64) }, "xxh128"), "PROTOCOL");
  assert.throws(
    () => parseEnd({ xxh128: "b".repeat(32) }, "sha256"),
    /the trailer is in xxh128, but this connection checks with sha256/,
  );
  assert.equal(parseEnd({ xxh128: "b".repeat(32), size: 1 }, "xxh128").digest.hex, "b".repeat(32));
  rejects(() => parseLsReply({ entries: {}, more: false }), "PROTOCOL");
  rejects(
    () =>
      parseLsReply({
        entries: [{ name: "a", type: "bomb", size: 1, mtime: 0, mode: 0 }],
        more: false,
      }),
    "PROTOCOL",
  );
  rejects(() => parseLsReply({ entries: [null], more: false }), "PROTOCOL");
  assert.equal(
    parseLsReply({
      entries: [{ name: "a", type: "file", size: 1, mtime: 0, mode: 0o644 }],
      more: true,
    }).more,
    true,
  );
});

Deno.test("errorFromMessage: unknown codes become PROTOCOL, messages are bounded", () => {
  assert.equal(errorFromMessage({ code: "NOT_FOUND", message: "x" }).code, "NOT_FOUND");
  assert.equal(errorFromMessage({ code: "toString", message: "x" }).code, "PROTOCOL");
  assert.equal(errorFromMessage({ code: 1 }).message, "remote error");
  assert.equal(errorFromMessage({ code: "IO", message: "m".repeat(10_000) }).message.length, 500);
});
