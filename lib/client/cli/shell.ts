/**
 * The interactive shell: commands read line by line, split like a shell's
 * words, run one after another on one connection. On a terminal it is
 * sftp's: line editing and history (kept across sessions), Tab completion
 * of commands and of remote and local paths, Ctrl-C that stops the running
 * command and comes back to the prompt. Fed by a pipe, it reads lines.
 *
 * @module
 */

import { createInterface, type Interface } from "node:readline";
import process from "node:process";
import { COMMANDS, type Context, helpText, SHELL_EXIT } from "./commands.ts";
import { fail, interruptedLine, runCommand } from "./run.ts";
import { lastWordStart, splitWords, wordsSoFar } from "./shell_words.ts";
import { escapeGlob, unescapeGlob } from "../../util/glob.ts";

/** Lines of history kept. */
const HISTORY_SIZE = 1000;

/** Stops the command running now; undefined at the prompt. */
let interrupt: (() => void) | undefined;

/**
 * Stop the shell command running now (Ctrl-C): true if there was one. The
 * CLI's SIGINT handler asks this first, and ends the process only if not.
 */
export function interruptCommand(): boolean {
  if (!interrupt) return false;
  interrupt();
  return true;
}

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

/** Run the shell on stdin until `close`, end of input, or (on a terminal) Ctrl-D; its status. */
export async function shell(ctx: Context): Promise<number> {
  if (Deno.stdin.isTerminal()) return await interactive(ctx);
  let status = 0;
  for await (const line of lines(Deno.stdin.readable)) {
    const result = await runLine(ctx, line);
    if (result === "exit") break;
    // Commands read from a file or pipe stop with the one Ctrl-C stopped, as a script would.
    if (result === "stopped") return 130;
    if (result !== 0) status = result;
  }
  return status;
}

/**
 * Run one line; `exit` for a command that ends the shell. While it runs,
 * Ctrl-C stops it: the connection is dropped (what a transfer kept stays,
 * to resume), and the next command connects afresh.
 */
async function runLine(ctx: Context, line: string): Promise<number | "exit" | "stopped"> {
  const controller = new AbortController();
  let hint: string | undefined;
  try {
    const words = splitWords(line);
    if (words.length === 0) return 0;
    if (SHELL_EXIT.has(words[0])) return "exit";
    if (words[0] === "help" || words[0] === "?") {
      ctx.sink.out(helpText(true));
      return 0;
    }
    ctx.signal = controller.signal;
    interrupt = () => {
      // Said as things stand now: once stopped, the transfer has let go of what it kept.
      hint = interruptedLine([line], true);
      controller.abort();
      ctx.cancel?.();
    };
    const code = await runCommand(ctx, words, true);
    return controller.signal.aborted ? "stopped" : code;
  } catch (err) {
    // A command the user stopped is not a failure of the shell: its exit status stays.
    return controller.signal.aborted ? "stopped" : fail(ctx.sink, err);
  } finally {
    interrupt = undefined;
    ctx.signal = undefined;
    if (hint !== undefined) ctx.sink.err(hint);
  }
}

/** The shell on a terminal, through node:readline. */
function interactive(ctx: Context): Promise<number> {
  const history = openHistory();
  const rl = createInterface({
    input: process.stdin,
    output: process.stdout,
    prompt: "ferry> ",
    terminal: true,
    history: history.lines,
    historySize: HISTORY_SIZE,
    removeHistoryDuplicates: true,
    completer: (line: string, done: (err: null, result: [string[], string]) => void) => {
      complete(ctx, line).then((result) => done(null, result), () => done(null, [[], line]));
    },
  });
  const raw = (on: boolean) =>
    (process.stdin as { setRawMode?(on: boolean): void }).setRawMode?.(on);
  let status = 0;
  let leaving = false;
  /** A command is running: the end of input waits for it. */
  let running = false;
  let closed = false;
  return new Promise((resolve) => {
    rl.on("SIGINT", () => {
      // At an empty prompt, a second Ctrl-C in a row leaves, as in sftp; otherwise the line
      // typed so far is dropped.
      if (rl.line === "" && leaving) return rl.close();
      leaving = rl.line === "";
      clearLine(rl);
      process.stdout.write("^C\n");
      if (leaving) ctx.sink.err("(Ctrl-C again, or Ctrl-D, to leave)");
      rl.prompt();
    });
    rl.on("line", async (line: string) => {
      leaving = false;
      running = true;
      history.add(line);
      // While it runs, Ctrl-C is a signal again (it stops the command, see runLine), and what
      // is typed ahead waits for the next prompt.
      rl.pause();
      raw(false);
      const result = await runLine(ctx, line);
      running = false;
      if (typeof result === "number" && result !== 0) status = result;
      // Ctrl-D typed while it ran ended the input: the shell is over.
      if (closed) return resolve(status);
      raw(true);
      if (result === "exit") return rl.close();
      rl.resume();
      rl.prompt();
    });
    rl.on("close", () => {
      closed = true;
      process.stdout.write("\n");
      if (!running) resolve(status);
    });
    rl.prompt();
  });
}

