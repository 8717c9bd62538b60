/**
 * Normalisation kernels: batch norm (batch or running statistics, optional fused affine and
 * ReLU), group norm and a per-channel affine (Caffe's Scale). Every per-channel or per-group
 * statistic is reduced in a fixed order by the invocations that then use it, so results are
 * bit-reproducible, need no float atomics, and one dispatch normalises the very elements it just
 * reduced. Batch norm has both reduction layouts of reduce.ts: a workgroup per channel folding in
 * a tree (GPUs), or one invocation per channel walking it in order, four values at a time, with
 * no barriers (CPU adapters).
 *
 * Tensors are seen as [outer, channels, inner] (NCHW: N, C, H*W).
 * @module
 */
import {
  type Binding,
  declare,
  elementwise,
  f32,
  grid1d,
  type Recorder,
  type Region,
  u32,
} from "./kernel.ts";
import { LANES_WG, type ReduceLayout, reduceLayout, workgroupFold } from "./reduce.ts";
import {
  copiesForReading,
  disjointBuffers,
  type SliceWindows,
  sliceWindows,
  textureDecl,
  uniformBindings,
} from "./windows.ts";

/**
 * Threads per reducing workgroup. On a CPU adapter a workgroup runs as SIMD chunks that switch at
 * every barrier, so 256 threads made the tree reductions (8 barrier levels over 32 chunks) cost
 * more than the arithmetic for the tens of thousands of values per channel these nets have; 64
 * threads keep each core busy with fewer switches. GPUs keep 256.
 */
function widthFor(rec: Recorder): number {
  return rec.kernels.gpu.isFallback ? 64 : 256;
}

/** A tensor viewed as [outer, channels, inner]; for NCHW that is N, C and H*W. */
export interface ChannelShape {
  outer: number;
  channels: number;
  inner: number;
}

/** Optional per-channel affine parameters; absent ones mean gamma 1, beta 0. */
export interface Affine {
  gamma?: Region | null;
  beta?: Region | null;
}

type Bound = Binding & { region: Region };

/** Bindings collected in order, so declarations and bound regions cannot drift apart. */
class Bind {
  readonly list: Bound[] = [];
  read(name: string, region: Region, type?: string): this {
    this.list.push({ name, access: "read", region, type });
    return this;
  }
  write(name: string, region: Region, type?: string): this {
    this.list.push({ name, access: "read_write", region, type });
    return this;
  }
  get code(): string {
    return declare(this.list);
  }
  get regions(): Region[] {
    return this.list.map((b) => b.region);
  }
}

/** The workgroup sums the kernels use: `wg_sum2` (vec2f) and `wg_sum` (f32, via the same fold). */
const reduce = (wg: number) =>
  `${workgroupFold({ name: "wg_sum2", type: "vec2f", wg, combine: "a + b" })}
fn wg_sum(v: f32, lid: u32) -> f32 {
  return wg_sum2(vec2f(v, 0.0), lid).x;
}`;

/** WGSL for the flat index of the j-th element (of outer*inner) of channel `c`. */
function channelIndex(s: ChannelShape): string {
  if (s.outer === 1) return `c * ${u32(s.inner)} + j`;
  if (s.inner === 1) return `j * ${u32(s.channels)} + c`;
  return `(j / ${u32(s.inner)}) * ${u32(s.channels * s.inner)} + c * ${u32(s.inner)} + j % ${u32(s.inner)}`;
}

/** Kernel header running one workgroup per channel (folded to 2-D past 65535 channels). */
function perChannelMain(s: ChannelShape, wg: number): string {
  return `@compute @workgroup_size(${wg})
fn main(@builtin(local_invocation_id) lidv: vec3u, @builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u) {
  let c = wid.x + wid.y * nwg.x;
  if (c >= ${u32(s.channels)}) { return; }
  let lid = lidv.x;`;
}

/**
 * The tensors a "lanes" kernel reads through uniform windows (see windows.ts): their names, and
 * the windows of whole images every one of them is cut into (all have the kernel's shape).
 */
interface LaneWindows {
  names: readonly string[];
  cut: SliceWindows;
}

/** Reads `name` at flat (vec4 when `vec`) index `i`, window-local index `iw` in window `w`. */
type Load = (name: string) => string;

/**
 * WGSL walking every value of channel `c` in memory order (images, then positions), four at a
 * time when `vec` (each storage tensor then bound as `array<vec4<f32>>`). `body(i, ld)` gets the
 * flat (vec4) index and a reader: `ld(name)` is that tensor's value there, from its window
 * `NAME{w}` when it is one of `win`'s names, from a texture copy `NAME_4(i)` when one of `tex`
 * (vec only), else from storage `NAME[i]`.
 */
