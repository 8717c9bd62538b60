/** CPU twins of kernels/norm.ts, in float64, written for clarity over speed. */

/** [outer, channels, inner] view of a tensor (NCHW: N, C, H*W). */
export interface RefShape {
  outer: number;
  channels: number;
  inner: number;
}

function idx(s: RefShape, n: number, c: number, k: number): number {
  return (n * s.channels + c) * s.inner + k;
}

/** Per-channel mean and biased variance. */
export function channelStatsRef(x: ArrayLike<number>, s: RefShape): { mean: number[]; variance: number[] } {
  const m = s.outer * s.inner;
  const mean: number[] = [], variance: number[] = [];
  for (let c = 0; c < s.channels; c++) {
    let sum = 0;
    for (let n = 0; n < s.outer; n++) for (let k = 0; k < s.inner; k++) sum += x[idx(s, n, c, k)];
    const mu = sum / m;
    let q = 0;
    for (let n = 0; n < s.outer; n++) for (let k = 0; k < s.inner; k++) q += (x[idx(s, n, c, k)] - mu) ** 2;
    mean.push(mu);
    variance.push(q / m);
  }
  return { mean, variance };
}

/** Options shared by the batch-norm twins. */
export interface BnRefOptions {
  gamma?: ArrayLike<number>;
  beta?: ArrayLike<number>;
  eps?: number;
  relu?: boolean;
  /** Normalise with these (running) statistics instead of the batch's. */
  running?: { mean: ArrayLike<number>; variance: ArrayLike<number> };
}

function bnParts(x: ArrayLike<number>, s: RefShape, o: BnRefOptions) {
  const eps = o.eps ?? 1e-5;
  const st = o.running ?? channelStatsRef(x, s);
  const inv = Array.from({ length: s.channels }, (_, c) => 1 / Math.sqrt(st.variance[c] + eps));
  const xh = new Float64Array(x.length), z = new Float64Array(x.length);
  for (let n = 0; n < s.outer; n++) {
    for (let c = 0; c < s.channels; c++) {
      for (let k = 0; k < s.inner; k++) {
        const i = idx(s, n, c, k);
        xh[i] = (x[i] - st.mean[c]) * inv[c];
        z[i] = xh[i] * (o.gamma?.[c] ?? 1) + (o.beta?.[c] ?? 0);
      }
    }
  }
  return { inv, xh, z };
}

/** y = [relu](gamma * (x - mean) / sqrt(var + eps) + beta). */
export function batchNormRef(x: ArrayLike<number>, s: RefShape, o: BnRefOptions = {}): Float32Array {
  const { z } = bnParts(x, s, o);
  return Float32Array.from(z, (v) => (o.relu ? Math.max(v, 0) : v));
}

/**
 * Gradients of batch norm for output gradient dy: through the batch statistics, or treating
 * `running` statistics as constants.
 */
export function batchNormBackwardRef(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  s: RefShape,
  o: BnRefOptions = {},
): { dx: Float32Array; dgamma: Float32Array; dbeta: Float32Array } {
  const { inv, xh, z } = bnParts(x, s, o);
  const m = s.outer * s.inner;
  const g = Float64Array.from(dy, (v, i) => (o.relu && !(z[i] > 0) ? 0 : v));
  const dgamma = new Float32Array(s.channels), dbeta = new Float32Array(s.channels);
  const dx = new Float32Array(x.length);
  for (let c = 0; c < s.channels; c++) {
    let sg = 0, sgx = 0;
    for (let n = 0; n < s.outer; n++) {
      for (let k = 0; k < s.inner; k++) {
        const i = idx(s, n, c, k);
        sg += g[i];
        sgx += g[i] * xh[i];
      }
    }
    dgamma[c] = sgx;
    dbeta[c] = sg;
    const gamma = o.gamma?.[c] ?? 1;
    for (let n = 0; n < s.outer; n++) {
      for (let k = 0; k < s.inner; k++) {
        const i = idx(s, n, c, k);
        dx[i] = o.running ? gamma * inv[c] * g[i] : gamma * inv[c] * (g[i] - sg / m - xh[i] * sgx / m);
      }
    }
  }
  return { dx, dgamma, dbeta };
}

/** Running statistics in their normalised form (see kernels/norm.ts). */
export interface RunningRef {
  mean: number[];
  variance: number[];
  scale: number[];
}

/** One Caffe moving-average update with the batch `x`, returning the new running statistics. */
export function runningUpdateRef(
  r: RunningRef,
  x: ArrayLike<number>,
  s: RefShape,
  fraction = 0.999,
): RunningRef {
  const st = channelStatsRef(x, s);
  const m = s.outer * s.inner;
  const corr = m > 1 ? m / (m - 1) : 1;
  const out: RunningRef = { mean: [], variance: [], scale: [] };
  for (let c = 0; c < s.channels; c++) {
    // Caffe's form, then divided through by S: blob0 = f*blob0 + mean, blob1 = f*blob1 + corr*var.
    const S = fraction * r.scale[c] + 1;
    out.scale.push(S);
    out.mean.push((fraction * r.scale[c] * r.mean[c] + st.mean[c]) / S);
    out.variance.push((fraction * r.scale[c] * r.variance[c] + corr * st.variance[c]) / S);
  }
  return out;
}

