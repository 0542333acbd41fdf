import assert from "node:assert/strict";
import { componentMatcher, expandGlob, type GlobEntry, hasGlob } from "../lib/util/glob.ts";
import { Reporter, type Sink } from "../lib/client/report.ts";
import { FerryError } from "../lib/util/errors.ts";

Deno.test("hasGlob: unescaped wildcards only", () => {
  assert.equal(hasGlob("a/b.txt"), false);
  assert.equal(hasGlob("*.txt"), true);
  assert.equal(hasGlob("a?"), true);
  assert.equal(hasGlob("[ab]"), true);
  assert.equal(hasGlob("a\\*b"), false);
});

Deno.test("componentMatcher: *, ?, classes, escapes and dot files", () => {
  const cases: [string, string, boolean][] = [
    ["*.tar.gz", "app.tar.gz", true],
    ["*.tar.gz", "app.tar.gz.sig", false],
    ["*", ".hidden", false],
    [".*", ".hidden", true],
    ["?.txt", "a.txt", true],
    ["?.txt", "ab.txt", false],
    ["[ab].txt", "b.txt", true],
    ["[!ab].txt", "b.txt", false],
    ["[!ab].txt", "c.txt", true],
    ["[a-c]", "b", true],
    ["a\\*b", "a*b", true],
    ["a\\*b", "axb", false],
    ["a.b", "axb", false],
    ["(x)+", "(x)+", true],
    ["[oops", "[oops", true],
    ["*☃*", "snow☃man", true],
  ];
  for (const [pattern, name, want] of cases) {
    assert.equal(componentMatcher(pattern)(name), want, `${pattern} vs ${name}`);
  }
});

Deno.test("expandGlob: walks components, never into symlinks or files", async () => {
  const tree: Record<string, GlobEntry[]> = {
    "": [{ name: "logs", type: "dir" }, { name: "a.txt", type: "file" }, {
      name: "link",
      type: "symlink",
    }],
    "logs": [{ name: "x.txt", type: "file" }, { name: "y.log", type: "file" }, {
      name: "old",
      type: "dir",
    }],
    "logs/old": [{ name: "z.txt", type: "file" }],
  };
  const list = async function* (dir: string) {
    yield* tree[dir] ?? [];
  };
  const paths = async (p: string) =>
    (await Array.fromAsync(expandGlob(p, list))).map((m) => m.path);
  assert.deepEqual(await paths("logs/*.txt"), ["logs/x.txt"]);
  assert.deepEqual(await paths("*/*.txt"), ["logs/x.txt"]);
  assert.deepEqual(await paths("*/*/*.txt"), ["logs/old/z.txt"]);
  assert.deepEqual(await paths("*"), ["logs", "a.txt", "link"]);
  assert.deepEqual(await paths("link/*"), []);
  assert.deepEqual(await paths("nothing*"), []);
});

function capture(tty: boolean) {
  const out: string[] = [];
  const err: string[] = [];
  const drawn: string[] = [];
  const sink: Sink = {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
    draw: (t) => drawn.push(t),
    tty,
  };
  return { sink, out, err, drawn };
}

Deno.test("Reporter: progress is drawn in place on a terminal and cleared", () => {
  const c = capture(true);
  const r = new Reporter("human", c.sink);
  r.plan(2, 2048);
  const t = r.track("dir/a\u001b.bin");
  t.onStart(1024);
  t.onProgress(512);
  r.result({ op: "put", path: "dir/a\u001b.bin", bytes: 1024, seconds: 0.5 });
  r.summary("put");
  const line = c.drawn.find((d) => d.includes("ETA")) ?? "";
  assert.ok(line.startsWith("\r\u001b[K[1/2] dir/a\\x1b.bin "), JSON.stringify(line));
  assert.ok(!c.drawn.some((d) => d.includes("\u001b.bin")), "names are escaped");
  assert.equal(c.drawn.at(-1), "\r\x1b[K", "the line is cleared before other output");
  assert.match(c.err.at(-1)!, /^put: 1 file, 1\.0 KiB in/);
  assert.deepEqual(c.out, []);
});

Deno.test("Reporter: not a terminal means results only; quiet means errors only", () => {
  const plain = capture(false);
  const r = new Reporter("human", plain.sink);
  r.track("a").onStart(10);
  r.result({ op: "put", path: "a", bytes: 10, seconds: 0 });
  r.result({ op: "put", path: "b", bytes: 0, seconds: 0, skipped: "unchanged" });
  r.result({ op: "rm", path: "c", bytes: 0, seconds: 0 });
  r.summary("put");
  assert.deepEqual(plain.drawn, []);
  assert.deepEqual(plain.out, ["skipped b (unchanged)", "deleted c"]);
  assert.deepEqual(plain.err, []);

  const quiet = capture(true);
  const q = new Reporter("quiet", quiet.sink);
  q.result({ op: "put", path: "b", bytes: 0, seconds: 0, skipped: "unchanged" });
  q.result({ op: "put", path: "x", bytes: 0, seconds: 0, error: new FerryError("IO", "disk") });
  q.summary("put");
  assert.deepEqual(quiet.out, []);
  assert.deepEqual(quiet.err, ["ferry: disk"]);
  assert.equal(q.failed, 1);
  assert.equal(q.lastError?.code, "IO");
});

Deno.test("Reporter: --json prints one object per outcome and a summary", () => {
  const c = capture(true);
  const r = new Reporter("json", c.sink);
  r.result({
    op: "get",
    path: "a",
    bytes: 3,
    checksum: { algorithm: "sha256", hex: "ab" },
    seconds: 0.0123,
  });
  r.result({ op: "get", path: "b", bytes: 0, seconds: 0, skipped: "exists" });
  r.result({ op: "get", path: "c", bytes: 0, seconds: 0, error: new FerryError("NOT_FOUND", "x") });
  r.summary("get");
  const lines = c.out.map((l) => JSON.parse(l));
  assert.deepEqual(lines[0], {
    op: "get",
    path: "a",
    bytes: 3,
    checksum: { sha256: "ab" },
    sha256: "ab",
    seconds: 0.012,
    skipped: null,
    attempts: 1,
    resumed: 0,
  });
  assert.equal(lines[1].skipped, "exists");
  assert.equal(lines[1].checksum, null);
  assert.equal("sha256" in lines[1], false, "sha256 only where it was the checksum");
  assert.deepEqual(lines[2].error, { code: "NOT_FOUND", message: "x" });
  assert.deepEqual(
    [lines[3].op, lines[3].files, lines[3].bytes, lines[3].skipped, lines[3].failed],
    ["summary", 1, 3, 1, 1],
  );
  assert.deepEqual(c.drawn, [], "no progress in JSON mode");
});