function walkChannel(
  s: ChannelShape,
  vec: boolean,
  win: LaneWindows | null,
  body: (i: string, ld: Load) => string,
  tex: readonly string[] = [],
): string {
  const inner = vec ? s.inner / 4 : s.inner;
  const slice = s.channels * inner;
  // Images and positions as one flat loop, in the same order (the same sums): a loop level costs
  // llvmpipe mask bookkeeping on each loop-carried value. BN+ReLU on 8x32x8x8 ran 7% faster each
  // way (2026-12-07, alternating, LP_NUM_THREADS=0).
  const walk = (count: number, first: number, ld: Load) =>
    `  for (var t = 0u; t < ${u32(count * inner)}; t++) {
    let n = t / ${u32(inner)};
    let iw = (n * ${u32(s.channels)} + c) * ${u32(inner)} + t - n * ${u32(inner)};
    let i = iw${first ? ` + ${u32(first * slice)}` : ""};
${body("i", ld)}
  }`;
  if (!win) return walk(s.outer, 0, (name) => tex.includes(name) ? `${name}_4(i)` : `${name}[i]`);
  const { cut, names } = win;
  return cut.regions.map((_, w) =>
    walk(cut.count(w), w * cut.perWindow, (name) => {
      if (!names.includes(name)) return `${name}[i]`;
      return vec ? `${name}${w}[iw]` : `${name}${w}[iw >> 2u][iw & 3u]`;
    })
  ).join("\n");
}

/**
 * Windows for the tensors `reads` of a lanes kernel of shape `s`, or null (storage reads) when
 * the adapter is not a CPU, they cannot all be cut, or a written region shares their buffer.
 */
function laneWindows(
  rec: Recorder,
  s: ChannelShape,
  reads: Record<string, Region>,
  writes: readonly (Region | null | undefined)[],
): { win: LaneWindows; regions: Region[][] } | null {
  if (!rec.kernels.gpu.isFallback) return null;
  const names = Object.keys(reads);
  const budget = Math.floor(uniformBindings(rec) / names.length);
  const cuts = names.map((n) => sliceWindows(rec, reads[n], s.outer, s.channels * s.inner, budget));
  if (cuts.some((c) => !c) || !disjointBuffers(Object.values(reads), writes)) return null;
  return { win: { names, cut: cuts[0]! }, regions: cuts.map((c) => c!.regions) };
}

/**
 * Texture copies of the tensors `reads` of a vec4 lanes kernel on a CPU adapter that would read
 * them from storage (no windows): a storage load there takes a lane-by-lane path, a copy is a
 * memory copy (see windows.ts). Null, with nothing recorded, when not a CPU adapter, not vec4, or
 * a region cannot be copied. The kernel reads `NAME_4(i)` ({@linkcode textureDecls}).
 */
function laneTextures(
  rec: Recorder,
  s: ChannelShape,
  vec: boolean,
  reads: Record<string, Region>,
): { names: string[]; views: GPUTextureView[] } | null {
  if (!rec.kernels.gpu.isFallback || !vec) return null;
  const names = Object.keys(reads);
  const views = copiesForReading(rec, names.map((n) => reads[n]), s.outer * s.channels * s.inner);
  return views ? { names, views } : null;
}

/** Declarations of the texture copies of {@linkcode laneTextures}, bound from `first`. */
function textureDecls(names: readonly string[], first: number): string {
  return names.map((n, k) => textureDecl(first + k, `${n}_t`, `${n}_`)).join("\n");
}

/** Declarations of the window bindings `NAME{w}`, numbered from `first`. */
function windowDecls(win: LaneWindows, first: number): string {
  const out: string[] = [];
  let b = first;
  for (const name of win.names) {
    win.cut.regions.forEach((r, w) => {
      out.push(`@group(0) @binding(${b++}) var<uniform> ${name}${w}: array<vec4<f32>, ${r.size / 16}>;`);
    });
  }
  return out.join("\n");
}

/** True when every region of a "lanes" kernel can be read and written as vec4. */
function canVec(s: ChannelShape, regions: readonly (Region | null | undefined)[]): boolean {
  return s.inner % 4 === 0 && regions.every((r) => !r || (r.offset % 16 === 0 && r.size % 16 === 0));
}

/** The horizontal sum of an accumulator that is a vec4 when `vec`. */
function hsum(v: string, vec: boolean): string {
  return vec ? `((${v}.x + ${v}.y) + (${v}.z + ${v}.w))` : v;
}

