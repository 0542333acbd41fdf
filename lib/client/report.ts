/**
 * What the CLI tells the user as work completes: a progress line redrawn in
 * place on a terminal, nothing but results otherwise, or one JSON object per
 * line for machines (`--json`).
 *
 * @module
 */

import { elapsed } from "../util/elapsed.ts";
import type { Digest } from "../checksum/checksum.ts";
import { connectionLost, describeError, type FerryError } from "../util/errors.ts";
import { escapeName } from "../util/display.ts";

/** One completed (or skipped, or failed) operation on one path. */
export interface Outcome {
  op: string;
  path: string;
  /** Bytes moved. */
  bytes: number;
  /** Bytes not moved again because an interrupted transfer had moved them (resumed). */
  resumed?: number;
  /** The verified checksum of the file (or of the one found unchanged). */
  checksum?: Digest;
  seconds: number;
  /** Why nothing was done, e.g. `unchanged`, `exists`, `symlink`. */
  skipped?: string;
  /** Connections it took (more than 1 after a retry). */
  attempts?: number;
  error?: FerryError;
  /** What it would have done: nothing was changed (`--dry-run`). */
  dryRun?: boolean;
}

/** How a dry run says what it would do, by operation. */
const WOULD: Record<string, string> = { put: "put", get: "get", rm: "delete", mv: "move" };

/** How results are shown. */
export type OutputMode = "human" | "quiet" | "json";

/** Where the reporter writes; the CLI passes stdout/stderr, tests capture. */
export interface Sink {
  /** Write a line to stdout. */
  out(line: string): void;
  /** Write a line to stderr. */
  err(line: string): void;
  /** Write raw text to stderr (the progress line). */
  draw(text: string): void;
  /** Whether stderr is a terminal (progress is drawn only then). */
  tty: boolean;
}

/** Format a byte count for people: `1.5 MiB`. */
export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return "--:--";
  const s = Math.round(seconds);
  const m = Math.floor(s / 60);
  return `${m}:${String(s % 60).padStart(2, "0")}`;
}

/**
 * Collects outcomes, draws progress, and prints the summary.
 *
 * @example
 * ```ts
 * import { Reporter } from "./report.ts";
 * const lines: string[] = [];
 * const sink = { out: (t: string) => lines.push(t), err: () => {}, draw: () => {}, tty: false };
 * const r = new Reporter("json", sink);
 * r.result({ op: "put", path: "a.txt", bytes: 5, seconds: 0.1 });
 * console.assert(JSON.parse(lines[0]).path === "a.txt");
 * ```
 */
export class Reporter {
  readonly #mode: OutputMode;
  readonly #sink: Sink;
  readonly #started = performance.now();
  #files = 0;
  #bytes = 0;
  #resumed = 0;
  #skipped = 0;
  #failed = 0;
  #lastError: FerryError | undefined;
  #totalFiles = 0;
  #totalBytes = 0;
  #doneBytes = 0;
  #current: { path: string; size: number; bytes: number } | undefined;
  /** Transfers under way that keep what a cut leaves, with their bytes so far. */
  readonly #keeping = new Map<string, number>();
  #kept = 0;
  #lastDraw = 0;
  #drawn = false;
  #dryRun = false;
  /** Entries removed (or, in a dry run, that would be). */
  #deleted = 0;

  /** Report in `mode` to `sink`. */
  constructor(mode: OutputMode, sink: Sink) {
    this.#mode = mode;
    this.#sink = sink;
  }

  /** Failures so far. */
  get failed(): number {
    return this.#failed;
  }

  /** The most recent failure, if any. */
  get lastError(): FerryError | undefined {
    return this.#lastError;
  }

  /** Announce the work ahead, for the total in the progress line. */
  plan(files: number, bytes: number): void {
    this.#totalFiles += files;
    this.#totalBytes += bytes;
  }

