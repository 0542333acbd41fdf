/**
 * XXH3-128, the checksum rsync 3.2+ negotiates by default, from one of two
 * implementations that give the same values (the canonical big-endian form
 * `xxhsum -H2` prints):
 *
 * - **native**: the xxHash C library that `xxhash-addon` ships prebuilt,
 *   about 17-19 GiB/s on one thread here. On Linux it is called through
 *   Deno's FFI: the prebuilt library exports xxHash's own C functions, and
 *   opening it that way costs about 4 ms, where loading it as a Node-API
 *   addon costs about 25 ms of every command's start (the addon's loader
 *   brings in Deno's Node layer). Elsewhere, or where the file cannot be
 *   opened so (a compiled binary keeps it inside itself), it is loaded as
 *   the Node-API addon it is. Either needs the `--allow-ffi` permission
 *   (asked for, never prompted). `FERRY_XXH128=node-api` chooses the addon.
 * - **wasm**: `hash-wasm`'s WebAssembly build, about 3.4 GiB/s. It needs
 *   no permission, so it is what runs when neither loads: no
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

/** How the native library is reached: its C functions through FFI, or as a Node-API addon. */
export type NativeBinding = "ffi" | "node-api";

/** A running XXH3-128 state of the native library. */
interface NativeState {
  update(bytes: Uint8Array): void;
  /** The canonical form of everything fed so far, in hex; the state goes on. */
  digestHex(): string;
  reset(): void;
  /** Give the state's memory back now (one the pool has no room for); unusable after. */
  free(): void;
}

/** The native library, however reached. */
interface Native {
  binding: NativeBinding;
  /** A fresh state, seed 0. */
  state(): NativeState;
  /** XXH3-128 of `bytes` at once, seed 0, canonical, in hex. */
  hashHex(bytes: Uint8Array): string;
}

/** The part of `xxhash-addon`'s Node-API module that ferry uses. */
interface AddonModule {
  XXHash128: {
    new (seed: Uint8Array): {
      update(bytes: Uint8Array): void;
      /** The canonical 16 bytes of everything fed so far; the state goes on. */
      digest(): Uint8Array;
      reset(): void;
    };
    /** XXH3-128 of `bytes` at once, seed 0. */
    hash(bytes: Uint8Array): Uint8Array;
  };
}

/** A zero seed: plain XXH3-128, as xxhsum computes it. */
const SEED = new Uint8Array(8);

/** Native states kept for reuse: creating one costs about 15 µs, reusing one 1 µs. */
const POOL_LIMIT = 64;

let loading: Promise<Xxh128Implementation> | undefined;
let native: Native | undefined;
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

/** How the native implementation is reached, when it is the one in use. */
export function xxh128Binding(): NativeBinding | undefined {
  return native?.binding;
}

async function loadNative(): Promise<Native | undefined> {
  if (!granted("ffi")) return undefined;
  let chosen: string | undefined;
  if (granted({ name: "env", variable: "FERRY_XXH128" })) {
    chosen = Deno.env.get("FERRY_XXH128");
    if (chosen === "wasm") return undefined;
  }
  const found = (chosen === "node-api" ? undefined : ffiNative()) ?? await addonNative();
  // One known value, so that a broken build is never trusted with a transfer.
  if (!found) return undefined;
  const probe = found.state();
  probe.update(new TextEncoder().encode("abc"));
  const ok = probe.digestHex() === "06b05ab6733a618578af5f94892f3950" &&
    found.hashHex(new Uint8Array(0)) === "99aa06d3014798d86001c324468d497f";
  return ok ? found : undefined;
}

/** The Node-API addon, or undefined where it does not load. */
async function addonNative(): Promise<Native | undefined> {
  try {
    const mod = await import("xxhash-addon");
    const addon = ((mod as { default?: unknown }).default ?? mod) as Partial<AddonModule>;
    const XXHash128 = addon.XXHash128;
    if (typeof XXHash128 !== "function") return undefined;
    return {
      binding: "node-api",
      state() {
        const state = new XXHash128(SEED);
        return {
          update: (bytes) => state.update(bytes),
          digestHex: () => hex(state.digest()),
          reset: () => state.reset(),
          // The addon's state is the garbage collector's to free.
          free: () => {},
        };
      },
      hashHex: (bytes) => hex(XXHash128.hash(bytes)),
    };
  } catch {
    // No prebuilt binary for this platform, or it cannot be loaded here: WebAssembly it is.
    return undefined;
  }
}

