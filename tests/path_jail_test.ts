import assert from "node:assert/strict";
import { join } from "node:path";
import { AtomicFile, inUse } from "../lib/fs/atomic_file.ts";
import { pinnedDirectory } from "../lib/fs/directory.ts";
import { FerryError } from "../lib/util/errors.ts";
import { LocalStorage } from "../lib/storage/local/local_storage.ts";
import { normalizePath } from "../lib/util/path_jail.ts";
import { escapeName } from "../lib/util/display.ts";
import { listTree, tempDir } from "./helpers.ts";

function refused(fn: () => unknown, why: RegExp) {
  assert.throws(
    fn,
    (e) => e instanceof FerryError && e.code === "PATH_REFUSED" && why.test(e.message),
  );
}

async function refusedAsync(fn: () => Promise<unknown>, code = "PATH_REFUSED") {
  await assert.rejects(fn, (e) => e instanceof FerryError && e.code === code);
}

Deno.test("normalizePath: canonical forms", () => {
  const cases: [string, string][] = [
    ["", ""],
    [".", ""],
    ["a", "a"],
    ["a/b/c", "a/b/c"],
    ["a//b/", "a/b"],
    ["./a/./b", "a/b"],
    ["a/../b", "b"],
    ["a/b/../..", ""],
    ["dir with space/naïve ☃.txt", "dir with space/naïve ☃.txt"],
    ["..a/b..", "..a/b.."],
  ];
  for (const [input, want] of cases) assert.equal(normalizePath(input), want, input);
});

Deno.test("normalizePath: refuses what leaves or abuses the root", () => {
  refused(() => normalizePath(".."), /leaves the root/);
  refused(() => normalizePath("../etc/passwd"), /leaves the root/);
  refused(() => normalizePath("a/../../b"), /leaves the root/);
  refused(() => normalizePath("/etc/passwd"), /absolute/);
  refused(() => normalizePath("a\\..\\..\\b"), /backslash/);
  refused(() => normalizePath("..\\x"), /backslash/);
  refused(() => normalizePath("C:\\Windows"), /backslash|drive/);
  refused(() => normalizePath("C:/Windows"), /drive/);
  refused(() => normalizePath("a\u0000b"), /control/);
  refused(() => normalizePath("a\nb"), /control/);
  refused(() => normalizePath("a\u001b[31mred"), /control/);
  refused(() => normalizePath("a\u009bb"), /control/);
  refused(() => normalizePath("a\u007f"), /control/);
  refused(() => normalizePath("bad\ud800"), /Unicode/);
  refused(() => normalizePath("x".repeat(256)), /too long/);
  refused(() => normalizePath(".ferry-0123.part"), /reserved/);
  refused(() => normalizePath("dir/.ferry-anything"), /reserved/);
  assert.equal(normalizePath("x".repeat(255)), "x".repeat(255));
  // 100 three-byte characters = 300 bytes: too long although only 100 code units.
  refused(() => normalizePath("☃".repeat(100)), /too long/);
});

Deno.test("escapeName: control characters and escapes are never printed raw", () => {
  assert.equal(escapeName("plain näme.txt"), "plain näme.txt");
  assert.equal(escapeName("a\nb"), "a\\x0ab");
  assert.equal(escapeName("\u001b]0;pwned\u0007"), "\\x1b]0;pwned\\x07");
  assert.equal(escapeName("back\\slash"), "back\\\\slash");
  assert.equal(escapeName("\u009b"), "\\x9b");
  assert.equal(escapeName("lone\ud800"), "lone\\ud800");
  assert.equal(escapeName("txt.\u202eexe"), "txt.\\u202eexe");
  assert.equal(escapeName("\u2069"), "\\u2069");
});

/**
 * A root with symlinks in every position:
 *   root/inside.txt, root/dir/f.txt
 *   root/in-link -> dir (inside)          root/out-link -> outside dir
 *   root/out-file -> outside/secret.txt   root/dangling -> outside/missing
 *   root/dir/up -> ../../outside (a relative escape, one level down)
 *   root/chain -> in-link2 -> out-link (inside, then outside)
 */
