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
   * Sub-samples per output pixel per axis; default: 1 while an output pixel covers at most 1.5
   * source pixels, else ceil(footprint), so small inputs are box-filtered instead of aliased.
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
  const wx = new Float64Array(4), wy = new Float64Array(4);
  const inv = 1 / (n * n);
  for (let py = 0; py < S; py++) {
    for (let px = 0; px < S; px++) {
      let sr = 0, sg = 0, sb = 0;
      for (let sy = 0; sy < n; sy++) {
        const oy = py + (sy + 0.5) / n - 0.5;
        for (let sx = 0; sx < n; sx++) {
          const ox = px + (sx + 0.5) / n - 0.5;
          const x = ma * ox + mb * oy + mc;
          const y = md * ox + me * oy + mf;
          if (x < -2 || y < -2 || x > W + 1 || y > H + 1 || x !== x || y !== y) {
            sr += FILL;
            sg += FILL;
            sb += FILL;
            continue;
          }
          const x0 = Math.floor(x), y0 = Math.floor(y);
          cubicWeights(x - x0, wx, 0);
          cubicWeights(y - y0, wy, 0);
          let r = 0, g = 0, b = 0;
          if (x0 >= 1 && y0 >= 1 && x0 + 2 < W && y0 + 2 < H) {
            for (let j = 0; j < 4; j++) {
              let row = ((y0 - 1 + j) * W + x0 - 1) * 3;
              let rr = 0, gg = 0, bb = 0;
              for (let i = 0; i < 4; i++, row += 3) {
                const w = wx[i];
                rr += w * rgb[row];
                gg += w * rgb[row + 1];
                bb += w * rgb[row + 2];
              }
              const v = wy[j];
              r += v * rr;
              g += v * gg;
              b += v * bb;
            }
          } else {
            for (let j = 0; j < 4; j++) {
              const yy = y0 - 1 + j;
              let rr = 0, gg = 0, bb = 0;
              for (let i = 0; i < 4; i++) {
                const xx = x0 - 1 + i;
                const w = wx[i];
                if (xx < 0 || yy < 0 || xx >= W || yy >= H) {
                  rr += w * FILL;
                  gg += w * FILL;
                  bb += w * FILL;
                } else {
                  const q = (yy * W + xx) * 3;
                  rr += w * rgb[q];
                  gg += w * rgb[q + 1];
                  bb += w * rgb[q + 2];
                }
              }
              const v = wy[j];
              r += v * rr;
              g += v * gg;
              b += v * bb;
            }
          }
          // Bicubic overshoots; the seed's uint8 images saturate.
          sr += r < 0 ? 0 : r > 255 ? 255 : r;
          sg += g < 0 ? 0 : g > 255 ? 255 : g;
          sb += b < 0 ? 0 : b > 255 ? 255 : b;
        }
      }
      const p = base + py * S + px;
      out[p + rOff] = (sr * inv - 128) / 256;
      out[p + gOff] = (sg * inv - 128) / 256;
      out[p + bOff] = (sb * inv - 128) / 256;
    }
  }
  return out;
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
