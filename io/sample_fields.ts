/**
 * The per-sample arrays a processed sample carries and a batch stacks, with their shapes: one
 * table that drives the worker transfer list, batch allocation, padding and the pose net's
 * inputs, so adding a label is one line here (and the code that computes it).
 * @module
 */
import { NUM_JOINTS } from "./joints.ts";

const J = NUM_JOINTS;

/** Per-sample shape of each field at network input side `s`; every field is a Float32Array. */
export const SAMPLE_FIELDS = {
  /** 3 x S x S planar input, (pixel - 128) / 256. */
  image: (s: number) => [3, s, s],
  /** 16 x 2 norm crop coordinates. */
  joints2d: () => [J, 2],
  /** 16 root-relative depths encoded to [0, 1]. */
  depth: () => [J],
  /** 16 x 3 camera-frame mm. */
  gt3d: () => [J, 3],
  /** 16 x 3 back-projection of the augmented 2D with the GT depth. */
  aug3d: () => [J, 3],
  /** fx fy cx cy. */
  camera: () => [4],
  /** x1 y1 x2 y2. */
  bbx: () => [4],
  /** Norm crop coordinates -> raw-frame px, affine [a b c d e f]. */
  cropToBbx: () => [6],
} as const satisfies Record<string, (inputSize: number) => number[]>;

/** Name of a per-sample field. */
export type SampleField = keyof typeof SAMPLE_FIELDS;

/** Every per-sample field, in table order. */
export const SAMPLE_FIELD_NAMES = Object.keys(SAMPLE_FIELDS) as SampleField[];

/** Floats of one sample's `field` at input side `s`. */
export function fieldFloats(field: SampleField, s: number): number {
  return SAMPLE_FIELDS[field](s).reduce((a, b) => a * b, 1);
}
