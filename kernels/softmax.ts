/**
 * Per-group normalisers of heatmaps: softmax (SoftmaxHM / Softmax3DHM, SEED_SPEC §4.9) and the
 * thresholded sum-to-one normalisers (NormalizationResponseV0, Norm3DHM). A group is one
 * channel (2D) or one joint's D*S*S cube (3D), contiguous in memory.
 *
 * A 3D cube holds up to 262,144 values, so one workgroup per group would leave a large GPU idle
 * (48 groups at batch 3). Instead each group is cut into chunks of {@linkcode CHUNK} values: a
 * stats pass writes per-chunk partials, a tiny fold pass combines each group's partials in a
 * fixed order (deterministic, no atomics), and the element pass reads the group's totals.
 * Folding once per group matters: letting every thread of the element pass fold the 64
 * partials itself cost more than the pass's own work.
 * @module
 */
import { elementwise, f32, type Recorder, type Region, u32 } from "./kernel.ts";
import { copiesForReading, textureDecl } from "./windows.ts";
import { chunkedKernel, chunking, type GroupLayout, type ReduceLayout, reduceLayout } from "./reduce.ts";

/**
 * Scratch of `width` floats per record: one record per (group, chunk) of partials, then one per
 * group of totals starting at float `width * groups * chunks`.
 */
function statsFloats(l: GroupLayout, width: number): number {
  return width * l.groups * (chunking(l.groupSize).chunks + 1);
}

/** WGSL index of slot `slot` of the totals record of the group in WGSL variable `g`. */
function total(l: GroupLayout, width: number, slot: number, g = "g"): string {
  return `${u32(width * l.groups * chunking(l.groupSize).chunks)} + ${u32(width)} * ${g} + ${u32(slot)}`;
}

/**
 * Records the per-group fold of the partials in `slots`: a plain sum, or (softmax) the
 * max-shifted combination M = max m_q, Z = sum z_q exp(m_q - M) of slots 0 (m) and 1 (z).
 */
function foldPartials(
  rec: Recorder,
  label: string,
  o: GroupLayout & { stats: Region; width: number; slots: readonly number[]; softmax?: boolean },
): void {
  const Q = chunking(o.groupSize).chunks, K = o.width;
  const part = (slot: number) => `stats[${u32(K)} * (g * ${u32(Q)} + q) + ${u32(slot)}]`;
  const body = o.softmax
    ? `  var m = -3.0e38;
  for (var q = 0u; q < ${u32(Q)}; q++) { m = max(m, ${part(0)}); }
  var z = 0.0;
  for (var q = 0u; q < ${u32(Q)}; q++) { z += ${part(1)} * exp(${part(0)} - m); }
  stats[${total(o, K, 0)}] = m;
  stats[${total(o, K, 1)}] = z;`
    : o.slots.map((slot) =>
      `  var s${slot} = 0.0;
  for (var q = 0u; q < ${u32(Q)}; q++) { s${slot} += ${part(slot)}; }
  stats[${total(o, K, slot)}] = s${slot};`
    ).join("\n");
  const k = elementwise(`${label} fold`, {
    bindings: [{ name: "stats", access: "read_write" }],
    n: o.groups,
    body: `  let g = i;
${body}`,
  });
  rec.dispatch(k.src, [o.stats], k.groups);
}

/** Floats of scratch the softmax needs (kept from forward to backward by the layer). */
export function softmaxStatsFloats(l: GroupLayout): number {
  return statsFloats(l, 2);
}

/** Options of the softmax launchers. */
export interface SoftmaxOptions extends GroupLayout {
  /** Pre-scale applied to the input before the softmax (the seed's x50 for 3D). */
  scale: number;
  /** The seed's softmax: no max subtraction (overflows) and a diagonal-only backward. */
  legacy: boolean;
  /** Scratch of {@linkcode softmaxStatsFloats} floats. */
  stats: Region;
  /** Reduction layout (default: the adapter's, see {@linkcode ReduceLayout}). */
  layout?: ReduceLayout;
}

