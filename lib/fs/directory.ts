/**
 * Where files are created, renamed and removed: a directory, and the way
 * names in it are reached. A plain directory reaches them by path. A pinned
 * one holds the directory itself while a step runs, so that a symlink
 * swapped into the path meanwhile cannot send the step elsewhere: Deno has
 * no `openat`, its permission checks refuse `/proc/self/fd` paths under any
 * flags but `--allow-all` (and macOS has none), so the process's working
 * directory serves as the one directory handle there always is (see
 * {@linkcode pinnedDirectory}).
 *
 * @module
 */

import { sep as SEP } from "node:path";
import { FerryError, toFerryError } from "../util/errors.ts";
import { granted } from "../util/permissions.ts";

/** A directory and the way to act on names in it. */
export interface Directory {
  /** Its path: absolute, and for a pinned directory free of symlinks. */
  readonly path: string;
  /**
   * Whether others may swap what is in it under the steps (a served root):
   * then a step checks that a name still is the file it made before it
   * renames it. On one's own disk, it is one's own business.
   */
  readonly guarded: boolean;
  /**
   * Run `fn`, synchronously, with `at(name)` reaching `name` in this
   * directory. For a pinned directory: refuses (PATH_REFUSED) if the
   * directory is no longer where it was, and checks again afterwards; if it
   * has moved meanwhile, `undo` (given `fn`'s result, with the names still
   * reachable) takes back what `fn` created, and the call refuses.
   */
  run<T>(fn: (at: (name: string) => string) => T, undo?: (result: T) => void): T;
}

/**
 * The path of `name`, a single component, in the directory `dir`: joined as
 * it is, without normalizing the whole path again (a tree of small files
 * joins several times a file).
 *
 * @example
 * ```ts
 * import { childPath } from "./directory.ts";
 * console.assert(childPath("/tmp", "a") === "/tmp/a" && childPath("/", "a") === "/a");
 * console.assert(childPath(".", "a") === "a");
 * ```
 */
export function childPath(dir: string, name: string): string {
  if (dir === ".") return name;
  return dir.endsWith(SEP) ? dir + name : dir + SEP + name;
}

/**
 * A directory reached by path: what the client uses on its own disk, where
 * the user, not a jail, decides what a path means.
 *
 * @example
 * ```ts
 * import { plainDirectory } from "./directory.ts";
 * const dir = plainDirectory("/tmp");
 * console.assert(dir.run((at) => at("x")) === "/tmp/x");
 * ```
 */
export function plainDirectory(path: string): Directory {
  const at = (name: string) => childPath(path, name);
  return { path, guarded: false, run: (fn) => fn(at) };
}

/** The directory this isolate has pinned right now, if any. */
let pinned: string | undefined;

/**
 * Block for `ms` milliseconds. Only for waits of a few milliseconds where
 * a step must stay synchronous.
 *
 * @example
 * ```ts
 * import { sleepSync } from "./directory.ts";
 * sleepSync(1);
 * ```
 */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * What keeps two isolates of one process (workers, or `deno test
 * --parallel`) from pinning at once: the working directory is the
 * process's, not the isolate's. It is an advisory lock on the process's
 * own `/proc` entry, which Deno lets a program open only with all
 * permissions; a program with fewer runs one isolate and needs none. The
 * built ferryd owns its working directory (see
 * {@linkcode ownWorkingDirectory}), whose steps take no lock. Null where
 * there is none.
 */
let processLock: Deno.FsFile | null | undefined;

function isolatesLock(): Deno.FsFile | null {
  if (processLock !== undefined) return processLock;
  processLock = null;
  if (Deno.build.os !== "linux") return null;
  // Asked first, so that a program with fewer permissions is never prompted for them.
  if (!granted("read", "write", "run", "ffi", "sys")) return null;
  try {
    processLock = Deno.openSync(`/proc/${Deno.pid}`, { read: true });
  } catch {
    // Not there (no /proc): one isolate is the rule then.
  }
  return processLock;
}

/**
 * Take the isolates' lock. A child process forked by another isolate holds
 * the descriptor for a moment before it execs, so a busy lock is tried
 * again for up to a second before the step goes on without it.
 */
function lockIsolates(lock: Deno.FsFile): boolean {
  for (let waited = 0; waited < 1000; waited++) {
    if (lock.tryLockSync(true)) return true;
    sleepSync(1);
  }
  return false;
}

const here = (name: string) => name;

