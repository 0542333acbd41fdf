/**
 * Fuzzing: random and mutated frames against the decoder, the message parsers
 * and a live ferryd. A fixed seed by default, so CI runs the same cases every
 * time; FERRY_FUZZ_SEED and FERRY_FUZZ_ITERATIONS change them, and
 * `deno run -A scripts/fuzz.ts` runs the same fuzzers for longer.
 */

import assert from "node:assert/strict";
import {
  checkServerAfterFuzz,
  fuzzDecoder,
  fuzzOptionsFromEnv,
  fuzzParsers,
  fuzzServer,
} from "./fuzz_cases.ts";
import { startServer } from "./helpers.ts";

const { seed, iterations } = fuzzOptionsFromEnv();
const run = `seed ${seed}, ${iterations} cases`;
// A handful of cases may miss an outcome by chance; a real run that never sees one has gone blind.
const blindnessCheck = iterations >= 100;

Deno.test(`fuzz: the frame decoder decodes exactly, rejects early, stays small (${run})`, () => {
  const report = fuzzDecoder(seed, iterations);
  if (blindnessCheck) assert.ok(report.frames > 0 && report.rejected > 0, "both outcomes seen");
});

Deno.test(`fuzz: the message parsers only ever throw FerryError (${run})`, () => {
  const report = fuzzParsers(seed, iterations);
  if (blindnessCheck) {
    assert.ok(report.accepted > 0 && report.rejected > 0 && report.notObjects > 0, "all outcomes");
  }
});

Deno.test(`fuzz: a live server survives a barrage and serves a good client (${run})`, async () => {
  await using server = await startServer();
  const report = await fuzzServer(server.port, seed, iterations, { serverLog: server.log });
  if (blindnessCheck) {
    assert.ok(report.welcomed > 0 && report.replies > 0, "sessions got through the handshake");
    assert.ok(report.errors.PROTOCOL > 0, "broken frames were answered");
  }
  await checkServerAfterFuzz(server, report);
});
