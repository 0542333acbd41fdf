/** Helpers for integration tests: a real ferryd and the real ferry CLI as subprocesses. */

import { createHash } from "node:crypto";
import { createXXHash128 } from "hash-wasm";
import { join } from "node:path";
import { PROTOCOL_VERSION } from "../lib/commands.ts";
import { decodeMessage, DEFAULT_LIMITS, FrameType } from "../lib/frame.ts";
import { FrameConn } from "../lib/wire/frame_conn.ts";
import { type FerryServer, serve, type ServeOptions } from "../lib/server/serve.ts";

// The benchmark measures memory the same way: one copy, in the benchmark's helpers.
export { currentRss, peakRss } from "../scripts/bench/measure.ts";

const SERVER = new URL("../server.ts", import.meta.url).pathname;
const CLIENT = new URL("../client.ts", import.meta.url).pathname;
/** The repository: where child processes run unless a test says otherwise. */
const REPO = new URL("..", import.meta.url).pathname;

/** A ferryd subprocess on an ephemeral port. */
export interface ServerProcess {
  /** The line ferryd printed on start. */
  banner: string;
  port: number;
  address: string;
  root: string;
  process: Deno.ChildProcess;
  /** Everything the server has logged to stderr so far. */
  log(): string;
  /** SIGTERM it and wait; returns its exit code. */
  stop(): Promise<number>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Start `server.ts --port 0` serving `root` (a new temp dir by default),
 * with at most `fdLimit` open files when given, and Deno runtime `flags`
 * (all by default).
 */
export async function startServer(
  options: {
    root?: string;
    args?: string[];
    fdLimit?: number;
    flags?: readonly string[];
    env?: Record<string, string>;
  } = {},
): Promise<ServerProcess> {
  const root = options.root ?? await Deno.makeTempDir({ prefix: "ferry-root-" });
  const deno = [
    Deno.execPath(),
    "run",
    ...options.flags ?? ["-A"],
    // A server of a bucket (--store) has no root to serve.
    ...[SERVER, "--port", "0", ...(options.args?.includes("--store") ? [] : ["--root", root])],
    ...(options.args ?? []),
  ];
  const [command, ...args] = options.fdLimit
    ? ["sh", "-c", `ulimit -n ${options.fdLimit} && exec "$@"`, "sh", ...deno]
    : deno;
  const process = new Deno.Command(command, {
    args,
    // A directory of its own: under `deno test --parallel`, an in-process server of another
    // test may hold a directory (chdir) at the moment of the spawn, which may then be removed.
    cwd: REPO,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...options.env },
  }).spawn();
  let stderr = "";
  (async () => {
    for await (const text of process.stderr.pipeThrough(new TextDecoderStream())) stderr += text;
  })();
  const reader = process.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`server exited before listening: ${stderr}`);
    out += value;
  }
  reader.releaseLock();
  const m = /listening on (\S+):(\d+)/.exec(out);
  if (!m) throw new Error(`unexpected server banner: ${out}`);
  const port = Number(m[2]);
  let stopped: Promise<number> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      try {
        process.kill("SIGTERM");
      } catch {
        // Already exited.
      }
      const status = await process.status;
      return status.code;
    })();
    return stopped;
  };
  return {
    banner: out.split("\n")[0],
    port,
    address: `127.0.0.1:${port}`,
    root,
    process,
    log: () => stderr,
    stop,
    async [Symbol.asyncDispose]() {
      await stop();
      await Deno.remove(root, { recursive: true }).catch(() => {});
    },
  };
}

/** Result of one client run. */
export interface ClientRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for {@linkcode runClient}. */
export interface ClientOptions {
  stdin?: string;
  /** Bytes for stdin, instead of `stdin`. */
  stdinBytes?: Uint8Array;
  cwd?: string;
  env?: Record<string, string>;
  /** Deno runtime flags: permissions and V8 options (default: all permissions). */
  flags?: readonly string[];
}

/** Run `client.ts --server ADDRESS ARGS...` to completion. */
export async function runClient(
  address: string,
  args: string[],
  options: ClientOptions = {},
): Promise<ClientRun> {
  const out = await clientOutput(address, args, options);
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Like {@linkcode runClient}, with stdout as bytes. */
export async function runClientBytes(
  address: string,
  args: string[],
  options: ClientOptions = {},
): Promise<{ code: number; stdout: Uint8Array; stderr: string }> {
  const out = await clientOutput(address, args, options);
  return { code: out.code, stdout: out.stdout, stderr: new TextDecoder().decode(out.stderr) };
}

async function clientOutput(address: string, args: string[], options: ClientOptions) {
  const child = spawnClient(address, args, options);
  const writer = child.stdin.getWriter();
  // Written while the output is read: a client that reads little must not block the test.
  const feeding = (async () => {
    await writer.write(options.stdinBytes ?? new TextEncoder().encode(options.stdin ?? ""));
    await writer.close();
  })().catch(() => {});
  const out = await child.output();
  await feeding;
  return out;
}

/** The command line that runs the client against `address` (for a shell to run). */
export function clientCommand(address: string, args: string[]): string[] {
  return [Deno.execPath(), "run", "-A", CLIENT, "--server", address, ...args];
}

/** Start the client without waiting for it; stdin is piped. */
export function spawnClient(
  address: string,
  args: string[],
  options: ClientOptions = {},
): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", ...options.flags ?? ["-A"], CLIENT, "--server", address, ...args],
    cwd: options.cwd ?? REPO,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", ...options.env },
  }).spawn();
}