/**
 * A directory held while each step runs: the step changes the working
 * directory to `path` (which must be free of symlinks), checks that the
 * kernel reports it there, acts on bare names (so no path is looked up
 * again), checks once more, and changes back, all synchronously, so that no
 * other code of this process runs meanwhile. A symlink swapped into the path
 * makes the first check fail before anything happens; a directory moved
 * away during the step makes `undo` remove what it created. `display` names
 * the directory in messages (never a host path).
 *
 * Relative paths in async file operations that the same process started
 * earlier may resolve against the pinned directory when Deno runs with
 * `--allow-all` (it then passes them on unresolved); ferryd uses absolute
 * paths only. Several isolates of one process pin one at a time.
 *
 * @example
 * ```ts
 * import { pinnedDirectory } from "./directory.ts";
 * const path = Deno.realPathSync(Deno.makeTempDirSync());
 * const dir = pinnedDirectory(path, "tmp");
 * dir.run((at) => Deno.writeTextFileSync(at("a.txt"), "a"));
 * console.assert(Deno.readTextFileSync(`${path}/a.txt`) === "a");
 * ```
 */
export function pinnedDirectory(path: string, display: string): Directory {
  const refused = () =>
    new FerryError("PATH_REFUSED", `path refused: it changed while being used: ${display}`);
  return {
    path,
    guarded: true,
    run(fn, undo) {
      if (pinned === path) return fn(here);
      if (pinned !== undefined) throw new Error(`pinning ${path} inside ${pinned}`);
      if (parked !== undefined) return runParked(path, fn, undo, refused, display);
      const lock = isolatesLock();
      const locked = lock !== null && lockIsolates(lock);
      let home: string;
      try {
        home = Deno.cwd();
      } catch {
        home = "/"; // The working directory was removed: there is nothing to go back to.
      }
      try {
        Deno.chdir(path);
      } catch (err) {
        if (locked) lock.unlockSync();
        throw toFerryError(err, display);
      }
      pinned = path;
      try {
        if (!isCwd(path)) throw refused();
        return actThenCheck(path, fn, undo, refused);
      } finally {
        pinned = undefined;
        try {
          Deno.chdir(home);
        } catch {
          Deno.chdir("/");
        }
        if (locked) lock.unlockSync();
      }
    },
  };
}

/**
 * Where the working directory was left by the last step, when this process
 * owns it (see {@linkcode ownWorkingDirectory}); undefined otherwise.
 */
let parked: string | undefined;

/**
 * Declare that nothing in this process but held directories uses the
 * working directory (ferryd's own command line, which resolved its root and
 * read its files first): steps then leave it where they held it, and the
 * next step in the same directory, as a tree of files mostly is, needs no
 * change of directory, only the checks. One isolate only.
 *
 * @example
 * ```ts ignore
 * import { ownWorkingDirectory } from "./directory.ts";
 * ownWorkingDirectory();
 * ```
 */
export function ownWorkingDirectory(): void {
  try {
    parked = Deno.cwd();
  } catch {
    Deno.chdir("/");
    parked = "/";
  }
}

/** A step in a process that owns its working directory: see {@linkcode ownWorkingDirectory}. */
function runParked<T>(
  path: string,
  fn: (at: (name: string) => string) => T,
  undo: ((result: T) => void) | undefined,
  refused: () => FerryError,
  display: string,
): T {
  // Still held from the step before, unless it moved: then it is looked up afresh.
  if (parked !== path || !isCwd(path)) {
    try {
      parked = undefined;
      Deno.chdir(path);
    } catch (err) {
      Deno.chdir("/");
      parked = "/";
      throw toFerryError(err, display);
    }
    parked = path;
    if (!isCwd(path)) throw refused();
  }
  pinned = path;
  try {
    return actThenCheck(path, fn, undo, refused);
  } finally {
    pinned = undefined;
  }
}

/**
 * Run a step in the held directory `path`, then check that it is still
 * there: if it moved meanwhile, take back what the step made and refuse.
 */
function actThenCheck<T>(
  path: string,
  fn: (at: (name: string) => string) => T,
  undo: ((result: T) => void) | undefined,
  refused: () => FerryError,
): T {
  const result = fn(here);
  if (!isCwd(path)) {
    try {
      undo?.(result);
    } catch {
      // Gone already: there is nothing left to take back.
    }
    throw refused();
  }
  return result;
}

/** Whether the kernel places the working directory at `path`. */
function isCwd(path: string): boolean {
  try {
    return Deno.cwd() === path;
  } catch {
    return false; // Removed while pinned.
  }
}