async function jailFixture(base: string) {
  const root = join(base, "root");
  const outside = join(base, "outside");
  await Deno.mkdir(join(root, "dir"), { recursive: true });
  await Deno.mkdir(outside);
  await Deno.writeTextFile(join(root, "inside.txt"), "in");
  await Deno.writeTextFile(join(root, "dir", "f.txt"), "f");
  await Deno.writeTextFile(join(outside, "secret.txt"), "secret");
  await Deno.symlink("dir", join(root, "in-link"));
  await Deno.symlink(outside, join(root, "out-link"));
  await Deno.symlink(join(outside, "secret.txt"), join(root, "out-file"));
  await Deno.symlink(join(outside, "missing"), join(root, "dangling"));
  await Deno.symlink("../../outside", join(root, "dir", "up"));
  await Deno.symlink("out-link", join(root, "in-link2"));
  await Deno.symlink("in-link2", join(root, "chain"));
  return { root, outside };
}

Deno.test("LocalStorage: symlinks inside the root are followed", async () => {
  await using dir = await tempDir();
  const { root } = await jailFixture(dir.path);
  const storage = await LocalStorage.open(root);
  const names = [];
  for await (const e of storage.list("in-link")) names.push(e.name);
  assert.deepEqual(names.sort(), ["f.txt", "up"]);
  const handle = await storage.openRead("in-link/f.txt");
  assert.equal(handle.size, 1);
  handle.close();
  const up = await storage.createUpload("in-link/new.txt", { size: 0 });
  await up.commit();
  assert.equal(await Deno.readTextFile(join(root, "dir", "new.txt")), "");
});

Deno.test("LocalStorage: symlinks out of the root are refused in every position", async () => {
  await using dir = await tempDir();
  const { root, outside } = await jailFixture(dir.path);
  const storage = await LocalStorage.open(root);
  const escapes = [
    "out-link", // a directory symlink, as the final component
    "out-link/secret.txt", // as an intermediate component
    "out-file", // a file symlink
    "dir/up/secret.txt", // relative escape one level down
    "chain/secret.txt", // a chain that ends outside
  ];
  for (const path of escapes) {
    await refusedAsync(() => storage.openRead(path));
    await refusedAsync(() => storage.createUpload(path, { size: 1 }));
    await refusedAsync(async () => {
      for await (const _ of storage.list(path));
    });
  }
  // Writes below a symlinked directory, to names that do not exist yet.
  await refusedAsync(() => storage.createUpload("out-link/new.txt", { size: 1 }));
  await refusedAsync(() => storage.createUpload("out-link/deep/new.txt", { size: 1 }));
  await refusedAsync(() => storage.createUpload("chain/new.txt", { size: 1 }));
  // A dangling link must not be written through: as a directory it is refused, and as the
  // file itself it is replaced by the upload, as rsync does.
  await refusedAsync(() => storage.createUpload("dangling/x.txt", { size: 1 }));
  await refusedAsync(() => storage.createUpload("dangling", { size: 1, noClobber: true }));
  assert.ok((await Deno.lstat(join(root, "dangling"))).isSymlink);
  const up = await storage.createUpload("dangling", { size: 1 });
  await up.write(new Uint8Array([7]));
  await up.commit();
  assert.deepEqual(
    (await Array.fromAsync(Deno.readDir(outside))).map((e) => e.name),
    ["secret.txt"],
  );
  const replaced = await Deno.lstat(join(root, "dangling"));
  assert.ok(replaced.isFile && replaced.size === 1);
});

Deno.test("LocalStorage: a root that is itself a symlink works", async () => {
  await using dir = await tempDir();
  const { root } = await jailFixture(dir.path);
  const link = join(dir.path, "root-link");
  await Deno.symlink(root, link);
  const storage = await LocalStorage.open(link);
  const handle = await storage.openRead("inside.txt");
  assert.equal(handle.size, 2);
  handle.close();
  await refusedAsync(() => storage.openRead("out-file"));
});