function clearLine(rl: Interface): void {
  rl.write(null, { ctrl: true, name: "e" });
  rl.write(null, { ctrl: true, name: "u" });
}

/**
 * The shell's history: `$XDG_DATA_HOME/ferry/history` (or
 * `~/.local/share/ferry/history`), created private (0600, in a 0700
 * directory): commands name paths that are nobody else's business.
 */
function openHistory(): { lines: string[]; add(line: string): void } {
  const home = Deno.env.get("HOME");
  const base = Deno.env.get("XDG_DATA_HOME") || (home ? `${home}/.local/share` : undefined);
  const path = base ? `${base}/ferry/history` : undefined;
  let lines: string[] = [];
  if (path) {
    try {
      // Newest first, as readline keeps it.
      lines = Deno.readTextFileSync(path).split("\n").filter((l) => l !== "").reverse()
        .slice(0, HISTORY_SIZE);
    } catch {
      // None yet, or unreadable: a shell without history is still a shell.
    }
  }
  let broken = false;
  return {
    lines,
    add(line) {
      if (!path || broken || line.trim() === "") return;
      try {
        Deno.mkdirSync(`${base}/ferry`, { recursive: true, mode: 0o700 });
        Deno.writeTextFileSync(path, `${line}\n`, { append: true, mode: 0o600 });
        // A file made before with looser bits is tightened.
        if (((Deno.statSync(path).mode ?? 0) & 0o077) !== 0) Deno.chmodSync(path, 0o600);
      } catch {
        broken = true; // Read-only home: go on without saving.
      }
    },
  };
}

/** Where each command's arguments are: on the server, or on this machine. */
const LOCAL_COMMANDS = new Set(["lcd", "lls"]);

/**
 * Tab completion: a command name for the first word; for later ones a path,
 * local for `lcd`, `lls` and the first argument of `put`, remote otherwise
 * (listed from the server).
 */
async function complete(ctx: Context, line: string): Promise<[string[], string]> {
  // The last word as typed (escapes and quotes and all), and the path it means so far.
  const start = lastWordStart(line);
  const word = line.slice(start);
  const before = line.slice(0, start).trim();
  if (before === "") {
    const names = [...Object.keys(COMMANDS), ...SHELL_EXIT, "help"].sort();
    return [names.filter((n) => n.startsWith(word)).map((n) => `${n} `), word];
  }
  if (word.startsWith("-")) return [[], word];
  const [command, ...args] = wordsSoFar(before);
  const typed = args.filter((a) => !a.startsWith("-")).length;
  const local = LOCAL_COMMANDS.has(command) || (command === "put" && typed === 0);
  const path = unescapeGlob(wordsSoFar(word)[0] ?? "");
  const slash = path.lastIndexOf("/");
  const dir = path.slice(0, slash + 1);
  const prefix = path.slice(slash + 1);
  const entries = local ? localEntries(dir) : await remoteEntries(ctx, dir);
  // The whole word is replaced, written as the line reads it back: escapes, no quotes.
  const hits = entries
    .filter((e) => e.name.startsWith(prefix) && (prefix.startsWith(".") || !e.name.startsWith(".")))
    .map((e) => `${typedName(dir)}${typedName(e.name)}${e.dir ? "/" : ""}`)
    .sort();
  return [hits, word];
}

/**
 * A name as it is typed on the shell's line: glob characters escaped for
 * the glob (the line keeps those backslashes, see `splitWords`), blanks and
 * quotes escaped for the line.
 */
function typedName(name: string): string {
  return escapeGlob(name).replace(/[ \t'"]/g, (ch) => `\\${ch}`);
}

function localEntries(dir: string): { name: string; dir: boolean }[] {
  try {
    return Array.from(Deno.readDirSync(dir === "" ? "." : dir), (e) => ({
      name: e.name,
      dir: e.isDirectory,
    }));
  } catch {
    return [];
  }
}

async function remoteEntries(ctx: Context, dir: string): Promise<{ name: string; dir: boolean }[]> {
  const client = await ctx.client();
  // `dir` is a name as typed, its escapes undone: it goes to the server as that name.
  const entries = await client.list(unescapeGlob(ctx.remote(escapeGlob(dir.replace(/\/$/, "")))));
  return entries.map((e) => ({ name: e.name, dir: e.type === "dir" }));
}
