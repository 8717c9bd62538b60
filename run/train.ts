/**
 * Training: every coarse-to-fine stage of a run configuration, one after another, into a run
 * folder (config, checkpoints, a JSONL metrics log, the training-curve plot). A run resumed from
 * its last checkpoint continues exactly: the same batches, augmentation and solver state.
 * @module
 */
import { join, resolve } from "node:path";
import { type Gpu, openGpu } from "../kernels/device.ts";
import { Net } from "../graph/net.ts";
import {
  findLatestCheckpoint,
  formatLoadReport,
  loadCheckpoint,
  saveCheckpoint,
} from "../graph/checkpoint.ts";
import { poseNetInputs, poseNetLayers } from "../graph/models/pose_net.ts";
import { learningRate } from "../graph/solver.ts";
import { type Batch, createPipeline, type Pipeline } from "../stages/pipeline.ts";
import { sampleIds } from "../stages/sources.ts";
import { formatDuration, ProgressBar } from "../io/progress.ts";
import { checkDatasetRoot, datasetSplits } from "../io/manifest.ts";
import {
  makeSolver,
  pipelineLegacy,
  type RunConfig,
  stageBounds,
  stageNetConfig,
  TRAIN_MONITOR_EVERY,
} from "./config.ts";
import { setBatch } from "./batch.ts";
import { writeCurve } from "./curve.ts";
import { CHECKPOINT_DIR } from "./run_dir.ts";
import { BudgetFit } from "./budget_fit.ts";

/** Options of {@linkcode train}. */
export interface TrainOptions {
  /** Run folder (created). */
  runDir: string;
  /** Continue from the latest checkpoint in runDir. */
  resume?: boolean;
  /** Start the first stage from these weights (copied by name; the rest re-initialised). */
  from?: string;
  /** Device (default: open one). */
  gpu?: Gpu;
  /** Log lines (default: stderr through the progress bar). */
  log?: (line: string) => void;
  /** Show the progress bar (default true). */
  progress?: boolean;
  /** Time budget in seconds, overriding the config's: stop with a checkpoint once it is spent. */
  maxSeconds?: number;
  /** The clock the time budget is measured with, in ms (default `performance.now`; tests simulate one). */
  clock?: () => number;
  /**
   * On a CPU adapter, compile each stage net's kernels on a second device too when they are new
   * to this machine (see BuildOptions.prewarm; default false, `deno task train` turns it on).
   */
  prewarm?: boolean;
}

/** What a finished (or interrupted) training returns. */
export interface TrainResult {
  iter: number;
  interrupted: boolean;
  /** The run's time budget ran out before the schedule's end (a normal finish; --resume continues). */
  budgetReached: boolean;
  checkpoint: string | null;
  /** Last scalars read, by name (mean over the last display window). */
  last: Record<string, number>;
  /** Last held-out evaluation, by metric. */
  lastEval: Record<string, number> | null;
}

