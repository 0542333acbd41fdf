/**
 * The thread side of `sha256_thread.ts`: hashes the slots its owner
 * publishes in a shared ring, and answers the owner's commands through the
 * same memory. Between slots it blocks (Atomics.wait); once started it never
 * returns to its event loop: nothing but shared memory reaches it.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { parentPort } from "node:worker_threads";
import { COMMAND, CTRL, type Ring, ringViews, SLOTS } from "./sha256_thread.ts";

parentPort!.once("message", (ring: Ring) => serve(ring));

function serve(ring: Ring): never {
  const { ctrl, slots, result } = ringViews(ring);
  let hash: Hash = createHash("sha256");
  let consumed = 0;
  for (;;) {
    // Read the signal first: whatever the owner does after this read changes it, so the wait
    // below returns at once instead of sleeping through it.
    const signal = Atomics.load(ctrl, CTRL.signal);
    const written = Atomics.load(ctrl, CTRL.written);
    if (written !== consumed) {
      const slot = consumed % SLOTS;
      hash.update(slots[slot].subarray(0, Atomics.load(ctrl, CTRL.lengths + slot)));
      consumed = (consumed + 1) | 0;
      Atomics.store(ctrl, CTRL.consumed, consumed);
      Atomics.notify(ctrl, CTRL.consumed);
      continue;
    }
    const command = Atomics.load(ctrl, CTRL.command);
    if (command !== COMMAND.none) {
      // The owner publishes every slot before it asks: all of them are hashed by now.
      if (command === COMMAND.peek) result.set(hash.copy().digest());
      if (command === COMMAND.digest) result.set(hash.digest());
      if (command !== COMMAND.peek) hash = createHash("sha256");
      Atomics.store(ctrl, CTRL.command, COMMAND.none);
      Atomics.notify(ctrl, CTRL.command);
      continue;
    }
    Atomics.wait(ctrl, CTRL.signal, signal);
  }
}
