/**
 * Parameter initialisers (Caffe fillers), computed on the CPU from a seeded PRNG and uploaded
 * once. Each parameter draws from its own stream derived from its name, so adding or renaming
 * one layer does not change the initial values of the others.
 * @module
 */
import { Rng } from "../io/prng.ts";
import type { Shape } from "./layer.ts";
import { numel } from "./layer.ts";

/** How a parameter is initialised. */
export type Filler =
  | { type: "constant"; value: number }
  | { type: "gaussian"; std: number; mean?: number }
  | { type: "uniform"; min: number; max: number }
  | { type: "xavier" }
  | { type: "msra" }
  | { type: "bilinear" };

/** fan_in and fan_out of a weight of shape [out, in, ...k] (Caffe: count/shape[0], count/shape[1]). */
function fans(shape: Shape): [number, number] {
  const n = numel(shape);
  return [n / Math.max(1, shape[0]), shape.length > 1 ? n / Math.max(1, shape[1]) : n];
}

/** Stable 32-bit hash of a string (FNV-1a), used to give each parameter its own stream. */
export function hashName(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** Fills a new array for a parameter `key` (e.g. "conv_1.weight") of `shape`. */
export function fill(filler: Filler, shape: Shape, opts: { seed: number; key: string }): Float32Array {
  const out = new Float32Array(numel(shape));
  const rng = new Rng(opts.seed ^ hashName(opts.key), hashName(opts.key));
  switch (filler.type) {
    case "constant":
      return out.fill(filler.value);
    case "gaussian":
      return rng.fillNormal(out, filler.mean ?? 0, filler.std);
    case "uniform":
      return rng.fillUniform(out, filler.min, filler.max);
    case "xavier": {
      // Caffe's default variance_norm FAN_IN: U(-a, a) with a = sqrt(3 / fan_in).
      const a = Math.sqrt(3 / fans(shape)[0]);
      return rng.fillUniform(out, -a, a);
    }
    case "msra":
      return rng.fillNormal(out, 0, Math.sqrt(2 / fans(shape)[0]));
    case "bilinear": {
      // Caffe's BilinearFiller: for a k x k kernel, f = ceil(k/2), c = (2f - 1 - f%2) / (2f).
      if (shape.length !== 4 || shape[2] !== shape[3]) {
        throw new RangeError(`bilinear filler needs a square 4-D kernel, got ${shape.join("x")}`);
      }
      const k = shape[3];
      const f = Math.ceil(k / 2);
      const c = (2 * f - 1 - (f % 2)) / (2 * f);
      for (let i = 0; i < out.length; i++) {
        const x = i % k;
        const y = Math.floor(i / k) % k;
        out[i] = (1 - Math.abs(x / f - c)) * (1 - Math.abs(y / f - c));
      }
      return out;
    }
  }
}
