/**
 * What every command-line task shares: strict option parsing that refuses stray words, value
 * checks whose errors name the option and what was expected, and the help text's own option list
 * (so a test can hold the help and the parser to each other).
 * @module
 */
import { parseArgs } from "node:util";

/** One option of a task: a boolean flag or an option with a value, with an optional short alias. */
export interface OptionSpec {
  type: "string" | "boolean";
  short?: string;
  /** A value option whose value may be left out: `--name` alone reads as the empty string. */
  optionalValue?: boolean;
}

/** A task's option table, by long name. */
export type OptionTable = Record<string, OptionSpec>;

/**
 * An option table from the names of its options that take a value and of its flags, each a
 * whitespace-separated list; `help` (with `-h`) is always there.
 */
export function optionTable(o: { values?: string; flags?: string; optional?: string }): OptionTable {
  const table: OptionTable = { help: { type: "boolean", short: "h" } };
  const names = (list = "") => list.split(/\s+/).filter(Boolean);
  for (const name of names(o.values)) table[name] = { type: "string" };
  for (const name of names(o.flags)) table[name] = { type: "boolean" };
  for (const name of names(o.optional)) table[name] = { type: "string", optionalValue: true };
  return table;
}

/** A command line the task cannot take; the task prints it with a pointer to --help and exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Parsed option values by long name. */
export type Values = Record<string, string | boolean | undefined>;

/**
 * Parses `args` against `options`: unknown options and positional arguments are refused with a
 * UsageError that names them.
 */
export function parseCommandLine(task: string, args: readonly string[], options: OptionTable): Values {
  // An option with an optional value takes the next word unless it is another option.
  const spelled: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const name = args[i].startsWith("--") ? args[i].slice(2) : "";
    if (!options[name]?.optionalValue) spelled.push(args[i]);
    else if (i + 1 < args.length && !args[i + 1].startsWith("-")) spelled.push(`--${name}=${args[++i]}`);
    else spelled.push(`--${name}=`);
  }
  const table = Object.fromEntries(
    Object.entries(options).map((
      [k, o],
    ) => [k, o.short ? { type: o.type, short: o.short } : { type: o.type }]),
  );
  let parsed;
  try {
    parsed = parseArgs({ args: spelled, options: table, strict: true, allowPositionals: true });
  } catch (e) {
    throw new UsageError((e as Error).message.replace(/\. To specify a positional.*$/s, ""));
  }
  if (parsed.positionals.length > 0) {
    const words = parsed.positionals.map((p) => `"${p}"`).join(", ");
    throw new UsageError(
      `unexpected argument${parsed.positionals.length > 1 ? "s" : ""} ${words}: deno task ${task} takes ` +
        `only options`,
    );
  }
  return { ...parsed.values } as Values;
}

/**
 * Runs a task's main function: prints its error as `task: message` and exits 1 (2 for a usage
 * error, with a pointer to --help); exits with main's status otherwise.
 */
export async function runTask(task: string, main: () => Promise<number | void>): Promise<never> {
  try {
    Deno.exit((await main()) ?? 0);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(`${task}: ${e.message}\nSee: deno task ${task} --help`);
      Deno.exit(2);
    }
    console.error(`${task}: ${(e as Error).message}`);
    Deno.exit(1);
  }
}

/**
 * The long option names a help text documents: every `--name` at the start of an option entry
 * (a line's first word, a word after two spaces in a multi-column line, or an alternative after
 * " | "), plus `-h, --help`.
 */
export function helpOptionNames(help: string): string[] {
  const names = new Set<string>();
  for (const line of help.split("\n")) {
    // An entry starts a line (after indentation) or follows a gap of two or more spaces.
    for (const m of line.matchAll(/(?:^\s*|\s{2,}|\s\|\s|^\s*-\w,\s+)--([a-z0-9][a-z0-9-]*)/g)) {
      names.add(m[1]);
    }
  }
  return [...names].sort();
}

// ---------------------------------------------------------------------------------------------
// Values

/** A string option's value, undefined when absent. */
export function str(v: Values, name: string): string | undefined {
  const x = v[name];
  return typeof x === "string" ? x : undefined;
}

/** A finite number, or undefined when the option is absent. */
export function num(v: Values, name: string): number | undefined {
  const s = str(v, name);
  if (s === undefined) return undefined;
  const x = Number(s);
  if (s.trim() === "" || !Number.isFinite(x)) {
    throw new UsageError(`--${name}: expected a number, got "${s}"`);
  }
  return x;
}

/** An integer >= min, or undefined when absent. */
export function int(v: Values, name: string, min = 1): number | undefined {
  const s = str(v, name);
  if (s === undefined) return undefined;
  return intValue(s, name, min);
}

function intValue(s: string, name: string, min: number): number {
  const x = Number(s);
  if (s.trim() === "" || !Number.isInteger(x) || x < min) {
    throw new UsageError(`--${name}: expected an integer >= ${min}, got "${s}"`);
  }
  return x;
}

/** Two positive numbers LO,HI with LO <= HI, or undefined when absent. */
export function positiveRange(v: Values, name: string, example: string): [number, number] | undefined {
  const s = str(v, name);
  if (s === undefined) return undefined;
  const p = s.split(",").map((x) => Number(x.trim()));
  if (p.length !== 2 || !p.every((x) => Number.isFinite(x) && x > 0) || p[0] > p[1]) {
    throw new UsageError(`--${name}: expected LO,HI with 0 < LO <= HI (e.g. ${example}), got "${s}"`);
  }
  return [p[0], p[1]];
}

/** A comma list of integers >= min, or undefined when absent. */
export function intList(v: Values, name: string, min = 1): number[] | undefined {
  const s = str(v, name);
  if (s === undefined) return undefined;
  return s.split(",").map((p) => intValue(p.trim(), name, min));
}

/** A number in [lo, hi], or undefined when absent. */
export function inRange(v: Values, name: string, lo: number, hi: number, what: string): number | undefined {
  const x = num(v, name);
  if (x !== undefined && (x < lo || x > hi)) {
    throw new UsageError(`--${name}: expected ${what} in [${lo}, ${hi}], got "${str(v, name)}"`);
  }
  return x;
}

/** One of `choices`, or undefined when absent. */
export function choice<T extends string>(v: Values, name: string, choices: readonly T[]): T | undefined {
  const s = str(v, name);
  if (s !== undefined && !(choices as readonly string[]).includes(s)) {
    throw new UsageError(`--${name}: expected ${choices.join(" or ")}, got "${s}"`);
  }
  return s as T | undefined;
}

/** A comma list of names, each one of `choices`, or undefined when absent. */
export function nameList<T extends string>(v: Values, name: string, choices: readonly T[]): T[] | undefined {
  const s = str(v, name);
  if (s === undefined) return undefined;
  const out = s.split(",").map((p) => p.trim()).filter(Boolean);
  for (const p of out) {
    if (!(choices as readonly string[]).includes(p)) {
      throw new UsageError(`--${name}: unknown "${p}"; expected a comma list of ${choices.join(", ")}`);
    }
  }
  return out as T[];
}

/** Long names of the options in `v` that were given (boolean flags only when set). */
export function givenOptions(v: Values): string[] {
  return Object.entries(v).filter(([, x]) => x !== undefined && x !== false).map(([k]) => k);
}
