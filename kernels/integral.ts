/**
 * Integral (soft-argmax) decoders, SEED_SPEC §4.10: the seed's IntegralX/Y/Z marginals and
 * IntegralVector, a fused soft-argmax that turns each joint's probability map or cube straight
 * into expected (x, y[, z]) of cell centres, and the 2D NumericalCoordinateRegression.
 *
 * The soft-argmax is linear in its input, so its backward needs no saved state: every cell gets
 * the dot product of the coordinate gradients with its own centre. That makes it cheap to train
 * through (Integral Human Pose Regression): put a coordinate loss on its output.
 * @module
 */
import {
  type Binding,
  declare,
  elementwise,
  f32,
  type Groups,
  type Recorder,
  type Region,
  u32,
  WG,
} from "./kernel.ts";
import {
  chunkedKernel,
  chunking,
  type GroupLayout,
  LANES_WG,
  largestDivisorUpTo,
  type ReduceLayout,
  reduceLayout,
  workgroupFold,
} from "./reduce.ts";
import { copiesForReading, textureDecl } from "./windows.ts";

/** Marginal axis of IntegralX / IntegralY / IntegralZ over [N,C,H,W]. */
export type IntegralAxis = "x" | "y" | "z";

/** Output length per sample of an axis marginal: W, H or C. */
export function integralAxisLength(shape: readonly number[], axis: IntegralAxis): number {
  return axis === "x" ? shape[3] : axis === "y" ? shape[2] : shape[1];
}

/** One workgroup per output value: sum over `terms` input elements, each weighted. */
function rowSums(
  rec: Recorder,
  label: string,
  o: { x: Region; y: Region; outputs: number; terms: number; index: string; weight?: string },
): void {
  const gx = Math.min(o.outputs, 65535), gy = Math.ceil(o.outputs / 65535);
  const code = `${declare([{ name: "x", access: "read" }, { name: "y", access: "read_write" }])}
${workgroupFold({ name: "sum", type: "f32", combine: "a + b" })}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u) {
  let o = wid.x + wid.y * nwg.x;
  if (o >= ${u32(o.outputs)}) { return; }
  var a = 0.0;
  for (var k = lid.x; k < ${u32(o.terms)}; k += ${WG}u) { a += x[${o.index}]${
    o.weight ? ` * (${o.weight})` : ""
  }; }
  let total = sum(a, lid.x);
  if (lid.x == 0u) { y[o] = total; }
}`;
  const groups: Groups = [gx, gy];
  rec.dispatch({ label, code }, [o.x, o.y], groups);
}

/** Options of the axis marginals. */
export interface IntegralAxisOptions {
  /** Input [N,C,H,W]. */
  shape: readonly [number, number, number, number];
  axis: IntegralAxis;
}

/** IntegralX (-> [N,W]), IntegralY (-> [N,H]) or IntegralZ (-> [N,C]): sums over the other two axes. */
export function integralAxisForward(rec: Recorder, o: IntegralAxisOptions & { x: Region; y: Region }): void {
  const [N, C, H, W] = o.shape;
  const L = integralAxisLength(o.shape, o.axis);
  const idx = {
    x: `(o / ${u32(W)}) * ${u32(C * H * W)} + k * ${u32(W)} + o % ${u32(W)}`,
    y: `((o / ${u32(H)}) * ${u32(C)} + k / ${u32(W)}) * ${u32(H * W)} + (o % ${u32(H)}) * ${u32(W)} + k % ${
      u32(W)
    }`,
    z: `o * ${u32(H * W)} + k`,
  }[o.axis];
  rowSums(rec, `integral_${o.axis} ${o.shape.join("x")}`, {
    x: o.x,
    y: o.y,
    outputs: N * L,
    terms: (C * H * W) / L,
    index: idx,
  });
}

/** dx (+)= g broadcast over the summed axes. */
export function integralAxisBackward(
  rec: Recorder,
  o: IntegralAxisOptions & { dy: Region; dx: Region; accumulate: boolean },
): void {
  const [N, C, H, W] = o.shape;
  const src = {
    x: `(i / ${u32(C * H * W)}) * ${u32(W)} + i % ${u32(W)}`,
    y: `(i / ${u32(C * H * W)}) * ${u32(H)} + (i / ${u32(W)}) % ${u32(H)}`,
    z: `i / ${u32(H * W)}`,
  }[o.axis];
  const k = elementwise(`integral_${o.axis}_bwd${o.accumulate ? " acc" : ""} ${o.shape.join("x")}`, {
    bindings: [{ name: "dy", access: "read" }, { name: "dx", access: "read_write" }],
    n: N * C * H * W,
    body: `  dx[i] = ${o.accumulate ? "dx[i] + " : ""}dy[${src}];`,
  });
  rec.dispatch(k.src, [o.dy, o.dx], k.groups);
}

