/**
 * End-to-end tests that run twice: against ferryd serving a directory, and
 * against ferryd serving a bucket on the test radosgw. A test sets up and
 * looks at the server's files through {@linkcode ServerFiles}: plain file
 * calls on the directory, the S3 backend itself (the one the storage
 * contract checks) on the bucket. The client, the commands and what the
 * test asserts are the same both times.
 */

import { join } from "node:path";
import type { Storage } from "../lib/storage/storage.ts";
import { listTree, type ServerProcess, startServer } from "./helpers.ts";
import { freshStore, rgw, rgwMissing } from "./s3_rgw.ts";
import { s3Config } from "../lib/storage/s3/s3_config.ts";
import { S3Storage } from "../lib/storage/s3/s3_storage.ts";

/** Where a file gets its mode and mtime when a test gives none. */
const DEFAULTS = { mode: 0o644, mtime: Date.now() };

/** The served files, by path relative to what ferryd serves. */
export interface ServerFiles {
  /** Store `content` at `path`, making its directories. */
  write(path: string, content: string | Uint8Array, options?: { mode?: number }): Promise<void>;
  /** A file's bytes. */
  read(path: string): Promise<Uint8Array>;
  /** A file's text. */
  readText(path: string): Promise<string>;
  /** Make a directory and its parents. */
  mkdir(path: string): Promise<void>;
  /** Every entry below `path` (files and directories), by relative path, sorted. */
  tree(path?: string): Promise<string[]>;
  /** Every entry of the whole tree with its text, `<dir>` for a directory: what must not change. */
  snapshot(): Promise<Record<string, string>>;
}

/** A ferryd under test, with its files. */
export type TestServer = ServerProcess & { files: ServerFiles; backend: "disk" | "s3" };

/** The files of a directory on this machine, as {@linkcode ServerFiles} sees a root. */
export function diskFiles(root: string): ServerFiles {
  const at = (path: string) => join(root, path);
  return {
    async write(path, content, options) {
      await Deno.mkdir(join(at(path), ".."), { recursive: true });
      if (typeof content === "string") await Deno.writeTextFile(at(path), content);
      else await Deno.writeFile(at(path), content);
      if (options?.mode !== undefined) await Deno.chmod(at(path), options.mode);
    },
    read: (path) => Deno.readFile(at(path)),
    readText: (path) => Deno.readTextFile(at(path)),
    mkdir: (path) => Deno.mkdir(at(path), { recursive: true }),
    tree: (path = "") => listTree(at(path)),
    async snapshot() {
      const out: Record<string, string> = {};
      for (const name of await listTree(root)) {
        const info = await Deno.lstat(at(name));
        out[name] = info.isFile ? await Deno.readTextFile(at(name)) : "<dir>";
      }
      return out;
    },
  };
}

function storageFiles(storage: Storage): ServerFiles {
  const read = async (path: string) => {
    const handle = await storage.openRead(path);
    const out = new Uint8Array(handle.size);
    try {
      for (let at = 0; at < out.length;) {
        const n = await handle.read(out.subarray(at));
        if (n === null) break;
        at += n;
      }
    } finally {
      handle.close();
    }
    return out;
  };
  return {
    async write(path, content, options) {
      const bytes = typeof content === "string" ? new TextEncoder().encode(content) : content;
      await storage.writeWhole!(path, bytes, { ...DEFAULTS, ...options });
    },
    read,
    readText: async (path) => new TextDecoder().decode(await read(path)),
    async mkdir(path) {
      await storage.mkdir(path, { parents: true });
    },
    async tree(path = "") {
      const names: string[] = [];
      for await (const e of storage.list(path, { recursive: true })) names.push(e.name);
      return names.sort();
    },
    async snapshot() {
      const out: Record<string, string> = {};
      for await (const e of storage.list("", { recursive: true })) {
        out[e.name] = e.type === "file" ? new TextDecoder().decode(await read(e.name)) : "<dir>";
      }
      return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a < b ? -1 : 1));
    },
  };
}

/**
 * Register `fn` as two tests: with ferryd on a directory, and (named
 * `... [on a bucket]`) with ferryd on a fresh prefix of the test bucket,
 * skipped where radosgw cannot run. `args` go to ferryd both times.
 */
export function onBothStores(
  name: string,
  fn: (server: TestServer) => Promise<void>,
  args: string[] = [],
): void {
  Deno.test(name, async () => {
    await using server = await startServer({ args });
    await fn(Object.assign(server, { files: diskFiles(server.root), backend: "disk" as const }));
  });
  Deno.test({
    name: `${name} [on a bucket]`,
    ignore: rgwMissing !== undefined,
    async fn() {
      const r = await rgw();
      const store = await freshStore();
      await using server = await startServer({ args: ["--store", store, ...args], env: r.env });
      const storage = await S3Storage.open(s3Config({ store }, r.env));
      await fn(Object.assign(server, { files: storageFiles(storage), backend: "s3" as const }));
    },
  });
}
