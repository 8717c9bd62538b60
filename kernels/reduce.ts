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
import { type Binding, declare, f32, type Groups, type Recorder, type Region, u32, WG } from "./kernel.ts";

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

/**
 * A kernel with one workgroup of {@linkcode WG} invocations per (chunk, group). `body` sees `g`
 * (group), `c` (chunk), `lo`/`hi` (the chunk's value range), `lid` (u32), the constants N
 * (group size) and Q (chunks per group), and the folds of {@linkcode standardFolds}.
 */
export function chunkedKernel(
  label: string,
  o: GroupLayout & { bindings: readonly Binding[]; body: string },
): { src: { label: string; code: string }; groups: Groups } {
  const { chunk, chunks } = chunking(o.groupSize);
  const code = `${declare(o.bindings)}
const N = ${u32(o.groupSize)};
const Q = ${u32(chunks)};
${standardFolds()}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lidv: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let lid = lidv.x;
  let g = wid.y;
  let c = wid.x;
  let lo = g * N + c * ${u32(chunk)};
  let hi = min(lo + ${u32(chunk)}, g * N + N);
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
}

/**
 * Records sum_{i<n} term(i) * scale into out[outIndex]: pass 1 has each workgroup sum a
 * strided slice into a partial, pass 2 folds the partials in one workgroup.
 */
export function recordSum(rec: Recorder, o: SumOptions): void {
  const P = partialCount(o.n);
  const ins = o.inputs.map((b) => ({ name: b.name, access: "read" as const, type: b.type }));
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
