/**
 * The `ferryd` command line.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { flagMessage, joinValues } from "../util/parse_options.ts";
import { openStore, type S3Flags } from "../storage/open_store.ts";
import { exitCodeFor, FerryError, toFerryError } from "../util/errors.ts";
import { readConfigFile } from "../util/config_file.ts";
import { escapeName } from "../util/display.ts";
import { checkToken, parseTokens, type TokenGrant } from "./auth.ts";
import { DEFAULT_PORT, serve } from "./serve.ts";
import { PROTOCOL_VERSION } from "../commands.ts";
import { onStopSignal } from "../util/signals.ts";
import { VERSION } from "../util/version.ts";
import { ownWorkingDirectory } from "../fs/directory.ts";
import { readFilesInline } from "../fs/local_files.ts";
import { parseBytes, parseCount, parseSeconds } from "../util/option_values.ts";
import {
  type Algorithm,
  ALGORITHMS,
  loadAlgorithm,
  parseAlgorithms,
  xxh128Implementation,
} from "../checksum/checksum.ts";

/** An accepted checksum, and how XXH3-128 is computed here (it matters tenfold for speed). */
function describeAlgorithm(algorithm: Algorithm): string {
  return algorithm === "xxh128" ? `xxh128 (${xxh128Implementation()})` : algorithm;
}

const HELP = `ferryd ${VERSION}: serve one directory tree to ferry clients

Usage:
  ferryd [OPTIONS]

Options:
  -r, --root DIR                directory to serve (default: .)
      --store s3://BUCKET[/PREFIX]
                                serve a bucket instead (credentials from AWS_ACCESS_KEY_ID,
                                AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN; see docs/scale-out.md)
      --s3-endpoint URL         S3 endpoint (env AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL; default AWS)
      --s3-region REGION        region to sign for (env AWS_REGION, AWS_DEFAULT_REGION; us-east-1)
      --s3-path-style           bucket in the URL's path, not its host name (the default with
                                --s3-endpoint)
  -H, --host HOST               address to bind (default: 127.0.0.1; 0.0.0.0 for all: needs
                                tokens or --allow-anonymous)
  -p, --port PORT               port to listen on (default: ${DEFAULT_PORT}; 0 picks a free one)

Access:
      --token TOKEN             accept this token, with full rights (env FERRY_TOKEN)
      --tokens FILE             accept the tokens in FILE, one "TOKEN read|write|admin" a line
      --allow-anonymous         serve a non-loopback address without tokens (anyone has full rights)
      --read-only               refuse every change, whatever the token
      --tls-cert FILE           serve TLS only, with this certificate chain (PEM)
      --tls-key FILE            ... and this private key (PEM)

Limits and lifecycle:
      --idle-timeout SECONDS    close a connection that makes no progress (default: 300; 0: never)
      --max-connections N       connections served at once; more are told "busy" (default: 1000)
      --max-per-client N        connections from one address at once (default: 64)
      --max-file-size BYTES     refuse uploads larger than this (e.g. 2G; default: no limit)
      --quota BYTES             most bytes the root may hold (e.g. 50G; default: no limit)
      --shutdown-grace SECONDS  on SIGTERM/SIGINT, let requests in flight finish (default: 30);
                                a second signal stops at once
      --fsync                   flush every upload to disk before confirming it (survives power loss)
      --partial-ttl SECONDS     remove interrupted uploads kept for resuming, and other leftovers,
                                once untouched this long (default: 86400; 0: never)

Transfers:
      --checksum LIST           checksums accepted, preferred first (default: xxh128,sha256;
                                env FERRY_CHECKSUM); a client gets the first of these it offers
      --no-compress             refuse compression (clients asking for --compress get plain data)
      --no-http                 answer only the ferry protocol (no HTTP for curl and browsers)
  -h, --help                    show this help
  -V, --version                 show the version

Examples:
  ferryd --root ./artifacts
  ferryd --root /srv/ferry --host 0.0.0.0 --tokens /etc/ferry/tokens \\
         --tls-cert /etc/ferry/cert.pem --tls-key /etc/ferry/key.pem`;

/** Parsed ferryd arguments. */
export interface ServerArgs {
  root: string;
  /** A bucket to serve instead of the root (`--store s3://...`) and how to reach it. */
  store?: S3Flags;
  host: string;
  port: number;
  idleTimeoutMs: number;
  maxConnections: number;
  shutdownGraceMs: number;
  fsync: boolean;
  partialTtlMs: number;
  /** A token with full rights (--token or FERRY_TOKEN). */
  token?: string;
  /** A tokens file (--tokens). */
  tokensFile?: string;
  allowAnonymous: boolean;
  readOnly: boolean;
  tlsCert?: string;
  tlsKey?: string;
  maxPerClient: number;
  maxFileSize?: number;
  quota?: number;
  /** Checksums accepted, preferred first. */
  checksums: Algorithm[];
  noCompress: boolean;
  /** Answer only the ferry protocol, not HTTP. */
  noHttp: boolean;
  help: boolean;
  version: boolean;
}

