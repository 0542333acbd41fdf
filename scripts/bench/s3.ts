/**
 * ferryd on S3 against rclone on the same store, in the same run: a
 * single-node Ceph radosgw (scripts/ceph_rgw/), ferryd serving a prefix of
 * its bucket, the ferry client and `rclone copy` alternating on the large
 * file and on a tree of small files, both ways; then ferryd's peak RSS
 * while it takes a much larger file (--big-mib).
 *
 *   deno run -A scripts/bench/s3.ts [--size-mib 1024] [--s3-files 1000] [--reps 3] [--big-mib 4096]
 *
 * runs this section alone and prints its figures.
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { rgwMissing, startRgw } from "../ceph_rgw/rgw.ts";
import { PROGRAMS } from "../build.ts";
import { writeRandom } from "./fixtures.ts";
import { median, MIB, peakRss, resetPeak, timed } from "./measure.ts";
import { freePort, waitPort } from "./ports.ts";
import { which } from "./system.ts";
import { Workspace } from "./workspace.ts";

const SERVER = new URL("../../server.ts", import.meta.url).pathname;
const CLIENT = new URL("../../client.ts", import.meta.url).pathname;

/** What the S3 section measured: rates in MiB/s and files/s, medians; memory in bytes. */
export interface S3Result {
  /** The large file, bytes; the tree, files of 4 KiB. */
  size: number;
  files: number;
  ferryPut: number;
  ferryGet: number;
  rclonePut: number;
  rcloneGet: number;
  ferryTreePut: number;
  ferryTreeGet: number;
  rcloneTreePut: number;
  rcloneTreeGet: number;
  /** ferryd's peak RSS while it took the `big`-byte file (0 when not measured). */
  ferrydPeakBig: number;
  big: number;
}

/** Run `cmd` with `env` added, timed; throws with its stderr when it fails. */
async function timedEnv(cmd: string, args: string[], env: Record<string, string>) {
  const t0 = performance.now();
  const out = await new Deno.Command(cmd, { args, env, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return (performance.now() - t0) / 1000;
}

/**
 * Measure ferryd-on-radosgw against rclone; undefined (with a note) where
 * radosgw or rclone cannot run.
 */
export async function s3Numbers(
  workspace: Workspace,
  options: { size: number; files: number; reps: number; big: number },
): Promise<S3Result | undefined> {
  const missing = await rgwMissing();
  if (missing) {
    workspace.note(`S3 section skipped: ${missing}.`);
    return undefined;
  }
  const rclone = which("rclone");
  if (!rclone) {
    workspace.note("S3 section skipped: rclone is not installed (apt-get install rclone).");
    return undefined;
  }
  const rgw = await startRgw();
  workspace.onCleanup(() => rgw.stop());
  const dir = join(workspace.dir, "s3");
  await Deno.mkdir(dir);
  const file = join(dir, "big.bin");
  await writeRandom(file, options.size);
  const tree = join(dir, "tree");
  for (let i = 0; i < options.files; i++) {
    const sub = join(tree, `d${i % 20}`);
    if (i < 20) await Deno.mkdir(sub, { recursive: true });
    const bytes = new Uint8Array(4096);
    crypto.getRandomValues(bytes);
    await Deno.writeFile(join(sub, `f${i}.bin`), bytes);
  }

  const port = freePort();
  const ferryd = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      ...PROGRAMS.find((p) => p.name === "ferryd")!.flags,
      SERVER,
      "--store",
      `s3://${rgw.bucket}/ferry`,
      "--port",
      String(port),
    ],
    env: rgw.env,
    stdout: "null",
    stderr: "null",
  }).spawn();
  workspace.onCleanup(async () => {
    ferryd.kill("SIGTERM");
    await ferryd.status;
  });
  await waitPort(port);
  const ferry = (...args: string[]) =>
    timed(Deno.execPath(), ["run", "-A", CLIENT, "-q", "--server", `127.0.0.1:${port}`, ...args]);
  // rclone as its users set it up for Ceph, from the environment; AWS_CA_BUNDLE (set on some
  // machines) makes rclone 1.60 refuse to start, and an HTTP endpoint needs none.
  const rcloneEnv: Record<string, string> = {
    RCLONE_CONFIG_RGW_TYPE: "s3",
    RCLONE_CONFIG_RGW_PROVIDER: "Ceph",
    RCLONE_CONFIG_RGW_ACCESS_KEY_ID: rgw.env.AWS_ACCESS_KEY_ID,
    RCLONE_CONFIG_RGW_SECRET_ACCESS_KEY: rgw.env.AWS_SECRET_ACCESS_KEY,
    RCLONE_CONFIG_RGW_ENDPOINT: rgw.endpoint,
    AWS_CA_BUNDLE: "",
  };
  const rc = (...args: string[]) => timedEnv(rclone, ["-q", ...args], rcloneEnv);
  const remote = (path: string) => `rgw:${rgw.bucket}/rclone/${path}`;

  let serial = 0;
  const fresh = async () => {
    const d = join(dir, `dst-${++serial}`);
    await Deno.mkdir(d);
    return d;
  };
  const rate = (s: number) => options.size / MIB / s;
  const perFile = (s: number) => options.files / s;
  const fp: number[] = [], fg: number[] = [], rp: number[] = [], rg: number[] = [];
  const ftp: number[] = [], ftg: number[] = [], rtp: number[] = [], rtg: number[] = [];
  // One warm-up round, then the measured ones; each tool goes first in turn.
  for (let rep = 0; rep <= options.reps; rep++) {
    const keep = rep > 0;
    const name = `t${rep}`;
    const steps: (() => Promise<void>)[] = [
      async () => {
        const s = (await ferry("put", file, "big.bin")).seconds;
        if (keep) fp.push(rate(s));
      },
      async () => {
        const s = await rc("copyto", "--ignore-times", file, remote("big.bin"));
        if (keep) rp.push(rate(s));
      },
      async () => {
        const s = (await ferry("get", "big.bin", join(await fresh(), "big.bin"))).seconds;
        if (keep) fg.push(rate(s));
      },
      async () => {
        const s = await rc("copyto", remote("big.bin"), join(await fresh(), "big.bin"));
        if (keep) rg.push(rate(s));
      },
      async () => {
        const s = (await ferry("put", "-r", tree, name)).seconds;
        if (keep) ftp.push(perFile(s));
      },
      async () => {
        const s = await rc("copy", tree, remote(name));
        if (keep) rtp.push(perFile(s));
      },
      async () => {
        const s = (await ferry("get", "-r", name, join(await fresh(), name))).seconds;
        if (keep) ftg.push(perFile(s));
      },
      async () => {
        const s = await rc("copy", remote(name), join(await fresh(), name));
        if (keep) rtg.push(perFile(s));
      },
    ];
    for (let i = 0; i < steps.length; i += 2) {
      const pair = rep % 2 === 0 ? [steps[i], steps[i + 1]] : [steps[i + 1], steps[i]];
      for (const step of pair) await step();
    }
  }
  await Deno.remove(file);

  let ferrydPeakBig = 0;
  if (options.big > 0) {
    const big = join(dir, "huge.bin");
    await writeRandom(big, options.big);
    resetPeak(ferryd.pid);
    const poll = setInterval(
      () => ferrydPeakBig = Math.max(ferrydPeakBig, peakRss(ferryd.pid)),
      50,
    );
    await ferry("put", big, "huge.bin");
    clearInterval(poll);
    ferrydPeakBig = Math.max(ferrydPeakBig, peakRss(ferryd.pid));
    await Deno.remove(big);
  }
  return {
    size: options.size,
    files: options.files,
    ferryPut: median(fp),
    ferryGet: median(fg),
    rclonePut: median(rp),
    rcloneGet: median(rg),
    ferryTreePut: median(ftp),
    ferryTreeGet: median(ftg),
    rcloneTreePut: median(rtp),
    rcloneTreeGet: median(rtg),
    ferrydPeakBig,
    big: options.big,
  };
}

