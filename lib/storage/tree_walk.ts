/**
 * A tree walk for any storage: its own {@linkcode Storage.readTree} where it
 * has one, else a recursive listing whose small files are read with
 * `openRead`.
 *
 * @module
 */

import { escapeName } from "../util/display.ts";
import { changedWhileSent, FerryError } from "../util/errors.ts";
import type { Storage, TreeItem } from "./storage.ts";

/**
 * Walk the tree below the directory `path` of `storage` (see
 * {@linkcode Storage.readTree}).
 *
 * @example
 * ```ts
 * import { MemoryStorage } from "./memory/memory_storage.ts";
 * import { walkTree } from "./tree_walk.ts";
 * const storage = new MemoryStorage();
 * await storage.mkdir("d");
 * const items = await Array.fromAsync(walkTree(storage, "d", { inlineMax: 1024 }));
 * console.assert(items.length === 1 && items[0].kind === "dir");
 * ```
 */
export async function* walkTree(
  storage: Storage,
  path: string,
  options: { inlineMax: number },
): AsyncGenerator<TreeItem> {
  if (storage.readTree) {
    yield* storage.readTree(path, options);
    return;
  }
  const top = await storage.stat(path);
  if (top.type !== "dir") {
    throw new FerryError("NOT_A_DIRECTORY", `not a directory: ${escapeName(path)}`);
  }
  yield { kind: "dir", path: "", mode: top.mode, mtime: top.mtime };
  const reserved: string[] = [];
  const prefix = path === "" ? "" : `${path}/`;
  for await (
    const e of storage.list(path, {
      recursive: true,
      onReserved: (p) => reserved.push(p),
    })
  ) {
    for (const p of reserved.splice(0)) yield { kind: "skip", path: p, skipped: "reserved name" };
    const { name, mode, mtime, size } = e;
    if (e.type === "dir") yield { kind: "dir", path: name, mode, mtime };
    else if (e.type !== "file") yield { kind: "skip", path: name, skipped: e.type };
    else {
      const read = size > options.inlineMax
        ? undefined
        : (into: Uint8Array) => readWhole(storage, prefix + name, into);
      yield { kind: "file", path: name, size, mode, mtime, ...(read && { read }) };
    }
  }
  for (const p of reserved) yield { kind: "skip", path: p, skipped: "reserved name" };
}

async function readWhole(storage: Storage, path: string, into: Uint8Array): Promise<void> {
  const handle = await storage.openRead(path);
  try {
    const changed = () => changedWhileSent(escapeName(path));
    if (handle.size !== into.length) throw changed();
    let at = 0;
    while (at < into.length) {
      const n = await handle.read(into.subarray(at));
      if (n === null) throw changed();
      at += n;
    }
    handle.check?.();
  } finally {
    handle.close();
  }
}