/** Options of IntegralVector: [N, K] -> [N, 1]. */
export interface IntegralVectorOptions {
  rows: number;
  length: number;
  /** Positions span [lb, ub]: pos_k = lb + (ub - lb)(k + 0.5)/K. */
  bounds: readonly [number, number];
}

function vectorPos(o: IntegralVectorOptions, k: string): string {
  const [lb, ub] = o.bounds;
  return `(${f32(lb)} + ${f32((ub - lb) / o.length)} * (f32(${k}) + 0.5))`;
}

/** y_n = sum_k p_nk * pos_k. */
export function integralVectorForward(
  rec: Recorder,
  o: IntegralVectorOptions & { x: Region; y: Region },
): void {
  rowSums(rec, `integral_vector ${o.rows}x${o.length}`, {
    x: o.x,
    y: o.y,
    outputs: o.rows,
    terms: o.length,
    index: `o * ${u32(o.length)} + k`,
    weight: vectorPos(o, "k"),
  });
}

/** dp_nk (+)= g_n * pos_k. */
export function integralVectorBackward(
  rec: Recorder,
  o: IntegralVectorOptions & { dy: Region; dx: Region; accumulate: boolean },
): void {
  const k = elementwise(`integral_vector_bwd${o.accumulate ? " acc" : ""} ${o.rows}x${o.length}`, {
    bindings: [{ name: "dy", access: "read" }, { name: "dx", access: "read_write" }],
    n: o.rows * o.length,
    body: `  dx[i] = ${o.accumulate ? "dx[i] + " : ""}dy[i / ${u32(o.length)}] * ${
      vectorPos(o, `i % ${u32(o.length)}`)
    };`,
  });
  rec.dispatch(k.src, [o.dy, o.dx], k.groups);
}

/** Per-axis [lower, upper] bounds of decoded coordinates. */
export interface CoordBounds {
  x: readonly [number, number];
  y: readonly [number, number];
  z: readonly [number, number];
}

/** Norm coordinates: every axis in [0, 1]. */
export const UNIT_BOUNDS: CoordBounds = { x: [0, 1], y: [0, 1], z: [0, 1] };

/**
 * The cell grid of one joint's map or cube (D = 1 for 2D) and how a cell index becomes a
 * coordinate: lb + (ub - lb)(k + offset)/extent. The offset is 0.5 (cell centres) except for
 * the seed's NumericalCoordinateRegression (0).
 */
export interface CellGrid {
  depth: number;
  height: number;
  width: number;
  bounds: CoordBounds;
  offset: number;
}

/** WGSL expression of coordinate `axis` (0 x, 1 y, 2 z) for the in-group flat index `index` (u32). */
export function cellCoord(grid: CellGrid, at: { axis: 0 | 1 | 2; index: string }): string {
  const { depth: D, height: H, width: W } = grid;
  const { axis, index: k } = at;
  const [ext, cell, [lb, ub]] = axis === 0
    ? [W, `${k} % ${u32(W)}`, grid.bounds.x]
    : axis === 1
    ? [H, `(${k} / ${u32(W)}) % ${u32(H)}`, grid.bounds.y]
    : [D, `${k} / ${u32(H * W)}`, grid.bounds.z];
  return `(${f32(lb)} + ${f32((ub - lb) / ext)} * (f32(${cell}) + ${f32(grid.offset)}))`;
}

/**
 * Where decoded coordinates go: each output takes the listed coordinate axes for every group,
 * interleaved ([G, axes.length]). E.g. one [B,J,3] output takes [0,1,2]; the seed's split form
 * is [0,1] into [B,J,2] and [2] into [B,J].
 */
export interface CoordOutput {
  region: Region;
  axes: readonly (0 | 1 | 2)[];
}

