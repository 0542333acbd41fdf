/**
 * Integration: the web UI in a real browser, Debian's chromium driven by
 * playwright-core: sign in with a token, browse, upload a folder with its
 * layout, download a file and compare its bytes, make a folder, rename,
 * delete; a read token sees no delete button and is refused if it tries
 * anyway. Screenshots of the UI, light and dark, go to docs/ with
 * `FERRY_SCREENSHOTS=1`.
 *
 * Skipped, saying so, where chromium is missing (`.ci/run` installs it).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { cuttingProxy, randomBytes, startServer, tempDir } from "./helpers.ts";

const MiB = 1024 * 1024;

const CHROMIUM = "/usr/bin/chromium";
const hasChromium = await Deno.stat(CHROMIUM).then(() => true, () => false);
if (!hasChromium) console.error(`browser tests skipped: no ${CHROMIUM} (apt-get install chromium)`);

/** Where the screenshots go: docs/ when asked for (`FERRY_SCREENSHOTS=1`), else nowhere kept. */
const SHOTS = Deno.env.get("FERRY_SCREENSHOTS") === "1"
  ? new URL("../docs/", import.meta.url).pathname
  : undefined;

/** Open the UI at `base` and sign in with `token`, as a person would. */
async function signIn(
  page: Page,
  base: string,
  token: string,
): Promise<void> {
  await page.goto(`${base}/`);
  await page.fill("#token", token);
  await page.click("button[type=submit]");
}

Deno.test({
  name:
    "the web UI in chromium: sign in, browse, upload a folder, download, new folder, rename, delete, scopes",
  ignore: !hasChromium,
  // playwright keeps timers of its own between steps.
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { chromium } = await import("playwright-core");
    await using local = await tempDir();
    const [READ, ADMIN] = ["r".repeat(32), "a".repeat(32)];
    await Deno.writeTextFile(join(local.path, "tokens"), `${READ} read\n${ADMIN} admin\n`);
    await using server = await startServer({ args: ["--tokens", join(local.path, "tokens")] });
    const data = randomBytes(300_000);
    await Deno.mkdir(join(server.root, "releases"));
    await Deno.writeFile(join(server.root, "releases", "app.bin"), data);
    await Deno.writeTextFile(join(server.root, "notes.txt"), "notes");
    const folder = join(local.path, "site");
    await Deno.mkdir(join(folder, "css"), { recursive: true });
    await Deno.writeTextFile(join(folder, "index.html"), "<h1>site</h1>");
    await Deno.writeTextFile(join(folder, "css", "main.css"), "body{}");
    const base = `http://${server.address}`;

    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    try {
      const admin = await browser.newContext({ acceptDownloads: true, colorScheme: "light" });
      const page = await admin.newPage();
      page.on("dialog", (d) => d.accept(d.type() === "prompt" ? nextPrompt.shift() : undefined));
      const nextPrompt: string[] = [];

      // Sign in once: the token goes into an HttpOnly cookie.
      await signIn(page, base, ADMIN);
      await page.waitForSelector("tr[data-name=releases]");
      const cookies = await admin.cookies();
      assert.ok(
        cookies.some((c) => c.name === "ferry_token" && c.httpOnly && c.sameSite === "Strict"),
      );

      // Browse into a directory, download a file, compare bytes.
      await page.click("a[href='/releases/']");
      await page.waitForSelector("tr[data-name='app.bin']");
      const [download] = await Promise.all([
        page.waitForEvent("download"),
        page.click("tr[data-name='app.bin'] a.download"),
      ]);
      const saved = join(local.path, "app.bin");
      await download.saveAs(saved);
      assert.deepEqual(await Deno.readFile(saved), data);

      // Upload a folder through the picker: its layout is kept.
      await page.goto(`${base}/`);
      await page.setInputFiles("#folder", folder);
      await page.waitForSelector("tr[data-name=site]", { timeout: 15_000 });
      assert.equal(await Deno.readTextFile(join(server.root, "site", "css", "main.css")), "body{}");
      assert.equal(
        await Deno.readTextFile(join(server.root, "site", "index.html")),
        "<h1>site</h1>",
      );

      // The folder comes back as a zip from its row's download link.
      const [zipped] = await Promise.all([
        page.waitForEvent("download"),
        page.click("tr[data-name=site] a.download"),
      ]);
      assert.equal(zipped.suggestedFilename(), "site.zip");
      const zip = join(local.path, "site.zip");
      await zipped.saveAs(zip);
      const unzip = await new Deno.Command("unzip", {
        args: ["-q", zip, "-d", join(local.path, "unzipped")],
      }).output();
      assert.ok(unzip.success, new TextDecoder().decode(unzip.stderr));
      assert.equal(
        await Deno.readTextFile(join(local.path, "unzipped", "site", "css", "main.css")),
        "body{}",
      );

      // New folder, rename, delete.
      nextPrompt.push("made");
      await page.click("#mkdir");
      await page.waitForSelector("tr[data-name=made]");
      nextPrompt.push("notes-renamed.txt");
      await page.click("tr[data-name='notes.txt'] button.rename");
      await page.waitForSelector("tr[data-name='notes-renamed.txt']");
      assert.equal(await Deno.readTextFile(join(server.root, "notes-renamed.txt")), "notes");
      await page.click("tr[data-name=made] button.delete");
      await page.waitForSelector("tr[data-name=made]", { state: "detached" });
      assert.equal(await Deno.stat(join(server.root, "made")).catch(() => null), null);

      // Screenshots, light and dark.
      await page.goto(`${base}/`);
      await page.waitForSelector("tr[data-name=site]");
      const light = await page.screenshot({ path: SHOTS && join(SHOTS, "ui-light.png") });
      await page.emulateMedia({ colorScheme: "dark" });
      const dark = await page.screenshot({ path: SHOTS && join(SHOTS, "ui-dark.png") });
      assert.notDeepEqual(light, dark, "the dark theme differs");

      // A read token sees no delete button, and is refused if it tries anyway.
      const reader = await browser.newContext();
      const readPage = await reader.newPage();
      await signIn(readPage, base, READ);
      await readPage.waitForSelector("tr[data-name=releases]");
      assert.equal(await readPage.locator("button.delete").count(), 0);
      assert.equal(await readPage.locator("#tools").isHidden(), true);
      const status = await readPage.evaluate(() =>
        fetch("/releases/app.bin", { method: "DELETE", headers: { "x-ferry-csrf": "1" } })
          .then((r) => r.status)
      );
      assert.equal(status, 403);
      // Without the UI's header, a cookie alone changes nothing (another site's form could send one).
      const forged = await readPage.evaluate(() =>
        fetch("/releases/app.bin", { method: "DELETE" }).then((r) => r.status)
      );
      assert.equal(forged, 403);
      assert.ok((await Deno.stat(join(server.root, "releases", "app.bin"))).isFile);
    } finally {
      await browser.close();
    }
  },
});

