import assert from "node:assert/strict";
import { utf8Length } from "../lib/util/utf8.ts";

Deno.test("utf8Length: agrees with TextEncoder on every kind of code unit", () => {
  const encoder = new TextEncoder();
  const samples = [
    "",
    "plain ascii/path.txt",
    "\u007f\u0080\u07ff\u0800\uffff",
    "déjà vu/файл/文件.txt",
    "🦕🦖 emoji pair",
    "lone high \ud800 in the middle",
    "lone low \udc00 too",
    "high at the end \ud83e",
    "\udc00\ud800 reversed pair",
    "\ud83e\udd95\ud83e",
  ];
  for (const text of samples) {
    assert.equal(utf8Length(text), encoder.encode(text).length, JSON.stringify(text));
  }
  for (let c = 0; c < 0x10000; c += 7) {
    const text = String.fromCharCode(c, 0xd83e, c);
    assert.equal(utf8Length(text), encoder.encode(text).length, `U+${c.toString(16)}`);
  }
});
