/**
 * The training-step benchmark: how long one step (forward, losses, backward, solver update) of a
 * preset takes on real data, how many dispatches it records, what the JS side of a step costs,
 * and where the GPU time goes by kernel family.
 *
 * Timing: a run submits several steps back to back and waits once, because waiting for the
 * queue costs a fixed ~10 ms in Deno (completion is polled); steps per run are sized so a run
 * lasts about a second, and the figure is the median over runs. The JS cost is the wall time of
 * `net.step()` itself (hyper-parameter upload, encoding every dispatch, submit) with the queue
 * idle: a submit made while an earlier one still runs waits for it (seen with llvmpipe), so a
 * step's encoding overlaps the previous step's GPU work and its cost hides behind it as long as
 * it is shorter.
 * @module
 */
import type { Gpu } from "../../kernels/device.ts";
import { Net } from "../../graph/net.ts";
import { poseNetInputs, poseNetLayers } from "../../graph/models/pose_net.ts";
import { RMSProp } from "../../graph/solver.ts";
import { type RunConfig, stageNetConfig, TRAIN_MONITOR_EVERY } from "../config.ts";
import { setBatch } from "../batch.ts";
import { byFamily } from "../../graph/profile.ts";
import { type Batch, createPipeline } from "../../stages/pipeline.ts";
import { median } from "./stats.ts";
import process from "node:process";

/** A preset to time, with an optional input-size override: "tiny", "tiny@64", "small". */
export interface PresetSpec {
  preset: string;
  input?: number;
}

/** Parses "name" or "name@input". */
export function parsePresetSpec(s: string): PresetSpec {
  const m = /^([a-z0-9_-]+)(?:@(\d+))?$/i.exec(s.trim());
  if (!m) throw new Error(`preset "${s}": expected NAME or NAME@INPUT, e.g. tiny@64`);
  return m[2] ? { preset: m[1], input: Number(m[2]) } : { preset: m[1] };
}

/** Names a spec as the bench reports it: "tiny@32". */
export function specName(preset: string, input: number): string {
  return `${preset}@${input}`;
}

/** One kernel family's part of a profiled step. */
export interface FamilyShare {
  /** Summed GPU time of the family's dispatches in one profiled step. */
  ms: number;
  /** Fraction of the profiled step's GPU time. */
  share: number;
  dispatches: number;
}

/** Result of {@linkcode benchTrainStep}. */
export interface TrainStepResult {
  preset: string;
  /** "preset@input". */
  name: string;
  inputSize: number;
  d2: number;
  batch: number;
  paramsM: number;
  dispatchesPerStep: number;
  gpuMiB: number;
  /** Median wall time per step (ms) over the timed runs. */
  msPerStep: number;
  minMsPerStep: number;
  samplesPerSec: number;
  /** Median wall time of the JS call that records and submits one step, with the queue idle. */
  encodeMsPerStep: number;
  /**
   * Median CPU time of the whole process over wall time in the timed runs: on a CPU adapter, how
   * many cores the step keeps busy (its kernels run on the process's own threads).
   */
  cpuCores: number;
  runs: number;
  stepsPerRun: number;
  /**
   * Time per kernel family in one step, largest first: on CPU adapters by replaying each family
   * (`profileMethod` "replay", graph/profile.ts), elsewhere from per-dispatch timestamps.
   */
  families: Record<string, FamilyShare>;
  profileMethod: "replay" | "timestamps";
  /** Sum of the profiled dispatch times. */
  profiledMs: number;
}

/** One training batch from the dataset at the given input size. */
export async function oneBatch(data: string, inputSize: number, batch: number): Promise<Batch> {
  const pipe = createPipeline(data, {
    source: "train",
    batchSize: batch,
    inputSize,
    augment: true,
    workers: 1,
    seed: 3,
  });
  try {
    for await (const b of pipe) return b;
  } finally {
    await pipe.close();
  }
  throw new Error(`bench: no training batch could be read from ${data}`);
}