/** ferryd's options, as `parseArgs` takes them. */
const SERVER_OPTIONS = {
  root: { type: "string", short: "r" },
  store: { type: "string" },
  "s3-endpoint": { type: "string" },
  "s3-region": { type: "string" },
  "s3-path-style": { type: "boolean" },
  host: { type: "string", short: "H", default: "127.0.0.1" },
  port: { type: "string", short: "p", default: String(DEFAULT_PORT) },
  "idle-timeout": { type: "string", default: "300" },
  "max-connections": { type: "string", default: "1000" },
  "shutdown-grace": { type: "string", default: "30" },
  fsync: { type: "boolean", default: false },
  "partial-ttl": { type: "string", default: "86400" },
  token: { type: "string" },
  tokens: { type: "string" },
  "allow-anonymous": { type: "boolean", default: false },
  "read-only": { type: "boolean", default: false },
  "tls-cert": { type: "string" },
  "tls-key": { type: "string" },
  "max-per-client": { type: "string", default: "64" },
  "max-file-size": { type: "string" },
  quota: { type: "string" },
  checksum: { type: "string" },
  "no-compress": { type: "boolean", default: false },
  "no-http": { type: "boolean", default: false },
  help: { type: "boolean", short: "h", default: false },
  version: { type: "boolean", short: "V", default: false },
} as const;

/** The options that take a value, by each name they can be given as. */
const TAKES_VALUE = new Set(
  Object.entries(SERVER_OPTIONS).filter(([, o]) => o.type === "string").flatMap((
    [name, o],
  ) => ["--" + name, ...("short" in o ? ["-" + o.short] : [])]),
);

/**
 * Parse ferryd's arguments.
 *
 * @example
 * ```ts
 * import { parseServerArgs } from "./cli.ts";
 * console.assert(parseServerArgs(["--port", "0"]).port === 0);
 * ```
 */
export function parseServerArgs(
  argv: string[],
  env: Record<string, string | undefined> = {},
): ServerArgs {
  let values;
  try {
    ({ values } = parseArgs({
      args: joinValues(argv, TAKES_VALUE),
      strict: true,
      allowPositionals: false,
      options: SERVER_OPTIONS,
    }));
  } catch (err) {
    throw new FerryError("USAGE", flagMessage((err as Error).message, Object.keys(SERVER_OPTIONS)));
  }
  const port = Number(values.port);
  if (!/^\d{1,5}$/.test(values.port) || port > 65535) {
    throw new FerryError(
      "USAGE",
      `--port takes a port number (0-65535), not ${JSON.stringify(values.port)}`,
    );
  }
  const token = values.token ?? env.FERRY_TOKEN;
  if (token !== undefined) checkToken(token);
  if ((values["tls-cert"] === undefined) !== (values["tls-key"] === undefined)) {
    throw new FerryError("USAGE", "TLS needs both --tls-cert and --tls-key");
  }
  if (values.root === "") {
    throw new FerryError("USAGE", "--root needs a directory, not an empty name");
  }
  if (values.store !== undefined && values.root !== undefined) {
    throw new FerryError("USAGE", "--root and --store name two places to serve: give one");
  }
  const s3Only = ["s3-endpoint", "s3-region", "s3-path-style"] as const;
  const stray = s3Only.find((flag) => values[flag] !== undefined);
  if (values.store === undefined && stray) {
    throw new FerryError("USAGE", `--${stray} goes with --store s3://BUCKET`);
  }
  const bytes = (flag: "max-file-size" | "quota") => {
    const text = values[flag];
    return text === undefined ? undefined : parseBytes(`--${flag}`, text);
  };
  return {
    root: values.root ?? ".",
    store: values.store === undefined ? undefined : {
      store: values.store,
      endpoint: values["s3-endpoint"],
      region: values["s3-region"],
      pathStyle: values["s3-path-style"],
    },
    host: values.host,
    port,
    idleTimeoutMs: parseSeconds("--idle-timeout", values["idle-timeout"]) * 1000,
    maxConnections: parseCount("--max-connections", values["max-connections"], { min: 1 }),
    shutdownGraceMs: parseSeconds("--shutdown-grace", values["shutdown-grace"]) * 1000,
    fsync: values.fsync,
    partialTtlMs: parseSeconds("--partial-ttl", values["partial-ttl"]) * 1000,
    token,
    tokensFile: values.tokens,
    allowAnonymous: values["allow-anonymous"],
    readOnly: values["read-only"],
    tlsCert: values["tls-cert"],
    tlsKey: values["tls-key"],
    maxPerClient: parseCount("--max-per-client", values["max-per-client"], { min: 1 }),
    maxFileSize: bytes("max-file-size"),
    quota: bytes("quota"),
    checksums: parseAlgorithms(values.checksum ?? env.FERRY_CHECKSUM ?? ALGORITHMS.join(",")),
    noCompress: values["no-compress"],
    noHttp: values["no-http"],
    help: values.help,
    version: values.version,
  };
}

