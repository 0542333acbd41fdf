/**
 * `deno task fuzz`: the fuzzers of tests/fuzz_test.ts, for longer and with a
 * fresh seed each run.
 *
 *   deno run -A scripts/fuzz.ts [--seed N] [--iterations N] [--concurrency N]
 *                               [--only decoder,parsers,server]
 *
 * The command that replays the run is printed first. The live server's
 * connections replay the same bytes, though how they interleave is up to
 * timing.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  checkServerAfterFuzz,
  fuzzDecoder,
  fuzzParsers,
  fuzzServer,
  parseCount,
} from "../tests/fuzz_cases.ts";
import { elapsed } from "../lib/util/elapsed.ts";
import { startServer } from "../tests/helpers.ts";

const FUZZERS = ["decoder", "parsers", "server"];
const USAGE = `usage: deno run -A scripts/fuzz.ts [--seed N] [--iterations N] [--concurrency N]
                                     [--only ${FUZZERS.join(",")}]`;

/** The run's settings from the command line; throws on anything it does not know. */
function settings(args: string[]) {
  const { values } = parseArgs({
    args,
    options: {
      seed: { type: "string" },
      iterations: { type: "string", default: "20000" },
      only: { type: "string", default: FUZZERS.join(",") },
      concurrency: { type: "string", default: "16" },
      help: { type: "boolean", short: "h" },
    },
  });
  const only = values.only.split(",").map((s) => s.trim());
  const unknown = only.filter((name) => !FUZZERS.includes(name));
  if (unknown.length > 0) throw new Error(`unknown fuzzer ${unknown.join(", ")}`);
  return {
    help: values.help ?? false,
    seed: values.seed === undefined
      ? crypto.getRandomValues(new Uint32Array(1))[0]
      : parseCount(values.seed, "--seed") >>> 0,
    iterations: parseCount(values.iterations, "--iterations"),
    concurrency: Math.max(1, parseCount(values.concurrency, "--concurrency")),
    only,
  };
}

let run: ReturnType<typeof settings>;
try {
  run = settings(Deno.args);
} catch (err) {
  console.error(`fuzz: ${(err as Error).message}\n${USAGE}`);
  Deno.exit(2);
}
if (run.help) {
  console.log(USAGE);
  Deno.exit(0);
}
const { seed, iterations, concurrency, only } = run;

const replay = `--seed ${seed} --iterations ${iterations} --concurrency ${concurrency}`;
console.log(`fuzz: replay with: deno run -A scripts/fuzz.ts ${replay} --only ${only.join(",")}`);

async function timed(name: string, work: () => unknown): Promise<void> {
  if (!only.includes(name)) return;
  const started = performance.now();
  const result = await work();
  console.log(`${name}: ok in ${elapsed(started).toFixed(1)} s ${JSON.stringify(result)}`);
}

try {
  await timed("decoder", () => fuzzDecoder(seed, iterations));
  await timed("parsers", () => fuzzParsers(seed, iterations));
  await timed("server", async () => {
    await using server = await startServer();
    const report = await fuzzServer(server.port, seed, iterations, {
      concurrency,
      serverLog: server.log,
      onProgress: (done) => console.log(`server: ${done} connections`),
    });
    const health = await checkServerAfterFuzz(server, report);
    return { ...report, mayKeep: report.mayKeep.size, ...health };
  });
} catch (err) {
  console.error(`fuzz: FAILED with seed ${seed}\n${(err as Error).message}`);
  Deno.exit(1);
}
