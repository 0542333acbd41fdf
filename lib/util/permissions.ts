/**
 * What this process may do, asked without ever prompting: the one check
 * behind every choice that depends on Deno's permissions (the native
 * XXH3-128, the C library's calls, the isolates' lock).
 *
 * @module
 */

/**
 * Whether every permission in `names` (or the one descriptor) is granted
 * already, unscoped; never prompts, and a query that cannot be made counts
 * as not granted.
 *
 * @example
 * ```ts
 * import { granted } from "./permissions.ts";
 * console.assert(typeof granted("read", "write") === "boolean");
 * console.assert(typeof granted({ name: "env", variable: "HOME" }) === "boolean");
 * ```
 */
export function granted(
  ...names: (Deno.PermissionName | Deno.PermissionDescriptor)[]
): boolean {
  return names.every((name) => {
    try {
      const descriptor = typeof name === "string" ? { name } : name;
      return Deno.permissions.querySync(descriptor as Deno.PermissionDescriptor).state ===
        "granted";
    } catch {
      return false;
    }
  });
}
