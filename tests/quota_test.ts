import assert from "node:assert/strict";
import { Quota } from "../lib/storage/quota.ts";

const empty = () => ({ files: 0, partials: new Map<string, number>() });

Deno.test("Quota: a takeover moves the reservation of the upload that writes the partial", () => {
  const quota = new Quota(1000, empty());
  const writer = quota.reserve(300, "d/.ferry-k.partial");
  writer.started();
  const successor = quota.reserve(300, "d/.ferry-k.partial", { takeover: true });
  successor.started();
  assert.equal(quota.used, 300, "the partial is counted once");
  writer.release();
  successor.release();
  assert.equal(quota.used, 0);
});

Deno.test("Quota: an upload that fell back to a private file is not taken over", () => {
  const quota = new Quota(1000, empty());
  const writer = quota.reserve(300, "d/.ferry-k.partial");
  writer.started();
  // Same file, started afresh while the partial was busy: it writes a private temp file.
  const fresh = quota.reserve(300, "d/.ferry-k.partial");
  fresh.started(false);
  const successor = quota.reserve(300, "d/.ferry-k.partial", { takeover: true });
  successor.started();
  // The stalled writer's connection ends: the private file's upload still holds its bytes.
  writer.release();
  assert.equal(quota.used, 600);
  for (const held of [fresh, successor]) held.release();
  assert.equal(quota.used, 0);
});

Deno.test("Quota: partials are counted by path, moved and removed by path", () => {
  const quota = new Quota(1000, { files: 100, partials: new Map([["d/.ferry-k.partial", 200]]) });
  quota.keep("e/.ferry-k.partial", 200);
  assert.equal(quota.used, 500, "the same key in two places counts twice");
  quota.remove({ files: 0, partials: new Map([["d/.ferry-k.partial", 200]]) });
  assert.equal(quota.used, 300);
  quota.add({ files: 50, partials: new Map([["f/.ferry-j.partial", 10]]) });
  assert.equal(quota.used, 360);
  assert.throws(() => quota.reserve(700), /over quota/);
});
