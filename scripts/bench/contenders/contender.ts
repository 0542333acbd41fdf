/**
 * What every contender offers: the transfers it can do, each timed.
 *
 * @module
 */

import type { Timing } from "../measure.ts";

/** One tool under test; it leaves out the transfers it cannot do. */
export interface Contender {
  /** The report's row name. */
  name: string;
  /** Upload the large file. */
  putFile?: () => Promise<Timing>;
  /** Download the large file that `putFile` uploaded. */
  getFile?: () => Promise<Timing>;
  /** Upload the tree, to a new name each time. */
  putTree?: () => Promise<Timing>;
  /** Download the tree that the last `putTree` uploaded. */
  getTree?: () => Promise<Timing>;
  /** Upload the compressible tree, compressed as the tool does (`-z`, `-C`, `--compress`). */
  putText?: () => Promise<Timing>;
  /** Download the compressible tree that the last `putText` uploaded, compressed. */
  getText?: () => Promise<Timing>;
}
