/**
 * The process's standard streams as a transfer's local end: `put -` sends
 * standard input, `get ... -` writes standard output.
 *
 * @module
 */

import type { Stats } from "node:fs";
import { nodeFs } from "../../util/node_builtins.ts";
import { changedWhileSent } from "../../util/errors.ts";
import type { StdStreams } from "../batch.ts";
import { localError } from "../local_io.ts";

/** What of standard input, redirected from a file, must not change while it is sent. */
function stamp(info: Stats): string {
  return `${info.ino}:${info.size}:${info.mtimeMs}:${info.ctimeMs}`;
}

/**
 * Standard input, to its end, of a size nobody vouches for (a redirected
 * file may be read from an offset, or grow). Redirected from a file, it is
 * checked at its end like any file sent: changed meanwhile, the upload
 * fails (INTEGRITY) and nothing is kept.
 */
function input(): { stream: ReadableStream<Uint8Array>; size?: number } {
  let before: string | undefined;
  try {
    const info = nodeFs().fstatSync(0);
    if (info.isFile()) before = stamp(info);
  } catch {
    // Not knowable: nothing to compare at the end.
  }
  const reader = Deno.stdin.readable.getReader();
  const stream = new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { value, done } = await reader.read();
      if (!done) return controller.enqueue(value);
      if (before !== undefined && stamp(nodeFs().fstatSync(0)) !== before) {
        return controller.error(changedWhileSent("standard input"));
      }
      controller.close();
    },
    cancel: (reason) => reader.cancel(reason),
  });
  return { stream };
}

/** Standard output, written as it is and never closed: what else goes to it still can. */
function output(): WritableStream<Uint8Array> {
  return new WritableStream({
    async write(chunk) {
      try {
        for (let done = 0; done < chunk.length;) {
          done += await Deno.stdout.write(chunk.subarray(done));
        }
      } catch (err) {
        // A reader that went away (`| head`) is this end's business, not the server's.
        throw localError(err, "cannot write local - (standard output)");
      }
    },
  });
}

/**
 * The process's standard streams, for `put -` and `get ... -`.
 *
 * @example
 * ```ts ignore
 * import { STDIO } from "./std_streams.ts";
 * await STDIO.input().stream.pipeTo(STDIO.output());
 * ```
 */
export const STDIO: StdStreams = { input, output };
