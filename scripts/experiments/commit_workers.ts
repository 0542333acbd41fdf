/**
 * An experiment, not part of ferry: do small files land faster when worker
 * threads make the file calls (docs/performance.md, "Commits on worker
 * threads")? Writes 10,000 files of 4 KiB in 100 new directories the way a
 * tree stream's receiver does (`writeWholeFile`: temporary file with
 * `O_EXCL`, write, mode, mtime, rename), first on the main thread, then
 * spread over WORKERS workers (the same module, started as a worker), and
 * prints microseconds a file for each, alternating, ROUNDS times.
 *
 *   deno run -A scripts/experiments/commit_workers.ts DIR [WORKERS] [ROUNDS]
 *
 * @module
 */

import { mkdirSync } from "node:fs";
import { writeWholeFile } from "../../lib/fs/whole_file.ts";

const DIRS = 100;
const FILES = 100;
const content = crypto.getRandomValues(new Uint8Array(4096));

/** Write the files of directories `dirs` below `base`. */
function writeDirs(base: string, dirs: number[]): void {
  for (const d of dirs) {
    const dir = `${base}/d${d}`;
    mkdirSync(dir, { recursive: true });
    const at = (name: string) => `${dir}/${name}`;
    for (let f = 0; f < FILES; f++) {
      writeWholeFile(at, `f${f}`, () => `.ferry-${f}.part`, content, { mode: 0o644, mtime: 1e12 });
    }
  }
}

/** Microseconds a file, on `workers` workers (0: the main thread). */
async function run(base: string, workers: number): Promise<number> {
  const all = Array.from({ length: DIRS }, (_, d) => d);
  const started = performance.now();
  if (workers === 0) writeDirs(base, all);
  else {
    const pool = Array.from(
      { length: workers },
      () => new Worker(import.meta.url, { type: "module", name: "commit" }),
    );
    await Promise.all(pool.map((worker, i) =>
      new Promise((resolve) => {
        worker.onmessage = resolve;
        worker.postMessage({ base, dirs: all.filter((d) => d % workers === i) });
      })
    ));
    for (const worker of pool) worker.terminate();
  }
  return (performance.now() - started) * 1000 / (DIRS * FILES);
}

/** This module's scope when it runs as a worker. */
const scope = self as unknown as {
  name?: string;
  onmessage: ((event: MessageEvent<{ base: string; dirs: number[] }>) => void) | null;
  postMessage(message: string): void;
};
if (scope.name === "commit") {
  scope.onmessage = (event) => {
    writeDirs(event.data.base, event.data.dirs);
    scope.postMessage("done");
  };
} else if (import.meta.main) {
  const [dir, workersText = "2", roundsText = "3"] = Deno.args;
  if (!dir) throw new Error("usage: commit_workers.ts DIR [WORKERS] [ROUNDS]");
  const workers = Number(workersText);
  for (let round = 0; round < Number(roundsText); round++) {
    const one = await run(`${dir}/main-${Date.now()}-${round}`, 0);
    const many = await run(`${dir}/workers-${Date.now()}-${round}`, workers);
    console.log(
      `round ${round + 1}: main thread ${one.toFixed(1)} µs a file, ${workers} workers ${
        many.toFixed(1)
      } µs a file`,
    );
  }
}
