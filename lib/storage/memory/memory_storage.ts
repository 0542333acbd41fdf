// Every method is async to fit the Storage interface; memory answers at once.
// deno-lint-ignore-file require-await

/**
 * {@linkcode Storage} in memory: a tree of directories and files that lives
 * as long as the process. It keeps the storage contract as the local disk
 * does (atomic commits, kept partials, the same errors), so that tests, and
 * programs that want a scratch server, need no disk; and it shows, in a
 * page, what a backend has to do.
 *
 * @module
 */

import type { Entry, ListOptions } from "../../commands.ts";
import { nameOf, notFound, parentOf } from "../paths.ts";
import { escapeName } from "../../util/display.ts";
import { FerryError } from "../../util/errors.ts";
import type { Usage } from "../storage.ts";
import type { ReadHandle, Storage, Upload, UploadOptions } from "../storage.ts";
import { bytesHandle } from "../bytes_handle.ts";

interface FileNode {
  kind: "file";
  data: Uint8Array;
  mtime: number;
  mode: number;
  /** Changes with every commit: what the server's checksum cache is keyed by. */
  version: number;
}

interface DirNode {
  kind: "dir";
  mtime: number;
  mode: number;
}

type Node = FileNode | DirNode;

/** A partial upload kept for resuming: its bytes, and whether an upload is writing it now. */
interface Partial {
  chunks: Uint8Array[];
  bytes: number;
  writer: object | undefined;
}

