/**
 * Pose losses (SEED_SPEC §4.12, §8.14, §8.23): smooth L1 (Fast R-CNN), Jensen-Shannon
 * regularisation, adaptive-weight Euclidean and an integral coordinate loss (L1/L2 with per-joint
 * weights). Forward values go through the deterministic two-pass sums of reduce.ts; backward
 * kernels are element-wise and take the loss weight and the 1/N normalisation as one constant.
 * @module
 */
import { type Binding, declare, elementwise, f32, type Recorder, type Region, u32 } from "./kernel.ts";
import { recordSum } from "./reduce.ts";

/** A forward sum into `out[outIndex]` using the `partials` scratch (see reduce.ts). */
export interface LossSumIo {
  out: Region;
  outIndex?: number;
  partials: Region;
  /** Number of elements. */
  n: number;
  /** Multiplies the sum (1/N, 1/(2N), ...). */
  scale: number;
}

/** Element-wise backward: d (+)= scale * dTerm. */
export interface LossGradIo {
  d: Region;
  n: number;
  /** loss weight / N (and any constant factor of the term's derivative). */
  scale: number;
  accumulate: boolean;
}

function write(acc: boolean, expr: string): string {
  return `  d[i] = ${acc ? "d[i] + " : ""}${expr};`;
}

// ---------------------------------------------------------------------------------------------
// Smooth L1 (Fast R-CNN): f(x) = 0.5 (sigma x)^2 if |x| < 1/sigma^2, else |x| - 0.5/sigma^2.

function smoothL1Term(sigma: number): { term: string; grad: string } {
  const s2 = sigma * sigma;
  return {
    term: `select(ad - ${f32(0.5 / s2)}, ${f32(0.5 * s2)} * x * x, ad < ${f32(1 / s2)})`,
    grad: `select(sign(x), ${f32(s2)} * x, ad < ${f32(1 / s2)})`,
  };
}

/** out = scale * sum f(pred - target). */
export function smoothL1Forward(
  rec: Recorder,
  io: LossSumIo & { pred: Region; target: Region; sigma: number },
): void {
  recordSum(rec, {
    label: "smooth_l1",
    n: io.n,
    inputs: [{ name: "p", access: "read", region: io.pred }, {
      name: "t",
      access: "read",
      region: io.target,
    }],
    prelude: "    let x = p[i] - t[i];\n    let ad = abs(x);",
    term: smoothL1Term(io.sigma).term,
    partials: io.partials,
    out: io.out,
    outIndex: io.outIndex,
    scale: io.scale,
  });
}

/** d pred (+)= scale * f'(pred - target). */
export function smoothL1Backward(
  rec: Recorder,
  io: LossGradIo & { pred: Region; target: Region; sigma: number },
): void {
  const k = elementwise(`smooth_l1_bwd${io.accumulate ? " acc" : ""}`, {
    bindings: [{ name: "p", access: "read" }, { name: "t", access: "read" }, {
      name: "d",
      access: "read_write",
    }],
    n: io.n,
    body: `  let x = p[i] - t[i];
  let ad = abs(x);
${write(io.accumulate, `${f32(io.scale)} * ${smoothL1Term(io.sigma).grad}`)}`,
  });
  rec.dispatch(k.src, [io.pred, io.target, io.d], k.groups);
}

// ---------------------------------------------------------------------------------------------
// Jensen-Shannon: over elements with P > eps and Q > eps,
// 0.5 [P log(2P/(P+Q)) + Q log(2Q/(P+Q))]; d/dP = 0.5 log(2P/(P+Q)) (exact: the other terms cancel).

function jsPrelude(eps: number): string {
  // Clamping first keeps log() away from non-positive arguments on masked lanes.
  return `    let pp = max(p[i], ${f32(eps)});
    let qq = max(q[i], ${f32(eps)});
    let keep = p[i] > ${f32(eps)} && q[i] > ${f32(eps)};
    let m = pp + qq;`;
}

