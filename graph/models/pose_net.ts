/**
 * The full pose network of one coarse-to-fine stage, as the seed's train/test prototxt wires it
 * (SEED_SPEC §3 steps 8-9, §5.4-§5.6): GPU-rendered 2D and volumetric targets from the batch's
 * joints, the hourglass, the weighted heatmap losses (plus the optional ones), and the monitors —
 * 3D argmax and x50-softmax integral decoding, depth decoding, back-projection with the camera,
 * and the metrics. Everything here runs inside the one recorded training step.
 * @module
 */
import type { Layer, Shape } from "../layer.ts";
import { EuclideanLoss } from "../layers/euclidean_loss.ts";
import { HeatmapTarget, VolumeTarget } from "../layers/heatmap_target.ts";
import { SoftmaxHM } from "../layers/softmax_hm.ts";
import { SoftArgmax } from "../layers/integral.ts";
import { Argmax } from "../layers/argmax.ts";
import { DepthDecode, GenPredMono3D } from "../layers/geometry.ts";
import { PoseErrors, PoseMetrics } from "../layers/metrics.ts";
import { IntegralCoordLoss, JSRegularizationLoss, SmoothL1Loss } from "../layers/pose_losses.ts";
import { type HourglassConfig, hourglassLayers } from "./hourglass.ts";
import { NUM_JOINTS } from "../../io/joints.ts";
import { SAMPLE_FIELD_NAMES, SAMPLE_FIELDS } from "../../io/sample_fields.ts";

/** The seed's 3D heatmap loss weight per d2 (SEED_SPEC §5.5; d2 = 2 is 0.3 in the prototxt). */
export function heatmap3dWeight(d2: number, opts: { readmeD2?: boolean } = {}): number {
  if (d2 <= 2) return opts.readmeD2 ? 0.1 : 0.3;
  if (d2 <= 4) return 0.3;
  if (d2 <= 8) return 0.1;
  return 0.03;
}

/** Loss weights; 0 keeps a loss as a monitor with no backward (as Caffe prunes it). */
export interface LossConfig {
  /** L2 on each intermediate 2D heatmap (1.0 in the seed). */
  heatmap2d: number;
  /** L2 on the volumetric heatmap (the seed's ratio per d2 by default). */
  heatmap3d: number;
  /** Integral (soft-argmax) coordinate loss on the decoded joints: trains the x50 softmax path. */
  integral: number;
  /** L1 or L2 for the integral loss. */
  integralNorm: "l1" | "l2";
  /** Smooth L1 on both heatmaps (weight 0 in the seed). */
  smoothL1: number;
  /** Jensen-Shannon between softmaxed prediction and the normalised target volume (weight 0 in the seed). */
  js: number;
}

/** Which of the seed's bug families to reproduce (SEED_SPEC §8); all false is the clean default. */
export interface LegacyFlags {
  /** Half-cell placement and depth-bin rules of the target renderers (§8.2, §8.16). */
  heatmaps: boolean;
  /** The mismatched decoding bounds (§8.1). */
  depthBounds: boolean;
  /** Back-project as if the 256 crop were the bbx (§8.3). */
  cropAsBbx: boolean;
  /** Softmax without max subtraction and with the diagonal backward (§8.12). */
  softmax: boolean;
}

/** No legacy behaviour. */
export const CLEAN: LegacyFlags = { heatmaps: false, depthBounds: false, cropAsBbx: false, softmax: false };

/** Everything needed to build one stage's network. */
export interface PoseNetConfig {
  model: HourglassConfig;
  batch: number;
  losses: LossConfig;
  /** Pre-scale of the volumetric heatmap before the 3D softmax (50 in the seed). */
  softmaxScale: number;
  legacy: LegacyFlags;
  /**
   * Add per-sample error outputs for evaluation (argmax and integral): [B,16] for every metric and
   * [B,16,3] per camera axis.
   */
  perSampleErrors?: boolean;
  /**
   * The pose the root-relative and PA monitors compare with: "gt3d" (default, the true GT) or
   * "aug3d", the augmented 2D back-projected with the GT depth, which is what an augmented
   * (rotated, scaled, mirrored) training image shows.
   */
  monitorGt?: "gt3d" | "aug3d";
}

