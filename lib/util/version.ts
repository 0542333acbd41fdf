/**
 * The version of this build, from `deno.json`.
 *
 * @module
 */

import meta from "../../deno.json" with { type: "json" };

/**
 * ferry's version, e.g. `0.1.0`.
 *
 * @example
 * ```ts
 * import { VERSION } from "./version.ts";
 * console.assert(/^\d+\.\d+\.\d+/.test(VERSION));
 * ```
 */
export const VERSION: string = meta.version;
