/**
 * Data-movement kernels: weighted sums (Eltwise), concatenation and slicing along an axis,
 * copies (Reshape), and the seed's small vector ops. Multi-tensor kernels bind up to
 * {@linkcode MAX_BINDINGS} buffers, the WebGPU default every adapter guarantees, and split into
 * several dispatches past that.
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
  WG,
} from "./kernel.ts";
import { workgroupFold } from "./reduce.ts";

/** Storage buffers one kernel may bind (WebGPU's guaranteed maxStorageBuffersPerShaderStage). */
export const MAX_BINDINGS = 8;

/** Splits `items` into runs of at most `max`, starting a new run where `breakBefore` says so. */
function chunks<T>(items: readonly T[], max: number, breakBefore: (run: T[], item: T) => boolean): T[][] {
  const out: T[][] = [];
  for (const it of items) {
    const run = out[out.length - 1];
    if (!run || run.length >= max || breakBefore(run, it)) out.push([it]);
    else run.push(it);
  }
  return out;
}

/** Options of {@linkcode weightedSum}. */
export interface WeightedSumOptions {
  inputs: readonly Region[];
  /** One coefficient per input (default all 1). */
  coeffs?: readonly number[];
  /** A constant added to every element (default 0). */
  shift?: number;
  out: Region;
  n: number;
  /** Add into `out` instead of overwriting it. */
  accumulate?: boolean;
}

/**
 * Whether n elements of every region can be handled as vec4s: one load or store then moves four
 * values, which on a CPU adapter costs about what one value does (and suits GPUs as well).
 */
function vec4Able(n: number, regions: readonly Region[]): boolean {
  return n % 4 === 0 && regions.every((r) => r.offset % 16 === 0 && r.size % 16 === 0);
}

/** out (+)= sum_k coeffs[k] * inputs[k] + shift, over n elements. */
export function weightedSum(rec: Recorder, o: WeightedSumOptions): void {
  const items = o.inputs.map((region, k) => ({ region, coeff: o.coeffs?.[k] ?? 1 }));
  const runs = chunks(items, MAX_BINDINGS - 1, () => false);
  const v = vec4Able(o.n, [...o.inputs, o.out]);
  const type = v ? "vec4<f32>" : "f32";
  runs.forEach((run, r) => {
    const acc = r > 0 || o.accumulate;
    const terms = run.map((t, k) => (t.coeff === 1 ? `a${k}[i]` : `${f32(t.coeff)} * a${k}[i]`));
    if (r === 0 && o.shift) terms.push(`${type}(${f32(o.shift)})`);
    const k = elementwise(`weighted_sum ${run.length}${acc ? " acc" : ""}${v ? " v4" : ""}`, {
      bindings: [
        ...run.map((_, k): Binding => ({ name: `a${k}`, access: "read", type })),
        { name: "out", access: "read_write", type },
      ],
      n: v ? o.n / 4 : o.n,
      body: `  out[i] = ${acc ? "out[i] + " : ""}${terms.join(" + ") || `${type}()`};`,
    });
    rec.dispatch(k.src, [...run.map((t) => t.region), o.out], k.groups);
  });
}

/** One destination of {@linkcode scaledCopies}. */
export interface ScaledTarget {
  region: Region;
  coeff: number;
  accumulate: boolean;
}

/** targets[k] (+)= coeff_k * src over n elements: the backward of sums, copies and scalings. */
export function scaledCopies(
  rec: Recorder,
  o: { src: Region; targets: readonly ScaledTarget[]; n: number },
): void {
  const runs = chunks(
    o.targets,
    MAX_BINDINGS - 1,
    (run, t) => run.some((u) => u.region.buffer === t.region.buffer),
  );
  const v = vec4Able(o.n, [o.src, ...o.targets.map((t) => t.region)]);
  const type = v ? "vec4<f32>" : "f32";
  for (const run of runs) {
    const body = run.map((t, k) =>
      `  d${k}[i] = ${t.accumulate ? `d${k}[i] + ` : ""}${t.coeff === 1 ? "g" : `${f32(t.coeff)} * g`};`
    );
    const k = elementwise(`scaled_copies ${run.length}${v ? " v4" : ""}`, {
      bindings: [
        { name: "src", access: "read", type },
        ...run.map((_, k): Binding => ({ name: `d${k}`, access: "read_write", type })),
      ],
      n: v ? o.n / 4 : o.n,
      body: `  let g = src[i];\n${body.join("\n")}`,
    });
    rec.dispatch(k.src, [o.src, ...run.map((t) => t.region)], k.groups);
  }
}

/** One piece of a concatenation or split along an axis. */
export interface AxisPart {
  /** The piece's buffer; null: concat writes zeros (or nothing when accumulating), split skips it. */
  region: Region | null;
  /** Its extent along the axis. */
  len: number;
  /** Split only: add into the piece instead of overwriting it. */
  accumulate?: boolean;
}

/** A tensor viewed as [outer, axis, inner] around the concatenation axis. */
export interface AxisShape {
  outer: number;
  inner: number;
}

interface Placed extends AxisPart {
  start: number;
}

