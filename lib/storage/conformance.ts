/**
 * The storage contract as a test suite: what every backend must do, and
 * fail with, so that ferryd means the same on any of them. A backend's test
 * file is one call:
 *
 * ```ts ignore
 * import { storageConformance } from "../lib/storage/conformance.ts";
 * storageConformance("memory", () => Promise.resolve({ storage: new MemoryStorage() }));
 * ```
 *
 * It registers one `Deno.test` with a step per part of the contract.
 *
 * @module
 */

import assert from "node:assert/strict";
import type { Entry } from "../commands.ts";
import { FerryError } from "../util/errors.ts";
import type { Storage, TreeItem, Upload } from "./storage.ts";
import { walkTree } from "./tree_walk.ts";

/** A fresh, empty storage to test, and how to dispose of it afterwards. */
export interface StorageUnderTest {
  /** The storage, empty. */
  storage: Storage;
  /** Dispose of it once the part is done (remove its files, stop its server). */
  close?(): Promise<void>;
}

const text = new TextEncoder();

async function rejects(promise: Promise<unknown>, code: string, what: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof FerryError, `${what}: ${err}`);
    assert.equal(err.code, code, `${what}: ${err.message}`);
    return true;
  });
}

/** Store `content` at `path` in one upload. */
async function put(
  storage: Storage,
  path: string,
  content: string | Uint8Array,
  options: { mode?: number; mtime?: number } = {},
): Promise<void> {
  const bytes = typeof content === "string" ? text.encode(content) : content;
  const upload = await storage.createUpload(path, { size: bytes.length, ...options });
  await upload.write(bytes);
  await upload.commit();
}

async function read(storage: Storage, path: string): Promise<string> {
  const handle = await storage.openRead(path);
  try {
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(3); // small on purpose: reads in several calls
    for (let n; (n = await handle.read(buf)) !== null;) chunks.push(buf.slice(0, n));
    handle.check?.();
    return new TextDecoder().decode(new Uint8Array(chunks.flatMap((c) => [...c])));
  } finally {
    handle.close();
  }
}

async function names(storage: Storage, path: string, recursive = false): Promise<string[]> {
  const entries: Entry[] = await Array.fromAsync(storage.list(path, { recursive }));
  return entries.map((e) => e.name + (e.type === "dir" ? "/" : "")).sort();
}

async function readPrefix(
  from: Upload | { read(buf: Uint8Array): Promise<number | null> },
): Promise<string> {
  const source = "prefix" in from ? from.prefix() : from;
  const chunks: number[] = [];
  const buf = new Uint8Array(4);
  for (let n; (n = await source.read(buf)) !== null;) chunks.push(...buf.subarray(0, n));
  return new TextDecoder().decode(new Uint8Array(chunks));
}

/**
 * Register the conformance suite for the backend `name`; `open` makes a
 * fresh, empty storage for each part.
 */