/** out = scale * sum_masked JS(P, Q). */
export function jsForward(rec: Recorder, io: LossSumIo & { p: Region; q: Region; eps: number }): void {
  recordSum(rec, {
    label: "js_regularization",
    n: io.n,
    inputs: [{ name: "p", access: "read", region: io.p }, { name: "q", access: "read", region: io.q }],
    prelude: jsPrelude(io.eps),
    term: "select(0.0, 0.5 * (pp * log(2.0 * pp / m) + qq * log(2.0 * qq / m)), keep)",
    partials: io.partials,
    out: io.out,
    outIndex: io.outIndex,
    scale: io.scale,
  });
}

/** dP (+)= scale * 0.5 log(2P/(P+Q)) on unmasked elements; Q gets no gradient (§4.12). */
export function jsBackward(rec: Recorder, io: LossGradIo & { p: Region; q: Region; eps: number }): void {
  const k = elementwise(`js_regularization_bwd${io.accumulate ? " acc" : ""}`, {
    bindings: [{ name: "p", access: "read" }, { name: "q", access: "read" }, {
      name: "d",
      access: "read_write",
    }],
    n: io.n,
    body: `${jsPrelude(io.eps)}
${write(io.accumulate, `select(0.0, ${f32(0.5 * io.scale)} * log(2.0 * pp / m), keep)`)}`,
  });
  rec.dispatch(k.src, [io.p, io.q, io.d], k.groups);
}

// ---------------------------------------------------------------------------------------------
// Adaptive-weight Euclidean: w_i = 1 / mean|pred_i - gt_i| (a constant for the backward),
// L = sum_i w_i sum (pred_i - gt_i)^2 / N.

/** Per pair i: stats[2i] = sum |pred - gt|, stats[2i+1] = sum (pred - gt)^2. */
export function adaptiveStats(
  rec: Recorder,
  io: { pred: Region; gt: Region; n: number; pair: number; stats: Region; partials: Region },
): void {
  const inputs = [{ name: "p", access: "read" as const, region: io.pred }, {
    name: "t",
    access: "read" as const,
    region: io.gt,
  }];
  const prelude = "    let x = p[i] - t[i];";
  recordSum(rec, {
    label: "adaptive_abs",
    n: io.n,
    inputs,
    prelude,
    term: "abs(x)",
    partials: io.partials,
    out: io.stats,
    outIndex: 2 * io.pair,
  });
  recordSum(rec, {
    label: "adaptive_sq",
    n: io.n,
    inputs,
    prelude,
    term: "x * x",
    partials: io.partials,
    out: io.stats,
    outIndex: 2 * io.pair + 1,
  });
}

/** Options of {@linkcode adaptiveCombine}. */
export interface AdaptiveCombineIo {
  stats: Region;
  /** [P] weights, read by the backward. */
  weights: Region;
  /** [1] loss. */
  loss: Region;
  /** Optional [P] copy of the weights and [P] per-pair terms w_i S_i / N, for monitoring. */
  weightsOut: Region | null;
  termsOut: Region | null;
  /** Elements per pair. */
  counts: readonly number[];
  batch: number;
  /** Clean: w = 1 / max(mean, eps). Legacy: w = 1 / mean, as the seed (inf and NaN at zero error). */
  eps: number;
  legacy: boolean;
}

/** Turns the per-pair sums into weights and the loss (one invocation; P is tiny). */
export function adaptiveCombine(rec: Recorder, io: AdaptiveCombineIo): void {
  const P = io.counts.length;
  const bindings: Binding[] = [
    { name: "stats", access: "read" },
    { name: "w", access: "read_write" },
    { name: "loss", access: "read_write" },
  ];
  const regions = [io.stats, io.weights, io.loss];
  if (io.weightsOut) {
    bindings.push({ name: "w_out", access: "read_write" });
    regions.push(io.weightsOut);
  }
  if (io.termsOut) {
    bindings.push({ name: "t_out", access: "read_write" });
    regions.push(io.termsOut);
  }
  const mean = (i: number) => `stats[${u32(2 * i)}] / ${f32(io.counts[i])}`;
  const lines = io.counts.map((_, i) => {
    const wi = io.legacy ? `1.0 / (${mean(i)})` : `1.0 / max(${mean(i)}, ${f32(io.eps)})`;
    return `  {
    let wi = ${wi};
    let ti = wi * stats[${u32(2 * i + 1)}] / ${f32(io.batch)};
    w[${u32(i)}] = wi;
    total += ti;
${io.weightsOut ? `    w_out[${u32(i)}] = wi;` : ""}
${io.termsOut ? `    t_out[${u32(i)}] = ti;` : ""}
  }`;
  }).join("\n");
  const code = `${declare(bindings)}
@compute @workgroup_size(1)
fn main() {
  var total = 0.0;
${lines}
  loss[0] = total;
}`;
  rec.dispatch({ label: `adaptive_combine ${P} pairs${io.legacy ? " legacy" : ""}`, code }, regions, [1]);
}

