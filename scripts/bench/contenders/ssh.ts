/**
 * scp and sftp through a private sshd on loopback, aes128-gcm.
 *
 * @module
 */

import { join } from "node:path";
import type { Fixtures } from "../fixtures.ts";
import { timed } from "../measure.ts";
import { freePort } from "../ports.ts";
import { run, startDaemon, which } from "../system.ts";
import type { Workspace } from "../workspace.ts";
import type { Contender } from "./contender.ts";

const SFTP_SERVERS = ["/usr/lib/openssh/sftp-server", "/usr/libexec/sftp-server"];

/**
 * Start a private sshd in `workspace` and return scp, and sftp where its server is
 * installed; none, with a note, when sshd, scp or ssh-keygen is missing or we are not root.
 */
export async function sshContenders(
  workspace: Workspace,
  fixtures: Fixtures,
): Promise<Contender[]> {
  const sshd = which("sshd");
  const scp = which("scp");
  const sftp = which("sftp");
  const keygen = which("ssh-keygen");
  if (!(sshd && scp && keygen && Deno.uid?.() === 0)) {
    workspace.note("sshd/scp not installed (or not root): no scp or sftp figures.");
    return [];
  }
  const port = freePort();
  const dir = join(workspace.dir, "ssh");
  await Deno.mkdir(dir);
  await run(keygen, ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "host")]);
  await run(keygen, ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "user")]);
  await Deno.copyFile(join(dir, "user.pub"), join(dir, "authorized_keys"));
  const sftpServer = SFTP_SERVERS.find(isFile);
  await Deno.writeTextFile(
    join(dir, "sshd_config"),
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${join(dir, "host")}`,
      `AuthorizedKeysFile ${join(dir, "authorized_keys")}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      "PermitRootLogin prohibit-password",
      sftpServer ? `Subsystem sftp ${sftpServer}` : "",
    ].join("\n") + "\n",
  );
  await Deno.mkdir("/run/sshd", { recursive: true }).catch(() => {});
  await startDaemon(workspace, sshd, ["-D", "-e", "-f", join(dir, "sshd_config")], port);
  const sshOpts = [
    "-i",
    join(dir, "user"),
    "-o",
    "StrictHostKeyChecking=no",
    "-o",
    "UserKnownHostsFile=/dev/null",
    "-o",
    "LogLevel=ERROR",
    "-c",
    "aes128-gcm@openssh.com",
  ];
  const remoteDir = join(workspace.dir, "scp-root");
  await Deno.mkdir(remoteDir);
  const remote = `root@127.0.0.1:${remoteDir}`;
  const copy = (flags: string[], from: string, to: string) =>
    timed(scp, [...sshOpts, ...flags, "-P", String(port), from, to]);
  let tree = "";
  let text = "";
  const contenders: Contender[] = [{
    name: "scp",
    putFile: () => copy([], fixtures.file, `${remote}/big.bin`),
    async getFile() {
      return await copy([], `${remote}/big.bin`, join(await fixtures.freshDst(), "big.bin"));
    },
    putTree() {
      tree = fixtures.newTreeName();
      return copy(["-r"], fixtures.tree, `${remote}/${tree}`);
    },
    getTree: () => copy(["-r"], `${remote}/${tree}`, fixtures.newTreeDst()),
    putText() {
      text = fixtures.newTreeName();
      return copy(["-r", "-C"], fixtures.textTree, `${remote}/${text}`);
    },
    getText: () => copy(["-r", "-C"], `${remote}/${text}`, fixtures.newTreeDst()),
  }];
  if (sftp && sftpServer) {
    const batch = async (commands: string) => {
      const file = join(dir, "batch");
      await Deno.writeTextFile(file, commands);
      return await timed(sftp, [
        ...sshOpts,
        "-q",
        "-b",
        file,
        "-P",
        String(port),
        "root@127.0.0.1",
      ]);
    };
    contenders.push({
      name: "sftp",
      putFile: () => batch(`put ${fixtures.file} ${remoteDir}/big-sftp.bin\n`),
      async getFile() {
        return await batch(
          `get ${remoteDir}/big-sftp.bin ${join(await fixtures.freshDst(), "big.bin")}\n`,
        );
      },
    });
  }
  return contenders;
}

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}
