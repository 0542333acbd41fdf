/**
 * ferry: list, download and upload files on a ferryd server.
 *
 * ```sh
 * deno run -A client.ts put dist/app.tar.gz releases/
 * ```
 *
 * @module
 */

import { main } from "./lib/client/cli/main.ts";

export { main };

if (import.meta.main) Deno.exit(await main(Deno.args));