/** Options of {@linkcode benchTrainStep}. */
export interface TrainBenchOptions {
  /** Fewer and shorter runs (a smoke test). */
  quick?: boolean;
  /** Timed runs (default 5, 2 when quick). */
  runs?: number;
  /** Target wall time of one timed run in ms (default 1000, 200 when quick). */
  runMs?: number;
  /** Profile one step per kernel family (default true). */
  profile?: boolean;
}

/** Times the training step of `run`'s first stage on one real batch, repeated. */
export async function benchTrainStep(
  gpu: Gpu,
  run: RunConfig,
  opts: TrainBenchOptions = {},
): Promise<TrainStepResult> {
  const d2 = run.schedule[0].d2;
  const cfg = stageNetConfig(run, d2);
  const net = await Net.build(gpu, { inputs: poseNetInputs(cfg), layers: poseNetLayers(cfg) }, {
    solver: new RMSProp({ baseLr: run.solver.baseLr }),
    // Timed as training runs it: the monitor-only layers every TRAIN_MONITOR_EVERY steps.
    monitorEvery: TRAIN_MONITOR_EVERY,
    // A CPU adapter compiles from both ends where the shader cache lacks the kernels (kernels/prewarm.ts).
    prewarm: true,
  });
  try {
    setBatch(net, await oneBatch(run.data, cfg.model.inputSize, cfg.batch));
    // Warm-up: compile every pipeline, first-touch every buffer; the second step is timed alone,
    // after the prewarm worker (if one started) has stopped taking a core.
    net.step();
    await net.sync();
    await net.prewarm?.done;
    const t0 = performance.now();
    net.step();
    await net.sync();
    const once = performance.now() - t0;
    const runs = opts.runs ?? (opts.quick ? 2 : 5);
    const runMs = opts.runMs ?? (opts.quick ? 200 : 1000);
    const steps = Math.max(1, Math.min(100, Math.round(runMs / Math.max(once, 1))));
    const times: number[] = [], encode: number[] = [], cores: number[] = [];
    for (let r = 0; r < runs; r++) {
      const cpu = process.cpuUsage();
      const t = performance.now();
      for (let i = 0; i < steps; i++) net.step();
      await net.sync();
      const wall = performance.now() - t;
      const used = process.cpuUsage(cpu);
      times.push(wall / steps);
      cores.push((used.user + used.system) / 1000 / wall);
      // The JS side alone: with the queue idle, submit does not wait for an earlier step.
      const e = performance.now();
      net.step();
      encode.push(performance.now() - e);
      await net.sync();
    }
    const ms = median(times);
    const families: Record<string, FamilyShare> = {};
    let profiledMs = 0;
    if (opts.profile ?? true) {
      // CPU adapters: families timed by replay (timestamps do not track their steps) of the
      // program as recorded, each kernel its own dispatch; a slow step replays it 5 times
      // instead of 15.
      const fam = gpu.isFallback
        ? await net.replayProfile("train", { asRecorded: true, ...(ms > 2000 ? { trials: 1 } : {}) })
        : byFamily(await net.profile("train"));
      profiledMs = fam.reduce((s, f) => s + f.ms, 0);
      for (const f of fam) {
        families[f.family] = {
          ms: +f.ms.toFixed(2),
          share: +(f.ms / profiledMs).toFixed(4),
          dispatches: f.count,
        };
      }
    }
    await net.readScalars();
    return {
      preset: run.preset,
      name: specName(run.preset, cfg.model.inputSize),
      inputSize: cfg.model.inputSize,
      d2,
      batch: cfg.batch,
      paramsM: +(net.paramCount() / 1e6).toFixed(4),
      // Averaged over the steps with and without the monitor-only layers.
      dispatchesPerStep: +(
        (net.dispatchCount() + (TRAIN_MONITOR_EVERY - 1) * net.dispatchCount("train-lean")) /
        TRAIN_MONITOR_EVERY
      ).toFixed(1),
      gpuMiB: +(net.gpuBytes / 2 ** 20).toFixed(1),
      msPerStep: +ms.toFixed(2),
      minMsPerStep: +Math.min(...times).toFixed(2),
      samplesPerSec: +((cfg.batch * 1000) / ms).toFixed(2),
      encodeMsPerStep: +median(encode).toFixed(3),
      cpuCores: +median(cores).toFixed(2),
      runs,
      stepsPerRun: steps,
      families,
      profiledMs: +profiledMs.toFixed(2),
      profileMethod: gpu.isFallback ? "replay" : "timestamps",
    };
  } finally {
    net.destroy();
  }
}

