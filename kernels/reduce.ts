/**
 * The reduction floor every kernel family builds on. Reductions are deterministic (no float
 * atomics, so a run is bit-reproducible): values fold over a workgroup in a fixed tree order,
 * and work larger than one workgroup is cut into partials that a second dispatch folds in a
 * fixed order.
 *
 * - {@linkcode workgroupFold}: the WGSL function that folds one value per invocation over the
 *   workgroup (sums, maxima, or any associative combine such as "largest value, lowest index").
 * - {@linkcode chunking} / {@linkcode chunkedKernel}: contiguous groups (a channel, a joint's
 *   cube) cut into chunks of {@linkcode CHUNK} values, one workgroup per (chunk, group), so a
 *   few large groups still occupy a large GPU.
 * - {@linkcode recordSum}: the two-pass sum of n terms into one scalar that losses and metrics
 *   are built on.
 * @module
 */
import {
  type Binding,
  declare,
  f32,
  flatIndex,
  grid1d,
  type Groups,
  type Recorder,
  type Region,
  u32,
  WG,
} from "./kernel.ts";

/**
 * How a reduction is spread over invocations. "workgroups": the values of a group (or chunk)
 * are shared by a workgroup's invocations and folded in a tree with barriers (GPUs).
 * "lanes": each invocation walks its own group or chunk in order, with no barriers and no
 * workgroup memory (CPU adapters, where a barrier switches coroutines and a workgroup-memory
 * access costs as much as a storage one). The summation order differs between the two, so
 * results agree to rounding, and each is bit-reproducible on its own.
 */
export type ReduceLayout = "workgroups" | "lanes";

let forced: ReduceLayout | null = null;

/**
 * Makes every reduction recorded without an explicit layout use `layout` (null: the adapter's
 * again). For tests and benchmarks, which check or time the layout the adapter would not pick.
 */
export function forceReduceLayout(layout: ReduceLayout | null): void {
  forced = layout;
}

/** The layout to use: `layout` when given, else "lanes" on CPU adapters and "workgroups" on GPUs. */
export function reduceLayout(rec: Recorder, layout?: ReduceLayout): ReduceLayout {
  return layout ?? forced ?? (rec.kernels.gpu.isFallback ? "lanes" : "workgroups");
}

/**
 * The largest divisor of `n` that is at most `cap`: how many units one "lanes" invocation walks
 * when a group of `n` must split into equal runs.
 */
export function largestDivisorUpTo(n: number, cap: number): number {
  for (let d = Math.min(n, cap); d > 1; d--) if (n % d === 0) return d;
  return 1;
}

/** Invocations per workgroup of "lanes" kernels: one SIMD chunk, so groups spread over many workgroups. */
export const LANES_WG = 8;

/** Options of {@linkcode workgroupFold}. */
export interface FoldOptions {
  /** Name of the generated WGSL function. */
  name: string;
  /** WGSL type of the folded value, e.g. "f32", "vec2f" or a struct declared by the caller. */
  type: string;
  /** Invocations per workgroup (a power of two); default {@linkcode WG}. */
  wg?: number;
  /** WGSL expression combining `a` (the lower invocation's value) and `b`, e.g. "a + b". */
  combine: string;
}

/**
 * WGSL declaring `fn NAME(v: T, lid: u32) -> T` (with its own workgroup array): invocation
 * `lid` contributes `v`, and every invocation gets the fold of all values, combined pairwise in
 * a fixed tree (lid with lid + s for s = wg/2 ... 1). Must be called in uniform control flow.
 */
export function workgroupFold(o: FoldOptions): string {
  const wg = o.wg ?? WG;
  if (!Number.isInteger(Math.log2(wg))) throw new RangeError(`workgroupFold: wg ${wg} is not a power of two`);
  const arr = `${o.name}_sh`;
  return `var<workgroup> ${arr}: array<${o.type}, ${wg}>;
fn ${o.name}_combine(a: ${o.type}, b: ${o.type}) -> ${o.type} { return ${o.combine}; }
fn ${o.name}(v: ${o.type}, lid: u32) -> ${o.type} {
  ${arr}[lid] = v;
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s >>= 1u) {
    if (lid < s) { ${arr}[lid] = ${o.name}_combine(${arr}[lid], ${arr}[lid + s]); }
    workgroupBarrier();
  }
  let r = ${arr}[0];
  workgroupBarrier();
  return r;
}`;
}

