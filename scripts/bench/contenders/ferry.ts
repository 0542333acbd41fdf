/**
 * ferry itself: a ferryd on loopback, driven by the ferry CLI.
 *
 * @module
 */

import { join } from "node:path";
import { PROGRAMS } from "../../build.ts";
import type { Fixtures } from "../fixtures.ts";
import { timed, type Timing } from "../measure.ts";
import { freePort } from "../ports.ts";
import { startDaemon } from "../system.ts";
import type { Workspace } from "../workspace.ts";
import type { Contender } from "./contender.ts";

const SERVER = new URL("../../../server.ts", import.meta.url).pathname;
const CLIENT = new URL("../../../client.ts", import.meta.url).pathname;

/** A running ferryd, its contender, and what the later ferry-only runs need of it. */
export interface Ferry {
  /** The ferry row of the comparison. */
  contender: Contender;
  /** The large file with `--checksum sha256`: what the strong checksum costs. */
  sha256: Contender;
  /** `host:port` of ferryd. */
  address: string;
  /** ferryd's process id, for its memory. */
  pid: number;
  /** Run the ferry CLI against ferryd with `args`, timed. */
  client(...args: string[]): Promise<Required<Timing>>;
  /**
   * Remove the files (not the trees) at the top of ferryd's root: deleting
   * the trees would slow file creation for minutes after (see Workspace.create).
   */
  resetRoot(): Promise<void>;
}

/** Start ferryd in `workspace`, admitting `clients` concurrent clients and one more. */
export async function startFerry(
  workspace: Workspace,
  fixtures: Fixtures,
  clients: number,
): Promise<Ferry> {
  const port = freePort();
  const root = join(workspace.dir, "ferry-root");
  await Deno.mkdir(root);
  const ferryd = await startDaemon(workspace, Deno.execPath(), [
    "run",
    // As built: the same permissions and V8 options (see scripts/build.ts).
    ...PROGRAMS.find((p) => p.name === "ferryd")!.flags,
    SERVER,
    "--root",
    root,
    "--port",
    String(port),
    // All the concurrent clients come from this one address: let them in.
    "--max-per-client",
    String(clients + 1),
  ], port);
  const address = `127.0.0.1:${port}`;
  const client = (...args: string[]) =>
    timed(Deno.execPath(), ["run", "-A", CLIENT, "-q", "--server", address, ...args]);
  let tree = "";
  let text = "";
  return {
    contender: {
      name: "ferry",
      async putFile() {
        await Deno.remove(join(root, "big.bin")).catch(() => {});
        return await client("put", fixtures.file, "big.bin");
      },
      async getFile() {
        return await client("get", "big.bin", join(await fixtures.freshDst(), "big.bin"));
      },
      async putTree() {
        tree = fixtures.newTreeName();
        return await client("put", "-r", fixtures.tree, tree);
      },
      async getTree() {
        return await client("get", "-r", tree, fixtures.newTreeDst());
      },
      async putText() {
        text = fixtures.newTreeName();
        return await client("--compress", "put", "-r", fixtures.textTree, text);
      },
      async getText() {
        return await client("--compress", "get", "-r", text, fixtures.newTreeDst());
      },
    },
    sha256: {
      name: "ferry (sha256)",
      async putFile() {
        await Deno.remove(join(root, "big.bin")).catch(() => {});
        return await client("--checksum", "sha256", "put", fixtures.file, "big.bin");
      },
      async getFile() {
        const to = join(await fixtures.freshDst(), "big.bin");
        return await client("--checksum", "sha256", "get", "big.bin", to);
      },
    },
    address,
    pid: ferryd.pid,
    client,
    async resetRoot() {
      for await (const e of Deno.readDir(root)) {
        if (e.isFile) await Deno.remove(join(root, e.name));
      }
    },
  };
}
