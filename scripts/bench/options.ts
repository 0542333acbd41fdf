/**
 * The benchmark's command line.
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { MIB } from "./measure.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** What to measure and where to write the report; sizes in bytes. */
export interface BenchOptions {
  /** The large file (`--size-mib`). */
  size: number;
  /** Files of 4 KiB in the tree (`--files`). */
  files: number;
  /** Measured repetitions after the warm-up round (`--reps`). */
  reps: number;
  /** Concurrent clients (`--clients`). */
  clients: number;
  /** The much larger file of the memory check, 0 for none (`--big-mib`). */
  big: number;
  /** Where the report goes (`--out`). */
  out: string;
}

/** Parse `args`; throws on an unknown option. */
export function parseOptions(args: string[]): BenchOptions {
  const { values } = parseArgs({
    args,
    options: {
      "size-mib": { type: "string", default: "1024" },
      files: { type: "string", default: "10000" },
      reps: { type: "string", default: "3" },
      clients: { type: "string", default: "100" },
      "big-mib": { type: "string", default: "4096" },
      out: { type: "string", default: join(ROOT, "BENCHMARKS.md") },
    },
  });
  return {
    size: Number(values["size-mib"]) * MIB,
    files: Number(values.files),
    reps: Number(values.reps),
    clients: Number(values.clients),
    big: Number(values["big-mib"]) * MIB,
    out: values.out,
  };
}
