/**
 * The side-by-side rounds: every contender, every transfer, alternated.
 *
 * @module
 */

import type { Contender } from "./contenders/contender.ts";
import { run } from "./system.ts";

/** One contender's measurements. */
export interface Row {
  /** Seconds of each large-file upload. */
  put?: number[];
  /** Seconds of each large-file download. */
  get?: number[];
  /** Seconds of each tree upload. */
  putTree?: number[];
  /** Seconds of each tree download. */
  getTree?: number[];
  /** Seconds of each compressible tree upload, compressed. */
  putText?: number[];
  /** Seconds of each compressible tree download, compressed. */
  getText?: number[];
  /** Peak client RSS during large-file runs, in bytes (0 when unknown). */
  peakFile: number;
  /** Peak client RSS during tree runs, in bytes (0 when unknown). */
  peakTree: number;
}

/** Each contender's row, by name, in the contenders' order. */
export type Results = Map<string, Row>;

const PHASES = ["putFile", "getFile", "putTree", "getTree", "putText", "getText"] as const;
const KEY = {
  putFile: "put",
  getFile: "get",
  putTree: "putTree",
  getTree: "getTree",
  putText: "putText",
  getText: "getText",
} as const;

/** One warm-up round, not measured: page cache, first-touch memory, JIT and module caches. */
export async function warmUp(contenders: Contender[]): Promise<void> {
  for (const c of contenders) {
    for (const phase of PHASES) await c[phase]?.();
  }
}

/** `reps` measured rounds of every transfer of every contender. */
export async function runRounds(contenders: Contender[], reps: number): Promise<Results> {
  const results: Results = new Map(contenders.map((c) => [c.name, { peakFile: 0, peakTree: 0 }]));
  for (let rep = 0; rep < reps; rep++) {
    // Each contender goes first in turn, and each starts with nothing left to write back: on
    // this VM, whoever runs right after gigabytes were written or freed pays for it (2-3x).
    const order = contenders.map((_, i) => contenders[(i + rep) % contenders.length]);
    for (const phase of PHASES) {
      for (const c of order) {
        const fn = c[phase];
        if (!fn) continue;
        await run("sync", []);
        const r = await fn.call(c);
        const row = results.get(c.name)!;
        (row[KEY[phase]] ??= []).push(r.seconds);
        if (r.peak) {
          const peak = phase.endsWith("File") ? "peakFile" : "peakTree";
          row[peak] = Math.max(row[peak], r.peak);
        }
        console.error(`rep ${rep + 1} ${c.name} ${phase}: ${r.seconds.toFixed(3)} s`);
      }
    }
  }
  return results;
}
