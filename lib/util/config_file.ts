/**
 * Reading the small files a CLI is pointed at: tokens, certificates, keys.
 *
 * @module
 */

import { toFerryError } from "./errors.ts";
import { escapeName } from "./display.ts";

/**
 * The text of `path`, or a FerryError that says which file (`what`) could
 * not be read and why, in one line.
 *
 * @example
 * ```ts
 * import { readConfigFile } from "./config_file.ts";
 * const err = await readConfigFile("/nonexistent/tokens", "tokens file").catch((e) => e);
 * console.assert(err.message.startsWith("cannot read the tokens file"));
 * ```
 */
export async function readConfigFile(path: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    throw toFerryError(err, `cannot read the ${what} ${escapeName(path)}`);
  }
}
