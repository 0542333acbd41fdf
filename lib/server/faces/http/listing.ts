/**
 * Pages for a browser: a directory listing (breadcrumbs, links, sizes,
 * times) that works without JavaScript, and that the UI's script enhances
 * (sorting, filter, uploads, new folder, rename, delete: see
 * `ui_assets.ts`); and the sign-in page. Pure: entries in, text out; every
 * name escaped.
 *
 * @module
 */

import type { Entry } from "../../../commands.ts";
import { urlOf } from "./request_path.ts";
import { UI_PREFIX } from "./ui_assets.ts";

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

/** The page around `main`: the UI's own style and script, nothing from elsewhere. */
function page(title: string, main: string, attributes = ""): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${html(title)} · ferry</title>
<link rel="stylesheet" href="${UI_PREFIX}app.css"></head>
<body${attributes}>
${main}
</body></html>
`;
}

/**
 * The listing of the directory `path` (root-relative) holding `entries`,
 * for a visitor whose token has `scope`.
 *
 * @example
 * ```ts
 * import { listingPage } from "./listing.ts";
 * const entry = { name: "<a>.txt", type: "file" as const, size: 3, mtime: 0, mode: 0o644 };
 * const page = listingPage("docs", [entry], "read");
 * console.assert(page.includes("&#60;a&#62;.txt") && !page.includes("<a>.txt"));
 * ```
 */
export function listingPage(path: string, entries: Entry[], scope: string): string {
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
      ? ` <a href="${html(href)}?download" title="download" class="download">⤓</a>`
      : dir
      ? ` <a href="${html(href)}?zip" title="download as a zip" class="download">⤓</a>`
      : "";
    const when = e.mtime ? new Date(e.mtime).toISOString().replace("T", " ").slice(0, 19) : "";
    const data =
      `data-name="${html(e.name)}" data-type="${e.type}" data-size="${dir ? -1 : e.size}"` +
      ` data-mtime="${e.mtime}"`;
    return `<tr ${data}><td>${link}${download}</td><td class="n">${dir ? "" : size(e.size)}</td>` +
      `<td>${when}</td><td class="actions"></td></tr>`;
  }).join("\n");
  const title = path === "" ? "/" : `/${path}`;
  const main = `<header><nav>${crumbs}</nav>
<input id="filter" type="search" placeholder="filter (/)" aria-label="filter by name">
<button id="theme" type="button" title="light or dark">◐</button></header>
<section id="tools" hidden>
<button id="mkdir" type="button">new folder</button>
<label class="button">upload files <input id="files" type="file" multiple hidden></label>
<label class="button">upload a folder <input id="folder" type="file" webkitdirectory hidden></label>
<div id="drop">or drop files and folders here</div>
<div id="uploads"></div>
</section>
<p id="message" role="status"></p>
<table><thead><tr><th data-sort="name">name</th><th data-sort="size">size</th>` +
    `<th data-sort="mtime">modified (UTC)</th><th></th></tr></thead>
<tbody>
${rows}
</tbody></table>
<p><small>${sorted.length} entries · <a href="?json">JSON</a> · all of it as a` +
    ` <a href="?zip" download>zip</a> or a <a href="?tar.gz" download>tar.gz</a></small></p>
<script src="${UI_PREFIX}app.js"></script>`;
  return page(title, main, ` data-path="${html(path)}" data-scope="${html(scope)}"`);
}

/**
 * The sign-in page: a token, once; the server keeps it in an HttpOnly,
 * SameSite=Strict cookie.
 *
 * @example
 * ```ts
 * import { signInPage } from "./listing.ts";
 * console.assert(signInPage("/docs/", false).includes('name="token"'));
 * ```
 */
export function signInPage(back: string, failed: boolean): string {
  const main = `<form class="signin" method="post" action="${UI_PREFIX}login">
<h1>ferry</h1>
<label for="token">Access token</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<input type="hidden" name="back" value="${html(back)}">
<button type="submit">Sign in</button>
${failed ? `<p class="error">That token was not accepted.</p>` : ""}
</form>`;
  return page("sign in", main);
}
