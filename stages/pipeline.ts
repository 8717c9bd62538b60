/**
 * The input pipeline's single entry point: index source -> (worker pool: read, decode, augment,
 * warp, labels) -> in-order batching -> bounded prefetch. Every stage is an async iterable with
 * bounded buffering, so a slow consumer throttles the workers instead of growing memory.
 *
 * Determinism: sample k of the id stream is augmented with sampleRng(seed, k), and outcomes are
 * consumed in stream order, so the same seed gives the same batches for any worker count.
 * @module
 */

import { DataError } from "../io/errors.ts";
import { actionOf, type RangeEntry, readRangeTable } from "../io/index_ranges.ts";
import { ACTIONS, NUM_JOINTS } from "../io/joints.ts";
import { indexRangeDir } from "../io/manifest.ts";
import { orderedMap, prefetch } from "./async_stages.ts";
import { CROP_SIDE } from "./geometry.ts";
import { type ProcessedSample, processSample, type SampleOptions } from "./sample.ts";
import { resolveSource, type SourceSpec } from "./sources.ts";
import { WorkerPool } from "./worker_pool.ts";

/** One batch of network input and labels, as plain typed arrays (B = size, S = input side). */
export interface Batch {
  /** Number of samples B. */
  size: number;
  /** Sample ids. */
  ids: Int32Array;
  /** B x 3 x S x S, (pixel - 128) / 256, B,G,R planes unless channelOrder "rgb". */
  image: Float32Array;
  /** B x 16 x 2 norm crop coordinates. */
  joints2d: Float32Array;
  /** B x 16 root-relative depth encoded to [0, 1]. */
  depth: Float32Array;
  /** B x 16 x 3 camera-frame mm. */
  gt3d: Float32Array;
  /** B x 16 x 3 back-projected augmented 2D with GT depth (the evaluation target). */
  aug3d: Float32Array;
  /** B x 4: fx fy cx cy. */
  camera: Float32Array;
  /** B x 4: x1 y1 x2 y2. */
  bbx: Float32Array;
  /** B x 6 affine [a b c d e f]: raw px = (a un + b vn + c, d un + e vn + f) for norm (un, vn). */
  cropToBbx: Float32Array;
  /** Action index into ACTIONS via the index ranges; -1 when the root has no range files. */
  action: Int32Array;
}

/** Options of createPipeline. */
export interface PipelineOptions extends SampleOptions {
  /** Where ids come from: a spec resolved against the root, or any iterable of ids. */
  source: SourceSpec | Iterable<number>;
  /** Samples per batch; default 3 (the seed's per-GPU batch). */
  batchSize?: number;
  /** Worker count; default navigator.hardwareConcurrency; 0 = work in the calling thread. */
  workers?: number;
  /** Seed of the index draws and the augmentation; default 0. */
  seed?: number;
  /** Skip, count and log bad samples instead of stopping with their DataError. */
  skipBad?: boolean;
  /** Stop after this many batches. */
  maxBatches?: number;
  /**
   * Start as if this many samples had already been drawn: the first `skipSamples` ids of the
   * source are passed over and augmentation streams continue from there, so a resumed run sees
   * exactly the batches an uninterrupted one would have.
   */
  skipSamples?: number;
  /** Batches prepared ahead of the consumer; default 2. */
  prefetchBatches?: number;
  /** Samples in flight per worker; default 2 (overlaps file reads with warping). */
  inflightPerWorker?: number;
  /** Emit a final short batch when a finite source ends mid-batch; default true. */
  keepLast?: boolean;
  /** Where skipped samples are reported; default console.error. */
  log?: (line: string) => void;
}

/** Counters of a running pipeline. */
export interface PipelineStats {
  /** Samples delivered in batches. */
  samples: number;
  /** Batches delivered. */
  batches: number;
  /** Bad samples skipped (skipBad). */
  badSamples: number;
  /** The skipped samples and why. */
  bad: { id: number; message: string }[];
  /** Seconds since the first batch was requested. */
  elapsedSec: number;
  /** samples / elapsedSec. */
  samplesPerSec: number;
}

/** An async iterable of batches that owns workers: close it (or finish iterating) to free them. */
export interface Pipeline extends AsyncIterable<Batch> {
  /** Stops the workers; iteration ends. */
  close(): Promise<void>;
  /** Current counters. */
  stats(): PipelineStats;
}

/** Allocates an empty batch of `size` samples at input side `s`. */
export function allocBatch(size: number, s: number): Batch {
  const J = NUM_JOINTS;
  return {
    size,
    ids: new Int32Array(size),
    image: new Float32Array(size * 3 * s * s),
    joints2d: new Float32Array(size * J * 2),
    depth: new Float32Array(size * J),
    gt3d: new Float32Array(size * J * 3),
    aug3d: new Float32Array(size * J * 3),
    camera: new Float32Array(size * 4),
    bbx: new Float32Array(size * 4),
    cropToBbx: new Float32Array(size * 6),
    action: new Int32Array(size),
  };
}

