/**
 * BENCHMARKS.md from the results: the side-by-side table, then the TCP
 * ceiling, the concurrent clients, the memory check and the notes.
 *
 * @module
 */

import type { ConcurrentResult } from "./concurrent.ts";
import { median, MIB } from "./measure.ts";
import type { BigFileMemory } from "./memory.ts";
import type { BenchOptions } from "./options.ts";
import type { Results } from "./rounds.ts";

/** Everything the report states. */
export interface BenchResults {
  /** The side-by-side rounds; a `ferry` row and a `raw pipe` row are always there. */
  rows: Results;
  /** ferryd's peak RSS after the rounds, in bytes. */
  ferrydPeakSerial: number;
  /** The memory check, unless `--big-mib 0`. */
  big?: BigFileMemory;
  /** The concurrent clients. */
  concurrent: ConcurrentResult;
  /** iperf3's loopback throughput in MiB/s, when installed. */
  iperf?: number;
  /** Notes on missing or replaced peers. */
  notes: string[];
}

/** The report, as Markdown (before `deno fmt` aligns its table). */
export function renderReport(options: BenchOptions, results: BenchResults): string {
  const { concurrent, big, iperf, notes } = results;
  const { clients } = options;
  const cpu = Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*:\s*(.*)/)?.[1] ?? "?";
  return [
    "# Benchmarks",
    "",
    `Run: ${
      new Date().toISOString().slice(0, 16).replace("T", " ")
    } UTC, \`deno task bench\`, Deno ${Deno.version.deno}, ` +
    `${navigator.hardwareConcurrency} cores (${cpu}), ${
      (Deno.systemMemoryInfo().total / 1024 ** 3).toFixed(0)
    } GiB, loopback.`,
    `Large file: ${
      options.size / MIB
    } MiB of random bytes. Tree: ${options.files} files of 4 KiB in 100 directories. ` +
    `Medians of ${options.reps} repetitions after one warm-up round, contenders alternated, ` +
    "each going first in turn, after a `sync`; trees always go to new directories and nothing " +
    "is deleted until the end. " +
    "ferry verifies SHA-256 end to end on every transfer; the raw pipe verifies nothing.",
    "",
    ...table(options, results.rows),
    "",
    iperf ? `iperf3 (TCP ceiling, 1 MiB writes): ${iperf.toFixed(0)} MiB/s.` : "",
    "",
    `${clients} concurrent clients, each putting then getting its own ${
      concurrent.fileSize / MIB
    } MiB file on its own ` +
    `connection: ${concurrent.ok}/${clients} verified correct, ${
      concurrent.mibps.toFixed(0)
    } MiB/s total, ` +
    `${concurrent.seconds.toFixed(2)} s; ferryd peak RSS ${mib(concurrent.ferrydPeak)} MiB ` +
    `(${mib(results.ferrydPeakSerial)} MiB after the serial runs).`,
    "",
    big
      ? `Memory with a ${options.big / MIB} MiB file: ferry peak RSS ${mib(big.put)} MiB ` +
        `(put) and ${mib(big.get)} MiB (get); ferryd peak ${mib(big.ferryd)} MiB so far. ` +
        "Target: at most 100 MiB, whatever the size."
      : "",
    "",
    ...notes.map((n) => `- ${n}`),
    "",
  ].filter((l, i, a) => !(l === "" && a[i - 1] === "")).join("\n");
}

/**
 * Write `report` to `path` and format it: the report is committed, and `deno task check`
 * holds it to the project's format.
 */
export async function writeReport(path: string, report: string): Promise<void> {
  await Deno.writeTextFile(path, report);
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", path] }).output();
}

/** The side-by-side table: rates, ratios to the raw pipe and to ferry, peak memory. */
function table(options: BenchOptions, rows: Results): string[] {
  const mibps = (xs?: number[]) => xs ? options.size / MIB / median(xs) : undefined;
  const filesps = (xs?: number[]) => xs ? options.files / median(xs) : undefined;
  const raw = [...rows.keys()].find((k) => k.startsWith("raw pipe"))!;
  const rawPut = mibps(rows.get(raw)!.put)!;
  const ferryRow = rows.get("ferry")!;
  const f = {
    put: mibps(ferryRow.put)!,
    get: mibps(ferryRow.get)!,
    putTree: filesps(ferryRow.putTree)!,
    getTree: filesps(ferryRow.getTree)!,
  };
  const lines = [
    `| contender | put MiB/s | get MiB/s | put vs raw | get vs raw | ferry put ÷ it | ferry get ÷ it | put -r files/s | get -r files/s | ferry put -r ÷ it | ferry get -r ÷ it | peak RSS, file | peak RSS, tree |`,
    `|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`,
  ];
  for (const [name, row] of rows) {
    const put = mibps(row.put);
    const get = mibps(row.get);
    const pt = filesps(row.putTree);
    const gt = filesps(row.getTree);
    lines.push(
      `| ${name} | ${fmt(put)} | ${fmt(get)} | ${ratio(put, rawPut)} | ${ratio(get, rawPut)} | ${
        ratio(f.put, put)
      } | ${ratio(f.get, get)} | ${fmt(pt)} | ${fmt(gt)} | ${ratio(f.putTree, pt)} | ${
        ratio(f.getTree, gt)
      } | ${mibOrDash(row.peakFile)} | ${mibOrDash(row.peakTree)} |`,
    );
  }
  return lines;
}

/** Bytes as whole MiB, without the unit. */
function mib(bytes: number): string {
  return (bytes / MIB).toFixed(0);
}

/** Bytes as whole MiB with the unit, or a dash for 0 (not measured). */
function mibOrDash(bytes: number): string {
  return bytes ? `${mib(bytes)} MiB` : "–";
}

/** `x` rounded, or a dash when not measured. */
function fmt(x?: number): string {
  return x === undefined ? "–" : x.toFixed(0);
}

/** `x / y` as a ratio, or a dash when either is not measured. */
function ratio(x?: number, y?: number): string {
  return x === undefined || !y ? "–" : `${(x / y).toFixed(2)}x`;
}