/** Make `root` (and its parents) when nothing is there; true when it did. */
function createRoot(root: string): boolean {
  try {
    Deno.lstatSync(root);
    return false;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) return false;
  }
  try {
    Deno.mkdirSync(root, { recursive: true });
  } catch (err) {
    throw toFerryError(err, `cannot create the root ${escapeName(root)}`);
  }
  return true;
}

/** Run ferryd until SIGINT or SIGTERM; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  let args: ServerArgs;
  try {
    args = parseServerArgs(argv, Deno.env.toObject());
  } catch (err) {
    console.error(`ferryd: ${(err as Error).message}`);
    return exitCodeFor(err);
  }
  if (args.help) {
    console.log(HELP);
    return 0;
  }
  if (args.version) {
    console.log(
      `ferryd ${VERSION} (protocol ${PROTOCOL_VERSION}, xxh128 ${await loadAlgorithm("xxh128")})`,
    );
    return 0;
  }
  let server;
  try {
    const tokens: TokenGrant[] = [];
    if (args.token !== undefined) tokens.push({ token: args.token, scope: "admin" });
    if (args.tokensFile !== undefined) {
      tokens.push(
        ...parseTokens(await readConfigFile(args.tokensFile, "tokens file"), args.tokensFile),
      );
    }
    const tls = args.tlsCert === undefined ? undefined : {
      cert: await readConfigFile(args.tlsCert, "TLS certificate"),
      key: await readConfigFile(args.tlsKey!, "TLS key"),
    };
    // A bucket is reached, listed and checked before anything listens.
    const storage = args.store ? await openStore(args.store, Deno.env.toObject()) : undefined;
    // A root that is not there yet is made, as the quick start expects (`--root ./artifacts`
    // on a fresh machine), and said so; a root that is something else is still refused.
    if (!storage && createRoot(args.root)) {
      console.error(`ferryd: created the root ${escapeName(args.root)}`);
    }
    // From here on only ferryd's held directories use the working directory: the root is
    // resolved by serve() itself, and the files named on the command line were read above.
    ownWorkingDirectory();
    readFilesInline();
    server = await serve({
      root: args.root,
      storage,
      hostname: args.host,
      port: args.port,
      idleTimeoutMs: args.idleTimeoutMs,
      maxConnections: args.maxConnections,
      fsync: args.fsync,
      partialTtlMs: args.partialTtlMs,
      tokens: tokens.length > 0 ? tokens : undefined,
      allowAnonymous: args.allowAnonymous,
      readOnly: args.readOnly,
      tls,
      maxConnectionsPerClient: args.maxPerClient,
      maxFileSize: args.maxFileSize,
      quota: args.quota,
      checksums: args.checksums,
      noCompress: args.noCompress,
      http: !args.noHttp,
    });
  } catch (err) {
    const e = toFerryError(err);
    const host = args.host.includes(":") ? `[${args.host}]` : args.host;
    const message = err instanceof Deno.errors.AddrInUse
      ? `cannot listen on ${host}:${args.port}: the address is in use (another ferryd? ` +
        "--port 0 picks a free port)"
      : err instanceof Deno.errors.AddrNotAvailable
      ? `cannot listen on ${host}:${args.port}: no interface of this machine has that address ` +
        "(--host 0.0.0.0 listens on all of them)"
      : /lookup address/i.test(e.message)
      ? `cannot listen on ${host}:${args.port}: no such host name`
      : e.message;
    console.error(`ferryd: ${message}`);
    return exitCodeFor(e);
  }
  let signalled = false;
  const stop = (signal: Deno.Signal) => {
    if (signalled) {
      console.error(`ferryd: ${signal} again, stopping now`);
      server.close().catch(() => {});
      return;
    }
    signalled = true;
    const busy = server.busy;
    const grace = args.shutdownGraceMs / 1000;
    console.error(
      busy > 0
        ? `ferryd: ${signal}, shutting down: waiting up to ${grace} s for ${busy} request(s) in flight`
        : `ferryd: ${signal}, shutting down`,
    );
    server.close({ graceMs: args.shutdownGraceMs }).catch(() => {});
  };
  // Listen for signals before announcing the address: whoever reads it may signal at once.
  const unlisten = onStopSignal(stop);
  const { hostname, port } = server.addr;
  const shown = hostname.includes(":") ? `[${hostname}]` : hostname;
  const tls = server.fingerprint ? ` (TLS, certificate sha256 ${server.fingerprint})` : "";
  console.log(
    `ferryd listening on ${shown}:${port}${tls}, serving ${escapeName(server.location)}`,
  );
  console.error(`ferryd: checksums ${args.checksums.map(describeAlgorithm).join(", ")}`);
  await server.finished;
  unlisten();
  return 0;
}
