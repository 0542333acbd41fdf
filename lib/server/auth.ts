/**
 * Access tokens and what their scopes allow. Pure: the server reads the
 * files and environment, this module decides.
 *
 * @module
 */

import { createHash, timingSafeEqual } from "node:crypto";
import { FerryError } from "../util/errors.ts";

/**
 * What a token may do: `read` lists and downloads; `write` also creates;
 * `admin` also replaces and deletes.
 *
 * @example
 * ```ts
 * import { allows, type Scope } from "./auth.ts";
 * const ci: Scope = "write";
 * console.assert(allows(ci, "create") && !allows(ci, "delete"));
 * ```
 */
export type Scope = "read" | "write" | "admin";

const SCOPES: readonly Scope[] = ["read", "write", "admin"];

/** What a request does, for the scope check. */
export type Action =
  /** ls, glob, stat, get, sum */
  | "read"
  /** put of a new file, mkdir, partial */
  | "create"
  /** put over an existing file */
  | "replace"
  /** rm, mv (a rename removes the old name) */
  | "delete";

/** The least scope each action needs. */
const NEEDS: Readonly<Record<Action, Scope>> = {
  read: "read",
  create: "write",
  replace: "admin",
  delete: "admin",
};

/**
 * Whether `scope` allows `action`.
 *
 * @example
 * ```ts
 * import { allows } from "./auth.ts";
 * console.assert(allows("write", "create") && !allows("write", "delete"));
 * ```
 */
export function allows(scope: Scope, action: Action): boolean {
  return SCOPES.indexOf(scope) >= SCOPES.indexOf(NEEDS[action]);
}

/** The scope an action needs, for messages. */
export function scopeFor(action: Action): Scope {
  return NEEDS[action];
}

/**
 * One accepted token and its scope.
 *
 * @example
 * ```ts
 * import type { TokenGrant } from "./auth.ts";
 * const grant: TokenGrant = { token: "view-only-0123456789abcdef", scope: "read" };
 * console.assert(grant.scope === "read");
 * ```
 */
export interface TokenGrant {
  /** The secret a client presents (at least {@linkcode MIN_TOKEN_LENGTH} printable characters). */
  token: string;
  /** What it allows. */
  scope: Scope;
}

/** Shortest token accepted: a guessable token is no protection. */
export const MIN_TOKEN_LENGTH = 16;

function digest(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}

/**
 * The tokens a server accepts. Lookups compare SHA-256 digests in constant
 * time and always against every token, so timing tells nothing about how
 * much of a guess was right, or which token it was close to.
 *
 * @example
 * ```ts
 * import { TokenTable } from "./auth.ts";
 * const table = new TokenTable([{ token: "0123456789abcdef-ci", scope: "write" }]);
 * console.assert(table.check("0123456789abcdef-ci") === "write");
 * console.assert(table.check("guess") === undefined);
 * ```
 */
export class TokenTable {
  readonly #grants: { digest: Buffer; scope: Scope }[];

  /** Accept `grants`; fails closed (USAGE) when there are none or one is too short. */
  constructor(grants: TokenGrant[]) {
    if (grants.length === 0) throw new FerryError("USAGE", "no tokens configured");
    for (const { token } of grants) checkToken(token);
    this.#grants = grants.map(({ token, scope }) => ({ digest: digest(token), scope }));
  }

  /** How many tokens there are. */
  get size(): number {
    return this.#grants.length;
  }

  /** The scope of `token`, or undefined if it is not one of ours. */
  check(token: string | undefined): Scope | undefined {
    const probe = digest(token ?? "");
    let found: Scope | undefined;
    for (const grant of this.#grants) {
      if (timingSafeEqual(grant.digest, probe) && found === undefined) found = grant.scope;
    }
    return token ? found : undefined;
  }
}

/** Refuse an empty, short or unprintable token (USAGE). */
export function checkToken(token: string): string {
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new FerryError(
      "USAGE",
      `a token must be at least ${MIN_TOKEN_LENGTH} characters (got ${token.length})`,
    );
  }
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new FerryError("USAGE", "a token must be printable ASCII without spaces");
  }
  return token;
}

/**
 * Parse a tokens file: one `TOKEN SCOPE` per line (`read`, `write` or
 * `admin`); blank lines and `#` comments are skipped. Any bad line, or no
 * token at all, is an error naming the line, never a silent skip.
 *
 * @example
 * ```ts
 * import { parseTokens } from "./auth.ts";
 * const grants = parseTokens("# CI uploads\nci-0123456789abcdef write\n");
 * console.assert(grants[0].scope === "write");
 * ```
 */
export function parseTokens(text: string, source = "tokens file"): TokenGrant[] {
  const grants: TokenGrant[] = [];
  const lines = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const where = `${source} line ${i + 1}`;
    const [token, scope, ...rest] = line.split(/\s+/);
    if (!SCOPES.includes(scope as Scope) || rest.length > 0) {
      throw new FerryError("USAGE", `${where}: expected "TOKEN read|write|admin"`);
    }
    try {
      checkToken(token);
    } catch (err) {
      throw new FerryError("USAGE", `${where}: ${(err as Error).message}`);
    }
    // One token twice, with two scopes or the same one, is a mistake in the file: which scope
    // was meant is not ferryd's guess to make.
    const earlier = lines.get(token);
    if (earlier !== undefined) {
      throw new FerryError(
        "USAGE",
        `${where}: this token is already on line ${earlier}; give each token once`,
      );
    }
    lines.set(token, i + 1);
    grants.push({ token, scope: scope as Scope });
  });
  if (grants.length === 0) throw new FerryError("USAGE", `${source} holds no tokens`);
  return grants;
}

/**
 * Whether binding `hostname` exposes the server beyond this machine:
 * anything but a loopback address (`127.0.0.0/8`, `::1`, `localhost`).
 *
 * @example
 * ```ts
 * import { isLoopback } from "./auth.ts";
 * console.assert(isLoopback("127.0.0.1") && !isLoopback("0.0.0.0"));
 * ```
 */
export function isLoopback(hostname: string): boolean {
  const h = hostname.toLowerCase().replace(/^\[|\]$/g, "");
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h) ||
    /^::ffff:127(\.\d{1,3}){3}$/.test(h);
}
