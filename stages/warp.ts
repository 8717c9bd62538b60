/**
 * The one resampling step of the pipeline: an affine warp of an interleaved RGB u8 image into a
 * planar float network input, bicubic like OpenCV's INTER_CUBIC (a = -0.75) with a constant grey
 * (128) border, normalised to (v - 128) / 256 in B,G,R (or R,G,B) plane order. Scale, rotation,
 * flip, crop and the final resize to the input size are all folded into the map, so the image is
 * interpolated once.
 * @module
 */

import type { Affine } from "./geometry.ts";

/** Plane order of the network input. */
export type ChannelOrder = "bgr" | "rgb";

/** Grey used outside the source image (the seed's border value). */
export const FILL = 128;

const A = -0.75;

/** Writes the 4 cubic-convolution weights for fractional offset t into w[o..o+3]. */
function cubicWeights(t: number, w: Float64Array, o: number): void {
  const t1 = t + 1, t2 = 1 - t;
  w[o] = ((A * t1 - 5 * A) * t1 + 8 * A) * t1 - 4 * A;
  w[o + 1] = ((A + 2) * t - (A + 3)) * t * t + 1;
  w[o + 2] = ((A + 2) * t2 - (A + 3)) * t2 * t2 + 1;
  w[o + 3] = 1 - w[o] - w[o + 1] - w[o + 2];
}

/** Options of warpToPlanar. */
export interface WarpOptions {
  /** Output side S (the output is S x S). */
  size: number;
  /** Plane order; default "bgr" like the seed. */
  channelOrder?: ChannelOrder;
  /**
   * Sub-samples per output pixel per axis; default: 1 (one bicubic sample) while an output pixel
   * covers at most 1.5 source pixels, else ceil(footprint) bilinear samples averaged, so small
   * inputs are area-filtered instead of aliased.
   */
  supersample?: number;
  /** Source pixels per output pixel, to choose the supersampling. */
  footprint?: number;
  /** Destination (3*S*S floats) and offset into it; allocated when absent. */
  out?: Float32Array;
  /** Offset into `out`. */
  offset?: number;
}

/**
 * Warps `rgb` (width x height x 3 bytes) through `map` (output pixel index -> source pixel
 * index) into planar floats (pixel - 128) / 256.
 */
export function warpToPlanar(
  src: { width: number; height: number; rgb: Uint8Array },
  map: Affine,
  opts: WarpOptions,
): Float32Array {
  const S = opts.size;
  const plane = S * S;
  const out = opts.out ?? new Float32Array(3 * plane);
  const base = opts.offset ?? 0;
  const fp = opts.footprint ?? 1;
  const n = opts.supersample ?? (fp > 1.5 ? Math.ceil(fp) : 1);
  const { width: W, height: H, rgb } = src;
  const [ma, mb, mc, md, me, mf] = map;
  // plane index of R, G, B
  const rOff = opts.channelOrder === "rgb" ? 0 : 2 * plane;
  const gOff = plane;
  const bOff = opts.channelOrder === "rgb" ? 2 * plane : 0;
  if (n > 1) {
    warpBoxBilinear(src, map, { size: S, n, out, base, rOff, gOff, bOff });
    return out;
  }
  const wx = new Float64Array(4), wy = new Float64Array(4);
  const rs = W * 3;
  const px3 = [0, 0, 0];
  for (let py = 0; py < S; py++) {
    for (let qx = 0; qx < S; qx++) {
      const x = ma * qx + mb * py + mc;
      const y = md * qx + me * py + mf;
      if (x < -2 || y < -2 || x > W + 1 || y > H + 1 || x !== x || y !== y) {
        px3[0] = px3[1] = px3[2] = FILL;
      } else {
        const x0 = Math.floor(x), y0 = Math.floor(y);
        cubicWeights(x - x0, wx, 0);
        cubicWeights(y - y0, wy, 0);
        if (x0 >= 1 && y0 >= 1 && x0 + 2 < W && y0 + 2 < H) {
          const wx0 = wx[0], wx1 = wx[1], wx2 = wx[2], wx3 = wx[3];
          const wy0 = wy[0], wy1 = wy[1], wy2 = wy[2], wy3 = wy[3];
          const q0 = ((y0 - 1) * W + x0 - 1) * 3;
          for (let c = 0; c < 3; c++) {
            let q = q0 + c;
            const r0 = wx0 * rgb[q] + wx1 * rgb[q + 3] + wx2 * rgb[q + 6] + wx3 * rgb[q + 9];
            q += rs;
            const r1 = wx0 * rgb[q] + wx1 * rgb[q + 3] + wx2 * rgb[q + 6] + wx3 * rgb[q + 9];
            q += rs;
            const r2 = wx0 * rgb[q] + wx1 * rgb[q + 3] + wx2 * rgb[q + 6] + wx3 * rgb[q + 9];
            q += rs;
            const r3 = wx0 * rgb[q] + wx1 * rgb[q + 3] + wx2 * rgb[q + 6] + wx3 * rgb[q + 9];
            px3[c] = wy0 * r0 + wy1 * r1 + wy2 * r2 + wy3 * r3;
          }
        } else {
          px3[0] = px3[1] = px3[2] = 0;
          for (let j = 0; j < 4; j++) {
            const yy = y0 - 1 + j;
            for (let i = 0; i < 4; i++) {
              const xx = x0 - 1 + i;
              const w = wx[i] * wy[j];
              if (xx < 0 || yy < 0 || xx >= W || yy >= H) {
                px3[0] += w * FILL;
                px3[1] += w * FILL;
                px3[2] += w * FILL;
              } else {
                const q = (yy * W + xx) * 3;
                px3[0] += w * rgb[q];
                px3[1] += w * rgb[q + 1];
                px3[2] += w * rgb[q + 2];
              }
            }
          }
        }
      }
      // Bicubic overshoots; the seed's uint8 images saturate.
      const r = px3[0] < 0 ? 0 : px3[0] > 255 ? 255 : px3[0];
      const g = px3[1] < 0 ? 0 : px3[1] > 255 ? 255 : px3[1];
      const b = px3[2] < 0 ? 0 : px3[2] > 255 ? 255 : px3[2];
      const p = base + py * S + qx;
      out[p + rOff] = (r - 128) / 256;
      out[p + gOff] = (g - 128) / 256;
      out[p + bOff] = (b - 128) / 256;
    }
  }
  return out;
}

