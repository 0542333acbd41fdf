/**
 * A full garbage collection on request, where the runtime allows one
 * (`--expose-gc`, set at run time). V8 collects when new buffers pile up,
 * never when a burst of work ends; the places that move large amounts of
 * data through fresh buffers (node:tls, node:http) ask for one themselves.
 *
 * @module
 */

import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/**
 * Collect all garbage now; undefined where the runtime refuses to expose
 * the collector.
 *
 * @example
 * ```ts
 * import { collectGarbage } from "./gc.ts";
 * collectGarbage?.();
 * ```
 */
export const collectGarbage: (() => void) | undefined = (() => {
  try {
    setFlagsFromString("--expose-gc");
    return runInNewContext("gc") as () => void;
  } catch {
    return undefined;
  }
})();
