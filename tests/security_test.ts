/** Tokens and scopes, safe defaults, read-only, TLS and limits, through the real CLIs. */

import assert from "node:assert/strict";
import { join } from "node:path";
import { allows, isLoopback, parseTokens, TokenTable } from "../lib/server/auth.ts";
import { PROTOCOL_VERSION } from "../lib/commands.ts";
import { FerryError } from "../lib/util/errors.ts";
import { DEFAULT_LIMITS, encodeMessage, FrameType, HEADER_SIZE } from "../lib/frame.ts";
import { FrameConn } from "../lib/wire/frame_conn.ts";
import { parseServerArgs } from "../lib/server/cli.ts";
import { connectTls, parsePin } from "../lib/wire/tls.ts";
import { connect } from "../mod.ts";
import {
  closeQuietly,
  inProcessServer,
  listTree,
  peakRss,
  randomBytes,
  rawSession,
  readMessage,
  runClient,
  type ServerProcess,
  sha256,
  startServer,
  tempDir,
  waitFor,
  writeRandomFile,
} from "./helpers.ts";

const SERVER = new URL("../server.ts", import.meta.url).pathname;

const READ = "read-token-0123456789";
const WRITE = "write-token-0123456789";
const ADMIN = "admin-token-0123456789";

function rejects(fn: () => unknown, code: string, message?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof FerryError, String(err));
    assert.equal(err.code, code);
    if (message) assert.match(err.message, message);
    return true;
  });
}

/** Run ferryd expecting it to refuse to start; returns its exit code and stderr. */
async function serverRefuses(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SERVER, "--port", "0", ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(20_000),
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("scopes, tokens files and loopback addresses", () => {
  assert.ok(allows("read", "read") && !allows("read", "create"));
  assert.ok(allows("write", "create") && !allows("write", "replace") && !allows("write", "delete"));
  assert.ok(allows("admin", "replace") && allows("admin", "delete"));
  const grants = parseTokens(`# comment\n\n${READ} read\n  ${WRITE}   write  \r\n`);
  assert.deepEqual(grants, [{ token: READ, scope: "read" }, { token: WRITE, scope: "write" }]);
  rejects(() => parseTokens("# nothing\n"), "USAGE", /no tokens/);
  rejects(() => parseTokens(`${READ} root\n`), "USAGE", /line 1/);
  rejects(() => parseTokens(`${READ} read extra\n`), "USAGE", /line 1/);
  rejects(() => parseTokens(`\nshort read\n`), "USAGE", /line 2: .*at least 16/);
  const table = new TokenTable(grants);
  assert.equal(table.check(WRITE), "write");
  assert.equal(table.check(WRITE + "x"), undefined);
  assert.equal(table.check(""), undefined);
  assert.equal(table.check(undefined), undefined);
  rejects(() => new TokenTable([]), "USAGE");
  for (const host of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]) {
    assert.ok(isLoopback(host), host);
  }
  for (const host of ["0.0.0.0", "::", "10.0.0.1", "files.example", "128.0.0.1"]) {
    assert.ok(!isLoopback(host), host);
  }
  assert.equal(parsePin("sha256:" + "AB:".repeat(31) + "AB"), "ab".repeat(32));
  // Pasted as ferryd prints it, and as openssl does.
  assert.equal(parsePin("sha256 " + "AB:".repeat(31) + "AB"), "ab".repeat(32));
  assert.equal(parsePin("SHA256 Fingerprint=" + "AB:".repeat(31) + "AB"), "ab".repeat(32));
  rejects(() => parsePin("abc"), "USAGE");
  const args = parseServerArgs(["--max-file-size", "2G", "--quota", "500M"], {
    FERRY_TOKEN: ADMIN,
  });
  assert.deepEqual([args.maxFileSize, args.quota, args.token], [2 ** 31, 500 * 2 ** 20, ADMIN]);
  rejects(() => parseServerArgs(["--quota", "lots"]), "USAGE", /--quota/);
  rejects(() => parseServerArgs(["--tls-cert", "c.pem"]), "USAGE", /both/);
  rejects(() => parseServerArgs([], { FERRY_TOKEN: "" }), "USAGE", /at least 16/);
});

Deno.test("ferryd fails closed: no tokens off loopback, empty or short tokens, empty tokens file", async () => {
  await using dir = await tempDir();
  const emptyFile = join(dir.path, "tokens");
  await Deno.writeTextFile(emptyFile, "# none yet\n");
  const cases: [string[], Record<string, string>, RegExp][] = [
    [["--host", "0.0.0.0"], {}, /refusing to serve 0\.0\.0\.0 without tokens.*--allow-anonymous/],
    [["--token", ""], {}, /at least 16/],
    [[], { FERRY_TOKEN: "" }, /at least 16/],
    [["--token", "short"], {}, /at least 16/],
    [["--tokens", emptyFile], {}, /holds no tokens/],
    [["--tokens", join(dir.path, "missing")], {}, /cannot read the tokens file/],
  ];
  for (const [args, env, why] of cases) {
    const run = await serverRefuses(["--root", dir.path, ...args], env);
    assert.notEqual(run.code, 0, args.join(" "));
    assert.match(run.stderr, why);
    assert.equal(run.stderr.trim().split("\n").length, 1, `one line: ${run.stderr}`);
  }
  // Given explicitly, the risk is the operator's.
  await using open = await startServer({
    root: dir.path,
    args: ["--host", "0.0.0.0", "--allow-anonymous"],
  });
  assert.equal((await runClient(open.address, ["ls"])).code, 0);
});

