/**
 * Deterministic two-pass sum reductions (no float atomics, so a run is bit-reproducible):
 * pass 1 has each workgroup sum a strided slice into a partial, pass 2 sums the partials in one
 * workgroup and writes `scale * total`. Losses and metrics are built on it.
 * @module
 */
import { type Binding, declare, f32, type Recorder, type Region, u32 } from "./kernel.ts";

const WG = 256;

/** Number of partial sums pass 1 produces for `n` terms. */
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

/** Records sum_{i<n} term(i) * scale into out[outIndex]. */
export function recordSum(rec: Recorder, o: SumOptions): void {
  const P = partialCount(o.n);
  const ins = o.inputs.map((b) => ({ name: b.name, access: "read" as const, type: b.type }));
  const pass1 = `${declare([...ins, { name: "partials", access: "read_write" }])}
var<workgroup> sh: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  var acc = 0.0;
  for (var i = wid.x * ${WG}u + lid.x; i < ${u32(o.n)}; i += ${u32(P * WG)}) {
${o.prelude ?? ""}
    acc += ${o.term};
  }
  sh[lid.x] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) { sh[lid.x] += sh[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { partials[wid.x] = sh[0]; }
}`;
  rec.dispatch({ label: `${o.label} (partial sums)`, code: pass1 }, [
    ...o.inputs.map((b) => b.region),
    o.partials,
  ], [P]);
  const idx = o.outIndex ?? 0;
  const pass2 = `${declare([{ name: "partials", access: "read" }, { name: "out", access: "read_write" }])}
var<workgroup> sh: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3u) {
  var acc = 0.0;
  for (var i = lid.x; i < ${u32(P)}; i += ${WG}u) { acc += partials[i]; }
  sh[lid.x] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) { sh[lid.x] += sh[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { out[${u32(idx)}] = ${o.accumulate ? `out[${u32(idx)}] + ` : ""}${
    f32(o.scale ?? 1)
  } * sh[0]; }
}`;
  rec.dispatch({ label: `${o.label} (total)`, code: pass2 }, [o.partials, o.out], [1]);
}
