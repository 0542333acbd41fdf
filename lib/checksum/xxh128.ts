/**
 * XXH3-128, the checksum rsync 3.2+ negotiates by default, from one of two
 * implementations that give the same values (the canonical big-endian form
 * `xxhsum -H2` prints):
 *
 * - **native**: `xxhash-addon`, the xxHash C library as a Node-API addon
 *   with prebuilt binaries, about 19 GiB/s on one thread here. Loading it
 *   needs the `--allow-ffi` permission (asked for, never prompted).
 * - **wasm**: `hash-wasm`'s WebAssembly build, about 3.4 GiB/s. It needs
 *   no permission, so it is what runs when the addon cannot load: no
 *   `--allow-ffi`, a platform without a prebuilt binary, or a compiled
 *   binary that could not embed it. `FERRY_XXH128=wasm` chooses it.
 *
 * Neither is loaded until {@linkcode loadXxh128} is awaited, which a
 * session does once it knows XXH3-128 is its checksum: a `ferry ls` pays
 * for neither.
 *
 * @module
 */

// The WebAssembly build is imported when chosen: evaluating hash-wasm (1.7 MB of script) cost
// every ferry command 3-6 ms of start-up, the addon loaded or not.
import type { IHasher } from "hash-wasm";
import { granted } from "../util/permissions.ts";
import type { Digest, Hasher } from "./types.ts";

/** Which implementation computes XXH3-128 in this process. */
export type Xxh128Implementation = "native" | "wasm";

/** The part of `xxhash-addon`'s streaming class that ferry uses. */
interface NativeState {
  update(bytes: Uint8Array): void;
  /** The canonical 16 bytes of everything fed so far; the state goes on. */
  digest(): Uint8Array;
  reset(): void;
}

interface NativeModule {
  XXHash128: {
    new (seed: Uint8Array): NativeState;
    /** XXH3-128 of `bytes` at once, seed 0. */
    hash(bytes: Uint8Array): Uint8Array;
  };
}

/** A zero seed: plain XXH3-128, as xxhsum computes it. */
const SEED = new Uint8Array(8);

/** Native states kept for reuse: creating one costs about 15 µs, reusing one 1 µs. */
const POOL_LIMIT = 64;

let loading: Promise<Xxh128Implementation> | undefined;
let native: NativeModule | undefined;
let wasm: IHasher | undefined;
let fresh: Uint8Array | undefined;
const pool: NativeState[] = [];

/**
 * Load XXH3-128: the native addon when it loads, WebAssembly otherwise.
 * Resolves to the implementation chosen; later calls return the same.
 *
 * @example
 * ```ts
 * import { loadXxh128, xxh128Hasher } from "./xxh128.ts";
 * await loadXxh128();
 * const h = xxh128Hasher();
 * h.update(new TextEncoder().encode("abc"));
 * console.assert(h.digest().hex === "06b05ab6733a618578af5f94892f3950");
 * ```
 */
export function loadXxh128(): Promise<Xxh128Implementation> {
  return loading ??= (async () => {
    native = await loadNative();
    if (native) return "native";
    const { createXXHash128 } = await import("hash-wasm");
    wasm = await createXXHash128();
    wasm.init();
    fresh = wasm.save();
    return "wasm";
  })();
}

/** The implementation in use, once {@linkcode loadXxh128} has settled. */
export function xxh128Implementation(): Xxh128Implementation | undefined {
  return native ? "native" : wasm ? "wasm" : undefined;
}

async function loadNative(): Promise<NativeModule | undefined> {
  if (!granted("ffi")) return undefined;
  if (granted({ name: "env", variable: "FERRY_XXH128" })) {
    if (Deno.env.get("FERRY_XXH128") === "wasm") return undefined;
  }
  try {
    const mod = await import("xxhash-addon");
    const found = ((mod as { default?: unknown }).default ?? mod) as Partial<NativeModule>;
    if (typeof found.XXHash128 !== "function") return undefined;
    // One known value, so that a broken build is never trusted with a transfer.
    const probe = new found.XXHash128(SEED);
    probe.update(new TextEncoder().encode("abc"));
    return hex(probe.digest()) === "06b05ab6733a618578af5f94892f3950"
      ? found as NativeModule
      : undefined;
  } catch {
    // No prebuilt binary for this platform, or it cannot be loaded here: WebAssembly it is.
    return undefined;
  }
}

