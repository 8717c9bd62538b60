/**
 * Per-sample work of the input pipeline (SEED_SPEC §3): load every annotation file and the image,
 * select the 16 joints, draw the augmentation from the sample's own seeded stream, warp the image
 * once, and compute the cheap per-sample labels (norm 2D, normalised depth, GT and augmented 3D,
 * camera, bbx and the crop -> raw-frame map). Pure apart from file reads, so it runs the same in a
 * worker or in the calling thread.
 * @module
 */

import type { SampleField } from "../io/sample_fields.ts";
import { Rng } from "../io/prng.ts";
import { decodeImage, type RgbImage } from "../io/images.ts";
import { NUM_JOINTS, ROOT_JOINT, selectParts, swapLeftRight } from "../io/joints.ts";
import { readSample, resolveImagePath, type SampleRecord } from "../io/sample_files.ts";
import { type AugParams, CROP_SIDE, NO_AUG, sampleGeometry, SOURCE_SIDE } from "./geometry.ts";
import { type ChannelOrder, warpToPlanar } from "./warp.ts";

/** Lower bound of the depth encoding, mm relative to the root (§4.5). */
export const DEPTH_LB = -1005.185902;
/** Upper bound of the depth encoding, mm relative to the root (§4.5). */
export const DEPTH_UB = 980.8599;

/** Ranges of the random augmentation (SEED_SPEC §3 training values by default). */
export interface AugmentOptions {
  /** Scale multiplier range; default [0.7, 1.3]. */
  scaleRange?: [number, number];
  /** Probability of scaling at all; default 1. */
  scaleProb?: number;
  /** Maximum absolute rotation in degrees; default 40. */
  maxRotateDeg?: number;
  /** Flip probability; default 0.5. */
  flipProb?: number;
}

/**
 * Switches for the seed's quirks, one per family (`true` turns all on):
 * `geometry` §8.17 crop geometry, `unswappedDepth` §8.4 flip without 3D swap,
 * `cropAsBbx` §8.3 back-projection treating the 256 crop as the bbx.
 */
export interface LegacyOptions {
  /** §8.17: +0.5 px canvas shift, truncated crop centre, joint scaling without half-pixel. */
  geometry?: boolean;
  /** §8.4: a flip swaps the 2D labels only; depth and gt3d keep the unswapped order. */
  unswappedDepth?: boolean;
  /** §8.3: GenAug3D's frame, norm -> bbx directly. */
  cropAsBbx?: boolean;
}

/** Normalises `legacy: boolean | LegacyOptions` to the per-family switches. */
export function legacyFlags(legacy: boolean | LegacyOptions | undefined): Required<LegacyOptions> {
  if (legacy === true) return { geometry: true, unswappedDepth: true, cropAsBbx: true };
  const l = legacy || {};
  return { geometry: !!l.geometry, unswappedDepth: !!l.unswappedDepth, cropAsBbx: !!l.cropAsBbx };
}

/** How a sample becomes network input. */
export interface SampleOptions {
  /** Network input side; default 256. */
  inputSize?: number;
  /** Random augmentation (true = seed's training ranges); false/absent = test mode. */
  augment?: boolean | AugmentOptions;
  /** Plane order; default "bgr". */
  channelOrder?: ChannelOrder;
  /** The seed's quirks. */
  legacy?: boolean | LegacyOptions;
}

/**
 * One sample as the network sees it: every per-sample field of io/sample_fields.ts (its own slice
 * of the Batch arrays), its id and the augmentation drawn. gt3d has left and right swapped on a
 * flip unless legacy unswappedDepth; aug3d is GenAug3D's back-projection of the augmented 2D.
 */
export type ProcessedSample = { [K in SampleField]: Float32Array } & {
  /** Sample id. */
  id: number;
  /** The augmentation drawn. */
  params: AugParams;
};

/** The raw inputs of one sample. */
export interface LoadedSample {
  /** Annotation files. */
  record: SampleRecord;
  /** Decoded 224x224 image. */
  image: RgbImage;
}

/** Reads all annotation files and the 224x224 image of one sample (DataError on any problem). */
export async function loadSample(root: string, id: number): Promise<LoadedSample> {
  const record = await readSample(root, id);
  const image = await decodeImage(resolveImagePath(root, record), { expectSize: [SOURCE_SIDE, SOURCE_SIDE] });
  return { record, image };
}

