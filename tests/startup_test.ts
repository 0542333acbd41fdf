// The client's start: its common commands never load Deno's Node compatibility layer, whose
// first use costs a command 30-40 ms (docs/performance.md, "Start-up"). A preloaded trap on
// the `process` global (the only way in: lib/util/node_builtins.ts) says when something does.

import assert from "node:assert/strict";
import { join } from "node:path";
import { randomBytes, runClient, startServer, tempDir } from "./helpers.ts";

const TRAP = `
const own = Object.getOwnPropertyDescriptor(globalThis, "process");
Object.defineProperty(globalThis, "process", {
  configurable: true,
  enumerable: own.enumerable,
  get() {
    console.error("NODE LAYER LOADED\\n" + new Error().stack);
    return own.get.call(this);
  },
  set(value) {
    own.set.call(this, value);
  },
});
`;

/** The client modules a one-shot command imports before it runs: no `node:` module but these. */
const ALLOWED_AT_START = ["node:path", "node:util"];

Deno.test("the client's static imports reach no node: module but path and util", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "client.ts"],
    cwd: new URL("..", import.meta.url).pathname,
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  type Dep = { specifier: string; code?: { specifier: string }; isDynamic?: boolean };
  const graph = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    roots: string[];
    modules: { specifier: string; dependencies?: Dep[] }[];
  };
  const bySpecifier = new Map(graph.modules.map((m) => [m.specifier, m]));
  // Only what is loaded before the first line runs: static imports of code, not types, and
  // not `import()`.
  const seen = new Set<string>();
  const node = new Set<string>();
  const pending = [...graph.roots];
  while (pending.length > 0) {
    const specifier = pending.pop()!;
    if (seen.has(specifier)) continue;
    seen.add(specifier);
    if (specifier.startsWith("node:")) {
      node.add(specifier);
      continue;
    }
    for (const dep of bySpecifier.get(specifier)?.dependencies ?? []) {
      if (dep.code && !dep.isDynamic) pending.push(dep.code.specifier);
    }
  }
  assert.ok(seen.size > 30, `walked the graph (${seen.size} modules)`);
  assert.deepEqual([...node].filter((s) => !ALLOWED_AT_START.includes(s)), []);
});

Deno.test("ls, put, get, put -r and get -r run without Node's layer; SHA-256 loads it", async () => {
  await using server = await startServer();
  await using local = await tempDir();
  const trap = join(local.path, "trap.js");
  await Deno.writeTextFile(trap, TRAP);
  const tree = join(local.path, "tree");
  await Deno.mkdir(join(tree, "d"), { recursive: true });
  for (let i = 0; i < 20; i++) {
    await Deno.writeFile(join(tree, i % 2 ? "d" : "", `f${i}.txt`), randomBytes(100 + i));
  }
  await Deno.writeFile(join(local.path, "big.bin"), randomBytes(2 * 1024 * 1024 + 3));
  await Deno.writeFile(join(local.path, "small.bin"), randomBytes(3000));
  const run = (...args: string[]) =>
    runClient(server.address, args, { cwd: local.path, flags: ["-A", "--preload", trap] });
  for (
    const args of [
      ["put", "big.bin"],
      ["put", "small.bin"],
      ["ls"],
      ["get", "big.bin", "big2.bin"],
      ["get", "small.bin", "small2.bin"],
      ["put", "-r", "tree", "t"],
      ["get", "-r", "t", "t2"],
    ]
  ) {
    const r = await run(...args);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    assert.doesNotMatch(r.stderr, /NODE LAYER LOADED/, args.join(" "));
  }
  assert.deepEqual(
    await Deno.readFile(join(local.path, "big2.bin")),
    await Deno.readFile(join(local.path, "big.bin")),
  );
  assert.deepEqual(
    await Deno.readFile(join(local.path, "t2", "d", "f1.txt")),
    await Deno.readFile(join(tree, "d", "f1.txt")),
  );
  // Without the C library's calls (another system, or FERRY_LIBC=off), node:fs does the same.
  for (const args of [["put", "-r", "tree", "u"], ["get", "-r", "u", "u2"]]) {
    const r = await runClient(server.address, args, {
      cwd: local.path,
      env: { FERRY_LIBC: "off" },
      flags: ["-A", "--preload", trap],
    });
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, /NODE LAYER LOADED/, args.join(" "));
  }
  for (const name of ["f0.txt", "d/f1.txt"]) {
    assert.deepEqual(
      await Deno.readFile(join(local.path, "u2", name)),
      await Deno.readFile(join(tree, name)),
    );
  }
  // The trap itself works: SHA-256 is node:crypto's.
  const strong = await run("--checksum", "sha256", "get", "small.bin", "small3.bin");
  assert.equal(strong.code, 0, strong.stderr);
  assert.match(strong.stderr, /NODE LAYER LOADED/);
});