const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, "0"));

function hex(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i++) out += HEX[bytes[i]];
  return out;
}

function digestOf(text: string): Digest {
  return { algorithm: "xxh128", hex: text };
}

/** XXH3-128 through the addon: one native state, back to the pool once digested. */
class NativeXxh128 implements Hasher {
  readonly algorithm = "xxh128" as const;
  /** Undefined once digested: the state is then another hasher's, and any use throws. */
  #state: NativeState | undefined;

  constructor() {
    this.#state = pool.pop() ?? new native!.XXHash128(SEED);
  }

  update(bytes: Uint8Array): void {
    this.#live().update(bytes);
  }

  peek(): Digest {
    return digestOf(hex(this.#live().digest()));
  }

  digest(): Digest {
    const state = this.#live();
    const digest = digestOf(hex(state.digest()));
    this.#state = undefined;
    state.reset();
    if (pool.length < POOL_LIMIT) pool.push(state);
    return digest;
  }

  #live(): NativeState {
    if (!this.#state) throw new Error("this XXH3-128 hasher was already digested");
    return this.#state;
  }
}

/**
 * The hasher whose state is in the one WebAssembly instance. Every hasher
 * shares that instance (creating one is asynchronous, and a hasher must be
 * made at once): a hasher's state is saved out of it only when another
 * hasher needs it, so a single transfer never pays for the sharing.
 */
let owner: WasmXxh128 | undefined;

/** XXH3-128 through WebAssembly, its state swapped in and out of the shared instance. */
class WasmXxh128 implements Hasher {
  readonly algorithm = "xxh128" as const;
  /** This hasher's state while another one holds the instance. */
  #saved: Uint8Array | undefined = fresh;
  #done = false;

  update(bytes: Uint8Array): void {
    this.#own().update(bytes);
  }

  peek(): Digest {
    const instance = this.#own();
    const state = instance.save();
    const digest = digestOf(instance.digest("hex"));
    instance.load(state);
    return digest;
  }

  digest(): Digest {
    const digest = digestOf(this.#own().digest("hex"));
    owner = undefined;
    this.#done = true;
    return digest;
  }

  #own(): IHasher {
    if (this.#done) throw new Error("this XXH3-128 hasher was already digested");
    const instance = wasm!;
    if (owner !== this) {
      if (owner) owner.#saved = instance.save();
      instance.load(this.#saved!);
      this.#saved = undefined;
      owner = this;
    }
    return instance;
  }
}

/**
 * XXH3-128 of `bytes` at once, as lowercase hex: for a small file, cheaper
 * than a running hasher. {@linkcode loadXxh128} must have settled.
 *
 * @example
 * ```ts
 * import { loadXxh128, xxh128Hex } from "./xxh128.ts";
 * await loadXxh128();
 * console.assert(xxh128Hex(new Uint8Array(0)) === "99aa06d3014798d86001c324468d497f");
 * ```
 */
export function xxh128Hex(bytes: Uint8Array): string {
  if (native) return hex(native.XXHash128.hash(bytes));
  const h = xxh128Hasher();
  h.update(bytes);
  return h.digest().hex;
}

/**
 * A running XXH3-128. {@linkcode loadXxh128} must have settled.
 *
 * @example
 * ```ts
 * import { loadXxh128, xxh128Hasher } from "./xxh128.ts";
 * await loadXxh128();
 * console.assert(xxh128Hasher().digest().hex === "99aa06d3014798d86001c324468d497f");
 * ```
 */
export function xxh128Hasher(): Hasher {
  if (native) return new NativeXxh128();
  if (wasm) return new WasmXxh128();
  throw new Error("XXH3-128 is not loaded: await loadXxh128() first");
}
