/**
 * The `ferryd` command line.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { exitCodeFor, FerryError, toFerryError } from "./errors.ts";
import { escapeName } from "./path_jail.ts";
import { DEFAULT_PORT, serve } from "./server.ts";
import { VERSION } from "./version.ts";

const HELP = `ferryd ${VERSION}: serve one directory tree to ferry clients

Usage:
  ferryd [OPTIONS]

Options:
  -r, --root DIR      directory to serve (default: .)
  -H, --host HOST     address to bind (default: 127.0.0.1; 0.0.0.0 for all)
  -p, --port PORT     port to listen on (default: ${DEFAULT_PORT}; 0 picks a free one)
  -h, --help          show this help
  -V, --version       show the version

Examples:
  ferryd --root ./artifacts
  ferryd --root /srv/ferry --host 0.0.0.0 --port 9500`;

/** Parsed ferryd arguments. */
export interface ServerArgs {
  root: string;
  host: string;
  port: number;
  help: boolean;
  version: boolean;
}

/**
 * Parse ferryd's arguments.
 *
 * @example
 * ```ts
 * import { parseServerArgs } from "./server_cli.ts";
 * console.assert(parseServerArgs(["--port", "0"]).port === 0);
 * ```
 */
export function parseServerArgs(argv: string[]): ServerArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        root: { type: "string", short: "r", default: "." },
        host: { type: "string", short: "H", default: "127.0.0.1" },
        port: { type: "string", short: "p", default: String(DEFAULT_PORT) },
        help: { type: "boolean", short: "h", default: false },
        version: { type: "boolean", short: "V", default: false },
      },
    }));
  } catch (err) {
    throw new FerryError("USAGE", (err as Error).message);
  }
  const port = Number(values.port);
  if (!/^\d{1,5}$/.test(values.port) || port > 65535) {
    throw new FerryError("USAGE", `bad port: ${values.port}`);
  }
  return {
    root: values.root,
    host: values.host,
    port,
    help: values.help,
    version: values.version,
  };
}

/** Run ferryd until SIGINT or SIGTERM; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  let args: ServerArgs;
  try {
    args = parseServerArgs(argv);
  } catch (err) {
    console.error(`ferryd: ${(err as Error).message}`);
    return exitCodeFor(err);
  }
  if (args.help) {
    console.log(HELP);
    return 0;
  }
  if (args.version) {
    console.log(`ferryd ${VERSION}`);
    return 0;
  }
  let server;
  try {
    server = await serve({ root: args.root, hostname: args.host, port: args.port });
  } catch (err) {
    const e = toFerryError(err);
    console.error(`ferryd: ${e.message}`);
    return exitCodeFor(e);
  }
  const stop = (signal: Deno.Signal) => {
    console.error(`ferryd: ${signal}, shutting down`);
    server.close();
  };
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  const handlers = signals.map((s) => [s, () => stop(s)] as const);
  // Listen for signals before announcing the address: whoever reads it may signal at once.
  for (const [s, fn] of handlers) Deno.addSignalListener(s, fn);
  const { hostname, port } = server.addr;
  const shown = hostname.includes(":") ? `[${hostname}]` : hostname;
  console.log(`ferryd listening on ${shown}:${port}, serving ${escapeName(server.root ?? "")}`);
  await server.finished;
  for (const [s, fn] of handlers) Deno.removeSignalListener(s, fn);
  return 0;
}
