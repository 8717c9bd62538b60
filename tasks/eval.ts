/**
 * `deno task eval`: evaluates a trained run on the test split (SEED_SPEC §7).
 *
 * The network of the checkpoint's stage runs forward over a seeded random subset, the full test
 * split or the Protocol-2 list; its metric layers return per-sample per-joint errors for both
 * decoders (3D argmax and x50-softmax integral), against the back-projected GT as the seed
 * measures, root-relative and after Procrustes alignment. A mean-pose yardstick is scored by
 * the same GPU metric layers on the same samples. Errors are aggregated per action, per joint and
 * overall into report.json, report.md and a terminal table; optional pictures, an HTML index and
 * the seed's per-sample blob dumps are written alongside.
 * @module
 */
import { parseArgs } from "node:util";
import { join, resolve } from "node:path";
import { describeGpu, type Gpu, openGpu } from "../kernels/device.ts";
import { Net } from "../graph/net.ts";
import type { Layer, Shape } from "../graph/layer.ts";
import { checkpointPaths, findLatestCheckpoint, loadCheckpoint } from "../graph/checkpoint.ts";
import { readSafetensorsHeader } from "../graph/safetensors.ts";
import { ERROR_BLOBS, type LegacyFlags, poseNetInputs, poseNetLayers } from "../graph/models/pose_net.ts";
import { newestRun, parseRunConfig, pipelineLegacy, type RunConfig, stageNetConfig } from "../run/config.ts";
import { DepthDecode, GenPredMono3D } from "../graph/layers/geometry.ts";
import { PoseErrors } from "../graph/layers/metrics.ts";
import { Reshape } from "../graph/layers/reshape.ts";
import { Integral } from "../graph/layers/integral.ts";
import { Rng } from "../graph/prng.ts";
import { allocBatch, type Batch, createPipeline } from "../stages/pipeline.ts";
import { sequentialIds } from "../stages/sources.ts";
import { setBatch } from "../run/batch.ts";
import { countIds, type IdRange, readIdList } from "../io/index_ranges.ts";
import { datasetSplits, indexRangeDir } from "../io/manifest.ts";
import { readSample } from "../io/sample_files.ts";
import { ACTIONS, FLIP_PERMUTATION, NUM_JOINTS, ROOT_JOINT, selectParts } from "../io/joints.ts";
import { formatFixed } from "../io/sample_files.ts";
import { formatDuration, ProgressBar } from "../io/progress.ts";
import {
  ErrorAccumulator,
  type EvalMeta,
  type EvalReport,
  formatReportJson,
  formatReportMarkdown,
  formatReportTable,
  meanOverJoints,
  type Method,
  METHODS,
  type Metric,
  METRICS,
  type SampleErrors,
} from "../io/report.ts";
import {
  drawCropOverlay,
  drawHeatmapTiles,
  drawSkeleton3d,
  type VisEntry,
  visIndexHtml,
  writeCanvasPng,
} from "../io/vis.ts";

/** Which test samples to evaluate. */
export type EvalSubset = "random" | "full" | "protocol2";

/** Options of {@linkcode evaluate}. */
export interface EvalOptions {
  /** Run folder (config.json, checkpoints/); default: the newest run under `runsRoot`. */
  run?: string;
  /** Folder searched for the newest run (default "runs"). */
  runsRoot?: string;
  /** Checkpoint prefix (or either file); default: the run's latest. */
  checkpoint?: string;
  /** Dataset root; default: the run's. */
  data?: string;
  /** Output folder; default <run>/eval-<subset>[-flip][-running][-iterN]. */
  out?: string;
  /** Default "random". */
  subset?: EvalSubset;
  /** Size of the random subset (default 600). */
  samples?: number;
  /** Seed of the random subset (default 1). */
  seed?: number;
  /** Samples per forward pass (default 3, as the seed's test). */
  batch?: number;
  /** Batch norm with each batch's statistics (the seed) or the running ones. Default "batch". */
  stats?: "batch" | "running";
  /** Also run the mirrored image and average the un-mirrored decoded coordinates. */
  flip?: boolean;
  /** Pipeline workers (default: all cores; 0 = in this thread). */
  workers?: number;
  /** Write pictures for the first this many samples (default 0). */
  vis?: number;
  /** Decoder shown in the pictures (default "int"). */
  visDecoder?: "max" | "int";
  /** Blobs to dump per sample as the seed's OutputBlob does. */
  dump?: string[];
  /** Training samples averaged into the baseline pose (default 2000). */
  baselineSamples?: number;
  /** Device (default: open one). */
  gpu?: Gpu;
  /** Show the progress bar (default true). */
  progress?: boolean;
  /** Log lines (default stderr). */
  log?: (line: string) => void;
}

/** What {@linkcode evaluate} returns. */
export interface EvalResult {
  /** The report, as written to report.json. */
  report: EvalReport;
  /** The output folder. */
  outDir: string;
}

