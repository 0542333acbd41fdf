/**
 * A directory for a browser: an HTML page that lists it, with breadcrumbs,
 * links, sizes and times, and works without JavaScript. Pure: entries in,
 * text out; every name escaped.
 *
 * @module
 */

import type { Entry } from "../../../commands.ts";
import { urlOf } from "./request_path.ts";

/** Escape text for HTML content and attribute values. */
function html(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function size(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${n.toFixed(1)} ${units[i]}`;
}

/** The page's only style: no script, no outside resource (the CSP allows none). */
const STYLE = `
:root { color-scheme: light dark; font-family: system-ui, sans-serif; }
body { max-width: 60rem; margin: 2rem auto; padding: 0 1rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #8884; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
a { text-decoration: none; } a:hover { text-decoration: underline; }`;

/**
 * The HTML listing of the directory `path` (root-relative) holding `entries`.
 *
 * @example
 * ```ts
 * import { listingPage } from "./listing.ts";
 * const page = listingPage("docs", [{ name: "<a>.txt", type: "file", size: 3, mtime: 0, mode: 0o644 }]);
 * console.assert(page.includes("&#60;a&#62;.txt") && !page.includes("<a>.txt"));
 * ```
 */
export function listingPage(path: string, entries: Entry[]): string {
  const parts = path === "" ? [] : path.split("/");
  const crumbs = [
    `<a href="/">root</a>`,
    ...parts.map((part, i) => {
      const href = `${urlOf(parts.slice(0, i + 1).join("/"))}/`;
      return `<a href="${html(href)}">${html(part)}</a>`;
    }),
  ].join(" / ");
  const sorted = [...entries].sort((a, b) =>
    (a.type === "dir" ? 0 : 1) - (b.type === "dir" ? 0 : 1) || (a.name < b.name ? -1 : 1)
  );
  const rows = sorted.map((e) => {
    const full = path === "" ? e.name : `${path}/${e.name}`;
    const dir = e.type === "dir";
    const href = dir ? `${urlOf(full)}/` : urlOf(full);
    const label = html(e.name) + (dir ? "/" : "");
    const link = e.type === "file" || dir ? `<a href="${html(href)}">${label}</a>` : label;
    const download = e.type === "file"
      ? ` <a href="${html(href)}?download" title="download">⤓</a>`
      : "";
    const when = e.mtime ? new Date(e.mtime).toISOString().replace("T", " ").slice(0, 19) : "";
    return `<tr><td>${link}${download}</td><td class="n">${dir ? "" : size(e.size)}</td>` +
      `<td>${when}</td></tr>`;
  }).join("\n");
  const title = html(path === "" ? "/" : `/${path}`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title} · ferry</title><style>${STYLE}</style></head>
<body><nav>${crumbs}</nav>
<table><thead><tr><th>name</th><th>size</th><th>modified (UTC)</th></tr></thead>
<tbody>
${rows}
</tbody></table>
<p><small>${sorted.length} entries · <a href="?json">JSON</a></small></p>
</body></html>
`;
}