function affineBindings(b: Bind, a: Affine, writable = false): { gamma: string; beta: string } {
  if (a.gamma) writable ? b.write("gamma", a.gamma) : b.read("gamma", a.gamma);
  if (a.beta) writable ? b.write("beta", a.beta) : b.read("beta", a.beta);
  return { gamma: a.gamma ? "gamma[c]" : "1.0", beta: a.beta ? "beta[c]" : "0.0" };
}

/** Options of {@linkcode batchNormForward}. */
export interface BatchNormForwardOptions extends Affine {
  x: Region;
  y: Region;
  shape: ChannelShape;
  eps: number;
  relu: boolean;
  /**
   * Where the statistics come from. "batch": reduce this batch and save mean and 1/std into
   * `saved` (2*C floats: means then inverse std) for the backward; with `running`, also fold the
   * batch statistics into the running estimates. "running": normalise with `mean`/`var`.
   */
  stats:
    | {
      kind: "batch";
      saved: Region;
      running?: { mean: Region; var: Region; scale: Region; fraction: number } | null;
    }
    | { kind: "running"; mean: Region; var: Region };
  /** Reduction layout (default: the adapter's, see {@linkcode ReduceLayout}). */
  layout?: ReduceLayout;
}

/**
 * Batch norm forward, y = [relu](gamma * (x - mean) / sqrt(var + eps) + beta), var biased.
 *
 * Running statistics follow Caffe's moving average, stored normalised: with fraction f and
 * m = outer*inner values per channel, each training batch does
 *   S <- f*S + 1;  mean_run += (mean - mean_run) / S;  var_run += (m/(m-1) * var - var_run) / S
 * which equals Caffe's blobs (S*mean_run, S*var_run, S) divided through by S, so a freshly
 * initialised layer (S = 0) takes the first batch's statistics as they are.
 */
export function batchNormForward(rec: Recorder, o: BatchNormForwardOptions): void {
  const wg = widthFor(rec);
  const s = o.shape, C = s.channels, M = s.outer * s.inner;
  if (o.stats.kind === "running") {
    const b = new Bind().read("x", o.x);
    if (o.gamma) b.read("gamma", o.gamma);
    if (o.beta) b.read("beta", o.beta);
    b.read("rmean", o.stats.mean).read("rvar", o.stats.var).write("y", o.y);
    const k = elementwise(`bn_fwd running${o.relu ? " relu" : ""}`, {
      bindings: b.list,
      n: s.outer * C * s.inner,
      body: `  let c = (i / ${u32(s.inner)}) % ${u32(C)};
  let scale = ${o.gamma ? "gamma[c]" : "1.0"} * inverseSqrt(rvar[c] + ${f32(o.eps)});
  let shift = ${o.beta ? "beta[c]" : "0.0"} - rmean[c] * scale;
  let z = x[i] * scale + shift;
  y[i] = ${o.relu ? "max(z, 0.0)" : "z"};`,
    });
    rec.dispatch(k.src, b.regions, k.groups);
    return;
  }
  const run = o.stats.running;
  if (reduceLayout(rec, o.layout) === "lanes") return batchNormForwardLanes(rec, o);
  const b = new Bind().read("x", o.x);
  // gamma/beta share the parameter buffer with the running statistics this kernel writes; WebGPU
  // forbids read-only and writable bindings of one buffer in a dispatch, so bind them writable.
  const a = affineBindings(b, o, !!run);
  b.write("y", o.y).write("saved", o.stats.saved);
  if (run) b.write("rmean", run.mean).write("rvar", run.var).write("rscale", run.scale);
  const idx = channelIndex(s);
  const update = run ? runningUpdate(run, M) : "";
  const code = `${b.code}
${reduce(wg)}
${perChannelMain(s, wg)}
  var acc = 0.0;
  for (var j = lid; j < ${u32(M)}; j += ${wg}u) { acc += x[${idx}]; }
  let mean = wg_sum(acc, lid) * ${f32(1 / M)};
  acc = 0.0;
  for (var j = lid; j < ${u32(M)}; j += ${wg}u) { let d = x[${idx}] - mean; acc += d * d; }
  let v = wg_sum(acc, lid) * ${f32(1 / M)};
  let inv = inverseSqrt(v + ${f32(o.eps)});
  let scale = ${a.gamma} * inv;
  let shift = ${a.beta} - mean * scale;
  for (var j = lid; j < ${u32(M)}; j += ${wg}u) {
    let i = ${idx};
    let z = x[i] * scale + shift;
    y[i] = ${o.relu ? "max(z, 0.0)" : "z"};
  }
  if (lid == 0u) {
    saved[c] = mean;
    saved[${u32(C)} + c] = inv;${update}
  }
}`;
  rec.dispatch(
    { label: `bn_fwd batch${o.relu ? " relu" : ""}${run ? " update" : ""}`, code },
    b.regions,
    grid1d(C, 1),
  );
}

