/**
 * BENCHMARKS.md from the results: per link, the side-by-side table; on
 * loopback the TCP ceiling, the concurrent clients and the memory check;
 * then every target, met or not; then the notes.
 *
 * @module
 */

import type { ConcurrentResult } from "./concurrent.ts";
import { median, MIB } from "./measure.ts";
import type { HttpResult } from "./http.ts";
import { describeS3, type S3Result } from "./s3.ts";
import type { BigFileMemory } from "./memory.ts";
import type { BenchOptions, Link } from "./options.ts";
import type { Results, Row } from "./rounds.ts";

/** Everything one link's run states. */
export interface BenchResults {
  /** The side-by-side rounds; a `ferry` row and a `raw pipe` row are always there. */
  rows: Results;
  /** The large file of this link, in bytes. */
  size: number;
  /** ferryd's peak RSS after the rounds, in bytes. */
  ferrydPeakSerial: number;
  /** The memory check (loopback, unless `--big-mib 0`). */
  big?: BigFileMemory;
  /** The concurrent clients (loopback only). */
  concurrent?: ConcurrentResult;
  /** HTTP on ferryd's port against the protocol (loopback only, with curl). */
  http?: HttpResult;
  /** ferryd on a radosgw bucket against rclone (loopback only, with Ceph and rclone). */
  s3?: S3Result;
  /** iperf3's throughput in MiB/s, when installed. */
  iperf?: number;
  /** Notes on missing or replaced peers. */
  notes: string[];
}

/** One link's results, or why it was skipped. */
export interface Section {
  link: Link;
  results?: BenchResults;
  skipped?: string;
}

/** A results object as JSON can carry it (the rows as entries). */
export function toJson(results: BenchResults): unknown {
  return { ...results, rows: [...results.rows] };
}

/** The inverse of {@linkcode toJson}. */
export function fromJson(json: unknown): BenchResults {
  const r = json as BenchResults & { rows: [string, Row][] };
  return { ...r, rows: new Map(r.rows) };
}

/** One target: what it measures, the value, the bound, met or not. */
interface Target {
  what: string;
  value: number | undefined;
  /** Met when the value is at least this (or at most, with `atMost`). */
  bound: number;
  atMost?: boolean;
  unit: "x" | "MiB" | "/s";
}

