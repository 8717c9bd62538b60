/**
 * Evaluation of a trained run on the test split: the network of the checkpoint's stage runs
 * forward over a seeded random subset, the full test split or the Protocol-2 list; a batch scorer
 * (run/eval_scorer.ts) returns per-sample per-joint errors for both decoders (3D argmax and
 * x50-softmax integral) and the mean-pose yardstick, which are aggregated per action, per joint
 * and overall into the report; sinks (run/eval_sinks.ts) write report.json, report.md,
 * samples.csv and, when asked, pictures and the seed's per-sample blob dumps.
 * @module
 */
import { join, resolve } from "node:path";
import { describeGpu, type Gpu, openGpu } from "../kernels/device.ts";
import { countIds, idAt, type IdRange, readIdList } from "../io/index_ranges.ts";
import { datasetSplits, indexRangeDir } from "../io/manifest.ts";
import { readSample } from "../io/sample_files.ts";
import { NUM_JOINTS, ROOT_JOINT, selectParts } from "../io/joints.ts";
import { formatDuration, ProgressBar } from "../io/progress.ts";
import { ErrorAccumulator, type EvalMeta, type EvalReport } from "../io/report.ts";
import { createPipeline } from "../stages/pipeline.ts";
import { sampleIds, sequentialIds } from "../stages/sources.ts";
import { pipelineLegacy, type RunConfig, type RunLegacy, stageNetConfig } from "./config.ts";
import { checkpointDepth, exists, openRun, resolveCheckpoint } from "./run_dir.ts";
import { BatchScorer, BlobError, HEATMAP_2D } from "./eval_scorer.ts";
import { poseNetLayers } from "../graph/models/pose_net.ts";
import { csvSink, dumpSink, type EvalSink, reportSink, visBlobs, visSink } from "./eval_sinks.ts";

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
  /** Output folder; default <run>/eval-<subset>[-flip][-running][-legacy][-iterN]. */
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
  /** The seed's bug families switched on for this evaluation, over the run's own (e.g. for imported seed models). */
  legacy?: Partial<RunLegacy>;
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
  /** On a CPU adapter, compile the scoring net's kernels on a second device too when they are new here (BuildOptions.prewarm). */
  prewarm?: boolean;
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

/** Size of the random test subset when none is given. */
export const DEFAULT_EVAL_SUBSET = 600;

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
  return { ids: sampleIds(test, { count: o.samples, seed: o.seed }), count: o.samples };
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
  const ids = Array.from({ length: n }, (_, k) => idAt(train, Math.floor(((k + 0.5) * total) / n)));
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

function subsetTag(
  o: { subset: EvalSubset; flip: boolean; stats: string; legacy: boolean; iter?: number },
): string {
  return [
    o.subset,
    o.flip ? "flip" : "",
    o.stats === "running" ? "running" : "",
    o.legacy ? "legacy" : "",
    o.iter !== undefined ? `iter${o.iter}` : "",
  ].filter(Boolean).join("-");
}

