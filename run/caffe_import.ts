/**
 * The seed's published networks in volpose: which layer of the seed's prototxt is which
 * parameter of the `seed` preset, a structural check of a prototxt against the preset, and the
 * conversion of a caffemodel into a volpose run folder (config.json and a checkpoint).
 *
 * Names. The seed names its layers by position (`hourglass1_branch1_level4_branch2_res3_...`);
 * volpose by role (`hg1_sub_skip3_...`). {@linkcode seedLayerNames} walks the same structure as
 * graph/models/hourglass.ts and pairs every learnable volpose layer with its seed name(s):
 * - a bottleneck B is `<p>_branch1_{bn,scale,conv}{1,2,3}` plus the skip `<p>_branch2_conv`;
 * - an inception-residual I is `<p>_branch1_sub1_*` (three convs), `<p>_branch1_sub2_*` (two),
 *   `<p>_branch1_conv_linear` with `<p>_branch1_linear_{batch,scale}`, and `<p>_branch2_conv`;
 * - in an hourglass `branch1` is the pooled path (`res1..3`, the inner level, `res5`, then
 *   `upsampling`) and `branch2` the skip path (`res1..3`); a level at side R is
 *   `level{log2(R/4)+1}`, so the innermost module at 4x4 is `level1`;
 * - the stem (`conv_1`, `bn_1`/`scale_1`, `residual_1..4`) and the heads keep their names.
 *
 * Blobs. Convolution weights are [out, in/group, kh, kw] in both; deconvolution weights are
 * [in, out/group, kh, kw] in both, so nothing is transposed. Caffe's BatchNorm keeps three blobs,
 * the running sums of mean and variance and their moving-average factor S; volpose keeps the
 * statistics normalised, so running_mean = blobs[0]/S and running_var = blobs[1]/S (computed as
 * Caffe does, times the float 1/S; S = 0 gives zero statistics, as Caffe's own forward does) and
 * moving_scale = S. The Scale layer after each BatchNorm is the BN's affine weight and bias.
 * @module
 */
import { basename, join, resolve } from "node:path";
import type { Layer, Shape } from "../graph/layer.ts";
import { Convolution, type Size2 } from "../graph/layers/convolution.ts";
import { Deconvolution } from "../graph/layers/deconvolution.ts";
import { BatchNorm } from "../graph/layers/batch_norm.ts";
import { Eltwise } from "../graph/layers/eltwise.ts";
import { Concat } from "../graph/layers/concat_slice.ts";
import { MaxPool } from "../graph/layers/pool.ts";
import { type HourglassConfig, hourglassLayers } from "../graph/models/hourglass.ts";
import { modelConfig } from "./presets.ts";
import { saveWeights } from "../graph/checkpoint.ts";
import type { NamedTensor } from "../graph/safetensors.ts";
import {
  type CaffeLayerDef,
  type CaffeNetDef,
  type CaffePhase,
  parseCaffeNet,
  phaseLayers,
  type PrototxtMessage,
} from "../io/caffe_prototxt.ts";
import {
  type CaffeBlob,
  type CaffeModel,
  type CaffeModelLayerInput,
  readCaffeModel,
  V1_TYPE_NAMES,
} from "../io/caffe_model.ts";
import { type RunConfig, runConfig } from "./config.ts";

/** The depths d2 of the seed's published and intermediate networks. */
export const SEED_DEPTHS = [2, 4, 8, 16, 32, 64] as const;

/** What kind of learnable layer a name pair is. */
export type SeedKind = "conv" | "deconv" | "bn";

/** One learnable volpose layer and its name(s) in the seed's prototxt. */
export interface SeedLayerName {
  /** The volpose layer (its parameters are "<layer>.weight", ...). */
  layer: string;
  kind: SeedKind;
  /** The seed's Convolution, Deconvolution or BatchNorm layer. */
  caffe: string;
  /** The seed's Scale layer after a BatchNorm (the BN's affine weight and bias). */
  scale?: string;
}

/**
 * Every learnable layer of the hourglass network `cfg` with its seed name, in the builder's order.
 * Branches of more than four modules have no seed naming (the seed's post module is `res5`).
 */
