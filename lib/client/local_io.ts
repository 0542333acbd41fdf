/**
 * The client's local end of a transfer: where a download's bytes go (a
 * temporary file, a device written through, a caller's stream) and where an
 * upload's come from (a file, a FIFO or device, a caller's stream).
 *
 * @module
 */

import { PERMISSION_BITS } from "../fs/atomic_file.ts";
import { assertUnchanged, isStreamed, readerFor } from "../fs/local_files.ts";
import { escapeName } from "../util/display.ts";
import { connectionLost, FerryError, toFerryError } from "../util/errors.ts";

/** Where a download's bytes go; an `AtomicFile`, or a caller's stream. */
export interface Sink {
  write(chunk: Uint8Array): void | Promise<void>;
  commit(options: { mode?: number; mtime?: number; noClobber?: boolean }): Promise<void>;
  abort(): Promise<void>;
  suspend(): Promise<number | void>;
}

/**
 * A caller's stream as a download sink. Bytes reach it before the final
 * check, so on INTEGRITY the stream is aborted with that error: the caller
 * must discard what it got. Each chunk is copied, since the frame buffer is
 * reused; `ready` carries the stream's backpressure back to the socket.
 */
export function streamSink(stream: WritableStream<Uint8Array>): Sink {
  const writer = stream.getWriter();
  let failed: unknown;
  return {
    async write(chunk) {
      await writer.ready;
      writer.write(chunk.slice()).catch((err) => failed = err);
    },
    async commit() {
      if (failed) throw localError(failed, "writing the download stream");
      await writer.close();
    },
    abort() {
      // Not awaited: aborting waits for a write in flight, which a stalled consumer never ends.
      writer.abort(new FerryError("CANCELLED", "download failed")).catch(() => {});
      return Promise.resolve();
    },
    suspend() {
      return this.abort();
    },
  };
}

/**
 * A FIFO or a device as a download sink: opened as it is (a FIFO's open
 * waits for its reader, off the event loop), written through as bytes
 * arrive, never replaced, closed at the end. Bytes reach it before the
 * final check; a failure says how many did.
 */
export async function deviceSink(target: { path: string; shown: string }): Promise<Sink> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(target.path, { write: true, append: true });
  } catch (err) {
    throw localError(err, `cannot write local ${escapeName(target.shown)}`);
  }
  let closed = false;
  const close = () => {
    if (!closed) file.close();
    closed = true;
    return Promise.resolve();
  };
  return {
    async write(chunk) {
      try {
        for (let done = 0; done < chunk.length;) done += await file.write(chunk.subarray(done));
      } catch (err) {
        throw localError(err, `cannot write local ${escapeName(target.shown)}`);
      }
    },
    commit: close,
    abort: close,
    suspend: close,
  };
}

/**
 * A failure of local I/O as ferry reports it: a closed pipe or a reset on a
 * local file is the disk's or the reader's, never the server's connection,
 * so it is never retried as one.
 *
 * @example
 * ```ts
 * import { localError } from "./local_io.ts";
 * const err = localError(new Deno.errors.BrokenPipe("x"), "cannot write local -");
 * console.assert(err.code === "IO");
 * ```
 */
export function localError(err: unknown, context: string): FerryError {
  const e = toFerryError(err, context);
  if (!connectionLost(e)) return e;
  return new FerryError("IO", `${context}: broken pipe (its reader has gone)`, { cause: err });
}

/**
 * A download failed after its write-through destination (a pipe, a FIFO, a
 * device, a caller's stream) was opened: what went there cannot be taken
 * back, so it is not tried again.
 */
export class WroteThrough extends FerryError {
  /** `err`, saying how many bytes had already gone to `shown`. */
  constructor(err: FerryError, shown: string, bytes: number) {
    const where = bytes === 0 ? "" : ` (${bytes} bytes were already written to ${shown})`;
    super(err.code, `${err.message}${where}`, { cause: err });
    this.name = "WroteThrough";
  }
}