/** A fresh temporary directory, removed on dispose. */
export async function tempDir(prefix = "ferry-test-"): Promise<
  { path: string; [Symbol.asyncDispose](): Promise<void> }
> {
  const path = await Deno.makeTempDir({ prefix });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}),
  };
}

/** Random bytes of any length (getRandomValues caps one call at 64 KiB). */
export function randomBytes(size: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) {
    crypto.getRandomValues(out.subarray(i, Math.min(size, i + 65536)));
  }
  return out;
}

/**
 * XXH3-128 of `bytes`, lowercase hex, from hash-wasm directly: a second
 * opinion on the value ferry computes (natively, where the addon loads).
 */
export function xxh128(bytes: Uint8Array): string {
  WASM_XXH128.init();
  WASM_XXH128.update(bytes);
  return WASM_XXH128.digest("hex");
}

const WASM_XXH128 = await createXXHash128();

/** SHA-256 of `bytes`, lowercase hex. */
export function sha256(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

/** The bytes of `parts`, one after another. */
export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  return out;
}

/** Write a file of `size` bytes: random, repeated in 1 MiB blocks beyond the first MiB. */
export async function writeRandomFile(path: string, size: number): Promise<void> {
  const block = randomBytes(Math.min(size, 1 << 20));
  using file = await Deno.open(path, { write: true, create: true, truncate: true });
  for (let left = size; left > 0; left -= block.length) {
    let chunk = block.subarray(0, Math.min(left, block.length));
    while (chunk.length > 0) chunk = chunk.subarray(file.writeSync(chunk));
  }
}

/** Whether two files have identical content. */
export async function sameContent(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([Deno.readFile(a), Deno.readFile(b)]);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

/** Every name under `dir`, recursively, relative to it. */
export async function listTree(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    names.push(e.name);
    if (e.isDirectory) {
      for (const sub of await listTree(join(dir, e.name))) names.push(`${e.name}/${sub}`);
    }
  }
  return names.sort();
}

/** Wait until `check` is true, polling; throws after `timeoutMs`. */
export async function waitFor(
  check: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = "condition",
) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A hand-driven protocol session, for tests that must misbehave on purpose.
 * It offers SHA-256 only (unless told otherwise), so that the tests compute
 * their trailers with `node:crypto`.
 */
export async function rawSession(
  port: number,
  checksums: string[] = ["sha256"],
): Promise<FrameConn> {
  const fc = new FrameConn(await Deno.connect({ hostname: "127.0.0.1", port }));
  await fc.sendMessage(FrameType.HELLO, 0, {
    version: PROTOCOL_VERSION,
    agent: "raw-test",
    checksums,
  });
  const frame = await fc.read();
  if (frame?.type !== FrameType.WELCOME) throw new Error("no WELCOME");
  return fc;
}

/** Read the next frame and decode its JSON payload. */
export async function readMessage(
  fc: FrameConn,
): Promise<{ type: number; id: number; msg: Record<string, unknown> }> {
  const frame = await fc.read();
  if (!frame) throw new Error("connection closed");
  return { type: frame.type, id: frame.id, msg: decodeMessage(frame) };
}

/** A fake server: it answers the handshake with `limits`, then `session` drives each connection. */
export interface FakeServer {
  address: string;
  port: number;
  /** Stop accepting and wait for the sessions to end. */
  close(): Promise<void>;
}

/**
 * Serve `session` to every connection, on an ephemeral loopback port, until
 * closed. It answers any HELLO with a WELCOME that picks SHA-256.
 */
export function fakeServer(
  session: (fc: FrameConn) => Promise<void>,
  limits: Record<string, number> = DEFAULT_LIMITS,
  welcome: Record<string, unknown> = {},
): FakeServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const sessions: Promise<void>[] = [];
  const accepting = (async () => {
    for await (const conn of listener) {
      const fc = new FrameConn(conn);
      sessions.push(
        (async () => {
          await fc.read();
          // SHA-256: the sessions compute their trailers with node:crypto.
          await fc.sendMessage(FrameType.WELCOME, 0, {
            version: PROTOCOL_VERSION,
            agent: "fake",
            limits,
            checksum: "sha256",
            ...welcome,
          });
          await session(fc);
        })().catch(() => {}).finally(() => fc.close()),
      );
    }
  })().catch(() => {});
  return {
    address: `127.0.0.1:${listener.addr.port}`,
    port: listener.addr.port,
    async close() {
      closeQuietly(listener);
      await accepting;
      await Promise.all(sessions);
    },
  };
}

