/**
 * The real S3 of the tests: one radosgw per test process (see
 * `scripts/ceph_rgw/rgw.ts`), started at the first need and stopped when
 * the process ends. Where Ceph cannot run, `rgwMissing` says why and the
 * tests that need it are skipped (`.ci/run` installs it).
 */

import { AwsClient } from "aws4fetch";
import { type Rgw, rgwMissing as whyMissing, startRgw } from "../scripts/ceph_rgw/rgw.ts";
import { s3Config } from "../lib/storage/s3/s3_config.ts";
import { S3Storage } from "../lib/storage/s3/s3_storage.ts";

/** Why radosgw cannot run here, or undefined when it can. */
export const rgwMissing: string | undefined = await whyMissing().then((why) =>
  why === undefined ? undefined : `${why}: S3 tests skipped`
);

let running: Promise<Rgw & { aws: AwsClient }> | undefined;

/** The radosgw of this test process, with a signing client for looking at the bucket directly. */
export function rgw(): Promise<Rgw & { aws: AwsClient }> {
  running ??= startRgw().then((r) => {
    // Stopped by pid when this process ends, whatever the tests did.
    globalThis.addEventListener("unload", () => r.stop());
    const aws = new AwsClient({
      accessKeyId: r.env.AWS_ACCESS_KEY_ID,
      secretAccessKey: r.env.AWS_SECRET_ACCESS_KEY,
      service: "s3",
      region: r.env.AWS_REGION,
      retries: 0,
    });
    return { ...r, aws };
  });
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
