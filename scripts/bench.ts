/**
 * `deno task bench`: ferry against the machine's limit and its peers, in one
 * run on loopback, contenders alternated, medians of several repetitions.
 * Every figure that matters is a ratio measured side by side.
 *
 *   deno task bench [--size-mib 1024] [--files 10000] [--reps 3] [--clients 100] [--out BENCHMARKS.md]
 *
 * Peers (socat, iperf3, scp/sftp via a private sshd, an rsync daemon) are used
 * where installed and skipped, with a note, where not.
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { connect } from "../mod.ts";
import { PROGRAMS } from "./build.ts";

const ROOT = new URL("..", import.meta.url).pathname;
const SERVER = join(ROOT, "server.ts");
const CLIENT = join(ROOT, "client.ts");

const { values: opts } = parseArgs({
  args: Deno.args,
  options: {
    "size-mib": { type: "string", default: "1024" },
    files: { type: "string", default: "10000" },
    reps: { type: "string", default: "3" },
    clients: { type: "string", default: "100" },
    "big-mib": { type: "string", default: "4096" },
    out: { type: "string", default: join(ROOT, "BENCHMARKS.md") },
  },
});
const SIZE = Number(opts["size-mib"]) * 1024 * 1024;
const FILES = Number(opts.files);
const REPS = Number(opts.reps);
const CLIENTS = Number(opts.clients);
const BIG = Number(opts["big-mib"]) * 1024 * 1024;
const MIB = 1024 * 1024;

const notes: string[] = [];
const work = await Deno.makeTempDir({ prefix: "ferry-bench-" });
const cleanup: (() => void | Promise<void>)[] = [];

function which(cmd: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").concat(["/usr/sbin", "/sbin"])) {
    try {
      const p = join(dir, cmd);
      if (Deno.statSync(p).isFile) return p;
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
}

async function run(cmd: string, args: string[], env?: Record<string, string>): Promise<void> {
  const out = await new Deno.Command(cmd, { args, env, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Run `cmd` and report wall time and its peak RSS (polled from /proc). */
async function timed(cmd: string, args: string[]): Promise<{ seconds: number; peak: number }> {
  const t0 = performance.now();
  const child = new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).spawn();
  let peak = 0;
  const poll = setInterval(() => peak = Math.max(peak, peakRss(child.pid)), 20);
  const out = await child.output();
  clearInterval(poll);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return { seconds: (performance.now() - t0) / 1000, peak };
}

