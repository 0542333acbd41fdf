/**
 * Shaped links: a network namespace whose loopback passes at most a link's
 * rate (`tc qdisc ... tbf`; this kernel has no `netem`, so no added delay or
 * loss). The benchmark runs itself again inside it, every contender on that
 * namespace's 127.0.0.1, and removes the namespace afterwards.
 *
 * @module
 */

import { join } from "node:path";
import type { BenchOptions, Link } from "./options.ts";
import { insideArgs } from "./options.ts";
import { run, which } from "./system.ts";

/** Why a shaped link cannot be made here, or undefined when it can. */
export function cannotShape(): string | undefined {
  if (Deno.uid?.() !== 0) return "not root: network namespaces need it";
  if (!which("ip") || !which("tc")) return "`ip` or `tc` missing (apt-get install iproute2)";
  return undefined;
}

/**
 * Run the benchmark (`script`) inside a new namespace shaped to `link`,
 * and return what its run wrote to its results file (JSON).
 */
export async function measureInLink(
  script: string,
  options: BenchOptions,
  link: Link,
  work: string,
): Promise<unknown> {
  const ns = `ferry-bench-${Deno.pid}-${link.name}`;
  const ip = which("ip")!;
  const results = join(work, `results-${link.name}.json`);
  await run(ip, ["netns", "add", ns]);
  try {
    const inNs = (cmd: string, args: string[]) => run(ip, ["netns", "exec", ns, cmd, ...args]);
    await inNs(ip, ["link", "set", "lo", "up"]);
    // A burst of 256 KB holds loopback's 64 KiB packets; 50 ms of queue at most.
    await inNs(which("tc")!, [
      "qdisc",
      "add",
      "dev",
      "lo",
      "root",
      "tbf",
      "rate",
      link.name,
      "burst",
      "256kb",
      "latency",
      "50ms",
    ]);
    const child = new Deno.Command(ip, {
      args: [
        "netns",
        "exec",
        ns,
        Deno.execPath(),
        "run",
        "-A",
        script,
        ...insideArgs(options, link, results),
      ],
      stdout: "inherit",
      stderr: "inherit",
    });
    const status = await child.output();
    if (!status.success) throw new Error(`the run inside ${link.name} failed`);
    return JSON.parse(await Deno.readTextFile(results));
  } finally {
    await run(ip, ["netns", "delete", ns]).catch(() => {});
  }
}