Deno.test("tokens: none or a wrong one is refused after a delay, counted, and never logged", async () => {
  await using dir = await tempDir();
  const tokens = join(dir.path, "tokens");
  await Deno.writeTextFile(tokens, `${READ} read\n${WRITE} write\n${ADMIN} admin\n`);
  await using server = await startServer({ args: ["--tokens", tokens] });
  await Deno.writeTextFile(join(server.root, "a.txt"), "A");

  const started = Date.now();
  const none = await runClient(server.address, ["ls"]);
  assert.equal(none.code, 7, none.stderr);
  assert.match(none.stderr, /authentication failed/);
  assert.ok(Date.now() - started >= 900, "a failed attempt is answered late");
  const wrong = await runClient(server.address, ["--token", "guess-0123456789abcdef", "ls"]);
  assert.equal(wrong.code, 7);
  const env = await runClient(server.address, ["ls"], { env: { FERRY_TOKEN: READ } });
  assert.equal(env.stdout, "a.txt\n", env.stderr);
  await Deno.writeTextFile(join(dir.path, "token"), `${READ}\n`);
  const file = await runClient(server.address, ["--token-file", join(dir.path, "token"), "ls"]);
  assert.equal(file.stdout, "a.txt\n", file.stderr);

  const log = server.log();
  assert.match(log, /authentication failed: no token \(1 failures since start\)/);
  assert.match(log, /authentication failed: a wrong token \(2 failures since start\)/);
  assert.match(log, /connected \(ferry\/[^,]+, scope read\)/);
  for (const secret of [READ, WRITE, ADMIN, "guess-0123456789abcdef"]) {
    assert.ok(!log.includes(secret), "tokens never appear in the log");
  }
});

Deno.test("scopes: read lists and gets; write creates; only admin replaces, renames and deletes", async () => {
  await using dir = await tempDir();
  const tokens = join(dir.path, "tokens");
  await Deno.writeTextFile(tokens, `${READ} read\n${WRITE} write\n${ADMIN} admin\n`);
  await using server = await startServer({ args: ["--tokens", tokens] });
  await Deno.writeTextFile(join(server.root, "a.txt"), "old");
  await Deno.writeTextFile(join(dir.path, "new.txt"), "new");
  const as = (token: string, ...args: string[]) =>
    runClient(server.address, ["--token", token, ...args], { cwd: dir.path });
  const refused = async (token: string, args: string[], scope: string) => {
    const run = await as(token, ...args);
    assert.equal(run.code, 7, `${args.join(" ")}: ${run.stderr}`);
    assert.match(run.stderr, new RegExp(`needs the ${scope} scope`));
  };

  assert.equal((await as(READ, "get", "a.txt", "copy.txt")).code, 0);
  assert.equal(await Deno.readTextFile(join(dir.path, "copy.txt")), "old");
  assert.equal((await as(READ, "sum", "a.txt")).code, 0);
  await refused(READ, ["put", "new.txt", "b.txt"], "write");
  await refused(READ, ["mkdir", "d"], "write");

  assert.equal((await as(WRITE, "put", "new.txt", "d/b.txt")).code, 0);
  assert.equal((await as(WRITE, "mkdir", "e")).code, 0);
  await refused(WRITE, ["put", "new.txt", "a.txt"], "admin");
  // Renaming takes a file from its name: moving one aside would let another replace it.
  await refused(WRITE, ["mv", "a.txt", "hidden.txt"], "admin");
  await refused(WRITE, ["mv", "d/b.txt", "a.txt"], "admin");
  await refused(WRITE, ["rm", "a.txt"], "admin");
  assert.equal(await Deno.readTextFile(join(server.root, "a.txt")), "old", "nothing replaced");

  assert.equal((await as(ADMIN, "put", "new.txt", "a.txt")).code, 0);
  assert.equal(await Deno.readTextFile(join(server.root, "a.txt")), "new");
  assert.equal((await as(ADMIN, "mv", "d/b.txt", "e")).code, 0);
  assert.equal((await as(ADMIN, "rm", "-r", "d")).code, 0);
  assert.deepEqual(await listTree(server.root), ["a.txt", "e", "e/b.txt"]);
});

Deno.test("--read-only refuses every change, even an empty file, and still serves reads", async () => {
  await using server = await startServer({ args: ["--read-only"] });
  await using local = await tempDir();
  await Deno.writeTextFile(join(server.root, "a.txt"), "A");
  await Deno.writeTextFile(join(local.path, "empty"), "");
  for (
    const args of [["put", "empty", "e"], ["put", "empty", "a.txt"], ["mkdir", "d"], [
      "rm",
      "a.txt",
    ], ["mv", "a.txt", "b.txt"]]
  ) {
    const run = await runClient(server.address, args, { cwd: local.path });
    assert.equal(run.code, 7, args.join(" "));
    assert.match(run.stderr, /read-only/);
  }
  assert.deepEqual(await listTree(server.root), ["a.txt"]);
  assert.equal(await Deno.readTextFile(join(server.root, "a.txt")), "A");
  assert.equal((await runClient(server.address, ["get", "a.txt"], { cwd: local.path })).code, 0);
});

