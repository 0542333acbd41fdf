/**
 * A real S3 on this machine: a single-node Ceph radosgw, started by
 * `start.sh` on free ports in a directory of its own and stopped, by pid, by
 * `stop.sh`. Used by the tests and by `deno task bench`.
 *
 * @module
 */

const START = new URL("./start.sh", import.meta.url).pathname;
const STOP = new URL("./stop.sh", import.meta.url).pathname;

/** Why radosgw cannot run here (not installed, not root), or undefined when it can. */
export async function rgwMissing(): Promise<string | undefined> {
  for (const tool of ["ceph-mon", "ceph-osd", "radosgw", "radosgw-admin"]) {
    const found = await new Deno.Command("sh", { args: ["-c", `command -v ${tool}`] }).output();
    if (!found.success) {
      return `${tool} is not installed (apt-get install ceph-mon ceph-osd radosgw)`;
    }
  }
  if (Deno.uid() !== 0) return "radosgw needs root here";
  return undefined;
}

/** A running radosgw, with a bucket and a user. */
export interface Rgw {
  /** `http://127.0.0.1:PORT`. */
  endpoint: string;
  /** The bucket made for this instance. */
  bucket: string;
  /** AWS's variables, set for this radosgw: what ferryd and rclone read. */
  env: Record<string, string>;
  /** Stop it and remove its files (synchronous: it can run as the process ends). */
  stop(): void;
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/**
 * Start a radosgw (about 2-3 s). A failed start is tried once more on
 * fresh ports: a port taken between the probe and the start fails the first.
 */
export async function startRgw(): Promise<Rgw> {
  let why = "";
  for (let attempt = 0; attempt < 2; attempt++) {
    const env = {
      RGW_DIR: await Deno.makeTempDir({ prefix: "ferry-rgw-" }),
      RGW_PORT: String(freePort()),
      MON_PORT: String(freePort()),
      RGW_STOP_GRACE: "0",
    };
    const out = await new Deno.Command("bash", { args: [START], env }).output();
    const stop = () => {
      new Deno.Command("bash", { args: [STOP], env, stdout: "null", stderr: "null" })
        .outputSync();
    };
    if (!out.success) {
      why = new TextDecoder().decode(out.stderr).slice(-2000);
      stop();
      continue;
    }
    const vars: Record<string, string> = {};
    for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
      const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
      if (m) vars[m[1]] = m[2];
    }
    return {
      endpoint: vars.S3_ENDPOINT,
      bucket: vars.S3_BUCKET,
      env: {
        AWS_ACCESS_KEY_ID: vars.S3_ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY: vars.S3_SECRET_KEY,
        AWS_ENDPOINT_URL_S3: vars.S3_ENDPOINT,
        AWS_REGION: vars.S3_REGION,
      },
      stop,
    };
  }
  throw new Error(`radosgw did not start: ${why}`);
}