function place(parts: readonly AxisPart[]): { placed: Placed[]; total: number } {
  let start = 0;
  const placed = parts.map((p) => {
    const q = { ...p, start };
    start += p.len;
    return q;
  });
  return { placed, total: start };
}

/**
 * out = concat(parts) along the axis; with `accumulate`, out += it. Each dispatch covers a run
 * of consecutive parts and chooses the source per element, so up to seven inputs cost one pass.
 */
export function concatAxis(
  rec: Recorder,
  o: { parts: readonly AxisPart[]; out: Region; shape: AxisShape; accumulate?: boolean },
): void {
  const { placed, total } = place(o.parts);
  if (!o.accumulate && placed.every((p) => p.region) && copyable(rec, o.shape, placed, o.out)) {
    for (const p of placed) copySlices(rec, "concat_copy", o.shape, p, total, o.out, true);
    return;
  }
  // In units of vec4 when every row of the inner axis is whole vec4s and every region allows it.
  const v4 = vec4Able(o.shape.inner, [o.out, ...placed.flatMap((p) => (p.region ? [p.region] : []))]);
  const inner = v4 ? o.shape.inner / 4 : o.shape.inner;
  const type = v4 ? "vec4<f32>" : "f32", zero = v4 ? "vec4<f32>()" : "0.0";
  // Accumulating needs no pass over null parts; overwriting must zero them.
  const live = placed.filter((p) => p.len > 0 && (p.region || !o.accumulate));
  const runs = chunks(live, MAX_BINDINGS - 1, (run, p) => {
    const last = run[run.length - 1];
    return last.start + last.len !== p.start;
  });
  for (const run of runs) {
    const bound = run.filter((p) => p.region);
    const start = run[0].start, len = run.reduce((s, p) => s + p.len, 0);
    let b = 0, chain = "";
    for (const p of run) {
      const end = (p.start - start + p.len) * inner;
      const r = `r - ${u32((p.start - start) * inner)}`;
      const v = p.region ? `p${b++}[o * ${u32(p.len * inner)} + ${r}]` : zero;
      chain += `${chain ? " else " : "  "}if (r < ${u32(end)}) { v = ${v}; }`;
    }
    const k = elementwise(`concat ${run.length}${o.accumulate ? " acc" : ""}${v4 ? " v4" : ""}`, {
      bindings: [
        ...bound.map((_, k): Binding => ({ name: `p${k}`, access: "read", type })),
        { name: "out", access: "read_write", type },
      ],
      n: o.shape.outer * len * inner,
      body: `  let o = i / ${u32(len * inner)};
  let r = i % ${u32(len * inner)};
  var v = ${zero};
${chain}
  let j = o * ${u32(total * inner)} + ${u32(start * inner)} + r;
  out[j] = ${o.accumulate ? "out[j] + " : ""}v;`,
    });
    rec.dispatch(k.src, [...bound.map((p) => p.region!), o.out], k.groups);
  }
}

/** Most copy commands one concatenation or split records instead of its kernel. */
const MAX_COPIES = 64;

/**
 * Whether the slices of `parts` can move by buffer copies between them and the concatenated
 * tensor `whole`: on a CPU adapter (a copy there is a memory copy, a kernel's loads go lane by
 * lane), at most {@linkcode MAX_COPIES} copies, and no part in `whole`'s buffer.
 */
function copyable(rec: Recorder, shape: AxisShape, parts: readonly Placed[], whole: Region): boolean {
  return rec.kernels.gpu.isFallback && parts.length > 0 && shape.outer * parts.length <= MAX_COPIES &&
    parts.every((p) => p.region && p.region.buffer !== whole.buffer);
}

/**
 * Copies part `p`'s slice of every outer index between the part and the concatenated tensor
 * `whole`: into `whole` (concat) or out of it (split).
 */
function copySlices(
  rec: Recorder,
  label: string,
  shape: AxisShape,
  p: Placed,
  total: number,
  whole: Region,
  into: boolean,
): void {
  const floats = p.len * shape.inner, part = p.region!;
  for (let o = 0; o < shape.outer; o++) {
    const inPart = o * floats, inWhole = (o * total + p.start) * shape.inner;
    if (into) rec.copyBuffer(label, part, inPart, whole, inWhole, floats);
    else rec.copyBuffer(label, whole, inWhole, part, inPart, floats);
  }
}

