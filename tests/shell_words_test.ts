import assert from "node:assert/strict";
import { FerryError } from "../lib/util/errors.ts";
import { lastWordStart, splitWords, wordsSoFar } from "../lib/client/cli/shell_words.ts";

Deno.test("splitWords: plain, quoted and escaped words", () => {
  assert.deepEqual(splitWords(""), []);
  assert.deepEqual(splitWords("   "), []);
  assert.deepEqual(splitWords("ls"), ["ls"]);
  assert.deepEqual(splitWords("  get  a.txt\tb.txt "), ["get", "a.txt", "b.txt"]);
  assert.deepEqual(splitWords(`put "my file.txt" 'dir/x y'`), ["put", "my file.txt", "dir/x y"]);
  assert.deepEqual(splitWords(`put my\\ file.txt`), ["put", "my file.txt"]);
  assert.deepEqual(splitWords(`get "a \\"q\\" b"`), ["get", 'a "q" b']);
  assert.deepEqual(splitWords(`get 'it''s'`), ["get", "its"]);
  assert.deepEqual(splitWords(`get ""`), ["get", ""]);
  assert.deepEqual(splitWords(`get a"b c"d`), ["get", "ab cd"]);
  assert.deepEqual(splitWords(`get 'a\\b'`), ["get", "a\\b"]);
  assert.deepEqual(splitWords("get naïve☃"), ["get", "naïve☃"]);
});

Deno.test("splitWords: a backslash before a glob character stays for the glob, as in sftp", () => {
  // What Tab completion writes for `d/[br].txt`: the glob must see the escape, or the name
  // would be a pattern matching d/b.txt.
  assert.deepEqual(splitWords("get d/\\[br].txt"), ["get", "d/\\[br].txt"]);
  assert.deepEqual(splitWords("rm a\\*b\\?"), ["rm", "a\\*b\\?"]);
  // A file named a\b: the glob's own escape for a backslash survives the line.
  assert.deepEqual(splitWords("get a\\\\b"), ["get", "a\\\\b"]);
  // Other escapes are the line's: the character itself.
  assert.deepEqual(splitWords("get it\\'s\\ x"), ["get", "it's x"]);
  assert.deepEqual(splitWords("get 'd/\\[br].txt'"), ["get", "d/\\[br].txt"]);
});

Deno.test("splitWords: unbalanced quotes are usage errors", () => {
  for (const line of [`get "a`, `get 'a`, "get a\\"]) {
    assert.throws(() => splitWords(line), (e) => e instanceof FerryError && e.code === "USAGE");
  }
});

Deno.test("completion reads the last word as the line does: escapes and quotes", () => {
  const last = (line: string) => wordsSoFar(line.slice(lastWordStart(line)))[0];
  assert.equal(last("ls e\\ f/p"), "e f/p");
  assert.equal(last(`ls "e f/p`), "e f/p");
  assert.equal(last("ls 'it''s"), "its");
  assert.equal(last("get d/\\[b"), "d/\\[b");
  assert.equal(last("get a\\"), "a");
  assert.equal(lastWordStart("ls "), 3);
  assert.equal(last("ls"), "ls");
});