/**
 * Downsampling path: the mean of n x n bilinear samples per output pixel, an area filter that
 * avoids aliasing at a quarter of the bicubic cost per sample.
 */
function warpBoxBilinear(
  src: { width: number; height: number; rgb: Uint8Array },
  map: Affine,
  o: { size: number; n: number; out: Float32Array; base: number; rOff: number; gOff: number; bOff: number },
): void {
  const { width: W, height: H, rgb } = src;
  const { size: S, n, out, base } = o;
  const [ma, mb, mc, md, me, mf] = map;
  const inv = 1 / (n * n);
  const px = (q: number, c: number, xx: number, yy: number) =>
    xx < 0 || yy < 0 || xx >= W || yy >= H ? FILL : rgb[q + c];
  for (let py = 0; py < S; py++) {
    for (let qx = 0; qx < S; qx++) {
      let sr = 0, sg = 0, sb = 0;
      for (let sy = 0; sy < n; sy++) {
        const oy = py + (sy + 0.5) / n - 0.5;
        for (let sx = 0; sx < n; sx++) {
          const ox = qx + (sx + 0.5) / n - 0.5;
          const x = ma * ox + mb * oy + mc;
          const y = md * ox + me * oy + mf;
          const x0 = Math.floor(x), y0 = Math.floor(y);
          const fx = x - x0, fy = y - y0;
          const w00 = (1 - fx) * (1 - fy), w10 = fx * (1 - fy), w01 = (1 - fx) * fy, w11 = fx * fy;
          if (x0 >= 0 && y0 >= 0 && x0 + 1 < W && y0 + 1 < H) {
            const q00 = (y0 * W + x0) * 3, q01 = q00 + W * 3;
            sr += w00 * rgb[q00] + w10 * rgb[q00 + 3] + w01 * rgb[q01] + w11 * rgb[q01 + 3];
            sg += w00 * rgb[q00 + 1] + w10 * rgb[q00 + 4] + w01 * rgb[q01 + 1] + w11 * rgb[q01 + 4];
            sb += w00 * rgb[q00 + 2] + w10 * rgb[q00 + 5] + w01 * rgb[q01 + 2] + w11 * rgb[q01 + 5];
          } else if (x < -1 || y < -1 || x > W || y > H || x !== x || y !== y) {
            sr += FILL;
            sg += FILL;
            sb += FILL;
          } else {
            const q00 = (y0 * W + x0) * 3, q10 = q00 + 3, q01 = q00 + W * 3, q11 = q01 + 3;
            for (let c = 0; c < 3; c++) {
              const v = w00 * px(q00, c, x0, y0) + w10 * px(q10, c, x0 + 1, y0) +
                w01 * px(q01, c, x0, y0 + 1) +
                w11 * px(q11, c, x0 + 1, y0 + 1);
              if (c === 0) sr += v;
              else if (c === 1) sg += v;
              else sb += v;
            }
          }
        }
      }
      const p = base + py * S + qx;
      out[p + o.rOff] = (sr * inv - 128) / 256;
      out[p + o.gOff] = (sg * inv - 128) / 256;
      out[p + o.bOff] = (sb * inv - 128) / 256;
    }
  }
}

/** Converts a planar network input back to interleaved RGB bytes (for inspection images). */
export function planarToRgb(
  planes: Float32Array,
  size: number,
  opts: { channelOrder?: ChannelOrder; offset?: number } = {},
): Uint8Array {
  const plane = size * size;
  const base = opts.offset ?? 0;
  const rOff = opts.channelOrder === "rgb" ? 0 : 2 * plane;
  const bOff = opts.channelOrder === "rgb" ? 2 * plane : 0;
  const out = new Uint8Array(plane * 3);
  const cvt = (v: number) => Math.max(0, Math.min(255, Math.round(v * 256 + 128)));
  for (let i = 0; i < plane; i++) {
    out[3 * i] = cvt(planes[base + rOff + i]);
    out[3 * i + 1] = cvt(planes[base + plane + i]);
    out[3 * i + 2] = cvt(planes[base + bOff + i]);
  }
  return out;
}