Deno.test("LocalStorage: missing paths, directories and temp files", async () => {
  await using dir = await tempDir();
  const { root } = await jailFixture(dir.path);
  const storage = await LocalStorage.open(root);
  await refusedAsync(() => storage.openRead("nope.txt"), "NOT_FOUND");
  await refusedAsync(() => storage.openRead("dir"), "NOT_A_FILE");
  await refusedAsync(() => storage.createUpload("dir", { size: 1 }), "NOT_A_FILE");
  await refusedAsync(() => storage.createUpload("", { size: 1 }), "NOT_A_FILE");
  await refusedAsync(() => storage.createUpload("inside.txt/x", { size: 1 }), "NOT_A_DIRECTORY");
  await refusedAsync(() => LocalStorage.open(join(root, "inside.txt")), "NOT_A_DIRECTORY");
  await refusedAsync(() => LocalStorage.open(join(root, "missing")), "NOT_FOUND");
  const upload = await storage.createUpload("a/b/c.txt", { size: 2 });
  await upload.write(new Uint8Array([104, 105]));
  const listed = [];
  for await (const e of storage.list("a/b")) listed.push(e.name);
  assert.deepEqual(listed, [], "an upload in progress is not listed");
  await upload.commit();
  assert.equal(await Deno.readTextFile(join(root, "a/b/c.txt")), "hi");
  const aborted = await storage.createUpload("a/b/d.txt", { size: 2 });
  await aborted.abort();
  assert.deepEqual(
    (await Array.fromAsync(Deno.readDir(join(root, "a/b")))).map((e) => e.name),
    ["c.txt"],
    "abort removes the temporary file",
  );
});

Deno.test("pinnedDirectory: a swapped path is refused first, a moved directory undone after", async () => {
  await using root = await tempDir("ferry-root-");
  await using outside = await tempDir("ferry-outside-");
  const real = join(Deno.realPathSync(root.path), "d");
  await Deno.mkdir(real);
  const dir = pinnedDirectory(real, "d");
  assert.equal(dir.run((at) => (Deno.writeTextFileSync(at("a"), "a"), at("a"))), "a");
  const cwd = Deno.cwd();

  // d becomes a symlink to a directory outside: the step refuses before it creates anything.
  await Deno.rename(real, `${real}.real`);
  await Deno.symlink(outside.path, real);
  refused(() => dir.run((at) => Deno.writeTextFileSync(at("b"), "b")), /changed while being used/);
  assert.deepEqual(await listTree(outside.path), []);
  await Deno.remove(real);
  await Deno.rename(`${real}.real`, real);

  // The directory moves away while the step runs: what it made is taken back.
  refused(() =>
    dir.run(
      (at) => {
        Deno.writeTextFileSync(at("c"), "c");
        Deno.renameSync(real, `${real}.moved`);
      },
      () => Deno.removeSync("c"),
    ), /changed while being used/);
  assert.deepEqual(await listTree(`${real}.moved`), ["a"]);
  assert.equal(Deno.cwd(), cwd, "the working directory is back where it was");
});

Deno.test("a file made in a held directory that moves during the step is taken back whole", async () => {
  await using root = await tempDir("ferry-root-");
  const real = join(Deno.realPathSync(root.path), "d");
  await Deno.mkdir(real);
  const dir = pinnedDirectory(real, "d");
  let made: AtomicFile | undefined;
  assert.throws(
    () =>
      dir.run(
        () => {
          made = AtomicFile.create(join(real, "f.bin"), { dir });
          Deno.renameSync(real, `${real}.moved`);
          return made;
        },
        (file) => file.takeBack(),
      ),
    (e: unknown) => e instanceof FerryError && e.code === "PATH_REFUSED",
  );
  assert.ok(made && !inUse(made.tempPath), "let go of: not open, not held");
  assert.deepEqual(await listTree(`${real}.moved`), [], "and removed");
  // A partial found there, not made by the step, is let go of as it was.
  await Deno.rename(`${real}.moved`, real);
  const kept = AtomicFile.resume(join(real, "g.bin"), "k")!;
  kept.write(new Uint8Array(10));
  await kept.suspend();
  assert.throws(() =>
    dir.run(
      () => {
        const again = AtomicFile.resume(join(real, "g.bin"), "k", { dir })!;
        Deno.renameSync(real, `${real}.moved`);
        return again;
      },
      (file) => file.takeBack(),
    )
  );
  assert.deepEqual(await listTree(`${real}.moved`), [".ferry-k.partial"]);
});