/** Names of the per-sample error outputs, by decoder and metric. */
export const ERROR_BLOBS = {
  max: { mpjpe: "err_max_mpjpe", mpjpeRel: "err_max_rel", paMpjpe: "err_max_pa", relAxes: "err_max_axes" },
  int: { mpjpe: "err_int_mpjpe", mpjpeRel: "err_int_rel", paMpjpe: "err_int_pa", relAxes: "err_int_axes" },
} as const;

/** Net inputs: every per-sample field of a pipeline Batch, by the same name, B samples. */
export function poseNetInputs(cfg: PoseNetConfig): Record<string, Shape> {
  return Object.fromEntries(
    SAMPLE_FIELD_NAMES.map((f) => [f, [cfg.batch, ...SAMPLE_FIELDS[f](cfg.model.inputSize)]]),
  );
}

/** Builds the layer list of one stage. */
export function poseNetLayers(cfg: PoseNetConfig): Layer[] {
  const { model, losses, legacy } = cfg;
  if (model.joints !== NUM_JOINTS) {
    throw new RangeError(`pose net: ${NUM_JOINTS} joints expected, got ${model.joints}`);
  }
  const side = model.inputSize / 4;
  const D = model.d2;
  const hg = hourglassLayers(model);
  const layers: Layer[] = [];
  // Targets, rendered on the GPU from the joints of this batch.
  layers.push(
    new HeatmapTarget("label_2dhm", {
      bottom: "joints2d",
      top: "label_2dhm",
      size: side,
      legacy: legacy.heatmaps,
    }),
  );
  layers.push(
    new VolumeTarget("label_3dhm", {
      bottoms: ["joints2d", "depth"],
      top: "label_3dhm",
      depthBins: D,
      size: side,
      legacy: legacy.heatmaps,
    }),
  );
  layers.push(...hg.layers);
  const heatmap2 = hg.blobs.heatmaps[hg.blobs.heatmaps.length - 1];
  // Heatmap losses: every intermediate stack's 2D map and the last stack's volume.
  hg.blobs.heatmaps.slice(0, -1).forEach((hm, s) => {
    const name = s === 0 ? "loss_2dhm" : `loss_2dhm_s${s + 1}`;
    layers.push(
      new EuclideanLoss(name, { pred: hm, target: "label_2dhm", top: name, weight: losses.heatmap2d }),
    );
    if (model.d1 !== 1) throw new RangeError("pose net: intermediate stacks with d1 > 1 are not supported");
  });
  layers.push(
    new EuclideanLoss("loss_3dhm", {
      pred: heatmap2,
      target: "label_3dhm",
      top: "loss_3dhm",
      weight: losses.heatmap3d,
    }),
  );
  if (losses.smoothL1 > 0) {
    layers.push(
      new SmoothL1Loss("loss_3dhm_smoothL1", {
        pred: heatmap2,
        target: "label_3dhm",
        top: "loss_3dhm_smoothL1",
        weight: losses.smoothL1,
      }),
    );
  }
  // Integral path: x50 softmax over each joint's cube, expectation of cell centres.
  layers.push(
    new SoftmaxHM("heatmap2_softmax", {
      bottom: heatmap2,
      top: "prob3d",
      depthBins: D,
      scale: cfg.softmaxScale,
      legacy: legacy.softmax,
    }),
  );
  layers.push(
    new SoftArgmax("integral", { bottom: "prob3d", tops: ["pred_2d_int", "pred_depth_int"], depthBins: D }),
  );
  if (losses.integral > 0) {
    layers.push(
      new IntegralCoordLoss("loss_int_2d", {
        pred: "pred_2d_int",
        target: "joints2d",
        top: "loss_int_2d",
        weight: losses.integral,
        norm: losses.integralNorm,
      }),
      new IntegralCoordLoss("loss_int_depth", {
        pred: "pred_depth_int",
        target: "depth",
        top: "loss_int_depth",
        weight: losses.integral,
        norm: losses.integralNorm,
      }),
    );
  }
  if (losses.js > 0) {
    layers.push(
      new SoftmaxHM("label_3dhm_norm", {
        bottom: "label_3dhm",
        top: "label_3dhm_prob",
        depthBins: D,
        scale: cfg.softmaxScale,
      }),
    );
    layers.push(
      new JSRegularizationLoss("js_2_3dhm", {
        p: "prob3d",
        q: "label_3dhm_prob",
        top: "js_2_3dhm",
        weight: losses.js,
      }),
    );
  }
  // Argmax path on the raw volume.
  layers.push(
    new Argmax("argmax3d", { bottom: heatmap2, tops: ["pred_2d_max", "pred_depth_max"], depthBins: D }),
  );
  // Decode, back-project and measure, for both decoders.
  for (const dec of ["max", "int"] as const) {
    const pred = `pred_3d_${dec}`;
    layers.push(
      ...decodeLayers(dec, { joints2d: `pred_2d_${dec}`, depth: `pred_depth_${dec}`, legacy }),
      // The seed's figure against the back-projected GT (§7: absolute camera-frame error); the standard
      // ones against the true GT (or, on augmented training batches, what the image shows).
      ...scoreLayers(dec, pred, {
        perSample: false,
        seed: { mpjpe: `mpjpe_${dec}` },
        gt: cfg.monitorGt ?? "gt3d",
        rel: {
          mpjpeRel: `mpjpe_rel_${dec}`,
          paMpjpe: `pa_mpjpe_${dec}`,
          mpjpeRelJoints: `mpjpe_rel_joints_${dec}`,
        },
      }),
    );
    if (cfg.perSampleErrors) {
      const e = ERROR_BLOBS[dec];
      layers.push(...scoreLayers(dec, pred, {
        perSample: true,
        seed: { mpjpe: e.mpjpe },
        rel: { mpjpeRel: e.mpjpeRel, paMpjpe: e.paMpjpe, relAxes: e.relAxes },
      }));
    }
  }
  return layers;
}

