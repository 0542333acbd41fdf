/**
 * ferry's global options: parsed from the command line and the
 * environment, and turned into what connecting needs.
 *
 * @module
 */

import { type Algorithm, parseAlgorithms } from "../../checksum/checksum.ts";
import { DEFAULT_ADDRESS } from "../address.ts";
import type { ConnectOptions } from "../client.ts";
import type { OutputMode } from "../report.ts";
import { readConfigFile } from "../../util/config_file.ts";
import { FerryError } from "../../util/errors.ts";
import { parseBytes, parseCount, parseSeconds } from "../../util/option_values.ts";
import { parsePin } from "../../wire/tls_trust.ts";
import { type Flag, OUTPUT_FLAGS, outputMode, parseFlags } from "./flags.ts";

/** Global options whose value is the next argument (unless given as `--opt=value`). */
const TAKES_VALUE = new Set([
  "-s",
  "--server",
  "--retries",
  "--timeout",
  "--max-size",
  "--token",
  "--token-file",
  "--ca",
  "--pin",
  "--checksum",
]);

/** Options only the command line (not the shell) accepts, before the command. */
export const GLOBAL_FLAGS: Record<string, Flag> = {
  ...OUTPUT_FLAGS,
  server: { type: "string", short: "s" },
  retries: { type: "string" },
  timeout: { type: "string" },
  "max-size": { type: "string" },
  token: { type: "string" },
  "token-file": { type: "string" },
  tls: { type: "boolean" },
  ca: { type: "string" },
  pin: { type: "string" },
  checksum: { type: "string" },
  compress: { type: "boolean", short: "z" },
  help: { type: "boolean", short: "h" },
  version: { type: "boolean", short: "V" },
};

/** Parsed command line. */
export interface ClientArgs {
  server: string;
  /** Retries after a lost connection (one-shot commands and each file of a batch). */
  retries: number;
  /** Connect and stall timeout, ms (0 = never). */
  timeoutMs: number;
  /** The most bytes a download may announce (--max-size, FERRY_MAX_SIZE). */
  maxSize?: number;
  /** Access token, given directly. */
  token?: string;
  /** File whose first line is the access token. */
  tokenFile?: string;
  /** Talk TLS (also implied by `ca` and `pin`). */
  tls: boolean;
  /** PEM file of the CA certificates to trust, instead of Deno's root store. */
  ca?: string;
  /** SHA-256 fingerprint of the one server certificate to trust. */
  pin?: string;
  /** Transfer checksums accepted (--checksum, FERRY_CHECKSUM); the server's order decides. Default all. */
  checksum?: Algorithm[];
  /** Ask for zstd-compressed data (--compress, -z, FERRY_COMPRESS). */
  compress: boolean;
  mode: OutputMode;
  help: boolean;
  version: boolean;
  /** The command and its arguments, unparsed. */
  command: string[];
}

/**
 * Parse the client's arguments: ferry's own options anywhere, before or
 * after the command and its arguments (as git, rsync and curl take them),
 * up to a `--`; the rest is the command. `env` supplies defaults
 * (`FERRY_SERVER`).
 *
 * @example
 * ```ts
 * import { parseClientArgs } from "./args.ts";
 * const args = parseClientArgs(["-s", "h:1", "ls", "-l"], {});
 * console.assert(args.server === "h:1" && args.command.join(" ") === "ls -l");
 * const late = parseClientArgs(["ls", "releases", "-s", "h:2", "-z"], {});
 * console.assert(late.server === "h:2" && late.compress && late.command.join(" ") === "ls releases");
 * ```
 */
