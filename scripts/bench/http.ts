/**
 * ferryd's HTTP face against its own protocol, in the same run: curl
 * downloading and uploading the large file against the ferry client doing
 * the same, alternating; keep-alive GETs of a small file per second; and
 * ferryd's peak RSS during each HTTP transfer.
 *
 * @module
 */

import { join } from "node:path";
import type { Ferry } from "./contenders/ferry.ts";
import type { Fixtures } from "./fixtures.ts";
import { median, MIB, peakRss, resetPeak, timed } from "./measure.ts";
import { run } from "./system.ts";
import type { Workspace } from "./workspace.ts";

/** What the HTTP face measured. */
export interface HttpResult {
  /** curl's download and upload of the large file, MiB/s (medians). */
  curlGet: number;
  curlPut: number;
  /** The ferry client's, alternated with curl's, MiB/s (medians). */
  ferryGet: number;
  ferryPut: number;
  /** Keep-alive GETs of a 4 KiB file per second (with wrk, the median of its rounds). */
  getsPerSecond: number;
  /** How many GETs that was. */
  gets: number;
  /** What made them: wrk's rounds, or four curls. */
  getsBy: string;
  /** ferryd's peak RSS during curl's downloads and uploads, bytes. */
  ferrydPeakGet: number;
  ferrydPeakPut: number;
}

/** Whether curl is installed. */
async function hasCurl(): Promise<boolean> {
  return await new Deno.Command("curl", { args: ["--version"], stdout: "null" }).output()
    .then((o) => o.success, () => false);
}

/** Measure HTTP against the protocol on `ferry`; undefined without curl. */
export async function httpNumbers(
  workspace: Workspace,
  ferry: Ferry,
  fixtures: Fixtures,
  size: number,
  reps: number,
): Promise<HttpResult | undefined> {
  if (!await hasCurl()) return undefined;
  const base = `http://${ferry.address}`;
  await ferry.client("put", fixtures.file, "http.bin");
  const small = join(workspace.dir, "small.bin");
  await Deno.writeFile(small, new Uint8Array(4096));
  await ferry.client("put", small, "small.bin");
  // One untimed round first, as every contender gets: ferryd's peaks are then its own during
  // HTTP transfers, not what earlier sections left resident (ferryd just served 100 clients at
  // once, whose buffers V8 keeps until something allocates again: the peak of the first
  // download was that, 172 MiB, whatever the download itself used).
  await timed("curl", [
    "-fsS",
    "-o",
    join(await fixtures.freshDst(), "http.bin"),
    `${base}/http.bin`,
  ]);
  await timed("curl", ["-fsS", "-T", fixtures.file, `${base}/http-warm-up.bin`]);
  const rate = (seconds: number) => size / MIB / seconds;
  const curlGet: number[] = [], curlPut: number[] = [];
  const ferryGet: number[] = [], ferryPut: number[] = [];
  let peakGet = 0, peakPut = 0;
  for (let rep = 0; rep < reps; rep++) {
    // Each goes first in turn.
    const pairs: [() => Promise<void>, () => Promise<void>][] = [[
      async () => {
        resetPeak(ferry.pid);
        const dst = join(await fixtures.freshDst(), "http.bin");
        curlGet.push(rate((await timed("curl", ["-fsS", "-o", dst, `${base}/http.bin`])).seconds));
        peakGet = Math.max(peakGet, peakRss(ferry.pid));
      },
      async () => {
        const dst = join(await fixtures.freshDst(), "http.bin");
        ferryGet.push(rate((await ferry.client("get", "http.bin", dst)).seconds));
      },
    ], [
      async () => {
        resetPeak(ferry.pid);
        const put = await timed("curl", [
          "-fsS",
          "-T",
          fixtures.file,
          `${base}/http-up-${rep}.bin`,
        ]);
        curlPut.push(rate(put.seconds));
        peakPut = Math.max(peakPut, peakRss(ferry.pid));
      },
      async () => {
        ferryPut.push(
          rate((await ferry.client("put", fixtures.file, `ferry-up-${rep}.bin`)).seconds),
        );
      },
    ]];
    for (const [a, b] of pairs) {
      if (rep % 2 === 0) {
        await a();
        await b();
      } else {
        await b();
        await a();
      }
    }
  }
  // Small GETs on keep-alive connections: wrk where it is installed (8 connections, 2 threads,
  // 5 s), else four curls of many URLs each; GETs a second either way. The file was put before
  // the large transfers: one served again and again is seldom seconds old, and ferryd keeps a
  // small file in memory only once its change time is two seconds old (docs/http.md).
  const { gets, getsPerSecond, tool } = await smallGets(workspace, `${base}/small.bin`, reps);
  await ferry.resetRoot();
  return {
    curlGet: median(curlGet),
    curlPut: median(curlPut),
    ferryGet: median(ferryGet),
    ferryPut: median(ferryPut),
    getsPerSecond,
    gets,
    getsBy: tool,
    ferrydPeakGet: peakGet,
    ferrydPeakPut: peakPut,
  };
}

/** GETs of `url` a second over keep-alive connections, by wrk or, without it, curl. */
async function smallGets(
  workspace: Workspace,
  url: string,
  reps: number,
): Promise<{ gets: number; getsPerSecond: number; tool: string }> {
  const wrk = await new Deno.Command("wrk", { args: ["--version"], stdout: "null", stderr: "null" })
    .output().then(() => true, () => false);
  if (wrk) {
    // As every other figure here: after a sync (the large uploads just before leave gigabytes for
    // the kernel to write back, on the cores wrk and ferryd need), one warm-up round, and the
    // median of `reps` rounds. The first 5 s after the uploads ran 10-20% slower than the next,
    // by hand, sync or not.
    await run("sync", []);
    const round = async (seconds: number) => {
      const out = await new Deno.Command("wrk", { args: ["-t2", "-c8", `-d${seconds}s`, url] })
        .output();
      const text = new TextDecoder().decode(out.stdout);
      if (/Non-2xx/.test(text)) throw new Error(`wrk saw failed requests: ${text}`);
      return {
        perSecond: Number(/Requests\/sec:\s+([\d.]+)/.exec(text)?.[1] ?? 0),
        total: Number(/(\d+) requests in/.exec(text)?.[1] ?? 0),
      };
    };
    await round(2);
    const rounds = [];
    for (let i = 0; i < reps; i++) rounds.push(await round(5));
    return {
      gets: rounds.reduce((sum, r) => sum + r.total, 0),
      getsPerSecond: median(rounds.map((r) => r.perSecond)),
      tool: `wrk -t2 -c8, median of ${reps} rounds of 5 s`,
    };
  }
  const each = 3000;
  const config = join(workspace.dir, "gets.curl");
  await Deno.writeTextFile(config, `url = "${url}"\noutput = "/dev/null"\n`.repeat(each));
  const started = performance.now();
  await Promise.all(Array.from({ length: 4 }, () => timed("curl", ["-fsS", "-K", config])));
  return {
    gets: 4 * each,
    getsPerSecond: (4 * each) / ((performance.now() - started) / 1000),
    tool: "four curls",
  };
}