/** The moving-average update of the running statistics (see {@linkcode batchNormForward}). */
function runningUpdate(run: { fraction: number }, M: number): string {
  return `
    let S = rscale[c] * ${f32(run.fraction)} + 1.0;
    rscale[c] = S;
    rmean[c] = rmean[c] + (mean - rmean[c]) / S;
    rvar[c] = rvar[c] + (${f32(M > 1 ? M / (M - 1) : 1)} * v - rvar[c]) / S;`;
}

/**
 * Batch-statistics forward with one invocation per channel: two ordered passes, no barriers; on
 * CPU adapters x is read through uniform windows where it can be cut into them.
 */
function batchNormForwardLanes(rec: Recorder, o: BatchNormForwardOptions): void {
  if (o.stats.kind !== "batch") throw new Error("unreachable");
  const s = o.shape, C = s.channels, M = s.outer * s.inner;
  const run = o.stats.running;
  const vec = canVec(s, [o.x, o.y]);
  const T = vec ? "vec4<f32>" : "f32";
  const b = new Bind();
  const windows = laneWindows(rec, s, { x: o.x }, [
    o.y,
    o.stats.saved,
    o.gamma,
    o.beta,
    run?.mean,
    run?.var,
    run?.scale,
  ]);
  const tex = windows ? null : laneTextures(rec, s, vec, { x: o.x });
  if (!windows && !tex) b.read("x", o.x, T);
  const a = affineBindings(b, o, !!run);
  b.write("y", o.y, T).write("saved", o.stats.saved);
  if (run) b.write("rmean", run.mean).write("rvar", run.var).write("rscale", run.scale);
  const win = windows?.win ?? null;
  const texNames = tex?.names ?? [];
  const code = `${b.code}
${win ? windowDecls(win, b.list.length) : tex ? textureDecls(tex.names, b.list.length) : ""}
@compute @workgroup_size(${LANES_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= ${u32(C)}) { return; }
  // Mean and variance in one pass over the channel, of x shifted by its first value so the
  // squares do not cancel: var = E[(x - K)^2] - E[x - K]^2 with K close to the mean.
  let K = ${
    win
      ? firstValue(s)
      : tex
      ? `x_4(c * ${u32(s.inner / 4)}).x`
      : vec
      ? `x[c * ${u32(s.inner / 4)}].x`
      : `x[c * ${u32(s.inner)}]`
  };
  var s1 = ${T}();
  var s2 = ${T}();
${
    walkChannel(s, vec, win, (_i, ld) =>
      `      let d = ${ld("x")} - ${T}(K);
      s1 += d;
      s2 += d * d;`, texNames)
  }
  let m1 = ${hsum("s1", vec)} * ${f32(1 / M)};
  let mean = K + m1;
  let v = max(${hsum("s2", vec)} * ${f32(1 / M)} - m1 * m1, 0.0);
  let inv = inverseSqrt(v + ${f32(o.eps)});
  let scale = ${a.gamma} * inv;
  let shift = ${a.beta} - mean * scale;
${
    walkChannel(s, vec, win, (i, ld) =>
      `      let z = ${ld("x")} * ${T}(scale) + ${T}(shift);
      y[${i}] = ${o.relu ? `max(z, ${T}())` : "z"};`, texNames)
  }
  saved[c] = mean;
  saved[${u32(C)} + c] = inv;${run ? runningUpdate(run, M) : ""}
}`;
  const label = `bn_fwd batch lanes${o.relu ? " relu" : ""}${run ? " update" : ""}${vec ? " v4" : ""}${
    win ? ` ux${win.cut.regions.length}` : tex ? " tex" : ""
  }`;
  rec.dispatch(
    { label, code },
    [...b.regions, ...(windows?.regions.flat() ?? []), ...(tex?.views ?? [])],
    grid1d(C, LANES_WG),
  );
}

/** WGSL for the first value of channel `c` (image 0) read from window `x0`. */
function firstValue(s: ChannelShape): string {
  return `x0[(c * ${u32(s.inner)}) >> 2u][(c * ${u32(s.inner)}) & 3u]`;
}

/** Options of {@linkcode batchNormBackward}. */
export interface BatchNormBackwardOptions extends Affine {
  x: Region;
  dy: Region;
  shape: ChannelShape;
  eps: number;
  relu: boolean;
  /** The statistics the forward used: saved batch statistics, or the running ones. */
  stats: { kind: "batch"; saved: Region } | { kind: "running"; mean: Region; var: Region };
  /** Gradient of x, or null when x needs none. */
  dx: Region | null;
  accumulate: boolean;
  dgamma?: Region | null;
  dbeta?: Region | null;
  /** Reduction layout (default: the adapter's, see {@linkcode ReduceLayout}). */
  layout?: ReduceLayout;
}