export function parseClientArgs(
  argv: string[],
  env: Record<string, string | undefined>,
): ClientArgs {
  const { global, command } = splitArgs(argv);
  const { values } = parseFlags(global, GLOBAL_FLAGS);
  // What a message calls a setting: the flag if it was given, else the variable that was set.
  const named = (flag: string, name: string) =>
    values[flag] === undefined && env[name] !== undefined ? name : `--${flag}`;
  const option = (flag: string, name: string) =>
    nonEmpty(`--${flag}`, name, (values[flag] as string | undefined) ?? env[name]);
  // A flag wins over a variable, this pair too; two of one kind are one too many.
  const flagToken = nonEmpty("--token", "FERRY_TOKEN", values.token as string | undefined);
  const flagFile = nonEmpty("--token-file", "FERRY_TOKEN_FILE", values["token-file"] as string);
  if (flagToken !== undefined && flagFile !== undefined) {
    throw new FerryError("USAGE", "give the token once: --token or --token-file, not both");
  }
  const flagged = flagToken !== undefined || flagFile !== undefined;
  // Looked at only when no flag gave the token: a flag wins even over an empty variable.
  const envToken = flagged ? undefined : nonEmpty("--token", "FERRY_TOKEN", env.FERRY_TOKEN);
  const envFile = flagged
    ? undefined
    : nonEmpty("--token-file", "FERRY_TOKEN_FILE", env.FERRY_TOKEN_FILE);
  if (!flagged && envToken !== undefined && envFile !== undefined) {
    throw new FerryError(
      "USAGE",
      "give the token once: FERRY_TOKEN and FERRY_TOKEN_FILE are both set",
    );
  }
  const token = flagged ? flagToken : envToken;
  const tokenFile = flagged ? flagFile : envFile;
  const pin = option("pin", "FERRY_PIN");
  if (pin !== undefined) parsePin(pin);
  const maxSize = option("max-size", "FERRY_MAX_SIZE");
  const ca = option("ca", "FERRY_CA");
  const checksum = option("checksum", "FERRY_CHECKSUM");
  return {
    server: (values.server as string | undefined) ?? env.FERRY_SERVER ?? DEFAULT_ADDRESS,
    retries: parseCount(
      named("retries", "FERRY_RETRIES"),
      (values.retries as string) ?? env.FERRY_RETRIES ?? "3",
      { min: 0, max: 999 },
    ),
    timeoutMs: 1000 *
      parseSeconds(
        named("timeout", "FERRY_TIMEOUT"),
        (values.timeout as string) ?? env.FERRY_TIMEOUT ?? "120",
      ),
    maxSize: maxSize === undefined
      ? undefined
      : parseBytes(named("max-size", "FERRY_MAX_SIZE"), maxSize),
    token,
    tokenFile,
    tls: Boolean(values.tls) || /^(1|true|yes)$/i.test(env.FERRY_TLS ?? "") ||
      ca !== undefined || pin !== undefined,
    ca,
    pin,
    checksum: checksum === undefined ? undefined : parseAlgorithms(checksum),
    compress: Boolean(values.compress) || /^(1|true|yes)$/i.test(env.FERRY_COMPRESS ?? ""),
    mode: outputMode(values),
    help: Boolean(values.help),
    version: Boolean(values.version),
    command,
  };
}

/**
 * The options that also count after the command: ferry's own. Output
 * options and `--help` there belong to the command (`ferry put --help`).
 */
const LATE: ReadonlySet<string> = new Set(
  Object.entries(GLOBAL_FLAGS)
    .filter(([name]) => !["json", "quiet", "help", "version"].includes(name))
    .flatMap(([name, flag]) => [`--${name}`, ...(flag.short ? [`-${flag.short}`] : [])]),
);

/**
 * A cluster of short options after the command that holds some of ferry's
 * own (`-zr`, `-ls HOST`, `-s127.0.0.1:9500`), split in two: ferry's (a
 * value joined to its option, or last to take the next argument) and the
 * command's letters, as one cluster. Undefined when none is ferry's (`-lR`).
 * No command option shares a letter with ferry's own.
 */