/** Copies one processed sample into slot `index` of a batch. */
export function putSample(b: Batch, s: ProcessedSample, opts: { index: number; action: number }): void {
  const i = opts.index;
  b.ids[i] = s.id;
  b.image.set(s.image, i * s.image.length);
  b.joints2d.set(s.joints2d, i * s.joints2d.length);
  b.depth.set(s.depth, i * s.depth.length);
  b.gt3d.set(s.gt3d, i * s.gt3d.length);
  b.aug3d.set(s.aug3d, i * s.aug3d.length);
  b.camera.set(s.camera, i * 4);
  b.bbx.set(s.bbx, i * 4);
  b.cropToBbx.set(s.cropToBbx, i * 6);
  b.action[i] = opts.action;
}

/** Shrinks a batch to its first `n` samples (views, no copy). */
function truncateBatch(b: Batch, n: number): Batch {
  const cut = <T extends Float32Array | Int32Array>(a: T): T => a.subarray(0, (a.length / b.size) * n) as T;
  return {
    size: n,
    ids: cut(b.ids),
    image: cut(b.image),
    joints2d: cut(b.joints2d),
    depth: cut(b.depth),
    gt3d: cut(b.gt3d),
    aug3d: cut(b.aug3d),
    camera: cut(b.camera),
    bbx: cut(b.bbx),
    cropToBbx: cut(b.cropToBbx),
    action: cut(b.action),
  };
}

/** Reads the root's range table for action lookup; null when the root has no range files. */
async function loadActionTable(root: string): Promise<RangeEntry[] | null> {
  const dir = await indexRangeDir(root);
  try {
    await Deno.stat(dir);
  } catch {
    return null;
  }
  return await readRangeTable(dir);
}

function isIterable(x: unknown): x is Iterable<number> {
  return typeof x === "object" && x !== null && Symbol.iterator in x;
}

function* dropFirst<T>(src: Iterable<T>, n: number): Generator<T> {
  let i = 0;
  for (const x of src) if (i++ >= n) yield x;
}

/**
 * Creates the input pipeline of a dataset root. Iterate it with `for await`; bad samples stop it
 * with their DataError unless `skipBad`. Nothing starts until the first batch is requested.
 */
export function createPipeline(root: string, opts: PipelineOptions): Pipeline {
  const batchSize = opts.batchSize ?? 3;
  const S = opts.inputSize ?? CROP_SIDE;
  const seed = opts.seed ?? 0;
  const nWorkers = opts.workers ?? navigator.hardwareConcurrency;
  const log = opts.log ?? ((l: string) => console.error(l));
  const sampleOpts: SampleOptions = {
    inputSize: S,
    augment: opts.augment,
    channelOrder: opts.channelOrder,
    legacy: opts.legacy,
  };
  const st = { samples: 0, batches: 0, bad: [] as { id: number; message: string }[], t0: 0 };
  let pool: WorkerPool | null = null;
  let closed = false;

  async function* batches(): AsyncGenerator<Batch> {
    st.t0 = performance.now();
    const source = isIterable(opts.source) ? opts.source : await resolveSource(root, opts.source, { seed });
    const skip = opts.skipSamples ?? 0;
    const ids = skip > 0 ? dropFirst(source, skip) : source;
    const table = await loadActionTable(root);
    if (closed) return;
    let work: (id: number, seq: number) => Promise<ProcessedSample>;
    let concurrency: number;
    if (nWorkers > 0) {
      pool = new WorkerPool(nWorkers, { root, opts: sampleOpts, seed });
      const p = pool;
      work = (id, seq) => p.run(seq + skip, id);
      concurrency = nWorkers * (opts.inflightPerWorker ?? 2);
    } else {
      work = (id, seq) => processSample(root, id, { ...sampleOpts, seed, seq: seq + skip });
      concurrency = opts.inflightPerWorker ?? 2;
    }
    try {
      let batch = allocBatch(batchSize, S);
      let fill = 0;
      for await (const out of orderedMap(ids, work, { concurrency })) {
        if (closed) return;
        if (!out.ok) {
          if (!opts.skipBad || !(out.error instanceof DataError)) throw out.error;
          const message = (out.error as Error).message;
          st.bad.push({ id: out.input, message });
          log(`skipping bad sample ${out.input}: ${message}`);
          continue;
        }
        const entry = table ? actionOf(table, out.input) : undefined;
        putSample(batch, out.value, { index: fill++, action: entry ? ACTIONS.indexOf(entry.action) : -1 });
        if (fill === batchSize) {
          st.samples += fill;
          st.batches++;
          yield batch;
          if (opts.maxBatches !== undefined && st.batches >= opts.maxBatches) return;
          batch = allocBatch(batchSize, S);
          fill = 0;
        }
      }
      if (fill > 0 && (opts.keepLast ?? true)) {
        st.samples += fill;
        st.batches++;
        yield truncateBatch(batch, fill);
      }
    } finally {
      pool?.close();
      pool = null;
      if (st.bad.length > 0) log(`skipped ${st.bad.length} bad sample(s) in total`);
    }
  }

  const stream = prefetch(batches(), opts.prefetchBatches ?? 2);
  return {
    [Symbol.asyncIterator]: () => stream,
    async close() {
      closed = true;
      pool?.close();
      await stream.return(undefined);
    },
    stats(): PipelineStats {
      const elapsedSec = st.t0 ? (performance.now() - st.t0) / 1000 : 0;
      return {
        samples: st.samples,
        batches: st.batches,
        badSamples: st.bad.length,
        bad: st.bad.slice(),
        elapsedSec,
        samplesPerSec: elapsedSec > 0 ? st.samples / elapsedSec : 0,
      };
    },
  };
}