Deno.test("--max-file-size and --quota refuse uploads up front; the session goes on", async () => {
  await using server = await startServer({ args: ["--max-file-size", "64K", "--quota", "100K"] });
  await using local = await tempDir();
  await writeRandomFile(join(local.path, "big"), 65 * 1024);
  await writeRandomFile(join(local.path, "ok"), 60 * 1024);
  const shell = (script: string) =>
    runClient(server.address, [], { stdin: script, cwd: local.path });
  const first = await shell("put big\nput ok one\nput ok two\nls\n");
  assert.match(first.stderr, /big is 66560 bytes: over the server's limit of 65536/);
  assert.match(first.stderr, /over quota/);
  assert.equal(first.stdout, "one\n", "the shell went on after each refusal");
  assert.equal(first.code, 9);
  const second = await shell("rm one\nput ok two\nls\n");
  assert.equal(second.code, 0, second.stderr);
  assert.equal(second.stdout, "two\n", "removing frees quota");
});

Deno.test("a slowloris from one address does not keep another client from being served", async () => {
  // Dual-stack: the attack comes over IPv4, the good client over IPv6, two addresses.
  await using ferryd = await inProcessServer({
    hostname: "::",
    allowAnonymous: true,
    maxConnectionsPerClient: 20,
    handshakeTimeoutMs: 5000,
  });
  await Deno.writeTextFile(join(ferryd.server.root!, "a.txt"), "A");
  const attack: Deno.Conn[] = [];
  const trickle: ReturnType<typeof setInterval>[] = [];
  try {
    for (let i = 0; i < 200; i++) {
      attack.push(await Deno.connect({ hostname: "127.0.0.1", port: ferryd.port }));
    }
    // Half dribble a byte at a time; the rest send nothing.
    for (const conn of attack.slice(0, 100)) {
      trickle.push(setInterval(() => conn.write(new Uint8Array([1])).catch(() => {}), 100));
    }
    const run = await runClient(`[::1]:${ferryd.port}`, ["ls"], {});
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "a.txt\n");
    const busy = ferryd.lines.filter((l) => /refused: busy \(20 connections from/.test(l));
    assert.ok(
      busy.length >= 150,
      `excess connections from one address are refused (${busy.length})`,
    );
  } finally {
    trickle.forEach(clearInterval);
    attack.forEach(closeQuietly);
  }
});

/** Run openssl with `args` in `dir`; true if it worked. */
async function openssl(dir: string, ...args: string[]): Promise<boolean> {
  const out = await new Deno.Command("openssl", { args, cwd: dir, stdout: "null", stderr: "null" })
    .output();
  return out.success;
}

/** A fresh P-256 key, unencrypted. */
const NEW_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

/** rustls refuses a CA certificate as a server's: CA:FALSE and serverAuth are needed. */
const SERVER_EXTENSIONS = [
  "basicConstraints=critical,CA:FALSE",
  "keyUsage=critical,digitalSignature",
  "extendedKeyUsage=serverAuth",
];

/** A self-signed certificate `NAME.pem` with key `NAME.key` in `dir`. */
async function selfSigned(
  dir: string,
  name: string,
  subject: string,
  extensions: string[],
): Promise<{ cert: string; key: string }> {
  const [key, cert] = [`${name}.key`, `${name}.pem`];
  const args = ["-keyout", key, "-out", cert, "-days", "2", "-subj", subject];
  const exts = extensions.flatMap((e) => ["-addext", e]);
  assert.ok(await openssl(dir, "req", "-x509", ...NEW_KEY, ...args, ...exts));
  return { cert: join(dir, cert), key: join(dir, key) };
}

/** A self-signed server certificate for localhost and 127.0.0.1, in `dir`. */
function makeCertificate(dir: string): Promise<{ cert: string; key: string }> {
  const san = "subjectAltName=DNS:localhost,IP:127.0.0.1";
  return selfSigned(dir, "server", "/CN=localhost", [san, ...SERVER_EXTENSIONS]);
}

/** A CA and a server certificate it issued (for `san`, e.g. `DNS:evil.example`), in `dir`. */
async function makeIssued(
  dir: string,
  san: string,
): Promise<{ ca: string; cert: string; key: string }> {
  const ca = await selfSigned(dir, "ca", "/CN=test CA", [
    "basicConstraints=critical,CA:TRUE",
    "keyUsage=critical,keyCertSign",
  ]);
  const ext = join(dir, "leaf.ext");
  await Deno.writeTextFile(ext, [`subjectAltName=${san}`, ...SERVER_EXTENSIONS, ""].join("\n"));
  const csr = ["-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=leaf"];
  assert.ok(await openssl(dir, "req", "-new", ...NEW_KEY, ...csr));
  const sign = ["-CA", ca.cert, "-CAkey", ca.key, "-CAcreateserial", "-extfile", ext];
  assert.ok(await openssl(dir, "x509", "-req", "-in", "leaf.csr", "-out", "leaf.pem", ...sign));
  return { ca: ca.cert, cert: join(dir, "leaf.pem"), key: join(dir, "leaf.key") };
}

const hasOpenssl = await new Deno.Command("openssl", { args: ["version"], stdout: "null" })
  .output().then((o) => o.success, () => false);

/** The certificate fingerprint a TLS ferryd printed on start. */
function pinOf(server: ServerProcess): string {
  const pin = /certificate sha256 ([0-9A-F:]{95})/.exec(server.banner)?.[1];
  assert.ok(pin, `no fingerprint in: ${server.banner}`);
  return pin;
}

/** A ferryd over TLS with a self-signed certificate made in `dir`. */
async function startTlsServer(
  dir: string,
  options: { fdLimit?: number } = {},
): Promise<ServerProcess> {
  const pair = await makeCertificate(dir);
  return await startServer({ ...options, args: ["--tls-cert", pair.cert, "--tls-key", pair.key] });
}

Deno.test({
  name: "TLS: pinned, or trusted through --ca; never cleartext; a wrong pin or CA is refused",
  ignore: !hasOpenssl,
  async fn() {
    await using dir = await tempDir();
    const pair = await makeCertificate(dir.path);
    await using server = await startServer({
      args: ["--tls-cert", pair.cert, "--tls-key", pair.key],
    });
    const shown = pinOf(server);
    const openssl = await new Deno.Command("openssl", {
      args: ["x509", "-in", pair.cert, "-noout", "-fingerprint", "-sha256"],
    }).output();
    assert.equal(shown, /=([0-9A-F:]+)/.exec(new TextDecoder().decode(openssl.stdout))?.[1]);

    await writeRandomFile(join(dir.path, "up.bin"), 3 * 1024 * 1024);
    const pinned = await runClient(server.address, ["--pin", shown, "put", "up.bin"], {
      cwd: dir.path,
    });
    assert.equal(pinned.code, 0, pinned.stderr);
    const viaCa = await runClient(
      server.address,
      ["--ca", pair.cert, "get", "up.bin", "down.bin"],
      { cwd: dir.path },
    );
    assert.equal(viaCa.code, 0, viaCa.stderr);
    assert.deepEqual(
      await Deno.readFile(join(dir.path, "down.bin")),
      await Deno.readFile(join(dir.path, "up.bin")),
    );

    const wrongPin = await runClient(server.address, ["--pin", "00".repeat(32), "ls"]);
    assert.equal(wrongPin.code, 3);
    assert.match(wrongPin.stderr, /not the pinned one/);
    // Both fingerprints in the form ferryd printed, to compare at a glance.
    assert.ok(wrongPin.stderr.includes(`server: sha256 ${shown}`), wrongPin.stderr);
    assert.ok(wrongPin.stderr.includes(`pinned: sha256 ${"00:".repeat(31)}00`), wrongPin.stderr);
    const keyAsCa = await runClient(server.address, ["--ca", pair.key, "ls"]);
    assert.equal(keyAsCa.code, 2);
    assert.match(keyAsCa.stderr, /the CA file .*server\.key holds no certificate/);
    const untrusted = await runClient(server.address, ["--tls", "ls"]);
    assert.equal(untrusted.code, 3);
    assert.match(untrusted.stderr, /TLS handshake .* failed: .*(UnknownIssuer|certificate)/i);
    const cleartext = await runClient(server.address, ["ls"]);
    assert.equal(cleartext.code, 4, cleartext.stderr);
    assert.match(cleartext.stderr, /needs TLS/);

    await using plain = await startServer();
    const tlsToPlain = await runClient(plain.address, ["--pin", shown, "ls"]);
    assert.equal(tlsToPlain.code, 3);
    assert.match(tlsToPlain.stderr, /TLS handshake/);

    const badKey = await serverRefuses([
      "--root",
      dir.path,
      "--tls-cert",
      pair.cert,
      "--tls-key",
      pair.cert,
    ]);
    assert.equal(badKey.code, 2);
    assert.match(badKey.stderr, /bad TLS certificate or key/);
  },
});

Deno.test("a symlink swapped between check and open never serves or writes outside the root", async () => {
  await using outside = await tempDir();
  await Deno.writeTextFile(join(outside.path, "secret.txt"), "OUTSIDE");
  await using ferryd = await inProcessServer();
  const root = ferryd.server.root!;
  await Deno.mkdir(join(root, "inside"));
  await Deno.writeTextFile(join(root, "inside", "secret.txt"), "inside");
  await Deno.symlink(join(root, "inside"), join(root, "link"));
  // Another process flips `link` between a directory inside the root and one outside.
  const swapper = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `const [root, out] = Deno.args;
       for (let i = 0;; i++) {
         const tmp = root + "/.swap";
         Deno.symlinkSync(i % 2 ? out : root + "/inside", tmp);
         Deno.renameSync(tmp, root + "/link");
       }`,
      root,
      outside.path,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const client = await connect({ hostname: "127.0.0.1", port: ferryd.port });
  await using local = await tempDir();
  await Deno.writeTextFile(join(local.path, "up.txt"), "upload");
  const seen = new Set<string>();
  try {
    // Many at once, so that some are checked and opened while the link flips.
    const gets = Array.from({ length: 2000 }, async (_, i) => {
      const dest = join(local.path, `got${i}`);
      await client.get("link/secret.txt", dest).then(
        async () => seen.add(await Deno.readTextFile(dest)),
        (err) => seen.add(err.code),
      );
    });
    const puts = Array.from(
      { length: 300 },
      (_, i) => client.put(join(local.path, "up.txt"), `link/up${i}.txt`).catch(() => {}),
    );
    await Promise.all([...gets, ...puts]);
  } finally {
    swapper.kill();
    await swapper.status;
    await client.close();
  }
  assert.ok(!seen.has("OUTSIDE"), `served a file outside the root: ${[...seen]}`);
  assert.ok(seen.has("inside"), `the check does not refuse everything: ${[...seen]}`);
  // Without openat() a racing local user can make an empty temporary file appear outside
  // (see docs/security.md), but no content is ever written there and nothing is replaced.
  assert.equal(await Deno.readTextFile(join(outside.path, "secret.txt")), "OUTSIDE");
  for (const name of await listTree(outside.path)) {
    if (name === "secret.txt") continue;
    assert.match(name, /^\.ferry-[0-9a-f]+\.part$/);
    assert.equal((await Deno.stat(join(outside.path, name))).size, 0, `${name} is empty`);
  }
});

Deno.test({
  name: "TLS: the pin is checked on the connection that carries the token, whoever else is trusted",
  ignore: !hasOpenssl,
  async fn() {
    await using dir = await tempDir();
    await Deno.mkdir(join(dir.path, "real"));
    await Deno.mkdir(join(dir.path, "evil"));
    // The real server's certificate is issued by a CA, and pinned; the attacker's is issued by
    // a CA the client trusts anyway (as if public), for a name of the attacker's own.
    const real = await makeIssued(join(dir.path, "real"), "DNS:files.internal");
    const evil = await makeIssued(join(dir.path, "evil"), "DNS:evil.example");
    await using server = await startServer({
      args: ["--tls-cert", real.cert, "--tls-key", real.key],
    });
    const pin = pinOf(server);
    let hellos = 0;
    const attacker = Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: await Deno.readTextFile(evil.cert),
      key: await Deno.readTextFile(evil.key),
    });
    const attacking = (async () => {
      for await (const conn of attacker) {
        const n = await conn.read(new Uint8Array(4096)).catch(() => null);
        if (n) hellos++;
        closeQuietly(conn);
      }
    })();
    // The first connection goes to the real server, every later one to the attacker.
    const front = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    let seen = 0;
    const proxying = (async () => {
      for await (const inbound of front) {
        const port = seen++ === 0 ? server.port : attacker.addr.port;
        const outbound = await Deno.connect({ hostname: "127.0.0.1", port });
        Promise.race([
          inbound.readable.pipeTo(outbound.writable),
          outbound.readable.pipeTo(inbound.writable),
        ]).catch(() => {}).finally(() => [inbound, outbound].forEach(closeQuietly));
      }
    })();
    try {
      const run = await runClient(`127.0.0.1:${front.addr.port}`, [
        "--pin",
        pin,
        "--token",
        "secret-token-0123456789",
        "ls",
      ], { env: { DENO_CERT: evil.ca } });
      assert.equal(run.code, 0, run.stderr);
      assert.equal(hellos, 0, "the attacker got nothing");
      assert.equal(seen, 1, "one connection: the one whose certificate was checked");
      // A pin works for a CA-issued certificate too, and a wrong one is refused.
      const wrong = await runClient(`127.0.0.1:${attacker.addr.port}`, ["--pin", pin, "ls"], {
        env: { DENO_CERT: evil.ca },
      });
      assert.equal(wrong.code, 3);
      assert.match(wrong.stderr, /not the pinned one/);
      assert.equal(hellos, 0);
    } finally {
      closeQuietly(front);
      closeQuietly(attacker);
      await Promise.allSettled([attacking, proxying]);
    }
  },
});