/** Draws one augmentation, always consuming four numbers so the stream layout never depends on the ranges. */
export function drawAugParams(rng: Rng, opts: AugmentOptions = {}): AugParams {
  const [lo, hi] = opts.scaleRange ?? [0.7, 1.3];
  const scaleProb = opts.scaleProb ?? 1;
  const maxRot = opts.maxRotateDeg ?? 40;
  const flipProb = opts.flipProb ?? 0.5;
  const d1 = rng.float(), d2 = rng.float(), d3 = rng.float(), d4 = rng.float();
  return {
    scale: d1 < scaleProb ? lo + (hi - lo) * d2 : 1,
    rotateDeg: (d3 - 0.5) * 2 * maxRot,
    flip: d4 < flipProb,
  };
}

/**
 * Whether every augmentation these options draw leaves the sample as it is (no flip, no rotation,
 * scale exactly 1), so that a processed sample is a function of its id alone.
 */
export function isIdentityAugment(augment: SampleOptions["augment"]): boolean {
  if (!augment) return true;
  if (augment === true) return false;
  const [lo, hi] = augment.scaleRange ?? [0.7, 1.3];
  const scaleFixed = (augment.scaleProb ?? 1) === 0 || (lo === 1 && hi === 1);
  return (augment.flipProb ?? 0.5) === 0 && (augment.maxRotateDeg ?? 40) === 0 && scaleFixed;
}

/** The augmentation stream of one sample: a function of (seed, sequence number) only. */
export function sampleRng(seed: number, seq: number): Rng {
  return new Rng((Math.imul(seed >>> 0, 0x9e3779b1) + 0x7f4a7c15) >>> 0, seq >>> 0);
}

/** Turns a loaded sample into network input and labels for the given augmentation. */
export function prepareSample(s: LoadedSample, params: AugParams, opts: SampleOptions = {}): ProcessedSample {
  const rec = s.record;
  const S = opts.inputSize ?? CROP_SIDE;
  const L = legacyFlags(opts.legacy);
  const geo = sampleGeometry(
    {
      centerX: rec.centerX,
      centerY: rec.centerY,
      scale: rec.scale,
      width: s.image.width,
      height: s.image.height,
      bbx: rec.bbx,
    },
    params,
    { inputSize: S, legacyGeometry: L.geometry, legacyBbx: L.cropAsBbx },
  );
  const image = warpToPlanar(s.image, geo.sampleMap, {
    size: S,
    channelOrder: opts.channelOrder,
    footprint: geo.footprint,
  });

  const j2 = selectParts(rec.joints2d, 2);
  const m = geo.jointMap;
  for (let j = 0; j < NUM_JOINTS; j++) {
    const x = j2[2 * j], y = j2[2 * j + 1];
    j2[2 * j] = m[0] * x + m[1] * y + m[2];
    j2[2 * j + 1] = m[3] * x + m[4] * y + m[5];
  }
  const g3 = selectParts(rec.joints3d, 3);
  if (params.flip) {
    swapLeftRight(j2, 2);
    if (!L.unswappedDepth) swapLeftRight(g3, 3);
  }

  const [fx, fy] = rec.camera.f;
  const [cx, cy] = rec.camera.c;
  const r = geo.normToRaw;
  const a3 = new Float64Array(NUM_JOINTS * 3);
  const depth = new Float32Array(NUM_JOINTS);
  const zRoot = g3[3 * ROOT_JOINT + 2];
  for (let j = 0; j < NUM_JOINTS; j++) {
    const un = j2[2 * j], vn = j2[2 * j + 1];
    const u = r[0] * un + r[1] * vn + r[2];
    const v = r[3] * un + r[4] * vn + r[5];
    const z = g3[3 * j + 2];
    a3[3 * j] = (u - cx) / fx * z;
    a3[3 * j + 1] = (v - cy) / fy * z;
    a3[3 * j + 2] = z;
    depth[j] = (z - zRoot - DEPTH_LB) / (DEPTH_UB - DEPTH_LB);
  }
  return {
    id: rec.id,
    image,
    joints2d: Float32Array.from(j2),
    depth,
    gt3d: Float32Array.from(g3),
    aug3d: Float32Array.from(a3),
    camera: Float32Array.of(fx, fy, cx, cy),
    bbx: Float32Array.from(rec.bbx),
    cropToBbx: Float32Array.from(r),
    params,
  };
}

/** Loads and prepares sample `id`; its augmentation comes from sampleRng(seed, seq). */
export async function processSample(
  root: string,
  id: number,
  opts: SampleOptions & { seed?: number; seq?: number },
): Promise<ProcessedSample> {
  const loaded = await loadSample(root, id);
  const params = opts.augment
    ? drawAugParams(sampleRng(opts.seed ?? 0, opts.seq ?? 0), opts.augment === true ? {} : opts.augment)
    : NO_AUG;
  return prepareSample(loaded, params, opts);
}