/** Options of the group-norm twins. */
export interface GnRefOptions {
  groups: number;
  gamma?: ArrayLike<number>;
  beta?: ArrayLike<number>;
  eps?: number;
  relu?: boolean;
}

function gnParts(x: ArrayLike<number>, s: RefShape, o: GnRefOptions) {
  const eps = o.eps ?? 1e-5, G = o.groups, cg = s.channels / G, L = cg * s.inner;
  const xh = new Float64Array(x.length), z = new Float64Array(x.length);
  const inv: number[] = [];
  for (let n = 0; n < s.outer; n++) {
    for (let g = 0; g < G; g++) {
      const base = (n * s.channels + g * cg) * s.inner;
      let sum = 0;
      for (let j = 0; j < L; j++) sum += x[base + j];
      const mu = sum / L;
      let q = 0;
      for (let j = 0; j < L; j++) q += (x[base + j] - mu) ** 2;
      const iv = 1 / Math.sqrt(q / L + eps);
      inv.push(iv);
      for (let j = 0; j < L; j++) {
        const c = g * cg + Math.floor(j / s.inner);
        xh[base + j] = (x[base + j] - mu) * iv;
        z[base + j] = xh[base + j] * (o.gamma?.[c] ?? 1) + (o.beta?.[c] ?? 0);
      }
    }
  }
  return { xh, z, inv, L, cg };
}

/** Group norm with per-channel affine and optional ReLU. */
export function groupNormRef(x: ArrayLike<number>, s: RefShape, o: GnRefOptions): Float32Array {
  const { z } = gnParts(x, s, o);
  return Float32Array.from(z, (v) => (o.relu ? Math.max(v, 0) : v));
}

/** Group norm gradients. */
export function groupNormBackwardRef(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  s: RefShape,
  o: GnRefOptions,
): { dx: Float32Array; dgamma: Float32Array; dbeta: Float32Array } {
  const { xh, z, inv, L, cg } = gnParts(x, s, o);
  const G = o.groups;
  const g = Float64Array.from(dy, (v, i) => (o.relu && !(z[i] > 0) ? 0 : v));
  const dx = new Float32Array(x.length);
  const dgamma = new Float32Array(s.channels), dbeta = new Float32Array(s.channels);
  const dg = new Float64Array(s.channels), db = new Float64Array(s.channels);
  for (let n = 0; n < s.outer; n++) {
    for (let gr = 0; gr < G; gr++) {
      const base = (n * s.channels + gr * cg) * s.inner;
      const ch = (j: number) => gr * cg + Math.floor(j / s.inner);
      let a = 0, b = 0;
      for (let j = 0; j < L; j++) {
        const gh = g[base + j] * (o.gamma?.[ch(j)] ?? 1);
        a += gh;
        b += gh * xh[base + j];
        dg[ch(j)] += g[base + j] * xh[base + j];
        db[ch(j)] += g[base + j];
      }
      const iv = inv[n * G + gr];
      for (let j = 0; j < L; j++) {
        const gh = g[base + j] * (o.gamma?.[ch(j)] ?? 1);
        dx[base + j] = iv * (gh - a / L - xh[base + j] * b / L);
      }
    }
  }
  dgamma.set(dg);
  dbeta.set(db);
  return { dx, dgamma, dbeta };
}

/** y = gamma[c] * x + beta[c]. */
export function scaleRef(
  x: ArrayLike<number>,
  s: RefShape,
  gamma: ArrayLike<number>,
  beta?: ArrayLike<number>,
): Float32Array {
  const y = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const c = Math.floor(i / s.inner) % s.channels;
    y[i] = x[i] * gamma[c] + (beta?.[c] ?? 0);
  }
  return y;
}

/** Scale gradients. */
export function scaleBackwardRef(
  x: ArrayLike<number>,
  dy: ArrayLike<number>,
  s: RefShape,
  gamma: ArrayLike<number>,
): { dx: Float32Array; dgamma: Float32Array; dbeta: Float32Array } {
  const dx = new Float32Array(x.length);
  const dg = new Float64Array(s.channels), db = new Float64Array(s.channels);
  for (let i = 0; i < x.length; i++) {
    const c = Math.floor(i / s.inner) % s.channels;
    dx[i] = dy[i] * gamma[c];
    dg[c] += dy[i] * x[i];
    db[c] += dy[i];
  }
  return { dx, dgamma: Float32Array.from(dg), dbeta: Float32Array.from(db) };
}
