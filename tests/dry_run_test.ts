/**
 * Integration: `--dry-run` (`-n`, as rsync means it) changes nothing and
 * says what would happen; `--max-delete` and the empty-source guard keep
 * `--delete` from removing more than meant.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runClient, tempDir } from "./helpers.ts";
import { diskFiles, onBothStores, type ServerFiles } from "./server_files.ts";

/** A local tree and a remote one that differ: one file changed, one new, one only remote. */
async function setup(files: ServerFiles, local: string): Promise<string> {
  const src = join(local, "src");
  await Deno.mkdir(join(src, "sub"), { recursive: true });
  await Deno.writeTextFile(join(src, "same.txt"), "same");
  await Deno.writeTextFile(join(src, "changed.txt"), "new content");
  await Deno.writeTextFile(join(src, "sub", "new.txt"), "new");
  await files.write("t/same.txt", "same");
  await files.write("t/changed.txt", "old");
  await files.write("t/gone/old.txt", "old");
  await files.write("t/extra.txt", "extra");
  return src;
}

onBothStores(
  "put -r --sync --delete -n changes nothing and says what it would do, in text and JSON",
  async (server) => {
    await using local = await tempDir();
    const src = await setup(server.files, local.path);
    const before = await server.files.snapshot();

    const text = await runClient(server.address, [
      "put",
      "-r",
      "--sync",
      "--delete",
      "-n",
      src,
      "t",
    ]);
    assert.equal(text.code, 0, text.stderr);
    assert.deepEqual(await server.files.snapshot(), before, "nothing changed on the server");
    const lines = text.stdout.trim().split("\n").sort();
    assert.deepEqual(lines, [
      "skipped t/same.txt (unchanged)",
      "would delete t/extra.txt",
      "would delete t/gone",
      "would put t/changed.txt (11 B)",
      "would put t/sub/new.txt (3 B)",
    ]);
    assert.match(text.stderr, /-n is --dry-run now, as in rsync: nothing was changed/);
    // Into a destination that is not there yet: nothing to delete, exit 0 as the real run.
    const fresh = await runClient(server.address, [
      "put",
      "-r",
      "--sync",
      "--delete",
      "--dry-run",
      src,
      "brand-new",
    ]);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.doesNotMatch(fresh.stdout, /would delete/);
    assert.match(fresh.stdout, /would put brand-new\/changed\.txt/);
    assert.deepEqual(await server.files.snapshot(), before, "nothing made on the server");
    assert.match(
      text.stderr,
      /put: dry run, nothing was changed: 2 files \(14 B\) would move, 1 skipped, 2 would be deleted/,
    );

    const json = await runClient(server.address, [
      "--json",
      "put",
      "-r",
      "--sync",
      "--delete",
      "--dry-run",
      src,
      "t",
    ]);
    assert.equal(json.code, 0, json.stderr);
    assert.doesNotMatch(json.stderr, /-n is --dry-run/, "no warning for the long name");
    const rows = json.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.ok(rows.every((r) => r.dryRun === true), json.stdout);
    const summary = rows.pop();
    assert.deepEqual([summary.op, summary.files, summary.skipped, summary.deleted], [
      "summary",
      2,
      1,
      2,
    ]);
    assert.deepEqual(
      rows.map((r) => `${r.op} ${r.path}${r.skipped ? ` ${r.skipped}` : ""}`).sort(),
      [
        "put t/changed.txt",
        "put t/same.txt unchanged",
        "put t/sub/new.txt",
        "rm t/extra.txt",
        "rm t/gone",
      ],
    );
    assert.deepEqual(await server.files.snapshot(), before, "still nothing changed");
  },
);

