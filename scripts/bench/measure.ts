/**
 * Measuring helpers shared by the benchmark and the tests: wall time, peak
 * and current resident memory of a process (from /proc), medians.
 *
 * @module
 */

/** One mebibyte, in bytes. */
export const MIB = 1024 * 1024;

/** Wall time of one run, and the peak resident memory of the process that did it, when known. */
export interface Timing {
  /** Wall time in seconds. */
  seconds: number;
  /** Peak resident memory in bytes; absent or 0 when unknown. */
  peak?: number;
}

/** Peak resident memory (VmHWM) of a running process, in bytes; 0 once it has exited. */
export function peakRss(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const m = /VmHWM:\s+(\d+) kB/.exec(status);
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** Resident memory now (VmRSS) of a running process, in bytes; throws once it has exited. */
export function currentRss(pid: number): number {
  const status = Deno.readTextFileSync(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

/** The median of `xs` (the upper one of an even count); `xs` is left as it was. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Run `cmd` to completion and report its wall time and peak RSS (polled from
 * /proc every 20 ms); throws, with its stderr, when it fails.
 */
export async function timed(cmd: string, args: string[]): Promise<Required<Timing>> {
  const t0 = performance.now();
  const child = new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).spawn();
  let peak = 0;
  const poll = setInterval(() => peak = Math.max(peak, peakRss(child.pid)), 20);
  const out = await child.output();
  clearInterval(poll);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return { seconds: (performance.now() - t0) / 1000, peak };
}

/** Reset a process's peak RSS (VmHWM) to its current RSS, where the kernel allows it. */
export function resetPeak(pid: number): void {
  try {
    Deno.writeTextFileSync(`/proc/${pid}/clear_refs`, "5");
  } catch {
    // Not allowed here: the peak is then the process's lifetime peak, an upper bound.
  }
}
