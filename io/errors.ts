/**
 * The one error type for bad input on disk: it always names the file (and line when known) and
 * says what was expected, so a user can go straight to the broken sample.
 * @module
 */

/** A file is missing, malformed, or of the wrong shape. */
export class DataError extends Error {
  /** Path of the offending file. */
  readonly path: string;
  /** 1-based line number, when the problem is on one line. */
  readonly line?: number;

  /** `expected` says what should have been there; `got` (optional) what was found. */
  constructor(path: string, expected: string, opts: { line?: number; got?: string; cause?: unknown } = {}) {
    const where = opts.line !== undefined ? `${path}:${opts.line}` : path;
    const got = opts.got !== undefined ? `, got ${opts.got}` : "";
    super(
      `${where}: expected ${expected}${got}`,
      opts.cause !== undefined ? { cause: opts.cause } : undefined,
    );
    this.name = "DataError";
    this.path = path;
    this.line = opts.line;
  }
}