/** The common folds: `sum` (f32), `sum2` (vec2f), `sum4` (vec4f) and `maxf` (f32) over `wg` invocations. */
export function standardFolds(wg = WG): string {
  return [
    workgroupFold({ name: "sum", type: "f32", wg, combine: "a + b" }),
    workgroupFold({ name: "sum2", type: "vec2f", wg, combine: "a + b" }),
    workgroupFold({ name: "sum4", type: "vec4f", wg, combine: "a + b" }),
    workgroupFold({ name: "maxf", type: "f32", wg, combine: "max(a, b)" }),
  ].join("\n");
}

/** Values per chunk (256 threads x 16). */
export const CHUNK = 4096;

/** How groups of `groupSize` values are cut into chunks. */
export function chunking(groupSize: number): { chunk: number; chunks: number } {
  const chunk = Math.min(groupSize, CHUNK);
  return { chunk, chunks: Math.ceil(groupSize / chunk) };
}

/** Shape of a chunked reduction over contiguous groups. */
export interface GroupLayout {
  /** Number of groups (channels or cubes). */
  groups: number;
  /** Values per group. */
  groupSize: number;
}

/** The folds of {@linkcode standardFolds} as pass-throughs, for code shared with the "lanes" layout. */
function identityFolds(): string {
  return [["sum", "f32"], ["sum2", "vec2f"], ["sum4", "vec4f"], ["maxf", "f32"]]
    .map(([name, t]) => `fn ${name}(v: ${t}, lid: u32) -> ${t} { return v; }`).join("\n");
}

/**
 * A kernel over (chunk, group) pairs. With the "workgroups" layout one workgroup of
 * {@linkcode WG} invocations serves each pair; with "lanes" one invocation does. `body` sees `g`
 * (group), `c` (chunk), `lo`/`hi` (the chunk's value range), `lid` (u32; 0 with lanes), the
 * constants N (group size), Q (chunks per group) and STRIDE (the step of a loop starting at
 * `lo + lid`), and the folds of {@linkcode standardFolds} (pass-throughs with lanes). Either
 * way `lid == 0u` holds the folded value.
 */
export function chunkedKernel(
  label: string,
  o: GroupLayout & { bindings: readonly Binding[]; body: string; layout?: ReduceLayout; prelude?: string },
): { src: { label: string; code: string }; groups: Groups } {
  const { chunk, chunks } = chunking(o.groupSize);
  const head = `${declare(o.bindings)}
${o.prelude ?? ""}
const N = ${u32(o.groupSize)};
const Q = ${u32(chunks)};`;
  const range = `  let lo = g * N + c * ${u32(chunk)};
  let hi = min(lo + ${u32(chunk)}, g * N + N);`;
  if (o.layout === "lanes") {
    const pairs = o.groups * chunks;
    const code = `${head}
const STRIDE = 1u;
${identityFolds()}
@compute @workgroup_size(${LANES_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let pair = ${flatIndex(LANES_WG)};
  if (pair >= ${u32(pairs)}) { return; }
  let lid = 0u;
  let g = pair / Q;
  let c = pair % Q;
${range}
${o.body}
}`;
    return { src: { label: `${label} lanes`, code }, groups: grid1d(pairs, LANES_WG) };
  }
  const code = `${head}
const STRIDE = ${WG}u;
${standardFolds()}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lidv: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let lid = lidv.x;
  let g = wid.y;
  let c = wid.x;
${range}
${o.body}
}`;
  return { src: { label, code }, groups: [chunks, o.groups] };
}

/** Number of partial sums pass 1 of {@linkcode recordSum} produces for `n` terms. */
export function partialCount(n: number): number {
  return Math.max(1, Math.min(1024, Math.ceil(n / (WG * 8))));
}

/** Options for {@linkcode recordSum}. */
export interface SumOptions {
  label: string;
  /** Number of terms. */
  n: number;
  /** Input bindings (read-only), in order. */
  inputs: readonly (Binding & { region: Region })[];
  /** WGSL expression for term `i` (u32), e.g. "(a[i] - b[i]) * (a[i] - b[i])". */
  term: string;
  /** Optional WGSL statements before `term` is evaluated (may declare lets using `i`). */
  prelude?: string;
  /** Scratch of at least partialCount(n) floats. */
  partials: Region;
  /** Output region; element `outIndex` receives scale * sum. */
  out: Region;
  outIndex?: number;
  scale?: number;
  /** Add into the output instead of overwriting it. */
  accumulate?: boolean;
  /** Reduction layout (default: the adapter's, see {@linkcode ReduceLayout}). */
  layout?: ReduceLayout;
}

/**
 * Records sum_{i<n} term(i) * scale into out[outIndex]: pass 1 has each workgroup sum a
 * strided slice into a partial, pass 2 folds the partials in one workgroup.
 */
