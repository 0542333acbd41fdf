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
  unlogged += `${new Date().toISOString()} ${line}\n`;
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