/** Evaluates a run's checkpoint; writes the report (and pictures and dumps if asked) and returns it. */
export async function evaluate(opts: EvalOptions = {}): Promise<EvalResult> {
  const t0 = performance.now();
  const log = opts.log ?? ((l: string) => console.error(l));
  const opened = await openRun(opts.run, opts.runsRoot);
  const legacy: RunLegacy = { ...opened.config.legacy };
  for (const [k, x] of Object.entries(opts.legacy ?? {})) {
    if (x !== undefined) legacy[k as keyof RunLegacy] = x;
  }
  const cfg: RunConfig = { ...opened.config, legacy };
  const asked = Object.values(opts.legacy ?? {}).some(Boolean);
  const ckpt = await resolveCheckpoint(opened.dir, opts.checkpoint);
  const d2 = await checkpointDepth(ckpt.prefix, cfg);
  const root = resolve(opts.data ?? cfg.data);
  if (!(await exists(root))) {
    throw new Error(
      `dataset root ${root} not found${opts.data ? "" : ` (from ${opened.configPath})`}; pass --data DIR`,
    );
  }
  const subset = opts.subset ?? "random";
  const seed = opts.seed ?? 1;
  const B = opts.batch ?? 3;
  const stats = opts.stats ?? "batch";
  const flip = opts.flip ?? false;
  const nVis = opts.vis ?? 0;
  const visDecoder = opts.visDecoder ?? "int";
  const dump = opts.dump ?? [];
  if (!Number.isInteger(B) || B < 1) throw new Error(`--batch: expected an integer >= 1, got ${B}`);
  const outDir = resolve(
    opts.out ??
      join(
        opened.dir,
        `eval-${
          subsetTag({ subset, flip, stats, legacy: asked, iter: opts.checkpoint ? ckpt.iter : undefined })
        }`,
      ),
  );
  const { ids, count } = await subsetIds(root, {
    subset,
    samples: opts.samples ?? DEFAULT_EVAL_SUBSET,
    seed,
  });

  const netCfg = stageNetConfig(cfg, d2, { batch: B, perSampleErrors: true });
  let gpu = opts.gpu;
  if (!gpu) {
    gpu = await openGpu();
    log(describeGpu(gpu));
  }
  const has2d = poseNetLayers(netCfg).some((l) => l.tops.includes(HEATMAP_2D));
  let scorer: BatchScorer;
  try {
    scorer = await BatchScorer.build(gpu, {
      net: netCfg,
      checkpoint: ckpt.prefix,
      flip,
      runningStats: stats === "running",
      probXY: nVis > 0,
      extra: [...dump, ...(nVis > 0 ? visBlobs({ decoder: visDecoder, has2d }) : [])],
      seed: cfg.seed,
      prewarm: opts.prewarm,
    });
  } catch (e) {
    throw e instanceof BlobError ? new Error(`--dump: ${e.message}`) : e;
  }
  for (const name of dump) {
    const shape = scorer.shape(name);
    if (shape[0] !== B) {
      scorer.destroy();
      throw new Error(`--dump: blob "${name}" (shape ${shape.join("x")}) does not hold one row per sample`);
    }
  }
  const sinks: EvalSink[] = [];
  const bar = opts.progress === false
    ? null
    : new ProgressBar({ label: "eval", total: count, unit: "samples/s" });
  try {
    log(
      `evaluating ${ckpt.prefix} (iteration ${ckpt.iter}, d2 ${d2}) on ${count} ${subset} test samples of ${root}; ` +
        `batch ${B}, ${stats} BN statistics${flip ? ", flip test" : ""}`,
    );
    const baseline = await meanTrainingPose(root, opts.baselineSamples ?? 2000);
    log(`baseline: mean root-relative pose of ${baseline.count} training samples`);
    await Deno.mkdir(outDir, { recursive: true });
    sinks.push(reportSink(outDir), await csvSink(outDir));
    if (dump.length) sinks.push(await dumpSink(outDir, dump));
    if (nVis > 0) {
      sinks.push(visSink(outDir, {
        count: nVis,
        decoder: visDecoder,
        root,
        size: cfg.model.inputSize,
        channelOrder: cfg.channelOrder,
        legacyNorm: cfg.legacy.augment,
        has2d,
      }));
    }
    const acc = new ErrorAccumulator();
    let padded = 0;
    const pipe = createPipeline(root, {
      source: ids,
      batchSize: B,
      inputSize: cfg.model.inputSize,
      augment: false,
      workers: opts.workers ?? navigator.hardwareConcurrency,
      keepLast: true,
      channelOrder: cfg.channelOrder,
      legacy: pipelineLegacy(cfg),
    });
    try {
      for await (const raw of pipe) {
        padded += B - raw.size;
        const scored = await scorer.score(raw, baseline.pose, sinks.flatMap((s) => s.wants()));
        for (let b = 0; b < scored.n; b++) {
          const s = scored.sample(b);
          acc.add(raw.action[b], s.errors, s.axes, s.parts);
        }
        for (const sink of sinks) await sink.add(scored);
        const live = acc.overall();
        bar?.update(
          acc.samples,
          `rel ${live.argmax.mpjpe_rel?.toFixed(1)}/${live.integral.mpjpe_rel?.toFixed(1)} mm (max/int), ` +
            `baseline ${live.baseline.mpjpe_rel?.toFixed(1)}`,
        );
      }
    } finally {
      await pipe.close();
    }
    await scorer.sync();
    const meta: EvalMeta = {
      run: resolve(opened.dir),
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
      legacy: { ...legacy },
    };
    const report = acc.build(meta);
    for (const sink of sinks) await sink.finish(report);
    const took = `${acc.samples} samples in ${formatDuration((performance.now() - t0) / 1000)}`;
    if (bar) bar.finish(took);
    else log(`evaluated ${took}`);
    return { report, outDir };
  } finally {
    for (const sink of sinks) sink.close();
    scorer.destroy();
  }
}