/**
 * Batch norm backward in one dispatch, one workgroup per channel. With g the output gradient
 * (masked by the ReLU, whose pre-activation is recomputed from x exactly as the forward computed
 * it) and xh the normalised input:
 *   dgamma = sum g*xh, dbeta = sum g;
 *   batch statistics:   dx = gamma/std * (g - dbeta/m - xh * dgamma/m)
 *   running statistics: dx = gamma/std * g  (the statistics are constants).
 */
export function batchNormBackward(rec: Recorder, o: BatchNormBackwardOptions): void {
  const wg = widthFor(rec);
  if (!o.dx && !o.dgamma && !o.dbeta) return;
  if (reduceLayout(rec, o.layout) === "lanes") return batchNormBackwardLanes(rec, o);
  const s = o.shape, C = s.channels, M = s.outer * s.inner;
  const b = new Bind().read("x", o.x).read("dy", o.dy);
  const a = affineBindings(b, o);
  const batch = o.stats.kind === "batch";
  if (o.stats.kind === "batch") b.read("saved", o.stats.saved);
  else b.read("rmean", o.stats.mean).read("rvar", o.stats.var);
  if (o.dx) b.write("dx", o.dx);
  if (o.dgamma) b.write("dgamma", o.dgamma);
  if (o.dbeta) b.write("dbeta", o.dbeta);
  const idx = channelIndex(s);
  const stats = batch
    ? `  let mean = saved[c];
  let inv = saved[${u32(C)} + c];`
    : `  let mean = rmean[c];
  let inv = inverseSqrt(rvar[c] + ${f32(o.eps)});`;
  // The same scale/shift expression as the forward, so the ReLU mask matches it bit for bit.
  const grad = `let i = ${idx};
    let xi = x[i];
    let z = xi * scale + shift;
    let g = ${o.relu ? "select(0.0, dy[i], z > 0.0)" : "dy[i]"};
    let xh = (xi - mean) * inv;`;
  const acc = o.accumulate ? "dx[i] + " : "";
  let body: string;
  if (batch) {
    body = `  var acc = vec2f(0.0);
  for (var j = lid; j < ${u32(M)}; j += ${wg}u) {
    ${grad}
    acc += vec2f(g, g * xh);
  }
  let tot = wg_sum2(acc, lid);
${
      o.dx
        ? `  let k = ${a.gamma} * inv;
  let mg = tot.x * ${f32(1 / M)};
  let mgx = tot.y * ${f32(1 / M)};
  for (var j = lid; j < ${u32(M)}; j += ${wg}u) {
    ${grad}
    dx[i] = ${acc}k * (g - mg - xh * mgx);
  }`
        : ""
    }`;
  } else {
    body = `  var acc = vec2f(0.0);
  let k = ${a.gamma} * inv;
  for (var j = lid; j < ${u32(M)}; j += ${wg}u) {
    ${grad}
    acc += vec2f(g, g * xh);${o.dx ? `\n    dx[i] = ${acc}k * g;` : ""}
  }
  let tot = ${o.dgamma || o.dbeta ? "wg_sum2(acc, lid)" : "acc"};`;
  }
  const code = `${b.code}
${reduce(wg)}
${perChannelMain(s, wg)}
${stats}
  let scale = ${a.gamma} * inv;
  let shift = ${a.beta} - mean * scale;
${body}
  if (lid == 0u) {
    ${o.dgamma ? "dgamma[c] = tot.y;" : ""}
    ${o.dbeta ? "dbeta[c] = tot.x;" : ""}
  }
}`;
  const label = `bn_bwd ${batch ? "batch" : "running"}${o.relu ? " relu" : ""}${o.accumulate ? " acc" : ""}`;
  rec.dispatch({ label, code }, b.regions, grid1d(C, 1));
}

/**
 * {@linkcode batchNormBackward} with one invocation per channel: ordered passes, no barriers; on
 * CPU adapters x and dy are read through uniform windows where they can be cut into them.
 */
