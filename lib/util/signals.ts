/**
 * The signals that ask a ferry process to stop: SIGINT everywhere, SIGTERM
 * where the platform has it (Windows does not, and listening for it throws).
 *
 * @module
 */

/**
 * Call `handler` on SIGINT or SIGTERM; returns a function that stops listening.
 *
 * @example
 * ```ts
 * import { onStopSignal } from "./signals.ts";
 * const stop = onStopSignal((signal) => console.error(`${signal}: stopping`));
 * stop();
 * ```
 */
export function onStopSignal(handler: (signal: Deno.Signal) => void): () => void {
  const signals: Deno.Signal[] = Deno.build.os === "windows" ? ["SIGINT"] : ["SIGINT", "SIGTERM"];
  const listeners = signals.map((signal) => [signal, () => handler(signal)] as const);
  for (const [signal, fn] of listeners) Deno.addSignalListener(signal, fn);
  return () => {
    for (const [signal, fn] of listeners) Deno.removeSignalListener(signal, fn);
  };
}
