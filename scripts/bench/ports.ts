/**
 * Loopback ports: picking a free one, waiting for a daemon to listen on it.
 *
 * @module
 */

/** A loopback port that nothing listens on right now. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
}

/** Wait until a connection to `port` succeeds; throws after about 5 s. */
export async function waitPort(port: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return;
    } catch {
      await sleep(25);
    }
  }
  throw new Error(`nothing listens on ${port}`);
}

/**
 * Wait until something listens on `port` without connecting to it (socat serves one
 * connection); throws after about 5 s.
 */
export async function waitPortListening(port: number): Promise<void> {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  for (let i = 0; i < 200; i++) {
    const tcp = await Deno.readTextFile("/proc/net/tcp").catch(() => "");
    if (tcp.split("\n").some((l) => l.includes(`:${hex} 00000000:0000 0A`))) return;
    await sleep(25);
  }
  throw new Error(`nothing listens on ${port}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