function batchNormBackwardLanes(rec: Recorder, o: BatchNormBackwardOptions): void {
  const s = o.shape, C = s.channels, M = s.outer * s.inner;
  const vec = canVec(s, [o.x, o.dy, o.dx]);
  const T = vec ? "vec4<f32>" : "f32";
  const b = new Bind();
  const windows = laneWindows(rec, s, { x: o.x, dy: o.dy }, [o.dx, o.dgamma, o.dbeta]);
  const tex = windows ? null : laneTextures(rec, s, vec, { x: o.x, dy: o.dy });
  if (!windows && !tex) b.read("x", o.x, T).read("dy", o.dy, T);
  const win = windows?.win ?? null;
  const texNames = tex?.names ?? [];
  const a = affineBindings(b, o);
  const batch = o.stats.kind === "batch";
  if (o.stats.kind === "batch") b.read("saved", o.stats.saved);
  else b.read("rmean", o.stats.mean).read("rvar", o.stats.var);
  if (o.dx) b.write("dx", o.dx, T);
  if (o.dgamma) b.write("dgamma", o.dgamma);
  if (o.dbeta) b.write("dbeta", o.dbeta);
  const stats = batch
    ? `  let mean = saved[c];
  let inv = saved[${u32(C)} + c];`
    : `  let mean = rmean[c];
  let inv = inverseSqrt(rvar[c] + ${f32(o.eps)});`;
  // The same scale/shift expression as the forward, so the ReLU mask matches it bit for bit.
  const grad = (ld: Load) =>
    `      let xi = ${ld("x")};
      let z = xi * ${T}(scale) + ${T}(shift);
      let g = ${o.relu ? `select(${T}(), ${ld("dy")}, z > ${T}())` : ld("dy")};
      let xh = (xi - ${T}(mean)) * ${T}(inv);`;
  const acc = o.accumulate ? (i: string) => `dx[${i}] + ` : () => "";
  const sums = `  var sg = ${T}();
  var sgx = ${T}();`;
  let body: string;
  if (batch) {
    body = `${sums}
${
      walkChannel(s, vec, win, (_i, ld) =>
        `${grad(ld)}
      sg += g;
      sgx += g * xh;`, texNames)
    }
  let tg = ${hsum("sg", vec)};
  let tgx = ${hsum("sgx", vec)};
${
      o.dx
        ? `  let k = ${a.gamma} * inv;
  let mg = tg * ${f32(1 / M)};
  let mgx = tgx * ${f32(1 / M)};
${
          walkChannel(s, vec, win, (i, ld) =>
            `${grad(ld)}
      dx[${i}] = ${acc(i)}${T}(k) * (g - ${T}(mg) - xh * ${T}(mgx));`, texNames)
        }`
        : ""
    }`;
  } else {
    body = `${sums}
  let k = ${a.gamma} * inv;
${
      walkChannel(s, vec, win, (i, ld) =>
        `${grad(ld)}
      sg += g;
      sgx += g * xh;${
          o.dx
            ? `
      dx[${i}] = ${acc(i)}${T}(k) * g;`
            : ""
        }`, texNames)
    }
  let tg = ${hsum("sg", vec)};
  let tgx = ${hsum("sgx", vec)};`;
  }
  const code = `${b.code}
${win ? windowDecls(win, b.list.length) : tex ? textureDecls(tex.names, b.list.length) : ""}
@compute @workgroup_size(${LANES_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let c = gid.x;
  if (c >= ${u32(C)}) { return; }
${stats}
  let scale = ${a.gamma} * inv;
  let shift = ${a.beta} - mean * scale;
${body}
  ${o.dgamma ? "dgamma[c] = tgx;" : ""}
  ${o.dbeta ? "dbeta[c] = tg;" : ""}
}`;
  const label = `bn_bwd ${batch ? "batch" : "running"} lanes${o.relu ? " relu" : ""}${
    o.accumulate ? " acc" : ""
  }${vec ? " v4" : ""}${win ? ` ux${win.cut.regions.length}` : tex ? " tex" : ""}`;
  rec.dispatch(
    { label, code },
    [...b.regions, ...(windows?.regions.flat() ?? []), ...(tex?.views ?? [])],
    grid1d(C, LANES_WG),
  );
}

/** Options of {@linkcode groupNormForward}. */
export interface GroupNormForwardOptions extends Affine {
  x: Region;
  y: Region;
  shape: ChannelShape;
  groups: number;
  eps: number;
  relu: boolean;
  /** 2*outer*groups floats: per (sample, group) means, then inverse std. */
  saved: Region;
}

/** Per (sample, group) statistics over channels-per-group x inner contiguous values. */
function groupMain(s: ChannelShape, G: number, wg: number): string {
  return `@compute @workgroup_size(${wg})
fn main(@builtin(local_invocation_id) lidv: vec3u, @builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u) {
  let ng = wid.x + wid.y * nwg.x;
  if (ng >= ${u32(s.outer * G)}) { return; }
  let lid = lidv.x;
  let base = ng * ${u32((s.channels / G) * s.inner)};
  let c0 = (ng % ${u32(G)}) * ${u32(s.channels / G)};`;
}

