/**
 * Many concurrent clients, each putting then getting its own file, all verified.
 *
 * @module
 */

import { join } from "node:path";
import { connect } from "../../mod.ts";
import type { Ferry } from "./contenders/ferry.ts";
import { writeRandom } from "./fixtures.ts";
import { MIB, peakRss } from "./measure.ts";
import type { Workspace } from "./workspace.ts";

/** Each concurrent client's file, in bytes. */
const FILE_SIZE = 8 * MIB;

/** How the concurrent clients fared. */
export interface ConcurrentResult {
  /** Clients whose file came back whole. */
  ok: number;
  /** Each client's file, in bytes. */
  fileSize: number;
  /** Wall time of the whole run. */
  seconds: number;
  /** Bytes moved, both ways, per second, in MiB/s. */
  mibps: number;
  /** ferryd's peak RSS so far, in bytes. */
  ferrydPeak: number;
}

/**
 * `clients` clients at once, in this process, each on its own connection putting then
 * getting its own 8 MiB file; a client is ok when the SHA-256 and size match.
 */
export async function concurrentClients(
  workspace: Workspace,
  ferry: Ferry,
  clients: number,
): Promise<ConcurrentResult> {
  await ferry.resetRoot();
  const dir = join(workspace.dir, "conc");
  await Deno.mkdir(dir, { recursive: true });
  const srcs = join(dir, "src.bin");
  await writeRandom(srcs, FILE_SIZE);
  const t0 = performance.now();
  const outcomes = await Promise.all(Array.from({ length: clients }, async (_, i) => {
    const client = await connect(ferry.address, { timeoutMs: 120_000 });
    try {
      const put = await client.put(srcs, `c${i}.bin`);
      const back = join(dir, `back${i}.bin`);
      const get = await client.get(`c${i}.bin`, back);
      await Deno.remove(back);
      return put.sha256 === get.sha256 && get.bytes === FILE_SIZE;
    } finally {
      await client.close();
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  return {
    ok: outcomes.filter(Boolean).length,
    fileSize: FILE_SIZE,
    seconds,
    mibps: (2 * clients * FILE_SIZE) / MIB / seconds,
    ferrydPeak: peakRss(ferry.pid),
  };
}
