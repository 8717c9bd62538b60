/** CPU twins of kernels/geometry.ts, in float64. */

/** Depth bounds (lb, ub). */
export interface BoundsRef {
  lb: number;
  ub: number;
}

/** Per-sample norm -> raw affine (a, b, c, d, e, f) from a [6] affine or, legacy, a [4] bbx. */
export function cropAffineRef(crop: ArrayLike<number>, n: number, legacy: boolean): number[] {
  if (!legacy) return Array.from({ length: 6 }, (_, k) => crop[n * 6 + k]);
  const [x1, y1, x2, y2] = [0, 1, 2, 3].map((k) => crop[n * 4 + k]);
  return [x2 - x1, 0, x1, 0, y2 - y1, y1];
}

/** Encode: (z - z_root - lb) / (ub - lb). */
export function depthEncodeRef(
  points: ArrayLike<number>,
  rootFrom: ArrayLike<number>,
  o: { batch: number; joints: number; root: number; bounds: BoundsRef },
): Float64Array {
  const J = o.joints, out = new Float64Array(o.batch * J);
  for (let n = 0; n < o.batch; n++) {
    const zr = rootFrom[(n * J + o.root) * 3 + 2];
    for (let j = 0; j < J; j++) {
      out[n * J + j] = (points[(n * J + j) * 3 + 2] - zr - o.bounds.lb) / (o.bounds.ub - o.bounds.lb);
    }
  }
  return out;
}

/** Decode: n (ub - lb) + lb + z_root, and its gradient (ub - lb) dz. */
export function depthDecodeRef(
  depth: ArrayLike<number>,
  rootFrom: ArrayLike<number>,
  o: { batch: number; joints: number; root: number; bounds: BoundsRef; dz?: ArrayLike<number> },
): { z: Float64Array; dDepth: Float64Array } {
  const J = o.joints, z = new Float64Array(o.batch * J), dDepth = new Float64Array(o.batch * J);
  const range = o.bounds.ub - o.bounds.lb;
  for (let n = 0; n < o.batch; n++) {
    const zr = rootFrom[(n * J + o.root) * 3 + 2];
    for (let j = 0; j < J; j++) {
      const i = n * J + j;
      z[i] = depth[i] * range + o.bounds.lb + zr;
      dDepth[i] = (o.dz?.[i] ?? 0) * range;
    }
  }
  return { z, dDepth };
}

/** Back-projection and, given dOut, its gradients w.r.t. the 2D joints and the depth. */
export function backProjectRef(
  j2: ArrayLike<number>,
  depth: ArrayLike<number>,
  o: {
    batch: number;
    joints: number;
    camera: ArrayLike<number>;
    crop: ArrayLike<number>;
    legacy?: boolean;
    dOut?: ArrayLike<number>;
  },
): { xyz: Float64Array; d2d: Float64Array; dDepth: Float64Array } {
  const J = o.joints, N = o.batch * J;
  const xyz = new Float64Array(N * 3), d2d = new Float64Array(N * 2), dDepth = new Float64Array(N);
  for (let n = 0; n < o.batch; n++) {
    const [fx, fy, cx, cy] = [0, 1, 2, 3].map((k) => o.camera[n * 4 + k]);
    const [a, b, c, d, e, f] = cropAffineRef(o.crop, n, !!o.legacy);
    for (let j = 0; j < J; j++) {
      const i = n * J + j, un = j2[2 * i], vn = j2[2 * i + 1], z = depth[i];
      const u = a * un + b * vn + c, v = d * un + e * vn + f;
      const X = (u - cx) / fx, Y = (v - cy) / fy;
      xyz.set([X * z, Y * z, z], 3 * i);
      if (!o.dOut) continue;
      const gx = o.dOut[3 * i], gy = o.dOut[3 * i + 1], gz = o.dOut[3 * i + 2];
      // Chain rule written out per output coordinate, independently of the kernel's grouping.
      d2d[2 * i] = gx * z * a / fx + gy * z * d / fy;
      d2d[2 * i + 1] = gx * z * b / fx + gy * z * e / fy;
      dDepth[i] = gx * X + gy * Y + gz;
    }
  }
  return { xyz, d2d, dDepth };
}

/** Projection with the H36M distortion model, optionally mapped into norm crop coordinates. */
export function projectRef(
  points: ArrayLike<number>,
  o: {
    batch: number;
    joints: number;
    camera: ArrayLike<number>;
    distortion?: ArrayLike<number>;
    crop?: ArrayLike<number>;
    legacy?: boolean;
  },
): Float64Array {
  const J = o.joints, out = new Float64Array(o.batch * J * 2);
  for (let n = 0; n < o.batch; n++) {
    const [fx, fy, cx, cy] = [0, 1, 2, 3].map((k) => o.camera[n * 4 + k]);
    const [k1, k2, k3, p1, p2] = o.distortion
      ? [0, 1, 2, 3, 4].map((k) => o.distortion![n * 5 + k])
      : [0, 0, 0, 0, 0];
    for (let j = 0; j < J; j++) {
      const i = n * J + j;
      const x = points[3 * i] / points[3 * i + 2], y = points[3 * i + 1] / points[3 * i + 2];
      const r2 = x * x + y * y;
      const radial = 1 + k1 * r2 + k2 * r2 ** 2 + k3 * r2 ** 3;
      const tan = p1 * y + p2 * x;
      let px = fx * (x * (radial + tan) + p2 * r2) + cx;
      let py = fy * (y * (radial + tan) + p1 * r2) + cy;
      if (o.crop) {
        const [a, b, c, d, e, f] = cropAffineRef(o.crop, n, !!o.legacy);
        // Cramer's rule on [a b; d e] (u, v) = (px - c, py - f).
        const det = a * e - b * d;
        const u = ((px - c) * e - b * (py - f)) / det;
        const v = (a * (py - f) - d * (px - c)) / det;
        px = u;
        py = v;
      }
      out[2 * i] = px;
      out[2 * i + 1] = py;
    }
  }
  return out;
}
