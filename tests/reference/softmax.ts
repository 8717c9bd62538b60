/**
 * CPU twins of kernels/softmax.ts, group by group in float64. The legacy softmax rounds each
 * exponential to float32, so its overflow (exp beyond ~3.4e38 becomes Infinity) shows here too.
 * @module
 */
import type { NormalizeMode } from "../../kernels/softmax.ts";

/** Group geometry: `groups` contiguous groups of `groupSize` values. */
export interface RefLayout {
  groups: number;
  groupSize: number;
}

/** y = softmax(scale * x) per group; legacy skips the max subtraction. */
export function softmaxRef(x: Float32Array, o: RefLayout & { scale: number; legacy: boolean }): Float32Array {
  const y = new Float32Array(x.length);
  for (let g = 0; g < o.groups; g++) {
    const lo = g * o.groupSize, hi = lo + o.groupSize;
    let m = 0;
    if (!o.legacy) {
      m = -Infinity;
      for (let i = lo; i < hi; i++) m = Math.max(m, o.scale * x[i]);
    }
    const e = new Float64Array(o.groupSize);
    let z = 0;
    for (let i = lo; i < hi; i++) {
      const v = Math.exp(o.scale * x[i] - m);
      e[i - lo] = o.legacy ? Math.fround(v) : v;
      z += e[i - lo];
    }
    for (let i = lo; i < hi; i++) y[i] = e[i - lo] / z;
  }
  return y;
}

/** dx = scale * y * (dy - sum(dy * y)) per group; legacy: scale * dy * y * (1 - y). */
export function softmaxBackwardRef(
  io: { y: Float32Array; dy: Float32Array },
  o: RefLayout & { scale: number; legacy: boolean },
): Float32Array {
  const { y, dy } = io;
  const dx = new Float32Array(y.length);
  for (let g = 0; g < o.groups; g++) {
    const lo = g * o.groupSize, hi = lo + o.groupSize;
    let t = 0;
    for (let i = lo; i < hi; i++) t += dy[i] * y[i];
    for (let i = lo; i < hi; i++) {
      dx[i] = o.legacy ? o.scale * dy[i] * y[i] * (1 - y[i]) : o.scale * y[i] * (dy[i] - t);
    }
  }
  return dx;
}

/** Options of the normaliser twins. */
export interface NormalizeRefOptions extends RefLayout {
  threshold: number;
  mode: NormalizeMode;
  /** Channels per sample (for legacy2d's reset across a sample). */
  channels: number;
}

function above(v: number, tau: number): boolean {
  return v - tau > 1e-6;
}

function sums(x: Float32Array, g: number, o: NormalizeRefOptions): { z: number; full: number } {
  let z = 0, full = 0;
  for (let i = g * o.groupSize; i < (g + 1) * o.groupSize; i++) {
    if (above(x[i], o.threshold)) z += x[i];
    full += x[i];
  }
  return { z, full };
}

/**
 * The seed's NormalizationResponseV0 loop, written the way the seed runs it: for each channel,
 * a near-zero sum fills the whole sample with the uniform value (the shadowed loop variable),
 * and later channels overwrite their own slot again.
 */
function legacy2d(x: Float32Array, o: NormalizeRefOptions): Float32Array {
  const y = new Float32Array(x.length);
  const n = o.groupSize, C = o.channels;
  for (let s = 0; s < o.groups / C; s++) {
    for (let c = 0; c < C; c++) {
      const g = s * C + c;
      const { z } = sums(x, g, o);
      if (Math.abs(z) < 1e-6) {
        y.fill(1 / n, s * C * n, (s + 1) * C * n);
        continue;
      }
      for (let i = g * n; i < (g + 1) * n; i++) y[i] = above(x[i], o.threshold) ? x[i] / z : 0;
    }
  }
  return y;
}

/** Forward twin of normalizeForward. */
export function normalizeRef(x: Float32Array, o: NormalizeRefOptions): Float32Array {
  if (o.mode === "legacy2d") return legacy2d(x, o);
  const y = new Float32Array(x.length);
  const n = o.groupSize;
  for (let g = 0; g < o.groups; g++) {
    const { z } = sums(x, g, o);
    for (let i = g * n; i < (g + 1) * n; i++) {
      if (Math.abs(z) < 1e-6) y[i] = 1 / n;
      else if (o.mode === "legacy3d" || above(x[i], o.threshold)) y[i] = x[i] / z;
      else y[i] = 0;
    }
  }
  return y;
}

/** Backward twin of normalizeBackward (`y` is the forward output). */
export function normalizeBackwardRef(
  io: { x: Float32Array; y: Float32Array; dy: Float32Array },
  o: NormalizeRefOptions,
): Float32Array {
  const { x, y, dy } = io;
  const dx = new Float32Array(x.length);
  const n = o.groupSize;
  for (let g = 0; g < o.groups; g++) {
    const { z, full } = sums(x, g, o);
    let t = 0;
    for (let i = g * n; i < (g + 1) * n; i++) t += dy[i] * y[i];
    for (let i = g * n; i < (g + 1) * n; i++) {
      if (o.mode === "clean") {
        dx[i] = Math.abs(z) >= 1e-6 && above(x[i], o.threshold) ? (dy[i] - t) / z : 0;
      } else {
        const s = o.mode === "legacy2d" ? full : z;
        dx[i] = Math.abs(s) > 1e-6 ? dy[i] * (s - x[i]) / (s * s) : 0;
      }
    }
  }
  return dx;
}
