/**
 * CPU twins of the decoders: kernels/integral.ts (axis marginals, IntegralVector, soft-argmax,
 * NumericalCoordinateRegression) and kernels/argmax.ts (first-maximum decoders), in float64.
 * @module
 */
import type { CellGrid } from "../../kernels/integral.ts";

/** IntegralX/Y/Z of [N,C,H,W]: [N,W], [N,H] or [N,C]. */
export function integralAxisRef(
  x: Float32Array,
  o: { shape: number[]; axis: "x" | "y" | "z" },
): Float32Array {
  const [N, C, H, W] = o.shape, axis = o.axis;
  const L = axis === "x" ? W : axis === "y" ? H : C;
  const out = new Float64Array(N * L);
  for (let n = 0; n < N; n++) {
    for (let c = 0; c < C; c++) {
      for (let h = 0; h < H; h++) {
        for (let w = 0; w < W; w++) {
          out[n * L + (axis === "x" ? w : axis === "y" ? h : c)] += x[((n * C + c) * H + h) * W + w];
        }
      }
    }
  }
  return Float32Array.from(out);
}

/** Backward of the marginals: the top gradient broadcast back. */
export function integralAxisBackwardRef(
  dy: Float32Array,
  o: { shape: number[]; axis: "x" | "y" | "z" },
): Float32Array {
  const [N, C, H, W] = o.shape, axis = o.axis;
  const L = axis === "x" ? W : axis === "y" ? H : C;
  const dx = new Float32Array(N * C * H * W);
  for (let i = 0; i < dx.length; i++) {
    const w = i % W,
      h = Math.floor(i / W) % H,
      c = Math.floor(i / (H * W)) % C,
      n = Math.floor(i / (C * H * W));
    dx[i] = dy[n * L + (axis === "x" ? w : axis === "y" ? h : c)];
  }
  return dx;
}

/** IntegralVector positions lb + (ub - lb)(k + 0.5)/K. */
function vecPos(k: number, K: number, [lb, ub]: readonly [number, number]): number {
  return lb + (ub - lb) * (k + 0.5) / K;
}

/** y_n = sum_k p_nk pos_k. */
export function integralVectorRef(
  p: Float32Array,
  o: { rows: number; bounds: readonly [number, number] },
): Float32Array {
  const { rows, bounds } = o;
  const K = p.length / rows;
  const y = new Float32Array(rows);
  for (let n = 0; n < rows; n++) {
    let s = 0;
    for (let k = 0; k < K; k++) s += p[n * K + k] * vecPos(k, K, bounds);
    y[n] = s;
  }
  return y;
}

/** dp_nk = g_n pos_k. */
export function integralVectorBackwardRef(
  dy: Float32Array,
  o: { length: number; bounds: readonly [number, number] },
): Float32Array {
  const { length: K, bounds } = o;
  const dx = new Float32Array(dy.length * K);
  for (let i = 0; i < dx.length; i++) dx[i] = dy[Math.floor(i / K)] * vecPos(i % K, K, bounds);
  return dx;
}

/** Coordinates (x, y, z) of in-group flat index k. */
export function cellCoordRef(grid: CellGrid, k: number): [number, number, number] {
  const { depth: D, height: H, width: W, bounds: b, offset } = grid;
  const col = k % W, row = Math.floor(k / W) % H, d = Math.floor(k / (H * W));
  const at = ([lb, ub]: readonly [number, number], i: number, ext: number) =>
    lb + (ub - lb) * (i + offset) / ext;
  return [at(b.x, col, W), at(b.y, row, H), at(b.z, d, D)];
}

/** Per group, [sum p x, sum p y, sum p z] as [G,3]. */
export function softArgmaxRef(p: Float32Array, o: { groups: number; grid: CellGrid }): Float32Array {
  const { groups, grid } = o;
  const n = p.length / groups;
  const out = new Float32Array(groups * 3);
  for (let g = 0; g < groups; g++) {
    const s = [0, 0, 0];
    for (let k = 0; k < n; k++) {
      const c = cellCoordRef(grid, k);
      for (let a = 0; a < 3; a++) s[a] += p[g * n + k] * c[a];
    }
    out.set(s, g * 3);
  }
  return out;
}

/**
 * dp from coordinate gradients `dy` ([G,3], zeros where an axis has no gradient). With
 * `channelZeroBug` (J joints), only channel 0 of each sample is written, with the last joint's
 * gradient.
 */
export function softArgmaxBackwardRef(
  dy: Float32Array,
  o: { groups: number; grid: CellGrid; channelZeroBug?: { joints: number } },
): Float32Array {
  const { groups, grid, channelZeroBug } = o;
  const n = grid.depth * grid.height * grid.width;
  const dx = new Float32Array(groups * n);
  for (let g = 0; g < groups; g++) {
    let src = g;
    if (channelZeroBug) {
      const J = channelZeroBug.joints;
      if (g % J !== 0) continue;
      src = g + J - 1;
    }
    for (let k = 0; k < n; k++) {
      const c = cellCoordRef(grid, k);
      dx[g * n + k] = dy[src * 3] * c[0] + dy[src * 3 + 1] * c[1] + dy[src * 3 + 2] * c[2];
    }
  }
  return dx;
}

/**
 * Argmax decoder twin: per group, the first maximum (row-major) accepted only above 1e-6,
 * decoded to cell centres; the default is the grid centre. `legacy` runs the seed's scan
 * literally (running max from 0, update only when a value beats it by more than 1e-6, compared
 * in double as C++ promotes `v > max + 1e-6`).
 */
export function argmaxRef(
  x: Float32Array,
  o: { groups: number; grid: CellGrid; legacy?: boolean },
): Float32Array {
  const { groups, grid, legacy = false } = o;
  const n = x.length / groups;
  const out = new Float32Array(groups * 3);
  const centre = (b: readonly [number, number]) => b[0] + (b[1] - b[0]) * 0.5;
  for (let g = 0; g < groups; g++) {
    let best = -1, bestV = 0;
    for (let k = 0; k < n; k++) {
      const v = x[g * n + k];
      if (legacy ? v > bestV + 1e-6 : (best < 0 ? v > 1e-6 : v > bestV)) {
        bestV = v;
        best = k;
      }
    }
    const c = best >= 0
      ? cellCoordRef(grid, best)
      : [centre(grid.bounds.x), centre(grid.bounds.y), centre(grid.bounds.z)];
    out.set(c, g * 3);
  }
  return out;
}
