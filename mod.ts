/**
 * volpose: coarse-to-fine volumetric 3D human pose estimation on WebGPU.
 *
 * The public API for `deno run` scripts: open a device, build a network from layers, run any
 * layer on Float32Arrays, read and write the seed's on-disk layout, stream augmented batches,
 * load checkpoints, and train and evaluate whole runs. The command-line tasks (train, eval, synth,
 * inspect, bench) are thin shells over the same functions.
 *
 * @example Decode a saved volumetric heatmap into 3D joints
 * ```ts
 * import { runLayer, SoftArgmax, SoftmaxHM } from "./mod.ts";
 * const D = 16, volume = { shape: [1, 16 * D, 64, 64], data: new Float32Array(16 * D * 64 * 64) };
 * const { prob } = await runLayer(new SoftmaxHM("sm", { bottom: "v", top: "prob", depthBins: D, scale: 50 }), { v: volume });
 * const { xyz } = await runLayer(new SoftArgmax("sa", { bottom: "prob", top: "xyz", depthBins: D }), { prob });
 * console.log(xyz.data); // 16 x (x, y, z) in normalised crop / depth units
 * ```
 * @module
 */

// Engine
export { describeGpu, type Gpu, GpuError, NoGpuError, openGpu, sharedGpu } from "./kernels/device.ts";
export { type BuildOptions, Net, type NetDef } from "./graph/net.ts";
export {
  type BackwardContext,
  type ForwardContext,
  Layer,
  numel,
  type ParamDecl,
  type SetupContext,
  type Shape,
  ShapeError,
} from "./graph/layer.ts";
export { runLayer, type RunLayerOptions, type ShapedArray } from "./graph/ops.ts";
export { Adam, learningRate, type LrPolicy, RMSProp, SGD, type Solver } from "./graph/solver.ts";
export { fill, type Filler } from "./graph/fillers.ts";
export { Rng } from "./io/prng.ts";
export { createRegion, download, upload } from "./graph/tensor.ts";
export {
  findLatestCheckpoint,
  formatLoadReport,
  loadCheckpoint,
  saveCheckpoint,
} from "./graph/checkpoint.ts";

// Layers
export { Convolution } from "./graph/layers/convolution.ts";
export { Deconvolution } from "./graph/layers/deconvolution.ts";
export { BatchNorm } from "./graph/layers/batch_norm.ts";
export { GroupNorm } from "./graph/layers/group_norm.ts";
export { Scale } from "./graph/layers/scale.ts";
export { ReLU } from "./graph/layers/relu.ts";
export { MaxPool } from "./graph/layers/pool.ts";
export { Upsample } from "./graph/layers/upsample.ts";
export { Eltwise } from "./graph/layers/eltwise.ts";
export { Concat, Slice } from "./graph/layers/concat_slice.ts";
export { Flatten, Reshape } from "./graph/layers/reshape.ts";
export { AddVectorByConstant, AddVectorBySingleVector, ScaleVector } from "./graph/layers/vector_ops.ts";
export { EuclideanLoss } from "./graph/layers/euclidean_loss.ts";
export {
  AdaptiveWeightEuclideanLoss,
  IntegralCoordLoss,
  JSRegularizationLoss,
  SmoothL1Loss,
} from "./graph/layers/pose_losses.ts";
export { HeatmapTarget, VolumeTarget } from "./graph/layers/heatmap_target.ts";
export { SoftmaxHM } from "./graph/layers/softmax_hm.ts";
export { NormalizeHM } from "./graph/layers/normalize_hm.ts";
export {
  Integral,
  IntegralVector,
  NumericalCoordinateRegression,
  SoftArgmax,
} from "./graph/layers/integral.ts";
export { Argmax } from "./graph/layers/argmax.ts";
export { DepthDecode, DepthEncode, GenAug3D, GenPredMono3D, Project } from "./graph/layers/geometry.ts";
export { PoseErrors, PoseMetrics } from "./graph/layers/metrics.ts";

// Models
export { headStd, type HourglassConfig, hourglassLayers } from "./graph/models/hourglass.ts";
export {
  CLEAN,
  decodeLayers,
  heatmap3dWeight,
  type LegacyFlags,
  type LossConfig,
  type PoseNetConfig,
  poseNetInputs,
  poseNetLayers,
  scoreLayers,
} from "./graph/models/pose_net.ts";

// Data
export * from "./io/joints.ts";
export { DataError } from "./io/errors.ts";
export { readSample, resolveImagePath, type SampleRecord, writeSample } from "./io/sample_files.ts";
export { actionOf, readIdList, readProtocol2, readRangeTable, SEED_SPLITS } from "./io/index_ranges.ts";
export { datasetSplits, readManifest } from "./io/manifest.ts";
export { decodeImage, encodePng } from "./io/images.ts";
export { ensureDefaultDataset } from "./io/dataset_cache.ts";
export { SAMPLE_FIELD_NAMES, SAMPLE_FIELDS, type SampleField } from "./io/sample_fields.ts";
export { type Batch, createPipeline, type Pipeline, type PipelineOptions } from "./stages/pipeline.ts";
export { sampleIds } from "./stages/sources.ts";

// Runs: presets, configurations, training and evaluation
export { modelConfig, type Preset, preset, PRESETS } from "./run/presets.ts";
export {
  LEGACY_SWITCHES,
  legacyFlags,
  parseRunConfig,
  type RunConfig,
  runConfig,
  type RunLegacy,
  type RunOverrides,
  stageNetConfig,
} from "./run/config.ts";
export { setBatch } from "./run/batch.ts";
export { newestRun, openRun, resolveCheckpoint } from "./run/run_dir.ts";
export { train, type TrainOptions, type TrainResult } from "./run/train.ts";
export { type EvalOptions, type EvalResult, evaluate } from "./run/evaluate.ts";
