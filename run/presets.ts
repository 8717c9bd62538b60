/**
 * Named presets, each one record: the network's structure and every training default that goes
 * with it. All keep the seed's structure (stem, hourglass stacks of B and I modules, heads, link)
 * and differ in widths, input size and depth. `seed` is the published network and its recipe;
 * `small` and `tiny` are scaled down so they train on a laptop GPU or a CPU.
 * @module
 */
import type { HourglassConfig } from "../graph/models/hourglass.ts";
import type { LossConfig } from "../graph/models/pose_net.ts";

/** Preset names. */
export type PresetName = "seed" | "small" | "tiny";

/** The augmentation ranges of training batches. */
export interface AugmentRanges {
  /** Probability of the left-right flip. */
  flipProb: number;
  /** Largest absolute rotation, degrees. */
  maxRotateDeg: number;
  /** Range of the random rescaling. */
  scaleRange: [number, number];
}

/** A learning-rate policy as asked for; poly decays over the whole schedule. */
export type PolicyChoice =
  | { type: "fixed" }
  | { type: "step"; gamma?: number; stepsize?: number }
  | { type: "multistep"; gamma?: number; stepvalues?: number[] }
  | { type: "poly"; power?: number };

/** A preset: a network and the training defaults that go with it. */
export interface Preset {
  /** The structure (d2 is the single-stage default; a coarse-to-fine schedule overrides it). */
  model: HourglassConfig;
  /** Iterations of each stage when none are given. */
  iters: number;
  /** Seconds of training when no iterations are given (absent: the schedule decides alone). */
  timeBudgetSec?: number;
  /**
   * With a budget, a poly rate and no iterations given, end the schedule where the budget ends on
   * the machine at hand (at most `iters`), so the rate reaches zero (run/budget_fit.ts).
   */
  fitBudget?: boolean;
  /** Samples per step. */
  batch: number;
  /** Base learning rate. */
  lr: number;
  /** Learning-rate policy when none is asked for (absent: fixed). */
  lrPolicy?: PolicyChoice;
  /** Loss weights; heatmap3d "seed" follows the seed's ratio per d2. */
  losses: Omit<LossConfig, "heatmap3d"> & { heatmap3d: number | "seed" };
  /** Pre-scale of the 3D softmax that the integral decoder (and loss) reads; the seed's is 50. */
  softmaxScale: number;
  /** Augmentation of training batches. */
  augment: AugmentRanges;
  /** Read scalars (and log) every this many iterations. */
  display: number;
  /** Checkpoint every this many iterations. */
  snapshot: number;
  /** Held-out evaluation every this many iterations (0 = never). */
  evalEvery: number;
}

/** The seed's augmentation: scale 0.7-1.3, rotation up to ±40°, left-right flip with probability 0.5. */
export const SEED_AUGMENT: AugmentRanges = { flipProb: 0.5, maxRotateDeg: 40, scaleRange: [0.7, 1.3] };

/**
 * Off the seed preset, training is led by the integral loss (heatmap L2 at 0.1): measured to learn
 * faster per sample on small networks (README, "Results").
 */
const INTEGRAL_LED: Preset["losses"] = {
  heatmap2d: 0.1,
  heatmap3d: 0.1,
  integral: 1,
  integralNorm: "l1",
  smoothL1: 0,
  js: 0,
};