Deno.test({
  name: "TLS: silent connections are closed at the handshake deadline; a silent server times out",
  ignore: !hasOpenssl,
  async fn() {
    await using dir = await tempDir();
    const pair = await makeCertificate(dir.path);
    await using ferryd = await inProcessServer({
      tls: {
        cert: await Deno.readTextFile(pair.cert),
        key: await Deno.readTextFile(pair.key),
      },
      handshakeTimeoutMs: 300,
    });
    const silent = await Promise.all(
      Array.from({ length: 30 }, () => Deno.connect({ hostname: "127.0.0.1", port: ferryd.port })),
    );
    // Each must see the server hang up: a TLS socket left open after its deadline would
    // hold a file descriptor for as long as the peer liked.
    const ends = await Promise.all(silent.map(async (conn) => {
      const timer = setTimeout(() => closeQuietly(conn), 5000);
      const n = await conn.read(new Uint8Array(16)).catch(() => null);
      clearTimeout(timer);
      closeQuietly(conn);
      return n;
    }));
    assert.deepEqual(ends, silent.map(() => null));

    // And a client facing a server that never answers its handshake gives up on time.
    const mute = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const held: Deno.Conn[] = [];
    const holding = (async () => {
      for await (const conn of mute) held.push(conn);
    })();
    try {
      const started = Date.now();
      const run = await runClient(`127.0.0.1:${mute.addr.port}`, [
        "--retries",
        "0",
        "--timeout",
        "1",
        "--tls",
        "ls",
      ]);
      assert.equal(run.code, 3, run.stderr);
      assert.match(run.stderr, /timed out/);
      assert.ok(Date.now() - started < 15_000);
    } finally {
      closeQuietly(mute);
      held.forEach(closeQuietly);
      await holding.catch(() => {});
    }
  },
});

