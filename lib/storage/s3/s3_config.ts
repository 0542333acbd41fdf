/**
 * Where a bucket is and how to sign for it: from `--store s3://BUCKET/PREFIX`,
 * the `--s3-*` flags and AWS's own environment variables, so that the
 * secrets a CI system already holds for S3 work unchanged.
 *
 * @module
 */

import { FerryError } from "../../util/errors.ts";
import { normalizePath } from "../../util/path_jail.ts";

/** Everything needed to reach one bucket (and a prefix in it). */
export interface S3Config {
  /** `http(s)://host[:port]`, without the bucket. */
  endpoint: string;
  /** Region to sign for (`us-east-1` when none is set: what S3-compatible stores accept). */
  region: string;
  /** The bucket's name. */
  bucket: string;
  /** Key prefix every path lives under: `""` or ending in `/`. */
  prefix: string;
  /** Bucket in the path (`endpoint/bucket/key`) rather than in the host name. */
  pathStyle: boolean;
  /** `AWS_ACCESS_KEY_ID`. */
  accessKeyId: string;
  /** `AWS_SECRET_ACCESS_KEY`. */
  secretAccessKey: string;
  /** `AWS_SESSION_TOKEN`, for temporary credentials. */
  sessionToken?: string;
}

/** What the command line says of the store; the environment fills the rest. */
export interface S3Flags {
  /** `s3://BUCKET[/PREFIX]`. */
  store: string;
  /** `--s3-endpoint`: the store's URL (else the environment's, else AWS's). */
  endpoint?: string;
  /** `--s3-region`: the region to sign for. */
  region?: string;
  /** `--s3-path-style`: the bucket in the URL's path (the default with an endpoint of one's own). */
  pathStyle?: boolean;
}

/**
 * The bucket and prefix of an `s3://BUCKET[/PREFIX]` URL; the prefix is held
 * to the same rules as any path ferryd serves.
 *
 * @example
 * ```ts
 * import { parseStoreUrl } from "./s3_config.ts";
 * const { bucket, prefix } = parseStoreUrl("s3://artifacts/ci/builds");
 * console.assert(bucket === "artifacts" && prefix === "ci/builds/");
 * ```
 */
export function parseStoreUrl(store: string): { bucket: string; prefix: string } {
  const match = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(store);
  if (!match) {
    throw new FerryError("USAGE", `--store takes s3://BUCKET[/PREFIX], not ${store}`);
  }
  const bucket = match[1];
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new FerryError("USAGE", `not a bucket name: ${bucket}`);
  }
  const rest = (match[2] ?? "").replace(/\/+$/, "");
  const prefix = rest === "" ? "" : `${normalizePath(rest)}/`;
  return { bucket, prefix };
}

/**
 * The whole configuration, from the flags and AWS's variables:
 * `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
 * `AWS_REGION` / `AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL_S3` /
 * `AWS_ENDPOINT_URL`. A flag wins over its variable.
 *
 * @example
 * ```ts
 * import { s3Config } from "./s3_config.ts";
 * const env = { AWS_ACCESS_KEY_ID: "AK", AWS_SECRET_ACCESS_KEY: "SK" };
 * const config = s3Config({ store: "s3://bucket", endpoint: "http://127.0.0.1:7480" }, env);
 * console.assert(config.pathStyle && config.region === "us-east-1");
 * ```
 */
export function s3Config(flags: S3Flags, env: Record<string, string | undefined>): S3Config {
  const { bucket, prefix } = parseStoreUrl(flags.store);
  const accessKeyId = env.AWS_ACCESS_KEY_ID;
  const secretAccessKey = env.AWS_SECRET_ACCESS_KEY;
  if (!accessKeyId || !secretAccessKey) {
    throw new FerryError(
      "USAGE",
      `--store ${flags.store} needs credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`,
    );
  }
  const region = flags.region || env.AWS_REGION || env.AWS_DEFAULT_REGION || "us-east-1";
  const given = flags.endpoint || env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL;
  const endpoint = given ?? `https://s3.${region}.amazonaws.com`;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new FerryError("USAGE", `not an endpoint URL: ${endpoint}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new FerryError("USAGE", `the S3 endpoint must be http:// or https://, not ${endpoint}`);
  }
  // AWS itself takes the bucket in the host name; a store of one's own (Ceph, MinIO) at an
  // address usually does not, and dotted bucket names break TLS host names.
  const pathStyle = flags.pathStyle ?? (given !== undefined || bucket.includes("."));
  return {
    endpoint: `${url.protocol}//${url.host}${url.pathname.replace(/\/$/, "")}`,
    region,
    bucket,
    prefix,
    pathStyle,
    accessKeyId,
    secretAccessKey,
    sessionToken: env.AWS_SESSION_TOKEN || undefined,
  };
}