function lateCluster(arg: string): { ours: string[]; theirs?: string } | undefined {
  if (arg.length <= 2 || arg[0] !== "-" || arg[1] === "-") return undefined;
  const ours: string[] = [];
  let theirs = "";
  for (let i = 1; i < arg.length; i++) {
    const short = `-${arg[i]}`;
    if (!LATE.has(short)) {
      theirs += arg[i];
      continue;
    }
    const rest = arg.slice(i + 1);
    if (TAKES_VALUE.has(short) && rest !== "") {
      ours.push(`${longName(short)}=${rest}`);
      break;
    }
    ours.push(short);
    if (TAKES_VALUE.has(short)) break;
  }
  if (ours.length === 0) return undefined;
  return { ours, theirs: theirs === "" ? undefined : `-${theirs}` };
}

/** `-s` as `--server`; a long option as it is. */
function longName(arg: string): string {
  if (arg.startsWith("--")) return arg;
  const found = Object.entries(GLOBAL_FLAGS).find(([, flag]) => `-${flag.short}` === arg);
  return found ? `--${found[0]}` : arg;
}

/**
 * Ferry's own options, wherever they are, and the command with its
 * arguments and options. Before the command every option is ferry's own; a
 * `--` ends the options (before the command it is dropped, after it it is
 * the command's, which takes what follows as arguments).
 */
function splitArgs(argv: string[]): { global: string[]; command: string[] } {
  const global: string[] = [];
  const command: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const started = command.length > 0;
    if (arg === "--") {
      command.push(...(started ? argv.slice(i) : argv.slice(i + 1)));
      break;
    }
    const name = arg.startsWith("--") ? arg.split("=")[0] : arg;
    const cluster = started ? lateCluster(arg) : undefined;
    const ours = started
      ? LATE.has(name) || cluster !== undefined
      : arg.startsWith("-") && arg !== "-";
    if (!ours) {
      command.push(arg);
      continue;
    }
    if (cluster) {
      // `-s127.0.0.1:9500`, `-zs HOST` or `-ls HOST` after the command: ferry's letters are its
      // own, as before the command; the others stay the command's.
      const { ours, theirs } = cluster;
      const last = ours.at(-1)!;
      if (TAKES_VALUE.has(last) && i + 1 < argv.length) {
        global.push(...ours.slice(0, -1), `${longName(last)}=${argv[++i]}`);
      } else global.push(...ours);
      if (theirs) command.push(theirs);
      continue;
    }
    if (TAKES_VALUE.has(arg) && i + 1 < argv.length) {
      // Joined, so that a value that starts with '-' (`--timeout -1`) reaches the option's own
      // check ("takes a number of seconds") instead of the parser's guess at a missing value.
      global.push(`${longName(arg)}=${argv[++i]}`);
    } else {
      global.push(arg);
    }
  }
  return { global, command };
}

/** A setting that, once given, must not be empty: an empty secret fails closed. */
function nonEmpty(flag: string, env: string, value: string | undefined): string | undefined {
  if (value !== undefined && value.trim() === "") {
    throw new FerryError("USAGE", `${flag} (or ${env}) is empty`);
  }
  return value;
}

/** A CA file's text: it must hold a certificate (a key alone would fail every handshake). */
async function readCaFile(path: string): Promise<string> {
  const text = await readConfigFile(path, "CA file");
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    throw new FerryError(
      "USAGE",
      `the CA file ${path} holds no certificate (no BEGIN CERTIFICATE block): ` +
        "give --ca the CA's certificate in PEM",
    );
  }
  return text;
}

/** What connecting needs, with the token and CA files read. */
export async function connectOptions(args: ClientArgs): Promise<ConnectOptions> {
  const token = args.tokenFile === undefined
    ? args.token
    : (await readConfigFile(args.tokenFile, "token file")).split(/\r?\n/)[0].trim();
  if (token === "") throw new FerryError("USAGE", `the token file ${args.tokenFile} is empty`);
  return {
    timeoutMs: args.timeoutMs,
    checksum: args.checksum,
    compress: args.compress,
    token,
    tls: args.tls && {
      caCerts: args.ca === undefined ? undefined : [await readCaFile(args.ca)],
      pin: args.pin,
    },
  };
}