Deno.test({
  name: "ferryd serves again once it has run out of file descriptors, in cleartext and over TLS",
  ignore: !hasOpenssl,
  async fn() {
    await using dir = await tempDir();
    for (const tls of [false, true]) {
      await using server = tls
        ? await startTlsServer(dir.path, { fdLimit: 64 })
        : await startServer({ fdLimit: 64 });
      const pin = tls ? pinOf(server) : undefined;
      const silent: Deno.Conn[] = [];
      try {
        for (let i = 0; i < 100; i++) {
          silent.push(await Deno.connect({ hostname: "127.0.0.1", port: server.port }));
        }
        await waitFor(
          () => server.log().includes("out of file descriptors"),
          10_000,
          "accept to fail",
        );
      } finally {
        silent.forEach(closeQuietly);
      }
      const args = [...(pin ? ["--pin", pin] : []), "--retries", "0", "--timeout", "10", "ls"];
      const run = await runClient(server.address, args);
      assert.equal(run.code, 0, `${tls ? "TLS" : "cleartext"}: ${run.stderr}`);
    }
  },
});

Deno.test({
  name: "TLS: a client that sends while never reading a large get is held back",
  ignore: !hasOpenssl,
  async fn() {
    await using dir = await tempDir();
    await using server = await startTlsServer(dir.path);
    const pin = pinOf(server);
    // Sparse: reads as fast as it can be sent, and costs no disk.
    using big = await Deno.create(join(server.root, "big.bin"));
    await big.truncate(1024 * 1024 * 1024);
    const fc = new FrameConn(await connectTls("127.0.0.1", server.port, { pin }));
    try {
      await fc.sendMessage(FrameType.HELLO, 0, { version: PROTOCOL_VERSION, agent: "flood" });
      assert.equal((await fc.read())?.type, FrameType.WELCOME);
      await fc.sendMessage(FrameType.REQUEST, 1, { op: "get", path: "big.bin" });
      // Stray DATA frames, sent until ferryd stops taking them: all of it would end up
      // decrypted in ferryd's memory if its TLS layer read on regardless.
      const chunk = new Uint8Array(HEADER_SIZE + DEFAULT_LIMITS.maxData);
      let sent = 0;
      while (sent < 512 * 1024 * 1024) {
        const send = fc.sendFramed(FrameType.DATA, 9, chunk, DEFAULT_LIMITS.maxData);
        const stalled = new Promise<boolean>((r) => setTimeout(() => r(true), 2000));
        if (await Promise.race([send.then(() => false), stalled])) break;
        sent += DEFAULT_LIMITS.maxData;
      }
      assert.ok(sent < 64 * 1024 * 1024, `ferryd took ${sent >> 20} MiB it could not use yet`);
      const peak = peakRss(server.process.pid);
      assert.ok(peak < 200 * 1024 * 1024, `ferryd peaked at ${peak >> 20} MiB`);
    } finally {
      fc.close();
    }
  },
});