export function seedLayerNames(cfg: HourglassConfig): SeedLayerName[] {
  const out: SeedLayerName[] = [];
  const modules = cfg.modules ?? 3;
  if (modules > 4) {
    throw new RangeError(
      `seed names: at most 4 modules per branch (res5 is the post module), got ${modules}`,
    );
  }
  const conv = (layer: string, caffe: string) => out.push({ layer, kind: "conv", caffe });
  const bn = (layer: string, caffe: string, scale: string) => out.push({ layer, kind: "bn", caffe, scale });
  const B = (v: string, c: string) => {
    for (let k = 1; k <= 3; k++) {
      bn(`${v}_bn${k}`, `${c}_branch1_bn${k}`, `${c}_branch1_scale${k}`);
      conv(`${v}_conv${k}`, `${c}_branch1_conv${k}`);
    }
    conv(`${v}_skip`, `${c}_branch2_conv`);
  };
  const I = (v: string, c: string) => {
    for (const [branch, sub, convs] of [["a", "sub1", 3], ["b", "sub2", 2]] as const) {
      for (let k = 1; k <= convs; k++) {
        bn(`${v}_${branch}_bn${k}`, `${c}_branch1_${sub}_bn${k}`, `${c}_branch1_${sub}_scale${k}`);
        conv(`${v}_${branch}_conv${k}`, `${c}_branch1_${sub}_conv${k}`);
      }
    }
    conv(`${v}_proj`, `${c}_branch1_conv_linear`);
    bn(`${v}_proj_bn`, `${c}_branch1_linear_batch`, `${c}_branch1_linear_scale`);
    conv(`${v}_skip`, `${c}_branch2_conv`);
  };
  const branch = (mod: typeof B, v: string, c: string) => {
    for (let i = 1; i <= modules; i++) mod(`${v}${i}`, `${c}${i}`);
  };
  const level = (side: number) => Math.log2(side / cfg.minSide) + 1;
  // One hourglass level: skip path, pooled path with the inner level, post module, upsampling.
  const hourglass = (v: string, c: string, side: number, mod: typeof B, sub: string) => {
    branch(mod, `${v}_skip`, `${c}_branch2_res`);
    branch(mod, `${v}_down`, `${c}_branch1_res`);
    const inner = `${c}_branch1_level${level(side / 2)}`;
    if (side / 2 > cfg.minSide) hourglass(`${v}_${sub}`, inner, side / 2, B, "inner");
    else B(`${v}_inner`, inner);
    mod(`${v}_post`, `${c}_branch1_res5`);
    out.push({ layer: `${v}_up`, kind: "deconv", caffe: `${c}_upsampling` });
  };
  conv("conv_1", "conv_1");
  bn("conv_1_bn", "bn_1", "scale_1");
  for (let r = 1; r <= 4; r++) B(`residual_${r}`, `residual_${r}`);
  for (let s = 1; s <= cfg.stacks; s++) {
    hourglass(`hg${s}`, `hourglass${s}`, cfg.inputSize / 4, I, "sub");
    conv(`fc_${2 * s - 1}`, `fc_${2 * s - 1}`);
    conv(`fc_${2 * s}`, `fc_${2 * s}`);
    if (s === cfg.stacks) {
      conv(`conv_5_d${cfg.d2}`, `conv_5_d${cfg.d2}`);
      break;
    }
    for (const n of ["conv_2_n", "conv_3_n", "conv_4"]) {
      const name = s === 1 ? n : `${n}_s${s}`;
      conv(name, name);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The preset, described without a GPU

/** A learnable layer of the preset: its parameters and what feeds it. */
interface PresetLayer {
  layer: Layer;
  params: { name: string; shape: Shape }[];
  /** Canonical expression of the layer's input (see {@linkcode checkSeedStructure}). */
  input: string;
}

/** Runs the layers' own shape setup (no GPU) and records parameters and input expressions. */
function describePreset(cfg: HourglassConfig): Map<string, PresetLayer> {
  const { layers, blobs } = hourglassLayers(cfg);
  const shapes = new Map<string, Shape>([[blobs.image, [1, 3, cfg.inputSize, cfg.inputSize]]]);
  const expr = new Map<string, string>([[blobs.image, `input:${blobs.image}`]]);
  const out = new Map<string, PresetLayer>();
  for (const l of layers) {
    const params: { name: string; shape: Shape }[] = [];
    const tops = l.setup(l.bottoms.map((b) => shapes.get(b)!), {
      param: (d) => params.push({ name: d.name, shape: d.shape }) - 1,
      state: () => 0,
      workspace: () => {},
    });
    l.tops.forEach((t, i) => shapes.set(t, tops[i]));
    const ins = l.bottoms.map((b) => expr.get(b) ?? `input:${b}`);
    let e: string;
    if (l instanceof Convolution || l instanceof Deconvolution) e = l.name;
    else if (l instanceof BatchNorm) e = wrapRelu(l.affine ? l.name : `${l.name}~noaffine`, l.relu);
    else if (l instanceof Eltwise) e = sumExpr(ins, l.coeffs);
    else if (l instanceof Concat) e = `concat${l.axis}(${ins.join(",")})`;
    else if (l instanceof MaxPool) e = poolExpr(l.kernel, l.stride, l.pad, ins[0]);
    else e = `${l.type}:${l.name}(${ins.join(",")})`;
    l.tops.forEach((t) => expr.set(t, e));
    if (params.length) out.set(l.name, { layer: l, params, input: ins.join(",") });
  }
  return out;
}

const wrapRelu = (e: string, relu: boolean) => relu ? `relu(${e})` : e;
const sumExpr = (ins: string[], coeffs: readonly number[]) =>
  coeffs.every((c) => c === 1) ? `sum(${[...ins].sort().join(",")})` : `sum[${coeffs}](${ins.join(",")})`;
const poolExpr = (k: readonly number[], s: readonly number[], p: readonly number[], x: string) =>
  `maxpool(k${k.join("x")},s${s.join("x")},p${p.join("x")})(${x})`;

/** Every parameter of the hourglass network `cfg` ("layer.name" and shape) in declaration order, without a GPU. */
export function hourglassParams(cfg: HourglassConfig): { key: string; shape: Shape }[] {
  return [...describePreset(cfg)].flatMap(([layer, p]) =>
    p.params.map((q) => ({ key: `${layer}.${q.name}`, shape: q.shape }))
  );
}

/** One Caffe blob a seed layer must hold, and the volpose parameter it becomes. */
interface BlobSlot {
  shape: number[];
  /** The volpose parameter key ("layer.name"). */
  key: string;
  /** What the blob is, for messages. */
  what: string;
}

/** One Caffe layer of the seed network as the preset expects it. */
interface CaffeSlot {
  caffe: string;
  type: "Convolution" | "Deconvolution" | "BatchNorm" | "Scale";
  /** The volpose layer. */
  layer: string;
  blobs: BlobSlot[];
}

/** The Caffe layers (and their blobs) that the preset's learnable layers correspond to. */
function caffeSlots(cfg: HourglassConfig): { slots: CaffeSlot[]; preset: Map<string, PresetLayer> } {
  const preset = describePreset(cfg);
  const slots: CaffeSlot[] = [];
  const names = seedLayerNames(cfg);
  for (const n of names) {
    const p = preset.get(n.layer);
    if (!p) {
      throw new Error(
        `seed names: the preset has no learnable layer "${n.layer}" (names out of step with hourglass.ts)`,
      );
    }
    const shape = (name: string) => [...p.params.find((x) => x.name === name)!.shape];
    const has = (name: string) => p.params.some((x) => x.name === name);
    const slot = (name: string, what: string, s = shape(name)): BlobSlot => ({
      shape: s,
      key: `${n.layer}.${name}`,
      what,
    });
    if (n.kind === "bn") {
      slots.push({
        caffe: n.caffe,
        type: "BatchNorm",
        layer: n.layer,
        blobs: [
          slot("running_mean", "mean sum"),
          slot("running_var", "variance sum"),
          slot("moving_scale", "moving-average factor", [1]),
        ],
      });
      if (has("weight")) {
        slots.push({
          caffe: n.scale!,
          type: "Scale",
          layer: n.layer,
          blobs: [slot("weight", "gamma"), ...(has("bias") ? [slot("bias", "beta")] : [])],
        });
      }
    } else {
      slots.push({
        caffe: n.caffe,
        type: n.kind === "conv" ? "Convolution" : "Deconvolution",
        layer: n.layer,
        blobs: [slot("weight", "weights"), ...(has("bias") ? [slot("bias", "bias")] : [])],
      });
    }
  }
  const covered = new Set(names.map((n) => n.layer));
  const missing = [...preset.keys()].filter((k) => !covered.has(k));
  if (missing.length) throw new Error(`seed names: no seed name for the preset's ${missing.join(", ")}`);
  return { slots, preset };
}

// ---------------------------------------------------------------------------------------------
// The structural check of a prototxt

/** Counts of the learnable layers a prototxt holds, by type. */
export interface StructureCounts {
  convolutions: number;
  deconvolutions: number;
  batchNorms: number;
  scales: number;
}

/** The result of {@linkcode checkSeedStructure}. */
export interface StructureReport {
  /** Every difference, each naming the prototxt layer (with its line) and the preset's layer. */
  mismatches: string[];
  counts: StructureCounts;
  /** Learnable layers matched one to one (by name, type, blob shapes, hyper-parameters and inputs). */
  matched: number;
}

const LEARNABLE = new Set([
  "Convolution",
  "Deconvolution",
  "BatchNorm",
  "Scale",
  "InnerProduct",
  "PReLU",
  "Bias",
  "Embed",
]);

/** [h, w] of a convolution or pooling size: `X_size` (one or two values), or `X_h` and `X_w`. */
function size2(p: PrototxtMessage, name: string, hw: string, fallback: number): [number, number] {
  const v = p.numbers(name);
  if (v.length) return v.length === 1 ? [v[0], v[0]] : [v[0], v[1]];
  return [p.number(`${hw}_h`) ?? fallback, p.number(`${hw}_w`) ?? fallback];
}

const pair = (v: Size2 | undefined, d: number): [number, number] =>
  v === undefined ? [d, d] : typeof v === "number" ? [v, v] : [v[0], v[1]];

/** What a non-learnable layer makes of its inputs: the expression and channels of its tops. */
function flowThrough(
  l: CaffeLayerDef,
  type: string,
  ins: string[],
  inCh: (number | undefined)[],
): { expr: string | null; channels: number | undefined; problem?: string } {
  const m = l.message;
  switch (type) {
    case "ReLU":
      if ((m.message("relu_param")?.number("negative_slope") ?? 0) !== 0) break;
      return { expr: `relu(${ins[0]})`, channels: inCh[0] };
    case "Eltwise": {
      const p = m.message("eltwise_param");
      const op = p?.string("operation") ?? "SUM";
      const coeffs = p?.numbers("coeff") ?? [];
      const known = inCh.every((c) => c !== undefined);
      return {
        expr: op === "SUM"
          ? sumExpr(ins, coeffs.length ? coeffs : ins.map(() => 1))
          : `${op}(${ins.join(",")})`,
        channels: known ? inCh[0] : undefined,
        problem: known && inCh.some((c) => c !== inCh[0])
          ? `sums inputs of ${inCh.join(" and ")} channels`
          : undefined,
      };
    }
    case "Concat": {
      const p = m.message("concat_param");
      const axis = p?.number("axis") ?? p?.number("concat_dim") ?? 1;
      const total = inCh.every((c) => c !== undefined) ? inCh.reduce((a, c) => a! + c!, 0) : undefined;
      return { expr: `concat${axis}(${ins.join(",")})`, channels: axis === 1 ? total : inCh[0] };
    }
    case "Pooling": {
      const p = m.message("pooling_param");
      const pool = p?.get("pool") ?? "MAX";
      if (!p || (pool !== "MAX" && pool !== 0) || p.bool("global_pooling")) break;
      const k = size2(p, "kernel_size", "kernel", 0), st = size2(p, "stride", "stride", 1);
      return { expr: poolExpr(k, st, size2(p, "pad", "pad", 0), ins[0]), channels: inCh[0] };
    }
    case "Split":
    case "Dropout":
      return { expr: ins[0], channels: inCh[0] };
  }
  // Anything else (data readers, monitors, other pooling): its tops are inputs as far as the
  // network is concerned, except a layer that transforms a network blob, which stays named.
  return { expr: null, channels: undefined };
}

/** The blob shapes a Convolution or Deconvolution of the prototxt has, and how it differs from the preset's. */
function convDifferences(
  l: CaffeLayerDef,
  type: string,
  preset: Convolution | Deconvolution,
  cin: number | undefined,
): { shapes: number[][]; out: number | undefined; problems: string[] } {
  const cp = l.message.message("convolution_param");
  const problems: string[] = [];
  const out = cp?.number("num_output");
  if (!cp || out === undefined) return { shapes: [], out, problems: ["convolution_param has no num_output"] };
  const k = size2(cp, "kernel_size", "kernel", 0), s = size2(cp, "stride", "stride", 1);
  const pad = size2(cp, "pad", "pad", 0);
  const group = cp.number("group") ?? 1, bias = cp.bool("bias_term") ?? true;
  const o = preset.opts;
  const vs = pair(o.stride, 1), vp = pair(o.pad, 0), vg = o.group ?? 1, vb = o.bias ?? true;
  if (!sameShape(s, vs)) problems.push(`stride ${s.join("x")}, the preset's ${vs.join("x")}`);
  if (!sameShape(pad, vp)) problems.push(`pad ${pad.join("x")}, the preset's ${vp.join("x")}`);
  if (group !== vg) problems.push(`group ${group}, the preset's ${vg}`);
  if (bias !== vb) problems.push(`bias_term ${bias}, the preset's ${vb}`);
  const dil = cp.numbers("dilation");
  if (dil.some((d) => d !== 1)) problems.push(`dilation ${dil.join("x")}, the preset has none`);
  // Caffe's default lr_mult is 1 per blob; the preset's convolutions use the seed's [1, 2], its upsampling [0, 0].
  const lr = l.message.messages("param").map((x) => x.number("lr_mult") ?? 1);
  const vlr = o.lrMult ?? [1, 2];
  for (let i = 0; i < (bias ? 2 : 1); i++) {
    if ((lr[i] ?? 1) !== vlr[i]) {
      problems.push(`lr_mult of blob ${i} is ${lr[i] ?? 1}, the preset's ${vlr[i]}`);
    }
  }
  if (cin === undefined) return { shapes: [], out, problems };
  const w = type === "Convolution" ? [out, cin / group, k[0], k[1]] : [cin, out / group, k[0], k[1]];
  return { shapes: bias ? [w, [out]] : [w], out, problems };
}

/**
 * Checks that the learnable layers of a Caffe net (in `phase`, default TEST) map one to one onto
 * the hourglass network `cfg` (the `seed` preset at the prototxt's d2): every Convolution,
 * Deconvolution, BatchNorm and Scale has a counterpart with the same blob shapes, kernel, stride,
 * padding, group, bias, learning-rate multipliers and inputs, and every learnable layer of the
 * preset appears in the prototxt.
 *
 * Inputs are compared as canonical expressions over the non-learnable layers between learnable
 * ones, e.g. `relu(residual_1_bn2)` or `concat1(maxpool(k2x2,s2x2,p0x0)(sum(...)),fc_2)`, so a
 * wrong wiring, concat order, pooling or missing ReLU is named as well as a wrong shape.
 */
export function checkSeedStructure(
  net: CaffeNetDef,
  cfg: HourglassConfig,
  opts: { phase?: CaffePhase } = {},
): StructureReport {
  const { slots, preset } = caffeSlots(cfg);
  const byCaffe = new Map(slots.map((s) => [s.caffe, s]));
  const mismatches: string[] = [];
  const counts: StructureCounts = { convolutions: 0, deconvolutions: 0, batchNorms: 0, scales: 0 };
  const where = (l: CaffeLayerDef) => `${net.source}:${l.line}: ${l.type} "${l.name}"`;
  const seen = new Map<string, CaffeLayerDef>();
  // Blob -> canonical expression and channel count, as far as the prototxt determines them. The
  // seed's image comes from a custom data layer; deploy nets declare their inputs.
  const expr = new Map<string, string>();
  const channels = new Map<string, number>([["image", 3]]);
  const inShapes = net.message.messages("input_shape").map((m) => m.numbers("dim"));
  const inDims = net.message.numbers("input_dim");
  net.message.strings("input").forEach((name, i) => {
    const c = inShapes[i]?.[1] ?? inDims[4 * i + 1];
    if (c !== undefined) channels.set(name, c);
  });
  let matched = 0;

  for (const l of phaseLayers(net, opts.phase ?? "TEST")) {
    const type = V1_TYPE_NAMES[l.type] ?? l.type;
    const ins = l.bottoms.map((b) => expr.get(b) ?? `input:${b}`);
    const inCh = l.bottoms.map((b) => channels.get(b));
    const setTops = (e: string | null, c: number | undefined) => {
      for (const t of l.tops) {
        expr.set(t, e ?? `input:${t}`);
        if (c !== undefined) channels.set(t, c);
        else if (e !== null || t !== "image") channels.delete(t);
      }
    };
    if (!LEARNABLE.has(type)) {
      if (type === "Input") {
        const dims = l.message.message("input_param")?.messages("shape").map((s) => s.numbers("dim")) ?? [];
        l.tops.forEach((t, i) => {
          expr.set(t, `input:${t}`);
          const c = (dims[i] ?? dims[0])?.[1];
          if (c !== undefined) channels.set(t, c);
        });
        continue;
      }
      const f = flowThrough(l, type, ins, inCh);
      if (f.problem) mismatches.push(`${where(l)}: ${f.problem}`);
      setTops(f.expr, f.channels);
      continue;
    }

    // A learnable layer: its seed name, type, hyper-parameters, blob shapes and input.
    if (type === "Convolution") counts.convolutions++;
    else if (type === "Deconvolution") counts.deconvolutions++;
    else if (type === "BatchNorm") counts.batchNorms++;
    else if (type === "Scale") counts.scales++;
    const slot = byCaffe.get(l.name);
    const first = seen.get(l.name);
    if (first || !slot || slot.type !== type) {
      mismatches.push(
        `${where(l)}: ${
          first
            ? `defined twice in this phase (first at line ${first.line})`
            : !slot
            ? "no counterpart in the preset (it has no layer of this seed name)"
            : `the preset's ${slot.layer} is a ${slot.type} here`
        }`,
      );
      seen.set(l.name, first ?? l);
      setTops(`caffe:${l.name}`, undefined);
      continue;
    }
    seen.set(l.name, l);
    const p = preset.get(slot.layer)!;
    const problems: string[] = [];
    let shapes: number[][] = [];
    if (type === "Convolution" || type === "Deconvolution") {
      const c = convDifferences(l, type, p.layer as Convolution | Deconvolution, inCh[0]);
      problems.push(...c.problems);
      shapes = c.shapes;
      setTops(slot.layer, c.out);
    } else if (type === "BatchNorm") {
      const bp = l.message.message("batch_norm_param");
      const bn = p.layer as BatchNorm;
      const eps = bp?.number("eps") ?? 1e-5, frac = bp?.number("moving_average_fraction") ?? 0.999;
      if (Math.fround(eps) !== Math.fround(bn.eps)) problems.push(`eps ${eps}, the preset's ${bn.eps}`);
      if (Math.fround(frac) !== Math.fround(bn.fraction)) {
        problems.push(`moving_average_fraction ${frac}, the preset's ${bn.fraction}`);
      }
      if (inCh[0] !== undefined) shapes = [[inCh[0]], [inCh[0]], [1]];
      setTops(`${slot.layer}~noaffine`, inCh[0]);
    } else {
      // Scale: the affine of the BatchNorm right before it.
      const sp = l.message.message("scale_param");
      const bias = sp?.bool("bias_term") ?? false;
      if (l.bottoms.length !== 1) {
        problems.push(`a Scale with ${l.bottoms.length} inputs (the preset learns gamma)`);
      }
      if ((sp?.number("axis") ?? 1) !== 1 || (sp?.number("num_axes") ?? 1) !== 1) {
        problems.push("a Scale over other axes than the channels");
      }
      if (ins[0] !== `${slot.layer}~noaffine`) {
        problems.push(`it scales ${ins[0]}, not the output of the preset's BatchNorm ${slot.layer}`);
      }
      if (inCh[0] !== undefined) shapes = bias ? [[inCh[0]], [inCh[0]]] : [[inCh[0]]];
      setTops(slot.layer, inCh[0]);
    }
    if (inCh[0] === undefined) {
      problems.push(`the channels of its input "${l.bottoms[0]}" cannot be inferred from the prototxt`);
    }
    // Blob shapes (where the prototxt determines them) against the preset's parameters.
    const want = slot.blobs;
    if (shapes.length && shapes.length !== want.length) {
      problems.push(
        `${shapes.length} blobs (${shapes.map(fmtList).join(", ")}), the preset's ${want.length} (${
          want.map((b) => fmtList(b.shape)).join(", ")
        })`,
      );
    } else {
      shapes.forEach((s, i) => {
        if (!sameShape(s, want[i].shape)) {
          problems.push(
            `blob ${i} (${want[i].what}) ${fmtList(s)}, the preset's ${want[i].key} ${
              fmtList(want[i].shape)
            }`,
          );
        }
      });
    }
    // What feeds it, over the non-learnable layers in between.
    if (type !== "Scale" && ins.join(",") !== p.input) {
      problems.push(`its input is ${ins.join(",")} in the prototxt but ${p.input} in the preset`);
    }
    for (const what of problems) mismatches.push(`${where(l)} (preset ${slot.layer}): ${what}`);
    if (!problems.length) matched++;
  }
  for (const s of slots) {
    if (!seen.has(s.caffe)) {
      mismatches.push(
        `${net.source}: no ${s.type} "${s.caffe}" (the preset's ${s.layer}, blobs ${
          s.blobs.map((b) => fmtList(b.shape)).join(", ")
        })`,
      );
    }
  }
  return { mismatches, counts, matched };
}

const fmtList = (s: readonly number[]) => `[${s.join(", ")}]`;
const sameShape = (a: readonly number[], b: readonly number[]) =>
  a.length === b.length && a.every((d, i) => d === b[i]);

/**
 * The d2 of one of the seed's nets: the D of its volumetric head `conv_5_d{D}`. Errors name the
 * prototxt: no such layer, or a D that is not one of the seed's depths.
 */
export function seedDepth(net: CaffeNetDef): number {
  const heads = phaseLayers(net, "TEST").filter((l) => /^conv_5_d\d+$/.test(l.name));
  if (!heads.length) {
    throw new Error(
      `${net.source}: no layer conv_5_d{D} (the seed's volumetric head), so d2 is unknown; expected one of the seed's prototxts`,
    );
  }
  const D = Number(heads[0].name.slice("conv_5_d".length));
  if (!(SEED_DEPTHS as readonly number[]).includes(D)) {
    throw new Error(
      `${net.source}:${heads[0].line}: ${heads[0].name}: unknown d2 ${D}; the seed's networks have d2 = ${
        SEED_DEPTHS.join(", ")
      }`,
    );
  }
  return D;
}

// ---------------------------------------------------------------------------------------------
// Converting weights

/** The tensors of a converted model and what the conversion found. */
export interface ConvertedWeights {
  /** Every parameter of the network, keyed "layer.name", in the preset's declaration order. */
  tensors: Map<string, NamedTensor>;
  /** Caffe layers read. */
  layers: number;
  /** Floats written. */
  values: number;
  /** BatchNorm layers whose moving-average factor was 0 (statistics set to 0, as Caffe reads them). */
  zeroFactor: string[];
}

/** Whether a Caffe blob has the expected shape (a legacy 4-D shape may pad the front with 1s, as Caffe allows). */
function blobFits(b: CaffeBlob, want: readonly number[]): boolean {
  if (sameShape(b.shape, want)) return true;
  if (!b.legacyShape || want.length > 4) return false;
  const padded = [...Array(4 - want.length).fill(1), ...want];
  return sameShape(b.shape, padded);
}

/**
 * Converts the blobs of a caffemodel into the parameters of the hourglass network `cfg`. Every
 * learnable layer of the network must be in the model with the blob count and shapes it expects,
 * and every model layer with blobs must belong to the network; errors name the file, the layer
 * and the expected shapes.
 */
export function convertSeedWeights(
  model: CaffeModel,
  cfg: HourglassConfig,
  opts: { source?: string } = {},
): ConvertedWeights {
  const src = opts.source ?? "<caffemodel>";
  const { slots, preset } = caffeSlots(cfg);
  const byName = new Map<string, (typeof model.layers)[number]>();
  for (const l of model.layers) {
    if (byName.has(l.name) && l.blobs.length) {
      throw new Error(`${src}: layer "${l.name}" appears twice with blobs`);
    }
    if (!byName.has(l.name) || l.blobs.length) byName.set(l.name, l);
  }
  const values = new Map<string, Float32Array>();
  const zeroFactor: string[] = [];
  const problems: string[] = [];
  const expect = (s: CaffeSlot) => s.blobs.map((b) => `${b.what} ${fmtList(b.shape)}`).join(", ");
  for (const s of slots) {
    const l = byName.get(s.caffe);
    if (!l) {
      problems.push(`no layer "${s.caffe}" (${s.type} with ${expect(s)}; the preset's ${s.layer})`);
      continue;
    }
    const type = V1_TYPE_NAMES[l.type] ?? l.type;
    if (type !== s.type) {
      problems.push(`layer "${s.caffe}" is a ${l.type}, expected a ${s.type} with ${expect(s)}`);
      continue;
    }
    if (l.blobs.length !== s.blobs.length) {
      problems.push(
        `layer "${s.caffe}" has ${l.blobs.length} blobs (${
          l.blobs.map((b) => fmtList(b.shape)).join(", ")
        }), expected ${s.blobs.length}: ${expect(s)}`,
      );
      continue;
    }
    const bad = s.blobs.findIndex((b, i) => !blobFits(l.blobs[i], b.shape));
    if (bad >= 0) {
      const b = s.blobs[bad];
      problems.push(
        `layer "${s.caffe}" blob ${bad} (${b.what}) has shape ${fmtList(l.blobs[bad].shape)}, expected ${
          fmtList(b.shape)
        } (the preset's ${b.key})`,
      );
      continue;
    }
    if (s.type === "BatchNorm") {
      const S = l.blobs[2].data[0];
      if (!(Number.isFinite(S) && S >= 0)) {
        problems.push(`layer "${s.caffe}" has moving-average factor ${S}, expected a finite number >= 0`);
        continue;
      }
      // Caffe's own reading: statistics times the float 1/S, or 0 when S is 0.
      const k = S === 0 ? 0 : Math.fround(1 / S);
      if (S === 0) zeroFactor.push(s.caffe);
      values.set(s.blobs[0].key, l.blobs[0].data.map((v) => v * k));
      values.set(s.blobs[1].key, l.blobs[1].data.map((v) => v * k));
      values.set(s.blobs[2].key, new Float32Array(l.blobs[0].data.length).fill(S));
    } else s.blobs.forEach((b, i) => values.set(b.key, l.blobs[i].data));
  }
  const wanted = new Set(slots.map((s) => s.caffe));
  for (const l of model.layers) {
    if (l.blobs.length && !wanted.has(l.name)) {
      problems.push(
        `layer "${l.name}" (${l.type}, ${l.blobs.length} blobs) has no counterpart in the preset at d2 = ${cfg.d2}`,
      );
    }
  }
  if (problems.length) {
    const shown = problems.slice(0, 20);
    const more = problems.length > shown.length ? `\n  ... and ${problems.length - shown.length} more` : "";
    throw new Error(
      `${src} does not hold the seed network at d2 = ${cfg.d2}:\n  ${shown.join("\n  ")}${more}`,
    );
  }
  const tensors = new Map<string, NamedTensor>();
  let count = 0;
  for (const [name, p] of preset) {
    for (const q of p.params) {
      const key = `${name}.${q.name}`;
      const data = values.get(key)!;
      tensors.set(key, { shape: q.shape, data });
      count += data.length;
    }
  }
  return { tensors, layers: slots.length, values: count, zeroFactor };
}

/**
 * The inverse of {@linkcode convertSeedWeights}: the layers of a caffemodel holding the given
 * parameters of network `cfg` under the seed's names, each BatchNorm's statistics multiplied by
 * its moving_scale (Caffe's running sums). For tests, benchmarks and handing weights back to Caffe.
 */
export function seedCaffeLayers(
  cfg: HourglassConfig,
  tensors: ReadonlyMap<string, NamedTensor>,
): CaffeModelLayerInput[] {
  const get = (key: string) => {
    const t = tensors.get(key);
    if (!t) throw new Error(`seed caffemodel: no tensor "${key}"`);
    return t;
  };
  return caffeSlots(cfg).slots.map((s) => {
    if (s.type !== "BatchNorm") {
      return {
        name: s.caffe,
        type: s.type,
        blobs: s.blobs.map((b) => ({ shape: b.shape, data: get(b.key).data })),
      };
    }
    const S = get(s.blobs[2].key).data[0];
    const sums = (key: string) => ({ shape: [get(key).data.length], data: get(key).data.map((v) => v * S) });
    return {
      name: s.caffe,
      type: s.type,
      blobs: [sums(s.blobs[0].key), sums(s.blobs[1].key), { shape: [1], data: new Float32Array([S]) }],
    };
  });
}

// ---------------------------------------------------------------------------------------------
// Run folders

/** The run configuration of the seed's network at `d2`, with the seed's training and test settings. */
export function seedRunConfig(
  d2: number,
  opts: { data: string; iter: number; legacy?: RunConfig["legacy"]; workers?: number },
): RunConfig {
  return runConfig("seed", {
    data: opts.data,
    model: { d2 },
    schedule: [d2],
    // The schedule the checkpoint has trained (at least one iteration, so the configuration stays valid).
    iters: Math.max(1, opts.iter),
    // d64 drops the rate to 5e-6 at 650k iterations; the earlier stages keep it fixed (SEED_SPEC §6).
    solver: {
      policy: d2 === 64 ? { type: "multistep", gamma: 0.2, stepvalues: [650000] } : { type: "fixed" },
    },
    legacy: opts.legacy,
    workers: opts.workers,
  });
}

/** Options of {@linkcode importSeedModel}. */
export interface ImportOptions {
  /** The seed's trained weights. */
  caffemodel: string;
  /** The seed's net definition that goes with them (its d2 is read from conv_5_d{D}). */
  prototxt: string;
  /** The run folder to write. */
  out: string;
  /** Expected d2 (default: the prototxt's). */
  d2?: number;
  /** Iteration of the checkpoint (default: from a file name such as net_iter_720929.caffemodel, else 0). */
  iter?: number;
  /** Dataset root recorded in config.json (default "h36m"; eval's --data overrides it). */
  data?: string;
  /** Legacy switches recorded in config.json (default none). */
  legacy?: RunConfig["legacy"];
  /** Overwrite an existing config.json or checkpoint. */
  force?: boolean;
}

/** What {@linkcode importSeedModel} wrote. */
export interface ImportResult {
  runDir: string;
  config: string;
  checkpoint: string;
  d2: number;
  iter: number;
  structure: StructureReport;
  weights: Omit<ConvertedWeights, "tensors">;
  /** Wall-clock seconds: reading the caffemodel, converting, writing the run. */
  seconds: { read: number; convert: number; write: number };
}

/** The text of a prototxt file, gunzipped when it is gzip-compressed (as the test fixtures are). */
export async function readPrototxtText(path: string): Promise<string> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw new Error(`${path}: cannot read the prototxt (${(e as Error).message})`);
  }
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    const stream = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
      new DecompressionStream("gzip"),
    );
    bytes = new Uint8Array(await new Response(stream).arrayBuffer());
  }
  if (bytes.subarray(0, 4096).includes(0)) {
    throw new Error(`${path}: expected a text prototxt, got binary data (a caffemodel goes to --caffemodel)`);
  }
  return new TextDecoder().decode(bytes);
}

