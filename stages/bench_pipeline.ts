/**
 * Throughput of the input pipeline alone (no GPU), to compare with the training step rate.
 * @module
 */

import { createPipeline } from "./pipeline.ts";
import type { SourceSpec } from "./sources.ts";

/** Options of benchPipeline. */
export interface BenchPipelineOptions {
  /** Worker count; default navigator.hardwareConcurrency. */
  workers?: number;
  /** Batches to time after warm-up; default 20. */
  batches?: number;
  /** Samples per batch; default 3. */
  batchSize?: number;
  /** Network input side; default 256. */
  inputSize?: number;
  /** Batches consumed before the clock starts (worker start-up, JIT); default 2. */
  warmup?: number;
  /** Id source; default "train" (random draws with augmentation). */
  source?: SourceSpec;
  /** Random augmentation; default true. */
  augment?: boolean;
  /** Seed; default 0. */
  seed?: number;
}

/** Result of benchPipeline. */
export interface BenchPipelineResult {
  /** Samples per second in the timed part. */
  samplesPerSec: number;
  /** Batches per second in the timed part. */
  batchesPerSec: number;
  /** Mean milliseconds per batch. */
  msPerBatch: number;
  /** Timed samples. */
  samples: number;
  /** Timed seconds. */
  seconds: number;
  /** Workers used. */
  workers: number;
  /** Input side. */
  inputSize: number;
  /** Batch size. */
  batchSize: number;
}

/** Pulls batches as fast as possible and reports samples/s after a warm-up. */
export async function benchPipeline(
  root: string,
  opts: BenchPipelineOptions = {},
): Promise<BenchPipelineResult> {
  const workers = opts.workers ?? navigator.hardwareConcurrency;
  const batches = opts.batches ?? 20;
  const warmup = opts.warmup ?? 2;
  const batchSize = opts.batchSize ?? 3;
  const inputSize = opts.inputSize ?? 256;
  const pipe = createPipeline(root, {
    source: opts.source ?? "train",
    augment: opts.augment ?? true,
    batchSize,
    inputSize,
    workers,
    seed: opts.seed ?? 0,
    maxBatches: warmup + batches,
  });
  let n = 0, samples = 0, t0 = performance.now();
  try {
    for await (const b of pipe) {
      n++;
      if (n === warmup) t0 = performance.now();
      else if (n > warmup) samples += b.size;
    }
  } finally {
    await pipe.close();
  }
  if (warmup === 0) samples = pipe.stats().samples;
  const seconds = (performance.now() - t0) / 1000;
  const timed = Math.max(0, n - warmup);
  return {
    samplesPerSec: samples / seconds,
    batchesPerSec: timed / seconds,
    msPerBatch: timed > 0 ? (seconds * 1000) / timed : NaN,
    samples,
    seconds,
    workers,
    inputSize,
    batchSize,
  };
}
