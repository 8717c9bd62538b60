/**
 * CPU twins of kernels/metrics.ts, in float64. The Procrustes alignment here deliberately uses a
 * different method from the kernel: Horn's closed form with unit quaternions (the best rotation
 * is the top eigenvector of a 4x4 symmetric matrix, found by two-sided Jacobi), which can only
 * produce proper rotations.
 */

type V3 = [number, number, number];

function joint(a: ArrayLike<number>, k: number): V3 {
  return [a[3 * k], a[3 * k + 1], a[3 * k + 2]];
}

function dist(a: V3, b: V3): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

/** [B * J] absolute errors |P - G|. */
export function mpjpeRef(
  pred: ArrayLike<number>,
  gt: ArrayLike<number>,
  o: { batch: number; joints: number },
) {
  return Float64Array.from({ length: o.batch * o.joints }, (_, k) => dist(joint(pred, k), joint(gt, k)));
}

/** [B * J] root-relative errors. */
export function mpjpeRelRef(
  pred: ArrayLike<number>,
  gt: ArrayLike<number>,
  o: { batch: number; joints: number; root: number },
): Float64Array {
  return Float64Array.from({ length: o.batch * o.joints }, (_, k) => {
    const r = Math.floor(k / o.joints) * o.joints + o.root;
    const p = joint(pred, k), pr = joint(pred, r), g = joint(gt, k), gr = joint(gt, r);
    return dist([p[0] - pr[0], p[1] - pr[1], p[2] - pr[2]], [g[0] - gr[0], g[1] - gr[1], g[2] - gr[2]]);
  });
}

/** Root-relative |difference| per axis, [B, J, 3] (twin of PoseErrors' relAxes). */
export function relAxesRef(
  pred: ArrayLike<number>,
  gt: ArrayLike<number>,
  o: { batch: number; joints: number; root: number },
): Float64Array {
  return Float64Array.from({ length: o.batch * o.joints * 3 }, (_, i) => {
    const k = Math.floor(i / 3), c = i % 3;
    const r = Math.floor(k / o.joints) * o.joints + o.root;
    return Math.abs(pred[3 * k + c] - pred[3 * r + c] - (gt[3 * k + c] - gt[3 * r + c]));
  });
}

/** Eigen-decomposition of a symmetric matrix by cyclic two-sided Jacobi; eigenvectors are columns of `vectors`. */
export function symmetricEigen(m: number[][]): { values: number[]; vectors: number[][] } {
  const n = m.length;
  const a = m.map((r) => r.slice());
  const v: number[][] = a.map((_, i) => a.map((_, j) => (i === j ? 1 : 0)));
  for (let sweep = 0; sweep < 60; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) for (let q = p + 1; q < n; q++) off += a[p][q] ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        if (Math.abs(a[p][q]) < 1e-300) continue;
        const theta = (a[q][q] - a[p][p]) / (2 * a[p][q]);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k][p], akq = a[k][q];
          a[k][p] = c * akp - s * akq;
          a[k][q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p][k], aqk = a[q][k];
          a[p][k] = c * apk - s * aqk;
          a[q][k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k][p], vkq = v[k][q];
          v[k][p] = c * vkp - s * vkq;
          v[k][q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return { values: a.map((r, i) => r[i]), vectors: v };
}

/** Rotation matrix of a unit quaternion (w, x, y, z). */
function quatToMatrix([w, x, y, z]: number[]): number[][] {
  return [
    [w * w + x * x - y * y - z * z, 2 * (x * y - w * z), 2 * (x * z + w * y)],
    [2 * (y * x + w * z), w * w - x * x + y * y - z * z, 2 * (y * z - w * x)],
    [2 * (z * x - w * y), 2 * (z * y + w * x), w * w - x * x - y * y + z * z],
  ];
}

/** The prediction of one sample aligned onto its GT (Horn 1987 with scale), [J * 3]. */
export function alignSimilarityRef(
  pred: ArrayLike<number>,
  gt: ArrayLike<number>,
  joints: number,
): Float64Array {
  const mean = (a: ArrayLike<number>) =>
    [0, 1, 2].map((c) =>
      Array.from({ length: joints }, (_, j) => a[3 * j + c]).reduce((s, x) => s + x, 0) / joints
    );
  const mp = mean(pred), mg = mean(gt);
  const y = Array.from({ length: joints }, (_, j) => [0, 1, 2].map((c) => pred[3 * j + c] - mp[c]));
  const x = Array.from({ length: joints }, (_, j) => [0, 1, 2].map((c) => gt[3 * j + c] - mg[c]));
  const S = [0, 1, 2].map((a) => [0, 1, 2].map((b) => y.reduce((s, yj, j) => s + yj[a] * x[j][b], 0)));
  const [[sxx, sxy, sxz], [syx, syy, syz], [szx, szy, szz]] = S;
  const N = [
    [sxx + syy + szz, syz - szy, szx - sxz, sxy - syx],
    [syz - szy, sxx - syy - szz, sxy + syx, szx + sxz],
    [szx - sxz, sxy + syx, -sxx + syy - szz, syz + szy],
    [sxy - syx, szx + sxz, syz + szy, -sxx - syy + szz],
  ];
  const { values, vectors } = symmetricEigen(N);
  const top = values.indexOf(Math.max(...values));
  const R = quatToMatrix(vectors.map((r) => r[top]));
  const ry = y.map((v) => R.map((row) => row[0] * v[0] + row[1] * v[1] + row[2] * v[2]));
  const num = ry.reduce((s, v, j) => s + v[0] * x[j][0] + v[1] * x[j][1] + v[2] * x[j][2], 0);
  const den = y.reduce((s, v) => s + v[0] ** 2 + v[1] ** 2 + v[2] ** 2, 0);
  const scale = den > 0 ? num / den : 0;
  return Float64Array.from(
    { length: joints * 3 },
    (_, k) => scale * ry[Math.floor(k / 3)][k % 3] + mg[k % 3],
  );
}

/** [B * J] errors after per-sample similarity alignment. */
export function paMpjpeRef(
  pred: ArrayLike<number>,
  gt: ArrayLike<number>,
  o: { batch: number; joints: number },
): Float64Array {
  const J = o.joints, out = new Float64Array(o.batch * J);
  for (let n = 0; n < o.batch; n++) {
    const p = Array.prototype.slice.call(pred, n * J * 3, (n + 1) * J * 3) as number[];
    const g = Array.prototype.slice.call(gt, n * J * 3, (n + 1) * J * 3) as number[];
    const a = alignSimilarityRef(p, g, J);
    for (let j = 0; j < J; j++) out[n * J + j] = dist(joint(a, j), joint(g, j));
  }
  return out;
}

/** Per-joint means over the batch of [B * J] errors. */
export function perJointRef(errors: ArrayLike<number>, o: { batch: number; joints: number }): Float64Array {
  return Float64Array.from({ length: o.joints }, (_, j) => {
    let s = 0;
    for (let n = 0; n < o.batch; n++) s += errors[n * o.joints + j];
    return s / o.batch;
  });
}
