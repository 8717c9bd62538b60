/**
 * Index sources: in-memory iterators of sample ids (SEED_SPEC §4.1 without the cursor files and
 * wall-clock reseeding of §8.8-§8.9). Random draws are seeded, so the same seed gives the same
 * id sequence.
 * @module
 */

import { join } from "node:path";
import { Rng } from "../io/prng.ts";
import { countIds, idAt, type IdRange, readExcludeList, readIdList } from "../io/index_ranges.ts";
import { datasetSplits, indexRangeDir } from "../io/manifest.ts";

/** Endless uniform draws over the union of inclusive ranges, redrawing ids in `exclude`. */
export function* randomIds(
  ranges: readonly IdRange[],
  opts: { seed: number; stream?: number; exclude?: Iterable<number> },
): Generator<number> {
  if (ranges.length === 0) throw new RangeError("randomIds: no ranges");
  const rng = new Rng(opts.seed, 0x51d0_0000 + (opts.stream ?? 0));
  const cum: number[] = [];
  let total = 0;
  for (const [lo, hi] of ranges) {
    if (!(hi >= lo)) throw new RangeError(`randomIds: bad range [${lo}, ${hi}]`);
    total += hi - lo + 1;
    cum.push(total);
  }
  const excluded = new Set(opts.exclude ?? []);
  let inRanges = 0;
  for (const id of excluded) if (ranges.some(([lo, hi]) => id >= lo && id <= hi)) inRanges++;
  if (inRanges >= total) throw new RangeError("randomIds: every id of the ranges is excluded");
  while (true) {
    const r = rng.int(total);
    let k = 0;
    while (cum[k] <= r) k++;
    const id = ranges[k][0] + r - (k > 0 ? cum[k - 1] : 0);
    if (!excluded.has(id)) yield id;
  }
}

/**
 * `count` distinct ids drawn uniformly from the ranges (all of them when there are fewer), in draw
 * order. The draw is a seeded partial shuffle, so with the same seed the first k ids of a larger
 * draw are exactly a draw of k: training's held-out monitor (the run's first `evalSamples`) scores
 * the start of the subset `deno task eval` scores.
 */
export function sampleIds(ranges: readonly IdRange[], opts: { count: number; seed: number }): number[] {
  const total = countIds(ranges);
  const n = Math.min(opts.count, total);
  const rng = new Rng(opts.seed, 0x5e1ec7);
  // Positions k..total-1 of a virtual identity permutation, with swapped-out entries remembered.
  const moved = new Map<number, number>();
  const at = (i: number) => moved.get(i) ?? i;
  const out: number[] = [];
  for (let k = 0; k < n; k++) {
    const r = k + rng.int(total - k);
    const pick = at(r);
    moved.set(r, at(k));
    out.push(idAt(ranges, pick));
  }
  return out;
}

/** Every id of the ranges in order (the full test); endless when `loop`. */
export function* sequentialIds(ranges: readonly IdRange[], opts: { loop?: boolean } = {}): Generator<number> {
  do {
    for (const [lo, hi] of ranges) for (let id = lo; id <= hi; id++) yield id;
  } while (opts.loop && ranges.length > 0);
}

/** The ids of a list in order (e.g. Protocol2/all_id.txt); endless when `loop`. */
export function* listIds(ids: readonly number[], opts: { loop?: boolean } = {}): Generator<number> {
  do {
    yield* ids;
  } while (opts.loop && ids.length > 0);
}

/**
 * Draws each next id from one of several sources, chosen with probability proportional to its
 * weight; a finite source that runs out drops out, and the mixture ends when all have.
 */
export function* mixIds(
  parts: readonly { ids: Iterable<number>; weight: number }[],
  opts: { seed: number; stream?: number },
): Generator<number> {
  const rng = new Rng(opts.seed, 0x3170_0000 + (opts.stream ?? 0));
  const live = parts.map((p) => ({ it: p.ids[Symbol.iterator](), weight: p.weight }));
  for (const p of live) {
    if (!(p.weight > 0)) throw new RangeError(`mixIds: weights must be > 0, got ${p.weight}`);
  }
  while (live.length > 0) {
    const total = live.reduce((s, p) => s + p.weight, 0);
    let r = rng.float() * total;
    let k = 0;
    while (k < live.length - 1 && r >= live[k].weight) r -= live[k++].weight;
    const next = live[k].it.next();
    if (next.done) live.splice(k, 1);
    else yield next.value;
  }
}

/** A declarative index source, resolved against a dataset root by resolveSource. */
export type SourceSpec =
  | "train"
  | "test"
  | "protocol2"
  | { kind: "random"; ranges?: IdRange[]; split?: "train" | "test"; exclude?: string | number[] }
  | { kind: "sequential"; ranges?: IdRange[]; split?: "train" | "test"; loop?: boolean }
  | { kind: "list"; path?: string; ids?: number[]; loop?: boolean }
  | { kind: "mixture"; parts: { source: SourceSpec; weight: number }[] };

/**
 * Builds the id iterator of a spec: "train" = random draws over the train split, "test" = every
 * test id once in order, "protocol2" = `<index_range>/Protocol2/all_id.txt` once. Splits come from
 * the root's manifest or the seed's defaults. Relative list/exclude paths are taken from the root.
 */
export async function resolveSource(
  root: string,
  spec: SourceSpec,
  opts: { seed: number; stream?: number },
): Promise<Iterable<number>> {
  const stream = opts.stream ?? 0;
  if (spec === "train") return resolveSource(root, { kind: "random", split: "train" }, opts);
  if (spec === "test") return resolveSource(root, { kind: "sequential", split: "test" }, opts);
  if (spec === "protocol2") {
    return listIds(await readIdList(join(await indexRangeDir(root), "Protocol2", "all_id.txt")));
  }
  const at = (p: string) => p.startsWith("/") ? p : join(root, p);
  switch (spec.kind) {
    case "random":
    case "sequential": {
      const ranges = spec.ranges ??
        (await datasetSplits(root))[spec.split ?? (spec.kind === "random" ? "train" : "test")];
      if (spec.kind === "sequential") return sequentialIds(ranges, { loop: spec.loop });
      const exclude = typeof spec.exclude === "string"
        ? await readExcludeList(at(spec.exclude))
        : spec.exclude;
      return randomIds(ranges, { seed: opts.seed, stream, exclude });
    }
    case "list":
      if (spec.ids) return listIds(spec.ids, { loop: spec.loop });
      if (!spec.path) throw new RangeError("resolveSource: a list source needs ids or path");
      return listIds(await readIdList(at(spec.path)), { loop: spec.loop });
    case "mixture": {
      const parts = await Promise.all(spec.parts.map(async (p, i) => ({
        ids: await resolveSource(root, p.source, { seed: opts.seed, stream: stream * 64 + i + 1 }),
        weight: p.weight,
      })));
      return mixIds(parts, { seed: opts.seed, stream });
    }
  }
}