/** One line per family, e.g. "conv_wgrad 41% (12 dispatches)". */
export function describeFamilies(r: TrainStepResult, top = 6): string {
  return Object.entries(r.families).slice(0, top).map(([k, f]) =>
    `${k} ${(100 * f.share).toFixed(0)}% (${f.dispatches})`
  ).join(", ");
}

/**
 * The columns of the README's step table, each a set of kernel families (the first word of a
 * kernel's name). Families not listed fall under "other" (pooling, up-sampling, ReLU, the solver).
 */
export const FAMILY_COLUMNS: readonly { title: string; test: (family: string) => boolean }[] = [
  { title: "conv forward", test: (f) => f.startsWith("conv_fwd") || f === "gemm" },
  { title: "input grad", test: (f) => f.startsWith("conv_dgrad") },
  { title: "weight grad", test: (f) => f.startsWith("conv_wgrad") || f === "conv_bias_grad" },
  { title: "batch norm", test: (f) => f.startsWith("bn_") || f.startsWith("gn_") || f.startsWith("scale") },
  { title: "add, concat", test: (f) => ["weighted_sum", "scaled_copies", "concat", "split"].includes(f) },
  {
    title: "heads, losses",
    test: (f) =>
      /^(softmax|soft_argmax|euclidean|volume_target|heatmap|coord_loss|pose_errors|mean_error|argmax|depth_|back_project|per_joint_mean|smooth_l1|js_|integral|adaptive)/
        .test(f),
  },
];

/** Shares of a profiled step per README column, "other" last; they sum to 1. */
export function columnShares(r: TrainStepResult): { title: string; share: number }[] {
  const out = FAMILY_COLUMNS.map((c) => ({ title: c.title, share: 0 }));
  const other = { title: "other", share: 0 };
  for (const [family, f] of Object.entries(r.families)) {
    const k = FAMILY_COLUMNS.findIndex((c) => c.test(family));
    (k >= 0 ? out[k] : other).share += f.share;
  }
  return [...out, other];
}

/**
 * The per-preset Markdown table the README shows (step, samples/s, dispatches, JS, cores, shares).
 * "timed / step" is the profiled families' total against the step. CPU adapters replay the
 * program as recorded, each kernel its own dispatch (98-99% of the step on tiny@32 and tiny@64
 * with llvmpipe before co-dispatch), so there the excess over 100% is about what co-dispatch
 * saves; per-dispatch timestamps carry each dispatch's launch cost, so the shares are only as
 * good as that figure.
 */
export function trainTable(rows: readonly TrainStepResult[]): string {
  if (rows.length === 0) return "";
  const cols = columnShares(rows[0]).map((c) => c.title);
  const head = [
    "preset (batch " + rows[0].batch + ")",
    "step",
    "samples/s",
    "dispatches",
    "JS per step",
    "cores busy",
    "timed / step",
    ...cols,
  ];
  const step = (ms: number) => ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`;
  const lines = rows.map((r) => [
    r.name,
    step(r.msPerStep),
    r.samplesPerSec.toFixed(1),
    String(r.dispatchesPerStep),
    `${r.encodeMsPerStep.toFixed(1)} ms`,
    r.cpuCores.toFixed(2),
    r.profiledMs > 0 ? `${Math.round((100 * r.profiledMs) / r.msPerStep)}%` : "-",
    ...columnShares(r).map((c) => `${Math.round(100 * c.share)}%`),
  ]);
  return [head, head.map(() => "---"), ...lines].map((l) => `| ${l.join(" | ")} |`).join("\n");
}
