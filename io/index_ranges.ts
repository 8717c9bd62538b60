/**
 * Sample-id bookkeeping of `index_range/` (SEED_SPEC §2.3): inclusive per-(subject, action) id
 * ranges, the Protocol-2 id lists, the id -> action lookup used for per-action reports, and the
 * seed's train/test splits.
 * @module
 */

import { join } from "node:path";
import { DataError } from "./errors.ts";
import { ACTIONS, SUBJECTS } from "./joints.ts";
import { parseNumbers, readText } from "./sample_files.ts";

/** An inclusive id range `[lo, hi]`. */
export type IdRange = [number, number];

/** One row of the range table. */
export interface RangeEntry {
  /** Subject, e.g. "S9". */
  subject: string;
  /** Action name, one of ACTIONS. */
  action: string;
  /** First id (inclusive). */
  start: number;
  /** Last id (inclusive). */
  end: number;
}

/** Train/test id ranges. */
export interface Splits {
  /** Training ranges. */
  train: IdRange[];
  /** Test ranges. */
  test: IdRange[];
}

/** The seed's splits at the true subject boundary S8/S9 (clean default, §8.6). */
export const SEED_SPLITS: Splits = { train: [[0, 1559751]], test: [[1559752, 2108570]] };

/** The seed's splits as configured in its prototxts: 180 S8 frames moved to test (§2.1, §8.6). */
export const LEGACY_SEED_SPLITS: Splits = { train: [[0, 1559571]], test: [[1559572, 2108570]] };

/** Total sample count of the seed's dataset. */
export const SEED_NUM_SAMPLES = 2108571;

/** File name of the range file of one (subject, action). */
export function rangeFileName(subject: string, action: string): string {
  return `${subject}_${action}_range.txt`;
}

/** Formats a range file: one line, two 12-wide integers separated by a space. */
export function formatRange(start: number, end: number): string {
  return `${String(start).padStart(12)} ${String(end).padStart(12)}\n`;
}

function checkIds(path: string, v: ArrayLike<number>, what: string): void {
  for (let i = 0; i < v.length; i++) {
    if (!Number.isInteger(v[i]) || v[i] < 0) {
      throw new DataError(path, `${what}: non-negative integer ids`, { got: String(v[i]) });
    }
  }
}

/** Parses a range file (2 integers, start <= end). */
export function parseRange(text: string, path: string): IdRange {
  const v = parseNumbers(text, path, { count: 2, what: "2 integers start end" });
  checkIds(path, v, "2 integers start end");
  if (v[0] > v[1]) throw new DataError(path, "start <= end", { got: `${v[0]} > ${v[1]}` });
  return [v[0], v[1]];
}

/** Reads one range file. */
export async function readRangeFile(path: string): Promise<IdRange> {
  return parseRange(await readText(path, "2 integers start end"), path);
}

/** Writes one range file. */
export async function writeRangeFile(path: string, range: IdRange): Promise<void> {
  await Deno.writeTextFile(path, formatRange(range[0], range[1]));
}

const RANGE_NAME = /^(S\d+)_([A-Za-z]+)_range\.txt$/;

/**
 * Reads every `S{s}_{Action}_range.txt` of a folder into a table sorted by start.
 * Throws DataError when the folder has none or two ranges overlap.
 */
export async function readRangeTable(dir: string): Promise<RangeEntry[]> {
  const rows: RangeEntry[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      const m = RANGE_NAME.exec(e.name);
      if (!e.isFile || !m) continue;
      const [start, end] = await readRangeFile(join(dir, e.name));
      rows.push({ subject: m[1], action: m[2], start, end });
    }
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new DataError(dir, "a folder of S{s}_{Action}_range.txt files", { got: String(e), cause: e });
  }
  if (rows.length === 0) {
    throw new DataError(dir, "at least one S{s}_{Action}_range.txt file", { got: "none" });
  }
  rows.sort((a, b) => a.start - b.start);
  for (let i = 1; i < rows.length; i++) {
    const p = rows[i - 1], r = rows[i];
    if (r.start <= p.end) {
      throw new DataError(join(dir, rangeFileName(r.subject, r.action)), "a range disjoint from the others", {
        got: `[${r.start}, ${r.end}] overlaps ${rangeFileName(p.subject, p.action)} [${p.start}, ${p.end}]`,
      });
    }
  }
  return rows;
}

/** Writes a range table as one file per row (creating the folder). */
export async function writeRangeTable(dir: string, rows: readonly RangeEntry[]): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const r of rows) await writeRangeFile(join(dir, rangeFileName(r.subject, r.action)), [r.start, r.end]);
}