/** Every preset, by name. */
export const PRESETS: Record<PresetName, Preset> = {
  seed: {
    model: {
      inputSize: 256,
      stem: [64, 128],
      features: 256,
      stacks: 2,
      minSide: 4,
      link: 384,
      joints: 16,
      d1: 1,
      d2: 64,
      norm: "batch",
    },
    iters: 720000,
    batch: 3,
    lr: 2.5e-5,
    losses: { heatmap2d: 1, heatmap3d: "seed", integral: 0, integralNorm: "l1", smoothL1: 0, js: 0 },
    softmaxScale: 50,
    augment: SEED_AUGMENT,
    display: 10,
    snapshot: 10000,
    evalEvery: 0,
  },
  small: {
    model: {
      inputSize: 128,
      stem: [32, 64],
      features: 96,
      stacks: 2,
      minSide: 4,
      link: 128,
      joints: 16,
      d1: 1,
      d2: 16,
      norm: "batch",
    },
    iters: 20000,
    batch: 8,
    lr: 1e-3,
    losses: INTEGRAL_LED,
    softmaxScale: 50,
    augment: SEED_AUGMENT,
    display: 50,
    snapshot: 500,
    evalEvery: 500,
  },
  tiny: {
    model: {
      // A 32-pixel crop (8x8 heatmaps): ten minutes on a 2-core CPU train 2.7x the iterations of a
      // 64-pixel crop and end clearly lower (README, "Results"); `--input 64` gives 16x16 heatmaps.
      inputSize: 32,
      stem: [16, 32],
      features: 32,
      stacks: 2,
      minSide: 4,
      // One module per branch: 1.4x the steps per second of three on a 2-core CPU, a similar held-out
      // error after equal wall-clock time and a faster-falling 2D loss (README, "Results").
      modules: 1,
      link: 48,
      joints: 16,
      d1: 1,
      d2: 16,
      norm: "batch",
    },
    // At most 10,000 iterations, the rate decaying linearly to zero; the budget fit ends the schedule
    // where ten minutes do (7,440 on a fast hour of a 2-core CPU, 143.1 mm; 4,715-4,941 on slow
    // ones). Measured there: fixed 1e-3 over the same time, 158.9 mm; poly from 1e-3, 154.2; poly
    // from 2e-3 capped at 6,500, 145.3 (README, "Results").
    iters: 10000,
    // Without --iters the default run trains at most ten minutes, then evaluates and checkpoints; a
    // slower machine ends the decay earlier instead of stopping with the rate still high.
    timeBudgetSec: 600,
    fitBudget: true,
    batch: 8,
    lr: 2e-3,
    lrPolicy: { type: "poly", power: 1 },
    // The heatmap L2 terms at 0.02 instead of 0.1: 6,400 iterations on three seeds ended 1.8-6.1 mm
    // lower, 142.8 against 146.4 mm on average (README, "Results"); 0.01 lost the gain.
    losses: { ...INTEGRAL_LED, heatmap2d: 0.02, heatmap3d: 0.02 },
    // The integral loss trains through a softer 3D softmax: x15 instead of the seed's x50 ended
    // 9.7-16.8 mm lower after 6,400 iterations on three seeds, x10 1.8-3.7 mm behind x15, x5 far
    // behind (README, "The softmax scale").
    softmaxScale: 15,
    // The synthetic test images are rendered like the training images (random cameras, upright, never
    // mirrored): there no augmentation learned clearly faster (README, "Training on a GPU"), and without
    // the mirror the outfits' left-right colour cue stays consistent.
    augment: { flipProb: 0, maxRotateDeg: 0, scaleRange: [1, 1] },
    display: 50,
    snapshot: 500,
    // A held-out evaluation costs ~50 steps on a CPU; every 1,000 iterations it costs 5% of the budget.
    evalEvery: 1000,
  },
};

/** Structure overrides of a preset; absent fields keep the preset's value. */
export interface ModelOverrides {
  inputSize?: number;
  features?: number;
  stem?: [number, number];
  stacks?: number;
  minSide?: number;
  modules?: number;
  link?: number;
  d1?: number;
  d2?: number;
  norm?: "batch" | "group";
  groups?: number;
}

/** A preset by name; an unknown name lists the known ones. */
export function preset(name: string): Preset {
  if (!(name in PRESETS)) {
    throw new RangeError(`unknown preset "${name}"; known presets: ${Object.keys(PRESETS).join(", ")}`);
  }
  return PRESETS[name as PresetName];
}

/** A preset's structure with overrides applied. */
export function modelConfig(name: string, over: ModelOverrides = {}): HourglassConfig {
  const base = preset(name).model;
  const out: HourglassConfig = { ...base, stem: [...base.stem] as [number, number] };
  for (const [k, v] of Object.entries(over)) {
    if (v !== undefined) (out as unknown as Record<string, unknown>)[k] = v;
  }
  if (out.norm !== "batch" && out.norm !== "group") {
    throw new RangeError(`norm: expected batch or group, got "${out.norm}"`);
  }
  return out;
}
