/**
 * Timing of the volumetric head's per-step GPU work at the seed's full size (D=64, J=16, S=64,
 * batch 3): the 3D target render, and the x50 softmax + soft-argmax forward and backward.
 * Each figure is the median wall time of several submits, each awaited to completion, so it
 * includes one submit's overhead; per-sample figures divide by the batch.
 *
 *   deno run -A run/bench/volumetric.ts [--runs 9] [--batch 3] [--depth-bins 64] [--size 64]
 * @module
 */
import { parseArgs } from "node:util";
import { describeGpu, type Gpu, sharedGpu } from "../../kernels/device.ts";
import type { Layer, Shape } from "../../graph/layer.ts";
import { EuclideanLoss } from "../../graph/layers/euclidean_loss.ts";
import { VolumeTarget } from "../../graph/layers/heatmap_target.ts";
import { SoftArgmax } from "../../graph/layers/integral.ts";
import { SoftmaxHM } from "../../graph/layers/softmax_hm.ts";
import { Net } from "../../graph/net.ts";
import { Rng } from "../../io/prng.ts";
import { SGD } from "../../graph/solver.ts";
import { median } from "./stats.ts";

/** Options of {@linkcode benchVolumetric}. */
export interface VolumetricBenchOptions {
  batch?: number;
  joints?: number;
  size?: number;
  depthBins?: number;
  /** Timed runs per figure (the median is reported; default 9). */
  runs?: number;
  /** Untimed runs first, to compile and warm caches (default 2). */
  warmup?: number;
  gpu?: Gpu;
}

/** Milliseconds per batch and per sample, plus buffer sizes. */
export interface VolumetricBenchResult {
  device: string;
  batch: number;
  joints: number;
  size: number;
  depthBins: number;
  runs: number;
  /** 3D target render, per batch. */
  renderMs: number;
  /** x50 softmax + soft-argmax (+ a tiny coordinate loss) forward, per batch. */
  forwardMs: number;
  /** Forward + backward step, per batch. */
  stepMs: number;
  /** stepMs - forwardMs: the backward through soft-argmax and softmax. */
  backwardMs: number;
  perSample: { renderMs: number; forwardMs: number; backwardMs: number };
  /** Bytes of the rendered target volume [B, J*D, S, S]. */
  targetBytes: number;
  /** Bytes of the softmax output (the same shape; its gradient has the same size again). */
  softmaxBytes: number;
}

/**
 * Median wall time of each of `runs` (awaited one by one). The callbacks are interleaved run by
 * run, so load from other processes drifts into all of them alike and their differences stay
 * meaningful.
 */
async function timeEach(
  gpu: Gpu,
  fns: (() => void)[],
  o: { runs: number; warmup: number },
): Promise<number[]> {
  for (let i = 0; i < o.warmup; i++) for (const f of fns) f();
  await gpu.device.queue.onSubmittedWorkDone();
  const times: number[][] = fns.map(() => []);
  for (let i = 0; i < o.runs; i++) {
    for (const [k, f] of fns.entries()) {
      const t0 = performance.now();
      f();
      await gpu.device.queue.onSubmittedWorkDone();
      times[k].push(performance.now() - t0);
    }
  }
  return times.map(median);
}

async function build(gpu: Gpu, inputs: Record<string, Shape>, layers: Layer[], train: boolean): Promise<Net> {
  return await Net.build(gpu, { name: "bench_volumetric", inputs, layers }, {
    solver: train ? new SGD({ baseLr: 0, momentum: 0 }) : undefined,
    train,
    gradInputs: train ? ["logits"] : [],
  });
}

/** Times the volumetric target render and the softmax + soft-argmax forward and backward. */
export async function benchVolumetric(opts: VolumetricBenchOptions = {}): Promise<VolumetricBenchResult> {
  const gpu = opts.gpu ?? await sharedGpu();
  const B = opts.batch ?? 3, J = opts.joints ?? 16, S = opts.size ?? 64, D = opts.depthBins ?? 64;
  const runs = opts.runs ?? 9, warmup = opts.warmup ?? 2;
  const rng = new Rng(5);
  const joints = rng.fillUniform(new Float32Array(B * J * 2), 0.1, 0.9);
  const depth = rng.fillUniform(new Float32Array(B * J), 0.1, 0.9);
  const volume: Shape = [B, J * D, S, S];

  const render = await build(gpu, { joints: [B, J, 2], depth: [B, J] }, [
    new VolumeTarget("target", { bottoms: ["joints", "depth"], top: "volume", size: S, depthBins: D }),
  ], false);
  render.setInput("joints", joints);
  render.setInput("depth", depth);
  const [renderMs] = await timeEach(gpu, [() => render.forward()], { runs, warmup });
  render.destroy();

  const head = await build(gpu, { logits: volume, gt: [B, J, 3] }, [
    new SoftmaxHM("softmax", { bottom: "logits", top: "prob", depthBins: D, scale: 50 }),
    new SoftArgmax("soft_argmax", { bottom: "prob", top: "coords", depthBins: D }),
    new EuclideanLoss("coord_loss", { pred: "coords", target: "gt", top: "loss" }),
  ], true);
  head.setInput("logits", rng.fillUniform(new Float32Array(B * J * D * S * S), 0, 1));
  head.setInput("gt", rng.fillUniform(new Float32Array(B * J * 3), 0.1, 0.9));
  const [forwardMs, stepMs] = await timeEach(gpu, [() => head.forward(), () => head.step()], {
    runs,
    warmup,
  });
  await head.readScalars();
  head.destroy();

  const backwardMs = Math.max(0, stepMs - forwardMs);
  const bytes = B * J * D * S * S * 4;
  return {
    device: describeGpu(gpu),
    batch: B,
    joints: J,
    size: S,
    depthBins: D,
    runs,
    renderMs,
    forwardMs,
    stepMs,
    backwardMs,
    perSample: { renderMs: renderMs / B, forwardMs: forwardMs / B, backwardMs: backwardMs / B },
    targetBytes: bytes,
    softmaxBytes: bytes,
  };
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      runs: { type: "string" },
      batch: { type: "string" },
      "depth-bins": { type: "string" },
      size: { type: "string" },
    },
  });
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));
  const r = await benchVolumetric({
    runs: num(values.runs),
    batch: num(values.batch),
    depthBins: num(values["depth-bins"]),
    size: num(values.size),
  });
  console.log(JSON.stringify(r, null, 2));
}
