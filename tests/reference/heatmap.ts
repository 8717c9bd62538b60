/**
 * CPU twins of kernels/heatmap.ts: ground-truth 2D heatmaps and 3D volumetric heatmaps rendered
 * voxel by voxel in float64, with the f32 rounding of the seed's integer casts reproduced where a
 * different rounding would move a whole Gaussian.
 * @module
 */
import type { Heatmap2DKind } from "../../kernels/heatmap.ts";
import { depthWindow } from "../../kernels/heatmap.ts";

const fr = Math.fround;

/** Options shared by {@linkcode renderHeatmaps2DRef}. */
export interface Heatmap2DRefOptions {
  batch: number;
  joints: number;
  size: number;
  kind: Heatmap2DKind;
  sigma: number;
  legacy: boolean;
  crop?: number;
}

/** Renders [B,J,S,S] from norm joints [B,J,2]. */
export function renderHeatmaps2DRef(joints: Float32Array, o: Heatmap2DRefOptions): Float32Array {
  const S = o.size, C = o.crop ?? 256, stride = C / S;
  const out = new Float32Array(o.batch * o.joints * S * S);
  for (let bj = 0; bj < o.batch * o.joints; bj++) {
    const px = joints[2 * bj], py = joints[2 * bj + 1];
    for (let row = 0; row < S; row++) {
      for (let col = 0; col < S; col++) {
        let v = 0;
        if (o.kind === "baseline") {
          const [cx, cy] = o.legacy
            ? [Math.trunc(fr(fr(px * S) + 0.5)), Math.trunc(fr(fr(py * S) + 0.5))]
            : [px * S - 0.5, py * S - 0.5];
          const r = 3 * o.sigma;
          if (Math.abs(col - cx) <= r && Math.abs(row - cy) <= r) {
            v = Math.exp(-((col - cx) ** 2 + (row - cy) ** 2) / (2 * o.sigma * o.sigma));
          }
        } else if (o.kind === "cpm") {
          const start = o.legacy ? stride / 2 - 0.5 : stride / 2;
          const gx = start + col * stride, gy = start + row * stride;
          const e = ((gx - px * C) ** 2 + (gy - py * C) ** 2) / (2 * o.sigma * o.sigma);
          v = e <= 4.6052 ? Math.min(Math.exp(-e), 1) : 0;
        } else {
          const off = o.legacy ? 0 : 0.5;
          const d2 = ((col + off) / S - px) ** 2 + ((row + off) / S - py) ** 2;
          v = o.kind === "plain"
            ? Math.exp(-d2 / (2 * o.sigma * o.sigma))
            : (Math.sqrt(d2) < o.sigma ? 1 : 0);
        }
        out[(bj * S + row) * S + col] = v;
      }
    }
  }
  return out;
}

/** Options of {@linkcode renderVolumeRef}. */
export interface VolumeRefOptions {
  batch: number;
  joints: number;
  size: number;
  depthBins: number;
  sigma: number;
  legacy: boolean;
  subBinDepth?: boolean;
  fineBins?: number;
  /** Values per joint in the depth input (the last one is used). */
  depthStride?: number;
}

/** The seed's 1-based coarse depth bin z* for a normalised depth (§4.8 steps 2-3). */
export function legacyCoarseBin(z: number, o: { depthBins: number; fineBins?: number }): number {
  const { depthBins, fineBins = 64 } = o;
  let b = 1;
  for (let k = 1; k <= fineBins; k++) {
    if ((k - 1) / fineBins <= z && z <= k / fineBins) {
      b = k;
      break;
    }
  }
  return Math.ceil(b * depthBins / fineBins);
}

/** Renders [B, J*D, S, S] (channel j*D+d) from norm joints [B,J,2] and depth [B,J(,k)]. */
export function renderVolumeRef(
  io: { joints: Float32Array; depth: Float32Array },
  o: VolumeRefOptions,
): Float32Array {
  const { joints, depth } = io;
  const S = o.size, D = o.depthBins, k = o.depthStride ?? 1;
  const win = depthWindow(D, { sigma: o.sigma, fineBins: o.fineBins });
  const out = new Float32Array(o.batch * o.joints * D * S * S);
  const r = 3 * o.sigma;
  for (let bj = 0; bj < o.batch * o.joints; bj++) {
    const px = joints[2 * bj], py = joints[2 * bj + 1], z = depth[bj * k + k - 1];
    let cx: number, cy: number, cz: number, reach: number;
    if (o.legacy) {
      cx = Math.trunc(fr(fr(px * S) + 0.5));
      cy = Math.trunc(fr(fr(py * S) + 0.5));
      cz = legacyCoarseBin(z, { depthBins: D, fineBins: o.fineBins }) - 1;
      reach = win.half;
    } else {
      cx = px * S - 0.5;
      cy = py * S - 0.5;
      if (o.subBinDepth) {
        cz = Math.min(Math.max(z * D - 0.5, 0), D - 1);
        reach = win.half + 0.5;
      } else {
        cz = Math.min(Math.max(Math.floor(z * D), 0), D - 1);
        reach = win.half;
      }
    }
    for (let d = 0; d < D; d++) {
      if (Math.abs(d - cz) > reach) continue;
      const wz = Math.exp(-((d - cz) ** 2) / (2 * win.sigmaZ * win.sigmaZ));
      for (let row = 0; row < S; row++) {
        if (Math.abs(row - cy) > r) continue;
        for (let col = 0; col < S; col++) {
          if (Math.abs(col - cx) > r) continue;
          const wxy = Math.exp(-((col - cx) ** 2 + (row - cy) ** 2) / (2 * o.sigma * o.sigma));
          out[((bj * D + d) * S + row) * S + col] = wxy * wz;
        }
      }
    }
  }
  return out;
}
