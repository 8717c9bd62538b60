/**
 * A training run's complete configuration, saved as `config.json` in the run folder so that a
 * resumed run, and the evaluation of any of its checkpoints, rebuild exactly the same network.
 * @module
 */
import type { HourglassConfig } from "../graph/models/hourglass.ts";
import { CLEAN, heatmap3dWeight, type LegacyFlags, type PoseNetConfig } from "../graph/models/pose_net.ts";
import type { LrPolicy, Solver } from "../graph/solver.ts";
import { Adam, RMSProp, SGD } from "../graph/solver.ts";
import {
  type AugmentRanges,
  modelConfig,
  type ModelOverrides,
  type PolicyChoice,
  type Preset,
  preset,
} from "./presets.ts";

export type { PolicyChoice };

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

/** The seed's bug families a run can switch back on, each reproduced only when asked (all off by default). */
export interface RunLegacy extends LegacyFlags {
  /** The seed's half-pixel crop geometry: test-mode labels u256 = u224 / 1.12 + 28.5. */
  augment: boolean;
  /** The flip augmentation swaps the 2D labels of left and right joints but not their depths. */
  unswappedDepth: boolean;
}

/** Command-line names of the legacy switches (`--legacy LIST`), by RunLegacy field. */
export const LEGACY_SWITCHES = {
  "heatmaps": "heatmaps",
  "depth-bounds": "depthBounds",
  "crop-as-bbx": "cropAsBbx",
  "softmax": "softmax",
  "augment": "augment",
  "unswapped-depth": "unswappedDepth",
} as const satisfies Record<string, keyof RunLegacy>;

/** A legacy switch's command-line name. */
export type LegacyName = keyof typeof LEGACY_SWITCHES;

/** Every legacy switch's command-line name. */
export const LEGACY_NAMES = Object.keys(LEGACY_SWITCHES) as LegacyName[];

/** Legacy flags from switch names ("all" turns every one on). */
export function legacyFlags(names: readonly (LegacyName | "all")[]): RunLegacy {
  const out: RunLegacy = { ...CLEAN, augment: false, unswappedDepth: false };
  for (const [name, field] of Object.entries(LEGACY_SWITCHES)) {
    out[field] = names.includes("all") || names.includes(name as LegacyName);
  }
  return out;
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
  losses: Preset["losses"];
  softmaxScale: number;
  legacy: RunLegacy;
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
  /**
   * Present when the single stage's end (and the poly rate's) follows the budget: the run sets
   * `schedule[0].iters` to what fits, at most `plannedIters` (run/budget_fit.ts).
   */
  fitBudget?: { plannedIters: number };
  /** Probability of the left-right flip augmentation (absent: the seed's 0.5). */
  flipProb?: number;
  /** Largest absolute rotation of the augmentation, degrees (absent: the seed's 40). */
  maxRotateDeg?: number;
  /** Scale range of the augmentation (absent: the seed's [0.7, 1.3]). */
  scaleRange?: [number, number];
}

/**
 * Training runs the monitor-only layers (the training batches' MPJPE and its parts, which no
 * loss or update reads) and the loss values' sums on every this many steps (Net.monitorEvery):
 * the displayed window means then average a fifth of its batches, and the step skips ~20 small
 * dispatches (~1.8 ms of the tiny@32 step on a 2-core CPU), and the losses' ~6, four times in five.
 */
export const TRAIN_MONITOR_EVERY = 5;

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
  checkAugment(v, (field, want, got) => {
    throw new Error(`${path}: "${field}" must be ${want}, got ${JSON.stringify(got)}`);
  });
  return v;
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

/** What a run changes of its preset; every field is optional but the dataset. */
export interface RunOverrides {
  /** Dataset root in the seed's layout. */
  data: string;
  /** Structure overrides. */
  model?: ModelOverrides;
  /** Depths d2 of the coarse-to-fine stages, trained one after another (default: the model's d2). */
  schedule?: number[];
  /** Iterations per stage: one value for every stage, or one per stage (default: the preset's). */
  iters?: number | number[];
  /** Stop, as a normal finish, after this many seconds (default: the preset's when no iters are given). */
  timeBudgetSec?: number;
  batch?: number;
  solver?: {
    type?: SolverSpec["type"];
    baseLr?: number;
    momentum?: number;
    rmsDecay?: number;
    weightDecay?: number;
    policy?: PolicyChoice;
  };
  losses?: Partial<Preset["losses"]>;
  softmaxScale?: number;
  /** The seed's bug families to reproduce. */
  legacy?: Partial<RunLegacy>;
  channelOrder?: "bgr" | "rgb";
  seed?: number;
  /** Input pipeline workers (default: every core). */
  workers?: number;
  display?: number;
  snapshot?: number;
  evalEvery?: number;
  evalSamples?: number;
  skipBad?: boolean;
  /** Augmentation ranges of training batches. */
  augment?: Partial<AugmentRanges>;
}

/** The held-out samples of a run's periodic evaluation when none are asked for. */
export const DEFAULT_EVAL_SAMPLES = 240;