Deno.test({
  name:
    "the web UI in chromium: an upload whose connection is cut resumes where it stopped, and keeps the file's time",
  ignore: !hasChromium,
  sanitizeOps: false,
  sanitizeResources: false,
  async fn() {
    const { chromium } = await import("playwright-core");
    await using local = await tempDir();
    const ADMIN = "a".repeat(32);
    await Deno.writeTextFile(join(local.path, "tokens"), `${ADMIN} admin\n`);
    await using server = await startServer({ args: ["--tokens", join(local.path, "tokens")] });
    // The first two connections to move 6 MiB are cut: the upload's, midway. Two, because
    // chromium sends a request again by itself once when a connection it reused fails.
    const proxy = cuttingProxy(server.port, { cutAfter: 6 * MiB, cuts: 2, anyConnection: true });
    const data = randomBytes(20 * MiB);
    const file = join(local.path, "big.bin");
    await Deno.writeFile(file, data);
    const mtime = new Date("2025-03-04T05:06:07Z");
    await Deno.utime(file, mtime, mtime);

    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
    try {
      const page = await (await browser.newContext()).newPage();
      await signIn(page, `http://${proxy.address}`, ADMIN);
      await page.waitForSelector("#tools:not([hidden])");
      await page.setInputFiles("#files", file);
      await page.waitForSelector("tr[data-name='big.bin']", { timeout: 60_000 });
      const stored = join(server.root, "big.bin");
      assert.deepEqual(await Deno.readFile(stored), data);
      assert.equal((await Deno.stat(stored)).mtime?.getTime(), mtime.getTime());
      assert.match(server.log(), /put big\.bin failed: the request body was cut short/);
      const resumed = /put big\.bin (\d+) bytes .*resumed at (\d+)\) ok/.exec(server.log());
      assert.ok(resumed, server.log());
      // Only what was missing, and the MiB sent again to be compared, went the second time.
      assert.ok(Number(resumed[2]) > 0);
      assert.equal(Number(resumed[1]) + Number(resumed[2]), data.length);
    } finally {
      await browser.close();
      await proxy.close();
    }
  },
});
