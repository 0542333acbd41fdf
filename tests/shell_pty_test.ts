/**
 * Integration: the interactive shell in a real pseudo-terminal (`script`),
 * driven by keystrokes as a user types them: line editing, history kept
 * across sessions in a private file, Tab completion of commands and paths,
 * Ctrl-C that stops a transfer and comes back to the prompt, and leaving
 * with Ctrl-D or two Ctrl-C.
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { clientCommand, startServer, tempDir, throttledProxy, waitFor } from "./helpers.ts";

const hasScript = await new Deno.Command("script", { args: ["--version"], stdout: "null" })
  .output().then((o) => o.success, () => false);

/** A client shell in a pseudo-terminal: type into it, read what the terminal shows. */
function ptyShell(address: string, options: { cwd: string; env: Record<string, string> }) {
  const quoted = clientCommand(address, []).map((w) => `'${w.replaceAll("'", `'\\''`)}'`);
  const child = new Deno.Command("script", {
    // `exec`: the client is the terminal's foreground process itself, as when a user starts it.
    // Through a shell that waits for it (dash, script's default without $SHELL), Ctrl-C would
    // also reach that shell, which then ends with 130 whatever the client does.
    args: ["-qfec", `exec ${quoted.join(" ")}`, "/dev/null"],
    cwd: options.cwd,
    env: { NO_COLOR: "1", TERM: "xterm", ...options.env },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  let screen = "";
  const reading = (async () => {
    for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) screen += text;
  })();
  return {
    /** Everything shown so far, escape sequences removed. */
    get screen() {
      // deno-lint-ignore no-control-regex
      return screen.replace(/\x1b\[[0-9;]*[A-Za-z]/g, "").replaceAll("\r", "");
    },
    async type(keys: string) {
      await writer.write(new TextEncoder().encode(keys));
    },
    async until(pattern: RegExp, what: string) {
      await waitFor(() => pattern.test(this.screen), 15_000, what).catch((err) => {
        throw new Error(
          `${err.message}; the screen ends with ${JSON.stringify(this.screen.slice(-400))}`,
        );
      });
    },
    /** Wait for the shell to leave (it was told to), then for the terminal to close. */
    async end() {
      // A shell that does not leave fails the test in seconds, rather than hanging the suite.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          child.kill("SIGKILL");
          reject(new Error(`the shell did not leave; the screen: ${this.screen.slice(-400)}`));
        }, 20_000);
      });
      const status = await Promise.race([child.status, late]).finally(() => clearTimeout(timer));
      await writer.close().catch(() => {});
      await reading;
      return status.code;
    },
  };
}

Deno.test({
  name:
    "the shell in a terminal: editing, history, completion, Ctrl-C stops a transfer, Ctrl-D leaves",
  ignore: !hasScript,
  async fn() {
    await using server = await startServer();
    await using home = await tempDir();
    await Deno.mkdir(join(server.root, "releases"));
    await Deno.writeTextFile(join(server.root, "releases", "app-1.0.tar.gz"), "app");
    await Deno.writeFile(join(server.root, "big.bin"), new Uint8Array(64 * 1024 * 1024));
    const env = { XDG_DATA_HOME: join(home.path, "data") };

    const one = ptyShell(server.address, { cwd: home.path, env });
    await one.until(/ferry> $/, "the prompt");
    // Line editing: type without the first letter, go home (Ctrl-A), insert it, run.
    await one.type("s releases");
    await one.type("\x01l\r");
    await one.until(/ferry> ls releases\n[\s\S]*app-1\.0\.tar\.gz\n[\s\S]*ferry> $/, "ls ran");
    await one.type("ls -l rel\t");
    await one.until(/ls -l releases\/$/m, "the remote directory completed");
    await one.type("app\t");
    await one.until(/ls -l releases\/app-1\.0\.tar\.gz$/m, "the remote file completed");
    await one.type("\r");
    await one.until(/-rw.* app-1\.0\.tar\.gz/, "the listing");
    await one.type("ma\t");
    await one.type("\x15"); // Ctrl-U: drop the line
    await one.type("\x1b[A\r"); // Up: the last command again
    // The recalled command's own listing, then the prompt: a redrawn empty prompt (after Ctrl-U)
    // must not pass for it, or Ctrl-D would arrive while the command runs.
    await one.until(
      /-rw[^\n]*app-1\.0\.tar\.gz\n[\s\S]*-rw[^\n]*app-1\.0\.tar\.gz\nferry> $/,
      "history recalled",
    );
    await one.type("\x04"); // Ctrl-D
    assert.equal(await one.end(), 0, one.screen);
    const history = join(env.XDG_DATA_HOME, "ferry", "history");
    assert.equal((await Deno.stat(history)).mode! & 0o777, 0o600);
    const saved = (await Deno.readTextFile(history)).trim().split("\n");
    assert.equal(saved.at(-1), "ls -l releases/app-1.0.tar.gz");

    // A later session has the history; Ctrl-C stops a slow download and the shell goes on.
    const proxy = throttledProxy(server.port, 2 * 1024 * 1024);
    try {
      const two = ptyShell(proxy.address, { cwd: home.path, env });
      await two.until(/ferry> $/, "the prompt");
      await two.type("\x1b[A");
      await two.until(/ferry> ls -l releases\/app-1\.0\.tar\.gz$/m, "history from before");
      await two.type("\x15get big.bin\r");
      // Some of it arrives through the slow proxy, then Ctrl-C.
      await new Promise((r) => setTimeout(r, 2000));
      await two.type("\x03");
      await two.until(/interrupted; kept .* of big\.bin: run the same command again/, "the hint");
      await two.until(/\nferry> $/, "the prompt again");
      await two.type("ls\r");
      await two.until(/releases\/\n[\s\S]*ferry> $/, "the shell still works");
      await two.type("\x03");
      await two.until(/Ctrl-C again, or Ctrl-D, to leave/, "the first Ctrl-C says how to leave");
      await two.type("\x03");
      assert.equal(await two.end(), 0);
    } finally {
      await proxy.close();
    }
  },
});