function join(chunks: Uint8Array[], bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

/**
 * Files in memory, behind the storage interface.
 *
 * @example
 * ```ts
 * import { MemoryStorage } from "./memory_storage.ts";
 * const storage = new MemoryStorage();
 * const upload = await storage.createUpload("a/b.txt", { size: 2 });
 * await upload.write(new TextEncoder().encode("hi"));
 * await upload.commit();
 * console.assert((await storage.stat("a/b.txt")).size === 2);
 * ```
 */
export class MemoryStorage implements Storage {
  readonly location = "memory";
  readonly #nodes = new Map<string, Node>([["", { kind: "dir", mtime: Date.now(), mode: 0o755 }]]);
  /** Kept partial uploads, by the name they are counted under (beside their file, hidden). */
  readonly #partials = new Map<string, Partial>();
  #versions = 0;

  async *list(path: string, options: ListOptions = {}): AsyncIterable<Entry> {
    const node = this.#node(path);
    if (node.kind === "file") {
      yield this.#entry(nameOf(path), node);
      return;
    }
    const prefix = path === "" ? "" : `${path}/`;
    const below = [...this.#nodes.keys()]
      .filter((p) => p.startsWith(prefix) && p !== path)
      .filter((p) => options.recursive || !p.slice(prefix.length).includes("/"))
      .sort();
    // Sorted paths list a directory before what is in it.
    for (const p of below) yield this.#entry(p.slice(prefix.length), this.#nodes.get(p)!);
  }

  async stat(path: string): Promise<Entry> {
    return this.#entry(path === "" ? "." : nameOf(path), this.#node(path));
  }

  async openRead(path: string): Promise<ReadHandle> {
    const node = this.#node(path);
    if (node.kind !== "file") throw new FerryError("NOT_A_FILE", `not a file: ${escapeName(path)}`);
    // The content as it is now: a commit meanwhile replaces the node, never these bytes.
    return bytesHandle(node.data, {
      mtime: node.mtime,
      mode: node.mode,
      version: `${node.version}`,
    });
  }

  async createUpload(path: string, options: UploadOptions): Promise<Upload> {
    if (path === "") throw new FerryError("NOT_A_FILE", "cannot write to the root directory");
    const existing = this.#nodes.get(path);
    if (existing?.kind === "dir") {
      throw new FerryError("NOT_A_FILE", `is a directory: ${escapeName(path)}`);
    }
    if (existing && options.noClobber) {
      throw new FerryError("EXISTS", `already exists: ${escapeName(path)}`);
    }
    await this.mkdir(parentOf(path), { parents: true });
    const { size } = options;
    const key = options.resume && size !== undefined
      ? this.#partialKey(path, size, options.mtime)
      : undefined;
    const offset = key !== undefined ? options.offset ?? 0 : 0;
    const me = {};
    let chunks: Uint8Array[] = [];
    let bytes = 0;
    let held: Partial | undefined;
    if (key !== undefined) {
      const kept = this.#partials.get(key);
      const have = kept?.bytes ?? 0;
      if (offset > have) {
        throw new FerryError(
          "RESUME_MISMATCH",
          `cannot resume ${escapeName(nameOf(path))} at byte ${offset}: only ${have} are here`,
        );
      }
      // Continuing takes a partial over from a writer gone quiet; starting afresh while
      // another writes it leaves it be, and writes privately.
      if (!kept?.writer || offset > 0) {
        held = kept ?? { chunks: [], bytes: 0, writer: undefined };
        const prefix = join(held.chunks, held.bytes).slice(0, offset);
        held.chunks = [prefix];
        held.bytes = offset;
        held.writer = me;
        this.#partials.set(key, held);
        chunks = held.chunks;
        bytes = offset;
      }
    }
    let done = false;
    const mine = () => held === undefined || held.writer === me;
    const finish = () => {
      done = true;
      if (held?.writer === me) held.writer = undefined;
    };
    const cancelled = () => new FerryError("CANCELLED", `${escapeName(nameOf(path))} was closed`);
    return {
      offset,
      partial: held ? key : undefined,
      prefix: () => {
        const prefix = join(chunks, bytes);
        let at = 0;
        return {
          read: async (buf) => {
            if (at >= offset) return null;
            const n = Math.min(buf.length, offset - at);
            buf.set(prefix.subarray(at, at + n));
            at += n;
            return n;
          },
        };
      },
      write: (chunk) => {
        if (done || !mine()) throw cancelled();
        chunks.push(chunk.slice());
        bytes += chunk.length;
        if (held) held.bytes = bytes;
      },
      commit: async () => {
        if (done || !mine()) throw cancelled();
        finish();
        if (key !== undefined && held) this.#partials.delete(key);
        const there = this.#nodes.get(path);
        if (there && options.noClobber) {
          throw new FerryError("EXISTS", `already exists: ${escapeName(nameOf(path))}`);
        }
        if (there?.kind === "dir") {
          throw new FerryError("NOT_A_FILE", `is a directory: ${escapeName(path)}`);
        }
        const version = ++this.#versions;
        this.#nodes.set(path, {
          kind: "file",
          data: join(chunks, bytes),
          mtime: options.mtime ?? Date.now(),
          mode: (options.mode ?? 0o644) & 0o777,
          version,
        });
        return `${version}`;
      },
      abort: async () => {
        const owned = mine();
        finish();
        if (key !== undefined && held && owned) this.#partials.delete(key);
      },
      suspend: async () => {
        if (done || !mine()) {
          finish();
          return 0;
        }
        finish();
        if (!held || key === undefined) return 0;
        if (held.bytes === 0) this.#partials.delete(key);
        return held.bytes;
      },
    };
  }

  async partialSize(path: string, options: { size: number; mtime?: number }): Promise<number> {
    const kept = this.#partials.get(this.#partialKey(path, options.size, options.mtime));
    return kept && kept.bytes <= options.size ? kept.bytes : 0;
  }

  async usage(path: string): Promise<Usage> {
    const usage: Usage = { files: 0, partials: new Map() };
    const prefix = path === "" ? "" : `${path}/`;
    for (const [p, node] of this.#nodes) {
      if (node.kind === "file" && (p === path || p.startsWith(prefix))) {
        usage.files += node.data.length;
      }
    }
    for (const [key, kept] of this.#partials) {
      if (!kept.writer && (path === "" || key.startsWith(prefix))) {
        usage.partials.set(key, kept.bytes);
      }
    }
    return usage;
  }

  async mkdir(path: string, options: { parents?: boolean } = {}): Promise<void> {
    if (path === "") {
      if (options.parents) return;
      throw new FerryError("EXISTS", "already exists: the root directory");
    }
    const existing = this.#nodes.get(path);
    if (existing?.kind === "dir" && options.parents) return;
    if (existing) {
      throw existing.kind === "file" && options.parents
        ? new FerryError("NOT_A_DIRECTORY", `not a directory: ${escapeName(path)}`)
        : new FerryError("EXISTS", `already exists: ${escapeName(path)}`);
    }
    const parent = parentOf(path);
    const above = this.#nodes.get(parent);
    if (!above) {
      if (!options.parents) throw notFound(parent);
      await this.mkdir(parent, options);
    } else if (above.kind !== "dir") {
      throw new FerryError("NOT_A_DIRECTORY", `not a directory: ${escapeName(path)}`);
    }
    this.#nodes.set(path, { kind: "dir", mtime: Date.now(), mode: 0o755 });
  }

  async remove(path: string, options: { recursive?: boolean } = {}): Promise<void> {
    if (path === "") {
      throw new FerryError("PATH_REFUSED", "path refused: cannot remove the root directory");
    }
    const node = this.#node(path);
    const below = this.#below(path);
    if (node.kind === "dir" && below.length > 0 && !options.recursive) {
      throw new FerryError("EXISTS", `directory not empty: ${escapeName(path)} (use rm -r)`);
    }
    for (const p of [path, ...below]) this.#nodes.delete(p);
    for (const key of [...this.#partials.keys()]) {
      if (key.startsWith(`${path}/`)) this.#partials.delete(key);
    }
  }

  async move(from: string, to: string): Promise<string> {
    if (from === "" || to === "") {
      throw new FerryError("PATH_REFUSED", "path refused: cannot move the root directory");
    }
    const node = this.#node(from);
    const target = this.#nodes.get(to)?.kind === "dir" ? `${to}/${nameOf(from)}` : to;
    if (target === from) return target;
    if (target.startsWith(`${from}/`)) {
      throw new FerryError("PATH_REFUSED", `cannot move ${escapeName(from)} into itself`);
    }
    const parent = this.#nodes.get(parentOf(target));
    if (!parent) throw notFound(parentOf(target));
    if (parent.kind !== "dir") {
      throw new FerryError("NOT_A_DIRECTORY", `not a directory: ${escapeName(parentOf(target))}`);
    }
    const there = this.#nodes.get(target);
    if (node.kind === "dir" && there !== undefined && there.kind !== "dir") {
      throw new FerryError(
        "NOT_A_DIRECTORY",
        `cannot move ${escapeName(from)}: ${escapeName(target)} is not a directory`,
      );
    }
    if (there?.kind === "dir" && (node.kind !== "dir" || this.#below(target).length > 0)) {
      throw new FerryError(
        "EXISTS",
        `cannot move ${escapeName(from)}: ${escapeName(target)} is a directory`,
      );
    }
    // What was below moves along, its kept partials too: their names follow the file's.
    const moving = [from, ...this.#below(from)];
    const renamed = (p: string) => target + p.slice(from.length);
    const nodes = moving.map((p) => [renamed(p), this.#nodes.get(p)!] as const);
    for (const p of moving) this.#nodes.delete(p);
    for (const [p, n] of nodes) this.#nodes.set(p, n);
    for (const [key, kept] of [...this.#partials]) {
      if (!key.startsWith(`${from}/`)) continue;
      this.#partials.delete(key);
      this.#partials.set(renamed(key), kept);
    }
    return target;
  }

  /** Where a partial of this upload is kept: beside the file, named after its name, size, mtime. */
  #partialKey(path: string, size: number, mtime: number | undefined): string {
    const parent = parentOf(path);
    const name = `.ferry-${encodeURIComponent(nameOf(path))}-${size}-${mtime ?? ""}.partial`;
    return parent === "" ? name : `${parent}/${name}`;
  }

  #node(path: string): Node {
    const node = this.#nodes.get(path);
    if (!node) throw notFound(path);
    return node;
  }

  #below(path: string): string[] {
    return [...this.#nodes.keys()].filter((p) => p.startsWith(`${path}/`));
  }

  #entry(name: string, node: Node): Entry {
    return node.kind === "file"
      ? { name, type: "file", size: node.data.length, mtime: node.mtime, mode: node.mode }
      : { name, type: "dir", size: 0, mtime: node.mtime, mode: node.mode };
  }
}
