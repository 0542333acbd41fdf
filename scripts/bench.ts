/**
 * `deno task bench`: ferry against the machine's limit and its peers, on
 * loopback and on shaped links, contenders alternated, medians of several
 * repetitions. Every figure that matters is a ratio measured side by side.
 *
 *   deno task bench [--link loopback,1gbit,100mbit] [--size-mib 1024] [--files 10000]
 *                   [--text-files 2000] [--reps 3] [--clients 100] [--big-mib 4096]
 *                   [--s3-files 2000]
 *                   [--out BENCHMARKS.md]
 *
 * Peers (socat, iperf3, scp/sftp via a private sshd, an rsync daemon) are used
 * where installed and skipped, with a note, where not. A shaped link needs
 * root (a network namespace); without it, it is skipped and the report says
 * so. The pieces are in scripts/bench/.
 *
 * @module
 */

import { concurrentClients } from "./bench/concurrent.ts";
import { startFerry } from "./bench/contenders/ferry.ts";
import { rawPipe } from "./bench/contenders/raw_pipe.ts";
import { rsyncDaemon } from "./bench/contenders/rsync.ts";
import { sshContenders } from "./bench/contenders/ssh.ts";
import { makeFixtures } from "./bench/fixtures.ts";
import { cannotShape, measureInLink } from "./bench/link.ts";
import { peakRss } from "./bench/measure.ts";
import { httpNumbers } from "./bench/http.ts";
import { s3Numbers } from "./bench/s3.ts";
import { bigFileMemory } from "./bench/memory.ts";
import { type BenchOptions, type Link, parseOptions } from "./bench/options.ts";
import {
  type BenchResults,
  fromJson,
  renderReport,
  type Section,
  toJson,
  writeReport,
} from "./bench/report.ts";
import { runRounds, warmUp } from "./bench/rounds.ts";
import { tcpCeiling } from "./bench/tcp_ceiling.ts";
import { Workspace } from "./bench/workspace.ts";

/** Set everything up, measure on `link`, and stop every daemon and remove every file again. */
async function measure(options: BenchOptions, link: Link): Promise<BenchResults> {
  const loopback = link.mibps === undefined;
  const size = link.size ?? options.size;
  await using workspace = await Workspace.create(options.scratch);
  const fixtures = await makeFixtures(workspace.dir, size, options.files, options.textFiles);
  const ferry = await startFerry(workspace, fixtures, options.clients);
  const contenders = [
    ferry.contender,
    // The strong checksum's cost, on the large file only (no target).
    ...(loopback ? [ferry.sha256] : []),
    rawPipe(workspace, fixtures),
    await rsyncDaemon(workspace, fixtures),
    ...await sshContenders(workspace, fixtures),
  ].filter((c) => c !== undefined);

  await warmUp(contenders);
  const rows = await runRounds(contenders, options.reps);
  const ferrydPeakSerial = peakRss(ferry.pid);
  const big = loopback && options.big > 0
    ? await bigFileMemory(workspace, ferry, options.big)
    : undefined;
  const concurrent = loopback
    ? await concurrentClients(workspace, ferry, options.clients)
    : undefined;
  const http = loopback
    ? await httpNumbers(workspace, ferry, fixtures, size, options.reps)
    : undefined;
  const iperf = await tcpCeiling(workspace);
  // Last: radosgw takes the machine's disk and CPU while it runs.
  const s3 = loopback && options.s3Files > 0
    ? await s3Numbers(workspace, {
      size,
      files: options.s3Files,
      reps: options.reps,
      big: options.big,
    })
    : undefined;
  return { rows, size, ferrydPeakSerial, big, concurrent, http, s3, iperf, notes: workspace.notes };
}

const options = parseOptions(Deno.args);
if (options.inside) {
  // The run inside a shaped link's namespace: measure, and hand the results back.
  const results = await measure(options, options.inside.link);
  await Deno.writeTextFile(options.inside.results, JSON.stringify(toJson(results)));
} else {
  const sections: Section[] = [];
  // Every run's files stay until the report is written: see Workspace.create.
  const scratch = await Deno.makeTempDir({ prefix: "ferry-bench-all-" });
  options.scratch = scratch;
  try {
    for (const link of options.links) {
      if (link.mibps === undefined) {
        sections.push({ link, results: await measure(options, link) });
        continue;
      }
      const why = cannotShape();
      if (why) {
        console.error(`bench: skipping the ${link.name} link: ${why}`);
        sections.push({ link, skipped: why });
        continue;
      }
      const script = new URL(import.meta.url).pathname;
      const results = fromJson(await measureInLink(script, options, link, scratch));
      sections.push({ link, results });
    }
    const report = renderReport(options, sections);
    console.log(report);
    await writeReport(options.out, report);
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
}
