/**
 * The web UI's script and style, as text in a module: they ship inside the
 * JSR package and the compiled binary like any code, need no build step,
 * and load from ferryd itself (no CDN; works offline). The listing page
 * works without them; they add sorting, a filter, uploads by picker and
 * drag and drop with a progress bar per file, new folders, rename and
 * delete.
 *
 * @module
 */

/** Where the assets are served: under a reserved name no stored file can have. */
export const UI_PREFIX = "/.ferry-ui/";

/** The stylesheet: light and dark from the system's setting, or the toggle. */
export const UI_CSS = `
:root { color-scheme: light dark; --bg: #fff; --fg: #1b1f24; --muted: #667; --line: #8883;
  --accent: #2563eb; --bar: #2563eb; font-family: system-ui, sans-serif; }
:root[data-theme="dark"] { --bg: #111418; --fg: #e6e6e6; --muted: #99a; --accent: #6ea8fe; --bar: #6ea8fe; }
@media (prefers-color-scheme: dark) { :root:not([data-theme="light"]) { --bg: #111418; --fg: #e6e6e6;
  --muted: #99a; --accent: #6ea8fe; --bar: #6ea8fe; } }
body { background: var(--bg); color: var(--fg); max-width: 64rem; margin: 1.5rem auto; padding: 0 1rem; }
header { display: flex; gap: .5rem; align-items: center; flex-wrap: wrap; margin-bottom: .8rem; }
header nav { flex: 1; font-size: 1.1rem; }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .35rem .6rem; border-bottom: 1px solid var(--line); }
th[data-sort] { cursor: pointer; user-select: none; } th[aria-sort]::after { content: " ↕"; color: var(--muted); }
td.n { text-align: right; font-variant-numeric: tabular-nums; } td.actions { text-align: right; white-space: nowrap; }
button, input, label.button { font: inherit; color: inherit; background: transparent; border: 1px solid var(--line);
  border-radius: .3rem; padding: .25rem .6rem; cursor: pointer; }
button:focus-visible, input:focus-visible, a:focus-visible { outline: 2px solid var(--accent); }
#drop { border: 2px dashed var(--line); border-radius: .5rem; padding: .8rem; margin: .8rem 0; color: var(--muted); }
#drop.over { border-color: var(--accent); color: var(--fg); }
.upload { display: grid; grid-template-columns: 1fr 10rem 4rem; gap: .5rem; align-items: center; font-size: .9rem; }
progress { width: 100%; accent-color: var(--bar); }
.error { color: #d33; } small { color: var(--muted); }
form.signin { max-width: 24rem; margin: 4rem auto; display: grid; gap: .6rem; }
`;