/** Reads and checks a prototxt; throws with every mismatch named when it is not the seed preset at its d2. */
export async function checkSeedPrototxt(
  path: string,
  opts: { d2?: number } = {},
): Promise<{ d2: number; cfg: HourglassConfig; report: StructureReport }> {
  const net = parseCaffeNet(await readPrototxtText(path), path);
  const d2 = seedDepth(net);
  if (opts.d2 !== undefined && opts.d2 !== d2) {
    throw new Error(`--d2 ${opts.d2}, but ${path} defines conv_5_d${d2} (d2 = ${d2})`);
  }
  const cfg = modelConfig("seed", { d2 });
  const report = checkSeedStructure(net, cfg);
  if (report.mismatches.length) {
    const shown = report.mismatches.slice(0, 20);
    const more = report.mismatches.length > 20 ? `\n  ... and ${report.mismatches.length - 20} more` : "";
    throw new Error(
      `${path} does not map onto the seed preset at d2 = ${d2} (${report.mismatches.length} mismatches):\n  ${
        shown.join("\n  ")
      }${more}`,
    );
  }
  return { d2, cfg, report };
}

async function exists(path: string): Promise<boolean> {
  return await Deno.stat(path).then(() => true, () => false);
}

/**
 * Imports one of the seed's caffemodels: checks the prototxt against the seed preset, converts
 * the weights and writes `<out>/config.json` and `<out>/checkpoints/net_iter_<N>.safetensors`,
 * which `deno task eval --run <out>` evaluates.
 */