/** Trains every stage of `cfg` into `opts.runDir`. */
export async function train(runCfg: RunConfig, opts: TrainOptions): Promise<TrainResult> {
  // A copy: a budget-fitted schedule changes its end as the run goes.
  const cfg = structuredClone(runCfg);
  const runDir = resolve(opts.runDir);
  const ckptDir = join(runDir, CHECKPOINT_DIR);
  await Deno.mkdir(ckptDir, { recursive: true });
  const configPath = join(runDir, "config.json");
  await Deno.writeTextFile(configPath, JSON.stringify(cfg, null, 2) + "\n");
  await checkDatasetRoot(cfg.data);
  const gpu = opts.gpu ?? await openGpu();
  const bounds = stageBounds(cfg.schedule);
  const totalIters = bounds[bounds.length - 1].end;

  // Where to start: the latest checkpoint of this run, if resuming.
  let startIter = 0;
  let resumePrefix: string | null = null;
  if (opts.resume) {
    const found = await findLatestCheckpoint(ckptDir);
    if (found) {
      startIter = found.iter;
      resumePrefix = found.prefix;
    }
  }
  const metrics = await MetricsLog.open(join(runDir, "metrics.jsonl"), opts.resume ? startIter : null);
  const history = metrics.rows;

  let interrupted = false;
  let budgetReached = false;
  const onSigint = () => {
    if (interrupted) Deno.exit(130);
    interrupted = true;
  };
  try {
    Deno.addSignalListener("SIGINT", onSigint);
  } catch { /* signals unavailable (e.g. in some test runners) */ }
  const clock = opts.clock ?? (() => performance.now());
  const t0 = clock();
  const elapsed = () => (clock() - t0) / 1000;
  const bar = opts.progress === false ? null : new ProgressBar({
    label: "train",
    total: totalIters,
    unit: "it/s",
    budgetSec: opts.maxSeconds ?? cfg.timeBudgetSec,
  });
  const log = opts.log ?? ((l: string) => bar ? bar.log(l) : console.error(l));
  let last: Record<string, number> = {};
  let lastEval: Record<string, number> | null = null;
  let lastCheckpoint: string | null = resumePrefix;
  const evalIds = cfg.evalEvery > 0 ? await heldOutIds(cfg) : [];
  const heldOut: HeldOutBatches = { batches: null };

  try {
    for (let k = 0; k < cfg.schedule.length; k++) {
      const stage = cfg.schedule[k];
      const { start } = bounds[k];
      let { end } = bounds[k];
      if (startIter >= end) continue; // finished before the resume point
      const net = await buildStageNet(gpu, cfg, stage.d2, opts.prewarm);
      try {
        log(
          `stage ${k + 1}/${cfg.schedule.length}: d2 = ${stage.d2}, iterations ${start}..${end}, ` +
            `${(net.paramCount() / 1e6).toFixed(3)} M parameters, ${
              (net.gpuBytes / 2 ** 20).toFixed(1)
            } MiB on ` +
            `the GPU, ${net.dispatchCount()} dispatches per step (${
              net.dispatchCount("train-lean")
            } without the training-batch metrics)`,
        );
        // Initial weights: the resume point inside this stage, else the previous stage's last
        // checkpoint (also when a resume lands exactly on a stage boundary), else --from.
        net.iter = start;
        if (resumePrefix && startIter > start) {
          const r = await loadCheckpoint(net, resumePrefix, { strict: true, log });
          log(`resumed from ${resumePrefix} at iteration ${r.iter}`);
        } else if (lastCheckpoint && k > 0) {
          const r = await loadCheckpoint(net, lastCheckpoint, { strict: false, log: () => {} });
          net.iter = start;
          log(`stage hand-off from ${lastCheckpoint}:\n${formatLoadReport(r)}`);
        } else if (opts.from && k === 0) {
          const r = await loadCheckpoint(net, opts.from, {
            strict: false,
            solverState: false,
            log: () => {},
          });
          net.iter = start;
          log(`initialised from ${opts.from}:\n${formatLoadReport(r)}`);
        }
        const pipe = trainingBatches(cfg, k, { skipBatches: net.iter - start, log });
        bar?.update(net.iter);
        bar?.resetRate();
        let inflight: Promise<void> | null = null;
        let windowStart = performance.now();
        let windowIter = net.iter;
        const save = async (why: string) => {
          await net.sync();
          const saved = await saveCheckpoint(net, ckptDir + "/", {
            meta: { stage: k, d2: stage.d2, reason: why },
          });
          lastCheckpoint = saved.prefix;
          return saved.prefix;
        };
        const budget = opts.maxSeconds ?? cfg.timeBudgetSec;
        const fit = cfg.fitBudget && budget !== undefined && cfg.schedule.length === 1
          ? new BudgetFit({
            planned: cfg.fitBudget.plannedIters,
            budgetSec: budget,
            evalEvery: cfg.evalEvery,
            startIter: net.iter,
          })
          : null;
        // The schedule's end follows the budget: the stage, the poly rate (the net's solver reads
        // the same policy object) and the saved config, so --resume continues the fitted schedule.
        const applyFit = async (n: number, it: number) => {
          const policy = cfg.solver.policy;
          if (net.solver?.options.policy !== policy || policy.type !== "poly") {
            throw new Error("budget fit: the net's solver does not share the run's poly policy");
          }
          const was = end;
          end = n;
          stage.iters = n;
          policy.maxIter = n;
          if (bar) bar.opts.total = n;
          await Deno.writeTextFile(configPath, JSON.stringify(cfg, null, 2) + "\n");
          if (Math.abs(n - was) >= 0.01 * was) {
            log(`iter ${it}: the schedule now ends at ${n} (was ${was}), where the time budget does`);
          }
        };
        const recordEval = async (it: number) => {
          const te = elapsed();
          lastEval = await heldOutEval(net, cfg, evalIds, heldOut);
          fit?.evaluated(it, elapsed() - te, elapsed());
          const row = {
            type: "eval",
            iter: it,
            stage: k,
            d2: stage.d2,
            samples: evalIds.length,
            ...lastEval,
          };
          await metrics.append(row);
          log(`iter ${it}: held-out ${evalSummary(lastEval)}`);
        };
        try {
          for await (const batch of pipe) {
            if (net.iter >= end) break;
            setBatch(net, batch);
            net.step();
            // Keep at most two steps queued so the CPU never runs far ahead of the GPU.
            const prev: Promise<void> | null = inflight;
            inflight = gpu.device.queue.onSubmittedWorkDone();
            if (prev) await prev;
            const it = net.iter;
            if (fit) {
              const n = fit.afterStep(it, elapsed(), cfg.evalEvery > 0 && it % cfg.evalEvery === 0);
              if (n !== null && n !== end) await applyFit(n, it);
            }
            if (it % cfg.display === 0 || it === end) {
              const s = await net.readScalars();
              const now = performance.now();
              const ips = (it - windowIter) / ((now - windowStart) / 1000);
              windowStart = now;
              windowIter = it;
              last = flatten(s);
              const row = {
                type: "train",
                iter: it,
                stage: k,
                d2: stage.d2,
                lr: learningRate(cfg.solver.baseLr, cfg.solver.policy, it - 1),
                samplesPerSec: ips * cfg.batch,
                elapsedSec: elapsed(),
                ...last,
              };
              await metrics.append(row);
              bar?.update(it, statusLine(last, row.lr, cfg.batch * ips));
            } else bar?.update(it);
            if (cfg.evalEvery > 0 && (it % cfg.evalEvery === 0 || it === end)) {
              await recordEval(it);
              windowStart = performance.now();
            }
            if (it % cfg.display === 0 || it === end) {
              await writeCurve(join(runDir, "curve.svg"), history, cfg);
            }
            if (it % cfg.snapshot === 0 && it !== end) await save("snapshot");
            if (budget !== undefined && elapsed() > budget) budgetReached = true;
            if (interrupted || budgetReached) {
              if (!interrupted && cfg.evalEvery > 0 && it % cfg.evalEvery !== 0) {
                await recordEval(it);
                await writeCurve(join(runDir, "curve.svg"), history, cfg);
              }
              const p = await save(interrupted ? "interrupt" : "time budget");
              const why = interrupted ? "interrupted" : `time budget of ${budget} s reached`;
              log(`${why} at iteration ${it}; checkpoint ${p}; --resume continues the schedule`);
              break;
            }
          }
        } finally {
          await pipe.close();
          const bad = pipe.stats().badSamples;
          if (bad > 0) log(`skipped ${bad} bad sample(s) in stage d2 = ${stage.d2} (--skip-bad)`);
        }
        if (interrupted || budgetReached) {
          return { iter: net.iter, interrupted, budgetReached, checkpoint: lastCheckpoint, last, lastEval };
        }
        const p = await save("stage end");
        log(`stage d2 = ${stage.d2} done at iteration ${net.iter}; checkpoint ${p}`);
        startIter = net.iter;
        resumePrefix = p;
      } finally {
        net.destroy();
      }
    }
  } finally {
    try {
      Deno.removeSignalListener("SIGINT", onSigint);
    } catch { /* not registered */ }
  }
  bar?.finish(`done in ${formatDuration(elapsed())}`);
  return {
    iter: stageBounds(cfg.schedule).at(-1)!.end,
    interrupted: false,
    budgetReached: false,
    checkpoint: lastCheckpoint,
    last,
    lastEval,
  };
}