/** The C functions ferry calls, as xxHash declares them (`xxh_x86dispatch.h` for `_dispatch`). */
/**
 * The C functions ferry calls, as xxHash declares them. On x86-64 the
 * `_dispatch` entry points (`xxh_x86dispatch.h`), which pick AVX2 or SSE2 at
 * run time as the addon's own calls do; the arm64 build has only the plain
 * ones (NEON is built in there).
 */
function xxhSymbols(dispatch: boolean) {
  const suffix = dispatch ? "_dispatch" : "";
  return {
    createState: { name: "XXH3_createState", parameters: [], result: "pointer" },
    freeState: { name: "XXH3_freeState", parameters: ["pointer"], result: "i32" },
    reset: { name: "XXH3_128bits_reset", parameters: ["pointer"], result: "i32" },
    update: {
      name: `XXH3_128bits_update${suffix}`,
      parameters: ["pointer", "buffer", "usize"],
      result: "i32",
    },
    digest: {
      name: "XXH3_128bits_digest",
      parameters: ["pointer"],
      result: { struct: ["u64", "u64"] },
    },
    oneShot: {
      name: `XXH3_128bits${suffix}`,
      parameters: ["buffer", "usize"],
      result: { struct: ["u64", "u64"] },
    },
  } as const;
}

/**
 * The addon's prebuilt library opened through FFI: on Linux, where its file
 * is a file on disk (not inside a compiled binary). Undefined otherwise.
 */
function ffiNative(): Native | undefined {
  const arch = ({ x86_64: "x64", aarch64: "arm64" } as Record<string, string>)[Deno.build.arch];
  if (Deno.build.os !== "linux" || !arch || Deno.build.env === "musl") return undefined;
  const symbols = xxhSymbols(arch === "x64");
  let c: Deno.DynamicLibrary<typeof symbols>["symbols"];
  try {
    const where = new URL(
      `prebuilds/linux-${arch}/addon.napi.glibc.node`,
      import.meta.resolve("xxhash-addon"),
    );
    if (where.protocol !== "file:") return undefined;
    c = Deno.dlopen(where, symbols).symbols;
  } catch {
    return undefined;
  }
  // A state lives in C memory: freed when its hasher is dropped undigested (an aborted
  // transfer), or at once when the pool has no room for it.
  const unreached = new FinalizationRegistry<Deno.PointerObject>((p) => void c.freeState(p));
  return {
    binding: "ffi",
    state() {
      const state = c.createState();
      if (state === null) throw new Error("XXH3_createState: out of memory");
      c.reset(state);
      const wrapper: NativeState = {
        update: (bytes) => void c.update(state, bytes, BigInt(bytes.length)),
        digestHex: () => canonicalHex(c.digest(state) as Uint8Array),
        reset: () => void c.reset(state),
        free() {
          unreached.unregister(wrapper);
          c.freeState(state);
        },
      };
      unreached.register(wrapper, state, wrapper);
      return wrapper;
    },
    hashHex: (bytes) => canonicalHex(c.oneShot(bytes, BigInt(bytes.length)) as Uint8Array),
  };
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * The canonical hex of an `XXH128_hash_t` as FFI returns it: `{ low64,
 * high64 }` in host byte order, where the canonical form is high64 then
 * low64, big-endian.
 */
function canonicalHex(hash: Uint8Array): string {
  let out = "";
  if (LITTLE_ENDIAN) { for (let i = 15; i >= 0; i--) out += HEX[hash[i]]; }
  else {
    for (let i = 8; i < 16; i++) out += HEX[hash[i]];
    for (let i = 0; i < 8; i++) out += HEX[hash[i]];
  }
  return out;
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
    this.#state = pool.pop() ?? native!.state();
  }

  update(bytes: Uint8Array): void {
    this.#live().update(bytes);
  }

  peek(): Digest {
    return digestOf(this.#live().digestHex());
  }

  digest(): Digest {
    const state = this.#live();
    const digest = digestOf(state.digestHex());
    this.#state = undefined;
    if (pool.length < POOL_LIMIT) {
      state.reset();
      pool.push(state);
    } else state.free();
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
  if (native) return native.hashHex(bytes);
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
