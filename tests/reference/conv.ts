/**
 * CPU twins of kernels/conv.ts and kernels/gemm.ts: direct loops over NCHW tensors (no im2col),
 * accumulated in f64, so they share no indexing code with the GPU kernels.
 * @module
 */
import type { ConvGeometry } from "../../kernels/conv_geometry.ts";

/** Visits every (image, out-channel, out-pixel, in-channel, tap) with its input coordinate. */
function forEachTap(
  g: ConvGeometry,
  fn: (yi: number, xi: number, wi: number) => void,
): void {
  const cg = g.c / g.groups, kg = g.k / g.groups;
  for (let b = 0; b < g.n; b++) {
    for (let k = 0; k < g.k; k++) {
      const grp = Math.floor(k / kg);
      for (let oy = 0; oy < g.oh; oy++) {
        for (let ox = 0; ox < g.ow; ox++) {
          const yi = ((b * g.k + k) * g.oh + oy) * g.ow + ox;
          for (let c = 0; c < cg; c++) {
            for (let r = 0; r < g.kh; r++) {
              const iy = oy * g.sh - g.ph + r;
              if (iy < 0 || iy >= g.h) continue;
              for (let s = 0; s < g.kw; s++) {
                const ix = ox * g.sw - g.pw + s;
                if (ix < 0 || ix >= g.w) continue;
                const xi = ((b * g.c + grp * cg + c) * g.h + iy) * g.w + ix;
                const wi = ((k * cg + c) * g.kh + r) * g.kw + s;
                fn(yi, xi, wi);
              }
            }
          }
        }
      }
    }
  }
}

/** y = conv(x, w) + bias. */
export function convForwardRef(
  g: ConvGeometry,
  x: Float32Array,
  w: Float32Array,
  bias?: Float32Array,
): Float32Array {
  const y = new Float64Array(g.n * g.k * g.oh * g.ow);
  forEachTap(g, (yi, xi, wi) => (y[yi] += x[xi] * w[wi]));
  if (bias) {
    for (let i = 0; i < y.length; i++) y[i] += bias[Math.floor(i / (g.oh * g.ow)) % g.k];
  }
  return Float32Array.from(y);
}

/** dx = d(sum(dy * conv(x, w)))/dx. */
export function convDgradRef(g: ConvGeometry, dy: Float32Array, w: Float32Array): Float32Array {
  const dx = new Float64Array(g.n * g.c * g.h * g.w);
  forEachTap(g, (yi, xi, wi) => (dx[xi] += dy[yi] * w[wi]));
  return Float32Array.from(dx);
}

/** w [k][c][taps] -> [c][k][taps]. */
export function transposeWeightsRef(
  w: Float32Array,
  g: { k: number; c: number; kh: number; kw: number },
): Float32Array {
  const T = g.kh * g.kw, out = new Float32Array(w.length);
  for (let m = 0; m < g.k; m++) {
    for (let c = 0; c < g.c; c++) {
      for (let t = 0; t < T; t++) out[(c * g.k + m) * T + t] = w[(m * g.c + c) * T + t];
    }
  }
  return out;
}

/** dw = d(sum(dy * conv(x, w)))/dw. */
export function convWgradRef(g: ConvGeometry, dy: Float32Array, x: Float32Array): Float32Array {
  const dw = new Float64Array(g.k * (g.c / g.groups) * g.kh * g.kw);
  forEachTap(g, (yi, xi, wi) => (dw[wi] += dy[yi] * x[xi]));
  return Float32Array.from(dw);
}

/** db[k] = sum of dy over images and pixels of channel k; dy is [n, k, hw]. */
export function biasGradRef(dy: Float32Array, dims: { n: number; k: number; hw: number }): Float32Array {
  const db = new Float64Array(dims.k);
  for (let i = 0; i < dy.length; i++) db[Math.floor(i / dims.hw) % dims.k] += dy[i];
  return Float32Array.from(db);
}

/**
 * Caffe Deconvolution forward written as the scatter it is defined by (not via convDgradRef):
 * each input pixel adds w * x into a k x k window of the output at stride s, offset -p.
 * x: [n, cin, h, w], w: [cin, cout/groups, kh, kw]; returns [n, cout, oh, ow].
 */
export function deconvForwardRef(
  x: Float32Array,
  w: Float32Array,
  d: {
    n: number;
    cin: number;
    h: number;
    w: number;
    cout: number;
    k: number;
    s: number;
    p: number;
    groups: number;
    bias?: Float32Array;
  },
): Float32Array {
  const oh = (d.h - 1) * d.s - 2 * d.p + d.k, ow = (d.w - 1) * d.s - 2 * d.p + d.k;
  const cinG = d.cin / d.groups, coutG = d.cout / d.groups;
  const y = new Float64Array(d.n * d.cout * oh * ow);
  for (let b = 0; b < d.n; b++) {
    for (let ci = 0; ci < d.cin; ci++) {
      const grp = Math.floor(ci / cinG);
      for (let iy = 0; iy < d.h; iy++) {
        for (let ix = 0; ix < d.w; ix++) {
          const v = x[((b * d.cin + ci) * d.h + iy) * d.w + ix];
          for (let co = 0; co < coutG; co++) {
            const oc = grp * coutG + co;
            for (let r = 0; r < d.k; r++) {
              const oy = iy * d.s - d.p + r;
              if (oy < 0 || oy >= oh) continue;
              for (let s = 0; s < d.k; s++) {
                const ox = ix * d.s - d.p + s;
                if (ox < 0 || ox >= ow) continue;
                y[((b * d.cout + oc) * oh + oy) * ow + ox] += v * w[((ci * coutG + co) * d.k + r) * d.k + s];
              }
            }
          }
        }
      }
    }
  }
  if (d.bias) { for (let i = 0; i < y.length; i++) y[i] += d.bias[Math.floor(i / (oh * ow)) % d.cout]; }
  return Float32Array.from(y);
}

/** C = A * B for row-major A [M, K] and B [K, N]. */
export function gemmRef(
  a: Float32Array,
  b: Float32Array,
  d: { M: number; N: number; K: number },
): Float32Array {
  const c = new Float64Array(d.M * d.N);
  for (let m = 0; m < d.M; m++) {
    for (let k = 0; k < d.K; k++) {
      const av = a[m * d.K + k];
      for (let n = 0; n < d.N; n++) c[m * d.N + n] += av * b[k * d.N + n];
    }
  }
  return Float32Array.from(c);
}
