/**
 * `deno task train`: trains the pose network, one coarse-to-fine stage after another.
 *
 * With no arguments it builds (or reuses) the default synthetic dataset and trains the `tiny`
 * preset. Every run writes a folder with its config, checkpoints, a JSONL metrics log and a
 * training-curve plot; `--resume` continues a run exactly where its last checkpoint left it.
 * @module
 */
import { parseArgs } from "node:util";
import { join, resolve } from "node:path";
import { describeGpu, type Gpu, openGpu } from "../kernels/device.ts";
import { Net } from "../graph/net.ts";
import {
  findLatestCheckpoint,
  formatLoadReport,
  loadCheckpoint,
  saveCheckpoint,
} from "../graph/checkpoint.ts";
import { poseNetInputs, poseNetLayers } from "../graph/models/pose_net.ts";
import { modelConfig, PRESETS } from "../graph/models/presets.ts";
import {
  makeSolver,
  newestRun,
  parseRunConfig,
  pipelineLegacy,
  type RunConfig,
  type SolverSpec,
  stageBounds,
  stageNetConfig,
  type StageSpec,
} from "../run/config.ts";
import { learningRate, type LrPolicy } from "../graph/solver.ts";
import { type Batch, createPipeline } from "../stages/pipeline.ts";
import { ensureDefaultDataset } from "../io/dataset_cache.ts";
import { formatDuration, ProgressBar } from "../io/progress.ts";
import { linePlotSvg, type Series } from "../io/plot.ts";
import { checkDatasetRoot, datasetSplits } from "../io/manifest.ts";
import { randomIds } from "../stages/sources.ts";
import { setBatch } from "../run/batch.ts";

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

const CHECKPOINT_DIR = "checkpoints";

