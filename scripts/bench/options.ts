/**
 * The benchmark's command line, and the links it can measure on.
 *
 * @module
 */

import { join } from "node:path";
import { parseArgs } from "node:util";
import { MIB } from "./measure.ts";

const ROOT = new URL("../..", import.meta.url).pathname;

/** Where the contenders talk: loopback as it is, or loopback shaped to a link's rate. */
export interface Link {
  /** `loopback`, `1gbit` or `100mbit`: also the rate `tc` is given. */
  name: string;
  /** The link's rate in MiB/s; undefined for plain loopback. */
  mibps?: number;
  /** The large file on this link, in bytes: about 4 s at its rate (`--size-mib` on loopback). */
  size?: number;
}

/** The links `--link` knows. */
export const LINKS: Record<string, Link> = {
  loopback: { name: "loopback" },
  "1gbit": { name: "1gbit", mibps: 1e9 / 8 / MIB, size: 512 * MIB },
  "100mbit": { name: "100mbit", mibps: 1e8 / 8 / MIB, size: 48 * MIB },
};

/** What to measure and where to write the report; sizes in bytes. */
export interface BenchOptions {
  /** The large file on loopback (`--size-mib`). */
  size: number;
  /** Files of 4 KiB in the tree (`--files`). */
  files: number;
  /** Files of text, JSON and JavaScript in the compressible tree (`--text-files`). */
  textFiles: number;
  /** Measured repetitions after the warm-up round (`--reps`). */
  reps: number;
  /** Concurrent clients (`--clients`). */
  clients: number;
  /** The much larger file of the memory check, 0 for none (`--big-mib`). */
  big: number;
  /** Files of 4 KiB in the S3 section's tree (`--s3-files`; 0 skips the section). */
  s3Files: number;
  /** The links to measure on, in order (`--link loopback,1gbit,100mbit`). */
  links: Link[];
  /** Where the report goes (`--out`). */
  out: string;
  /**
   * Internal: this run is the one inside a shaped link's namespace, and writes
   * its results as JSON to `results` (`--inside LINK --results FILE`).
   */
  inside?: { link: Link; results: string };
  /** Internal: where the run's files go, removed only at the very end (`--scratch DIR`). */
  scratch?: string;
}

/** Parse `args`; throws on an unknown option or link. */
export function parseOptions(args: string[]): BenchOptions {
  const { values } = parseArgs({
    args,
    options: {
      "size-mib": { type: "string", default: "1024" },
      files: { type: "string", default: "10000" },
      "text-files": { type: "string", default: "2000" },
      reps: { type: "string", default: "3" },
      clients: { type: "string", default: "100" },
      "big-mib": { type: "string", default: "4096" },
      "s3-files": { type: "string", default: "2000" },
      link: { type: "string", default: "loopback,1gbit,100mbit" },
      out: { type: "string", default: join(ROOT, "BENCHMARKS.md") },
      inside: { type: "string" },
      results: { type: "string" },
      scratch: { type: "string" },
    },
  });
  const link = (name: string) => {
    const found = LINKS[name.trim()];
    if (!found) throw new Error(`unknown link '${name}' (known: ${Object.keys(LINKS).join(", ")})`);
    return found;
  };
  return {
    size: Number(values["size-mib"]) * MIB,
    files: Number(values.files),
    textFiles: Number(values["text-files"]),
    reps: Number(values.reps),
    clients: Number(values.clients),
    big: Number(values["big-mib"]) * MIB,
    s3Files: Number(values["s3-files"]),
    links: values.link.split(",").filter((n) => n.trim() !== "").map(link),
    out: values.out,
    inside: values.inside === undefined
      ? undefined
      : { link: link(values.inside), results: values.results! },
    scratch: values.scratch,
  };
}

/** The arguments that make a run inside a namespace measure what this one was asked to. */
export function insideArgs(options: BenchOptions, link: Link, results: string): string[] {
  return [
    "--files",
    String(options.files),
    "--text-files",
    String(options.textFiles),
    "--reps",
    String(options.reps),
    "--inside",
    link.name,
    "--results",
    results,
    "--scratch",
    options.scratch!,
  ];
}