/** Floats of scratch {@linkcode softArgmaxForward} needs. */
export function softArgmaxStatsFloats(l: GroupLayout): number {
  return 4 * l.groups * chunking(l.groupSize).chunks;
}

/** Options of the soft-argmax launchers. */
export interface SoftArgmaxOptions extends GroupLayout {
  grid: CellGrid;
  /** Reduction layout (default: the adapter's, see {@linkcode ReduceLayout}). */
  layout?: ReduceLayout;
}

/**
 * Per group (one joint's probabilities), the expectation of each cell coordinate:
 * x = sum_i p_i * cellCoord(i). Chunked partial sums, then a fixed-order fold per group.
 */
export function softArgmaxForward(
  rec: Recorder,
  o: SoftArgmaxOptions & { x: Region; stats: Region; outputs: readonly CoordOutput[] },
): void {
  const grid = o.grid;
  const tag = `${grid.depth}x${grid.height}x${grid.width}`;
  const pos = ([0, 1, 2] as const).map((axis) => cellCoord(grid, { axis, index: "k" }));
  const layout = reduceLayout(rec, o.layout);
  const store = `  if (lid == 0u) {
    stats[4u * (g * Q + c)] = cs.x;
    stats[4u * (g * Q + c) + 1u] = cs.y;
    stats[4u * (g * Q + c) + 2u] = cs.z;
  }`;
  // On a CPU adapter with the lanes layout, x from a texture copy, four values a texel (a storage
  // load there takes a lane-by-lane path, see windows.ts), added in the storage kernel's order.
  const { chunk } = chunking(o.groupSize);
  const views = layout === "lanes" && rec.kernels.gpu.isFallback && o.groupSize % 4 === 0 && chunk % 4 === 0
    ? copiesForReading(rec, [o.x], o.groups * o.groupSize)
    : null;
  const part = views
    ? chunkedKernel(`soft_argmax_partials ${tag} tex`, {
      ...o,
      layout,
      bindings: [{ name: "stats", access: "read_write" }],
      prelude: textureDecl(1, "tx", "x_"),
      body: `  var a = vec4f(0.0);
  for (var t = lo / 4u; t < hi / 4u; t++) {
    let v = x_4(t);
${
        ["x", "y", "z", "w"].map((e, j) =>
          `    { let k = 4u * t + ${u32(j)} - g * N; a += v.${e} * vec4f(${pos.join(", ")}, 0.0); }`
        ).join("\n")
      }
  }
  let cs = a;
${store}`,
    })
    : chunkedKernel(`soft_argmax_partials ${tag}`, {
      ...o,
      layout,
      bindings: [{ name: "x", access: "read" }, { name: "stats", access: "read_write" }],
      body: `  var a = vec4f(0.0);
  for (var i = lo + lid; i < hi; i += STRIDE) {
    let k = i - g * N;
    a += x[i] * vec4f(${pos.join(", ")}, 0.0);
  }
  let cs = sum4(a, lid);
${store}`,
    });
  rec.dispatch(part.src, views ? [o.stats, views[0]] : [o.x, o.stats], part.groups);
  const Q = chunking(o.groupSize).chunks;
  const outs: Binding[] = o.outputs.map((_, k) => ({ name: `out${k}`, access: "read_write" }));
  const writes = o.outputs.map((out, k) =>
    out.axes.map((a, m) => `  out${k}[i * ${u32(out.axes.length)} + ${u32(m)}] = s[${a}];`).join("\n")
  ).join("\n");
  const fold = elementwise(`soft_argmax_fold ${tag} -> ${o.outputs.map((x) => x.axes.join("")).join(",")}`, {
    bindings: [{ name: "stats", access: "read" }, ...outs],
    n: o.groups,
    body: `  var s = vec3f(0.0);
  for (var q = 0u; q < ${u32(Q)}; q++) {
    let b = 4u * (i * ${u32(Q)} + q);
    s += vec3f(stats[b], stats[b + 1u], stats[b + 2u]);
  }
${writes}`,
  });
  rec.dispatch(fold.src, [o.stats, ...o.outputs.map((x) => x.region)], fold.groups);
}

/** A coordinate gradient input of the backward: like {@linkcode CoordOutput}, for its diff. */
export interface CoordGradient {
  region: Region;
  axes: readonly (0 | 1 | 2)[];
}

