/**
 * The batch scorer of evaluation: the pose net of one stage run forward over a batch (and over its
 * mirror image with the flip test), and a small second net that scores, per sample, the mean-pose
 * yardstick, the integral prediction with the GT depth or the GT 2D swapped in (which splits its
 * error between the image plane and depth) and, with the flip test, the flip-averaged
 * predictions. Everything is scored by the same GPU layers as training's monitors.
 * @module
 */
import type { Gpu } from "../kernels/device.ts";
import { Net } from "../graph/net.ts";
import type { Layer, Shape } from "../graph/layer.ts";
import { loadCheckpoint } from "../graph/checkpoint.ts";
import {
  decodeLayers,
  ERROR_BLOBS,
  type LegacyFlags,
  poseNetInputs,
  poseNetLayers,
  scoreLayers,
} from "../graph/models/pose_net.ts";
import { Reshape } from "../graph/layers/reshape.ts";
import { Integral } from "../graph/layers/integral.ts";
import { FLIP_PERMUTATION, NUM_JOINTS, ROOT_JOINT } from "../io/joints.ts";
import type { Method, Metric } from "../io/report.ts";
import { METHODS, METRICS } from "../io/report.ts";
import type { Batch } from "../stages/pipeline.ts";
import { padBatch } from "../stages/pipeline.ts";
import type { PoseNetConfig } from "../graph/models/pose_net.ts";
import { setBatch } from "./batch.ts";

/** Names of the per-sample [B, 16] error blobs, by method and metric. */
export const ERROR_NAMES: Record<Method, Record<Metric, string>> = {
  argmax: {
    mpjpe: ERROR_BLOBS.max.mpjpe,
    mpjpe_rel: ERROR_BLOBS.max.mpjpeRel,
    pa_mpjpe: ERROR_BLOBS.max.paMpjpe,
  },
  integral: {
    mpjpe: ERROR_BLOBS.int.mpjpe,
    mpjpe_rel: ERROR_BLOBS.int.mpjpeRel,
    pa_mpjpe: ERROR_BLOBS.int.paMpjpe,
  },
  baseline: { mpjpe: "err_base_mpjpe", mpjpe_rel: "err_base_rel", pa_mpjpe: "err_base_pa" },
};

/** Names of the per-sample [B, 16, 3] root-relative per-axis error blobs, by method. */
export const AXES_NAMES: Record<Method, string> = {
  argmax: ERROR_BLOBS.max.relAxes,
  integral: ERROR_BLOBS.int.relAxes,
  baseline: "err_base_axes",
};

/** Per-sample root-relative errors of the integral prediction with one half swapped for the GT. */
export const PARTS_NAMES = { gtDepth: "err_int_gtdepth_rel", gt2d: "err_int_gt2d_rel" } as const;

/** Depth-collapsed probability volume: per joint, the sum over depth of prob3d. */
export const PROB_XY = "prob3d_xy";

/** The stage-1 2D heatmap of the hourglass. */
export const HEATMAP_2D = "conv_2_n";

/** Decoded outputs of one pass that the flip test averages. */
const DECODED = ["pred_2d_max", "pred_depth_max", "pred_2d_int", "pred_depth_int"] as const;

/** Every per-sample error blob of one method: each metric's, then the per-axis one. */
function errorBlobs(m: Method): string[] {
  return [...METRICS.map((k) => ERROR_NAMES[m][k]), AXES_NAMES[m]];
}

/** The errors of one sample: per method and metric its 16 joints, per axis, and the swapped-half parts. */
export interface SampleScore {
  errors: Record<Method, Record<Metric, Float32Array>>;
  /** [16, 3] root-relative |difference| per camera axis, by method. */
  axes: Record<Method, Float32Array>;
  parts: { gtDepth: Float32Array; gt2d: Float32Array };
}

/** A scored batch: the (padded) batch, how many of its samples are real, and the blobs read back. */
export interface ScoredBatch {
  batch: Batch;
  /** Real samples (the first `n`; the rest pad the last batch). */
  n: number;
  /** Every blob read back for this batch, by name: error blobs and the extra ones asked for. */
  blobs: Record<string, Float32Array>;
  /** The errors of real sample `b`. */
  sample(b: number): SampleScore;
}