onBothStores("get -r -n and -N, rm -n and mv -n change nothing", async (server) => {
  await using local = await tempDir();
  const src = await setup(server.files, local.path);
  const localBefore = await diskFiles(local.path).snapshot();
  const before = await server.files.snapshot();

  const get = await runClient(server.address, ["get", "-r", "-n", "-N", "t", src]);
  assert.equal(get.code, 0, get.stderr);
  assert.deepEqual(get.stdout.trim().split("\n").sort(), [
    "skipped t/changed.txt (exists)",
    "skipped t/same.txt (exists)",
    "would get t/extra.txt (5 B)",
    "would get t/gone/old.txt (3 B)",
  ]);
  assert.deepEqual(await diskFiles(local.path).snapshot(), localBefore, "nothing changed locally");

  const rm = await runClient(server.address, ["rm", "-rn", "t/gone"]);
  assert.equal(rm.code, 0, rm.stderr);
  assert.equal(rm.stdout, "would delete t/gone (directory, 1 entry in it)\n");
  const rmFile = await runClient(server.address, ["--json", "rm", "--dry-run", "t/extra.txt"]);
  assert.deepEqual(JSON.parse(rmFile.stdout), { op: "rm", path: "t/extra.txt", dryRun: true });
  const notEmpty = await runClient(server.address, ["rm", "-n", "t/gone"]);
  assert.notEqual(notEmpty.code, 0);
  assert.match(notEmpty.stderr, /not empty.*rm -r/);
  const missing = await runClient(server.address, ["rm", "-n", "t/none"]);
  assert.equal(missing.code, 5, "not found, as a real rm would say");

  const mv = await runClient(server.address, ["mv", "-n", "t/extra.txt", "t/gone"]);
  assert.equal(mv.code, 0, mv.stderr);
  assert.equal(mv.stdout, "would move t/extra.txt to t/gone/extra.txt\n");
  const over = await runClient(server.address, ["mv", "-n", "t/extra.txt", "t/changed.txt"]);
  assert.equal(over.stdout, "would move t/extra.txt to t/changed.txt, replacing it\n");
  // rm and mv never had -n as --no-clobber: no word about what it meant before.
  assert.doesNotMatch(mv.stderr + notEmpty.stderr, /meant before/);
  assert.deepEqual(await server.files.snapshot(), before, "nothing changed on the server");
});

onBothStores(
  "--max-delete stops deleting at N and fails the run; --delete from an empty directory needs --force",
  async (server) => {
    await using local = await tempDir();
    const src = join(local.path, "src");
    await Deno.mkdir(src);
    await Deno.writeTextFile(join(src, "keep.txt"), "keep");
    for (let i = 0; i < 5; i++) await server.files.write(`t/x${i}`, "x");

    const limited = await runClient(server.address, [
      "put",
      "-r",
      "--delete",
      "--max-delete",
      "2",
      src,
      "t",
    ]);
    assert.equal(limited.code, 10, limited.stderr);
    assert.match(limited.stderr, /deletions stopped at --max-delete 2: 3 more entries not deleted/);
    assert.equal((await server.files.tree("t")).length, 1 + 3, "keep.txt and three left");
    const bad = await runClient(server.address, [
      "put",
      "-r",
      "--delete",
      "--max-delete",
      "-1",
      src,
      "t",
    ]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--max-delete takes a number of entries/);

    const empty = join(local.path, "empty");
    await Deno.mkdir(empty);
    const refused = await runClient(server.address, ["put", "-r", "--delete", empty, "t"]);
    assert.equal(refused.code, 2);
    assert.match(
      refused.stderr,
      /holds no file to send: --delete would remove everything.*--force/,
    );
    // Nor with only what is never sent: empty directories, a symlink, a reserved name; with a
    // dry run too.
    const hollow = join(local.path, "hollow");
    await Deno.mkdir(join(hollow, "sub", "deeper"), { recursive: true });
    await Deno.symlink("/etc/hostname", join(hollow, "link"));
    await Deno.writeTextFile(join(hollow, ".ferry-mine.part"), "x");
    // A FIFO is skipped by a tree too: it sends nothing.
    await new Deno.Command("mkfifo", { args: [join(hollow, "fifo")] }).output();
    for (const args of [["put", "-r", "--delete"], ["put", "-r", "--delete", "-n"]]) {
      const run = await runClient(server.address, [...args, hollow, "t"]);
      assert.equal(run.code, 2, `${args.join(" ")}: ${run.stdout}`);
      assert.match(run.stderr, /holds no file to send/);
    }
    assert.equal((await server.files.tree("t")).length, 4, "nothing deleted");
    const forced = await runClient(server.address, [
      "put",
      "-r",
      "--delete",
      "--force",
      empty,
      "t",
    ]);
    assert.equal(forced.code, 0, forced.stderr);
    assert.deepEqual(await server.files.tree("t"), []);
  },
);