/** Names of the per-sample [B, 16] error blobs, by method and metric. */
const ERROR_NAMES: Record<Method, Record<Metric, string>> = {
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
const AXES_NAMES: Record<Method, string> = {
  argmax: ERROR_BLOBS.max.relAxes,
  integral: ERROR_BLOBS.int.relAxes,
  baseline: "err_base_axes",
};

/** Every per-sample error blob of one method: each metric's, then the per-axis one. */
function errorBlobs(m: Method): string[] {
  return [...METRICS.map((k) => ERROR_NAMES[m][k]), AXES_NAMES[m]];
}

/** Decoded outputs of one pass that the flip test averages. */
const DECODED = ["pred_2d_max", "pred_depth_max", "pred_2d_int", "pred_depth_int"] as const;

/** Depth-collapsed probability volume: per joint, the sum over depth of prob3d. */
const PROB_XY = "prob3d_xy";
/** The stage-1 2D heatmap of the hourglass. */
const HEATMAP_2D = "conv_2_n";

// ---------------------------------------------------------------------------------------------
// Locating the run, its checkpoint and its data

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The checkpoint to evaluate: the given prefix (checked), or the run's latest. */
async function resolveCheckpoint(
  runDir: string,
  explicit?: string,
): Promise<{ prefix: string; iter: number }> {
  const weightsIter = async (prefix: string) => {
    const h = await readSafetensorsHeader(checkpointPaths(prefix).weights);
    const n = Number(h.metadata.iter);
    return Number.isSafeInteger(n) ? n : -1;
  };
  if (explicit) {
    const prefix = explicit.replace(/\.solverstate\.safetensors$|\.safetensors$/, "");
    const w = checkpointPaths(prefix).weights;
    if (!(await exists(w))) {
      throw new Error(
        `checkpoint ${w} not found: --checkpoint expects a prefix such as ${
          join(runDir, "checkpoints", "net_iter_N")
        } (or either of its files)`,
      );
    }
    return { prefix, iter: await weightsIter(prefix) };
  }
  const dir = join(runDir, "checkpoints");
  const found = await findLatestCheckpoint(dir);
  if (found) return found;
  // Weights without their solver state still evaluate.
  let best: { prefix: string; iter: number } | null = null;
  try {
    for await (const d of Deno.readDir(dir)) {
      const m = /^(.*_iter_(\d+))\.safetensors$/.exec(d.name);
      if (
        d.isFile && m && !d.name.endsWith(".solverstate.safetensors") && (!best || Number(m[2]) > best.iter)
      ) {
        best = { prefix: join(dir, m[1]), iter: Number(m[2]) };
      }
    }
  } catch { /* no folder: reported below */ }
  if (!best) {
    throw new Error(
      `no checkpoint in ${dir}: expected net_iter_<N>.safetensors written by deno task train (or give --checkpoint PREFIX)`,
    );
  }
  return best;
}

/** Depth bins of the checkpoint's volumetric head (conv_5_d{D}); the last stage's if unnamed. */
async function checkpointDepth(prefix: string, cfg: RunConfig): Promise<number> {
  const h = await readSafetensorsHeader(checkpointPaths(prefix).weights);
  for (const k of h.tensors.keys()) {
    const m = /^conv_5_d(\d+)\.weight$/.exec(k);
    if (m) return Number(m[1]);
  }
  return cfg.schedule[cfg.schedule.length - 1].d2;
}

/** The ids of a subset, in evaluation order. */
async function subsetIds(
  root: string,
  o: { subset: EvalSubset; samples: number; seed: number },
): Promise<{ ids: Iterable<number>; count: number }> {
  if (o.subset === "protocol2") {
    const path = join(await indexRangeDir(root), "Protocol2", "all_id.txt");
    if (!(await exists(path))) {
      throw new Error(`--protocol 2: ${path} not found (expected the Protocol-2 id list of the dataset)`);
    }
    const ids = await readIdList(path);
    return { ids, count: ids.length };
  }
  const test: IdRange[] = (await datasetSplits(root)).test;
  const total = countIds(test);
  if (total === 0) throw new Error(`${root}: the test split is empty`);
  if (o.subset === "full" || o.samples >= total) return { ids: sequentialIds(test), count: total };
  // Distinct ids drawn uniformly (Floyd's algorithm: exactly `samples` draws), in draw order.
  const rng = new Rng(o.seed, 0x5e1ec7);
  const chosen = new Set<number>();
  const order: number[] = [];
  for (let k = total - o.samples; k < total; k++) {
    const r = rng.int(k + 1);
    const pick = chosen.has(r) ? k : r;
    chosen.add(pick);
    order.push(pick);
  }
  const idAt = (i: number) => {
    for (const [lo, hi] of test) {
      if (i <= hi - lo) return lo + i;
      i -= hi - lo + 1;
    }
    throw new RangeError("unreachable");
  };
  return { ids: order.map(idAt), count: o.samples };
}

/**
 * The mean root-relative pose of up to `cap` training samples, evenly spaced over the training
 * split, read from the GT files (the yardstick every method should beat).
 */
async function meanTrainingPose(root: string, cap: number): Promise<{ pose: Float64Array; count: number }> {
  const train = (await datasetSplits(root)).train;
  const total = countIds(train);
  if (total === 0) throw new Error(`${root}: the training split is empty; the baseline needs training poses`);
  const n = Math.max(1, Math.min(cap, total));
  const idAt = (i: number) => {
    for (const [lo, hi] of train) {
      if (i <= hi - lo) return lo + i;
      i -= hi - lo + 1;
    }
    throw new RangeError("unreachable");
  };
  const ids = Array.from({ length: n }, (_, k) => idAt(Math.floor(((k + 0.5) * total) / n)));
  const sum = new Float64Array(NUM_JOINTS * 3);
  for (let k = 0; k < ids.length; k += 32) {
    const recs = await Promise.all(ids.slice(k, k + 32).map((id) => readSample(root, id)));
    for (const r of recs) {
      const p = selectParts(r.joints3d, 3);
      for (let j = 0; j < NUM_JOINTS; j++) {
        for (let c = 0; c < 3; c++) sum[3 * j + c] += p[3 * j + c] - p[3 * ROOT_JOINT + c];
      }
    }
  }
  return { pose: sum.map((v) => v / n), count: n };
}

// ---------------------------------------------------------------------------------------------
// Networks

/** Per-sample root-relative errors of the integral prediction with one half swapped for the GT. */
const PARTS_NAMES = { gtDepth: "err_int_gtdepth_rel", gt2d: "err_int_gt2d_rel" } as const;

/**
 * The small second net run after every batch: the baseline pose scored by PoseErrors; the
 * integral prediction decoded twice more, once with the GT depth in place of the predicted one and
 * once with the GT 2D joints, which splits its error between the image plane and depth; and, with
 * the flip test, the decode of the flip-averaged coordinates (DepthDecode + GenPredMono3D +
 * PoseErrors, as in the pose net).
 */
function auxNet(o: { batch: number; flip: boolean; legacy: LegacyFlags }): {
  inputs: Record<string, Shape>;
  layers: Layer[];
} {
  const B = o.batch, J = NUM_JOINTS;
  const crop = o.legacy.cropAsBbx ? "bbx" : "cropToBbx";
  const inputs: Record<string, Shape> = {
    base3d: [B, J, 3],
    gt3d: [B, J, 3],
    aug3d: [B, J, 3],
    camera: [B, 4],
    [crop]: o.legacy.cropAsBbx ? [B, 4] : [B, 6],
    joints2d: [B, J, 2],
    depth: [B, J],
    pred_2d_int: [B, J, 2],
    pred_depth_int: [B, J],
  };
  const e = ERROR_NAMES.baseline;
  const layers: Layer[] = [
    new PoseErrors("errors_seed_base", { pred: "base3d", gt: "aug3d", tops: { mpjpe: e.mpjpe } }),
    new PoseErrors("errors_base", {
      pred: "base3d",
      gt: "gt3d",
      tops: { mpjpeRel: e.mpjpe_rel, paMpjpe: e.pa_mpjpe, relAxes: AXES_NAMES.baseline },
    }),
  ];
  // The integral prediction with one half replaced by the GT.
  const swaps = [
    { part: "gtDepth", joints2d: "pred_2d_int", depth: "depth" },
    { part: "gt2d", joints2d: "joints2d", depth: "pred_depth_int" },
  ] as const;
  for (const w of swaps) {
    layers.push(
      new DepthDecode(`parts_depth_mm_${w.part}`, {
        depth: w.depth,
        rootFrom: "gt3d",
        top: `parts_depth_mm_${w.part}`,
        legacy: o.legacy.depthBounds,
      }),
      new GenPredMono3D(`pred_3d_int_${w.part}`, {
        joints2d: w.joints2d,
        depth: `parts_depth_mm_${w.part}`,
        camera: "camera",
        crop,
        top: `pred_3d_int_${w.part}`,
        legacy: o.legacy.cropAsBbx,
      }),
      new PoseErrors(`errors_int_${w.part}`, {
        pred: `pred_3d_int_${w.part}`,
        gt: "gt3d",
        tops: { mpjpeRel: PARTS_NAMES[w.part] },
      }),
    );
  }
  if (o.flip) {
    Object.assign(inputs, {
      pred_2d_max: [B, J, 2],
      pred_depth_max: [B, J],
    });
    for (const dec of ["max", "int"] as const) {
      const names = ERROR_NAMES[dec === "max" ? "argmax" : "integral"];
      layers.push(
        new DepthDecode(`depth_mm_${dec}`, {
          depth: `pred_depth_${dec}`,
          rootFrom: "gt3d",
          top: `depth_mm_${dec}`,
          legacy: o.legacy.depthBounds,
        }),
        new GenPredMono3D(`pred_3d_${dec}`, {
          joints2d: `pred_2d_${dec}`,
          depth: `depth_mm_${dec}`,
          camera: "camera",
          crop,
          top: `pred_3d_${dec}`,
          legacy: o.legacy.cropAsBbx,
        }),
        new PoseErrors(`errors_seed_${dec}`, {
          pred: `pred_3d_${dec}`,
          gt: "aug3d",
          tops: { mpjpe: names.mpjpe },
        }),
        new PoseErrors(`errors_${dec}`, {
          pred: `pred_3d_${dec}`,
          gt: "gt3d",
          tops: {
            mpjpeRel: names.mpjpe_rel,
            paMpjpe: names.pa_mpjpe,
            relAxes: AXES_NAMES[dec === "max" ? "argmax" : "integral"],
          },
        }),
      );
    }
  }
  return { inputs, layers };
}

/** Blob names a net definition can produce: inputs and every layer top. */
function blobNamesOf(def: { inputs: Record<string, Shape>; layers: Layer[] }): string[] {
  return [...Object.keys(def.inputs), ...def.layers.flatMap((l) => l.tops)];
}

// ---------------------------------------------------------------------------------------------
// Batch helpers

/** A batch of exactly `size` samples: a short one is filled by repeating its samples. */
function padBatch(b: Batch, size: number, inputSize: number): Batch {
  if (b.size === size) return b;
  const out = allocBatch(size, inputSize);
  for (let i = 0; i < size; i++) {
    const s = i % b.size;
    for (const k of Object.keys(out) as (keyof Batch)[]) {
      if (k === "size") continue;
      const src = b[k] as Float32Array | Int32Array, dst = out[k] as Float32Array | Int32Array;
      const w = src.length / b.size;
      dst.set(src.subarray(s * w, (s + 1) * w), i * w);
    }
  }
  return out;
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

/** The seed's OutputBlob text: one row of %12.6f values. */
export function formatBlobRow(values: ArrayLike<number>): string {
  let s = "";
  for (let i = 0; i < values.length; i++) {
    s += formatFixed(Number.isFinite(values[i]) ? values[i] : 0, 12) + " ";
  }
  return s + "\n";
}

// ---------------------------------------------------------------------------------------------
// Evaluation

interface VisSample {
  id: number;
  action: number;
  image: Float32Array;
  gt2d: Float32Array;
  pred2d: Float32Array;
  gt3d: Float32Array;
  pred3d: Float32Array;
  hm2d: Float32Array | null;
  hm3d: Float32Array;
  errors: Record<Method, Record<Metric, number>>;
}

function subsetTag(o: { subset: EvalSubset; flip: boolean; stats: string; iter?: number }): string {
  return [
    o.subset,
    o.flip ? "flip" : "",
    o.stats === "running" ? "running" : "",
    o.iter !== undefined ? `iter${o.iter}` : "",
  ]
    .filter(Boolean).join("-");
}

/** Evaluates a run's checkpoint; writes the report (and pictures and dumps if asked) and returns it. */
export async function evaluate(opts: EvalOptions = {}): Promise<EvalResult> {
  const t0 = performance.now();
  const log = opts.log ?? ((l: string) => console.error(l));
  // The run, its config and checkpoint.
  const runDir = opts.run ?? await newestRun(opts.runsRoot ?? "runs");
  if (!runDir) {
    throw new Error(
      `no run found under ${opts.runsRoot ?? "runs"}/ (expected a folder with config.json); give --run DIR`,
    );
  }
  const configPath = join(runDir, "config.json");
  if (!(await exists(configPath))) {
    throw new Error(
      `${configPath} not found: --run expects a run folder written by deno task train (config.json, checkpoints/)`,
    );
  }
  const cfg = parseRunConfig(await Deno.readTextFile(configPath), configPath);
  const ckpt = await resolveCheckpoint(runDir, opts.checkpoint);
  const d2 = await checkpointDepth(ckpt.prefix, cfg);
  const root = resolve(opts.data ?? cfg.data);
  if (!(await exists(root))) {
    throw new Error(
      `dataset root ${root} not found${opts.data ? "" : ` (from ${configPath})`}; pass --data DIR`,
    );
  }
  const subset = opts.subset ?? "random";
  const seed = opts.seed ?? 1;
  const B = opts.batch ?? 3;
  const stats = opts.stats ?? "batch";
  const flip = opts.flip ?? false;
  const nVis = opts.vis ?? 0;
  const visDec = opts.visDecoder ?? "int";
  if (!Number.isInteger(B) || B < 1) throw new Error(`--batch: expected an integer >= 1, got ${B}`);
  const outDir = resolve(
    opts.out ??
      join(
        runDir,
        `eval-${subsetTag({ subset, flip, stats, iter: opts.checkpoint ? ckpt.iter : undefined })}`,
      ),
  );
  const { ids, count } = await subsetIds(root, { subset, samples: opts.samples ?? 600, seed });
  const legacy = { ...cfg.legacy };

  // The pose net of the checkpoint's stage, with per-sample error outputs.
  const netCfg = stageNetConfig(cfg, d2, { batch: B, perSampleErrors: true });
  const S = cfg.model.inputSize, side = S / 4, J = NUM_JOINTS;
  const layers = poseNetLayers(netCfg);
  if (nVis > 0) {
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
  const mainDef = { name: `eval-${cfg.preset}-d${d2}`, inputs: poseNetInputs(netCfg), layers };
  const aux = auxNet({ batch: B, flip, legacy });
  const mainNames = blobNamesOf(mainDef), auxNames = blobNamesOf(aux);
  const fromAux = (name: string) => auxNames.includes(name) && (flip || !mainNames.includes(name));
  const dump = opts.dump ?? [];
  for (const name of dump) {
    if (!mainNames.includes(name) && !auxNames.includes(name)) {
      const avail = [...new Set([...mainNames, ...auxNames])].sort();
      throw new Error(`--dump: no blob "${name}"; available: ${avail.join(", ")}`);
    }
  }
  const has2d = mainNames.includes(HEATMAP_2D);
  const keep = new Set<string>(["pred_2d_int", "pred_depth_int"]);
  if (flip) DECODED.forEach((n) => keep.add(n));
  if (nVis > 0) {
    keep.add(PROB_XY);
    keep.add(`pred_2d_${visDec}`);
    keep.add(`pred_3d_${visDec}`);
    if (has2d) keep.add(HEATMAP_2D);
  }
  for (const n of dump) if (!fromAux(n)) keep.add(n);

  let gpu = opts.gpu;
  if (!gpu) {
    gpu = await openGpu();
    log(describeGpu(gpu));
  }
  const net = await Net.build(gpu, mainDef, {
    train: false,
    keep: [...keep],
    globalStats: stats === "running",
    seed: cfg.seed,
  });
  const auxNetBuilt = await Net.build(gpu, { name: "eval-aux", ...aux }, { train: false });
  const bar = opts.progress === false
    ? null
    : new ProgressBar({ label: "eval", total: count, unit: "samples/s" });
  const say = (l: string) => (bar ? bar.log(l) : log(l));
  try {
    await loadCheckpoint(net, ckpt.prefix, { strict: true, solverState: false, log: () => {} });
    for (const name of dump) {
      const shape = fromAux(name) ? auxNetBuilt.shape(name) : net.shape(name);
      if (shape[0] !== B) {
        throw new Error(`--dump: blob "${name}" (shape ${shape.join("x")}) does not hold one row per sample`);
      }
    }
    log(
      `evaluating ${ckpt.prefix} (iteration ${ckpt.iter}, d2 ${d2}) on ${count} ${subset} test samples of ${root}; ` +
        `batch ${B}, ${stats} BN statistics${flip ? ", flip test" : ""}`,
    );
    const baseline = await meanTrainingPose(root, opts.baselineSamples ?? 2000);
    log(`baseline: mean root-relative pose of ${baseline.count} training samples`);
    await Deno.mkdir(outDir, { recursive: true });
    if (dump.length) await Deno.mkdir(join(outDir, "dump"), { recursive: true });
    const csv = await Deno.open(join(outDir, "samples.csv"), { write: true, create: true, truncate: true });
    const enc = new TextEncoder();
    await csv.write(enc.encode(
      ["id", "action", ...METHODS.flatMap((m) => METRICS.map((k) => `${m}_${k}`))].join(",") + "\n",
    ));
    const acc = new ErrorAccumulator();
    const vis: VisSample[] = [];
    let padded = 0;
    const pipe = createPipeline(root, {
      source: ids,
      batchSize: B,
      inputSize: S,
      augment: false,
      workers: opts.workers ?? navigator.hardwareConcurrency,
      keepLast: true,
      channelOrder: cfg.channelOrder,
      legacy: pipelineLegacy(cfg),
    });
    try {
      for await (const raw of pipe) {
        const n = raw.size;
        padded += B - n;
        const batch = padBatch(raw, B, S);
        setBatch(net, batch);
        net.forward();
        const read = async (names: readonly string[], from: Net) =>
          Object.fromEntries(await Promise.all(names.map(async (k) => [k, await from.read(k)] as const)));
        // Main-net values are read before a mirrored pass reuses its buffers.
        const mainErr = flip ? {} : await read(
          (["argmax", "integral"] as const).flatMap(errorBlobs),
          net,
        );
        const wantVis = vis.length < nVis;
        const visMain = wantVis
          ? await read(
            [PROB_XY, `pred_2d_${visDec}`, `pred_3d_${visDec}`, ...(has2d ? [HEATMAP_2D] : [])],
            net,
          )
          : {};
        const dumpMain = await read(dump.filter((d) => !fromAux(d)), net);
        // The baseline pose at each sample's GT root.
        const base3d = new Float32Array(B * J * 3);
        for (let b = 0; b < B; b++) {
          for (let j = 0; j < J; j++) {
            for (let c = 0; c < 3; c++) {
              base3d[(b * J + j) * 3 + c] = baseline.pose[3 * j + c] +
                batch.gt3d[(b * J + ROOT_JOINT) * 3 + c];
            }
          }
        }
        auxNetBuilt.setInput("base3d", base3d);
        auxNetBuilt.setInput("gt3d", batch.gt3d);
        auxNetBuilt.setInput("aug3d", batch.aug3d);
        auxNetBuilt.setInput("camera", batch.camera);
        if (legacy.cropAsBbx) auxNetBuilt.setInput("bbx", batch.bbx);
        else auxNetBuilt.setInput("cropToBbx", batch.cropToBbx);
        auxNetBuilt.setInput("joints2d", batch.joints2d);
        auxNetBuilt.setInput("depth", batch.depth);
        if (!flip) {
          const decoded = await read(["pred_2d_int", "pred_depth_int"], net);
          auxNetBuilt.setInput("pred_2d_int", decoded.pred_2d_int);
          auxNetBuilt.setInput("pred_depth_int", decoded.pred_depth_int);
        } else {
          const plain = await read(DECODED, net);
          net.setInput("image", mirrorImages(batch.image, S));
          net.forward();
          const mirrored = await read(DECODED, net);
          for (const dec of ["max", "int"] as const) {
            const avg = averageFlipped(
              { joints2d: plain[`pred_2d_${dec}`], depth: plain[`pred_depth_${dec}`] },
              { joints2d: mirrored[`pred_2d_${dec}`], depth: mirrored[`pred_depth_${dec}`] },
            );
            auxNetBuilt.setInput(`pred_2d_${dec}`, avg.joints2d);
            auxNetBuilt.setInput(`pred_depth_${dec}`, avg.depth);
          }
        }
        auxNetBuilt.forward();
        const auxErrNames = [
          ...METHODS.filter((m) => flip || m === "baseline").flatMap(errorBlobs),
          ...Object.values(PARTS_NAMES),
        ];
        const errs: Record<string, Float32Array> = { ...mainErr, ...await read(auxErrNames, auxNetBuilt) };
        const visAux = wantVis && flip
          ? await read([`pred_2d_${visDec}`, `pred_3d_${visDec}`], auxNetBuilt)
          : {};
        const dumpAux = await read(dump.filter(fromAux), auxNetBuilt);
        // Bookkeeping per real sample (padding dropped).
        let rows = "";
        for (let b = 0; b < n; b++) {
          const e = {} as SampleErrors;
          const means = {} as Record<Method, Record<Metric, number>>;
          for (const m of METHODS) {
            e[m] = {} as Record<Metric, Float32Array>;
            means[m] = {} as Record<Metric, number>;
            for (const k of METRICS) {
              e[m][k] = errs[ERROR_NAMES[m][k]].subarray(b * J, (b + 1) * J);
              means[m][k] = meanOverJoints(e[m][k]);
            }
          }
          const axes = Object.fromEntries(
            METHODS.map((m) => [m, errs[AXES_NAMES[m]].subarray(b * J * 3, (b + 1) * J * 3)]),
          ) as Record<Method, Float32Array>;
          const parts = {
            gtDepth: errs[PARTS_NAMES.gtDepth].subarray(b * J, (b + 1) * J),
            gt2d: errs[PARTS_NAMES.gt2d].subarray(b * J, (b + 1) * J),
          };
          acc.add(batch.action[b], e, axes, parts);
          const id = batch.ids[b];
          rows += [
            id,
            ACTIONS[batch.action[b]] ?? "",
            ...METHODS.flatMap((m) => METRICS.map((k) => means[m][k].toFixed(3))),
          ]
            .join(",") + "\n";
          if (vis.length < nVis) {
            const pick = (name: string) => (flip && visAux[name] ? visAux[name] : visMain[name]);
            const sl = (a: Float32Array, w: number) => a.slice(b * w, (b + 1) * w);
            vis.push({
              id,
              action: batch.action[b],
              image: sl(batch.image, 3 * S * S),
              gt2d: sl(batch.joints2d, J * 2),
              pred2d: sl(pick(`pred_2d_${visDec}`), J * 2),
              gt3d: sl(batch.gt3d, J * 3),
              pred3d: sl(pick(`pred_3d_${visDec}`), J * 3),
              hm2d: has2d ? sl(visMain[HEATMAP_2D], J * side * side) : null,
              hm3d: sl(visMain[PROB_XY], J * side * side),
              errors: means,
            });
          }
          for (const name of dump) {
            const v = fromAux(name) ? dumpAux[name] : dumpMain[name];
            const w = v.length / B;
            await Deno.writeTextFile(
              join(outDir, "dump", `${name}_${id}.txt`),
              formatBlobRow(v.subarray(b * w, (b + 1) * w)),
            );
          }
        }
        await csv.write(enc.encode(rows));
        const done = acc.samples;
        const live = acc.overall();
        bar?.update(
          done,
          `rel ${live.argmax.mpjpe_rel?.toFixed(1)}/${live.integral.mpjpe_rel?.toFixed(1)} mm (max/int), ` +
            `baseline ${live.baseline.mpjpe_rel?.toFixed(1)}`,
        );
      }
    } finally {
      await pipe.close();
      csv.close();
    }
    await net.sync();
    const meta: EvalMeta = {
      run: resolve(runDir),
      checkpoint: ckpt.prefix,
      iter: ckpt.iter,
      data: root,
      subset,
      ...(subset === "random" ? { seed } : {}),
      d2,
      batch: B,
      stats,
      flip,
      padded,
      baselineSamples: baseline.count,
      seconds: (performance.now() - t0) / 1000,
      date: new Date().toISOString(),
      legacy,
    };
    const report = acc.build(meta);
    await Deno.writeTextFile(join(outDir, "report.json"), formatReportJson(report));
    await Deno.writeTextFile(join(outDir, "report.md"), formatReportMarkdown(report));
    if (vis.length) {
      await writeVis(outDir, vis, {
        root,
        report,
        side,
        size: S,
        channelOrder: cfg.channelOrder,
        legacyNorm: cfg.legacy.augment,
        decoder: visDec,
      });
    }
    bar?.finish(`${acc.samples} samples in ${formatDuration((performance.now() - t0) / 1000)}`);
    if (!bar) say(`evaluated ${acc.samples} samples in ${formatDuration((performance.now() - t0) / 1000)}`);
    return { report, outDir };
  } finally {
    net.destroy();
    auxNetBuilt.destroy();
  }
}

async function writeVis(
  outDir: string,
  samples: VisSample[],
  o: {
    root: string;
    report: EvalReport;
    side: number;
    size: number;
    channelOrder: "bgr" | "rgb";
    legacyNorm: boolean;
    decoder: "max" | "int";
  },
): Promise<void> {
  const dir = join(outDir, "vis");
  await Deno.mkdir(dir, { recursive: true });
  const decName = o.decoder === "max" ? "argmax" : "integral";
  const entries: VisEntry[] = [];
  for (const s of samples) {
    const action = ACTIONS[s.action] ?? "unknown action";
    const e = s.errors[decName];
    const caption = `${decName}: rel ${e.mpjpe_rel.toFixed(0)} mm, pa ${e.pa_mpjpe.toFixed(0)} mm`;
    const images: { title: string; src: string }[] = [];
    const put = async (name: string, title: string, c: Parameters<typeof writeCanvasPng>[1]) => {
      await writeCanvasPng(join(dir, `${s.id}_${name}.png`), c);
      images.push({ title, src: `vis/${s.id}_${name}.png` });
    };
    await put(
      "crop",
      `input crop, ${decName} prediction and GT`,
      drawCropOverlay({
        image: s.image,
        size: o.size,
        channelOrder: o.channelOrder,
        pred: s.pred2d,
        gt: s.gt2d,
        legacy: o.legacyNorm,
        caption: `${s.id} ${action.toLowerCase()}`,
      }),
    );
    const tiles = {
      side: o.side,
      image: s.image,
      size: o.size,
      channelOrder: o.channelOrder,
      gt: s.gt2d,
      legacy: o.legacyNorm,
    };
    if (s.hm2d) {
      await put(
        "heatmap2d",
        "stage-1 2D heatmaps (GT ringed)",
        drawHeatmapTiles({ ...tiles, maps: s.hm2d, title: `stage-1 2d heatmaps, sample ${s.id}` }),
      );
    }
    await put(
      "heatmap3d",
      "3D heatmaps summed over depth",
      drawHeatmapTiles({ ...tiles, maps: s.hm3d, title: `softmax volume summed over depth, sample ${s.id}` }),
    );
    let rotation: number[] | undefined;
    try {
      rotation = (await readSample(o.root, s.id)).camera.R;
    } catch { /* no camera file: the camera's own axes are used */ }
    await put(
      "skeleton3d",
      "3D, root-aligned (front, side)",
      drawSkeleton3d({ pred: s.pred3d, gt: s.gt3d, rotation, caption }),
    );
    const errors: Record<string, Record<string, number>> = {};
    for (const m of METHODS) {
      errors[m] = {};
      for (const k of METRICS) {
        errors[m][k === "mpjpe" ? "seed" : k === "mpjpe_rel" ? "rel" : "PA"] = s.errors[m][k];
      }
    }
    entries.push({ id: s.id, action, images, errors });
  }
  const html = visIndexHtml({
    title: `volpose evaluation: ${o.report.meta.checkpoint}`,
    summary: formatReportTable(o.report),
    entries,
  });
  await Deno.writeTextFile(join(outDir, "index.html"), html);
}

// ---------------------------------------------------------------------------------------------
// Command line

const HELP = `volpose eval: evaluate a trained run on the test split

Usage: deno task eval [options]

Run and data
  --run DIR            run folder (config.json + checkpoints/); default: the newest under runs/
  --checkpoint PREFIX  checkpoint to load (default: the run's latest), e.g. DIR/checkpoints/net_iter_500
  --data DIR           dataset root (default: the run's)
  --out DIR            output folder (default: <run>/eval-<subset>)

Samples
  --samples N          size of the seeded random test subset (default 600)
  --seed N             seed of that subset (default 1)
  --full               every test id in order instead
  --protocol 2         the Protocol-2 id list (index_range/Protocol2/all_id.txt) instead

Network
  --batch N            samples per pass (default 3, as the seed; batch-norm statistics are per batch)
  --stats batch|running  batch-norm statistics at test time (default batch, as the seed)
  --flip               flip test: average with the un-mirrored prediction on the mirrored image

Outputs (always: report.json, report.md, samples.csv)
  --vis N              pictures of the first N samples in <out>/vis/ and <out>/index.html
  --vis-decoder max|int  decoder shown in the pictures (default int)
  --dump BLOB,...      write <out>/dump/<blob>_<id>.txt per sample (the seed's OutputBlob rows)
  --baseline-samples N training samples averaged into the mean-pose baseline (default 2000)
  --json               print the report JSON on stdout (everything else on stderr)
  --workers N          input pipeline workers (default: all cores)
  --quiet              no progress bar
  -h, --help
`;

function intArg(v: string | undefined, name: string, min: number): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!Number.isInteger(x) || x < min) {
    throw new Error(`--${name}: expected an integer >= ${min}, got "${v}"`);
  }
  return x;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      help: { type: "boolean", short: "h" },
      run: { type: "string" },
      checkpoint: { type: "string" },
      data: { type: "string" },
      out: { type: "string" },
      samples: { type: "string" },
      seed: { type: "string" },
      full: { type: "boolean" },
      protocol: { type: "string" },
      batch: { type: "string" },
      stats: { type: "string" },
      flip: { type: "boolean" },
      vis: { type: "string" },
      "vis-decoder": { type: "string" },
      dump: { type: "string" },
      "baseline-samples": { type: "string" },
      json: { type: "boolean" },
      workers: { type: "string" },
      quiet: { type: "boolean" },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.protocol !== undefined && values.protocol !== "2") {
    throw new Error(`--protocol: only 2 is supported, got "${values.protocol}"`);
  }
  if (values.full && values.protocol) throw new Error("--full and --protocol 2 exclude each other");
  const stats = values.stats ?? "batch";
  if (stats !== "batch" && stats !== "running") {
    throw new Error(`--stats: expected batch or running, got "${stats}"`);
  }
  const visDecoder = values["vis-decoder"] ?? "int";
  if (visDecoder !== "max" && visDecoder !== "int") {
    throw new Error(`--vis-decoder: expected max or int, got "${visDecoder}"`);
  }
  const { report, outDir } = await evaluate({
    run: values.run,
    checkpoint: values.checkpoint,
    data: values.data,
    out: values.out,
    subset: values.full ? "full" : values.protocol ? "protocol2" : "random",
    samples: intArg(values.samples, "samples", 1),
    seed: intArg(values.seed, "seed", 0),
    batch: intArg(values.batch, "batch", 1),
    stats,
    flip: values.flip,
    vis: intArg(values.vis, "vis", 0),
    visDecoder,
    dump: values.dump?.split(",").map((s) => s.trim()).filter(Boolean),
    baselineSamples: intArg(values["baseline-samples"], "baseline-samples", 1),
    workers: intArg(values.workers, "workers", 0),
    progress: !values.quiet,
  });
  const table = formatReportTable(report);
  if (values.json) {
    console.error(table);
    console.log(formatReportJson(report).trimEnd());
  } else console.log(table);
  const html = await exists(join(outDir, "index.html"));
  console.error(
    `\nwrote report.json, report.md, samples.csv${html ? ", index.html, vis/" : ""} to ${outDir}`,
  );
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    console.error(`eval: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
