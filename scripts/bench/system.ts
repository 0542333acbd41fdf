/**
 * Finding and running the programs the benchmark drives.
 *
 * @module
 */

import { join } from "node:path";
import { waitPort } from "./ports.ts";
import type { Workspace } from "./workspace.ts";

/** The path of `cmd` on PATH, or in /usr/sbin or /sbin (where sshd lives); undefined if none. */
export function which(cmd: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":").concat(["/usr/sbin", "/sbin"])) {
    try {
      const p = join(dir, cmd);
      if (Deno.statSync(p).isFile) return p;
    } catch {
      // Not in this directory.
    }
  }
  return undefined;
}

/** Run `cmd` to completion, output discarded; throws, with its stderr, when it fails. */
export async function run(cmd: string, args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** Start `cmd` with its output discarded, without waiting for it. */
export function spawnQuiet(cmd: string, args: string[]): Deno.ChildProcess {
  return new Deno.Command(cmd, { args, stdout: "null", stderr: "null" }).spawn();
}

/**
 * Start a daemon that will listen on `port`, have `workspace` stop it (SIGTERM, then
 * wait for it to exit) at the end, and wait until it accepts connections.
 */
export async function startDaemon(
  workspace: Workspace,
  cmd: string,
  args: string[],
  port: number,
): Promise<Deno.ChildProcess> {
  const daemon = spawnQuiet(cmd, args);
  workspace.onCleanup(async () => {
    try {
      daemon.kill("SIGTERM");
    } finally {
      await daemon.status;
    }
  });
  await waitPort(port);
  return daemon;
}
