/**
 * CPU twins of kernels/tensor_ops.ts and kernels/pool.ts (pooling and upsampling move data too,
 * so their twins live here).
 */

/** Caffe's pooled extent (ceil mode, last window may not start in the padding). */
export function pooledSizeRef(size: number, kernel: number, stride: number, pad: number): number {
  let out = Math.ceil((size + 2 * pad - kernel) / stride) + 1;
  if (pad > 0 && (out - 1) * stride >= size + pad) out--;
  return out;
}

/** Pooling geometry of the twins. */
export interface PoolRef {
  planes: number;
  height: number;
  width: number;
  kernel: number;
  stride: number;
  pad: number;
}

/** Max pooling as Caffe loops it; also returns each output's argmax (flat input index). */
export function maxPoolRef(x: ArrayLike<number>, g: PoolRef): { y: Float32Array; argmax: Int32Array } {
  const PH = pooledSizeRef(g.height, g.kernel, g.stride, g.pad);
  const PW = pooledSizeRef(g.width, g.kernel, g.stride, g.pad);
  const y = new Float32Array(g.planes * PH * PW), argmax = new Int32Array(y.length);
  for (let p = 0; p < g.planes; p++) {
    for (let ph = 0; ph < PH; ph++) {
      for (let pw = 0; pw < PW; pw++) {
        const hs = ph * g.stride - g.pad, ws = pw * g.stride - g.pad;
        const he = Math.min(hs + g.kernel, g.height), we = Math.min(ws + g.kernel, g.width);
        let best = -1, bv = -Infinity;
        for (let h = Math.max(hs, 0); h < he; h++) {
          for (let w = Math.max(ws, 0); w < we; w++) {
            const j = (p * g.height + h) * g.width + w;
            if (x[j] > bv) {
              bv = x[j];
              best = j;
            }
          }
        }
        const o = (p * PH + ph) * PW + pw;
        y[o] = bv;
        argmax[o] = best;
      }
    }
  }
  return { y, argmax };
}

/** dx: each output gradient added to its window's argmax. */
export function maxPoolBackwardRef(x: ArrayLike<number>, dy: ArrayLike<number>, g: PoolRef): Float32Array {
  const { argmax } = maxPoolRef(x, g);
  const dx = new Float32Array(x.length);
  for (let o = 0; o < argmax.length; o++) dx[argmax[o]] += dy[o];
  return dx;
}

/** Nearest upsampling of `planes` H x W images by `f`. */
export function upsampleNearestRef(
  x: ArrayLike<number>,
  g: { planes: number; height: number; width: number; factor: number },
): Float32Array {
  const { planes, height: H, width: W, factor: f } = g;
  const y = new Float32Array(planes * H * W * f * f);
  for (let p = 0; p < planes; p++) {
    for (let h = 0; h < H * f; h++) {
      for (let w = 0; w < W * f; w++) {
        y[(p * H * f + h) * W * f + w] = x[(p * H + Math.floor(h / f)) * W + Math.floor(w / f)];
      }
    }
  }
  return y;
}

/** Gradient of nearest upsampling: each input sums its f x f block. */
export function upsampleNearestBackwardRef(
  dy: ArrayLike<number>,
  g: { planes: number; height: number; width: number; factor: number },
): Float32Array {
  const { planes, height: H, width: W, factor: f } = g;
  const dx = new Float32Array(planes * H * W);
  for (let p = 0; p < planes; p++) {
    for (let h = 0; h < H * f; h++) {
      for (let w = 0; w < W * f; w++) {
        dx[(p * H + Math.floor(h / f)) * W + Math.floor(w / f)] += dy[(p * H * f + h) * W * f + w];
      }
    }
  }
  return dx;
}

/** sum_k coeffs[k] * xs[k] + shift. */
export function weightedSumRef(
  xs: readonly ArrayLike<number>[],
  coeffs: readonly number[],
  shift = 0,
): Float32Array {
  return Float32Array.from(
    { length: xs[0].length },
    (_, i) => xs.reduce((s, x, k) => s + coeffs[k] * x[i], shift),
  );
}

/** Concatenation along an axis of tensors seen as [outer, len_k, inner]. */
export function concatRef(
  xs: readonly ArrayLike<number>[],
  lens: readonly number[],
  outer: number,
  inner: number,
): Float32Array {
  const total = lens.reduce((a, b) => a + b, 0);
  const y = new Float32Array(outer * total * inner);
  for (let o = 0; o < outer; o++) {
    let start = 0;
    xs.forEach((x, k) => {
      for (let a = 0; a < lens[k]; a++) {
        for (let i = 0; i < inner; i++) {
          y[(o * total + start + a) * inner + i] = x[(o * lens[k] + a) * inner + i];
        }
      }
      start += lens[k];
    });
  }
  return y;
}

/** The inverse of {@linkcode concatRef}. */
export function sliceRef(
  x: ArrayLike<number>,
  lens: readonly number[],
  outer: number,
  inner: number,
): Float32Array[] {
  const total = lens.reduce((a, b) => a + b, 0);
  let start = 0;
  return lens.map((len) => {
    const y = new Float32Array(outer * len * inner);
    for (let o = 0; o < outer; o++) {
      for (let a = 0; a < len; a++) {
        for (let i = 0; i < inner; i++) y[(o * len + a) * inner + i] = x[(o * total + start + a) * inner + i];
      }
    }
    start += len;
    return y;
  });
}

/** y[n, i] = x[n, i] + s[n]. */
export function addRowScalarRef(x: ArrayLike<number>, s: ArrayLike<number>, cols: number): Float32Array {
  return Float32Array.from({ length: x.length }, (_, i) => x[i] + s[Math.floor(i / cols)]);
}

/** ds of AddVectorBySingleVector: sum over the row, or the seed's loop run literally (`legacy`). */
export function addRowScalarBackwardRef(
  dy: ArrayLike<number>,
  rows: number,
  cols: number,
  legacy = false,
): Float32Array {
  const ds = new Float32Array(rows);
  if (!legacy) {
    for (let n = 0; n < rows; n++) for (let i = 0; i < cols; i++) ds[n] += dy[n * cols + i];
    return ds;
  }
  // The seed's loop, verbatim in effect, with its out-of-range writes dropped.
  for (let t = 0; t < rows; t++) {
    ds[t] = 0;
    for (let i = 0; i < cols; i++) if (t + i < rows) ds[t + i] += dy[t * cols + i];
  }
  return ds;
}