/** An upload's content, size (undefined: not known until its end) and metadata. */
export interface Source {
  size: number | undefined;
  mode?: number;
  mtime?: number;
  read(buf: Uint8Array): Promise<number | null>;
  /** Throw if the content changed while it was read (see `ByteSource.check`). */
  check?(): void;
  close(): void;
}

/**
 * Open the local file `path` to upload. A regular file is read as it is and
 * checked afterwards for changes made meanwhile. A FIFO or a device is
 * streamed to its end, its size unknown; opening one waits for a writer,
 * which happens off the event loop, so that signals still stop the wait.
 */
export function openFile(path: string): Source | Promise<Source> {
  let named: Deno.FileInfo;
  try {
    // Stat first (a FIFO's open blocks until a writer comes), following symlinks as cp does.
    named = Deno.statSync(path);
  } catch (err) {
    throw toFerryError(err, `local ${escapeName(path)}`);
  }
  if (named.isDirectory) {
    throw new FerryError("NOT_A_FILE", `local ${escapeName(path)} is a directory (use -r)`);
  }
  if (isStreamed(named)) {
    return Deno.open(path, { read: true }).then(
      (file) => describe(file, path),
      (err) => Promise.reject(toFerryError(err, `local ${escapeName(path)}`)),
    );
  }
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(path, { read: true });
  } catch (err) {
    throw toFerryError(err, `local ${escapeName(path)}`);
  }
  return describe(file, path);
}

/** The upload source for the open `file`, named `path` in messages. */
function describe(file: Deno.FsFile, path: string): Source {
  try {
    const info = file.statSync();
    const mode = info.mode === null ? undefined : info.mode & PERMISSION_BITS;
    if (isStreamed(info)) {
      return { size: undefined, mode, read: (buf) => file.read(buf), close: () => file.close() };
    }
    if (!info.isFile) throw new FerryError("NOT_A_FILE", `not a file: ${escapeName(path)}`);
    return {
      size: info.size,
      mode,
      mtime: info.mtime?.getTime(),
      read: readerFor(file, info.size),
      check: () => assertUnchanged(file, info, `local ${escapeName(path)}`),
      close: () => file.close(),
    };
  } catch (err) {
    file.close();
    throw toFerryError(err, `local ${escapeName(path)}`);
  }
}

/** A stream as an upload source: reads are filled from its chunks, whatever their sizes. */
export function openStream(
  stream: ReadableStream<Uint8Array>,
  options: { size?: number; mode?: number; mtime?: number; signal?: AbortSignal },
): Source {
  if (options.size !== undefined && (!Number.isSafeInteger(options.size) || options.size < 0)) {
    throw new FerryError("USAGE", "a stream's size (options.size) must be a byte count");
  }
  const reader = stream.getReader();
  const { signal } = options;
  // A stream that stalls must not outlast an abort: the read is raced against it.
  const aborted = signal && new Promise<never>((_, reject) => {
    const stop = () => {
      reader.cancel().catch(() => {});
      reject(cancelled("upload"));
    };
    if (signal.aborted) stop();
    else signal.addEventListener("abort", stop, { once: true });
  });
  aborted?.catch(() => {});
  let rest: Uint8Array = new Uint8Array(0);
  return {
    size: options.size,
    mode: options.mode,
    mtime: options.mtime,
    async read(buf) {
      let n = 0;
      while (n < buf.length) {
        if (rest.length === 0) {
          const { value, done } =
            await (aborted ? Promise.race([reader.read(), aborted]) : reader.read());
          if (done) break;
          rest = value;
        }
        const take = Math.min(rest.length, buf.length - n);
        buf.set(rest.subarray(0, take), n);
        rest = rest.subarray(take);
        n += take;
      }
      return n === 0 && buf.length > 0 ? null : n;
    },
    close: () => void reader.cancel().catch(() => {}),
  };
}

/** A CANCELLED error: `what` (a download, an upload) was stopped. */
export function cancelled(what: string): FerryError {
  return new FerryError("CANCELLED", `${what} cancelled`);
}