export function storageConformance(name: string, open: () => Promise<StorageUnderTest>): void {
  Deno.test(`storage contract: ${name}`, async (t) => {
    const part = (what: string, fn: (storage: Storage) => Promise<void>) =>
      t.step(what, async () => {
        const under = await open();
        try {
          await fn(under.storage);
        } finally {
          await under.close?.();
        }
      });

    await part("a new storage is an empty directory that can be described", async (s) => {
      assert.equal(typeof s.location, "string");
      assert.deepEqual(await names(s, ""), []);
      const root = await s.stat("");
      assert.equal(root.type, "dir");
    });

    await part("an upload appears whole at its commit, with its mode and mtime", async (s) => {
      const mtime = Date.UTC(2024, 0, 2, 3, 4, 5);
      const upload = await s.createUpload("a/b/c.txt", { size: 5, mode: 0o640, mtime });
      await upload.write(text.encode("hel"));
      await rejects(s.stat("a/b/c.txt"), "NOT_FOUND", "invisible before its commit");
      await upload.write(text.encode("lo"));
      await upload.commit();
      const entry = await s.stat("a/b/c.txt");
      assert.deepEqual(
        [entry.name, entry.type, entry.size, entry.mode & 0o777, entry.mtime],
        ["c.txt", "file", 5, 0o640, mtime],
      );
      assert.equal(await read(s, "a/b/c.txt"), "hello");
      assert.deepEqual(await names(s, ""), ["a/"], "parents were made");
      assert.deepEqual(await names(s, "a", true), ["b/", "b/c.txt"]);
      const [one] = await Array.fromAsync(s.list("a/b/c.txt"));
      assert.equal(one.name, "c.txt", "a file lists as itself");
    });

    await part("a recursive listing names a directory before what is in it", async (s) => {
      await put(s, "x/y/z.txt", "z");
      await put(s, "x/w.txt", "w");
      const order = (await Array.fromAsync(s.list("", { recursive: true }))).map((e) => e.name);
      assert.ok(order.indexOf("x") < order.indexOf("x/y"), order.join());
      assert.ok(order.indexOf("x/y") < order.indexOf("x/y/z.txt"), order.join());
      assert.deepEqual([...order].sort(), ["x", "x/w.txt", "x/y", "x/y/z.txt"]);
    });

    await part("a commit replaces a file; with noClobber it refuses", async (s) => {
      await put(s, "f.txt", "one");
      await put(s, "f.txt", "two!");
      assert.equal(await read(s, "f.txt"), "two!");
      await rejects(
        s.createUpload("f.txt", { size: 1, noClobber: true }),
        "EXISTS",
        "noClobber over a file",
      );
      // One that appears meanwhile is not replaced either.
      const late = await s.createUpload("g.txt", { size: 1, noClobber: true });
      await late.write(text.encode("L"));
      await put(s, "g.txt", "first");
      await rejects(late.commit(), "EXISTS", "noClobber at the commit");
      assert.equal(await read(s, "g.txt"), "first");
    });

    await part("an aborted upload leaves nothing; a directory cannot be written", async (s) => {
      const upload = await s.createUpload("d/gone.txt", { size: 3 });
      await upload.write(text.encode("abc"));
      await upload.abort();
      await upload.abort();
      await rejects(s.stat("d/gone.txt"), "NOT_FOUND", "an aborted upload");
      assert.deepEqual(await names(s, "d"), []);
      await rejects(s.createUpload("d", { size: 1 }), "NOT_A_FILE", "an upload onto a directory");
      await rejects(s.createUpload("", { size: 1 }), "NOT_A_FILE", "an upload onto the root");
      assert.equal((await s.usage?.(""))?.files ?? 0, 0);
    });

    await part("a resumable upload keeps what it had, and a resume continues it", async (s) => {
      const mtime = 1_000_000;
      const first = await s.createUpload("r/big.bin", { size: 10, mtime, resume: true });
      assert.equal(first.offset, 0);
      await first.write(text.encode("012345"));
      assert.equal(await first.suspend(), 6);
      assert.equal(await s.partialSize("r/big.bin", { size: 10, mtime }), 6);
      assert.equal(await s.partialSize("r/big.bin", { size: 10, mtime: 5 }), 0, "another file");
      await rejects(s.stat("r/big.bin"), "NOT_FOUND", "a kept partial is not the file");
      assert.deepEqual(await names(s, "r"), [], "nor is it listed");
      if (s.usage && first.partial !== undefined) {
        assert.equal((await s.usage("")).partials.get(first.partial), 6, "counted while kept");
      }
      await rejects(
        s.createUpload("r/big.bin", { size: 10, mtime, resume: true, offset: 7 }),
        "RESUME_MISMATCH",
        "more than is kept",
      );
      if (s.readPartial) {
        // Read as it is, to be checked before a resume takes it over: it stays as it was.
        const kept = await s.readPartial("r/big.bin", { size: 10, mtime, bytes: 5 });
        assert.equal(await readPrefix(kept), "01234", "readPartial gives the first bytes asked");
        kept.close();
        assert.equal(await s.partialSize("r/big.bin", { size: 10, mtime }), 6, "still kept");
        await rejects(
          s.readPartial("r/big.bin", { size: 10, mtime, bytes: 7 }),
          "RESUME_MISMATCH",
          "readPartial past what is kept",
        );
      }
      const second = await s.createUpload("r/big.bin", {
        size: 10,
        mtime,
        resume: true,
        offset: 4,
      });
      assert.equal(second.offset, 4);
      assert.equal(await readPrefix(second), "0123", "its prefix is what was kept, cut at 4");
      await second.write(text.encode("abcdef"));
      await second.commit();
      assert.equal(await read(s, "r/big.bin"), "0123abcdef");
      assert.equal(await s.partialSize("r/big.bin", { size: 10, mtime }), 0, "used up");
      const plain = await s.createUpload("r/plain.bin", { size: 4 });
      await plain.write(text.encode("ab"));
      assert.equal(await plain.suspend(), 0, "a plain upload keeps nothing");
      assert.deepEqual(await names(s, "r"), ["big.bin"]);
    });

    await part("directories: made, made with parents, refused where they clash", async (s) => {
      await s.mkdir("m");
      await rejects(s.mkdir("m"), "EXISTS", "mkdir of an existing directory");
      // An existing directory is never reported as made by this call.
      assert.notEqual(await s.mkdir("m", { parents: true }), true);
      await s.mkdir("p/q/r", { parents: true });
      assert.equal((await s.stat("p/q/r")).type, "dir");
      await rejects(s.mkdir("n/o"), "NOT_FOUND", "mkdir without its parent");
      await put(s, "file", "x");
      await rejects(s.mkdir("file/sub", { parents: true }), "NOT_A_DIRECTORY", "under a file");
      await s.mkdir("", { parents: true });
      await rejects(s.mkdir(""), "EXISTS", "mkdir of the root");
    });

    await part("remove: a file, an empty directory, a tree with recursive", async (s) => {
      await put(s, "t/a.txt", "a");
      await put(s, "t/u/b.txt", "b");
      await s.mkdir("empty");
      await s.remove("empty");
      await rejects(s.remove("t"), "EXISTS", "rm of a directory that is not empty");
      await s.remove("t/a.txt");
      await rejects(s.stat("t/a.txt"), "NOT_FOUND", "a removed file");
      // Directories a write made outlive its file, as on disk, whichever way it was written.
      await s.remove("t/u/b.txt");
      assert.equal((await s.stat("t/u")).type, "dir", "the directory an upload made");
      if (s.writeWhole) {
        await s.writeWhole("w/x/f", new TextEncoder().encode("f"), { mode: 0o644, mtime: 0 });
        await s.remove("w/x/f");
        assert.equal((await s.stat("w/x")).type, "dir", "the directory a whole write made");
        await s.remove("w", { recursive: true });
      }
      await s.remove("t", { recursive: true });
      assert.deepEqual(await names(s, ""), []);
      await rejects(s.remove("nothing"), "NOT_FOUND", "rm of nothing");
      await rejects(s.remove(""), "PATH_REFUSED", "rm of the root");
    });

    await part(
      "move: renames, moves into a directory, replaces a file, never into itself",
      async (s) => {
        await put(s, "a.txt", "A");
        assert.equal(await s.move("a.txt", "b.txt"), "b.txt");
        await rejects(s.stat("a.txt"), "NOT_FOUND", "the old name");
        await s.mkdir("dir");
        assert.equal(await s.move("b.txt", "dir"), "dir/b.txt");
        assert.equal(await read(s, "dir/b.txt"), "A");
        await put(s, "c.txt", "C");
        assert.equal(await s.move("c.txt", "dir/b.txt"), "dir/b.txt");
        assert.equal(await read(s, "dir/b.txt"), "C", "a file there is replaced");
        await s.mkdir("dir/sub");
        await rejects(s.move("dir", "dir/sub"), "PATH_REFUSED", "a directory into itself");
        assert.equal(await s.move("dir", "moved"), "moved");
        assert.equal(await read(s, "moved/b.txt"), "C", "what was below moves along");
        // A directory onto a file: refused, the file named as what is in the way.
        await put(s, "plain.txt", "P");
        await assert.rejects(s.move("moved", "plain.txt"), (err: unknown) => {
          assert.ok(err instanceof FerryError && err.code === "NOT_A_DIRECTORY", String(err));
          assert.match(err.message, /plain\.txt/, "the file in the way is named");
          return true;
        });
        assert.equal(await read(s, "plain.txt"), "P", "the file stays");
        await rejects(s.move("nothing", "x"), "NOT_FOUND", "mv of nothing");
        await rejects(s.move("", "x"), "PATH_REFUSED", "mv of the root");
      },
    );

    await part("a kept partial moves with its directory and resumes there", async (s) => {
      const mtime = 2_000_000;
      const up = await s.createUpload("d1/f.bin", { size: 8, mtime, resume: true });
      await up.write(text.encode("abcd"));
      assert.equal(await up.suspend(), 4);
      await s.move("d1", "d2");
      assert.equal(await s.partialSize("d2/f.bin", { size: 8, mtime }), 4);
      const again = await s.createUpload("d2/f.bin", { size: 8, mtime, resume: true, offset: 4 });
      await again.write(text.encode("efgh"));
      await again.commit();
      assert.equal(await read(s, "d2/f.bin"), "abcdefgh");
    });

    await part("reads: only files; versions tell contents apart", async (s) => {
      await s.mkdir("dir");
      await rejects(s.openRead("dir"), "NOT_A_FILE", "reading a directory");
      await rejects(s.openRead("none"), "NOT_FOUND", "reading nothing");
      await put(s, "v.txt", "first");
      const one = await s.openRead("v.txt");
      one.close();
      await put(s, "v.txt", "second");
      const two = await s.openRead("v.txt");
      two.close();
      if (one.version !== undefined && two.version !== undefined) {
        assert.notEqual(one.version, two.version, "another content, another version");
      }
      assert.equal(two.size, 6);
    });

    await part(
      "a tree walk: directories first, small files read whole, large ones named",
      async (s) => {
        const mtime = Date.UTC(2024, 5, 6, 7, 8, 9);
        await put(s, "t/a.txt", "alpha", { mode: 0o640, mtime });
        await put(s, "t/sub/b.txt", "bravo!");
        await put(s, "t/sub/big.bin", new Uint8Array(100));
        await s.mkdir("t/empty");
        await s.mkdir("elsewhere");
        await put(s, "elsewhere/c.txt", "not in the tree");
        const items: TreeItem[] = [];
        const contents = new Map<string, string>();
        for await (const item of walkTree(s, "t", { inlineMax: 50 })) {
          items.push(item);
          // Read at once: an item's read is good only until the next item is asked for.
          if (item.kind !== "file" || !item.read) continue;
          const into = new Uint8Array(item.size);
          await item.read(into);
          contents.set(item.path, new TextDecoder().decode(into));
        }
        const order = items.map((i) => i.path);
        assert.equal(order[0], "", "the walked directory comes first");
        assert.equal(items[0].kind, "dir");
        assert.ok(order.indexOf("sub") < order.indexOf("sub/b.txt"), order.join());
        assert.deepEqual(
          [...order].sort(),
          ["", "a.txt", "empty", "sub", "sub/b.txt", "sub/big.bin"],
          "nothing outside the walked directory",
        );
        assert.deepEqual(Object.fromEntries(contents), { "a.txt": "alpha", "sub/b.txt": "bravo!" });
        const big = items.find((i) => i.path === "sub/big.bin");
        assert.ok(big?.kind === "file" && big.size === 100 && !big.read, "over inlineMax: named");
        const a = items.find((i) => i.path === "a.txt");
        assert.ok(a?.kind === "file" && (a.mode & 0o777) === 0o640 && a.mtime === mtime);
        await rejects(
          Array.fromAsync(walkTree(s, "t/a.txt", { inlineMax: 50 })),
          "NOT_A_DIRECTORY",
          "a file",
        );
        await rejects(
          Array.fromAsync(walkTree(s, "none", { inlineMax: 50 })),
          "NOT_FOUND",
          "nothing",
        );
      },
    );

    await part("usage counts stored files", async (s) => {
      if (!s.usage) return;
      await put(s, "u/a", "12345");
      await put(s, "u/b/c", "123");
      assert.equal((await s.usage("")).files, 8);
      assert.equal((await s.usage("u/b")).files, 3);
    });
  });
}