function peakRss(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

async function waitPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  throw new Error(`nothing listens on ${port}`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

// ---------------------------------------------------------------- fixtures

async function writeRandom(path: string, size: number): Promise<void> {
  const block = new Uint8Array(MIB);
  for (let i = 0; i < MIB; i += 65536) crypto.getRandomValues(block.subarray(i, i + 65536));
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  for (let left = size; left > 0; left -= MIB) {
    // Vary each block so nothing downstream can deduplicate.
    block[0]++;
    let chunk = block.subarray(0, Math.min(left, MIB));
    while (chunk.length) chunk = chunk.subarray(f.writeSync(chunk));
  }
}

async function makeTree(dir: string, files: number): Promise<void> {
  const buf = new Uint8Array(4096);
  for (let i = 0; i < files; i++) {
    const sub = join(dir, `d${i % 100}`);
    if (i < 100) await Deno.mkdir(sub, { recursive: true });
    crypto.getRandomValues(buf);
    await Deno.writeFile(join(sub, `f${i}.bin`), buf);
  }
}

const src = join(work, "src");
const srcFile = join(src, "big.bin");
const srcTree = join(src, "tree");
await Deno.mkdir(srcTree, { recursive: true });
console.error(`fixtures: ${SIZE / MIB} MiB file, ${FILES} files of 4 KiB in ${work}`);
await writeRandom(srcFile, SIZE);
await makeTree(srcTree, FILES);
const dst = join(work, "dst");

// Trees go to new names and nothing is deleted until the end. On ext4 without a journal
// (this machine), a file created within seconds of thousands being deleted costs ~10x as
// much: the allocator steps over every recently freed inode (ext4 `recently_deleted`). A
// deletion before a round would make the figures depend on who ran after it.
const dstTrees = join(work, "dst-trees");
await Deno.mkdir(dstTrees);
let treeSerial = 0;
const newTreeName = () => `tree-${++treeSerial}`;

async function freshDst(): Promise<string> {
  await Deno.remove(dst, { recursive: true }).catch(() => {});
  await Deno.mkdir(dst, { recursive: true });
  return dst;
}

// ---------------------------------------------------------------- ferryd

const ferryPort = freePort();
const ferryRoot = join(work, "ferry-root");
await Deno.mkdir(ferryRoot);
const ferryd = new Deno.Command(Deno.execPath(), {
  // All the concurrent clients come from this one address: let them in.
  // As built: the same permissions and V8 options (see scripts/build.ts).
  args: [
    "run",
    ...PROGRAMS.find((p) => p.name === "ferryd")!.flags,
    SERVER,
    "--root",
    ferryRoot,
    "--port",
    String(ferryPort),
    "--max-per-client",
    String(CLIENTS + 1),
  ],
  stdout: "null",
  stderr: "null",
}).spawn();
cleanup.push(() => ferryd.kill("SIGTERM"));
await waitPort(ferryPort);
const ferryAddr = `127.0.0.1:${ferryPort}`;
const ferry = (...args: string[]) =>
  timed(Deno.execPath(), ["run", "-A", CLIENT, "-q", "--server", ferryAddr, ...args]);

async function resetFerryRoot(): Promise<void> {
  for await (const e of Deno.readDir(ferryRoot)) {
    await Deno.remove(join(ferryRoot, e.name), { recursive: true });
  }
}

// ---------------------------------------------------------------- peers

interface Contender {
  name: string;
  /** Upload the big file; returns seconds. */
  putFile?: () => Promise<{ seconds: number; peak?: number }>;
  getFile?: () => Promise<{ seconds: number; peak?: number }>;
  putTree?: () => Promise<{ seconds: number }>;
  /** Download the tree that the last `putTree` uploaded. */
  getTree?: () => Promise<{ seconds: number }>;
  /** Where the last `putTree` went. */
  tree?: string;
}

const contenders: Contender[] = [];

contenders.push({
  name: "ferry",
  async putFile() {
    await Deno.remove(join(ferryRoot, "big.bin")).catch(() => {});
    return await ferry("put", srcFile, "big.bin");
  },
  async getFile() {
    return await ferry("get", "big.bin", join(await freshDst(), "big.bin"));
  },
  async putTree() {
    this.tree = newTreeName();
    return await ferry("put", "-r", srcTree, this.tree);
  },
  async getTree() {
    return await ferry("get", "-r", this.tree!, join(dstTrees, newTreeName()));
  },
});

// The limit: file -> TCP -> file with no protocol at all.
const socat = which("socat");
if (socat) {
  contenders.push({
    name: "raw pipe (socat)",
    async putFile() {
      const port = freePort();
      const out = join(await freshDst(), "big.bin");
      const sink = new Deno.Command(socat, {
        args: ["-u", "-b", "1048576", `TCP-LISTEN:${port},reuseaddr`, `OPEN:${out},creat,trunc`],
        stdout: "null",
        stderr: "null",
      }).spawn();
      await waitPortListening(port);
      const t = await timed(socat, [
        "-u",
        "-b",
        "1048576",
        `OPEN:${srcFile}`,
        `TCP:127.0.0.1:${port}`,
      ]);
      await sink.status;
      return t;
    },
  });
} else {
  notes.push(
    "socat not installed: the raw pipe is a minimal Deno pipe with a reused 1 MiB buffer.",
  );
  contenders.push({
    name: "raw pipe (Deno)",
    async putFile() {
      const out = join(await freshDst(), "big.bin");
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const t0 = performance.now();
      const recv = (async () => {
        const conn = await listener.accept();
        using f = await Deno.open(out, { write: true, create: true, truncate: true });
        const buf = new Uint8Array(MIB);
        for (;;) {
          const n = await conn.read(buf);
          if (n === null) break;
          let c = buf.subarray(0, n);
          while (c.length) c = c.subarray(f.writeSync(c));
        }
        conn.close();
      })();
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
      using f = await Deno.open(srcFile);
      await f.readable.pipeTo(conn.writable);
      await recv;
      listener.close();
      return { seconds: (performance.now() - t0) / 1000 };
    },
  });
}

/** Wait until something listens on `port` without connecting to it (socat serves one connection). */
async function waitPortListening(port: number): Promise<void> {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  for (let i = 0; i < 200; i++) {
    const tcp = await Deno.readTextFile("/proc/net/tcp").catch(() => "");
    if (tcp.split("\n").some((l) => l.includes(`:${hex} 00000000:0000 0A`))) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`nothing listens on ${port}`);
}

// rsync daemon on loopback.
const rsync = which("rsync");
if (rsync) {
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
  const daemon = new Deno.Command(rsync, {
    args: ["--daemon", "--no-detach", `--config=${conf}`, `--port=${port}`, "--address=127.0.0.1"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  cleanup.push(() => daemon.kill("SIGTERM"));
  await waitPort(port);
  const url = `rsync://127.0.0.1:${port}/bench`;
  const resetMod = async () => {
    for await (const e of Deno.readDir(modRoot)) {
      await Deno.remove(join(modRoot, e.name), { recursive: true });
    }
  };
  contenders.push({
    name: "rsync daemon",
    async putFile() {
      await resetMod();
      return await timed(rsync, ["-a", srcFile, `${url}/big.bin`]);
    },
    async getFile() {
      return await timed(rsync, ["-a", `${url}/big.bin`, join(await freshDst(), "big.bin")]);
    },
    async putTree() {
      this.tree = newTreeName();
      return await timed(rsync, ["-a", `${srcTree}/`, `${url}/${this.tree}/`]);
    },
    async getTree() {
      return await timed(rsync, [
        "-a",
        `${url}/${this.tree}/`,
        join(dstTrees, newTreeName()) + "/",
      ]);
    },
  });
} else {
  notes.push("rsync not installed: no rsync daemon figures.");
}

// scp and sftp through a private sshd on loopback, aes128-gcm.
const sshd = which("sshd");
const scp = which("scp");
const sftp = which("sftp");
const keygen = which("ssh-keygen");
if (sshd && scp && keygen && Deno.uid?.() === 0) {
  const port = freePort();
  const dir = join(work, "ssh");
  await Deno.mkdir(dir);
  await run(keygen, ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "host")]);
  await run(keygen, ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "user")]);
  await Deno.copyFile(join(dir, "user.pub"), join(dir, "authorized_keys"));
  const sftpServer = ["/usr/lib/openssh/sftp-server", "/usr/libexec/sftp-server"].find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });
  await Deno.writeTextFile(
    join(dir, "sshd_config"),
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${join(dir, "host")}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      "PermitRootLogin prohibit-password",
      sftpServer ? `Subsystem sftp ${sftpServer}` : "",
    ].join("\n") + "\n",
  );
  await Deno.mkdir("/run/sshd", { recursive: true }).catch(() => {});
  const daemon = new Deno.Command(sshd, {
    args: ["-D", "-e", "-f", join(dir, "sshd_config")],
    stdout: "null",
    stderr: "null",
  }).spawn();
  cleanup.push(() => daemon.kill("SIGTERM"));
  await waitPort(port);
  const sshOpts = [
    "-i",
    join(dir, "user"),
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-c",
    "aes128-gcm@openssh.com",
  ];
  const remoteDir = join(work, "scp-root");
  await Deno.mkdir(remoteDir);
  contenders.push({
    name: "scp",
    async putFile() {
      return await timed(scp, [
        ...sshOpts,
        "-P",
        String(port),
        srcFile,
        `root@127.0.0.1:${remoteDir}/big.bin`,
      ]);
    },
    async getFile() {
      const out = join(await freshDst(), "big.bin");
      return await timed(scp, [
        ...sshOpts,
        "-P",
        String(port),
        `root@127.0.0.1:${remoteDir}/big.bin`,
        out,
      ]);
    },
    async putTree() {
      this.tree = newTreeName();
      return await timed(scp, [
        ...sshOpts,
        "-r",
        "-P",
        String(port),
        srcTree,
        `root@127.0.0.1:${remoteDir}/${this.tree}`,
      ]);
    },
    async getTree() {
      const out = join(dstTrees, newTreeName());
      return await timed(scp, [
        ...sshOpts,
        "-r",
        "-P",
        String(port),
        `root@127.0.0.1:${remoteDir}/${this.tree}`,
        out,
      ]);
    },
  });
  if (sftp && sftpServer) {
    const batch = async (commands: string) => {
      const file = join(dir, "batch");
      await Deno.writeTextFile(file, commands);
      return await timed(sftp, [
        ...sshOpts,
        "-q",
        "-b",
        file,
        "-P",
        String(port),
        "root@127.0.0.1",
      ]);
    };
    contenders.push({
      name: "sftp",
      putFile: () => batch(`put ${srcFile} ${remoteDir}/big-sftp.bin\n`),
      async getFile() {
        return await batch(`get ${remoteDir}/big-sftp.bin ${join(await freshDst(), "big.bin")}\n`);
      },
    });
  }
} else {
  notes.push("sshd/scp not installed (or not root): no scp or sftp figures.");
}