Deno.test({
  name: "TLS: a client that half-closes behind a burst of requests gets every answer, then EOF",
  ignore: !hasOpenssl,
  async fn() {
    await using dir = await tempDir();
    await using server = await startTlsServer(dir.path);
    await Deno.writeTextFile(join(server.root, "a.txt"), "a");
    const conn = await connectTls("127.0.0.1", server.port, { pin: pinOf(server) });
    const fc = new FrameConn(conn);
    try {
      // A burst, a TLS record each, then close_notify and FIN: node:tls lost that end behind
      // the backlog.
      const requests = 40_000;
      const writes = [conn.write(encodeMessage(FrameType.HELLO, 0, { version: PROTOCOL_VERSION }))];
      for (let id = 1; id <= requests; id++) {
        writes.push(
          conn.write(encodeMessage(FrameType.REQUEST, id, { op: "stat", path: "a.txt" })),
        );
      }
      await Promise.all(writes);
      await conn.closeWrite();
      let replies = 0;
      const answered = (async () => {
        for (let frame = await fc.read(); frame; frame = await fc.read()) {
          if (frame.type === FrameType.REPLY) replies++;
        }
        return "EOF";
      })();
      // Without the end, ferryd holds the connection, and its per-client slot, until idle.
      const hung = new Promise((r) => setTimeout(() => r("no EOF from ferryd"), 15_000));
      assert.equal(await Promise.race([answered, hung]), "EOF");
      assert.equal(replies, requests);
    } finally {
      fc.close();
    }
  },
});

