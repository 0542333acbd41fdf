/**
 * Nothing outside the root, whatever is swapped under ferryd while it works:
 * a directory inside the root flips with a symlink to a directory outside
 * it, in a tight loop in another process, while clients upload, make
 * directories, move and remove through it.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { connect, type FerryClient } from "../mod.ts";
import { listTree, startServer, tempDir, writeRandomFile } from "./helpers.ts";

/**
 * Flips `root/sw` between the real directory and a symlink to `outside`, by
 * renames (each state lasts about as long as the other), until killed.
 */
const SWAPPER = `
const [root, outside] = Deno.args;
const sw = root + "/sw", real = root + "/sw.real", link = root + "/sw.link";
Deno.symlinkSync(outside, link);
const flip = (from, to) => { try { Deno.renameSync(from, to); } catch {} };
for (;;) {
  flip(sw, real);
  flip(link, sw);
  flip(sw, link);
  flip(real, sw);
}
`;

const SECONDS = 20;

Deno.test({
  name: `a directory swapped with a symlink for ${SECONDS} s leaves nothing outside the root`,
  // Deno's own ops sanitizer would count the workload's refused requests as leaks.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    await using outside = await tempDir("ferry-outside-");
    await using local = await tempDir();
    await using server = await startServer();
    await Deno.mkdir(join(server.root, "sw"));
    await Deno.writeTextFile(join(outside.path, "canary.txt"), "outside the root");
    const big = join(local.path, "big.bin");
    await writeRandomFile(big, 3 * 1024 * 1024);
    const swapper = new Deno.Command(Deno.execPath(), {
      args: ["eval", SWAPPER, server.root, outside.path],
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + SECONDS * 1000;
    const counts = { ok: 0, refused: 0 };
    const tally = (p: Promise<unknown>) =>
      p.then(() => counts.ok++, () => counts.refused++) as Promise<unknown>;
    const small = new Uint8Array(64 * 1024).fill(7);
    const tiny = new Uint8Array(1000).fill(9);
    /** Runs `step` on a connection of its own until the deadline, reconnecting as needed. */
    const loop = async (step: (client: FerryClient, i: number) => Promise<unknown>) => {
      let client: FerryClient | undefined;
      for (let i = 0; Date.now() < deadline; i++) {
        if (!client || client.failure) client = await connect(server.address);
        await step(client, i);
      }
      await client?.close();
    };
    // Small uploads, pipelined: the creation of their temporary files is what a swap used to
    // send outside the root.
    const uploads = (client: FerryClient) =>
      Promise.all(Array.from({ length: 128 }, (_, k) => {
        const body = new Blob([tiny]).stream();
        return tally(client.put(body, `sw/s-${k}.bin`, { size: tiny.length }));
      }));
    const mixed = (worker: number) => async (client: FerryClient, i: number) => {
      const n = `${worker}-${i}`;
      await Promise.all([
        tally(client.put(new Blob([small]).stream(), `sw/p-${n}.bin`, { size: small.length })),
        tally(client.put(big, `sw/big-${n}.bin`, { keepPartial: true })),
        tally(client.mkdir(`sw/d-${n}/x/y`, { parents: true })),
        tally(client.mkdir(`sw/e-${n}`)),
        tally(client.put(new Blob([small]).stream(), `top-${n}`, { size: small.length })),
      ]);
      await Promise.all([
        tally(client.move(`sw/p-${n}.bin`, `sw/q-${n}.bin`)),
        tally(client.move(`top-${n}`, "sw/")),
        tally(client.move(`sw/big-${n}.bin`, `out-${n}.bin`)),
        tally(client.move("sw/canary.txt", `stolen-${n}.txt`)),
        tally(client.remove(`sw/d-${n}`, { recursive: true })),
        tally(client.remove(`sw/q-${n}.bin`)),
        tally(client.remove("sw/canary.txt")),
      ]);
    };
    try {
      await Promise.all([loop(uploads), loop(uploads), loop(mixed(0)), loop(mixed(1))]);
    } finally {
      swapper.kill("SIGKILL");
      await swapper.status;
    }
    assert.ok(counts.ok > 100, `the workload ran: ${JSON.stringify(counts)}`);
    assert.ok(counts.refused > 0, `the swaps got in its way: ${JSON.stringify(counts)}`);
    // Not a temporary file, not a directory, not a moved file: only what was there before.
    assert.deepEqual(await listTree(outside.path), ["canary.txt"]);
    assert.equal(await Deno.readTextFile(join(outside.path, "canary.txt")), "outside the root");
    const inside = await listTree(server.root);
    assert.deepEqual(inside.filter((n) => n.includes("stolen")), [], "nothing pulled in");
    // Nothing it opened is still held: every file a moved directory took along was let go.
    const held = [...Deno.readDirSync(`/proc/${server.process.pid}/fd`)]
      .map((e) => {
        try {
          return Deno.readLinkSync(`/proc/${server.process.pid}/fd/${e.name}`);
        } catch {
          return "";
        }
      })
      .filter((target) => target.includes(".ferry-"));
    assert.deepEqual(held, [], "no temporary file left open");
    // And ferryd still serves.
    const client = await connect(server.address);
    assert.ok((await client.list("")).length > 0);
    await client.close();
  },
});
