/**
 * A training run's complete configuration, saved as `config.json` in the run folder so that a
 * resumed run, and the evaluation of any of its checkpoints, rebuild exactly the same network.
 * @module
 */
import { join } from "node:path";
import type { HourglassConfig } from "../graph/models/hourglass.ts";
import {
  CLEAN,
  heatmap3dWeight,
  type LegacyFlags,
  type LossConfig,
  type PoseNetConfig,
} from "../graph/models/pose_net.ts";
import type { LrPolicy, Solver } from "../graph/solver.ts";
import { Adam, RMSProp, SGD } from "../graph/solver.ts";

/** One coarse-to-fine stage: its depth and how many iterations it trains. */
export interface StageSpec {
  d2: number;
  iters: number;
}

/** Solver settings (Caffe names). */
export interface SolverSpec {
  type: "rmsprop" | "sgd" | "adam";
  baseLr: number;
  policy: LrPolicy;
  weightDecay: number;
  momentum?: number;
  rmsDecay?: number;
  delta?: number;
}

/** Everything a run needs. */
export interface RunConfig {
  format: "volpose-run/1";
  /** Dataset root. */
  data: string;
  preset: string;
  /** Model structure; its d2 is replaced per stage. */
  model: HourglassConfig;
  schedule: StageSpec[];
  batch: number;
  solver: SolverSpec;
  /** Loss weights; heatmap3d "seed" follows the seed's ratio per d2. */
  losses: Omit<LossConfig, "heatmap3d"> & { heatmap3d: number | "seed" };
  softmaxScale: number;
  legacy: LegacyFlags & { augment: boolean; unswappedDepth: boolean };
  channelOrder: "bgr" | "rgb";
  seed: number;
  workers: number;
  /** Read scalars (and log) every this many iterations. */
  display: number;
  /** Checkpoint every this many iterations (and at the end of every stage, and on Ctrl-C). */
  snapshot: number;
  /** Held-out evaluation every this many iterations (0 = never). */
  evalEvery: number;
  /** Held-out samples per evaluation. */
  evalSamples: number;
  /** Skip (and count) samples whose files are bad instead of stopping. */
  skipBad?: boolean;
  /** Stop (with a checkpoint, as a normal finish) once training has run this many seconds. */
  timeBudgetSec?: number;
  /** Probability of the left-right flip augmentation (absent: the seed's 0.5). */
  flipProb?: number;
  /** Largest absolute rotation of the augmentation, degrees (absent: the seed's 40). */
  maxRotateDeg?: number;
  /** Scale range of the augmentation (absent: the seed's [0.7, 1.3]). */
  scaleRange?: [number, number];
}

/** The network configuration of stage `d2`. */
export function stageNetConfig(
  run: RunConfig,
  d2: number,
  opts: { batch?: number; perSampleErrors?: boolean; monitorGt?: "gt3d" | "aug3d" } = {},
): PoseNetConfig {
  return {
    model: { ...run.model, d2 },
    batch: opts.batch ?? run.batch,
    losses: {
      ...run.losses,
      heatmap3d: run.losses.heatmap3d === "seed" ? heatmap3dWeight(d2) : run.losses.heatmap3d,
    },
    softmaxScale: run.softmaxScale,
    legacy: { ...CLEAN, ...run.legacy },
    perSampleErrors: opts.perSampleErrors,
    monitorGt: opts.monitorGt,
  };
}

/** A solver from its settings. */
export function makeSolver(spec: SolverSpec): Solver {
  const common = { baseLr: spec.baseLr, policy: spec.policy, weightDecay: spec.weightDecay };
  switch (spec.type) {
    case "rmsprop":
      return new RMSProp({ ...common, rmsDecay: spec.rmsDecay, delta: spec.delta });
    case "sgd":
      return new SGD({ ...common, momentum: spec.momentum });
    case "adam":
      return new Adam(common);
  }
}

/** Iteration at which each stage starts and ends (the count carries across stages). */
export function stageBounds(schedule: readonly StageSpec[]): { start: number; end: number }[] {
  let at = 0;
  return schedule.map((s) => {
    const b = { start: at, end: at + s.iters };
    at = b.end;
    return b;
  });
}

/** Parses and checks a saved config; errors name the file and the field. */
export function parseRunConfig(text: string, path: string): RunConfig {
  let v: RunConfig;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${path}: expected a JSON run configuration, got invalid JSON (${(e as Error).message})`);
  }
  if (v?.format !== "volpose-run/1") throw new Error(`${path}: expected "format": "volpose-run/1"`);
  for (
    const k of ["data", "preset", "model", "schedule", "batch", "solver", "losses", "legacy", "seed"] as const
  ) {
    if (v[k] === undefined) throw new Error(`${path}: missing field "${k}"`);
  }
  if (!Array.isArray(v.schedule) || v.schedule.length === 0) {
    throw new Error(`${path}: "schedule" must list stages`);
  }
  const bad = (field: string, want: string, got: unknown) => {
    throw new Error(`${path}: "${field}" must be ${want}, got ${JSON.stringify(got)}`);
  };
  const inRange = (x: unknown, lo: number, hi: number) => typeof x === "number" && x >= lo && x <= hi;
  if (v.flipProb !== undefined && !inRange(v.flipProb, 0, 1)) bad("flipProb", "a probability", v.flipProb);
  if (v.maxRotateDeg !== undefined && !inRange(v.maxRotateDeg, 0, 180)) {
    bad("maxRotateDeg", "degrees in [0, 180]", v.maxRotateDeg);
  }
  const sr = v.scaleRange;
  if (
    sr !== undefined &&
    !(Array.isArray(sr) && sr.length === 2 && inRange(sr[0], 1e-6, Infinity) &&
      inRange(sr[1], sr[0], Infinity))
  ) bad("scaleRange", "[LO, HI] with 0 < LO <= HI", sr);
  return v;
}

/** The run folder under `root` whose config.json is newest, or null when there is none. */
export async function newestRun(root: string): Promise<string | null> {
  let best: { path: string; mtime: number } | null = null;
  try {
    for await (const d of Deno.readDir(root)) {
      if (!d.isDirectory) continue;
      const p = join(root, d.name);
      const st = await Deno.stat(join(p, "config.json")).catch(() => null);
      if (st?.mtime && (!best || st.mtime.getTime() > best.mtime)) {
        best = { path: p, mtime: st.mtime.getTime() };
      }
    }
  } catch { /* no runs folder yet */ }
  return best?.path ?? null;
}

/** The input pipeline's legacy switches implied by a run's legacy flags. */
export function pipelineLegacy(
  run: RunConfig,
): { geometry: boolean; unswappedDepth: boolean; cropAsBbx: boolean } {
  return {
    geometry: run.legacy.augment,
    unswappedDepth: run.legacy.unswappedDepth,
    cropAsBbx: run.legacy.cropAsBbx,
  };
}