/** y = softmax(scale * x) over each group, max-subtracted unless legacy. */
export function softmaxForward(rec: Recorder, o: SoftmaxOptions & { x: Region; y: Region }): void {
  o = { ...o, layout: reduceLayout(rec, o.layout) };
  const sc = f32(o.scale);
  const tag = `${o.legacy ? " legacy" : ""} n${o.groupSize}`;
  if (o.layout === "lanes" && rec.kernels.gpu.isFallback && softmaxForwardFromTexture(rec, o, sc, tag)) {
    return;
  }
  // Chunk max, then the chunk's sum of exp(v - max); legacy fixes the max at 0 as the seed did.
  const stats = chunkedKernel(`softmax_stats${tag}`, {
    ...o,
    bindings: [{ name: "x", access: "read" }, { name: "stats", access: "read_write" }],
    body: `${
      o.legacy ? "  let cm = 0.0;" : `  var m = -3.0e38;
  for (var i = lo + lid; i < hi; i += STRIDE) { m = max(m, ${sc} * x[i]); }
  let cm = maxf(m, lid);`
    }
  var acc = 0.0;
  for (var i = lo + lid; i < hi; i += STRIDE) { acc += exp(${sc} * x[i] - cm); }
  let cs = sum(acc, lid);
  if (lid == 0u) {
    stats[2u * (g * Q + c)] = cm;
    stats[2u * (g * Q + c) + 1u] = cs;
  }`,
  });
  rec.dispatch(stats.src, [o.x, o.stats], stats.groups);
  foldPartials(rec, `softmax${tag}`, { ...o, width: 2, slots: [0, 1], softmax: true });
  const norm = chunkedKernel(`softmax_norm${tag}`, {
    ...o,
    bindings: [
      { name: "x", access: "read" },
      { name: "stats", access: "read" },
      { name: "y", access: "read_write" },
    ],
    body: `  let mx = stats[${total(o, 2, 0)}];
  let z = stats[${total(o, 2, 1)}];
  for (var i = lo + lid; i < hi; i += STRIDE) { y[i] = exp(${sc} * x[i] - mx) / z; }`,
  });
  rec.dispatch(norm.src, [o.x, o.stats, o.y], norm.groups);
}

/**
 * Texture copies of `reads` (slots 0, 1, ...) for the vec4 lanes passes, which write `out` as
 * vec4s; null (nothing usable recorded) unless every chunk is whole vec4s, `out` starts at a
 * whole vec4 and every region can be copied.
 */
function textureCopies(
  rec: Recorder,
  o: GroupLayout,
  reads: readonly Region[],
  out: Region,
): GPUTextureView[] | null {
  const { chunk } = chunking(o.groupSize);
  if (o.groupSize % 4 !== 0 || chunk % 4 !== 0 || out.offset % 16 !== 0) return null;
  return copiesForReading(rec, reads, o.groups * o.groupSize);
}

/**
 * The lanes forward on a CPU adapter with x copied into a texture and read four values a texel
 * (a storage load there takes a lane-by-lane path, see windows.ts), y written as vec4s. Each lane
 * takes its chunk's values in the same order as the storage kernels, so the results are theirs
 * bit for bit. False (nothing recorded) unless every chunk is whole vec4s and the regions align.
 */
function softmaxForwardFromTexture(
  rec: Recorder,
  o: SoftmaxOptions & { x: Region; y: Region },
  sc: string,
  tag: string,
): boolean {
  const views = textureCopies(rec, o, [o.x], o.y);
  if (!views) return false;
  const view = views[0];
  const texels = "for (var t = lo / 4u; t < hi / 4u; t++)";
  const stats = chunkedKernel(`softmax_stats${tag} tex`, {
    ...o,
    bindings: [{ name: "stats", access: "read_write" }],
    prelude: textureDecl(1, "tx", "x_"),
    body: `${
      o.legacy ? "  let cm = 0.0;" : `  var m = -3.0e38;
  ${texels} { let v = ${sc} * x_4(t); m = max(m, v.x); m = max(m, v.y); m = max(m, v.z); m = max(m, v.w); }
  let cm = m;`
    }
  var acc = 0.0;
  ${texels} {
    let v = ${sc} * x_4(t);
    acc += exp(v.x - cm);
    acc += exp(v.y - cm);
    acc += exp(v.z - cm);
    acc += exp(v.w - cm);
  }
  stats[2u * (g * Q + c)] = cm;
  stats[2u * (g * Q + c) + 1u] = acc;`,
  });
  rec.dispatch(stats.src, [o.stats, view], stats.groups);
  foldPartials(rec, `softmax${tag}`, { ...o, width: 2, slots: [0, 1], softmax: true });
  const norm = chunkedKernel(`softmax_norm${tag} tex`, {
    ...o,
    bindings: [{ name: "stats", access: "read" }, { name: "y", access: "read_write", type: "vec4<f32>" }],
    prelude: textureDecl(2, "tx", "x_"),
    body: `  let mx = stats[${total(o, 2, 0)}];
  let z = stats[${total(o, 2, 1)}];
  ${texels} { y[t] = exp(${sc} * x_4(t) - mx) / z; }`,
  });
  rec.dispatch(norm.src, [o.stats, o.y, view], norm.groups);
  return true;
}