/** The section's paragraph for BENCHMARKS.md. */
export function describeS3(r: S3Result): string {
  const x = (a: number, b: number) => (a / b).toFixed(2);
  return `S3 (a single-node Ceph radosgw on this machine, bluestore): ferryd serving a prefix of ` +
    `its bucket against \`rclone copy\` to the same radosgw (rclone's defaults), alternating. ` +
    `${r.size / MIB} MiB file: ferry put ${r.ferryPut.toFixed(0)} MiB/s, rclone ` +
    `${r.rclonePut.toFixed(0)} (${x(r.ferryPut, r.rclonePut)}x); get ${r.ferryGet.toFixed(0)} ` +
    `against ${r.rcloneGet.toFixed(0)} (${x(r.ferryGet, r.rcloneGet)}x). A tree of ${r.files} ` +
    `files of 4 KiB: put -r ${r.ferryTreePut.toFixed(0)} files/s against ` +
    `${r.rcloneTreePut.toFixed(0)} (${x(r.ferryTreePut, r.rcloneTreePut)}x); get -r ` +
    `${r.ferryTreeGet.toFixed(0)} against ${r.rcloneTreeGet.toFixed(0)} ` +
    `(${x(r.ferryTreeGet, r.rcloneTreeGet)}x).` +
    (r.big > 0
      ? ` ferryd peaked at ${(r.ferrydPeakBig / MIB).toFixed(0)} MiB RSS taking a ` +
        `${r.big / MIB} MiB file into the bucket.`
      : "");
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      "size-mib": { type: "string", default: "1024" },
      "s3-files": { type: "string", default: "1000" },
      reps: { type: "string", default: "3" },
      "big-mib": { type: "string", default: "4096" },
    },
  });
  await using workspace = await Workspace.create();
  const result = await s3Numbers(workspace, {
    size: Number(values["size-mib"]) * MIB,
    files: Number(values["s3-files"]),
    reps: Number(values.reps),
    big: Number(values["big-mib"]) * MIB,
  });
  if (result) console.log(describeS3(result));
  for (const note of workspace.notes) console.log(note);
}