/**
 * Decoding of one prediction to camera-frame millimetres: its encoded depth to mm around the GT
 * root (`depth_mm_<tag>`), then the pinhole back-projection of its crop 2D with that depth
 * (`pred_3d_<tag>`), with the run's legacy switches.
 */
export function decodeLayers(
  tag: string,
  o: { joints2d: string; depth: string; legacy: LegacyFlags },
): Layer[] {
  return [
    new DepthDecode(`depth_mm_${tag}`, {
      depth: o.depth,
      rootFrom: "gt3d",
      top: `depth_mm_${tag}`,
      legacy: o.legacy.depthBounds,
    }),
    new GenPredMono3D(`pred_3d_${tag}`, {
      joints2d: o.joints2d,
      depth: `depth_mm_${tag}`,
      camera: "camera",
      crop: o.legacy.cropAsBbx ? "bbx" : "cropToBbx",
      top: `pred_3d_${tag}`,
      legacy: o.legacy.cropAsBbx,
    }),
  ];
}

/**
 * The scores of a 3D prediction: the seed's absolute MPJPE against the back-projected GT (aug3d)
 * and the root-relative ones against `gt` (default gt3d). `perSample` gives per-sample [B, 16]
 * outputs (PoseErrors `errors_[seed_]<tag>`, for evaluation) instead of batch means accumulated on the
 * GPU (PoseMetrics `metric_[seed_]<tag>`).
 */
export function scoreLayers(
  tag: string,
  pred: string,
  o: {
    perSample: boolean;
    seed?: { mpjpe: string };
    gt?: "gt3d" | "aug3d";
    rel?: { mpjpeRel?: string; paMpjpe?: string; relAxes?: string; mpjpeRelJoints?: string };
  },
): Layer[] {
  const out: Layer[] = [];
  const make = (layer: string, gt: string, tops: Record<string, string>) =>
    o.perSample ? new PoseErrors(layer, { pred, gt, tops }) : new PoseMetrics(layer, { pred, gt, tops });
  const kind = o.perSample ? "errors" : "metric";
  if (o.seed) out.push(make(`${kind}_seed_${tag}`, "aug3d", o.seed));
  if (o.rel) out.push(make(`${kind}_${tag}`, o.gt ?? "gt3d", o.rel as Record<string, string>));
  return out;
}
