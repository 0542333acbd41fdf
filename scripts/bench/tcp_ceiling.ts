/**
 * iperf3 for the record: the TCP limit itself.
 *
 * @module
 */

import { MIB } from "./measure.ts";
import { freePort, waitPortListening } from "./ports.ts";
import { spawnQuiet, which } from "./system.ts";
import type { Workspace } from "./workspace.ts";

/** Loopback TCP throughput with 1 MiB writes for 3 s, in MiB/s; undefined, with a note, without iperf3. */
export async function tcpCeiling(workspace: Workspace): Promise<number | undefined> {
  const iperf3 = which("iperf3");
  if (!iperf3) {
    workspace.note("iperf3 not installed: no TCP ceiling figure.");
    return undefined;
  }
  const port = freePort();
  const server = spawnQuiet(iperf3, ["-s", "-1", "-B", "127.0.0.1", "-p", String(port)]);
  await waitPortListening(port);
  const out = await new Deno.Command(iperf3, {
    args: ["-c", "127.0.0.1", "-p", String(port), "-l", "1M", "-t", "3", "-J"],
    stdout: "piped",
  }).output();
  await server.status;
  const json = JSON.parse(new TextDecoder().decode(out.stdout));
  return json.end.sum_received.bits_per_second / 8 / MIB;
}