/** The row containing `id` (binary search over a table from readRangeTable), or undefined. */
export function actionOf(table: readonly RangeEntry[], id: number): RangeEntry | undefined {
  let lo = 0, hi = table.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const r = table[mid];
    if (id < r.start) hi = mid - 1;
    else if (id > r.end) lo = mid + 1;
    else return r;
  }
  return undefined;
}

/** Index of an action name in ACTIONS (the seed's alphabetical order), or -1. */
export function actionIndex(action: string): number {
  return ACTIONS.indexOf(action);
}

/** Index of a subject in SUBJECTS, or -1. */
export function subjectIndex(subject: string): number {
  return SUBJECTS.indexOf(subject);
}

/** Formats an id list: one 12-wide integer per line. */
export function formatIdList(ids: ArrayLike<number>): string {
  let s = "";
  for (let i = 0; i < ids.length; i++) s += String(ids[i]).padStart(12) + "\n";
  return s;
}

/** Parses an id list (any number of non-negative integers). */
export function parseIdList(text: string, path: string): number[] {
  const n = text.split(/\s+/).filter((t) => t !== "").length;
  const v = parseNumbers(text, path, { count: n, what: "integer ids" });
  checkIds(path, v, "one integer id per line");
  return Array.from(v);
}

/** Reads an id list file such as `Protocol2/all_id.txt`. */
export async function readIdList(path: string): Promise<number[]> {
  return parseIdList(await readText(path, "integer ids"), path);
}

/** Writes an id list file. */
export async function writeIdList(path: string, ids: ArrayLike<number>): Promise<void> {
  await Deno.writeTextFile(path, formatIdList(ids));
}

/** Parses an exclude file of GenRandIndex (§4.1): first integer n, then n ids. */
export function parseExcludeList(text: string, path: string): number[] {
  const all = parseIdList(text, path);
  if (all.length === 0) throw new DataError(path, "a count n followed by n ids", { got: "empty file" });
  if (all.length !== all[0] + 1) {
    throw new DataError(path, `${all[0]} ids after the count`, { got: `${all.length - 1}` });
  }
  return all.slice(1);
}

/** Reads an exclude file (first integer n, then n ids). */
export async function readExcludeList(path: string): Promise<number[]> {
  return parseExcludeList(await readText(path, "a count n followed by n ids"), path);
}

/** The Protocol-2 lists: per-action ids and their sorted union. */
export interface Protocol2 {
  /** Ids per action name. */
  byAction: Map<string, number[]>;
  /** Sorted union (`all_id.txt`). */
  all: number[];
}

/** Reads `Protocol2/`: every `{Action}_range.txt` present and `all_id.txt`. */
export async function readProtocol2(dir: string): Promise<Protocol2> {
  const byAction = new Map<string, number[]>();
  for (const action of ACTIONS) {
    const path = join(dir, `${action}_range.txt`);
    try {
      await Deno.stat(path);
    } catch {
      continue;
    }
    byAction.set(action, await readIdList(path));
  }
  const all = await readIdList(join(dir, "all_id.txt"));
  return { byAction, all };
}

/**
 * Writes `Protocol2/`: one `{Action}_range.txt` per entry and `all_id.txt` as the sorted union
 * (duplicates removed; the seed's lists overlap where they overrun an action, §8.22).
 */
export async function writeProtocol2(
  dir: string,
  byAction: ReadonlyMap<string, readonly number[]>,
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  const union = new Set<number>();
  for (const [action, ids] of byAction) {
    await writeIdList(join(dir, `${action}_range.txt`), ids);
    for (const id of ids) union.add(id);
  }
  await writeIdList(join(dir, "all_id.txt"), [...union].sort((a, b) => a - b));
}

/** Number of ids in a list of inclusive ranges. */
export function countIds(ranges: readonly IdRange[]): number {
  return ranges.reduce((n, [lo, hi]) => n + hi - lo + 1, 0);
}

/** The id at position `i` of the ranges taken in order (0 is the first range's first id). */
export function idAt(ranges: readonly IdRange[], i: number): number {
  if (!(i >= 0)) throw new RangeError(`idAt: position ${i} is negative`);
  for (const [lo, hi] of ranges) {
    if (i <= hi - lo) return lo + i;
    i -= hi - lo + 1;
  }
  throw new RangeError(`idAt: position past the ${countIds(ranges)} ids of the ranges`);
}
