/**
 * Named model presets. All keep the seed's structure (stem, hourglass stacks of B and I modules,
 * heads, link); they differ in widths, input size and how deep the hourglass recursion goes.
 * `seed` is the published network; `small` and `tiny` are scaled down so they train on a CPU.
 * @module
 */
import type { HourglassConfig } from "./hourglass.ts";

/** Preset names. */
export type PresetName = "seed" | "small" | "tiny";

/** The presets' structures (d2 is the stage's depth; the coarse-to-fine schedule overrides it). */
export const PRESETS: Record<PresetName, HourglassConfig> = {
  seed: {
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
  small: {
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
  tiny: {
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
};

/** Command-line overrides of a preset; absent fields keep the preset's value. */
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

/** A preset with overrides applied; unknown names list the known ones. */
export function modelConfig(name: string, over: ModelOverrides = {}): HourglassConfig {
  if (!(name in PRESETS)) {
    throw new RangeError(`unknown preset "${name}"; known presets: ${Object.keys(PRESETS).join(", ")}`);
  }
  const base = PRESETS[name as PresetName];
  const out: HourglassConfig = { ...base, stem: [...base.stem] as [number, number] };
  for (const [k, v] of Object.entries(over)) {
    if (v !== undefined) (out as unknown as Record<string, unknown>)[k] = v;
  }
  return out;
}
