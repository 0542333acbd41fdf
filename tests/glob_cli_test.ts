/**
 * Integration: globs that can name every file. `\` escapes, a pattern that
 * matches nothing naming itself (as a shell does), globs in ls, stat, sum
 * and rm, and get of several paths into a directory, like scp. Each test runs
 * on a directory and on a bucket (see server_files.ts).
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { listTree, runClient, sha256, tempDir } from "./helpers.ts";
import { onBothStores } from "./server_files.ts";

const NAMES = ["[slug].js", "a*b.txt", "what?.txt", "[x]y.txt", "plain.txt"];

onBothStores(
  "names with [, ], * and ? go up and down by plain and by escaped paths",
  async (server) => {
    await using local = await tempDir();
    const src = join(local.path, "src");
    await Deno.mkdir(src);
    for (const name of NAMES) await Deno.writeTextFile(join(src, name), `content of ${name}`);

    // Plain: a pattern that matches nothing else names the file itself.
    const up = await runClient(server.address, ["put", join(src, "[slug].js"), "pages/"]);
    assert.equal(up.code, 0, up.stderr);
    assert.equal(
      await server.files.readText("pages/[slug].js"),
      "content of [slug].js",
    );
    // Escaped: exactly that name, though `[x]y.txt` as a pattern would match "xy.txt".
    await Deno.writeTextFile(join(src, "xy.txt"), "not me");
    const escaped = await runClient(server.address, ["put", join(src, "\\[x]y.txt"), "pages/"]);
    assert.equal(escaped.code, 0, escaped.stderr);
    assert.deepEqual(await server.files.tree("pages"), ["[slug].js", "[x]y.txt"]);
    for (const name of ["a*b.txt", "what?.txt"]) {
      const escapedName = name.replace(/[*?[]/g, (c) => `\\${c}`);
      const put = await runClient(server.address, ["put", join(src, escapedName), "pages/"]);
      assert.equal(put.code, 0, put.stderr);
    }

    const down = join(local.path, "down");
    await Deno.mkdir(down);
    for (
      const name of ["pages/[slug].js", "pages/\\[x]y.txt", "pages/a\\*b.txt", "pages/what\\?.txt"]
    ) {
      const get = await runClient(server.address, ["get", name, `${down}/`]);
      assert.equal(get.code, 0, `${name}: ${get.stderr}`);
    }
    for (const name of ["[slug].js", "[x]y.txt", "a*b.txt", "what?.txt"]) {
      assert.equal(await Deno.readTextFile(join(down, name)), `content of ${name}`, name);
    }
    const none = await runClient(server.address, ["get", "pages/nothing*.js", `${down}/`]);
    assert.equal(none.code, 5);
    assert.match(none.stderr, /no match: remote pages\/nothing\*\.js/);
  },
);

onBothStores(
  "ls, stat, sum and rm take globs and several paths; sum's lines feed sha256sum -c",
  async (server) => {
    await using local = await tempDir();
    await server.files.mkdir("r/sub");
    const files: Record<string, string> = { "a.tar.gz": "a", "b.tar.gz": "bb", "notes.txt": "n" };
    for (const [name, text] of Object.entries(files)) await server.files.write(`r/${name}`, text);

    const ls = await runClient(server.address, ["ls", "r/*.tar.gz"]);
    assert.equal(ls.stdout, "r/a.tar.gz\nr/b.tar.gz\n");
    const stat = await runClient(server.address, ["--json", "stat", "r/*.gz", "r/notes.txt"]);
    assert.deepEqual(stat.stdout.trim().split("\n").map((l) => JSON.parse(l).size), [1, 2, 1]);

    const sum = await runClient(server.address, ["sum", "r/*"]);
    assert.equal(sum.code, 0, sum.stderr);
    assert.deepEqual(sum.stdout.trim().split("\n"), [
      `${sha256(new TextEncoder().encode("a"))}  r/a.tar.gz`,
      `${sha256(new TextEncoder().encode("bb"))}  r/b.tar.gz`,
      `${sha256(new TextEncoder().encode("n"))}  r/notes.txt`,
    ], "the directory r/sub has no checksum and is passed over");
    // Fetched into the same layout, sha256sum -c agrees with every line.
    const got = await runClient(server.address, ["get", "-r", "r", join(local.path, "r")]);
    assert.equal(got.code, 0, got.stderr);
    await Deno.writeTextFile(join(local.path, "SHA256SUMS"), sum.stdout);
    const check = await new Deno.Command("sha256sum", {
      args: ["-c", "SHA256SUMS"],
      cwd: local.path,
    }).output();
    assert.ok(check.success, new TextDecoder().decode(check.stdout));

    const missing = await runClient(server.address, ["stat", "r/a.tar.gz", "r/none"]);
    assert.equal(missing.code, 10, "one of two failed");
    assert.match(missing.stderr, /not found: r\/none/);
    assert.match(missing.stdout, /name: {2}a\.tar\.gz/);

    const rm = await runClient(server.address, ["rm", "r/*.tar.gz"]);
    assert.equal(rm.code, 0, rm.stderr);
    assert.deepEqual(await server.files.tree("r"), ["notes.txt", "sub"]);
  },
);

onBothStores(
  "get takes several remote paths and globs into a directory, like scp",
  async (server) => {
    await using local = await tempDir();
    await server.files.write("a.txt", "a");
    await server.files.write("b.txt", "b");
    await server.files.write("logs/1.log", "1");
    await server.files.write("logs/2.log", "2");
    await server.files.write("logs/skip.txt", "s");
    const dest = join(local.path, "dest");
    await Deno.mkdir(dest);
    const get = await runClient(server.address, ["get", "a.txt", "b.txt", "logs/*.log", dest]);
    assert.equal(get.code, 0, get.stderr);
    assert.deepEqual(await listTree(dest), ["1.log", "2.log", "a.txt", "b.txt"]);
    const noDir = await runClient(server.address, [
      "get",
      "a.txt",
      "b.txt",
      join(local.path, "none"),
    ]);
    assert.equal(noDir.code, 5);
    assert.match(
      noDir.stderr,
      /local .*none does not exist: several sources go into one directory/,
    );
  },
);

onBothStores(
  "in the shell, an escaped glob character names the file, never a pattern",
  async (server) => {
    await using local = await tempDir();
    await server.files.write("d/b.txt", "plain b");
    await server.files.write("d/[br].txt", "bracketed");
    await server.files.write("d/r.txt", "plain r");
    // As Tab completion writes the name (`d/\[br].txt`), and quoted: the file [br].txt only.
    const shell = await runClient(server.address, [], {
      cwd: local.path,
      stdin: "get d/\\[br].txt one.txt\nget 'd/\\[br].txt' two.txt\nrm d/\\[br].txt\n",
    });
    assert.equal(shell.code, 0, shell.stderr);
    assert.equal(await Deno.readTextFile(join(local.path, "one.txt")), "bracketed");
    assert.equal(await Deno.readTextFile(join(local.path, "two.txt")), "bracketed");
    // rm removed that file, and not the files its pattern would have matched.
    assert.deepEqual(await server.files.tree("d"), ["b.txt", "r.txt"]);

    // Commands that name one path take the same escapes, remote and local alike: what Tab
    // completion writes works everywhere.
    await server.files.mkdir("g[1]");
    await server.files.write("d/[x].txt", "x");
    await Deno.mkdir(join(local.path, "L[1]"));
    await Deno.writeTextFile(join(local.path, "L[1]", "up.txt"), "up");
    const more = await runClient(server.address, [], {
      cwd: local.path,
      stdin: [
        "mkdir g\\[1]/sub",
        "mv d/\\[x].txt g\\[1]/moved.txt",
        "lcd L\\[1]",
        "lls",
        "put up.txt g\\[1]/",
        "cd g\\[1]",
        "get moved.txt got\\[1].txt",
        "",
      ].join("\n"),
    });
    assert.equal(more.code, 0, more.stderr);
    assert.match(more.stdout, /^up\.txt$/m);
    assert.deepEqual(await server.files.tree("g[1]"), ["moved.txt", "sub", "up.txt"]);
    assert.equal(await Deno.readTextFile(join(local.path, "L[1]", "got[1].txt")), "x");
    // A working directory whose name holds glob characters is a name, not a pattern, to the
    // paths typed after it: `[x]` is never `x`.
    await server.files.write("[x]/sub/mine.txt", "mine");
    await server.files.write("x/sub/keep.txt", "keep");
    const inside = await runClient(server.address, [], {
      cwd: local.path,
      stdin: "cd \\[x]\nls sub\nrm -rn sub\nget sub/* here-\nls\n",
    });
    assert.equal(inside.code, 0, inside.stderr);
    assert.match(inside.stdout, /^mine\.txt$/m);
    assert.match(inside.stdout, /would delete \[x\]\/sub \(directory, 1 entry in it\)/);
    assert.doesNotMatch(inside.stdout + inside.stderr, /keep\.txt|x\/sub \(/);
    assert.equal(await Deno.readTextFile(join(local.path, "here-")), "mine");
    // One-shot, to standard output: an escaped name, and a glob that matches one file.
    for (const name of ["g[1]/moved.txt", "g\\[1]/moved.txt", "g\\[1]/mov*.txt"]) {
      const cat = await runClient(server.address, ["get", name, "-"]);
      assert.equal(cat.code, 0, `${name}: ${cat.stderr}`);
      assert.equal(cat.stdout, "x");
    }
    // One-shot, a local name is taken as typed (the user's shell did the quoting): a backslash in
    // it stays. And a glob matching one file, into a new name, takes that name, as put does.
    const literal = await runClient(server.address, ["get", "g[1]/moved.txt", "a\\b.txt"], {
      cwd: local.path,
    });
    assert.equal(literal.code, 0, literal.stderr);
    assert.equal(await Deno.readTextFile(join(local.path, "a\\b.txt")), "x");
    const renamed = await runClient(server.address, ["get", "g\\[1]/mov*", "renamed.txt"], {
      cwd: local.path,
    });
    assert.equal(renamed.code, 0, renamed.stderr);
    assert.equal(await Deno.readTextFile(join(local.path, "renamed.txt")), "x");
  },
);

onBothStores(
  "one file put to a remote directory goes inside it, as scp puts it; to a new name, takes it",
  async (server) => {
    await using local = await tempDir();
    await server.files.mkdir("releases");
    await Deno.writeTextFile(join(local.path, "app-1.tgz"), "app");
    const into = await runClient(server.address, ["put", "app-1.tgz", "releases"], {
      cwd: local.path,
    });
    assert.equal(into.code, 0, into.stderr);
    assert.equal(await server.files.readText("releases/app-1.tgz"), "app");
    // A glob that matches one file names one file: the target is its new name.
    const renamed = await runClient(server.address, ["put", "app-*.tgz", "releases/latest.tgz"], {
      cwd: local.path,
    });
    assert.equal(renamed.code, 0, renamed.stderr);
    assert.deepEqual(await server.files.tree("releases"), ["app-1.tgz", "latest.tgz"]);
    assert.equal(await server.files.readText("releases/latest.tgz"), "app");
  },
);