/**
 * Group norm forward: per sample, channels split into `groups` consecutive groups, each
 * normalised over its channels and positions (biased variance), then a per-channel affine and
 * optional ReLU. No running statistics: it behaves the same in training and inference.
 */
export function groupNormForward(rec: Recorder, o: GroupNormForwardOptions): void {
  const wg = widthFor(rec);
  const s = o.shape, G = o.groups, L = (s.channels / G) * s.inner;
  const b = new Bind().read("x", o.x);
  const a = affineBindings(b, o);
  b.write("y", o.y).write("saved", o.saved);
  const code = `${b.code}
${reduce(wg)}
${groupMain(s, G, wg)}
  var acc = 0.0;
  for (var j = lid; j < ${u32(L)}; j += ${wg}u) { acc += x[base + j]; }
  let mean = wg_sum(acc, lid) * ${f32(1 / L)};
  acc = 0.0;
  for (var j = lid; j < ${u32(L)}; j += ${wg}u) { let d = x[base + j] - mean; acc += d * d; }
  let inv = inverseSqrt(wg_sum(acc, lid) * ${f32(1 / L)} + ${f32(o.eps)});
  for (var j = lid; j < ${u32(L)}; j += ${wg}u) {
    let c = c0 + j / ${u32(s.inner)};
    let z = (x[base + j] - mean) * inv * ${a.gamma} + ${a.beta};
    y[base + j] = ${o.relu ? "max(z, 0.0)" : "z"};
  }
  if (lid == 0u) {
    saved[ng] = mean;
    saved[${u32(s.outer * G)} + ng] = inv;
  }
}`;
  rec.dispatch({ label: `gn_fwd${o.relu ? " relu" : ""}`, code }, b.regions, grid1d(s.outer * G, 1));
}

/** Options of {@linkcode groupNormBackward}. */
export interface GroupNormBackwardOptions extends Affine {
  x: Region;
  dy: Region;
  shape: ChannelShape;
  groups: number;
  relu: boolean;
  saved: Region;
  dx: Region | null;
  accumulate: boolean;
  dgamma?: Region | null;
  dbeta?: Region | null;
}

/**
 * Group norm backward. The input gradient needs per-(sample, group) sums and the parameter
 * gradients per-channel sums over samples, two different partitions, so it takes two
 * dispatches: dx = 1/std * (gh - mean(gh) - xh * mean(gh*xh)) with gh = g*gamma per group, and
 * dgamma = sum g*xh, dbeta = sum g per channel.
 */
export function groupNormBackward(rec: Recorder, o: GroupNormBackwardOptions): void {
  const wg = widthFor(rec);
  const s = o.shape, G = o.groups, CG = s.channels / G, L = CG * s.inner, NG = s.outer * G;
  // Recomputed exactly as the forward did, so the ReLU mask matches it.
  const grad = (gamma: string, beta: string) =>
    `let xh = (x[i] - mean) * inv;
    let z = xh * ${gamma} + ${beta};
    let g = ${o.relu ? "select(0.0, dy[i], z > 0.0)" : "dy[i]"};`;
  if (o.dx) {
    const b = new Bind().read("x", o.x).read("dy", o.dy);
    const a = affineBindings(b, o);
    b.read("saved", o.saved).write("dx", o.dx);
    const code = `${b.code}
${reduce(wg)}
${groupMain(s, G, wg)}
  let mean = saved[ng];
  let inv = saved[${u32(NG)} + ng];
  var acc = vec2f(0.0);
  for (var j = lid; j < ${u32(L)}; j += ${wg}u) {
    let i = base + j;
    let c = c0 + j / ${u32(s.inner)};
    ${grad(a.gamma, a.beta)}
    let gh = g * ${a.gamma};
    acc += vec2f(gh, gh * xh);
  }
  let tot = wg_sum2(acc, lid) * ${f32(1 / L)};
  for (var j = lid; j < ${u32(L)}; j += ${wg}u) {
    let i = base + j;
    let c = c0 + j / ${u32(s.inner)};
    ${grad(a.gamma, a.beta)}
    dx[i] = ${o.accumulate ? "dx[i] + " : ""}inv * (g * ${a.gamma} - tot.x - xh * tot.y);
  }
}`;
    rec.dispatch(
      { label: `gn_bwd_data${o.relu ? " relu" : ""}${o.accumulate ? " acc" : ""}`, code },
      b.regions,
      grid1d(NG, 1),
    );
  }
  if (o.dgamma || o.dbeta) {
    const b = new Bind().read("x", o.x).read("dy", o.dy);
    const a = affineBindings(b, o);
    b.read("saved", o.saved);
    if (o.dgamma) b.write("dgamma", o.dgamma);
    if (o.dbeta) b.write("dbeta", o.dbeta);
    const M = s.outer * s.inner;
    const code = `${b.code}
${reduce(wg)}
${perChannelMain(s, wg)}
  let grp = c / ${u32(CG)};
  var acc = vec2f(0.0);
  for (var j = lid; j < ${u32(M)}; j += ${wg}u) {
    let n = j / ${u32(s.inner)};
    let i = ${channelIndex(s)};
    let mean = saved[n * ${u32(G)} + grp];
    let inv = saved[${u32(NG)} + n * ${u32(G)} + grp];
    ${grad(a.gamma, a.beta)}
    acc += vec2f(g, g * xh);
  }
  let tot = wg_sum2(acc, lid);
  if (lid == 0u) {
    ${o.dgamma ? "dgamma[c] = tot.y;" : ""}
    ${o.dbeta ? "dbeta[c] = tot.x;" : ""}
  }
}`;
    rec.dispatch({ label: `gn_bwd_params${o.relu ? " relu" : ""}`, code }, b.regions, grid1d(s.channels, 1));
  }
}

