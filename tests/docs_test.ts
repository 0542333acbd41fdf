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

Deno.test("the README's quick start from a checkout works as pasted, on a fresh directory", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const block = readme.split("from a checkout:\n\n```sh\n")[1].split("```")[0];
  const lines = block.trim().split("\n").map((l) => l.replace(/\s+#.*$/, "").trim());
  assert.equal(lines[0], "deno run -A server.ts --root ./artifacts", "the block this test runs");
  const repo = new URL("..", import.meta.url).pathname;
  // As pasted, but with this checkout's paths: `deno` is this Deno, the scripts are here.
  const argv = (line: string) =>
    line.split(" ").slice(1).map((w) => w === "server.ts" || w === "client.ts" ? repo + w : w);
  const cwd = await Deno.makeTempDir({ prefix: "ferry-quickstart-" });
  const artifact = crypto.getRandomValues(new Uint8Array(50_000));
  await Deno.mkdir(`${cwd}/dist`);
  await Deno.writeFile(`${cwd}/dist/app.tar.gz`, artifact);
  const server = new Deno.Command(Deno.execPath(), {
    args: argv(lines[0]),
    cwd,
    stdout: "piped",
    stderr: "null",
  }).spawn();
  try {
    const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let banner = "";
    while (!banner.includes("\n")) banner += (await reader.read()).value ?? "";
    reader.releaseLock();
    assert.match(banner, /listening on 127\.0\.0\.1:9500/);
    const run = async (line: string, stdin = "") => {
      const child = new Deno.Command(Deno.execPath(), {
        args: argv(line),
        cwd,
        stdin: "piped",
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1" },
      }).spawn();
      const writer = child.stdin.getWriter();
      await writer.write(new TextEncoder().encode(stdin));
      await writer.close();
      const out = await child.output();
      const dec = new TextDecoder();
      assert.equal(out.code, 0, `${line}: ${dec.decode(out.stderr)}`);
      return dec.decode(out.stdout);
    };
    await run(lines[1]);
    assert.match(await run(lines[2]), /app\.tar\.gz/);
    await run(lines[3]);
    assert.deepEqual(await Deno.readFile(`${cwd}/app.tar.gz`), artifact);
    assert.match(await run(lines[4], "ls releases\nclose\n"), /app\.tar\.gz/);
  } finally {
    server.kill("SIGTERM");
    await server.status;
    await Deno.remove(cwd, { recursive: true });
  }
});