function flatten(s: Record<string, Float32Array>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(s)) if (v.length === 1) out[k] = v[0];
  return out;
}

function statusLine(s: Record<string, number>, lr: number, sps: number): string {
  const parts = [`lr ${lr.toExponential(1)}`, `${sps.toFixed(1)} samples/s`];
  const show: [string, string, number][] = [
    ["loss_2dhm", "2d", 4],
    ["loss_3dhm", "3d", 4],
    ["loss_int_2d", "int2d", 4],
    ["loss_int_depth", "intz", 4],
    ["mpjpe_rel_int", "rel-int mm", 1],
  ];
  for (const [k, label, d] of show) if (s[k] !== undefined) parts.push(`${label} ${s[k].toFixed(d)}`);
  return parts.join(" ");
}

function evalSummary(e: Record<string, number>): string {
  const f = (k: string) => (e[k] !== undefined ? e[k].toFixed(1) : "-");
  return `MPJPE mm: root-relative ${f("mpjpe_rel_int")} (integral) / ${f("mpjpe_rel_max")} (argmax), ` +
    `PA ${f("pa_mpjpe_int")} / ${f("pa_mpjpe_max")}, seed-style ${f("mpjpe_int")} / ${f("mpjpe_max")}`;
}

/**
 * The held-out samples of the periodic evaluation: the first `evalSamples` of the random test
 * subset `deno task eval` draws with the run's seed.
 */
async function heldOutIds(cfg: RunConfig): Promise<number[]> {
  return sampleIds((await datasetSplits(cfg.data)).test, { count: cfg.evalSamples, seed: cfg.seed });
}

/**
 * The held-out batches, kept after the first evaluation: they are not augmented, so every later
 * evaluation (of any stage) would read, decode and crop the same samples into the same batches.
 */
interface HeldOutBatches {
  batches: Batch[] | null;
}