/**
 * A TCP proxy to `port` that cuts each of its first `cuts` connections after
 * `cutAfter` bytes have gone through (either way), and passes later ones whole.
 * With `anyConnection`, it cuts the first `cuts` connections that get that
 * far, whichever they are (a browser opens several).
 */
export function cuttingProxy(
  port: number,
  options: { cutAfter: number; cuts: number; acceptOnce?: boolean; anyConnection?: boolean },
) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let connections = 0;
  let made = 0;
  const pumps: Promise<unknown>[] = [];
  const accepting = (async () => {
    for await (const inbound of listener) {
      const first = connections++ < options.cuts;
      const cut = () => options.anyConnection ? made < options.cuts : first;
      // A server that goes away for good: later connections are refused.
      if (options.acceptOnce) listener.close();
      const outbound = await Deno.connect({ hostname: "127.0.0.1", port });
      let moved = 0;
      const close = () => [inbound, outbound].forEach(closeQuietly);
      const pump = async (from: Deno.Conn, to: Deno.Conn) => {
        const buf = new Uint8Array(64 * 1024);
        for (;;) {
          const n = await from.read(buf);
          if (n === null) break;
          if (moved + n > options.cutAfter && cut()) {
            made++;
            break;
          }
          moved += n;
          let chunk = buf.subarray(0, n);
          while (chunk.length) chunk = chunk.subarray(await to.write(chunk));
        }
      };
      pumps.push(
        Promise.race([pump(inbound, outbound), pump(outbound, inbound)]).catch(() => {}).finally(
          close,
        ),
      );
    }
  })().catch((err) => console.error("proxy accept loop died:", err));
  return {
    address: `127.0.0.1:${listener.addr.port}`,
    get connections() {
      return connections;
    },
    async close() {
      closeQuietly(listener);
      await accepting;
      await Promise.all(pumps);
    },
  };
}

/**
 * A TCP proxy to `port` that passes at most `bytesPerSecond` each way: a
 * transfer through it lasts long enough to be interfered with. It counts
 * the bytes that went through, both ways.
 */
export function throttledProxy(port: number, bytesPerSecond: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const pumps: Promise<unknown>[] = [];
  let total = 0;
  const accepting = (async () => {
    for await (const inbound of listener) {
      const outbound = await Deno.connect({ hostname: "127.0.0.1", port });
      const close = () => [inbound, outbound].forEach(closeQuietly);
      const pump = async (from: Deno.Conn, to: Deno.Conn) => {
        const buf = new Uint8Array(16 * 1024);
        const started = performance.now();
        let moved = 0;
        for (;;) {
          const n = await from.read(buf);
          if (n === null) break;
          let chunk = buf.subarray(0, n);
          while (chunk.length) chunk = chunk.subarray(await to.write(chunk));
          moved += n;
          total += n;
          const ahead = moved / bytesPerSecond * 1000 - (performance.now() - started);
          if (ahead > 0) await new Promise((r) => setTimeout(r, ahead));
        }
      };
      pumps.push(
        Promise.race([pump(inbound, outbound), pump(outbound, inbound)]).catch(() => {})
          .finally(close),
      );
    }
  })().catch(() => {});
  return {
    address: `127.0.0.1:${listener.addr.port}`,
    /** Bytes passed so far, both ways together. */
    get bytes() {
      return total;
    },
    async close() {
      closeQuietly(listener);
      await accepting;
      await Promise.all(pumps);
    },
  };
}

/** ferryd in this process, on an ephemeral port and a temp root, with its log lines collected. */
export async function inProcessServer(
  options: Omit<ServeOptions, "root" | "port" | "log"> = {},
): Promise<{ server: FerryServer; port: number; lines: string[] } & AsyncDisposable> {
  const root = await Deno.makeTempDir({ prefix: "ferry-root-" });
  const lines: string[] = [];
  const server = await serve({ ...options, root, port: 0, log: (l) => lines.push(l) });
  return {
    server,
    port: server.addr.port,
    lines,
    async [Symbol.asyncDispose]() {
      await server.close();
      await Deno.remove(root, { recursive: true }).catch(() => {});
    },
  };
}

/** Close a listener or connection that may already be closed. */
export function closeQuietly(closable: { close(): void }): void {
  try {
    closable.close();
  } catch {
    // Already closed.
  }
}

/** Whether this test process is the child {@linkcode rerunWithoutLibc} started. */
export const WITHOUT_LIBC_CHILD = Deno.env.get("FERRY_TEST_WITHOUT_LIBC") === "1";

/**
 * Run the test file at `url` again in a child with `FERRY_LIBC=off`, so that
 * its cases go through `node:fs` and Deno's calls instead of the C
 * library's; returns the child's output once it passed.
 */
export async function rerunWithoutLibc(url: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", "--no-check", new URL(url).pathname],
    env: { FERRY_LIBC: "off", FERRY_TEST_WITHOUT_LIBC: "1", NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`the cases failed without the C library:\n${text}`);
  return text;
}
