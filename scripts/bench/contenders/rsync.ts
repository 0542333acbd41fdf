/**
 * An rsync daemon on loopback.
 *
 * @module
 */

import { join } from "node:path";
import type { Fixtures } from "../fixtures.ts";
import { timed } from "../measure.ts";
import { freePort } from "../ports.ts";
import { startDaemon, which } from "../system.ts";
import type { Workspace } from "../workspace.ts";
import type { Contender } from "./contender.ts";

/** Start an rsync daemon in `workspace`; undefined, with a note, when rsync is missing. */
export async function rsyncDaemon(
  workspace: Workspace,
  fixtures: Fixtures,
): Promise<Contender | undefined> {
  const rsync = which("rsync");
  if (!rsync) {
    workspace.note("rsync not installed: no rsync daemon figures.");
    return undefined;
  }
  const work = workspace.dir;
  const port = freePort();
  const modRoot = join(work, "rsync-root");
  await Deno.mkdir(modRoot);
  const conf = join(work, "rsyncd.conf");
  await Deno.writeTextFile(
    conf,
    `use chroot = no\npid file = ${
      join(work, "rsyncd.pid")
    }\n[bench]\npath = ${modRoot}\nread only = no\nuid = root\ngid = root\n`,
  );
  await startDaemon(
    workspace,
    rsync,
    ["--daemon", "--no-detach", `--config=${conf}`, `--port=${port}`, "--address=127.0.0.1"],
    port,
  );
  const url = `rsync://127.0.0.1:${port}/bench`;
  let tree = "";
  let text = "";
  return {
    name: "rsync daemon",
    async putFile() {
      // Only the large file: deleting the trees of earlier rounds would slow every file
      // created in the next minutes on this machine (see Workspace.create).
      await Deno.remove(join(modRoot, "big.bin")).catch(() => {});
      return await timed(rsync, ["-a", fixtures.file, `${url}/big.bin`]);
    },
    async getFile() {
      return await timed(rsync, [
        "-a",
        `${url}/big.bin`,
        join(await fixtures.freshDst(), "big.bin"),
      ]);
    },
    async putTree() {
      tree = fixtures.newTreeName();
      return await timed(rsync, ["-a", `${fixtures.tree}/`, `${url}/${tree}/`]);
    },
    async getTree() {
      return await timed(rsync, ["-a", `${url}/${tree}/`, fixtures.newTreeDst() + "/"]);
    },
    async putText() {
      text = fixtures.newTreeName();
      return await timed(rsync, ["-az", `${fixtures.textTree}/`, `${url}/${text}/`]);
    },
    async getText() {
      return await timed(rsync, ["-az", `${url}/${text}/`, fixtures.newTreeDst() + "/"]);
    },
  };
}