/** Options of {@linkcode scaleForward}. */
export interface ScaleForwardOptions {
  x: Region;
  y: Region;
  shape: ChannelShape;
  gamma: Region;
  beta?: Region | null;
}

/** y = gamma[c] * x + beta[c] (Caffe's Scale layer with bias_term). */
export function scaleForward(rec: Recorder, o: ScaleForwardOptions): void {
  const s = o.shape;
  const b = new Bind().read("x", o.x).read("gamma", o.gamma);
  if (o.beta) b.read("beta", o.beta);
  b.write("y", o.y);
  const k = elementwise(`scale_fwd${o.beta ? " bias" : ""}`, {
    bindings: b.list,
    n: s.outer * s.channels * s.inner,
    body: `  let c = (i / ${u32(s.inner)}) % ${u32(s.channels)};
  y[i] = x[i] * gamma[c]${o.beta ? " + beta[c]" : ""};`,
  });
  rec.dispatch(k.src, b.regions, k.groups);
}

/** Options of {@linkcode scaleBackward}. */
export interface ScaleBackwardOptions {
  x: Region;
  dy: Region;
  shape: ChannelShape;
  gamma: Region;
  dx: Region | null;
  accumulate: boolean;
  dgamma?: Region | null;
  dbeta?: Region | null;
}

/**
 * Scale backward: dx = gamma*g element-wise; dgamma = sum g*x and dbeta = sum g per channel.
 * One dispatch: elementwise when only dx is needed, else one workgroup per channel doing both.
 */
export function scaleBackward(rec: Recorder, o: ScaleBackwardOptions): void {
  const wg = widthFor(rec);
  const s = o.shape;
  const acc = o.accumulate ? "dx[i] + " : "";
  if (!o.dgamma && !o.dbeta) {
    if (!o.dx) return;
    const b = new Bind().read("dy", o.dy).read("gamma", o.gamma).write("dx", o.dx);
    const k = elementwise(`scale_bwd data${o.accumulate ? " acc" : ""}`, {
      bindings: b.list,
      n: s.outer * s.channels * s.inner,
      body: `  let c = (i / ${u32(s.inner)}) % ${u32(s.channels)};
  dx[i] = ${acc}dy[i] * gamma[c];`,
    });
    rec.dispatch(k.src, b.regions, k.groups);
    return;
  }
  const b = new Bind().read("x", o.x).read("dy", o.dy).read("gamma", o.gamma);
  if (o.dx) b.write("dx", o.dx);
  if (o.dgamma) b.write("dgamma", o.dgamma);
  if (o.dbeta) b.write("dbeta", o.dbeta);
  const code = `${b.code}
${reduce(wg)}
${perChannelMain(s, wg)}
  var acc = vec2f(0.0);
  for (var j = lid; j < ${u32(s.outer * s.inner)}; j += ${wg}u) {
    let i = ${channelIndex(s)};
    let g = dy[i];
    acc += vec2f(g, g * x[i]);${o.dx ? `\n    dx[i] = ${acc}g * gamma[c];` : ""}
  }
  let tot = wg_sum2(acc, lid);
  if (lid == 0u) {
    ${o.dgamma ? "dgamma[c] = tot.y;" : ""}
    ${o.dbeta ? "dbeta[c] = tot.x;" : ""}
  }
}`;
  rec.dispatch({ label: `scale_bwd${o.accumulate ? " acc" : ""}`, code }, b.regions, grid1d(s.channels, 1));
}
