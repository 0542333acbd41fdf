/**
 * `deno task bench`: ferry against the machine's limit and its peers, in one
 * run on loopback, contenders alternated, medians of several repetitions.
 * Every figure that matters is a ratio measured side by side.
 *
 *   deno task bench [--size-mib 1024] [--files 10000] [--reps 3] [--clients 100] [--big-mib 4096] [--out BENCHMARKS.md]
 *
 * Peers (socat, iperf3, scp/sftp via a private sshd, an rsync daemon) are used
 * where installed and skipped, with a note, where not. The pieces are in
 * scripts/bench/.
 *
 * @module
 */

import { concurrentClients } from "./bench/concurrent.ts";
import { startFerry } from "./bench/contenders/ferry.ts";
import { rawPipe } from "./bench/contenders/raw_pipe.ts";
import { rsyncDaemon } from "./bench/contenders/rsync.ts";
import { sshContenders } from "./bench/contenders/ssh.ts";
import { makeFixtures } from "./bench/fixtures.ts";
import { peakRss } from "./bench/measure.ts";
import { bigFileMemory } from "./bench/memory.ts";
import { type BenchOptions, parseOptions } from "./bench/options.ts";
import { type BenchResults, renderReport, writeReport } from "./bench/report.ts";
import { runRounds, warmUp } from "./bench/rounds.ts";
import { tcpCeiling } from "./bench/tcp_ceiling.ts";
import { Workspace } from "./bench/workspace.ts";

/** Set everything up, measure, and stop every daemon and remove every file again. */
async function measure(options: BenchOptions): Promise<BenchResults> {
  await using workspace = await Workspace.create();
  const fixtures = await makeFixtures(workspace.dir, options.size, options.files);
  const ferry = await startFerry(workspace, fixtures, options.clients);
  const contenders = [
    ferry.contender,
    rawPipe(workspace, fixtures),
    await rsyncDaemon(workspace, fixtures),
    ...await sshContenders(workspace, fixtures),
  ].filter((c) => c !== undefined);

  await warmUp(contenders);
  const rows = await runRounds(contenders, options.reps);
  const ferrydPeakSerial = peakRss(ferry.pid);
  const big = options.big > 0 ? await bigFileMemory(workspace, ferry, options.big) : undefined;
  const concurrent = await concurrentClients(workspace, ferry, options.clients);
  const iperf = await tcpCeiling(workspace);
  return { rows, ferrydPeakSerial, big, concurrent, iperf, notes: workspace.notes };
}

const options = parseOptions(Deno.args);
const report = renderReport(options, await measure(options));
console.log(report);
await writeReport(options.out, report);
