/**
 * Integration: every message names the side (local, or on the server) and
 * the path as the user typed it, and says what to do where there is one
 * thing to do.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { runClient, startServer, tempDir } from "./helpers.ts";

Deno.test("messages name the side and the path, and suggest the fix", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  await Deno.mkdir(join(server.root, "d"));
  await Deno.writeTextFile(join(server.root, "blob0.bin"), "blob");

  const noDir = await runClient(server.address, ["get", "blob0.bin", "newdir/"], {
    cwd: local.path,
  });
  assert.equal(noDir.code, 5);
  assert.equal(
    noDir.stderr,
    "ferry: cannot write local newdir/blob0.bin: its directory does not exist\n",
  );

  const dir = await runClient(server.address, ["get", "d"], { cwd: local.path });
  assert.equal(dir.code, 6, dir.stderr);
  assert.equal(dir.stderr, "ferry: remote d is a directory: get -r downloads it\n");

  const missing = await runClient(server.address, ["get", "none.txt"], { cwd: local.path });
  assert.equal(missing.code, 5);
  assert.equal(missing.stderr, "ferry: not found: none.txt (on the server)\n");
  const json = await runClient(server.address, ["--json", "get", "none.txt"], { cwd: local.path });
  assert.equal(JSON.parse(json.stdout.split("\n")[0]).error.remote, true);

  const localMissing = await runClient(server.address, ["put", "nothing.txt"], { cwd: local.path });
  assert.equal(localMissing.code, 5);
  assert.match(localMissing.stderr, /^ferry: .*nothing\.txt.*not found\n$/);
  assert.doesNotMatch(localMissing.stderr, /on the server/);

  const ipv6 = await runClient("::1", ["ls"]);
  assert.equal(ipv6.code, 2);
  assert.match(ipv6.stderr, /write an IPv6 address in brackets, as \[::1\]:9500/);
  // A last group that could be a port: both readings, the port one first.
  const ported = await runClient("::1:9600", ["ls"]);
  assert.match(ported.stderr, /as \[::1\]:9600 \(port 9600\), or \[::1:9600\]:9500/);
  // Five digits can only be a port.
  const five = await runClient("::1:19603", ["ls"]);
  assert.match(five.stderr, /in brackets, as \[::1\]:19603\n$/);
  // And an IPv6 address in a message has its brackets.
  const refused = await runClient("[::1]:1", ["ls"]);
  assert.match(refused.stderr, /^ferry: cannot connect to \[::1\]:1: /);
});

Deno.test("a flag wins over its variable, the token pair too; a tokens file with a token twice is refused", async () => {
  await using local = await tempDir();
  const GOOD = "g".repeat(32);
  const tokens = join(local.path, "tokens");
  await Deno.writeTextFile(tokens, `${GOOD} admin\n`);
  await using server = await startServer({ args: ["--tokens", tokens] });
  const stale = join(local.path, "stale-token");
  await Deno.writeTextFile(stale, "s".repeat(32));

  const flagWins = await runClient(server.address, ["--token", GOOD, "ls"], {
    env: { FERRY_TOKEN_FILE: stale },
  });
  assert.equal(flagWins.code, 0, flagWins.stderr);
  // Even over a variable set empty (an empty one alone still fails closed).
  const overEmpty = await runClient(server.address, ["--token", GOOD, "ls"], {
    env: { FERRY_TOKEN: "", FERRY_TOKEN_FILE: "" },
  });
  assert.equal(overEmpty.code, 0, overEmpty.stderr);
  const emptyAlone = await runClient(server.address, ["ls"], { env: { FERRY_TOKEN: "" } });
  assert.equal(emptyAlone.code, 2);
  assert.match(emptyAlone.stderr, /FERRY_TOKEN\) is empty/);
  const good = join(local.path, "good-token");
  await Deno.writeTextFile(good, GOOD);
  const fileFlagWins = await runClient(server.address, ["--token-file", good, "ls"], {
    env: { FERRY_TOKEN: "s".repeat(32) },
  });
  assert.equal(fileFlagWins.code, 0, fileFlagWins.stderr);
  const both = await runClient(server.address, ["ls"], {
    env: { FERRY_TOKEN: GOOD, FERRY_TOKEN_FILE: good },
  });
  assert.equal(both.code, 2);
  assert.match(both.stderr, /FERRY_TOKEN and FERRY_TOKEN_FILE are both set/);

  const twice = join(local.path, "twice");
  await Deno.writeTextFile(twice, `# CI\n${GOOD} read\n\n${GOOD} admin\n`);
  const refused = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../server.ts", import.meta.url).pathname,
      "--tokens",
      twice,
      "--port",
      "0",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(refused.code, 2);
  assert.match(
    new TextDecoder().decode(refused.stderr),
    /line 4: this token is already on line 2; give each token once/,
  );
});

Deno.test("a local file that is not there is named as local; a directory without -r says how", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const missing = await runClient(server.address, ["put", "nothere.txt"], { cwd: local.path });
  assert.equal(missing.code, 5, missing.stderr);
  assert.equal(missing.stderr, "ferry: local nothere.txt: not found\n");
  // A directory without -r is skipped, as rsync skips it, with how to send it.
  await Deno.mkdir(join(local.path, "dir"));
  const dir = await runClient(server.address, ["put", "dir"], { cwd: local.path });
  assert.equal(dir.code, 0, dir.stderr);
  assert.match(dir.stdout, /^skipped dir \(directory; put -r sends it\)$/m);
});

Deno.test("scp's HOST:PATH is refused with how ferry says it; ./NAME names a file with a colon", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  await Deno.writeTextFile(join(local.path, "a.txt"), "a");
  const put = await runClient(server.address, ["put", "a.txt", "build-host:releases/"], {
    cwd: local.path,
  });
  assert.equal(put.code, 2);
  assert.match(put.stderr, /looks like scp's HOST:PATH: ferry names the server with -s/);
  assert.match(put.stderr, /ferry -s build-host put \.\.\. releases\//);
  const get = await runClient(server.address, ["get", "build-host:a.txt"], { cwd: local.path });
  assert.equal(get.code, 2);
  for (const target of ["user@build-host:x", "[::1]:x"]) {
    const run = await runClient(server.address, ["put", "a.txt", target], { cwd: local.path });
    assert.equal(run.code, 2, `${target}: ${run.stderr}`);
    assert.match(run.stderr, /looks like scp's HOST:PATH/);
  }
  assert.deepEqual(await Array.fromAsync(Deno.readDir(server.root)), [], "nothing made");
  const odd = await runClient(server.address, ["put", "a.txt", "./odd:name"], { cwd: local.path });
  assert.equal(odd.code, 0, odd.stderr);
  assert.equal(await Deno.readTextFile(join(server.root, "odd:name")), "a");
});
