/**
 * An experiment, not used by ferry (see docs/http.md, "Uploads"): tried as
 * `hasher("sha256", size)` for every Verifier, it took curl's 1 GiB upload
 * from 2.15-2.20 s to 1.90-2.15 s, the thread's hashing then being the
 * limit (the receiving thread waited 0.5 s a GiB for room in the ring),
 * while the thread's own V8 isolate added 57 MiB to ferryd's resident
 * memory, past the 150 MiB that a 1 GiB upload may take.
 *
 * SHA-256 of a large stream on a thread of its own. SHA-256 runs at about
 * 1.1-1.6 GiB/s here, a second of CPU a GiB on the thread that also parses
 * and writes an upload; on another core it costs the receiving thread only a
 * copy into shared memory. The {@linkcode Hasher} stays synchronous: the
 * owner copies each chunk into a ring of slots the thread hashes, waits
 * (Atomics.wait) only when the ring is full, and waits for the digest at the
 * end. Threads are started once and kept for the next large stream.
 *
 * @module
 */

import { Worker } from "node:worker_threads";
import type { Hasher } from "../../../lib/checksum/types.ts";

/** Slots in a ring, and bytes a slot: 8 MiB a thread in flight at most. */
export const SLOTS = 16;
const SLOT_BYTES = 512 * 1024;

/** Where each word of a ring's control block is. */
export const CTRL = {
  /** Slots published by the owner (wraps at 2^32). */
  written: 0,
  /** Slots hashed by the thread. */
  consumed: 1,
  /** What the owner asks once every slot is hashed: see {@linkcode COMMAND}. */
  command: 2,
  /** Changed by the owner whenever it publishes or asks: what the thread sleeps on. */
  signal: 3,
  /** Then, a slot's byte count each. */
  lengths: 4,
} as const;

/** The owner's requests. */
export const COMMAND = { none: 0, peek: 1, digest: 2, reset: 3 } as const;

/** A ring's shared memory, as posted to its thread. */
export interface Ring {
  ctrl: SharedArrayBuffer;
  data: SharedArrayBuffer;
  result: SharedArrayBuffer;
}

/** Typed views of a ring. */
export function ringViews(ring: Ring): {
  ctrl: Int32Array;
  slots: Uint8Array[];
  result: Uint8Array;
} {
  return {
    ctrl: new Int32Array(ring.ctrl),
    slots: Array.from(
      { length: SLOTS },
      (_, i) => new Uint8Array(ring.data, i * SLOT_BYTES, SLOT_BYTES),
    ),
    result: new Uint8Array(ring.result),
  };
}

/** A started thread and its ring, free or lent to one hasher. */
interface Lane {
  worker: Worker;
  ring: Ring;
}

const idle: Lane[] = [];
let started = 0;

/**
 * At most this many threads: one a core beyond the main thread's, and never
 * more than two (each holds 8 MiB of ring).
 */
const MAX_THREADS = Math.max(0, Math.min(2, (navigator.hardwareConcurrency ?? 1) - 1));

function lane(): Lane | undefined {
  const free = idle.pop();
  if (free) return free;
  if (started >= MAX_THREADS) return undefined;
  started++;
  const ring: Ring = {
    ctrl: new SharedArrayBuffer((CTRL.lengths + SLOTS) * 4),
    data: new SharedArrayBuffer(SLOTS * SLOT_BYTES),
    result: new SharedArrayBuffer(32),
  };
  const worker = new Worker(new URL("./sha256_worker.ts", import.meta.url));
  // A thread kept for later must not keep the process alive.
  worker.unref();
  worker.postMessage(ring);
  return { worker, ring };
}

/**
 * A hasher dropped before its digest (a failed transfer) gives its thread
 * back when collected: the thread forgets what it hashed, and is free again.
 */
