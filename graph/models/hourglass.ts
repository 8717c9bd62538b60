/**
 * The seed's network (SEED_SPEC §5) as a layer list: a stem, a stack of hourglasses built from
 * pre-activation bottleneck (B) and inception-residual (I) modules, 1x1 heads, the link between
 * stacks, and the volumetric head `conv_5_d{D}` whose name changes with D so that each
 * coarse-to-fine stage re-initialises it. Widths, depth, stack count and input size are
 * parameters, so the same structure scales from the 40 M-parameter seed network down to presets
 * that train on a CPU.
 * @module
 */
import type { Layer } from "../layer.ts";
import { Convolution } from "../layers/convolution.ts";
import { Deconvolution } from "../layers/deconvolution.ts";
import { BatchNorm } from "../layers/batch_norm.ts";
import { GroupNorm } from "../layers/group_norm.ts";
import { MaxPool } from "../layers/pool.ts";
import { Eltwise } from "../layers/eltwise.ts";
import { Concat } from "../layers/concat_slice.ts";

/** Structure of the network. */
export interface HourglassConfig {
  /** Input crop side (256 in the seed); heatmaps are a quarter of it. */
  inputSize: number;
  /** Channels of conv_1 and of residual_1..3 (64, 128 in the seed). */
  stem: [number, number];
  /** Hourglass feature width f (256 in the seed); hourglass outputs have 2f channels. */
  features: number;
  /** Number of hourglass stacks (2 in the seed); all but the last predict a 2D heatmap. */
  stacks: number;
  /** Side of the innermost hourglass level (4 in the seed). */
  minSide: number;
  /**
   * Residual modules in each skip and down branch of every hourglass level (3 in the seed; absent
   * means 3). Fewer modules keep the structure (stem, levels, I/B modules, heads, link) at a
   * fraction of the depth and cost.
   */
  modules?: number;
  /** Channels of the stack-to-stack link (384 in the seed). */
  link: number;
  /** Number of joints. */
  joints: number;
  /** Depth of the intermediate stacks' heatmaps (d1 = 1: a 2D heatmap). */
  d1: number;
  /** Depth of the last stack's volumetric heatmap (d2 = 2 ... 64). */
  d2: number;
  /** Normalisation: the seed's batch norm, or group norm (its batch-size-1 variant). */
  norm: "batch" | "group";
  /** Channel groups for group norm. */
  groups?: number;
}

/** The seed's initialisation std of the volumetric head, by depth (SEED_SPEC §5.4). */
export function headStd(d2: number): number {
  return d2 <= 16 ? 0.01 : d2 <= 32 ? 0.001 : 0.0003;
}

/** Names of the network's input and output blobs. */
export interface HourglassBlobs {
  image: string;
  /** One heatmap per stack: intermediate stacks' `heatmap`, `heatmap_s2`, ...; the last is `heatmap2`. */
  heatmaps: string[];
}

