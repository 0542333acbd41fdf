/**
 * A full garbage collection on request, where the runtime allows one
 * (`--expose-gc`, set at run time). V8 collects when new buffers pile up,
 * never when a burst of work ends; the places that move large amounts of
 * data through fresh buffers (node:tls, node:http) ask for one themselves.
 *
 * @module
 */

import { nodeV8, nodeVm } from "./node_builtins.ts";

let gc: (() => void) | null | undefined;

/**
 * Collect all garbage now, where the runtime allows it (else nothing
 * happens). The collector is exposed at the first call, which loads Node's
 * layer (`node:v8`, `node:vm`): only the places that need it pay.
 *
 * @example
 * ```ts
 * import { collectGarbage } from "./gc.ts";
 * collectGarbage();
 * ```
 */
export function collectGarbage(): void {
  if (gc === undefined) {
    try {
      nodeV8().setFlagsFromString("--expose-gc");
      gc = nodeVm().runInNewContext("gc") as () => void;
    } catch {
      gc = null;
    }
  }
  gc?.();
}