const dropped = new FinalizationRegistry<Lane>((lane) => {
  const ctrl = new Int32Array(lane.ring.ctrl);
  Atomics.store(ctrl, CTRL.command, COMMAND.reset);
  Atomics.add(ctrl, CTRL.signal, 1);
  Atomics.notify(ctrl, CTRL.signal);
  while (Atomics.load(ctrl, CTRL.command) !== COMMAND.none) {
    Atomics.wait(ctrl, CTRL.command, COMMAND.reset);
  }
  idle.push(lane);
});

/** SHA-256 hashed by a thread of its own: see the module's description. */
class ThreadSha256 implements Hasher {
  readonly algorithm = "sha256" as const;
  #lane: Lane | undefined;
  readonly #ctrl: Int32Array;
  readonly #slots: Uint8Array[];
  readonly #result: Uint8Array;
  #written = 0;
  /** Bytes in the slot being filled (not yet published). */
  #filling = 0;

  constructor(lane: Lane) {
    this.#lane = lane;
    ({ ctrl: this.#ctrl, slots: this.#slots, result: this.#result } = ringViews(lane.ring));
    this.#written = Atomics.load(this.#ctrl, CTRL.written);
    dropped.register(this, lane, this);
  }

  update(bytes: Uint8Array): void {
    for (let at = 0; at < bytes.length;) {
      const slot = this.#written % SLOTS;
      if (this.#filling === 0) this.#waitForRoom();
      const n = Math.min(SLOT_BYTES - this.#filling, bytes.length - at);
      this.#slots[slot].set(bytes.subarray(at, at + n), this.#filling);
      this.#filling += n;
      at += n;
      if (this.#filling === SLOT_BYTES) this.#publish();
    }
  }

  peek(): { algorithm: "sha256"; hex: string } {
    return { algorithm: "sha256", hex: this.#ask(COMMAND.peek) };
  }

  digest(): { algorithm: "sha256"; hex: string } {
    const hex = this.#ask(COMMAND.digest);
    dropped.unregister(this);
    idle.push(this.#lane!);
    this.#lane = undefined;
    return { algorithm: "sha256", hex };
  }

  /** Wait until the slot about to be filled has been hashed. */
  #waitForRoom(): void {
    for (;;) {
      const consumed = Atomics.load(this.#ctrl, CTRL.consumed);
      if (((this.#written - consumed) | 0) < SLOTS) return;
      Atomics.wait(this.#ctrl, CTRL.consumed, consumed);
    }
  }

  #publish(): void {
    const slot = this.#written % SLOTS;
    Atomics.store(this.#ctrl, CTRL.lengths + slot, this.#filling);
    this.#filling = 0;
    this.#written = (this.#written + 1) | 0;
    Atomics.store(this.#ctrl, CTRL.written, this.#written);
    this.#signal();
  }

  #signal(): void {
    Atomics.add(this.#ctrl, CTRL.signal, 1);
    Atomics.notify(this.#ctrl, CTRL.signal);
  }

  /** Publish what is filled, ask, and wait for the answer. */
  #ask(command: number): string {
    if (!this.#lane) throw new Error("this SHA-256 is used up");
    if (this.#filling > 0) this.#publish();
    Atomics.store(this.#ctrl, CTRL.command, command);
    this.#signal();
    while (Atomics.load(this.#ctrl, CTRL.command) !== COMMAND.none) {
      Atomics.wait(this.#ctrl, CTRL.command, command);
    }
    return Array.from(this.#result, (b) => b.toString(16).padStart(2, "0")).join("");
  }
}

/**
 * A running SHA-256 on a thread of its own, for a stream of `size` bytes:
 * undefined when a thread does not pay (under {@linkcode THREAD_MIN_BYTES},
 * or one core) or none is free; the caller hashes on its own thread then.
 * The hasher gives its thread back when its digest is taken: one that is
 * dropped before keeps it.
 */
export function threadSha256(size: number | undefined): Hasher | undefined {
  if (size === undefined || size < THREAD_MIN_BYTES) return undefined;
  const free = lane();
  return free ? new ThreadSha256(free) : undefined;
}

/** Streams smaller than this are hashed where they arrive: a thread's start costs more. */
export const THREAD_MIN_BYTES = 64 * 1024 * 1024;