/** d pred_i (+)= scale * 2 w_i (pred_i - gt_i), w_i read from `weights[pair]`. */
export function adaptiveBackward(
  rec: Recorder,
  io: LossGradIo & { pred: Region; gt: Region; weights: Region; pair: number },
): void {
  const k = elementwise(`adaptive_bwd${io.accumulate ? " acc" : ""}`, {
    bindings: [
      { name: "p", access: "read" },
      { name: "t", access: "read" },
      { name: "w", access: "read" },
      { name: "d", access: "read_write" },
    ],
    n: io.n,
    body: write(io.accumulate, `${f32(2 * io.scale)} * w[${u32(io.pair)}] * (p[i] - t[i])`),
  });
  rec.dispatch(k.src, [io.pred, io.gt, io.weights, io.d], k.groups);
}

// ---------------------------------------------------------------------------------------------
// Integral coordinate loss on [B, J, C] joints: sum v_nj |x| (L1) or sum v_nj x^2 (L2), x = pred - target.

/** Which penalty the integral coordinate loss applies. */
export type CoordNorm = "l1" | "l2";

function coordIo(io: { pred: Region; target: Region; weights: Region | null }) {
  const bindings: Binding[] = [{ name: "p", access: "read" }, { name: "t", access: "read" }];
  const regions = [io.pred, io.target];
  if (io.weights) {
    bindings.push({ name: "v", access: "read" });
    regions.push(io.weights);
  }
  return { bindings, regions };
}

/** out = scale * sum_i v[i / C] * penalty(pred_i - target_i). */
export function coordForward(
  rec: Recorder,
  io: LossSumIo & { pred: Region; target: Region; weights: Region | null; coords: number; norm: CoordNorm },
): void {
  const { bindings, regions } = coordIo(io);
  const v = io.weights ? `v[i / ${u32(io.coords)}] * ` : "";
  recordSum(rec, {
    label: `coord_loss ${io.norm}`,
    n: io.n,
    inputs: bindings.map((b, k) => ({ ...b, region: regions[k] })),
    prelude: "    let x = p[i] - t[i];",
    term: `${v}${io.norm === "l1" ? "abs(x)" : "x * x"}`,
    partials: io.partials,
    out: io.out,
    outIndex: io.outIndex,
    scale: io.scale,
  });
}

/** d pred (+)= scale * v * penalty'(x), penalty' = sign(x) (L1; 0 at 0) or 2x (L2). */
export function coordBackward(
  rec: Recorder,
  io: LossGradIo & { pred: Region; target: Region; weights: Region | null; coords: number; norm: CoordNorm },
): void {
  const { bindings, regions } = coordIo(io);
  const v = io.weights ? ` * v[i / ${u32(io.coords)}]` : "";
  const g = io.norm === "l1" ? `${f32(io.scale)} * sign(x)` : `${f32(2 * io.scale)} * x`;
  const k = elementwise(
    `coord_loss_bwd ${io.norm}${io.weights ? " weighted" : ""}${io.accumulate ? " acc" : ""}`,
    {
      bindings: [...bindings, { name: "d", access: "read_write" }],
      n: io.n,
      body: `  let x = p[i] - t[i];
${write(io.accumulate, `${g}${v}`)}`,
    },
  );
  rec.dispatch(k.src, [...regions, io.d], k.groups);
}