/** The script: plain DOM, no framework. Requests carry the CSRF header the server demands. */
export const UI_JS = `
"use strict";
const $ = (s, e = document) => e.querySelector(s);
const $$ = (s, e = document) => [...e.querySelectorAll(s)];
const here = document.body.dataset.path;
const scope = document.body.dataset.scope;
const may = (a) => ({ read: 0, write: 1, admin: 2 })[scope] >= ({ read: 0, write: 1, admin: 2 })[a];
const url = (p) => "/" + p.split("/").filter(Boolean).map(encodeURIComponent).join("/");
const join = (...p) => p.filter(Boolean).join("/");
const send = (method, path, headers = {}, query = "") =>
  fetch(url(path) + query, { method, headers: { "x-ferry-csrf": "1", ...headers } }).then(async (r) => {
    if (!r.ok) throw new Error((await r.text()).trim() || r.status + "");
    return r;
  });
const say = (text, error) => { const m = $("#message"); m.textContent = text; m.className = error ? "error" : ""; };

// Theme: the system's, unless toggled (remembered in this browser).
const theme = localStorage.getItem("ferry-theme");
if (theme) document.documentElement.dataset.theme = theme;
$("#theme")?.addEventListener("click", () => {
  const dark = matchMedia("(prefers-color-scheme: dark)").matches;
  const now = document.documentElement.dataset.theme || (dark ? "dark" : "light");
  const next = now === "dark" ? "light" : "dark";
  document.documentElement.dataset.theme = next;
  localStorage.setItem("ferry-theme", next);
});

// Sort by a column, filter by name.
const body = $("tbody");
$$("th[data-sort]").forEach((th) => th.addEventListener("click", () => {
  const key = th.dataset.sort, dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
  $$("th[data-sort]").forEach((o) => o.removeAttribute("aria-sort"));
  th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
  const rows = $$("tr", body).sort((a, b) => {
    const x = a.dataset[key], y = b.dataset[key];
    return (key === "name" ? x.localeCompare(y) : Number(x) - Number(y)) * dir;
  });
  rows.forEach((r) => body.append(r));
}));
$("#filter")?.addEventListener("input", (e) => {
  const q = e.target.value.toLowerCase();
  $$("tr", body).forEach((r) => r.hidden = !r.dataset.name.toLowerCase().includes(q));
});
document.addEventListener("keydown", (e) => {
  if (e.key === "/" && document.activeElement?.tagName !== "INPUT") { e.preventDefault(); $("#filter")?.focus(); }
});

// Rename and delete, where the token may.
$$("tr").forEach((row) => {
  const name = row.dataset.name;
  if (!name || !may("admin")) return;
  const cell = $("td.actions", row);
  const rename = document.createElement("button");
  rename.textContent = "rename"; rename.className = "rename";
  rename.onclick = async () => {
    const to = prompt("New name", name);
    if (!to || to === name) return;
    try { await send("MOVE", join(here, name), { destination: url(join(here, to)) }); location.reload(); }
    catch (e) { say("rename failed: " + e.message, true); }
  };
  const del = document.createElement("button");
  del.textContent = "delete"; del.className = "delete";
  del.onclick = async () => {
    if (!confirm("Delete " + name + (row.dataset.type === "dir" ? " and everything in it" : "") + "?")) return;
    try { await send("DELETE", join(here, name), {}, row.dataset.type === "dir" ? "?recursive" : ""); row.remove(); }
    catch (e) { say("delete failed: " + e.message, true); }
  };
  cell.append(rename, " ", del);
});

// New folder, and uploads: a progress bar per file; folders keep their layout.
if (may("write")) {
  $("#tools").hidden = false;
  $("#mkdir").onclick = async () => {
    const name = prompt("New folder");
    if (!name) return;
    try { await send("MKCOL", join(here, name)); location.reload(); }
    catch (e) { say("new folder failed: " + e.message, true); }
  };
  const list = $("#uploads");
  // A file is sent with its modification time, and a cut upload resumes: the server keeps what
  // arrived, says how much (?partial), and the rest follows with the last MiB sent again, which
  // the server compares with what it keeps. A lost connection is retried a few times at once;
  // a cut upload also resumes when the same file is uploaded again later.
  const OVERLAP = 1 << 20, RETRIES = 5;
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const upload = async (file, path) => {
    const row = document.createElement("div");
    row.className = "upload";
    row.innerHTML = "<span></span><progress max='1' value='0'></progress><small></small>";
    row.firstChild.textContent = path;
    list.append(row);
    const [bar, note] = [row.children[1], row.children[2]];
    const target = url(join(here, path));
    const mtime = String(file.lastModified / 1000);
    const kept = async () => {
      if (file.size <= OVERLAP) return 0;
      const r = await fetch(target + "?partial&size=" + file.size, { headers: { "x-oc-mtime": mtime } });
      return r.ok ? (await r.json()).offset : 0;
    };
    const sendFrom = (start) => new Promise((resolve) => {
      const xhr = new XMLHttpRequest();
      xhr.open("PUT", target);
      xhr.setRequestHeader("x-ferry-csrf", "1");
      xhr.setRequestHeader("x-oc-mtime", mtime);
      if (start > 0) xhr.setRequestHeader("content-range", "bytes " + start + "-" + (file.size - 1) + "/" + file.size);
      xhr.upload.onprogress = (e) => { if (e.lengthComputable) bar.value = (start + e.loaded) / file.size; };
      xhr.onload = () => resolve({ status: xhr.status, text: xhr.responseText });
      xhr.onerror = () => resolve({ status: 0, text: "the connection was lost" });
      xhr.send(start > 0 ? file.slice(start) : file);
    });
    let result;
    for (let attempt = 0; ; attempt++) {
      const held = await kept().catch(() => 0);
      const start = held > 0 ? Math.max(0, held - OVERLAP) : 0;
      if (start > 0) note.textContent = "resuming at " + Math.round(held / 1048576) + " MiB";
      result = await sendFrom(start);
      // What the server keeps is not this file's beginning: send it whole.
      if (result.status === 416 && start > 0) result = await sendFrom(0);
      if (result.status !== 0 || attempt === RETRIES) break;
      note.textContent = "connection lost, retrying";
      await sleep(500 * 2 ** attempt);
    }
    const ok = result.status >= 200 && result.status < 300;
    bar.value = ok ? 1 : 0;
    note.textContent = ok ? "done" : "failed";
    note.className = ok ? "" : "error";
    if (!ok) row.title = result.text;
    return ok;
  };
  const uploadAll = async (items) => {
    let ok = true;
    for (const [file, path] of items) ok = (await upload(file, path)) && ok;
    say(ok ? items.length + " uploaded" : "some uploads failed", !ok);
    if (ok) setTimeout(() => location.reload(), 600);
  };
  const pick = (input) => input.addEventListener("change", () =>
    uploadAll([...input.files].map((f) => [f, f.webkitRelativePath || f.name])));
  pick($("#files")); pick($("#folder"));
  const drop = $("#drop");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  const walk = async (entry, prefix, out) => {
    if (entry.isFile) out.push([await new Promise((r, j) => entry.file(r, j)), prefix + entry.name]);
    else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (let batch; (batch = await new Promise((r, j) => reader.readEntries(r, j))).length;) {
        for (const child of batch) await walk(child, prefix + entry.name + "/", out);
      }
    }
  };
  drop.addEventListener("drop", async (e) => {
    e.preventDefault(); drop.classList.remove("over");
    const out = [];
    for (const item of e.dataTransfer.items) {
      const entry = item.webkitGetAsEntry?.();
      if (entry) await walk(entry, "", out);
    }
    uploadAll(out);
  });
}
`;