/**
 * The complete configuration of a run: the preset's record with the overrides applied. Values are
 * checked here, so a library caller gets the same errors as the command line.
 */
export function runConfig(presetName: string, over: RunOverrides): RunConfig {
  const p = preset(presetName);
  const model = modelConfig(presetName, over.model);
  const depths = over.schedule ?? [model.d2];
  const iters = over.iters === undefined
    ? [p.iters]
    : typeof over.iters === "number"
    ? [over.iters]
    : over.iters;
  if (depths.length === 0) throw new RangeError("schedule: expected at least one stage depth");
  if (iters.length !== 1 && iters.length !== depths.length) {
    throw new RangeError(`iters: give one value or one per stage (${depths.length}), got ${iters.length}`);
  }
  for (const [name, xs] of [["schedule", depths], ["iters", iters]] as const) {
    for (const x of xs) {
      if (!Number.isInteger(x) || x < 1) throw new RangeError(`${name}: expected integers >= 1, got ${x}`);
    }
  }
  const schedule: StageSpec[] = depths.map((d2, i) => ({
    d2,
    iters: iters.length === 1 ? iters[0] : iters[i],
  }));
  const total = schedule.reduce((a, b) => a + b.iters, 0);
  const sv = over.solver ?? {};
  const policy = lrPolicy(sv.policy ?? p.lrPolicy ?? { type: "fixed" }, total);
  const timeBudgetSec = over.timeBudgetSec ?? (over.iters === undefined ? p.timeBudgetSec : undefined);
  const fit = p.fitBudget === true && over.iters === undefined && timeBudgetSec !== undefined &&
    schedule.length === 1 && policy.type === "poly";
  const aug = merged(p.augment, over.augment);
  checkAugment(aug, (field, want, got) => {
    throw new RangeError(`augmentation ${field}: expected ${want}, got ${JSON.stringify(got)}`);
  });
  return {
    format: "volpose-run/1",
    data: over.data,
    preset: presetName,
    model,
    schedule,
    batch: over.batch ?? p.batch,
    solver: {
      type: sv.type ?? "rmsprop",
      baseLr: sv.baseLr ?? p.lr,
      policy,
      weightDecay: sv.weightDecay ?? 0,
      momentum: sv.momentum,
      rmsDecay: sv.rmsDecay,
    },
    losses: merged(p.losses, over.losses),
    softmaxScale: over.softmaxScale ?? p.softmaxScale,
    legacy: merged(legacyFlags([]), over.legacy),
    channelOrder: over.channelOrder ?? "bgr",
    seed: over.seed ?? 1,
    workers: over.workers ?? navigator.hardwareConcurrency,
    display: over.display ?? p.display,
    snapshot: over.snapshot ?? p.snapshot,
    evalEvery: over.evalEvery ?? p.evalEvery,
    evalSamples: over.evalSamples ?? DEFAULT_EVAL_SAMPLES,
    skipBad: over.skipBad ?? false,
    flipProb: aug.flipProb,
    maxRotateDeg: aug.maxRotateDeg,
    scaleRange: aug.scaleRange,
    timeBudgetSec,
    ...(fit ? { fitBudget: { plannedIters: total } } : {}),
  };
}

/** `base` with the fields `over` defines (an undefined field keeps the base's value). */
function merged<T extends object>(base: T, over: Partial<T> | undefined): T {
  const out = { ...base };
  for (const [k, x] of Object.entries(over ?? {})) {
    if (x !== undefined) (out as Record<string, unknown>)[k] = x;
  }
  return out;
}

/** The solver's policy from the asked-for one; Caffe's defaults fill what is not given. */
function lrPolicy(c: PolicyChoice, totalIters: number): LrPolicy {
  switch (c.type) {
    case "fixed":
      return { type: "fixed" };
    case "step":
      return { type: "step", gamma: c.gamma ?? 0.1, stepsize: c.stepsize ?? 100000 };
    case "multistep":
      return { type: "multistep", gamma: c.gamma ?? 0.1, stepvalues: c.stepvalues ?? [] };
    case "poly":
      return { type: "poly", power: c.power ?? 1, maxIter: totalIters };
  }
}

/** Checks augmentation ranges; `bad` names the field, what was expected and what was found. */
function checkAugment(
  a: Partial<AugmentRanges>,
  bad: (field: string, want: string, got: unknown) => void,
): void {
  const within = (x: unknown, lo: number, hi: number) => typeof x === "number" && x >= lo && x <= hi;
  if (a.flipProb !== undefined && !within(a.flipProb, 0, 1)) bad("flipProb", "a probability", a.flipProb);
  if (a.maxRotateDeg !== undefined && !within(a.maxRotateDeg, 0, 180)) {
    bad("maxRotateDeg", "degrees in [0, 180]", a.maxRotateDeg);
  }
  const sr = a.scaleRange;
  if (
    sr !== undefined &&
    !(Array.isArray(sr) && sr.length === 2 && within(sr[0], 1e-6, Infinity) && within(sr[1], sr[0], Infinity))
  ) bad("scaleRange", "[LO, HI] with 0 < LO <= HI", sr);
}