/** Options of {@linkcode BatchScorer.build}. */
export interface ScorerOptions {
  /** The stage's network configuration (with perSampleErrors). */
  net: PoseNetConfig;
  /** Checkpoint prefix of the weights. */
  checkpoint: string;
  /** Run the mirrored image too and average the un-mirrored predictions. */
  flip: boolean;
  /** Batch norm with running statistics (true) or each batch's (false, the seed). */
  runningStats: boolean;
  /** Add the depth-summed probability volume (PROB_XY) to the pose net, for pictures. */
  probXY: boolean;
  /** Blobs that may be read back besides the errors (decoded predictions, heatmaps, dumps). */
  extra: readonly string[];
  /** Seed of the (unused) parameter initialisers. */
  seed: number;
  /** Prewarm the main net's kernels on a second device (BuildOptions.prewarm). */
  prewarm?: boolean;
}

/** A blob asked of the scorer that neither net has. */
export class BlobError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BlobError";
  }
}

/** Blob names a net definition can produce: inputs and every layer top. */
function blobNamesOf(def: { inputs: Record<string, Shape>; layers: Layer[] }): string[] {
  return [...Object.keys(def.inputs), ...def.layers.flatMap((l) => l.tops)];
}

/**
 * The second net: the baseline pose scored by PoseErrors; the integral prediction decoded with the
 * GT depth and with the GT 2D; with the flip test, the decode and scores of the flip-averaged
 * coordinates of both decoders.
 */
function auxNetDef(o: { batch: number; flip: boolean; legacy: LegacyFlags }): {
  inputs: Record<string, Shape>;
  layers: Layer[];
} {
  const B = o.batch, J = NUM_JOINTS;
  const inputs: Record<string, Shape> = {
    base3d: [B, J, 3],
    gt3d: [B, J, 3],
    aug3d: [B, J, 3],
    camera: [B, 4],
    [o.legacy.cropAsBbx ? "bbx" : "cropToBbx"]: o.legacy.cropAsBbx ? [B, 4] : [B, 6],
    joints2d: [B, J, 2],
    depth: [B, J],
    pred_2d_int: [B, J, 2],
    pred_depth_int: [B, J],
  };
  const e = ERROR_NAMES.baseline;
  const layers: Layer[] = scoreLayers("base", "base3d", {
    perSample: true,
    seed: { mpjpe: e.mpjpe },
    rel: { mpjpeRel: e.mpjpe_rel, paMpjpe: e.pa_mpjpe, relAxes: AXES_NAMES.baseline },
  });
  const swaps = [
    { part: "gtDepth", joints2d: "pred_2d_int", depth: "depth" },
    { part: "gt2d", joints2d: "joints2d", depth: "pred_depth_int" },
  ] as const;
  for (const w of swaps) {
    const tag = `int_${w.part}`;
    layers.push(
      ...decodeLayers(tag, { joints2d: w.joints2d, depth: w.depth, legacy: o.legacy }),
      ...scoreLayers(tag, `pred_3d_${tag}`, { perSample: true, rel: { mpjpeRel: PARTS_NAMES[w.part] } }),
    );
  }
  if (o.flip) {
    Object.assign(inputs, { pred_2d_max: [B, J, 2], pred_depth_max: [B, J] });
    for (const dec of ["max", "int"] as const) {
      const m: Method = dec === "max" ? "argmax" : "integral";
      layers.push(
        ...decodeLayers(dec, { joints2d: `pred_2d_${dec}`, depth: `pred_depth_${dec}`, legacy: o.legacy }),
        ...scoreLayers(dec, `pred_3d_${dec}`, {
          perSample: true,
          seed: { mpjpe: ERROR_NAMES[m].mpjpe },
          rel: {
            mpjpeRel: ERROR_NAMES[m].mpjpe_rel,
            paMpjpe: ERROR_NAMES[m].pa_mpjpe,
            relAxes: AXES_NAMES[m],
          },
        }),
      );
    }
  }
  return { inputs, layers };
}

/** The planar images mirrored left-right. */
export function mirrorImages(image: Float32Array, side: number): Float32Array {
  const out = new Float32Array(image.length);
  for (let row = 0; row < image.length / side; row++) {
    const o = row * side;
    for (let x = 0; x < side; x++) out[o + x] = image[o + side - 1 - x];
  }
  return out;
}