/**
 * dx (+)= scale * y * (dy - sum(dy * y)) per group (the full Jacobian-vector product); legacy:
 * scale * dy * y * (1 - y), the seed's diagonal-only backward.
 */
export function softmaxBackward(
  rec: Recorder,
  o: SoftmaxOptions & { y: Region; dy: Region; dx: Region; accumulate: boolean },
): void {
  o = { ...o, layout: reduceLayout(rec, o.layout) };
  const sc = f32(o.scale);
  const acc = o.accumulate ? "dx[i] + " : "";
  const tag = `${o.legacy ? " legacy" : ""}${o.accumulate ? " acc" : ""} n${o.groupSize}`;
  if (
    !o.legacy && o.layout === "lanes" && rec.kernels.gpu.isFallback &&
    softmaxBackwardFromTextures(rec, o, sc, tag)
  ) return;
  if (o.legacy) {
    const k = chunkedKernel(`softmax_bwd${tag}`, {
      ...o,
      bindings: [
        { name: "y", access: "read" },
        { name: "dy", access: "read" },
        { name: "dx", access: "read_write" },
      ],
      body:
        `  for (var i = lo + lid; i < hi; i += STRIDE) { dx[i] = ${acc}${sc} * dy[i] * y[i] * (1.0 - y[i]); }`,
    });
    rec.dispatch(k.src, [o.y, o.dy, o.dx], k.groups);
    return;
  }
  const dot = chunkedKernel(`softmax_bwd_dot${tag}`, {
    ...o,
    bindings: [
      { name: "y", access: "read" },
      { name: "dy", access: "read" },
      { name: "stats", access: "read_write" },
    ],
    body: `  var a = 0.0;
  for (var i = lo + lid; i < hi; i += STRIDE) { a += dy[i] * y[i]; }
  let cs = sum(a, lid);
  if (lid == 0u) { stats[2u * (g * Q + c)] = cs; }`,
  });
  rec.dispatch(dot.src, [o.y, o.dy, o.stats], dot.groups);
  foldPartials(rec, `softmax_bwd${tag}`, { ...o, width: 2, slots: [0] });
  const k = chunkedKernel(`softmax_bwd${tag}`, {
    ...o,
    bindings: [
      { name: "y", access: "read" },
      { name: "dy", access: "read" },
      { name: "stats", access: "read" },
      { name: "dx", access: "read_write" },
    ],
    body: `  let t = stats[${total(o, 2, 0)}];
  for (var i = lo + lid; i < hi; i += STRIDE) { dx[i] = ${acc}${sc} * y[i] * (dy[i] - t); }`,
  });
  rec.dispatch(k.src, [o.y, o.dy, o.stats, o.dx], k.groups);
}

/**
 * The clean lanes backward on a CPU adapter: y, dy (and dx when accumulating) copied into
 * textures and read four values a texel in the storage kernels' order, dx stored as vec4s (see
 * {@linkcode softmaxForwardFromTexture}). False (nothing recorded) where it cannot run.
 */