/** Trains every stage of `cfg` into `opts.runDir`. */
export async function train(cfg: RunConfig, opts: TrainOptions): Promise<TrainResult> {
  const runDir = resolve(opts.runDir);
  const ckptDir = join(runDir, CHECKPOINT_DIR);
  await Deno.mkdir(ckptDir, { recursive: true });
  const configPath = join(runDir, "config.json");
  await Deno.writeTextFile(configPath, JSON.stringify(cfg, null, 2) + "\n");
  const metricsPath = join(runDir, "metrics.jsonl");
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
  const history = opts.resume ? await readHistory(metricsPath, startIter) : [];
  if (!opts.resume) await Deno.writeTextFile(metricsPath, "");
  else {await Deno.writeTextFile(
      metricsPath,
      history.map((h) => JSON.stringify(h)).join("\n") + (history.length ? "\n" : ""),
    );}

  let interrupted = false;
  let budgetReached = false;
  const onSigint = () => {
    if (interrupted) Deno.exit(130);
    interrupted = true;
  };
  try {
    Deno.addSignalListener("SIGINT", onSigint);
  } catch { /* signals unavailable (e.g. in some test runners) */ }
  const t0 = performance.now();
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

  try {
    for (let k = 0; k < cfg.schedule.length; k++) {
      const stage = cfg.schedule[k];
      const { start, end } = bounds[k];
      if (startIter >= end) continue; // finished before the resume point
      // Training batches are augmented: their monitors compare with the augmented GT (aug3d).
      const netCfg = stageNetConfig(cfg, stage.d2, { monitorGt: "aug3d" });
      const solver = makeSolver(cfg.solver);
      const net = await Net.build(gpu, {
        name: `${cfg.preset}-d${stage.d2}`,
        inputs: poseNetInputs(netCfg),
        layers: poseNetLayers(netCfg),
      }, { solver, seed: cfg.seed });
      try {
        log(
          `stage ${k + 1}/${cfg.schedule.length}: d2 = ${stage.d2}, iterations ${start}..${end}, ` +
            `${(net.paramCount() / 1e6).toFixed(3)} M parameters, ${
              (net.gpuBytes / 2 ** 20).toFixed(1)
            } MiB on the GPU, ` +
            `${net.dispatchCount()} dispatches per step`,
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
        const done = net.iter - start;
        const pipe = createPipeline(cfg.data, {
          source: { kind: "random", split: "train" },
          batchSize: cfg.batch,
          inputSize: cfg.model.inputSize,
          augment: { flipProb: cfg.flipProb, maxRotateDeg: cfg.maxRotateDeg, scaleRange: cfg.scaleRange },
          workers: cfg.workers,
          seed: cfg.seed * 1009 + k,
          skipSamples: done * cfg.batch,
          skipBad: cfg.skipBad,
          log,
          channelOrder: cfg.channelOrder,
          legacy: pipelineLegacy(cfg),
        });
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
        const recordEval = async (it: number) => {
          lastEval = await heldOutEval(net, cfg, evalIds);
          const row = {
            type: "eval",
            iter: it,
            stage: k,
            d2: stage.d2,
            samples: evalIds.length,
            ...lastEval,
          };
          history.push(row);
          await Deno.writeTextFile(metricsPath, JSON.stringify(row) + "\n", { append: true });
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
                elapsedSec: (now - t0) / 1000,
                ...last,
              };
              history.push(row);
              await Deno.writeTextFile(metricsPath, JSON.stringify(row) + "\n", { append: true });
              bar?.update(it, statusLine(last, row.lr, cfg.batch * ips));
            } else bar?.update(it);
            if (cfg.evalEvery > 0 && (it % cfg.evalEvery === 0 || it === end)) {
              await recordEval(it);
              windowStart = performance.now();
            }
            if (it % cfg.display === 0 || it === end) {
              await writePlot(join(runDir, "curve.svg"), history, cfg);
            }
            if (it % cfg.snapshot === 0 && it !== end) await save("snapshot");
            const budget = opts.maxSeconds ?? cfg.timeBudgetSec;
            if (budget !== undefined && (performance.now() - t0) / 1000 > budget) budgetReached = true;
            if (interrupted || budgetReached) {
              if (!interrupted && cfg.evalEvery > 0 && it % cfg.evalEvery !== 0) {
                await recordEval(it);
                await writePlot(join(runDir, "curve.svg"), history, cfg);
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
  bar?.finish(`done in ${formatDuration((performance.now() - t0) / 1000)}`);
  return {
    iter: totalIters,
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

/** A fixed, seeded subset of the test split for periodic held-out evaluation. */
async function heldOutIds(cfg: RunConfig): Promise<number[]> {
  const splits = await datasetSplits(cfg.data);
  const ids: number[] = [];
  const seen = new Set<number>();
  const total = splits.test.reduce((s, [lo, hi]) => s + hi - lo + 1, 0);
  const want = Math.min(cfg.evalSamples, total);
  for (const id of randomIds(splits.test, { seed: cfg.seed, stream: 77 })) {
    if (!seen.has(id)) {
      seen.add(id);
      ids.push(id);
    }
    if (ids.length >= want) break;
  }
  return ids;
}

/** Runs the net's inference program over the held-out ids; returns the mean of every scalar. */
async function heldOutEval(net: Net, cfg: RunConfig, ids: number[]): Promise<Record<string, number>> {
  await net.readScalars(); // the training window was read just before; start clean
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
  try {
    for await (const b of pipe) {
      setBatch(net, b);
      net.forward();
    }
  } finally {
    await pipe.close();
  }
  return flatten(await net.readScalars());
}

async function readHistory(path: string, upTo: number): Promise<Record<string, number | string>[]> {
  try {
    return (await Deno.readTextFile(path)).split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l))
      .filter((r) => r.iter <= upTo);
  } catch {
    return [];
  }
}

/** Writes the training curve: losses (log scale) and held-out errors. */
async function writePlot(
  path: string,
  history: Record<string, number | string>[],
  cfg: RunConfig,
): Promise<void> {
  const series = (type: string, key: string, name = key): Series => ({
    name,
    points: history.filter((r) => r.type === type && typeof r[key] === "number").map((
      r,
    ) => [r.iter as number, r[key] as number]),
  });
  const lossKeys = ["loss_2dhm", "loss_3dhm", "loss_int_2d", "loss_int_depth"].filter((k) =>
    history.some((r) => typeof r[k] === "number")
  );
  const svg = linePlotSvg([
    { title: "training losses", series: lossKeys.map((k) => series("train", k)), logY: true },
    {
      title: "MPJPE on training batches (mm)",
      series: [
        series("train", "mpjpe_rel_int", "root-rel, integral"),
        series("train", "mpjpe_rel_max", "root-rel, argmax"),
      ],
    },
    {
      title: `held-out MPJPE (mm), ${cfg.evalSamples} test samples`,
      series: [
        series("eval", "mpjpe_rel_int", "root-rel, integral"),
        series("eval", "mpjpe_rel_max", "root-rel, argmax"),
        series("eval", "pa_mpjpe_int", "PA, integral"),
      ],
    },
  ], { title: `volpose ${cfg.preset}: ${cfg.schedule.map((s) => `d${s.d2}`).join(" -> ")}` });
  await Deno.writeTextFile(path, svg);
}

// ---------------------------------------------------------------------------------------------
// Command line

const HELP = `volpose train: train the coarse-to-fine volumetric pose network

Usage: deno task train [options]

With no options: trains the "tiny" preset on the built-in synthetic dataset (generated on first
use) for ten minutes (its time budget), writing runs/<name>/.

Data and run
  --data DIR            dataset root in the seed's layout (default: built-in synthetic data)
  --run DIR             run folder (default: runs/<preset>-<date>)
  --resume [DIR]        continue a run from its latest checkpoint (default: the newest run)
  --from PREFIX         start from a checkpoint's weights (copied by name, rest re-initialised)
  --time-budget S       train at most S seconds, then finish with a checkpoint (default for tiny
                        without --iters: 600); --resume continues the schedule

Model
  --preset NAME         ${Object.keys(PRESETS).join(" | ")} (default tiny)
  --input N             input crop side      --features N    hourglass width f
  --stem A,B            stem channels        --stacks N      hourglass stacks
  --link N              stack link channels  --norm batch|group  (--groups N)
  --modules N           residual modules per hourglass branch (3 in the seed)
  --d1 N                stage-1 depth (1)    --d2 N          depth of a single-stage run

Schedule and solver
  --schedule 2,4,8      coarse-to-fine depths, trained one after another (weights handed on)
  --iters N[,N...]      iterations per stage (one value applies to every stage)
  --batch N             batch size (default: 3 for seed, 8 for small/tiny)
  --solver rmsprop|sgd|adam   --lr X   --momentum X   --weight-decay X
  --lr-policy fixed|step|multistep|poly   --gamma X   --stepsize N   --stepvalues N,N   --power X
  --seed N              seed of initialisation, sampling and augmentation (default 1)
  --flip-prob P         probability of the left-right flip augmentation (default 0.5, the seed's)
  --rotate DEG          largest rotation of the augmentation (default 40, the seed's)
  --scale LO,HI         scale range of the augmentation (default 0.7,1.3, the seed's)
                        (tiny: none of the three by default, i.e. 0, 0 and 1,1)

Losses
  --loss-2d W  --loss-3d W|seed  --loss-int W  --int-norm l1|l2  --loss-smoothl1 W  --loss-js W
  --softmax-scale X     pre-scale of the 3D softmax (default 50)

Seed compatibility (SEED_SPEC §8; clean by default)
  --legacy LIST         comma list of: heatmaps, depth-bounds, crop-as-bbx, softmax, augment,
                        unswapped-depth, all
  --bgr | --rgb         input channel order (default bgr, as the seed)

Logging
  --display N  --snapshot N  --eval-every N  --eval-samples N  --workers N  --quiet
  --skip-bad            skip and count samples with bad files instead of stopping
  -h, --help
`;

const LEGACY_NAMES = [
  "heatmaps",
  "depth-bounds",
  "crop-as-bbx",
  "softmax",
  "augment",
  "unswapped-depth",
] as const;

function num(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!Number.isFinite(x)) throw new Error(`--${name}: expected a number, got "${v}"`);
  return x;
}

function prob(v: string | undefined, name: string): number | undefined {
  const x = num(v, name);
  if (x !== undefined && (x < 0 || x > 1)) {
    throw new Error(`--${name}: expected a probability in [0, 1], got "${v}"`);
  }
  return x;
}

function rotation(v: string | undefined): number | undefined {
  const x = num(v, "rotate");
  if (x !== undefined && (x < 0 || x > 180)) {
    throw new Error(`--rotate: expected degrees in [0, 180], got "${v}"`);
  }
  return x;
}

function scaleRange(v: string | undefined): [number, number] | undefined {
  if (v === undefined) return undefined;
  const p = v.split(",").map((x) => Number(x.trim()));
  if (p.length !== 2 || !p.every((x) => Number.isFinite(x) && x > 0) || p[0] > p[1]) {
    throw new Error(`--scale: expected LO,HI with 0 < LO <= HI (e.g. 0.7,1.3), got "${v}"`);
  }
  return [p[0], p[1]];
}

function int(v: string | undefined, name: string, min = 1): number | undefined {
  const x = num(v, name);
  if (x !== undefined && (!Number.isInteger(x) || x < min)) {
    throw new Error(`--${name}: expected an integer >= ${min}, got "${v}"`);
  }
  return x;
}

function list(v: string | undefined, name: string): number[] | undefined {
  if (v === undefined) return undefined;
  return v.split(",").map((s) => int(s.trim(), name, 1)!);
}

/** The default number of iterations per preset when no --iters is given. */
const DEFAULT_ITERS: Record<string, number> = { tiny: 3000, small: 20000, seed: 720000 };

/** Default time budget (seconds) when neither --iters nor --time-budget is given: tiny trains ~10 minutes. */
const DEFAULT_BUDGET: Record<string, number> = { tiny: 600 };

/**
 * Augmentation defaults by preset, where they differ from the seed's (flip 0.5, rotation 40 deg,
 * scale 0.7-1.3). `tiny` trains on the synthetic data by default, whose test images are rendered like
 * its training images (random cameras, upright, no mirror): there, no augmentation learned clearly
 * faster (README, "Training on a GPU"), and without the mirror the outfits' left-right colour cue
 * stays consistent. `--flip-prob`, `--rotate` and `--scale` override these.
 */
const DEFAULT_AUGMENT: Record<
  string,
  { flipProb: number; maxRotateDeg: number; scaleRange: [number, number] }
> = {
  tiny: { flipProb: 0, maxRotateDeg: 0, scaleRange: [1, 1] },
};

/** Builds a run configuration from command-line values. */
export function configFromArgs(v: Record<string, string | boolean | undefined>, data: string): RunConfig {
  const s = (k: string) => (typeof v[k] === "string" ? v[k] as string : undefined);
  const preset = s("preset") ?? "tiny";
  const stem = list(s("stem"), "stem");
  const model = modelConfig(preset, {
    inputSize: int(s("input"), "input"),
    features: int(s("features"), "features"),
    stem: stem ? [stem[0], stem[1]] : undefined,
    stacks: int(s("stacks"), "stacks"),
    modules: int(s("modules"), "modules"),
    link: int(s("link"), "link"),
    d1: int(s("d1"), "d1"),
    norm: s("norm") as "batch" | "group" | undefined,
    groups: int(s("groups"), "groups"),
  });
  if (model.norm !== "batch" && model.norm !== "group") {
    throw new Error(`--norm: expected batch or group, got "${model.norm}"`);
  }
  const depths = list(s("schedule"), "schedule") ?? [int(s("d2"), "d2") ?? model.d2];
  const iters = list(s("iters"), "iters") ?? [DEFAULT_ITERS[preset] ?? 1000];
  if (iters.length !== 1 && iters.length !== depths.length) {
    throw new Error(`--iters: give one value or one per stage (${depths.length}), got ${iters.length}`);
  }
  const schedule: StageSpec[] = depths.map((d2, i) => ({
    d2,
    iters: iters.length === 1 ? iters[0] : iters[i],
  }));
  const policyName = s("lr-policy") ?? "fixed";
  const gamma = num(s("gamma"), "gamma") ?? 0.1;
  let policy: LrPolicy;
  switch (policyName) {
    case "fixed":
      policy = { type: "fixed" };
      break;
    case "step":
      policy = { type: "step", gamma, stepsize: int(s("stepsize"), "stepsize") ?? 100000 };
      break;
    case "multistep":
      policy = { type: "multistep", gamma, stepvalues: list(s("stepvalues"), "stepvalues") ?? [] };
      break;
    case "poly":
      policy = {
        type: "poly",
        power: num(s("power"), "power") ?? 1,
        maxIter: schedule.reduce((a, b) => a + b.iters, 0),
      };
      break;
    default:
      throw new Error(`--lr-policy: expected fixed, step, multistep or poly, got "${policyName}"`);
  }
  const solverType = (s("solver") ?? "rmsprop") as SolverSpec["type"];
  if (!["rmsprop", "sgd", "adam"].includes(solverType)) {
    throw new Error(`--solver: expected rmsprop, sgd or adam, got "${solverType}"`);
  }
  const isSeed = preset === "seed";
  const legacyList = (s("legacy") ?? "").split(",").map((x) => x.trim()).filter(Boolean);
  for (const l of legacyList) {
    if (l !== "all" && !(LEGACY_NAMES as readonly string[]).includes(l)) {
      throw new Error(`--legacy: unknown "${l}"; expected a comma list of ${LEGACY_NAMES.join(", ")}, all`);
    }
  }
  const has = (l: string) => legacyList.includes("all") || legacyList.includes(l);
  const loss3d = s("loss-3d");
  const intNorm = s("int-norm") ?? "l1";
  if (intNorm !== "l1" && intNorm !== "l2") {
    throw new Error(`--int-norm: expected l1 or l2, got "${intNorm}"`);
  }
  return {
    format: "volpose-run/1",
    data,
    preset,
    model,
    schedule,
    batch: int(s("batch"), "batch") ?? (isSeed ? 3 : 8),
    solver: {
      type: solverType,
      baseLr: num(s("lr"), "lr") ?? (isSeed ? 2.5e-5 : 1e-3),
      policy,
      weightDecay: num(s("weight-decay"), "weight-decay") ?? 0,
      momentum: num(s("momentum"), "momentum"),
    },
    losses: {
      // Off the seed preset, training is led by the integral loss (heatmap L2 at 0.1): measured to learn
      // faster per sample on small networks (README, "Results").
      heatmap2d: num(s("loss-2d"), "loss-2d") ?? (isSeed ? 1 : 0.1),
      heatmap3d: loss3d === undefined || loss3d === "seed"
        ? (isSeed ? "seed" : 0.1)
        : num(loss3d, "loss-3d")!,
      integral: num(s("loss-int"), "loss-int") ?? (isSeed ? 0 : 1),
      integralNorm: intNorm,
      smoothL1: num(s("loss-smoothl1"), "loss-smoothl1") ?? 0,
      js: num(s("loss-js"), "loss-js") ?? 0,
    },
    softmaxScale: num(s("softmax-scale"), "softmax-scale") ?? 50,
    legacy: {
      heatmaps: has("heatmaps"),
      depthBounds: has("depth-bounds"),
      cropAsBbx: has("crop-as-bbx"),
      softmax: has("softmax"),
      augment: has("augment"),
      unswappedDepth: has("unswapped-depth"),
    },
    channelOrder: v.rgb ? "rgb" : "bgr",
    seed: int(s("seed"), "seed", 0) ?? 1,
    workers: int(s("workers"), "workers", 0) ?? navigator.hardwareConcurrency,
    display: int(s("display"), "display") ?? (isSeed ? 10 : 50),
    snapshot: int(s("snapshot"), "snapshot") ?? (isSeed ? 10000 : 500),
    evalEvery: int(s("eval-every"), "eval-every", 0) ?? (isSeed ? 0 : 500),
    evalSamples: int(s("eval-samples"), "eval-samples") ?? 240,
    skipBad: v["skip-bad"] === true,
    flipProb: prob(s("flip-prob"), "flip-prob") ?? DEFAULT_AUGMENT[preset]?.flipProb,
    maxRotateDeg: rotation(s("rotate")) ?? DEFAULT_AUGMENT[preset]?.maxRotateDeg,
    scaleRange: scaleRange(s("scale")) ?? DEFAULT_AUGMENT[preset]?.scaleRange,
    timeBudgetSec: num(s("time-budget"), "time-budget") ??
      (s("iters") === undefined ? DEFAULT_BUDGET[preset] : undefined),
  };
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      help: { type: "boolean", short: "h" },
      data: { type: "string" },
      run: { type: "string" },
      resume: { type: "boolean" },
      from: { type: "string" },
      "time-budget": { type: "string" },
      preset: { type: "string" },
      input: { type: "string" },
      features: { type: "string" },
      stem: { type: "string" },
      stacks: { type: "string" },
      modules: { type: "string" },
      "flip-prob": { type: "string" },
      rotate: { type: "string" },
      scale: { type: "string" },
      link: { type: "string" },
      norm: { type: "string" },
      groups: { type: "string" },
      d1: { type: "string" },
      d2: { type: "string" },
      schedule: { type: "string" },
      iters: { type: "string" },
      batch: { type: "string" },
      solver: { type: "string" },
      lr: { type: "string" },
      momentum: { type: "string" },
      "weight-decay": { type: "string" },
      "lr-policy": { type: "string" },
      gamma: { type: "string" },
      stepsize: { type: "string" },
      stepvalues: { type: "string" },
      power: { type: "string" },
      seed: { type: "string" },
      "loss-2d": { type: "string" },
      "loss-3d": { type: "string" },
      "loss-int": { type: "string" },
      "int-norm": { type: "string" },
      "loss-smoothl1": { type: "string" },
      "loss-js": { type: "string" },
      "softmax-scale": { type: "string" },
      legacy: { type: "string" },
      bgr: { type: "boolean" },
      rgb: { type: "boolean" },
      display: { type: "string" },
      snapshot: { type: "string" },
      "eval-every": { type: "string" },
      "eval-samples": { type: "string" },
      workers: { type: "string" },
      "skip-bad": { type: "boolean" },
      quiet: { type: "boolean" },
    },
    allowPositionals: true,
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const gpu = await openGpu();
  console.error(describeGpu(gpu));
  const maxSeconds = values.resume ? num(values["time-budget"], "time-budget") : undefined;
  let cfg: RunConfig;
  let runDir: string;
  if (values.resume) {
    const dir = values.run ?? await newestRun("runs");
    if (!dir) throw new Error("--resume: no run found under runs/; give --run DIR");
    const path = join(dir, "config.json");
    cfg = parseRunConfig(await Deno.readTextFile(path), path);
    runDir = dir;
    console.error(`resuming ${dir}`);
  } else {
    const data = values.data ?? await ensureDefaultDataset({ log: (l) => console.error(l) });
    cfg = configFromArgs(values, resolve(data));
    const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
    runDir = values.run ?? join("runs", `${cfg.preset}-${stamp}`);
  }
  console.error(
    `run ${runDir}: preset ${cfg.preset} (input ${cfg.model.inputSize}, f ${cfg.model.features}, ${cfg.model.stacks} stacks), ` +
      `schedule ${cfg.schedule.map((s) => `d${s.d2} x ${s.iters}`).join(", ")}, batch ${cfg.batch}, ` +
      `${cfg.solver.type} lr ${cfg.solver.baseLr}; data ${cfg.data}`,
  );
  const r = await train(cfg, {
    runDir,
    resume: values.resume,
    from: values.from,
    gpu,
    progress: !values.quiet,
    maxSeconds,
  });
  console.error(
    r.interrupted
      ? `stopped at iteration ${r.iter}; resume with: deno task train --resume --run ${runDir}`
      : `finished at iteration ${r.iter}${r.budgetReached ? " (time budget)" : ""}; evaluate with: ` +
        `deno task eval --run ${runDir}`,
  );
  return r.interrupted ? 130 : 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    console.error(`train: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