// ---------------------------------------------------------------- measure

type Row = {
  put?: number[];
  get?: number[];
  putTree?: number[];
  getTree?: number[];
  /** Peak client RSS during large-file and tree runs. */
  peakFile: number;
  peakTree: number;
};
const results = new Map<string, Row>(
  contenders.map((c) => [c.name, { peakFile: 0, peakTree: 0 }]),
);
const phases = ["putFile", "getFile", "putTree", "getTree"] as const;
const key = { putFile: "put", getFile: "get", putTree: "putTree", getTree: "getTree" } as const;

// One warm-up round: page cache, first-touch memory, JIT and module caches.
for (const c of contenders) {
  for (const phase of phases) await c[phase]?.();
}
for (let rep = 0; rep < REPS; rep++) {
  // Each contender goes first in turn, and each starts with nothing left to write back: on
  // this VM, whoever runs right after gigabytes were written or freed pays for it (2-3x).
  const order = contenders.map((_, i) => contenders[(i + rep) % contenders.length]);
  for (const phase of phases) {
    for (const c of order) {
      const fn = c[phase];
      if (!fn) continue;
      await run("sync", []);
      const r = await fn.call(c);
      const row = results.get(c.name)!;
      (row[key[phase]] ??= []).push(r.seconds);
      if ("peak" in r && r.peak) {
        const which = phase.endsWith("Tree") ? "peakTree" : "peakFile";
        row[which] = Math.max(row[which], r.peak as number);
      }
      console.error(`rep ${rep + 1} ${c.name} ${phase}: ${r.seconds.toFixed(3)} s`);
    }
  }
}
const ferrydPeakSerial = peakRss(ferryd.pid);