function softmaxBackwardFromTextures(
  rec: Recorder,
  o: SoftmaxOptions & { y: Region; dy: Region; dx: Region; accumulate: boolean },
  sc: string,
  tag: string,
): boolean {
  const views = textureCopies(rec, o, [o.y, o.dy, ...(o.accumulate ? [o.dx] : [])], o.dx);
  if (!views) return false;
  const texels = "for (var t = lo / 4u; t < hi / 4u; t++)";
  const dot = chunkedKernel(`softmax_bwd_dot${tag} tex`, {
    ...o,
    bindings: [{ name: "stats", access: "read_write" }],
    prelude: [textureDecl(1, "ty", "y_"), textureDecl(2, "tdy", "dy_")].join("\n"),
    body: `  var a = 0.0;
  ${texels} {
    let p = dy_4(t) * y_4(t);
    a += p.x;
    a += p.y;
    a += p.z;
    a += p.w;
  }
  stats[2u * (g * Q + c)] = a;`,
  });
  rec.dispatch(dot.src, [o.stats, views[0], views[1]], dot.groups);
  foldPartials(rec, `softmax_bwd${tag}`, { ...o, width: 2, slots: [0] });
  const k = chunkedKernel(`softmax_bwd${tag} tex`, {
    ...o,
    bindings: [{ name: "stats", access: "read" }, { name: "dx", access: "read_write", type: "vec4<f32>" }],
    prelude: [
      textureDecl(2, "ty", "y_"),
      textureDecl(3, "tdy", "dy_"),
      ...(o.accumulate ? [textureDecl(4, "tdx", "dx_")] : []),
    ].join("\n"),
    body: `  let t0 = stats[${total(o, 2, 0)}];
  ${texels} { dx[t] = ${o.accumulate ? "dx_4(t) + " : ""}${sc} * y_4(t) * (dy_4(t) - t0); }`,
  });
  rec.dispatch(k.src, [o.stats, o.dx, ...views], k.groups);
  return true;
}

/** Floats of scratch the sum-to-one normaliser needs (kept from forward to backward). */
export function normalizeStatsFloats(l: GroupLayout): number {
  return statsFloats(l, 3);
}

/**
 * Which normaliser: "clean" (forward v/Z on the above-threshold set, 0 elsewhere, full backward
 * on that set), "legacy2d" (NormalizationResponseV0 with its channel-reset loop bug and its
 * unthresholded diagonal backward), "legacy3d" (Norm3DHM: every voxel divided by the
 * thresholded sum, diagonal backward).
 */
export type NormalizeMode = "clean" | "legacy2d" | "legacy3d";

/** Options of the normaliser launchers. */
export interface NormalizeOptions extends GroupLayout {
  /** Values count only when v - threshold > 1e-6 (the seed's test). */
  threshold: number;
  mode: NormalizeMode;
  /** Channels per sample (legacy2d's reset runs across one sample's channels). */
  channels: number;
  /** Scratch of {@linkcode normalizeStatsFloats} floats. */
  stats: Region;
  /** Reduction layout (default: the adapter's, see {@linkcode ReduceLayout}). */
  layout?: ReduceLayout;
}

/** Writes y = v / Z per group (Z = sum of above-threshold values; uniform when Z ~ 0). */
export function normalizeForward(rec: Recorder, o: NormalizeOptions & { x: Region; y: Region }): void {
  o = { ...o, layout: reduceLayout(rec, o.layout) };
  const tau = f32(o.threshold);
  const tag = `${o.mode} n${o.groupSize}`;
  const stats = chunkedKernel(`normalize_stats ${tag}`, {
    ...o,
    bindings: [{ name: "x", access: "read" }, { name: "stats", access: "read_write" }],
    body: `  var a = vec4f(0.0);
  for (var i = lo + lid; i < hi; i += STRIDE) {
    let v = x[i];
    a += vec4f(select(0.0, v, v - ${tau} > 1e-6), v, 0.0, 0.0);
  }
  let cs = sum4(a, lid);
  if (lid == 0u) {
    stats[3u * (g * Q + c)] = cs.x;
    stats[3u * (g * Q + c) + 1u] = cs.y;
  }`,
  });
  rec.dispatch(stats.src, [o.x, o.stats], stats.groups);
  foldPartials(rec, `normalize ${tag}`, { ...o, width: 3, slots: [0, 1] });
  let uniform: string;
  if (o.mode === "legacy2d") {
    // The seed writes the uniform map into every channel of the sample and then recomputes the
    // later channels, so channel c ends uniform when any channel c' >= c of its sample has Z ~ 0.
    uniform = `  let first = (g / ${u32(o.channels)}) * ${u32(o.channels)};
  var unif = false;
  for (var cc = g; cc < first + ${u32(o.channels)}; cc++) {
    if (abs(stats[${total(o, 3, 0, "cc")}]) < 1e-6) { unif = true; }
  }`;
  } else {
    uniform = "  let unif = abs(z) < 1e-6;";
  }
  const keep = o.mode === "legacy3d" ? "v / z" : `select(0.0, v / z, v - ${tau} > 1e-6)`;
  const k = chunkedKernel(`normalize ${tag}`, {
    ...o,
    bindings: [
      { name: "x", access: "read" },
      { name: "stats", access: "read" },
      { name: "y", access: "read_write" },
    ],
    body: `  let z = stats[${total(o, 3, 0)}];
${uniform}
  for (var i = lo + lid; i < hi; i += STRIDE) {
    let v = x[i];
    y[i] = select(${keep}, ${f32(1 / o.groupSize)}, unif);
  }`,
  });
  rec.dispatch(k.src, [o.x, o.stats, o.y], k.groups);
}

