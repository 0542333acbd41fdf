/** Integration: the ferry CLI as a user drives it, one-shot and as a piped shell. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { parseClientArgs } from "../lib/client/cli/args.ts";
import { parseServerArgs } from "../lib/server/cli.ts";
import { parseAddress } from "../lib/client/client.ts";
import { FerryError } from "../lib/util/errors.ts";
import { suggest } from "../lib/util/suggest.ts";
import { listTree, runClient, startServer, tempDir, waitFor } from "./helpers.ts";

Deno.test("the piped interactive shell runs commands in order", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  await Deno.writeTextFile(join(local.path, "a.txt"), "alpha");
  await Deno.writeTextFile(join(local.path, "my file.txt"), "spaced");
  const script = [
    "put a.txt",
    `put "my file.txt" docs/`,
    "",
    "ls",
    "ls docs",
    "get docs/my\\ file.txt copy.txt",
    "close",
    "put a.txt never.txt",
  ].join("\n");
  const run = await runClient(server.address, [], { stdin: script, cwd: local.path });
  assert.equal(run.code, 0, run.stderr);
  assert.equal(run.stdout, "a.txt\ndocs/\nmy file.txt\n");
  assert.equal(run.stderr, "");
  assert.equal(await Deno.readTextFile(join(local.path, "copy.txt")), "spaced");
  assert.deepEqual(await listTree(server.root), ["a.txt", "docs", "docs/my file.txt"]);
});

Deno.test("a failing shell command prints one line, the shell goes on, the exit code says so", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  await Deno.writeTextFile(join(local.path, "a.txt"), "alpha");
  const script = 'get missing.txt\nfrobnicate\nput "unterminated\nput a.txt\nls\n';
  const run = await runClient(server.address, [], { stdin: script, cwd: local.path });
  assert.equal(run.stdout, "a.txt\n");
  assert.deepEqual(run.stderr.trimEnd().split("\n"), [
    "ferry: not found: missing.txt (on the server)",
    "ferry: unknown command: frobnicate (try 'help')",
    'ferry: unterminated " quote',
  ]);
  assert.equal(run.code, 2, "exit code of the last failure (usage)");
  const help = await runClient(server.address, [], { stdin: "help\nexit\n" });
  assert.equal(help.code, 0);
  assert.match(help.stdout, /get \[-r\] \[-n\] \[-N\] \[--sync\] \[--resume\] REMOTE... \[LOCAL\]/);
  assert.match(help.stdout, /close/);
  // No prompt when stdin is not a terminal.
  assert.doesNotMatch(help.stdout, /ferry> /);
});

Deno.test("end of input ends the shell; a dead server is a connection error", async () => {
  await using server = await startServer();
  const eof = await runClient(server.address, [], { stdin: "ls" });
  assert.equal(eof.code, 0, eof.stderr);
  await server.stop();
  const dead = await runClient(server.address, [], { stdin: "ls\n" });
  assert.equal(dead.code, 3);
  assert.match(dead.stderr, /^ferry: cannot connect to .*connection refused\n$/);
});

Deno.test("one-shot usage errors, --help and --version", async () => {
  const address = "127.0.0.1:1";
  const help = await runClient(address, ["--help"]);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage:/);
  assert.match(help.stdout, /FERRY_SERVER/);
  const version = await runClient(address, ["--version"]);
  assert.match(version.stdout, /^ferry \d+\.\d+\.\d+ \(protocol 2, xxh128 native\)\n$/);
  const unknown = await runClient(address, ["fetch", "x"]);
  assert.equal(unknown.code, 2);
  assert.equal(unknown.stderr, "ferry: unknown command: fetch (try 'ferry --help')\n");
  const badFlag = await runClient(address, ["--frobnicate"]);
  assert.equal(badFlag.code, 2);
  assert.match(badFlag.stderr, /^ferry: .*frobnicate.*\n$/);
  const tooMany = await runClient(address, ["mv", "a", "b", "c"]);
  assert.equal(tooMany.code, 2);
  assert.equal(tooMany.stderr, "ferry: usage: mv [-n] SRC DST\n");
});

Deno.test("FERRY_SERVER picks the server; --server wins over it", async () => {
  await using server = await startServer();
  await Deno.writeTextFile(join(server.root, "x.txt"), "x");
  const client = new URL("../client.ts", import.meta.url).pathname;
  const viaEnv = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", client, "ls"],
    env: { FERRY_SERVER: server.address },
  }).output();
  assert.equal(new TextDecoder().decode(viaEnv.stdout), "x.txt\n");
  assert.deepEqual(parseClientArgs(["-s", "h:1", "ls"], { FERRY_SERVER: "e:2" }).server, "h:1");
  assert.deepEqual(parseClientArgs(["ls"], { FERRY_SERVER: "e:2" }).server, "e:2");
  assert.deepEqual(parseClientArgs([], {}).server, "127.0.0.1:9500");
  // After the command, ferry's short options work clustered or with the value attached too.
  const attached = parseClientArgs(["ls", "up", "-s127.0.0.1:9"], {});
  assert.deepEqual([attached.server, attached.command], ["127.0.0.1:9", ["ls", "up"]]);
  const clustered = parseClientArgs(["ls", "-l", "up", "-zs", "h:1"], {});
  assert.deepEqual(
    [clustered.server, clustered.compress, clustered.command],
    ["h:1", true, ["ls", "-l", "up"]],
  );
  assert.deepEqual(parseClientArgs(["ls", "-lR", "x"], {}).command, ["ls", "-lR", "x"]);
  // Mixed with the command's own letters: each goes where it belongs.
  const mixed = parseClientArgs(["get", "-zr", "c", "o8", "-s", "h:2"], {});
  assert.deepEqual(
    [mixed.server, mixed.compress, mixed.command],
    ["h:2", true, ["get", "-r", "c", "o8"]],
  );
  const ls = parseClientArgs(["ls", "-ls", "h:3", "d"], {});
  assert.deepEqual([ls.server, ls.command], ["h:3", ["ls", "-l", "d"]]);
});

Deno.test("parseAddress and parseServerArgs", () => {
  assert.deepEqual(parseAddress("example.com:9000"), { hostname: "example.com", port: 9000 });
  assert.deepEqual(parseAddress("example.com"), { hostname: "example.com", port: 9500 });
  assert.deepEqual(parseAddress(":7"), { hostname: "127.0.0.1", port: 7 });
  assert.deepEqual(parseAddress("[::1]:9"), { hostname: "::1", port: 9 });
  for (const bad of ["h:0", "h:65536", "h:x", "a b:1", "[::1", "h:1:2"]) {
    assert.throws(() => parseAddress(bad), (e) => e instanceof FerryError && e.code === "USAGE");
  }
  const args = parseServerArgs([]);
  assert.deepEqual([args.root, args.host, args.port], [".", "127.0.0.1", 9500]);
  assert.equal(parseServerArgs(["-p", "0", "-r", "/srv"]).root, "/srv");
  const tuned = parseServerArgs([
    "--idle-timeout",
    "2.5",
    "--max-connections",
    "7",
    "--shutdown-grace",
    "0",
  ]);
  assert.deepEqual(
    [tuned.idleTimeoutMs, tuned.maxConnections, tuned.shutdownGraceMs],
    [2500, 7, 0],
  );
  assert.deepEqual(
    [args.idleTimeoutMs, args.maxConnections, args.shutdownGraceMs, args.fsync],
    [300_000, 1000, 30_000, false],
  );
  assert.equal(parseServerArgs(["--fsync"]).fsync, true);
  for (
    const bad of [
      ["--port", "99999"],
      ["--port", "abc"],
      ["--nope"],
      ["extra"],
      ["--idle-timeout", "-1"],
      ["--idle-timeout", "soon"],
      ["--max-connections", "0"],
      ["--max-connections", "1.5"],
    ]
  ) {
    assert.throws(() => parseServerArgs(bad), (e) => e instanceof FerryError && e.code === "USAGE");
  }
  // ferryd's usage errors are in ferry's words too, never the parser's.
  const said = (argv: string[]) => {
    try {
      parseServerArgs(argv);
    } catch (err) {
      return (err as Error).message;
    }
    return "accepted";
  };
  assert.equal(said(["--bogus"]), "unknown option --bogus");
  assert.equal(
    said(["--idl-timeout", "3"]),
    "unknown option --idl-timeout (did you mean --idle-timeout?)",
  );
  for (const flag of ["--idle-timeout", "--shutdown-grace", "--partial-ttl"]) {
    assert.equal(said([flag, "-1"]), `${flag} takes a number of seconds, not "-1"`);
  }
  assert.equal(said(["--port", "-1"]), '--port takes a port number (0-65535), not "-1"');
  assert.equal(said(["-p", "-1"]), '--port takes a port number (0-65535), not "-1"');
  assert.match(said(["--max-connections", "-3"]), /^--max-connections takes a whole number/);
  assert.equal(said(["--root"]), "option --root needs a value");
  assert.equal(said(["--root", ""]), "--root needs a directory, not an empty name");
});

Deno.test("ferryd makes a missing root, and refuses a root that is a file or a busy port", async () => {
  const server = new URL("../server.ts", import.meta.url).pathname;
  const run = (args: string[]) =>
    new Deno.Command(Deno.execPath(), { args: ["run", "-A", server, ...args] }).output();
  await using dir = await tempDir();
  const fresh = join(dir.path, "new", "artifacts");
  const made = await startServer({ root: fresh });
  await waitFor(() => made.log().includes("created the root"), 10_000, "the log line");
  assert.match(made.log(), /^ferryd: created the root .*new\/artifacts\n/);
  assert.ok(Deno.statSync(fresh).isDirectory);
  await made.stop();
  const file = join(dir.path, "file");
  await Deno.writeTextFile(file, "x");
  const notDir = await run(["--root", file, "--port", "0"]);
  assert.notEqual(notDir.code, 0);
  assert.match(new TextDecoder().decode(notDir.stderr), /^ferryd: root is not a directory: .*\n$/);
  // A root that cannot be made is named, with why.
  const blocked = await run(["--root", "/proc/ferry-none/root", "--port", "0"]);
  assert.notEqual(blocked.code, 0);
  assert.equal(
    new TextDecoder().decode(blocked.stderr),
    "ferryd: cannot create the root /proc/ferry-none/root: not found\n",
  );
  // An address this machine does not have, or a name with no address: the address is named.
  const foreign = await run(["--host", "192.0.2.7", "--port", "0", "--allow-anonymous"]);
  assert.match(
    new TextDecoder().decode(foreign.stderr),
    /^ferryd: cannot listen on 192\.0\.2\.7:0: no interface of this machine has that address/,
  );
  const unknown = await run(["--host", "nowhere.invalid", "--port", "0", "--allow-anonymous"]);
  assert.equal(
    new TextDecoder().decode(unknown.stderr),
    "ferryd: cannot listen on nowhere.invalid:0: no such host name\n",
  );
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const busy = await run(["--port", String(listener.addr.port)]);
  listener.close();
  assert.equal(busy.code, 3);
  assert.equal(
    new TextDecoder().decode(busy.stderr),
    `ferryd: cannot listen on 127.0.0.1:${listener.addr.port}: the address is in use ` +
      "(another ferryd? --port 0 picks a free port)\n",
  );
});

Deno.test("near misses get a suggestion, far ones do not", async () => {
  assert.equal(suggest("gte", ["get", "put", "ls"]), "get");
  assert.equal(suggest("sttat", ["stat", "sum"]), "stat");
  assert.equal(suggest("no-cloober", ["no-clobber", "sync"]), "no-clobber");
  assert.equal(suggest("frobnicate", ["get", "put"]), undefined);
  assert.equal(suggest("x", ["ls"]), undefined);
  const address = "127.0.0.1:1";
  const cmd = await runClient(address, ["puut", "a"]);
  assert.equal(cmd.code, 2);
  assert.equal(cmd.stderr, "ferry: unknown command: puut (did you mean 'put'?)\n");
  const flag = await runClient(address, ["get", "--sycn", "a"]);
  assert.equal(flag.code, 2);
  assert.equal(flag.stderr, "ferry: unknown option --sycn (did you mean --sync?)\n");
  // After the command, ferry's own options are near misses too.
  const late = await runClient(address, ["ls", "--sever", "h", "d"]);
  assert.equal(late.stderr, "ferry: unknown option --sever (did you mean --server?)\n");
});

Deno.test("every command has --help with its usage and examples", async () => {
  for (const command of ["ls", "stat", "get", "put", "mkdir", "rm", "mv", "sum"]) {
    const run = await runClient("127.0.0.1:1", [command, "--help"]);
    assert.equal(run.code, 0, `${command}: ${run.stderr}`);
    assert.match(run.stdout, new RegExp(`^Usage: ferry ${command}\\b`));
    assert.match(run.stdout, new RegExp(`Examples:\\n  ferry ${command}\\b`));
  }
  // `ferry --help ls` and `ferry help ls` give that command's help too.
  for (const args of [["--help", "ls"], ["help", "ls"]]) {
    const run = await runClient("127.0.0.1:1", args);
    assert.match(
      run.stdout,
      /^Usage: ferry ls \[-l\] \[-R\] \[--json\] \[PATH\.\.\.\]/,
      args.join(" "),
    );
  }
  const put = await runClient("127.0.0.1:1", ["put", "-h"]);
  assert.match(put.stdout, /--resume +continue what an interrupted upload left on the server/);
  const shell = await runClient("127.0.0.1:1", [], { stdin: "get --help\n" }).catch((e) => e);
  assert.ok(
    shell.stdout === undefined || shell.code !== 0 || /Usage: ferry get/.test(shell.stdout),
  );
});

Deno.test("a bad number says so, wherever the option is and however its value is written", async () => {
  for (
    const args of [
      ["--timeout", "-1", "ls"],
      ["ls", "--timeout", "-1"],
      ["ls", "--timeout=-1"],
      ["--timeout", "abc", "ls"],
    ]
  ) {
    const run = await runClient("127.0.0.1:1", args);
    assert.equal(run.code, 2, args.join(" "));
    assert.match(run.stderr, /^ferry: --timeout takes a number of seconds, not "(-1|abc)"\n$/);
  }
  // From a variable, the message names the variable that was set.
  const fromEnv = await runClient("127.0.0.1:1", ["ls"], { env: { FERRY_TIMEOUT: "-1" } });
  assert.equal(fromEnv.stderr, 'ferry: FERRY_TIMEOUT takes a number of seconds, not "-1"\n');
  const missing = await runClient("127.0.0.1:1", ["ls", "--timeout"]);
  assert.equal(missing.stderr, "ferry: option --timeout needs a value\n");
  const unknown = await runClient("127.0.0.1:1", ["ls", "--bogus"]);
  assert.equal(unknown.stderr, "ferry: unknown option --bogus\n");
});

Deno.test("a leading / is the root one-shot as in the shell, and cd .. at the root stays there", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  await Deno.writeTextFile(join(local.path, "x.txt"), "x");
  const put = await runClient(server.address, ["put", "x.txt", "/"], { cwd: local.path });
  assert.equal(put.code, 0, put.stderr);
  assert.equal(await Deno.readTextFile(join(server.root, "x.txt")), "x");
  await Deno.mkdir(join(server.root, "sub"));
  const shell = await runClient(server.address, [], {
    stdin: "cd ..\npwd\ncd ../../sub\npwd\ncd ..\npwd\nclose\n",
  });
  assert.equal(shell.code, 0, shell.stderr);
  assert.equal(shell.stdout, "/\n/sub\n/\n");
});

Deno.test("ls of several directories heads each with its name, as ls a b does", async () => {
  await using server = await startServer();
  for (const [dir, file] of [["up", "x"], ["up2", "y"]]) {
    await Deno.mkdir(join(server.root, dir));
    await Deno.writeTextFile(join(server.root, dir, file), file);
  }
  const two = await runClient(server.address, ["ls", "up", "up2"]);
  assert.equal(two.code, 0, two.stderr);
  assert.equal(two.stdout, "up:\nx\n\nup2:\ny\n");
  const one = await runClient(server.address, ["ls", "up"]);
  assert.equal(one.stdout, "x\n");
});
