/**
 * The benchmark's scratch directory, the notes it collects for the report,
 * and everything to undo when it ends.
 *
 * @module
 */

/** Something to undo at the end: stop a daemon, say. */
export type CleanupStep = () => void | Promise<void>;

/** A temporary directory plus notes and cleanup steps; `await using` runs the steps. */
export class Workspace implements AsyncDisposable {
  /** The scratch directory, removed at the end. */
  readonly dir: string;
  /** Notes for the report, in the order they were made. */
  readonly notes: string[] = [];
  #cleanup: CleanupStep[] = [];
  readonly #removeDir: boolean;

  private constructor(dir: string, removeDir: boolean) {
    this.dir = dir;
    this.#removeDir = removeDir;
  }

  /**
   * A new, empty scratch directory; inside `under` when given, and then left
   * for whoever owns `under` to remove. Deleting thousands of files makes
   * this machine's ext4 create files several times slower for minutes after
   * (docs/performance.md): a run that deletes its trees must not do it
   * before the next link's run.
   */
  static async create(under?: string): Promise<Workspace> {
    const dir = await Deno.makeTempDir({ prefix: "ferry-bench-", dir: under });
    return new Workspace(dir, under === undefined);
  }

  /** Add a note to the report: a peer that is missing, or replaced. */
  note(text: string): void {
    this.notes.push(text);
  }

  /** Run `step` at the end, before the steps registered earlier. */
  onCleanup(step: CleanupStep): void {
    this.#cleanup.push(step);
  }

  /** Run the cleanup steps, last registered first, then remove the scratch directory. */
  async [Symbol.asyncDispose](): Promise<void> {
    for (const step of this.#cleanup.splice(0).reverse()) {
      try {
        await step();
      } catch {
        // Already gone.
      }
    }
    if (this.#removeDir) await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}
