/**
 * Node's built-in modules that the client's common paths can do without,
 * loaded on first use. The first `node:` module a program imports loads
 * Deno's Node compatibility layer, 30-40 ms of every start (see
 * docs/performance.md, "Start-up"), whichever module it is; `ferry ls`,
 * `get` and `put` need none of them where Deno's own API or the C library
 * (`lib/fs/libc.ts`) serve. So they are reached here, synchronously, through
 * `process.getBuiltinModule` (Node's API for exactly this), and only the
 * paths that need them pay: a failure to report, TLS, compression, another
 * system. The types are imported as types only, which loads nothing.
 *
 * @module
 */

import type * as NodeCrypto from "node:crypto";
import type * as NodeFs from "node:fs";
import type * as NodeTls from "node:tls";
import type * as NodeV8 from "node:v8";
import type * as NodeVm from "node:vm";
import type * as NodeZlib from "node:zlib";

/** The part of Node's `process` global this needs (Deno provides it). */
interface ProcessWithBuiltins {
  getBuiltinModule(id: string): unknown;
}

/** The built-in module `id`, loading Node's layer if nothing has yet. */
function builtin<T>(id: string): T {
  const process = (globalThis as { process?: ProcessWithBuiltins }).process;
  if (typeof process?.getBuiltinModule !== "function") {
    throw new Error(`${id} cannot be loaded: this runtime has no process.getBuiltinModule`);
  }
  return process.getBuiltinModule(id) as T;
}

/** A getter of the built-in module `id`, which loads it at its first call. */
function lazily<T>(id: string): () => T {
  let module: T | undefined;
  return () => module ??= builtin<T>(id);
}

/**
 * `node:fs`, loaded on first use.
 *
 * @example
 * ```ts
 * import { nodeFs } from "./node_builtins.ts";
 * console.assert(typeof nodeFs().openSync === "function");
 * ```
 */
export const nodeFs: () => typeof NodeFs = lazily("node:fs");

/** `node:crypto`, loaded on first use (see {@linkcode nodeFs}). */
export const nodeCrypto: () => typeof NodeCrypto = lazily("node:crypto");

/** `node:zlib`, loaded on first use (see {@linkcode nodeFs}). */
export const nodeZlib: () => typeof NodeZlib = lazily("node:zlib");

/** `node:tls`, loaded on first use (see {@linkcode nodeFs}). */
export const nodeTls: () => typeof NodeTls = lazily("node:tls");

/** `node:v8`, loaded on first use (see {@linkcode nodeFs}). */
export const nodeV8: () => typeof NodeV8 = lazily("node:v8");

/** `node:vm`, loaded on first use (see {@linkcode nodeFs}). */
export const nodeVm: () => typeof NodeVm = lazily("node:vm");
