/**
 * What the contenders move: one large file of random bytes, a tree of small
 * files, and fresh places to put them.
 *
 * @module
 */

import { join } from "node:path";
import { MIB } from "./measure.ts";

/** The sources and the destinations of the transfers. */
export interface Fixtures {
  /** The large source file. */
  file: string;
  /** The source tree: files of 4 KiB in 100 directories. */
  tree: string;
  /** A compressible tree: text, JSON and JavaScript files of 1-32 KiB in 20 directories. */
  textTree: string;
  /** An empty local destination directory, the same path each time (emptied first). */
  freshDst(): Promise<string>;
  /** A name no tree has had yet, for uploads and downloads alike. */
  newTreeName(): string;
  /** A local path no tree has gone to yet, for downloads. */
  newTreeDst(): string;
}

/**
 * Make the sources in `work`: a `size`-byte file, a tree of `files` files,
 * and a compressible tree of `textFiles` files.
 */
export async function makeFixtures(
  work: string,
  size: number,
  files: number,
  textFiles: number,
): Promise<Fixtures> {
  const src = join(work, "src");
  const file = join(src, "big.bin");
  const tree = join(src, "tree");
  const textTree = join(src, "text");
  await Deno.mkdir(tree, { recursive: true });
  console.error(
    `fixtures: ${size / MIB} MiB file, ${files} files of 4 KiB, ${textFiles} text files in ${work}`,
  );
  await writeRandom(file, size);
  await makeTree(tree, files);
  await makeTextTree(textTree, textFiles);
  const dst = join(work, "dst");

  // Trees go to new names and nothing is deleted until the end. On ext4 without a journal
  // (this machine), a file created within seconds of thousands being deleted costs ~10x as
  // much: the allocator steps over every recently freed inode (ext4 `recently_deleted`). A
  // deletion before a round would make the figures depend on who ran after it.
  const dstTrees = join(work, "dst-trees");
  await Deno.mkdir(dstTrees);
  let treeSerial = 0;
  const newTreeName = () => `tree-${++treeSerial}`;

  return {
    file,
    tree,
    textTree,
    async freshDst() {
      await Deno.remove(dst, { recursive: true }).catch(() => {});
      await Deno.mkdir(dst, { recursive: true });
      return dst;
    },
    newTreeName,
    newTreeDst: () => join(dstTrees, newTreeName()),
  };
}

/** Write `size` random bytes to `path`: a random 1 MiB block, its first byte bumped each time. */
export async function writeRandom(path: string, size: number): Promise<void> {
  const block = new Uint8Array(MIB);
  for (let i = 0; i < MIB; i += 65536) crypto.getRandomValues(block.subarray(i, i + 65536));
  using f = await Deno.open(path, { write: true, create: true, truncate: true });
  for (let left = size; left > 0; left -= MIB) {
    // Vary each block so nothing downstream can deduplicate.
    block[0]++;
    let chunk = block.subarray(0, Math.min(left, MIB));
    while (chunk.length) chunk = chunk.subarray(f.writeSync(chunk));
  }
}

/** `files` random files of 4 KiB spread over 100 subdirectories of `dir`. */
async function makeTree(dir: string, files: number): Promise<void> {
  const buf = new Uint8Array(4096);
  for (let i = 0; i < files; i++) {
    const sub = join(dir, `d${i % 100}`);
    if (i < 100) await Deno.mkdir(sub, { recursive: true });
    crypto.getRandomValues(buf);
    await Deno.writeFile(join(sub, `f${i}.bin`), buf);
  }
}

/**
 * `files` files of 1-32 KiB in 20 subdirectories of `dir`, that compress as
 * build output does (about 4-6x with zstd or zlib): JSON records, JavaScript,
 * and log lines, with random ids and numbers in them so that no file repeats
 * another.
 */
async function makeTextTree(dir: string, files: number): Promise<void> {
  const words = [
    "artifact",
    "build",
    "cache",
    "deploy",
    "error",
    "fetch",
    "handler",
    "index",
    "module",
    "request",
    "response",
    "runner",
    "status",
    "stream",
    "token",
    "worker",
  ];
  const pick = () => words[Math.floor(Math.random() * words.length)];
  const id = () => Math.random().toString(36).slice(2, 10);
  const kinds = [
    () =>
      JSON.stringify({
        id: id(),
        name: `${pick()}-${pick()}`,
        size: Math.floor(Math.random() * 1e6),
        ok: Math.random() < 0.9,
        tags: [pick(), pick()],
      }) + ",\n",
    () =>
      `export function ${pick()}${id()}(${pick()}, ${pick()}) {\n  return ${pick()}.${pick()}(${
        Math.floor(Math.random() * 1000)
      });\n}\n`,
    () =>
      `2026-12-07T10:${
        String(Math.floor(Math.random() * 60)).padStart(2, "0")
      }:00Z INFO ${pick()} ${pick()} id=${id()} took ${Math.floor(Math.random() * 5000)} ms\n`,
  ];
  const encoder = new TextEncoder();
  for (let i = 0; i < files; i++) {
    const sub = join(dir, `t${i % 20}`);
    if (i < 20) await Deno.mkdir(sub, { recursive: true });
    const kind = i % kinds.length;
    const target = 1024 + Math.floor(Math.random() * 31 * 1024);
    let text = "";
    while (text.length < target) text += kinds[kind]();
    const ext = ["json", "js", "log"][kind];
    await Deno.writeFile(join(sub, `f${i}.${ext}`), encoder.encode(text.slice(0, target)));
  }
}
