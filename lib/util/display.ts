/**
 * Text from peers and disks made safe to print: control characters,
 * escape sequences, bidi overrides and malformed Unicode are shown as
 * escapes, never raw, in listings, messages and logs.
 *
 * @module
 */

// C0 controls, DEL and C1 controls.
// deno-lint-ignore no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;
// Bidirectional overrides and isolates: legal in names, but they reorder what a terminal shows.
const BIDI = /[\u202a-\u202e\u2066-\u2069]/;
// Anything escapeName rewrites, but for lone surrogates.
// deno-lint-ignore no-control-regex
const ESCAPED = /[\\\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

/**
 * Make text from a peer safe to print: control characters and bidi
 * overrides become escapes; everything else, backslashes included, is kept
 * (a peer's message may hold names it escaped already).
 *
 * @example
 * ```ts
 * import { escapeControls } from "./display.ts";
 * console.assert(escapeControls("a\\b\u001b") === "a\\b\\x1b");
 * ```
 */
export function escapeControls(text: string): string {
  return escapeName(text).replaceAll("\\\\", "\\");
}

/**
 * Make a name safe to print: control characters, escape sequences,
 * backslashes and malformed Unicode are shown as escapes, never raw.
 *
 * @example
 * ```ts
 * import { escapeName } from "./display.ts";
 * console.assert(escapeName("a\u001b[2Jb") === "a\\x1b[2Jb");
 * ```
 */
export function escapeName(name: string): string {
  // Nearly every name needs no escape; one regex over it is cheaper than two per character.
  if (!ESCAPED.test(name) && name.isWellFormed()) return name;
  let out = "";
  for (const ch of name) {
    const code = ch.codePointAt(0)!;
    if (ch === "\\") out += "\\\\";
    else if (CONTROL.test(ch)) out += `\\x${code.toString(16).padStart(2, "0")}`;
    else if (BIDI.test(ch)) out += `\\u${code.toString(16)}`;
    else if (code >= 0xd800 && code <= 0xdfff) out += `\\u${code.toString(16)}`;
    else out += ch;
  }
  return out;
}
