/**
 * UTF-8 sizes without encoding. Names and paths are measured against byte
 * limits on every request; `TextEncoder.encode` would allocate a buffer in
 * native code only to read its length.
 *
 * @module
 */

/**
 * The number of bytes `text` takes in UTF-8, as `TextEncoder` would encode it
 * (a lone surrogate becomes U+FFFD, 3 bytes).
 *
 * @example
 * ```ts
 * import { utf8Length } from "./utf8.ts";
 * console.assert(utf8Length("é/🦕") === 7);
 * ```
 */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) {
      bytes += 1;
    } else if (c >= 0xd800 && c < 0xdc00 && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      // A surrogate pair: two code units, four bytes.
      bytes += 2;
      i++;
    } else {
      bytes += 2;
    }
  }
  return bytes;
}