/** Send `bytes` as DATA frames for request `id`. */
async function sendData(fc: FrameConn, id: number, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length; at += DEFAULT_LIMITS.maxData) {
    const chunk = bytes.subarray(at, at + DEFAULT_LIMITS.maxData);
    const buf = new Uint8Array(HEADER_SIZE + chunk.length);
    buf.set(chunk, HEADER_SIZE);
    await fc.sendFramed(FrameType.DATA, id, buf, chunk.length);
  }
}

Deno.test("--quota counts a partial taken over from another connection once, and not forever", async () => {
  await using ferryd = await inProcessServer({ quota: 1_000_000 });
  const root = ferryd.server.root!;
  const size = 900_000;
  const outcomes: string[] = [];
  for (let round = 0; round < 3; round++) {
    const content = randomBytes(size);
    const put = { op: "put", path: `f${round}.bin`, size, mtime: 1000, resume: true };
    // A sends all but the last byte and stalls; B takes the partial over and finishes it.
    const a = await rawSession(ferryd.port);
    await a.sendMessage(FrameType.REQUEST, 1, put);
    await sendData(a, 1, content.subarray(0, size - 1));
    const b = await rawSession(ferryd.port);
    await new Promise((r) => setTimeout(r, 200));
    await b.sendMessage(FrameType.REQUEST, 1, { op: "partial", path: put.path, size, mtime: 1000 });
    const { offset } = (await readMessage(b)).msg as { offset: number };
    await b.sendMessage(FrameType.REQUEST, 2, {
      ...put,
      offset,
      ...(offset > 0 ? { prefix: sha256(content.subarray(0, offset)) } : {}),
    });
    await sendData(b, 2, content.subarray(offset));
    await b.sendMessage(FrameType.END, 2, { sha256: sha256(content) });
    const answer = await readMessage(b);
    outcomes.push(answer.type === FrameType.REPLY ? "stored" : String(answer.msg.code));
    await a.sendMessage(FrameType.ERROR, 1, { code: "IO", message: "gone" });
    a.close();
    b.close();
  }
  // The first round fits; the second would not, whoever's partial it continues.
  assert.equal(outcomes[0], "stored");
  assert.ok(outcomes.slice(1).every((o) => o === "LIMIT"), outcomes.join(", "));
  let onDisk = 0;
  for (const name of await listTree(root)) onDisk += (await Deno.stat(join(root, name))).size;
  assert.ok(onDisk <= 1_000_000, `${onDisk} bytes stored under a 1 MB quota`);
});

Deno.test("--quota: a kept partial is counted until it is resumed or dropped, then not", async () => {
  await using ferryd = await inProcessServer({ quota: 1_000_000 });
  await using local = await tempDir();
  const src = join(local.path, "a.bin");
  const content = randomBytes(600_000);
  await Deno.writeFile(src, content);
  const { mtime } = await Deno.stat(src);
  // An upload cut off after 500 kB: its partial is kept, and counted.
  const fc = await rawSession(ferryd.port);
  const put = { op: "put", path: "a.bin", size: 600_000, mtime: mtime!.getTime(), resume: true };
  await fc.sendMessage(FrameType.REQUEST, 1, put);
  await sendData(fc, 1, content.subarray(0, 500_000));
  await new Promise((r) => setTimeout(r, 200));
  fc.close();
  await new Promise((r) => setTimeout(r, 200));
  const other = join(local.path, "b.bin");
  await Deno.writeFile(other, randomBytes(600_000));
  const refused = await runClient(`127.0.0.1:${ferryd.port}`, ["put", other, "b.bin"]);
  assert.equal(refused.code, 9, "500 kB kept + 600 kB new is over 1 MB");
  assert.match(refused.stderr, /over quota/);
  // The same file resumed fits: its kept bytes are its own.
  const resumed = await runClient(`127.0.0.1:${ferryd.port}`, ["--json", "put", "--resume", src]);
  assert.equal(resumed.code, 0, resumed.stderr);
  assert.equal(JSON.parse(resumed.stdout.split("\n")[0]).resumed, 500_000);
  // And once stored and removed, the whole quota is free again.
  assert.equal((await runClient(`127.0.0.1:${ferryd.port}`, ["rm", "a.bin"])).code, 0);
  const big = join(local.path, "c.bin");
  await Deno.writeFile(big, randomBytes(990_000));
  const fits = await runClient(`127.0.0.1:${ferryd.port}`, ["put", big, "c.bin"]);
  assert.equal(fits.code, 0, fits.stderr);
});

/** Start a resumable upload of 600 kB to `path`, send its first `sent` bytes, and return the session. */
async function startUpload(port: number, path: string, sent: number): Promise<FrameConn> {
  const fc = await rawSession(port);
  const put = { op: "put", path, size: 600_000, mtime: 1000, resume: true };
  await fc.sendMessage(FrameType.REQUEST, 1, put);
  await sendData(fc, 1, new Uint8Array(sent));
  await new Promise((r) => setTimeout(r, 200));
  return fc;
}