/** The report, as Markdown (before `deno fmt` aligns its tables). */
export function renderReport(options: BenchOptions, sections: Section[]): string {
  const cpu = Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*:\s*(.*)/)?.[1] ?? "?";
  const targets: Target[] = [];
  const notes = new Set<string>();
  const body: string[] = [];
  for (const section of sections) {
    body.push(`## ${title(section.link)}`, "");
    if (!section.results) {
      body.push(`Skipped: ${section.skipped}.`, "");
      continue;
    }
    const r = section.results;
    r.notes.forEach((n) => notes.add(n));
    body.push(...describe(options, section.link, r), "", ...table(options, section.link, r), "");
    if (r.iperf) body.push(`iperf3 (TCP ceiling, 1 MiB writes): ${r.iperf.toFixed(0)} MiB/s.`, "");
    if (r.concurrent) {
      const c = r.concurrent;
      body.push(
        `${options.clients} concurrent clients, each putting then getting its own ` +
          `${c.fileSize / MIB} MiB file on its own connection: ${c.ok}/${options.clients} ` +
          `verified correct, ${c.mibps.toFixed(0)} MiB/s total, ${c.seconds.toFixed(2)} s; ` +
          `ferryd peak RSS ${mib(c.ferrydPeak)} MiB (${mib(r.ferrydPeakSerial)} MiB after the ` +
          "serial runs).",
        "",
      );
    }
    if (r.http) {
      const h = r.http;
      body.push(
        "HTTP on ferryd's port, the same large file, alternating with the ferry client: " +
          `curl downloads at ${h.curlGet.toFixed(0)} MiB/s (ferry get ${h.ferryGet.toFixed(0)}), ` +
          `uploads at ${h.curlPut.toFixed(0)} MiB/s (ferry put ${h.ferryPut.toFixed(0)}); ` +
          `ferryd peaked at ${mib(h.ferrydPeakGet)} MiB during the downloads and ` +
          `${mib(h.ferrydPeakPut)} MiB during the uploads. Keep-alive GETs of a 4 KiB file ` +
          `(${h.getsBy}, ${h.gets} in all): ${h.getsPerSecond.toFixed(0)} a second.`,
        "",
      );
    }
    if (r.s3) body.push(describeS3(r.s3), "");
    if (r.big) {
      body.push(
        `Memory with a ${options.big / MIB} MiB file: ferry peak RSS ${mib(r.big.put)} MiB (put) ` +
          `and ${mib(r.big.get)} MiB (get); ferryd peak ${mib(r.big.ferryd)} MiB so far.`,
        "",
      );
    }
    targets.push(...targetsOf(options, section.link, r));
  }
  return [
    "# Benchmarks",
    "",
    `Run: ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC, \`deno task bench\`, ` +
    `Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores (${cpu}), ` +
    `${(Deno.systemMemoryInfo().total / 1024 ** 3).toFixed(0)} GiB. ` +
    `Medians of ${options.reps} repetitions after one warm-up round, contenders alternated, ` +
    "each going first in turn, after a `sync`; trees always go to new directories and nothing " +
    "is deleted until the end. ferry verifies every transfer end to end (XXH3-128, the default; " +
    "the `ferry (sha256)` row with `--checksum sha256`); the raw pipe verifies nothing.",
    "",
    "## Targets",
    "",
    "| target | measured | needed | |",
    "|---|---:|---:|---|",
    ...targets.map((t) =>
      `| ${t.what} | ${t.value === undefined ? "–" : amount(t.value, t.unit)} | ` +
      `${t.atMost ? "≤" : "≥"} ${t.bound}${unitText(t.unit)} | ${verdict(t)} |`
    ),
    "",
    ...body,
    ...(notes.size > 0 ? ["## Notes", "", ...[...notes].map((n) => `- ${n}`), ""] : []),
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

function title(link: Link): string {
  return link.mibps === undefined
    ? "Loopback"
    : `Shaped link: ${link.name.replace("gbit", " Gbit/s").replace("mbit", " Mbit/s")}`;
}

function describe(options: BenchOptions, link: Link, r: BenchResults): string[] {
  const where = link.mibps === undefined
    ? "Loopback, unshaped: this measures CPU, not a network."
    : `Everything runs in a network namespace whose loopback is shaped with ` +
      `\`tc qdisc add dev lo root tbf rate ${link.name} burst 256kb latency 50ms\` ` +
      `(${link.mibps.toFixed(1)} MiB/s; no added latency or loss: this kernel has no netem).`;
  return [
    `${where} Large file: ${r.size / MIB} MiB of random bytes. Tree: ${options.files} files ` +
    `of 4 KiB in 100 directories. Compressible tree: ${options.textFiles} text, JSON and ` +
    "JavaScript files of 1-32 KiB in 20 directories, moved with `ferry --compress`, " +
    "`rsync -z` and `scp -C`.",
  ];
}

const rate = (size: number, xs?: number[]) => xs ? size / MIB / median(xs) : undefined;

/** The side-by-side table: rates, ratios, peak memory. */
function table(options: BenchOptions, link: Link, r: BenchResults): string[] {
  const { rows, size } = r;
  const filesps = (xs?: number[]) => xs ? options.files / median(xs) : undefined;
  const secs = (xs?: number[]) => xs ? median(xs) : undefined;
  const ferry = rows.get("ferry")!;
  const base = link.mibps ?? rate(size, rows.get([...rows.keys()].find(isRaw)!)?.put);
  const baseName = link.mibps === undefined ? "raw" : "link";
  const lines = [
    `| contender | put MiB/s | get MiB/s | put ÷ ${baseName} | get ÷ ${baseName} | ` +
    "ferry put ÷ it | ferry get ÷ it | put -r files/s | get -r files/s | ferry put -r ÷ it | " +
    "ferry get -r ÷ it | compressible put -r s | compressible get -r s | ferry ÷ it (put, get) | " +
    "peak RSS, file | peak RSS, tree |",
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const [name, row] of rows) {
    const put = rate(size, row.put);
    const get = rate(size, row.get);
    const pt = filesps(row.putTree);
    const gt = filesps(row.getTree);
    const px = secs(row.putText);
    const gx = secs(row.getText);
    lines.push(
      `| ${name} | ${fmt(put)} | ${fmt(get)} | ${ratio(put, base)} | ${ratio(get, base)} | ` +
        `${ratio(rate(size, ferry.put), put)} | ${ratio(rate(size, ferry.get), get)} | ` +
        `${fmt(pt)} | ${fmt(gt)} | ${ratio(filesps(ferry.putTree), pt)} | ` +
        `${ratio(filesps(ferry.getTree), gt)} | ${fmt(px, 2)} | ${fmt(gx, 2)} | ` +
        `${ratio(px, secs(ferry.putText))}, ${ratio(gx, secs(ferry.getText))} | ` +
        `${mibOrDash(row.peakFile)} | ${mibOrDash(row.peakTree)} |`,
    );
  }
  return lines;
}

function isRaw(name: string): boolean {
  return name.startsWith("raw pipe");
}

/** The targets on this link. */
function targetsOf(options: BenchOptions, link: Link, r: BenchResults): Target[] {
  const { rows, size } = r;
  const ferry = rows.get("ferry")!;
  const rsync = rows.get("rsync daemon");
  const raw = rows.get([...rows.keys()].find(isRaw) ?? "");
  const filesps = (xs?: number[]) => xs ? options.files / median(xs) : undefined;
  const over = (a?: number, b?: number) => a === undefined || !b ? undefined : a / b;
  const where = link.mibps === undefined ? "loopback" : link.name;
  if (link.mibps === undefined) {
    const out: Target[] = [
      t(
        `${where}: put -r ÷ rsync daemon`,
        over(filesps(ferry.putTree), filesps(rsync?.putTree)),
        1,
      ),
      t(
        `${where}: get -r ÷ rsync daemon`,
        over(filesps(ferry.getTree), filesps(rsync?.getTree)),
        1,
      ),
      t(
        `${where}: 1 GiB put ÷ rsync daemon`,
        over(rate(size, ferry.put), rate(size, rsync?.put)),
        1.2,
      ),
      t(
        `${where}: 1 GiB get ÷ rsync daemon`,
        over(rate(size, ferry.get), rate(size, rsync?.get)),
        1.2,
      ),
      t(`${where}: 1 GiB put ÷ raw pipe`, over(rate(size, ferry.put), rate(size, raw?.put)), 0.8),
      t(`${where}: 1 GiB get ÷ raw pipe`, over(rate(size, ferry.get), rate(size, raw?.put)), 0.8),
      {
        what: `${where}: ferry peak RSS, 1 GiB`,
        value: ferry.peakFile / MIB,
        bound: 100,
        atMost: true,
        unit: "MiB",
      },
    ];
    if (r.big) {
      const peak = Math.max(r.big.put, r.big.get, r.big.ferryd);
      out.push({
        what: `${where}: peak RSS of either, ${options.big / MIB} MiB`,
        value: peak / MIB,
        bound: 100,
        atMost: true,
        unit: "MiB",
      });
    }
    if (r.http) {
      const h = r.http;
      out.push(
        t(`${where}: HTTP download (curl) ÷ ferry get`, h.curlGet / h.ferryGet, 0.8),
        t(`${where}: HTTP upload (curl) ÷ ferry put`, h.curlPut / h.ferryPut, 0.7),
        {
          what: `${where}: HTTP keep-alive GETs of 4 KiB`,
          value: h.getsPerSecond,
          bound: 10_000,
          unit: "/s",
        },
        {
          what: `${where}: ferryd peak RSS, HTTP 1 GiB either way`,
          value: Math.max(h.ferrydPeakGet, h.ferrydPeakPut) / MIB,
          bound: 150,
          atMost: true,
          unit: "MiB",
        },
      );
    }
    if (r.s3) {
      const s = r.s3;
      out.push(
        t(`${where}: S3 large file put ÷ rclone`, s.ferryPut / s.rclonePut, 1),
        t(`${where}: S3 large file get ÷ rclone`, s.ferryGet / s.rcloneGet, 1),
        t(`${where}: S3 put -r ÷ rclone`, s.ferryTreePut / s.rcloneTreePut, 1),
        t(`${where}: S3 get -r ÷ rclone`, s.ferryTreeGet / s.rcloneTreeGet, 1),
      );
      if (s.big > 0) {
        out.push({
          what: `${where}: ferryd peak RSS, ${s.big / MIB} MiB into S3`,
          value: s.ferrydPeakBig / MIB,
          bound: 200,
          atMost: true,
          unit: "MiB",
        });
      }
    }
    if (r.concurrent) {
      out.push({
        what: `${where}: ferryd peak RSS, ${options.clients} clients`,
        value: r.concurrent.ferrydPeak / MIB,
        bound: 200,
        atMost: true,
        unit: "MiB",
      });
    }
    return out;
  }
  const secs = (xs?: number[]) => xs ? median(xs) : undefined;
  return [
    t(`${where}: large file put ÷ link rate`, over(rate(size, ferry.put), link.mibps), 0.9),
    t(`${where}: large file get ÷ link rate`, over(rate(size, ferry.get), link.mibps), 0.9),
    t(`${where}: put -r ÷ rsync daemon`, over(filesps(ferry.putTree), filesps(rsync?.putTree)), 1),
    t(`${where}: get -r ÷ rsync daemon`, over(filesps(ferry.getTree), filesps(rsync?.getTree)), 1),
    t(
      `${where}: compressible put -r, --compress ÷ rsync -z`,
      over(secs(rsync?.putText), secs(ferry.putText)),
      1,
    ),
    t(
      `${where}: compressible get -r, --compress ÷ rsync -z`,
      over(secs(rsync?.getText), secs(ferry.getText)),
      1,
    ),
  ];
}

function t(what: string, value: number | undefined, bound: number): Target {
  return { what, value, bound, unit: "x" };
}

function unitText(unit: Target["unit"]): string {
  return unit === "x" ? "x" : unit === "/s" ? "/s" : " MiB";
}

function amount(value: number, unit: Target["unit"]): string {
  return `${value.toFixed(unit === "/s" ? 0 : 2)}${unitText(unit)}`;
}

function verdict(t: Target): string {
  if (t.value === undefined) return "not measured";
  return (t.atMost ? t.value <= t.bound : t.value >= t.bound) ? "met" : "**not met**";
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
function fmt(x?: number, digits = 0): string {
  return x === undefined ? "–" : x.toFixed(digits);
}

/** `x / y` as a ratio, or a dash when either is not measured. */
function ratio(x?: number, y?: number): string {
  return x === undefined || !y ? "–" : `${(x / y).toFixed(2)}x`;
}
