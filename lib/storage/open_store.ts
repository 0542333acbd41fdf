/**
 * The one place that picks a storage backend other than the local root from
 * ferryd's command line: `--store s3://BUCKET[/PREFIX]` is a bucket. Nothing
 * else in ferryd knows which backend it serves.
 *
 * @module
 */

import { s3Config, type S3Flags } from "./s3/s3_config.ts";
import { S3Storage } from "./s3/s3_storage.ts";
import type { Storage } from "./storage.ts";

export type { S3Flags };

/**
 * Open the store `flags` name, with credentials from `env` (AWS's
 * variables), once it answers: a store that cannot be reached, refuses the
 * credentials or has no such bucket fails here, saying which.
 *
 * @example
 * ```ts ignore
 * const storage = await openStore({ store: "s3://artifacts" }, Deno.env.toObject());
 * ```
 */
export async function openStore(
  flags: S3Flags,
  env: Record<string, string | undefined>,
): Promise<Storage> {
  return await S3Storage.open(s3Config(flags, env));
}