  /**
   * Progress callbacks for one transfer of `path`; `keeps` says an
   * interruption would leave a partial behind to resume.
   */
  track(
    path: string,
    keeps = false,
  ): { onStart(size: number | undefined): void; onProgress(bytes: number): void } {
    return {
      onStart: (size) => {
        this.#current = { path, size: size ?? 0, bytes: 0 };
        if (keeps) this.#keeping.set(path, 0);
        this.#draw(true);
      },
      onProgress: (bytes) => {
        if (keeps) this.#keeping.set(path, bytes);
        if (this.#current?.path !== path) return;
        this.#current.bytes = bytes;
        this.#draw(false);
      },
    };
  }

  /** Uploads that failed with their connection and left bytes on the server to resume. */
  get kept(): number {
    return this.#kept;
  }

  /** Transfers under way that would keep a partial if stopped now, and the bytes each has. */
  get keeping(): { path: string; bytes: number }[] {
    return [...this.#keeping].map(([path, bytes]) => ({ path, bytes }));
  }

  /** Record one outcome, and print it as the mode says. */
  result(o: Outcome): void {
    // Cut off with bytes moved: those stay on the server for the next run.
    if (o.error && connectionLost(o.error) && (this.#keeping.get(o.path) ?? 0) > 0) this.#kept++;
    this.#keeping.delete(o.path);
    if (o.dryRun) this.#dryRun = true;
    if (o.error) {
      this.#failed++;
      this.#lastError = o.error;
    } else if (o.skipped) this.#skipped++;
    else if (o.op === "rm") this.#deleted++;
    else {
      this.#files++;
      this.#bytes += o.bytes;
      this.#resumed += o.resumed ?? 0;
    }
    this.#doneBytes += o.bytes + (o.resumed ?? 0);
    if (this.#current?.path === o.path) this.#current = undefined;
    this.#clear();
    if (this.#mode === "json") {
      this.#sink.out(JSON.stringify({
        op: o.op,
        path: o.path,
        bytes: o.bytes,
        resumed: o.resumed ?? 0,
        checksum: o.checksum ? { [o.checksum.algorithm]: o.checksum.hex } : null,
        ...(o.checksum?.algorithm === "sha256" && { sha256: o.checksum.hex }),
        seconds: Number(o.seconds.toFixed(3)),
        skipped: o.skipped ?? null,
        attempts: o.attempts ?? 1,
        ...(o.error
          ? {
            error: {
              code: o.error.code,
              message: o.error.message,
              ...(o.error.remote && { remote: true }),
            },
          }
          : {}),
        ...(o.dryRun && { dryRun: true }),
      }));
    } else if (this.#mode === "human" && !o.error) {
      if (o.skipped) {
        // A directory named without -r is skipped, as rsync does; the line says how to send it.
        const why = o.skipped === "directory" && o.op === "put"
          ? "directory; put -r sends it"
          : o.skipped;
        this.#sink.out(`skipped ${escapeName(o.path)} (${why})`);
      } else if (o.dryRun) {
        const size = o.op === "put" || o.op === "get" ? ` (${formatBytes(o.bytes)})` : "";
        this.#sink.out(`would ${WOULD[o.op] ?? o.op} ${escapeName(o.path)}${size}`);
      } else if (o.op === "rm") this.#sink.out(`deleted ${escapeName(o.path)}`);
    }
    if (o.error) this.#sink.err(`ferry: ${describeError(o.error)}`);
  }

  /** Print the closing summary (JSON always; human only on a terminal). */
  summary(op: string): void {
    this.#clear();
    const seconds = elapsed(this.#started);
    if (this.#mode === "json") {
      this.#sink.out(JSON.stringify({
        op: "summary",
        command: op,
        files: this.#files,
        bytes: this.#bytes,
        resumed: this.#resumed,
        skipped: this.#skipped,
        failed: this.#failed,
        ...(this.#deleted > 0 && { deleted: this.#deleted }),
        seconds: Number(seconds.toFixed(3)),
        ...(this.#dryRun && { dryRun: true }),
      }));
    } else if (this.#mode === "human" && this.#dryRun) {
      this.#sink.err(
        `${op}: dry run, nothing was changed: ${this.#files} file${this.#files === 1 ? "" : "s"}` +
          ` (${formatBytes(this.#bytes)}) would move` +
          (this.#skipped ? `, ${this.#skipped} skipped` : "") +
          (this.#deleted ? `, ${this.#deleted} would be deleted` : "") +
          (this.#failed ? `, ${this.#failed} failed` : ""),
      );
    } else if (this.#mode === "human" && this.#sink.tty) {
      const rate = seconds > 0 ? ` (${formatBytes(this.#bytes / seconds)}/s)` : "";
      const extra = [
        this.#skipped ? `${this.#skipped} skipped` : "",
        this.#deleted ? `${this.#deleted} deleted` : "",
        this.#failed ? `${this.#failed} failed` : "",
      ].filter(Boolean).join(", ");
      this.#sink.err(
        `${op}: ${this.#files} file${this.#files === 1 ? "" : "s"}, ${
          formatBytes(this.#bytes)
        } in ${seconds.toFixed(2)} s${rate}${extra ? `, ${extra}` : ""}`,
      );
    }
  }

  #draw(force: boolean): void {
    const file = this.#current;
    if (this.#mode !== "human" || !this.#sink.tty || !file) return;
    const now = performance.now();
    if (!force && now - this.#lastDraw < 100) return;
    this.#lastDraw = now;
    const seconds = (now - this.#started) / 1000;
    const done = this.#doneBytes + file.bytes;
    const rate = seconds > 0 ? done / seconds : 0;
    // A single get learns its size only from the reply: the file's own size counts then.
    const total = Math.max(this.#totalBytes, this.#doneBytes + file.size);
    const eta = rate > 0 ? (total - done) / rate : Infinity;
    const name = escapeName(file.path);
    const shown = name.length > 40 ? `…${name.slice(-39)}` : name;
    const own = `${formatBytes(file.bytes)} / ${formatBytes(file.size)}`;
    const overall = this.#totalFiles > 1
      ? `[${this.#files + this.#skipped + this.#failed + 1}/${this.#totalFiles}] ${shown}  ${own}` +
        `  total ${formatBytes(done)} / ${formatBytes(total)}`
      : `${shown}  ${own}`;
    this.#sink.draw(
      `\r\x1b[K${overall}  ${formatBytes(rate)}/s  ETA ${formatDuration(eta)}`,
    );
    this.#drawn = true;
  }

  #clear(): void {
    if (!this.#drawn) return;
    this.#sink.draw("\r\x1b[K");
    this.#drawn = false;
  }
}