export function recordSum(rec: Recorder, o: SumOptions): void {
  const P = partialCount(o.n);
  const ins = o.inputs.map((b) => ({ name: b.name, access: "read" as const, type: b.type }));
  if (reduceLayout(rec, o.layout) === "lanes") return recordSumLanes(rec, o, P);
  const pass1 = `${declare([...ins, { name: "partials", access: "read_write" }])}
${workgroupFold({ name: "sum", type: "f32", combine: "a + b" })}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  var acc = 0.0;
  for (var i = wid.x * ${WG}u + lid.x; i < ${u32(o.n)}; i += ${u32(P * WG)}) {
${o.prelude ?? ""}
    acc += ${o.term};
  }
  let total = sum(acc, lid.x);
  if (lid.x == 0u) { partials[wid.x] = total; }
}`;
  rec.dispatch({ label: `${o.label} (partial sums)`, code: pass1 }, [
    ...o.inputs.map((b) => b.region),
    o.partials,
  ], [P]);
  const idx = u32(o.outIndex ?? 0);
  const pass2 = `${declare([{ name: "partials", access: "read" }, { name: "out", access: "read_write" }])}
${workgroupFold({ name: "sum", type: "f32", combine: "a + b" })}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3u) {
  var acc = 0.0;
  for (var i = lid.x; i < ${u32(P)}; i += ${WG}u) { acc += partials[i]; }
  let total = sum(acc, lid.x);
  if (lid.x == 0u) { out[${idx}] = ${o.accumulate ? `out[${idx}] + ` : ""}${f32(o.scale ?? 1)} * total; }
}`;
  rec.dispatch({ label: `${o.label} (total)`, code: pass2 }, [o.partials, o.out], [1]);
}

/** {@linkcode recordSum} with lanes: invocation p sums terms p, p + P, ...; one invocation folds the P partials. */
function recordSumLanes(rec: Recorder, o: SumOptions, P: number): void {
  const ins = o.inputs.map((b) => ({ name: b.name, access: "read" as const, type: b.type }));
  const idx = u32(o.outIndex ?? 0);
  const put = (v: string) =>
    `out[${idx}] = ${o.accumulate ? `out[${idx}] + ` : ""}${f32(o.scale ?? 1)} * ${v};`;
  if (P === 1) {
    // Few terms (metrics over B x J values): one invocation sums them all, one dispatch.
    const code = `${declare([...ins, { name: "out", access: "read_write" }])}
@compute @workgroup_size(1)
fn main() {
  var acc = 0.0;
  for (var i = 0u; i < ${u32(o.n)}; i++) {
${o.prelude ?? ""}
    acc += ${o.term};
  }
  ${put("acc")}
}`;
    rec.dispatch({ label: `${o.label} (sum, lanes)`, code }, [...o.inputs.map((b) => b.region), o.out], [1]);
    return;
  }
  const pass1 = `${declare([...ins, { name: "partials", access: "read_write" }])}
@compute @workgroup_size(${LANES_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let part_ = gid.x;
  if (part_ >= ${u32(P)}) { return; }
  var acc = 0.0;
  for (var i = part_; i < ${u32(o.n)}; i += ${u32(P)}) {
${o.prelude ?? ""}
    acc += ${o.term};
  }
  partials[part_] = acc;
}`;
  rec.dispatch({ label: `${o.label} (partial sums, lanes)`, code: pass1 }, [
    ...o.inputs.map((b) => b.region),
    o.partials,
  ], [Math.ceil(P / LANES_WG)]);
  recordFoldLanes(rec, o, P);
}

/**
 * Pass 2 of the lanes sum: one invocation folds the first `P` floats of `o.partials` in order
 * into `o.out[outIndex]` (times `scale`, added when accumulating).
 */
export function recordFoldLanes(
  rec: Recorder,
  o: Pick<SumOptions, "label" | "partials" | "out" | "outIndex" | "scale" | "accumulate">,
  P: number,
): void {
  const idx = u32(o.outIndex ?? 0);
  const code = `${declare([{ name: "partials", access: "read" }, { name: "out", access: "read_write" }])}
@compute @workgroup_size(1)
fn main() {
  var total = 0.0;
  for (var i = 0u; i < ${u32(P)}; i++) { total += partials[i]; }
  out[${idx}] = ${o.accumulate ? `out[${idx}] + ` : ""}${f32(o.scale ?? 1)} * total;
}`;
  rec.dispatch({ label: `${o.label} (total, lanes)`, code }, [o.partials, o.out], [1]);
}
