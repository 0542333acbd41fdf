/**
 * ferryd's log: one timestamped line per event on stderr, written in
 * batches, since `console.error` cost about 10 µs a line and a tree of small
 * files is thousands of lines.
 *
 * @module
 */

/** Log lines not yet written: a burst of small transfers costs one write, not one per line. */
let unlogged = "";
let flushesAtExit = false;

function flushLog(): void {
  const text = unlogged;
  unlogged = "";
  let bytes = new TextEncoder().encode(text);
  try {
    while (bytes.length > 0) bytes = bytes.subarray(Deno.stderr.writeSync(bytes));
  } catch {
    // stderr is gone: there is nowhere left to say so.
  }
}

/** The ISO time of the last line, to the second, and that second (`Date.now()` / 1000). */
let second = NaN;
let secondText = "";

/**
 * The time now as `toISOString` gives it: only the milliseconds change from
 * one line to the next, and formatting a whole date per line cost more than
 * the rest of logging it.
 */
function timestamp(): string {
  const now = Date.now();
  const s = Math.floor(now / 1000);
  if (s !== second) {
    second = s;
    secondText = new Date(s * 1000).toISOString().slice(0, -4); // "YYYY-MM-DDTHH:MM:SS."
  }
  const ms = now - s * 1000;
  return `${secondText}${ms < 10 ? "00" : ms < 100 ? "0" : ""}${ms}Z`;
}

/**
 * Log `line` to stderr with a timestamp: written when the event loop next
 * turns, or at exit (an uncaught error's too), or once 64 KiB are waiting.
 *
 * @example
 * ```ts
 * import { stderrLog } from "./log.ts";
 * stderrLog("127.0.0.1:40000 connected (ferry/0.1.0)");
 * ```
 */
export function stderrLog(line: string): void {
  if (unlogged === "") {
    setTimeout(flushLog, 0);
    if (!flushesAtExit) {
      flushesAtExit = true;
      for (const type of ["unload", "error", "unhandledrejection"]) {
        globalThis.addEventListener(type, flushLog);
      }
    }
  }
  unlogged += `${timestamp()} ${line}\n`;
  if (unlogged.length > 65536) flushLog();
}

/**
 * A peer's address as the log shows it: `HOST:PORT`, `[IPv6]:PORT`.
 *
 * @example
 * ```ts
 * import { peerName } from "./log.ts";
 * console.assert(peerName({ transport: "tcp", hostname: "::1", port: 1 }) === "[::1]:1");
 * ```
 */
export function peerName(addr: Deno.Addr): string {
  if (addr.transport !== "tcp" && addr.transport !== "udp") return addr.transport;
  return addr.hostname.includes(":")
    ? `[${addr.hostname}]:${addr.port}`
    : `${addr.hostname}:${addr.port}`;
}
