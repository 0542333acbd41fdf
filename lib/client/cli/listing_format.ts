/**
 * How listings look: `ls -l` lines and their pieces. Pure; no I/O.
 *
 * @module
 */

import type { Entry } from "../../commands.ts";
import { escapeName } from "../../util/display.ts";

const TYPE_CHAR: Record<Entry["type"], string> = { file: "-", dir: "d", symlink: "l", other: "?" };

/**
 * Permission bits as `ls -l` shows them.
 *
 * @example
 * ```ts
 * import { permissions } from "./listing_format.ts";
 * console.assert(permissions(0o754) === "rwxr-xr--");
 * ```
 */
export function permissions(mode: number): string {
  const bits = "rwxrwxrwx";
  let out = "";
  for (let i = 0; i < 9; i++) out += mode & (1 << (8 - i)) ? bits[i] : "-";
  return out;
}

/**
 * One line of a long listing: type and mode, size, modification time (UTC), escaped name.
 *
 * @example
 * ```ts
 * import { longLine } from "./listing_format.ts";
 * const line = longLine({ name: "a.txt", type: "file", size: 5, mtime: 0, mode: 0o644 });
 * console.assert(line === "-rw-r--r--            5 1970-01-01 00:00 a.txt");
 * ```
 */
export function longLine(e: Entry): string {
  const time = new Date(e.mtime).toISOString().slice(0, 16).replace("T", " ");
  const size = String(e.size).padStart(12);
  return `${TYPE_CHAR[e.type]}${permissions(e.mode)} ${size} ${time} ${escapeName(e.name)}`;
}

/** Order entries by name, bytewise by UTF-16 code unit, as a stable listing order. */
export function byName(a: Entry, b: Entry): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : 0;
}
