/**
 * ferryd: serve one directory tree to ferry clients.
 *
 * ```sh
 * deno run -A server.ts --root ./artifacts --port 9500
 * ```
 *
 * @module
 */

import { main } from "./lib/server/cli.ts";

export { main };

if (import.meta.main) Deno.exit(await main(Deno.args));