/** parts (+)= the matching slices of x along the axis; null parts are skipped. */
export function splitAxis(
  rec: Recorder,
  o: { x: Region; parts: readonly AxisPart[]; shape: AxisShape },
): void {
  const { placed, total } = place(o.parts);
  // Parts that are overwritten take copies where they can; accumulated ones, the kernel.
  const copied = placed.filter((p) => p.len > 0 && p.region && !p.accumulate);
  const copies = copyable(rec, o.shape, copied, o.x);
  if (copies) {
    for (const p of copied) copySlices(rec, "split_copy", o.shape, p, total, o.x, false);
  }
  const live = placed.filter((p) => p.len > 0 && p.region && !(copies && copied.includes(p)));
  if (live.length === 0) return;
  const v4 = vec4Able(o.shape.inner, [o.x, ...live.map((p) => p.region!)]);
  const inner = v4 ? o.shape.inner / 4 : o.shape.inner;
  const type = v4 ? "vec4<f32>" : "f32";
  const runs = chunks(live, MAX_BINDINGS - 1, (run, p) => {
    const last = run[run.length - 1];
    return last.start + last.len !== p.start || run.some((q) => q.region!.buffer === p.region!.buffer);
  });
  for (const run of runs) {
    const start = run[0].start, len = run.reduce((s, p) => s + p.len, 0);
    const chain = run.map((p, k) => {
      const end = (p.start - start + p.len) * inner;
      const j = `o * ${u32(p.len * inner)} + r - ${u32((p.start - start) * inner)}`;
      return `${k ? " else " : "  "}if (r < ${u32(end)}) { let j = ${j}; p${k}[j] = ${
        p.accumulate ? `p${k}[j] + ` : ""
      }v; }`;
    }).join("");
    const k = elementwise(`split ${run.length}${v4 ? " v4" : ""}`, {
      bindings: [
        { name: "x", access: "read", type },
        ...run.map((_, k): Binding => ({ name: `p${k}`, access: "read_write", type })),
      ],
      n: o.shape.outer * len * inner,
      body: `  let o = i / ${u32(len * inner)};
  let r = i % ${u32(len * inner)};
  let v = x[o * ${u32(total * inner)} + ${u32(start * inner)} + r];
${chain}`,
    });
    rec.dispatch(k.src, [o.x, ...run.map((p) => p.region!)], k.groups);
  }
}

/** y[n, k] = x[n, k] + s[n] for an [rows, cols] x and a per-row s. */
export function addRowScalarForward(
  rec: Recorder,
  o: { x: Region; s: Region; y: Region; rows: number; cols: number },
): void {
  const k = elementwise("add_row_scalar_fwd", {
    bindings: [{ name: "x", access: "read" }, { name: "s", access: "read" }, {
      name: "y",
      access: "read_write",
    }],
    n: o.rows * o.cols,
    body: `  y[i] = x[i] + s[i / ${u32(o.cols)}];`,
  });
  rec.dispatch(k.src, [o.x, o.s, o.y], k.groups);
}

/** Options of {@linkcode addRowScalarBackward}. */
export interface AddRowScalarBackwardOptions {
  dy: Region;
  rows: number;
  cols: number;
  dx: Region | null;
  accumulateX: boolean;
  ds: Region | null;
  accumulateS: boolean;
  /**
   * The seed's backward, which adds dy[n, k] into ds[n + k] after zeroing ds[n] row by row: each
   * ds[n] ends up as dy[n, 0] (later rows' zeroing wipes the rest; indices past the end were
   * out-of-bounds writes and are dropped here).
   */
  legacy?: boolean;
}

/**
 * dx (+)= dy and ds[n] (+)= sum_k dy[n, k]: one workgroup per row sums the row with a fixed
 * tree (deterministic) and copies it into dx on the way.
 */
export function addRowScalarBackward(rec: Recorder, o: AddRowScalarBackwardOptions): void {
  const { rows, cols } = o;
  if (o.legacy || !o.ds) {
    if (o.dx) {
      scaledCopies(rec, {
        src: o.dy,
        targets: [{ region: o.dx, coeff: 1, accumulate: o.accumulateX }],
        n: rows * cols,
      });
    }
    if (o.ds) {
      const k = elementwise(`add_row_scalar_bwd legacy${o.accumulateS ? " acc" : ""}`, {
        bindings: [{ name: "dy", access: "read" }, { name: "ds", access: "read_write" }],
        n: rows,
        body: `  ds[i] = ${o.accumulateS ? "ds[i] + " : ""}dy[i * ${u32(cols)}];`,
      });
      rec.dispatch(k.src, [o.dy, o.ds], k.groups);
    }
    return;
  }
  const bindings: Binding[] = [{ name: "dy", access: "read" }, { name: "ds", access: "read_write" }];
  if (o.dx) bindings.push({ name: "dx", access: "read_write" });
  const code = `${declare(bindings)}
${workgroupFold({ name: "sum", type: "f32", combine: "a + b" })}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lidv: vec3u, @builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u) {
  let n = wid.x + wid.y * nwg.x;
  if (n >= ${u32(rows)}) { return; }
  let lid = lidv.x;
  var acc = 0.0;
  for (var k = lid; k < ${u32(cols)}; k += ${WG}u) {
    let i = n * ${u32(cols)} + k;
    let g = dy[i];
    acc += g;${o.dx ? `\n    dx[i] = ${o.accumulateX ? "dx[i] + " : ""}g;` : ""}
  }
  let total = sum(acc, lid);
  if (lid == 0u) { ds[n] = ${o.accumulateS ? "ds[n] + " : ""}total; }
}`;
  rec.dispatch(
    { label: `add_row_scalar_bwd${o.accumulateX ? " acc" : ""}`, code },
    o.dx ? [o.dy, o.ds, o.dx] : [o.dy, o.ds],
    grid1d(rows, 1),
  );
}