/**
 * Backward of {@linkcode normalizeForward}. Clean: dx_i = (dy_i - sum_k dy_k y_k) / Z on the
 * above-threshold set, 0 elsewhere and for uniform groups. legacy2d: dy (Z' - v) / Z'^2 with Z'
 * the unthresholded sum; legacy3d: dy (Z - v) / Z^2 (both diagonal only, 0 when the sum ~ 0).
 */
export function normalizeBackward(
  rec: Recorder,
  o: NormalizeOptions & { x: Region; y: Region; dy: Region; dx: Region; accumulate: boolean },
): void {
  o = { ...o, layout: reduceLayout(rec, o.layout) };
  const tau = f32(o.threshold);
  const acc = o.accumulate ? "dx[i] + " : "";
  const tag = `${o.mode}${o.accumulate ? " acc" : ""} n${o.groupSize}`;
  if (o.mode !== "clean") {
    const slot = o.mode === "legacy2d" ? 1 : 0;
    const k = chunkedKernel(`normalize_bwd ${tag}`, {
      ...o,
      bindings: [
        { name: "x", access: "read" },
        { name: "dy", access: "read" },
        { name: "stats", access: "read" },
        { name: "dx", access: "read_write" },
      ],
      body: `  let z = stats[${total(o, 3, slot)}];
  for (var i = lo + lid; i < hi; i += STRIDE) {
    dx[i] = ${acc}select(0.0, dy[i] * (z - x[i]) / (z * z), abs(z) > 1e-6);
  }`,
    });
    rec.dispatch(k.src, [o.x, o.dy, o.stats, o.dx], k.groups);
    return;
  }
  const dot = chunkedKernel(`normalize_bwd_dot ${tag}`, {
    ...o,
    bindings: [
      { name: "y", access: "read" },
      { name: "dy", access: "read" },
      { name: "stats", access: "read_write" },
    ],
    body: `  var a = 0.0;
  for (var i = lo + lid; i < hi; i += STRIDE) { a += dy[i] * y[i]; }
  let cs = sum(a, lid);
  if (lid == 0u) { stats[3u * (g * Q + c) + 2u] = cs; }`,
  });
  rec.dispatch(dot.src, [o.y, o.dy, o.stats], dot.groups);
  foldPartials(rec, `normalize_bwd ${tag}`, { ...o, width: 3, slots: [2] });
  const k = chunkedKernel(`normalize_bwd ${tag}`, {
    ...o,
    bindings: [
      { name: "x", access: "read" },
      { name: "dy", access: "read" },
      { name: "stats", access: "read" },
      { name: "dx", access: "read_write" },
    ],
    body: `  let z = stats[${total(o, 3, 0)}];
  let t = stats[${total(o, 3, 2)}];
  let live = abs(z) >= 1e-6;
  for (var i = lo + lid; i < hi; i += STRIDE) {
    dx[i] = ${acc}select(0.0, (dy[i] - t) / z, live && x[i] - ${tau} > 1e-6);
  }`,
  });
  rec.dispatch(k.src, [o.x, o.dy, o.stats, o.dx], k.groups);
}