/**
 * Averages a pass on the original image with a pass on its mirror image: the mirror pass's
 * joint j is the person's FLIP_PERMUTATION[j], and its x is measured from the other side
 * (norm x -> 1 - x). Depth is unchanged by a horizontal mirror.
 */
export function averageFlipped(
  plain: { joints2d: Float32Array; depth: Float32Array },
  mirrored: { joints2d: Float32Array; depth: Float32Array },
): { joints2d: Float32Array; depth: Float32Array } {
  const J = NUM_JOINTS, B = plain.depth.length / J;
  const joints2d = new Float32Array(plain.joints2d.length), depth = new Float32Array(plain.depth.length);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < J; j++) {
      const i = b * J + j, m = b * J + FLIP_PERMUTATION[j];
      joints2d[2 * i] = 0.5 * (plain.joints2d[2 * i] + 1 - mirrored.joints2d[2 * m]);
      joints2d[2 * i + 1] = 0.5 * (plain.joints2d[2 * i + 1] + mirrored.joints2d[2 * m + 1]);
      depth[i] = 0.5 * (plain.depth[i] + mirrored.depth[m]);
    }
  }
  return { joints2d, depth };
}

/** The mean root-relative pose placed at each sample's GT root: [B, 16, 3] mm. */
function baselineAtRoots(pose: Float64Array, gt3d: Float32Array, B: number): Float32Array {
  const J = NUM_JOINTS, out = new Float32Array(B * J * 3);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < J; j++) {
      for (let c = 0; c < 3; c++) {
        out[(b * J + j) * 3 + c] = pose[3 * j + c] + gt3d[(b * J + ROOT_JOINT) * 3 + c];
      }
    }
  }
  return out;
}

/** Scores batches with a checkpoint's pose net and the auxiliary net. */
export class BatchScorer {
  readonly #main: Net;
  readonly #aux: Net;
  readonly #o: ScorerOptions;
  readonly #fromAux: Set<string>;

  private constructor(main: Net, aux: Net, o: ScorerOptions, fromAux: Set<string>) {
    this.#main = main;
    this.#aux = aux;
    this.#o = o;
    this.#fromAux = fromAux;
  }

  /** Builds both nets and loads the checkpoint; an extra blob neither net produces is an error naming it. */
  static async build(gpu: Gpu, o: ScorerOptions): Promise<BatchScorer> {
    const cfg = o.net, B = cfg.batch, J = NUM_JOINTS, d2 = cfg.model.d2, side = cfg.model.inputSize / 4;
    const layers = poseNetLayers(cfg);
    if (o.probXY) {
      // Sum over depth on the GPU: each joint's cube seen as [D, 1, S*S], marginalised over D.
      layers.push(
        new Reshape("prob3d_cubes", {
          bottom: "prob3d",
          top: "prob3d_cubes",
          shape: [B * J, d2, 1, side * side],
        }),
        new Integral(PROB_XY, { bottom: "prob3d_cubes", top: PROB_XY, axis: "x" }),
      );
    }
    const mainDef = { name: `eval-d${d2}`, inputs: poseNetInputs(cfg), layers };
    const auxDef = auxNetDef({ batch: B, flip: o.flip, legacy: cfg.legacy });
    const mainNames = new Set(blobNamesOf(mainDef)), auxNames = new Set(blobNamesOf(auxDef));
    for (const name of o.extra) {
      if (!mainNames.has(name) && !auxNames.has(name)) {
        const avail = [...new Set([...mainNames, ...auxNames])].sort();
        throw new BlobError(`no blob "${name}"; available: ${avail.join(", ")}`);
      }
    }
    // With the flip test the decoded and scored predictions come from the aux net.
    const fromAux = new Set(o.extra.filter((n) => auxNames.has(n) && (o.flip || !mainNames.has(n))));
    const keep = new Set<string>([
      "pred_2d_int",
      "pred_depth_int",
      ...o.extra.filter((n) => !fromAux.has(n)),
    ]);
    if (o.flip) DECODED.forEach((n) => keep.add(n));
    const main = await Net.build(gpu, mainDef, {
      train: false,
      keep: [...keep],
      globalStats: o.runningStats,
      seed: o.seed,
      prewarm: o.prewarm,
    });
    let aux: Net | null = null;
    try {
      aux = await Net.build(gpu, { name: "eval-aux", ...auxDef }, { train: false });
      await loadCheckpoint(main, o.checkpoint, { strict: true, solverState: false, log: () => {} });
      return new BatchScorer(main, aux, o, fromAux);
    } catch (e) {
      main.destroy();
      aux?.destroy();
      throw e;
    }
  }