/** Builds the layer list; the input blob is "image" [B, 3, S, S]. */
export function hourglassLayers(cfg: HourglassConfig): { layers: Layer[]; blobs: HourglassBlobs } {
  const layers: Layer[] = [];
  const f = cfg.features;
  const conv = (
    name: string,
    bottom: string,
    numOutput: number,
    kernel: number,
    o: { stride?: number; std?: number } = {},
  ) => {
    const stride = o.stride ?? 1;
    layers.push(
      new Convolution(name, {
        bottom,
        top: name,
        numOutput,
        kernel,
        stride,
        pad: (kernel - 1) >> 1,
        weightFiller: { type: "gaussian", std: o.std ?? 0.01 },
      }),
    );
    return name;
  };
  const norm = (name: string, bottom: string, relu: boolean) => {
    if (cfg.norm === "group") {
      layers.push(new GroupNorm(name, { bottom, top: name, groups: cfg.groups ?? 8, affine: true, relu }));
    } else {
      layers.push(new BatchNorm(name, { bottom, top: name, affine: true, relu }));
    }
    return name;
  };
  const sum = (name: string, a: string, b: string) => {
    layers.push(new Eltwise(name, { bottoms: [a, b], top: name }));
    return name;
  };
  const pool = (name: string, bottom: string) => {
    layers.push(new MaxPool(name, { bottom, top: name, kernel: 2, stride: 2 }));
    return name;
  };
  const channelsOf = new Map<string, number>();
  const up = (name: string, bottom: string, channels: number) => {
    layers.push(
      new Deconvolution(name, {
        bottom,
        top: name,
        numOutput: channels,
        group: channels,
        kernel: 4,
        stride: 2,
        pad: 1,
        bias: false,
        weightFiller: { type: "bilinear" },
        lrMult: [0, 0],
      }),
    );
    return name;
  };
  // Bottleneck B(cin -> cout): BN.ReLU-1x1(m)-BN.ReLU-3x3(m)-BN.ReLU-1x1(cout), plus a 1x1 skip.
  const B = (name: string, x: string, cout: number) => {
    const m = cout >> 1;
    let y = norm(`${name}_bn1`, x, true);
    y = conv(`${name}_conv1`, y, m, 1);
    y = norm(`${name}_bn2`, y, true);
    y = conv(`${name}_conv2`, y, m, 3);
    y = norm(`${name}_bn3`, y, true);
    y = conv(`${name}_conv3`, y, cout, 1);
    const skip = conv(`${name}_skip`, x, cout, 1);
    channelsOf.set(`${name}_out`, cout);
    return sum(`${name}_out`, y, skip);
  };
  // Inception-residual I(cin -> cout): two pre-activation branches, concat, 1x1, BN+Scale, plus a 1x1 skip.
  const I = (name: string, x: string, cout: number) => {
    const m = cout >> 1;
    let a = norm(`${name}_a_bn1`, x, true);
    a = conv(`${name}_a_conv1`, a, m, 1);
    a = norm(`${name}_a_bn2`, a, true);
    a = conv(`${name}_a_conv2`, a, m, 3);
    a = norm(`${name}_a_bn3`, a, true);
    a = conv(`${name}_a_conv3`, a, m, 3);
    let b = norm(`${name}_b_bn1`, x, true);
    b = conv(`${name}_b_conv1`, b, m, 1);
    b = norm(`${name}_b_bn2`, b, true);
    b = conv(`${name}_b_conv2`, b, m, 3);
    layers.push(new Concat(`${name}_cat`, { bottoms: [a, b], top: `${name}_cat` }));
    let y = conv(`${name}_proj`, `${name}_cat`, cout, 1);
    y = norm(`${name}_proj_bn`, y, false);
    const skip = conv(`${name}_skip`, x, cout, 1);
    return sum(`${name}_out`, y, skip);
  };
  // A branch of `modules` modules named prefix1, prefix2, ...: f channels until the last, which
  // outputs `cout` (the seed: three, e.g. skip1 f, skip2 f, skip3 2f).
  const modules = cfg.modules ?? 3;
  const branch = (
    mod: (name: string, x: string, cout: number) => string,
    prefix: string,
    x: string,
    cout: number,
  ) => {
    for (let i = 1; i <= modules; i++) x = mod(`${prefix}${i}`, x, i === modules ? cout : f);
    return x;
  };
  // SubHG(side) on f channels -> 2f channels at the same side.
  const subHourglass = (name: string, x: string, side: number): string => {
    const skip = branch(B, `${name}_skip`, x, 2 * f);
    const d = branch(B, `${name}_down`, pool(`${name}_pool`, x), f);
    const inner = side / 2 > cfg.minSide
      ? subHourglass(`${name}_inner`, d, side / 2)
      : B(`${name}_inner`, d, 2 * f);
    const post = B(`${name}_post`, inner, 2 * f);
    return sum(`${name}_sum`, skip, up(`${name}_up`, post, 2 * f));
  };
  // HG(X) at the heatmap side, inception modules at the outer level.
  const hourglass = (name: string, x: string, side: number): string => {
    const skip = branch(I, `${name}_skip`, x, 2 * f);
    const d = branch(I, `${name}_down`, pool(`${name}_pool`, x), f);
    const inner = side / 2 > cfg.minSide
      ? subHourglass(`${name}_sub`, d, side / 2)
      : B(`${name}_inner`, d, 2 * f);
    const post = I(`${name}_post`, inner, 2 * f);
    return sum(`${name}_sum`, skip, up(`${name}_up`, post, 2 * f));
  };

  validate(cfg);
  const side = cfg.inputSize / 4;
  // Stem (SEED_SPEC §5.2): 7x7/2 conv with BN+Scale and no ReLU, B, pool, B, B, B.
  let x = conv("conv_1", "image", cfg.stem[0], 7, { stride: 2 });
  x = norm("conv_1_bn", x, false);
  x = B("residual_1", x, cfg.stem[1]);
  const pooled = pool("pooling", x);
  x = B("residual_2", pooled, cfg.stem[1]);
  x = B("residual_3", x, cfg.stem[1]);
  x = B("residual_4", x, f);
  const heatmaps: string[] = [];
  for (let s = 1; s <= cfg.stacks; s++) {
    const hg = hourglass(s === 1 ? "hg1" : `hg${s}`, x, side);
    const last = s === cfg.stacks;
    const fcA = conv(last ? `fc_${2 * s - 1}` : `fc_${2 * s - 1}`, hg, 2 * f, 1);
    const fcB = conv(`fc_${2 * s}`, fcA, f, 1);
    if (last) {
      heatmaps.push(conv(`conv_5_d${cfg.d2}`, fcB, cfg.joints * cfg.d2, 1, { std: headStd(cfg.d2) }));
      break;
    }
    const hm = conv(s === 1 ? "conv_2_n" : `conv_2_n_s${s}`, fcB, cfg.joints * cfg.d1, 1);
    heatmaps.push(hm);
    // Link (SEED_SPEC §5.4): conv_3_n(heatmap) + conv_4(concat[pooling, fc_2]).
    const a = conv(s === 1 ? "conv_3_n" : `conv_3_n_s${s}`, hm, cfg.link, 1);
    const catName = s === 1 ? "concat_link" : `concat_link_s${s}`;
    layers.push(new Concat(catName, { bottoms: [pooled, fcB], top: catName }));
    const b = conv(s === 1 ? "conv_4" : `conv_4_s${s}`, catName, cfg.link, 1);
    x = sum(s === 1 ? "link" : `link_s${s}`, a, b);
  }
  return { layers, blobs: { image: "image", heatmaps } };
}

function validate(cfg: HourglassConfig): void {
  const bad = (what: string) => {
    throw new RangeError(`hourglass config: ${what}`);
  };
  if (cfg.inputSize % 4 !== 0) bad(`inputSize must be a multiple of 4, got ${cfg.inputSize}`);
  const side = cfg.inputSize / 4;
  if (side < 2 * cfg.minSide || (side & (side - 1)) !== 0) {
    bad(`inputSize/4 (${side}) must be a power of two at least 2 x minSide (${cfg.minSide})`);
  }
  if (cfg.features % 2 || cfg.stem[1] % 2 || cfg.stem[0] % 2) bad("channel counts must be even");
  if (cfg.stacks < 1) bad(`stacks must be >= 1, got ${cfg.stacks}`);
  const m = cfg.modules ?? 3;
  if (!Number.isInteger(m) || m < 1) bad(`modules must be an integer >= 1, got ${cfg.modules}`);
  if (cfg.d2 < 1 || cfg.d1 < 1) bad("d1 and d2 must be >= 1");
}
