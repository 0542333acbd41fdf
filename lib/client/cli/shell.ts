/**
 * The interactive shell: commands read line by line, split like a shell's
 * words, run one after another on one connection.
 *
 * @module
 */

import { type Context, helpText, SHELL_EXIT } from "./commands.ts";
import { fail, runCommand } from "./run.ts";
import { splitWords } from "./shell_words.ts";

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const text of stream.pipeThrough(new TextDecoderStream())) {
    rest += text;
    let nl: number;
    while ((nl = rest.indexOf("\n")) >= 0) {
      yield rest.slice(0, nl).replace(/\r$/, "");
      rest = rest.slice(nl + 1);
    }
  }
  if (rest !== "") yield rest;
}

/** Run the shell on stdin until `close` or end of input; returns its exit status. */
export async function shell(ctx: Context): Promise<number> {
  const interactive = Deno.stdin.isTerminal();
  const prompt = () => {
    if (interactive) Deno.stdout.writeSync(new TextEncoder().encode("ferry> "));
  };
  let status = 0;
  prompt();
  for await (const line of lines(Deno.stdin.readable)) {
    try {
      const words = splitWords(line);
      if (words.length > 0) {
        if (SHELL_EXIT.has(words[0])) break;
        if (words[0] === "help" || words[0] === "?") ctx.sink.out(helpText(true));
        else {
          const result = await runCommand(ctx, words, true);
          if (result !== 0) status = result;
        }
      }
    } catch (err) {
      status = fail(ctx.sink, err);
    }
    prompt();
  }
  return status;
}
