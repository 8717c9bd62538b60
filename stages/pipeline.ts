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
import { ACTIONS } from "../io/joints.ts";
import { fieldFloats, SAMPLE_FIELD_NAMES, type SampleField } from "../io/sample_fields.ts";
import { indexRangeDir } from "../io/manifest.ts";
import { orderedMap, prefetch } from "./async_stages.ts";
import { CROP_SIDE } from "./geometry.ts";
import { isIdentityAugment, type ProcessedSample, processSample, type SampleOptions } from "./sample.ts";
import { resolveSource, type SourceSpec } from "./sources.ts";
import { WorkerPool } from "./worker_pool.ts";

/**
 * One batch of network input and labels, as plain typed arrays: every per-sample field of
 * io/sample_fields.ts stacked B times (B = size), plus the sample ids and actions.
 */
export type Batch = { [K in SampleField]: Float32Array } & {
  /** Number of samples B. */
  size: number;
  /** Sample ids. */
  ids: Int32Array;
  /** Action index into ACTIONS via the index ranges; -1 when the root has no range files. */
  action: Int32Array;
};

/** Options of createPipeline. */
export interface PipelineOptions extends SampleOptions {
  /** Where ids come from: a spec resolved against the root, or any iterable of ids. */
  source: SourceSpec | Iterable<number>;
  /** Samples per batch; default 3 (the seed's per-GPU batch). */
  batchSize?: number;
  /** Worker count; default navigator.hardwareConcurrency; 0 = work in the calling thread. */
  workers?: number;
  /**
   * Scheduling niceness of the worker threads, 0 (as the process) to 19 (lowest); default
   * {@linkcode WORKER_NICE}. Only lowers their priority, so it needs no privileges.
   */
  workerNice?: number;
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
  /**
   * Keep processed samples in memory, up to this many MiB, and reuse them when an id comes again
   * instead of reading, decoding and warping it anew. Used only where a sample's processing is a
   * function of its id alone (no augmentation, or one that leaves every sample as it is); the
   * batches are the same either way. Default 0 (off).
   */
  cacheMiB?: number;
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
  /** Samples served from the in-memory cache (cacheMiB). */
  cacheHits: number;
}

/**
 * Default niceness of the sample workers: the lowest priority. Where the kernels run on the same
 * cores (a CPU adapter), a worker then takes only the time their threads leave idle (the gaps
 * between dispatches) instead of slowing every kernel it shares a core with; the step waits for a
 * batch only when the workers fall behind, and then they have the cores to themselves. On a GPU
 * machine the cores are otherwise idle and the workers run as before. Measured on a 2-core CPU
 * adapter over the tiny preset's first epoch (every sample read, decoded and warped): 1.03x the
 * iterations per second in the median of five alternating pairs of 75 s runs (0.90x-1.33x).
 */
export const WORKER_NICE = 19;

/** An async iterable of batches that owns workers: close it (or finish iterating) to free them. */
export interface Pipeline extends AsyncIterable<Batch> {
  /** Stops the workers; iteration ends. */
  close(): Promise<void>;
  /** Current counters. */
  stats(): PipelineStats;
}

/** Allocates an empty batch of `size` samples at input side `s`. */
export function allocBatch(size: number, s: number): Batch {
  const b = { size, ids: new Int32Array(size), action: new Int32Array(size) } as Batch;
  for (const f of SAMPLE_FIELD_NAMES) b[f] = new Float32Array(size * fieldFloats(f, s));
  return b;
}

/** Copies one processed sample into slot `index` of a batch. */
export function putSample(b: Batch, s: ProcessedSample, opts: { index: number; action: number }): void {
  const i = opts.index;
  b.ids[i] = s.id;
  b.action[i] = opts.action;
  for (const f of SAMPLE_FIELD_NAMES) b[f].set(s[f], i * s[f].length);
}

/** Shrinks a batch to its first `n` samples (views, no copy). */
function truncateBatch(b: Batch, n: number): Batch {
  return rowsOf(b, n, (a, w) => a.subarray(0, w * n) as typeof a);
}

/**
 * A batch of exactly `size` samples made from `b`'s: a short batch is filled by repeating its
 * samples in order (the evaluation's last batch; the repeats are scored but not counted).
 */
export function padBatch(b: Batch, size: number): Batch {
  if (b.size === size) return b;
  return rowsOf(b, size, (a, w) => {
    const grown = new (a.constructor as new (n: number) => typeof a)(w * size);
    for (let i = 0; i < size; i++) grown.set(a.subarray((i % b.size) * w, (i % b.size + 1) * w), i * w);
    return grown;
  });
}

/** A batch of `size` samples whose every array is `row(array, floatsPerSample)`. */
function rowsOf(
  b: Batch,
  size: number,
  row: <T extends Float32Array | Int32Array>(a: T, w: number) => T,
): Batch {
  const out = { size, ids: row(b.ids, 1), action: row(b.action, 1) } as Batch;
  for (const f of SAMPLE_FIELD_NAMES) out[f] = row(b[f], b[f].length / b.size);
  return out;
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
 * Processed samples by id, filled until `mib` MiB are held (then later ids are processed every
 * time); null when `mib` is 0. Cached samples are only read (putSample copies them into batches).
 */
function sampleCache(mib: number) {
  if (!(mib > 0)) return null;
  const byId = new Map<number, ProcessedSample>();
  let bytes = 0;
  return {
    get: (id: number) => byId.get(id),
    put(s: ProcessedSample): ProcessedSample {
      const size = SAMPLE_FIELD_NAMES.reduce((n, f) => n + s[f].byteLength, 0);
      if (bytes + size <= mib * 2 ** 20) {
        byId.set(s.id, s);
        bytes += size;
      }
      return s;
    },
  };
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
  const st = { samples: 0, batches: 0, bad: [] as { id: number; message: string }[], t0: 0, cacheHits: 0 };
  const cache = sampleCache(isIdentityAugment(opts.augment) ? opts.cacheMiB ?? 0 : 0);
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
      pool = new WorkerPool(nWorkers, { root, opts: sampleOpts, seed, nice: opts.workerNice ?? WORKER_NICE });
      const p = pool;
      work = (id, seq) => p.run(seq + skip, id);
      concurrency = nWorkers * (opts.inflightPerWorker ?? 2);
    } else {
      work = (id, seq) => processSample(root, id, { ...sampleOpts, seed, seq: seq + skip });
      concurrency = opts.inflightPerWorker ?? 2;
    }
    if (cache) {
      const process = work;
      work = (id, seq) => {
        const hit = cache.get(id);
        if (hit) {
          st.cacheHits++;
          return Promise.resolve(hit);
        }
        return process(id, seq).then((s) => cache.put(s));
      };
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
        cacheHits: st.cacheHits,
      };
    },
  };
}