/** Cut it off: ferryd keeps the partial. */
async function cut(fc: FrameConn): Promise<void> {
  fc.close();
  await new Promise((r) => setTimeout(r, 200));
}

Deno.test("--quota counts kept partials where they are, after mv and rm -r", async () => {
  await using ferryd = await inProcessServer({ quota: 1_000_000 });
  await using local = await tempDir();
  const address = `127.0.0.1:${ferryd.port}`;
  const file = (name: string, size: number) => {
    Deno.writeFileSync(join(local.path, name), new Uint8Array(size));
    return join(local.path, name);
  };
  // Two partials of the same upload, one moved aside: they share a resume key, and both count.
  await cut(await startUpload(ferryd.port, "d/f.bin", 300_000));
  assert.equal((await runClient(address, ["mv", "d", "e"])).code, 0);
  await cut(await startUpload(ferryd.port, "d/f.bin", 300_000));
  const over = await runClient(address, ["put", file("a.bin", 500_000), "a.bin"]);
  assert.equal(over.code, 9, "600 kB kept + 500 kB new is over 1 MB");
  assert.match(over.stderr, /\(600000 held\)/);
  // Removing one leaves the other counted.
  assert.equal((await runClient(address, ["rm", "-r", "e"])).code, 0);
  const still = await runClient(address, ["put", file("b.bin", 800_000), "b.bin"]);
  assert.match(still.stderr, /\(300000 held\)/);
  assert.equal((await runClient(address, ["rm", "-r", "d"])).code, 0);

  // A partial whose directory is removed while its upload runs is not counted afterwards.
  const running = await startUpload(ferryd.port, "g/f.bin", 300_000);
  assert.equal((await runClient(address, ["rm", "-r", "g"])).code, 0);
  await cut(running);
  const fits = await runClient(address, ["put", file("c.bin", 990_000), "c.bin"]);
  assert.equal(fits.code, 0, fits.stderr);
});

Deno.test("a retried upload whose first attempt was stored but lost its reply succeeds", async () => {
  await using local = await tempDir();
  await Deno.writeTextFile(join(local.path, "tokens"), `${WRITE} write\n`);
  await using scoped = await startServer({ args: ["--tokens", join(local.path, "tokens")] });
  await writeRandomFile(join(local.path, "app.bin"), 2 * 1024 * 1024);
  // The first connection loses the server's answer to the upload; later ones pass everything.
  const front = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let connections = 0;
  const proxying = (async () => {
    for await (const inbound of front) {
      const first = connections++ === 0;
      const outbound = await Deno.connect({ hostname: "127.0.0.1", port: scoped.port });
      const close = () => [inbound, outbound].forEach(closeQuietly);
      const up = inbound.readable.pipeTo(outbound.writable).catch(() => {});
      const down = (async () => {
        let chunks = 0;
        for await (const chunk of outbound.readable) {
          if (first && ++chunks > 1) break; // the WELCOME passes, the REPLY does not
          await inbound.write(chunk);
        }
      })().catch(() => {});
      Promise.race([up, down]).finally(close);
    }
  })();
  try {
    const run = await runClient(`127.0.0.1:${front.addr.port}`, [
      "--token",
      WRITE,
      "--json",
      "put",
      join(local.path, "app.bin"),
    ]);
    assert.equal(run.code, 0, run.stderr);
    const line = JSON.parse(run.stdout.split("\n")[0]);
    assert.equal(line.attempts, 2, run.stdout);
    assert.equal(line.error, undefined);
    assert.deepEqual(
      await Deno.readFile(join(scoped.root, "app.bin")),
      await Deno.readFile(join(local.path, "app.bin")),
    );
  } finally {
    closeQuietly(front);
    await proxying.catch(() => {});
  }
});

Deno.test("--quota: a refused takeover leaves the upload it tried to take over counted", async () => {
  await using ferryd = await inProcessServer({ quota: 1_000_000 });
  const size = 900_000;
  const content = randomBytes(size);
  const put = { op: "put", path: "f.bin", size, mtime: 1000, resume: true };
  const a = await rawSession(ferryd.port);
  await a.sendMessage(FrameType.REQUEST, 1, put);
  await sendData(a, 1, content.subarray(0, 1000));
  await new Promise((r) => setTimeout(r, 100));
  // B claims far more than A wrote: refused, and A's reservation must stay where it was.
  const b = await rawSession(ferryd.port);
  await b.sendMessage(FrameType.REQUEST, 1, { ...put, offset: size - 1, prefix: "0".repeat(64) });
  assert.equal((await readMessage(b)).msg.code, "RESUME_MISMATCH");
  // So a second upload of that size, while A still runs, is over the quota.
  await b.sendMessage(FrameType.REQUEST, 2, { ...put, path: "g.bin" });
  assert.equal((await readMessage(b)).msg.code, "LIMIT");
  b.close();
  await sendData(a, 1, content.subarray(1000));
  await a.sendMessage(FrameType.END, 1, { sha256: sha256(content) });
  assert.equal((await readMessage(a)).type, FrameType.REPLY, "A itself is stored");
  a.close();
});
