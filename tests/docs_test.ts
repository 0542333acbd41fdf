/**
 * The documented examples: every ferry and ferryd command line in the
 * README and docs/ must get past the real argument parsers, so the docs
 * cannot show a flag that does not exist or a command that takes other
 * arguments.
 */

import assert from "node:assert/strict";
import { parseClientArgs } from "../lib/client/cli/args.ts";
import { parseCommand } from "../lib/client/cli/commands.ts";
import { parseServerArgs } from "../lib/server/cli.ts";
import { splitWords } from "../lib/client/cli/shell_words.ts";

/** Each document, and how many command lines it shows at least (a check on the pattern). */
const DOCS: Record<string, number> = { "README.md": 8, "docs/ci.md": 10 };

/** How a documented line starts ferry or ferryd, however it is installed. */
const INVOCATION = new RegExp(
  String.raw`^(?:ExecStart=)?(?:/usr/local/bin/)?(?:npx --yes deno@[\d.]+ |deno )?` +
    String.raw`(?:run -A )?(ferryd|ferry|server\.ts|client\.ts|` +
    String.raw`jsr:@ferry/ferry/(?:server|client)|dist/bundle/ferryd?\.js)(?:\s+(.*))?$`,
);

/** Code blocks that hold commands (not usage synopses, which are `text`). */
const COMMAND_BLOCKS = new Set(["sh", "bash", "yaml", "ini"]);

/** Command blocks' lines, continuations joined, YAML list markers and `run:` taken off. */
function commandLines(markdown: string): string[] {
  const lines: string[] = [];
  let block: string | undefined;
  let pending = "";
  for (const raw of markdown.split("\n")) {
    if (raw.startsWith("```")) {
      block = block === undefined ? raw.slice(3).trim() : undefined;
      continue;
    }
    if (block === undefined || !COMMAND_BLOCKS.has(block)) continue;
    const line = pending + raw.trim();
    if (line.endsWith("\\")) {
      pending = line.slice(0, -1);
      continue;
    }
    pending = "";
    lines.push(line.replace(/^- /, "").replace(/^run: /, ""));
  }
  return lines;
}

/** The arguments after the program, up to a pipe, redirection, `&&` or comment. */
function argumentsOf(rest: string): string[] {
  const padded = ` ${rest} `;
  const cut = padded.search(/ (\||>|&&|#|;) /);
  const words = splitWords(cut < 0 ? padded : padded.slice(0, cut));
  // Placeholders stand for values a reader fills in: give them a valid shape.
  return words.map((w, i) => words[i - 1] === "--pin" && w.includes("…") ? "00".repeat(32) : w);
}

Deno.test("every ferry and ferryd command line in the docs parses", async () => {
  for (const [doc, least] of Object.entries(DOCS)) {
    const text = await Deno.readTextFile(new URL(`../${doc}`, import.meta.url));
    let checked = 0;
    for (const line of commandLines(text)) {
      const m = INVOCATION.exec(line);
      if (!m) continue;
      const args = argumentsOf(m[2] ?? "");
      const server = /ferryd|server/.test(m[1]);
      try {
        if (server) parseServerArgs(args);
        else {
          const parsed = parseClientArgs(args, {});
          if (parsed.command.length > 0 && !parsed.help) parseCommand(parsed.command, false);
        }
      } catch (err) {
        assert.fail(`${doc}: ${line}\n  ${(err as Error).message}`);
      }
      checked++;
    }
    assert.ok(checked >= least, `${doc}: only ${checked} command lines; is the pattern broken?`);
  }
});