export async function importSeedModel(opts: ImportOptions): Promise<ImportResult> {
  const { d2, cfg, report } = await checkSeedPrototxt(opts.prototxt, { d2: opts.d2 });
  const iter = opts.iter ?? Number(/_iter_(\d+)\.caffemodel$/.exec(basename(opts.caffemodel))?.[1] ?? 0);
  const runDir = resolve(opts.out);
  const configPath = join(runDir, "config.json");
  const prefix = join(runDir, "checkpoints", `net_iter_${iter}`);
  if (!opts.force) {
    for (const p of [configPath, `${prefix}.safetensors`]) {
      if (await exists(p)) throw new Error(`${p} exists; pick another --out or pass --force to overwrite it`);
    }
  }
  let t = performance.now();
  const model = await readCaffeModel(opts.caffemodel);
  const read = (performance.now() - t) / 1000;
  t = performance.now();
  const { tensors, ...weights } = convertSeedWeights(model, cfg, { source: opts.caffemodel });
  const convert = (performance.now() - t) / 1000;
  t = performance.now();
  await Deno.mkdir(join(runDir, "checkpoints"), { recursive: true });
  const config = seedRunConfig(d2, { data: opts.data ?? "h36m", iter, legacy: opts.legacy });
  await Deno.writeTextFile(configPath, JSON.stringify(config, null, 2) + "\n");
  const checkpoint = await saveWeights(prefix, tensors, {
    net: `seed-d${d2}`,
    iter,
    metadata: { source: basename(opts.caffemodel), prototxt: basename(opts.prototxt) },
    meta: { d2, reason: "import" },
  });
  const write = (performance.now() - t) / 1000;
  return {
    runDir,
    config: configPath,
    checkpoint,
    d2,
    iter,
    structure: report,
    weights,
    seconds: { read, convert, write },
  };
}
