/**
 * Layer micro-benchmarks: batch norm + ReLU (the seed's pre-activation, affine fused) and 2x2
 * max pooling on one activation, forward and backward. Each timing is the median over several
 * runs of wall time per call, from submit to queue completion, with the call repeated inside one
 * compute pass so the submit and readback overhead is amortised.
 * @module
 */
import { type Gpu, sharedGpu } from "../../kernels/device.ts";
import { createRegion } from "../../graph/tensor.ts";
import { encodeProgram, KernelCache, Recorder, type Region } from "../../kernels/kernel.ts";
import { batchNormBackward, batchNormForward, type ChannelShape } from "../../kernels/norm.ts";
import { maxPoolBackward, maxPoolForward, type PoolGeometry } from "../../kernels/pool.ts";
import { Rng } from "../../io/prng.ts";
import { median } from "./stats.ts";

/** Options of {@linkcode benchLayers}. */
export interface LayerBenchOptions {
  /** Device (default: the shared one). */
  gpu?: Gpu;
  /** NCHW activation shape. Default [1, 256, 64, 64]. */
  shape?: [number, number, number, number];
  /** Timed runs; the median is reported. Default 7. */
  runs?: number;
  /** Calls per run, recorded back to back in one pass (default 40: a run then far outlasts Deno's ~10 ms queue poll). */
  reps?: number;
}

/** Milliseconds per call (medians), plus what was measured. */
export interface LayerTimings {
  shape: number[];
  runs: number;
  reps: number;
  bnReluForwardMs: number;
  bnReluBackwardMs: number;
  maxPoolForwardMs: number;
  maxPoolBackwardMs: number;
}

async function time(gpu: Gpu, rec: Recorder, runs: number, reps: number): Promise<number> {
  const list = rec.dispatches;
  const once = async () => {
    const t0 = performance.now();
    const enc = gpu.device.createCommandEncoder();
    for (let r = 0; r < reps; r++) encodeProgram(enc, list);
    gpu.device.queue.submit([enc.finish()]);
    await gpu.device.queue.onSubmittedWorkDone();
    return (performance.now() - t0) / reps;
  };
  await once(); // warm-up: pipeline creation and first-touch allocation
  const t: number[] = [];
  for (let i = 0; i < runs; i++) t.push(await once());
  return median(t);
}

/** Times BN+ReLU and max pooling forward and backward on one activation (default 1x256x64x64). */
export async function benchLayers(opts: LayerBenchOptions = {}): Promise<LayerTimings> {
  const gpu = opts.gpu ?? await sharedGpu();
  const [N, C, H, W] = opts.shape ?? [1, 256, 64, 64];
  const runs = opts.runs ?? 7, reps = opts.reps ?? 40;
  const n = N * C * H * W;
  const rng = new Rng(1);
  const buffers: Region[] = [];
  const region = (data: Float32Array | number) => {
    const r = createRegion(gpu, data, "bench");
    buffers.push(r);
    return r;
  };
  const x = region(rng.fillNormal(new Float32Array(n)));
  const dy = region(rng.fillNormal(new Float32Array(n)));
  const y = region(n), dx = region(n);
  const gamma = region(new Float32Array(C).fill(1)), beta = region(new Float32Array(C));
  const dgamma = region(C), dbeta = region(C), saved = region(2 * C);
  const rmean = region(C), rvar = region(new Float32Array(C).fill(1)), rscale = region(C);
  const shape: ChannelShape = { outer: N, channels: C, inner: H * W };
  const cache = new KernelCache(gpu);
  const recorder = (fill: (rec: Recorder) => void) => {
    const rec = new Recorder(cache);
    rec.owner = "bench";
    fill(rec);
    return rec;
  };
  const bn = { x, shape, eps: 1e-5, relu: true, gamma, beta };
  const running = { mean: rmean, var: rvar, scale: rscale, fraction: 0.999 };
  const bnFwd = recorder((rec) =>
    batchNormForward(rec, { ...bn, y, stats: { kind: "batch", saved, running } })
  );
  const bnBwd = recorder((rec) =>
    batchNormBackward(rec, {
      ...bn,
      dy,
      dx,
      accumulate: false,
      dgamma,
      dbeta,
      stats: { kind: "batch", saved },
    })
  );
  const geometry: PoolGeometry = {
    planes: N * C,
    height: H,
    width: W,
    kernel: [2, 2],
    stride: [2, 2],
    pad: [0, 0],
  };
  const pooled = region(N * C * Math.ceil(H / 2) * Math.ceil(W / 2));
  const poolFwd = recorder((rec) => maxPoolForward(rec, { x, y: pooled, geometry }));
  const poolBwd = recorder((rec) => maxPoolBackward(rec, { x, dy: pooled, dx, geometry, accumulate: false }));
  await cache.check();
  try {
    return {
      shape: [N, C, H, W],
      runs,
      reps,
      bnReluForwardMs: await time(gpu, bnFwd, runs, reps),
      bnReluBackwardMs: await time(gpu, bnBwd, runs, reps),
      maxPoolForwardMs: await time(gpu, poolFwd, runs, reps),
      maxPoolBackwardMs: await time(gpu, poolBwd, runs, reps),
    };
  } finally {
    for (const b of buffers) b.buffer.destroy();
  }
}

if (import.meta.main) console.log(await benchLayers());