/** Most bytes of held-out batches kept in memory (the seed preset's 240 samples at 256 px take ~190 MiB). */
const HELD_OUT_KEEP_BYTES = 256 * 2 ** 20;

/** Runs the net's inference program over the held-out ids; returns the mean of every scalar. */
async function heldOutEval(
  net: Net,
  cfg: RunConfig,
  ids: number[],
  kept: HeldOutBatches,
): Promise<Record<string, number>> {
  await net.readScalars(); // the training window was read just before; start clean
  if (kept.batches) {
    for (const b of kept.batches) {
      setBatch(net, b);
      net.forward();
    }
    return flatten(await net.readScalars());
  }
  const pipe = createPipeline(cfg.data, {
    source: ids,
    batchSize: cfg.batch,
    inputSize: cfg.model.inputSize,
    augment: false,
    workers: cfg.workers,
    keepLast: false,
    channelOrder: cfg.channelOrder,
    legacy: pipelineLegacy(cfg),
  });
  const batches: Batch[] = [];
  let bytes = 0;
  try {
    for await (const b of pipe) {
      setBatch(net, b);
      net.forward();
      for (const v of Object.values(b)) if (ArrayBuffer.isView(v)) bytes += v.byteLength;
      if (bytes <= HELD_OUT_KEEP_BYTES) batches.push(b);
    }
  } finally {
    await pipe.close();
  }
  if (bytes <= HELD_OUT_KEEP_BYTES) kept.batches = batches;
  return flatten(await net.readScalars());
}

/** One row of metrics.jsonl: a training window's scalars or a held-out evaluation. */
type MetricsRow = Record<string, number | string>;

/** metrics.jsonl: every row this run has written, appended as training goes. */
class MetricsLog {
  readonly rows: MetricsRow[];
  readonly #path: string;

  private constructor(path: string, rows: MetricsRow[]) {
    this.#path = path;
    this.rows = rows;
  }

  /**
   * Opens the log of a new run (emptied), or of a run resumed at `resumeIter`: its rows up to that
   * iteration are kept and the later ones (written after the checkpoint) dropped.
   */
  static async open(path: string, resumeIter: number | null): Promise<MetricsLog> {
    let rows: MetricsRow[] = [];
    if (resumeIter !== null) {
      try {
        rows = (await Deno.readTextFile(path)).split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l))
          .filter((r) => r.iter <= resumeIter);
      } catch { /* no log yet */ }
    }
    await Deno.writeTextFile(path, rows.map((r) => JSON.stringify(r) + "\n").join(""));
    return new MetricsLog(path, rows);
  }

  /** Adds a row, on disk too. */
  async append(row: MetricsRow): Promise<void> {
    this.rows.push(row);
    await Deno.writeTextFile(this.#path, JSON.stringify(row) + "\n", { append: true });
  }
}

/** The network of one stage, with the run's solver; training batches are augmented, so its monitors compare with aug3d. */
async function buildStageNet(gpu: Gpu, cfg: RunConfig, d2: number, prewarm = false): Promise<Net> {
  const netCfg = stageNetConfig(cfg, d2, { monitorGt: "aug3d" });
  return await Net.build(gpu, {
    name: `${cfg.preset}-d${d2}`,
    inputs: poseNetInputs(netCfg),
    layers: poseNetLayers(netCfg),
  }, { solver: makeSolver(cfg.solver), seed: cfg.seed, monitorEvery: TRAIN_MONITOR_EVERY, prewarm });
}

/**
 * Memory for processed training samples when training does not augment (the tiny preset's
 * default): from the second epoch on a batch is copied from memory instead of read, decoded and
 * warped again, which on a CPU adapter frees the cores for the kernels. 1 GiB holds the 6,000
 * synthetic training samples at input 64 (295 MiB) and ~1,300 at the seed's 256.
 */
const SAMPLE_CACHE_MIB = 1024;

/**
 * The augmented training batches of stage `k`, starting after the `skipBatches` the stage has
 * already trained (a resumed run sees exactly the batches an uninterrupted one would).
 */
function trainingBatches(
  cfg: RunConfig,
  k: number,
  o: { skipBatches: number; log: (line: string) => void },
): Pipeline {
  return createPipeline(cfg.data, {
    source: { kind: "random", split: "train" },
    batchSize: cfg.batch,
    inputSize: cfg.model.inputSize,
    augment: { flipProb: cfg.flipProb, maxRotateDeg: cfg.maxRotateDeg, scaleRange: cfg.scaleRange },
    workers: cfg.workers,
    seed: cfg.seed * 1009 + k,
    skipSamples: o.skipBatches * cfg.batch,
    cacheMiB: SAMPLE_CACHE_MIB,
    skipBad: cfg.skipBad,
    log: o.log,
    channelOrder: cfg.channelOrder,
    legacy: pipelineLegacy(cfg),
  });
}
