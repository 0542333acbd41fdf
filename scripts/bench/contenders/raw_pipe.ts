/**
 * The limit: file -> TCP -> file with no protocol at all.
 *
 * @module
 */

import { join } from "node:path";
import type { Fixtures } from "../fixtures.ts";
import { MIB, timed } from "../measure.ts";
import { freePort, waitPortListening } from "../ports.ts";
import { spawnQuiet, which } from "../system.ts";
import type { Workspace } from "../workspace.ts";
import type { Contender } from "./contender.ts";

/** The raw pipe: socat where installed, else (with a note) a minimal pipe in Deno. */
export function rawPipe(workspace: Workspace, fixtures: Fixtures): Contender {
  const socat = which("socat");
  if (socat) return socatPipe(socat, fixtures);
  workspace.note(
    "socat not installed: the raw pipe is a minimal Deno pipe with a reused 1 MiB buffer.",
  );
  return denoPipe(fixtures);
}

function socatPipe(socat: string, fixtures: Fixtures): Contender {
  return {
    name: "raw pipe (socat)",
    async putFile() {
      const port = freePort();
      const out = join(await fixtures.freshDst(), "big.bin");
      const sink = spawnQuiet(socat, [
        "-u",
        "-b",
        "1048576",
        `TCP-LISTEN:${port},reuseaddr`,
        `OPEN:${out},creat,trunc`,
      ]);
      await waitPortListening(port);
      const t = await timed(socat, [
        "-u",
        "-b",
        "1048576",
        `OPEN:${fixtures.file}`,
        `TCP:127.0.0.1:${port}`,
      ]);
      await sink.status;
      return t;
    },
  };
}

function denoPipe(fixtures: Fixtures): Contender {
  return {
    name: "raw pipe (Deno)",
    async putFile() {
      const out = join(await fixtures.freshDst(), "big.bin");
      const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const t0 = performance.now();
      const recv = (async () => {
        const conn = await listener.accept();
        using f = await Deno.open(out, { write: true, create: true, truncate: true });
        const buf = new Uint8Array(MIB);
        for (;;) {
          const n = await conn.read(buf);
          if (n === null) break;
          let c = buf.subarray(0, n);
          while (c.length) c = c.subarray(f.writeSync(c));
        }
        conn.close();
      })();
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
      using f = await Deno.open(fixtures.file);
      await f.readable.pipeTo(conn.writable);
      await recv;
      listener.close();
      return { seconds: (performance.now() - t0) / 1000 };
    },
  };
}