  /**
   * Scores one batch (a short one is padded by repeating its samples) and reads back the `extra`
   * blobs of `want` (default none).
   */
  async score(raw: Batch, baselinePose: Float64Array, want: readonly string[] = []): Promise<ScoredBatch> {
    const { flip } = this.#o, B = this.#o.net.batch, S = this.#o.net.model.inputSize;
    const extra = [...new Set(want)];
    for (const name of extra) {
      if (!this.#o.extra.includes(name)) {
        throw new Error(`blob "${name}" was not asked for when the scorer was built`);
      }
    }
    const main = this.#main, aux = this.#aux;
    const batch = padBatch(raw, B);
    const read = async (names: readonly string[], from: Net) =>
      Object.fromEntries(await Promise.all(names.map(async (k) => [k, await from.read(k)] as const)));
    setBatch(main, batch);
    main.forward();
    // Main-net values are read before a mirrored pass reuses its buffers.
    const fromMain = [
      ...(flip ? [] : (["argmax", "integral"] as const).flatMap(errorBlobs)),
      ...extra.filter((n) => !this.#fromAux.has(n)),
    ];
    const blobs: Record<string, Float32Array> = await read(fromMain, main);
    aux.setInput("base3d", baselineAtRoots(baselinePose, batch.gt3d, B));
    for (const k of ["gt3d", "aug3d", "camera", "joints2d", "depth"] as const) aux.setInput(k, batch[k]);
    if (this.#o.net.legacy.cropAsBbx) aux.setInput("bbx", batch.bbx);
    else aux.setInput("cropToBbx", batch.cropToBbx);
    if (!flip) {
      const decoded = await read(["pred_2d_int", "pred_depth_int"], main);
      aux.setInput("pred_2d_int", decoded.pred_2d_int);
      aux.setInput("pred_depth_int", decoded.pred_depth_int);
    } else {
      const plain = await read(DECODED, main);
      main.setInput("image", mirrorImages(batch.image, S));
      main.forward();
      const mirrored = await read(DECODED, main);
      for (const dec of ["max", "int"] as const) {
        const avg = averageFlipped(
          { joints2d: plain[`pred_2d_${dec}`], depth: plain[`pred_depth_${dec}`] },
          { joints2d: mirrored[`pred_2d_${dec}`], depth: mirrored[`pred_depth_${dec}`] },
        );
        aux.setInput(`pred_2d_${dec}`, avg.joints2d);
        aux.setInput(`pred_depth_${dec}`, avg.depth);
      }
    }
    aux.forward();
    const fromAux = [
      ...METHODS.filter((m) => flip || m === "baseline").flatMap(errorBlobs),
      ...Object.values(PARTS_NAMES),
      ...extra.filter((n) => this.#fromAux.has(n)),
    ];
    Object.assign(blobs, await read(fromAux, aux));
    const J = NUM_JOINTS;
    return {
      batch,
      n: raw.size,
      blobs,
      sample(b: number): SampleScore {
        const rows = (name: string, w: number) => blobs[name].subarray(b * w, (b + 1) * w);
        const errors = {} as SampleScore["errors"], axes = {} as SampleScore["axes"];
        for (const m of METHODS) {
          errors[m] = {} as Record<Metric, Float32Array>;
          for (const k of METRICS) errors[m][k] = rows(ERROR_NAMES[m][k], J);
          axes[m] = rows(AXES_NAMES[m], J * 3);
        }
        return {
          errors,
          axes,
          parts: { gtDepth: rows(PARTS_NAMES.gtDepth, J), gt2d: rows(PARTS_NAMES.gt2d, J) },
        };
      },
    };
  }

  /** The shape of a blob of either net. */
  shape(name: string): Shape {
    return this.#fromAux.has(name) ? this.#aux.shape(name) : this.#main.shape(name);
  }

  /** Waits for the GPU. */
  async sync(): Promise<void> {
    await this.#main.sync();
  }

  /** Frees both nets. */
  destroy(): void {
    this.#main.destroy();
    this.#aux.destroy();
  }
}