// Memory must not grow with the file: one put and one get of a much larger file (--big-mib).
const big = BIG > 0
  ? await (async () => {
    await resetFerryRoot();
    const src = join(work, "big.bin");
    await writeRandom(src, BIG);
    const put = await ferry("put", src, "big.bin");
    await Deno.remove(src);
    const back = join(work, "big-back.bin");
    const get = await ferry("get", "big.bin", back);
    await Deno.remove(back);
    await resetFerryRoot();
    return { put: put.peak, get: get.peak, ferryd: peakRss(ferryd.pid) };
  })()
  : undefined;

// 100 concurrent clients, each putting then getting its own 8 MiB file, all verified.
const concurrent = await (async () => {
  await resetFerryRoot();
  const size = 8 * MIB;
  const dir = join(work, "conc");
  await Deno.mkdir(dir, { recursive: true });
  const srcs = join(dir, "src.bin");
  await writeRandom(srcs, size);
  const t0 = performance.now();
  const outcomes = await Promise.all(Array.from({ length: CLIENTS }, async (_, i) => {
    const client = await connect(ferryAddr, { timeoutMs: 120_000 });
    try {
      const put = await client.put(srcs, `c${i}.bin`);
      const back = join(dir, `back${i}.bin`);
      const get = await client.get(`c${i}.bin`, back);
      await Deno.remove(back);
      return put.sha256 === get.sha256 && get.bytes === size;
    } finally {
      await client.close();
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  return {
    ok: outcomes.filter(Boolean).length,
    seconds,
    mibps: (2 * CLIENTS * size) / MIB / seconds,
    ferrydPeak: peakRss(ferryd.pid),
  };
})();

// iperf3 for the record: the TCP limit itself.
let iperf: number | undefined;
const iperf3 = which("iperf3");
if (iperf3) {
  const port = freePort();
  const server = new Deno.Command(iperf3, {
    args: ["-s", "-1", "-B", "127.0.0.1", "-p", String(port)],
    stdout: "null",
    stderr: "null",
  }).spawn();
  await waitPortListening(port);
  const out = await new Deno.Command(iperf3, {
    args: ["-c", "127.0.0.1", "-p", String(port), "-l", "1M", "-t", "3", "-J"],
    stdout: "piped",
  }).output();
  await server.status;
  const json = JSON.parse(new TextDecoder().decode(out.stdout));
  iperf = json.end.sum_received.bits_per_second / 8 / MIB;
} else {
  notes.push("iperf3 not installed: no TCP ceiling figure.");
}

for (const fn of cleanup.reverse()) {
  try {
    await fn();
  } catch {
    // Already gone.
  }
}
await ferryd.status;
await Deno.remove(work, { recursive: true }).catch(() => {});

// ---------------------------------------------------------------- report

const mibps = (xs?: number[]) => xs ? SIZE / MIB / median(xs) : undefined;
const filesps = (xs?: number[]) => xs ? FILES / median(xs) : undefined;
const raw = [...results.keys()].find((k) => k.startsWith("raw pipe"))!;
const rawPut = mibps(results.get(raw)!.put)!;
const ferryRow = results.get("ferry")!;
const f = {
  put: mibps(ferryRow.put)!,
  get: mibps(ferryRow.get)!,
  putTree: filesps(ferryRow.putTree)!,
  getTree: filesps(ferryRow.getTree)!,
};
const mib = (bytes: number) => bytes ? `${(bytes / MIB).toFixed(0)} MiB` : "–";
const fmt = (x?: number, d = 0) => x === undefined ? "–" : x.toFixed(d);
const ratio = (x?: number, y?: number) => x === undefined || !y ? "–" : `${(x / y).toFixed(2)}x`;

const lines: string[] = [];
lines.push(
  `| contender | put MiB/s | get MiB/s | put vs raw | get vs raw | ferry put ÷ it | ferry get ÷ it | put -r files/s | get -r files/s | ferry put -r ÷ it | ferry get -r ÷ it | peak RSS, file | peak RSS, tree |`,
  `|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|`,
);
for (const [name, row] of results) {
  const put = mibps(row.put);
  const get = mibps(row.get);
  const pt = filesps(row.putTree);
  const gt = filesps(row.getTree);
  lines.push(
    `| ${name} | ${fmt(put)} | ${fmt(get)} | ${ratio(put, rawPut)} | ${ratio(get, rawPut)} | ${
      ratio(f.put, put)
    } | ${ratio(f.get, get)} | ${fmt(pt)} | ${fmt(gt)} | ${ratio(f.putTree, pt)} | ${
      ratio(f.getTree, gt)
    } | ${mib(row.peakFile)} | ${mib(row.peakTree)} |`,
  );
}
const cpu = Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*:\s*(.*)/)?.[1] ?? "?";
const report = [
  "# Benchmarks",
  "",
  `Run: ${
    new Date().toISOString().slice(0, 16).replace("T", " ")
  } UTC, \`deno task bench\`, Deno ${Deno.version.deno}, ` +
  `${navigator.hardwareConcurrency} cores (${cpu}), ${
    (Deno.systemMemoryInfo().total / 1024 ** 3).toFixed(0)
  } GiB, loopback.`,
  `Large file: ${
    SIZE / MIB
  } MiB of random bytes. Tree: ${FILES} files of 4 KiB in 100 directories. ` +
  `Medians of ${REPS} repetitions after one warm-up round, contenders alternated, each going ` +
  "first in turn, after a `sync`; trees always go to new directories and nothing is deleted " +
  "until the end. " +
  "ferry verifies SHA-256 end to end on every transfer; the raw pipe verifies nothing.",
  "",
  ...lines,
  "",
  iperf ? `iperf3 (TCP ceiling, 1 MiB writes): ${iperf.toFixed(0)} MiB/s.` : "",
  "",
  `${CLIENTS} concurrent clients, each putting then getting its own 8 MiB file on its own ` +
  `connection: ${concurrent.ok}/${CLIENTS} verified correct, ${
    concurrent.mibps.toFixed(0)
  } MiB/s total, ` +
  `${concurrent.seconds.toFixed(2)} s; ferryd peak RSS ${
    (concurrent.ferrydPeak / MIB).toFixed(0)
  } MiB ` +
  `(${(ferrydPeakSerial / MIB).toFixed(0)} MiB after the serial runs).`,
  "",
  big
    ? `Memory with a ${BIG / MIB} MiB file: ferry peak RSS ${(big.put / MIB).toFixed(0)} MiB ` +
      `(put) and ${(big.get / MIB).toFixed(0)} MiB (get); ferryd peak ${
        (big.ferryd / MIB).toFixed(0)
      } MiB so far. Target: at most 100 MiB, whatever the size.`
    : "",
  "",
  ...notes.map((n) => `- ${n}`),
  "",
].filter((l, i, a) => !(l === "" && a[i - 1] === "")).join("\n");
console.log(report);
await Deno.writeTextFile(opts.out, report);
// The report is committed, and `deno task check` holds it to the project's format.
await new Deno.Command(Deno.execPath(), { args: ["fmt", "-q", opts.out] }).output();