/**
 * dp_i (+)= sum over outputs of g . cellCoord(i). With `channelZeroBug` (the seed's
 * NumericalCoordinateRegression), every joint's gradient is written to channel 0 of its
 * sample, the last joint's winning, and the other channels get nothing.
 */
export function softArgmaxBackward(
  rec: Recorder,
  o: SoftArgmaxOptions & {
    grads: readonly CoordGradient[];
    dx: Region;
    accumulate: boolean;
    channelZeroBug?: { joints: number };
  },
): void {
  const g = o.grid;
  // Four cells per invocation where a group holds a multiple of four (and dx is vec4-aligned):
  // the coordinate gradients are loaded once for the four, and dx is stored as one vec4.
  const V = o.groupSize % 4 === 0 && o.dx.offset % 16 === 0 ? 4 : 1;
  const per = o.groupSize / V;
  // With the lanes layout (CPU adapters) an invocation walks a run of `run` such units of one group,
  // loading the coordinate gradients once for the run: there each lane's load takes the lane-by-lane
  // path (see windows.ts) and cost more than the stores. Every cell's value is the same expression.
  const run = reduceLayout(rec, o.layout) === "lanes" ? largestDivisorUpTo(per, 64) : 1;
  const runs = per / run;
  const ins: Binding[] = o.grads.map((_, k) => ({ name: `dy${k}`, access: "read" }));
  const loads = o.grads.flatMap((gr, k) =>
    gr.axes.map((_, m) => `  let g${k}_${m} = dy${k}[src * ${u32(gr.axes.length)} + ${u32(m)}];`)
  );
  const value = (c: number) => {
    const terms = o.grads.flatMap((gr, k) =>
      gr.axes.map((a, m) => `g${k}_${m} * ${cellCoord(g, { axis: a, index: `(k0 + ${u32(c)})` })}`)
    );
    return terms.length ? terms.join(" +\n    ") : "0.0";
  };
  const vals = Array.from({ length: V }, (_, c) => `  let v${c} = ${value(c)};`);
  const v = V === 4 ? "vec4<f32>(v0, v1, v2, v3)" : "v0";
  const zero = V === 4 ? "vec4<f32>()" : "0.0";
  const store = (val: string) => `dx[e] = ${o.accumulate ? "dx[e] + " : ""}${val};`;
  // `gi`: the group; `u0`: the run's first unit in it; unit `u` of the run is dx[e], its first cell k0.
  const walk = (inner: string) =>
    run === 1
      ? `  let u = u0;
  let e = i;
  let k0 = u * ${u32(V)};
${inner}`
      : `  for (var u = u0; u < u0 + ${u32(run)}; u++) {
    let e = gi * ${u32(per)} + u;
    let k0 = u * ${u32(V)};
${inner.split("\n").map((l) => `  ${l}`).join("\n")}
  }`;
  let body = `  let gi = i / ${u32(runs)};
  let u0 = (i % ${u32(runs)}) * ${u32(run)};
  let src = gi;
${loads.join("\n")}
${
    walk(`${vals.join("\n")}
  ${store(v)}`)
  }`;
  if (o.channelZeroBug) {
    // The last joint's gradient lands on channel 0 of its sample; every other channel gets zeros.
    const J = o.channelZeroBug.joints;
    body = `  let gi = i / ${u32(runs)};
  let u0 = (i % ${u32(runs)}) * ${u32(run)};
  let j = gi % ${u32(J)};
  let src = (gi / ${u32(J)}) * ${u32(J)} + ${u32(J - 1)};
  if (j == 0u) {
${loads.join("\n")}
${
      walk(`${vals.join("\n")}
  ${store(v)}`)
    }
  } else {
${walk(`  ${store(zero)}`)}
  }`;
  }
  const k = elementwise(
    `soft_argmax_bwd${o.channelZeroBug ? " channel0" : ""}${
      o.accumulate ? " acc" : ""
    } ${g.depth}x${g.height}x${g.width}${V === 4 ? " v4" : ""}${run > 1 ? ` run${run}` : ""}`,
    {
      bindings: [...ins, { name: "dx", access: "read_write", type: V === 4 ? "vec4<f32>" : "f32" }],
      n: o.groups * runs,
      body,
      wg: run > 1 ? LANES_WG : undefined,
    },
  );
  rec.dispatch(k.src, [...o.grads.map((x) => x.region), o.dx], k.groups);
}
