/**
 * A real S3 for tests: a single-node Ceph radosgw, started once per test
 * process by `scripts/ceph_rgw/start.sh` on free ports, and stopped (by pid)
 * when the process ends. Where Ceph is not installed, `rgwMissing` says why
 * and the tests that need it are skipped (`.ci/run` installs it).
 */

import { AwsClient } from "aws4fetch";
import { s3Config } from "../lib/storage/s3/s3_config.ts";
import { S3Storage } from "../lib/storage/s3/s3_storage.ts";

const START = new URL("../scripts/ceph_rgw/start.sh", import.meta.url).pathname;
const STOP = new URL("../scripts/ceph_rgw/stop.sh", import.meta.url).pathname;

/** Why radosgw cannot run here, or undefined when it can. */
export const rgwMissing: string | undefined = await (async () => {
  for (const tool of ["ceph-mon", "ceph-osd", "radosgw", "radosgw-admin"]) {
    const found = await new Deno.Command("sh", { args: ["-c", `command -v ${tool}`] }).output();
    if (!found.success) {
      return `${tool} is not installed (apt-get install ceph-mon ceph-osd radosgw): S3 tests skipped`;
    }
  }
  if (Deno.uid() !== 0) return "radosgw tests need root: S3 tests skipped";
  return undefined;
})();

/** How to reach the running radosgw. */
export interface Rgw {
  endpoint: string;
  bucket: string;
  /** The AWS variables ferryd reads, for this radosgw. */
  env: Record<string, string>;
  /** A signing client, for tests that look at the bucket directly. */
  aws: AwsClient;
}

let running: Promise<Rgw> | undefined;

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** The radosgw of this test process, started at the first call. */
export function rgw(): Promise<Rgw> {
  running ??= (async () => {
    let env: Record<string, string> = {};
    let out: Deno.CommandOutput | undefined;
    // A second try on fresh ports: a port taken between the probe and the start fails the first.
    for (let attempt = 0; attempt < 2 && !out?.success; attempt++) {
      env = {
        RGW_DIR: await Deno.makeTempDir({ prefix: "ferry-rgw-" }),
        RGW_PORT: String(freePort()),
        MON_PORT: String(freePort()),
        RGW_STOP_GRACE: "0",
      };
      out = await new Deno.Command("bash", { args: [START], env }).output();
      if (!out.success) {
        const why = new TextDecoder().decode(out.stderr).slice(-2000);
        console.warn(`radosgw did not start (attempt ${attempt + 1}): ${why}`);
        await new Deno.Command("bash", { args: [STOP], env: { ...env, RGW_KEEP: "1" } }).output();
      }
    }
    if (!out?.success) throw new Error("radosgw did not start: see the warnings above");
    // Stopped by pid when this process ends, whatever the tests did.
    globalThis.addEventListener("unload", () => {
      new Deno.Command("bash", { args: [STOP], env, stdout: "null", stderr: "null" })
        .outputSync();
    });
    const vars: Record<string, string> = {};
    for (const line of new TextDecoder().decode(out!.stdout).split("\n")) {
      const m = /^([A-Z0-9_]+)=(.*)$/.exec(line);
      if (m) vars[m[1]] = m[2];
    }
    const awsEnv = {
      AWS_ACCESS_KEY_ID: vars.S3_ACCESS_KEY,
      AWS_SECRET_ACCESS_KEY: vars.S3_SECRET_KEY,
      AWS_ENDPOINT_URL_S3: vars.S3_ENDPOINT,
      AWS_REGION: vars.S3_REGION,
    };
    const aws = new AwsClient({
      accessKeyId: vars.S3_ACCESS_KEY,
      secretAccessKey: vars.S3_SECRET_KEY,
      service: "s3",
      region: vars.S3_REGION,
      retries: 0,
    });
    return { endpoint: vars.S3_ENDPOINT, bucket: vars.S3_BUCKET, env: awsEnv, aws };
  })();
  return running;
}

/** A fresh, empty place in the test bucket: `s3://BUCKET/PREFIX`. */
export async function freshStore(): Promise<string> {
  const { bucket } = await rgw();
  return `s3://${bucket}/t-${crypto.randomUUID().slice(0, 8)}`;
}

/** An S3Storage on a fresh prefix of the test bucket. */
export async function freshS3Storage(): Promise<S3Storage> {
  const r = await rgw();
  return await S3Storage.open(s3Config({ store: await freshStore() }, r.env));
}
