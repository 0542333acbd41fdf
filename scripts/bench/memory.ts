/**
 * Memory must not grow with the file: one put and one get of a much larger
 * file (--big-mib).
 *
 * @module
 */

import { join } from "node:path";
import type { Ferry } from "./contenders/ferry.ts";
import { writeRandom } from "./fixtures.ts";
import { peakRss } from "./measure.ts";
import type { Workspace } from "./workspace.ts";

/** Peak RSS, in bytes, of the ferry client and of ferryd with the large file. */
export interface BigFileMemory {
  /** The client's peak during the put. */
  put: number;
  /** The client's peak during the get. */
  get: number;
  /** ferryd's peak so far. */
  ferryd: number;
}

/** Put then get a `size`-byte file through `ferry`, noting peak memory. */
export async function bigFileMemory(
  workspace: Workspace,
  ferry: Ferry,
  size: number,
): Promise<BigFileMemory> {
  await ferry.resetRoot();
  const src = join(workspace.dir, "big.bin");
  await writeRandom(src, size);
  const put = await ferry.client("put", src, "big.bin");
  await Deno.remove(src);
  const back = join(workspace.dir, "big-back.bin");
  const get = await ferry.client("get", "big.bin", back);
  await Deno.remove(back);
  await ferry.resetRoot();
  return { put: put.peak, get: get.peak, ferryd: peakRss(ferry.pid) };
}
