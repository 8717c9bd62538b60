import assert from "node:assert/strict";
import { join } from "node:path";
import { DataError } from "../io/errors.ts";
import { ACTIONS } from "../io/joints.ts";
import { type Batch, createPipeline, type PipelineOptions } from "../stages/pipeline.ts";
import { listIds, mixIds, randomIds, resolveSource, sequentialIds } from "../stages/sources.ts";
import { makeTinyDataset } from "./fixtures/tiny_dataset.ts";

const ROOT = await Deno.makeTempDir({ prefix: "volpose_pipe_" });
await makeTinyDataset(ROOT, 12);
globalThis.addEventListener("unload", () => Deno.removeSync(ROOT, { recursive: true }));

async function collect(opts: PipelineOptions): Promise<Batch[]> {
  const out: Batch[] = [];
  const pipe = createPipeline(ROOT, opts);
  for await (const b of pipe) out.push(b);
  await pipe.close();
  return out;
}

Deno.test("index sources: seeded random within ranges with exclusions, sequential, list, mixture", async () => {
  const take = (it: Iterable<number>, n: number) => {
    const out: number[] = [];
    for (const v of it) {
      out.push(v);
      if (out.length === n) break;
    }
    return out;
  };
  const a = take(randomIds([[10, 19], [100, 104]], { seed: 5, exclude: [11, 12] }), 400);
  assert.deepEqual(a, take(randomIds([[10, 19], [100, 104]], { seed: 5, exclude: [11, 12] }), 400));
  assert.ok(a.every((v) => (v >= 10 && v <= 19 && v !== 11 && v !== 12) || (v >= 100 && v <= 104)));
  assert.equal(new Set(a).size, 13);
  assert.deepEqual([...sequentialIds([[3, 5], [9, 9]])], [3, 4, 5, 9]);
  assert.deepEqual(take(listIds([7, 8], { loop: true }), 5), [7, 8, 7, 8, 7]);
  const mix = [
    ...mixIds([{ ids: listIds([1, 2, 3]), weight: 1 }, { ids: listIds([10, 20]), weight: 3 }], { seed: 1 }),
  ];
  assert.deepEqual(mix.filter((v) => v < 10), [1, 2, 3]);
  assert.deepEqual(mix.filter((v) => v >= 10), [10, 20]);
  assert.deepEqual([...await resolveSource(ROOT, "test", { seed: 0 })], [9, 10, 11]);
});

Deno.test("same seed gives the same batches with 0, 1 and 2 workers; labels and actions filled", async () => {
  const opts = (workers: number): PipelineOptions => ({
    source: "train",
    batchSize: 3,
    inputSize: 64,
    augment: true,
    seed: 42,
    workers,
    maxBatches: 3,
  });
  const ref = await collect(opts(0));
  assert.equal(ref.length, 3);
  for (const w of [1, 2]) {
    const got = await collect(opts(w));
    assert.equal(got.length, 3);
    for (let i = 0; i < 3; i++) assert.deepEqual(got[i], ref[i], `workers=${w} batch ${i}`);
  }
  const b = ref[0];
  assert.equal(b.image.length, 3 * 3 * 64 * 64);
  for (let i = 0; i < b.size; i++) {
    assert.ok(b.ids[i] >= 0 && b.ids[i] <= 8);
    assert.equal(ACTIONS[b.action[i]], b.ids[i] < 6 ? "Eating" : "Walking");
  }
  const other = await collect({ ...opts(0), seed: 43 });
  assert.notDeepEqual(other[0].joints2d, ref[0].joints2d);
});

Deno.test("skipSamples resumes exactly: batches 2..3 of a run equal a run that skipped 2 batches", async () => {
  const base: PipelineOptions = {
    source: "train",
    batchSize: 3,
    inputSize: 32,
    augment: true,
    seed: 5,
    workers: 0,
  };
  const whole = await collect({ ...base, maxBatches: 4 });
  const resumed = await collect({ ...base, maxBatches: 2, skipSamples: 6 });
  assert.deepEqual(resumed[0], whole[2]);
  assert.deepEqual(resumed[1], whole[3]);
});

Deno.test("cacheMiB: without augmentation repeated ids come from memory and the batches do not change", async () => {
  const run = async (augment: PipelineOptions["augment"], cacheMiB: number) => {
    const pipe = createPipeline(ROOT, {
      source: "train",
      batchSize: 3,
      inputSize: 32,
      augment,
      seed: 7,
      workers: 1,
      maxBatches: 8,
      cacheMiB,
    });
    const got: Batch[] = [];
    for await (const b of pipe) got.push(b);
    await pipe.close();
    return { got, hits: pipe.stats().cacheHits };
  };
  // The identity ranges still draw an augmentation per sample; the samples are those of no augmentation.
  const identity = { flipProb: 0, maxRotateDeg: 0, scaleRange: [1, 1] as [number, number] };
  const plain = await run(identity, 0);
  const cached = await run(identity, 64);
  assert.equal(plain.hits, 0);
  // 24 draws from the 9 training ids: each id seen is processed once (twice at most when it is
  // drawn again while still in flight), the rest are repeats served from memory. The pipeline may
  // have started up to `concurrency` (1 worker x 2 in flight) draws past the last batch when it stops.
  const seen = new Set(plain.got.flatMap((b) => [...b.ids])).size;
  assert.ok(cached.hits > 0 && cached.hits <= 24 - seen + 2, `cache hits ${cached.hits}, ${seen} ids`);
  assert.deepEqual(cached.got, plain.got);
  // A real augmentation makes every draw new: nothing is cached.
  assert.equal((await run({ flipProb: 0.5 }, 64)).hits, 0);
  // A cap smaller than one sample caches nothing.
  assert.equal((await run(identity, 0.001)).hits, 0);
});

Deno.test("finite test source ends with a short batch; test mode aug3d equals gt3d", async () => {
  const got = await collect({ source: "test", batchSize: 2, inputSize: 32, workers: 0 });
  assert.deepEqual(got.map((b) => Array.from(b.ids)), [[9, 10], [11]]);
  const b = got[1];
  for (let i = 0; i < 48; i++) assert.ok(Math.abs(b.aug3d[i] - b.gt3d[i]) < 0.05);
});

Deno.test("a corrupt sample stops the pipeline with its DataError, or is skipped and counted", async () => {
  const bad = join(ROOT, "gt_joint_3d_mono_raw", "10.txt");
  const saved = Deno.readTextFileSync(bad);
  Deno.writeTextFileSync(bad, saved.replace("4709.494331", "47o9.494331"));
  try {
    await assert.rejects(
      collect({ source: "test", batchSize: 2, inputSize: 32, workers: 1 }),
      (e: unknown) => {
        assert.ok(e instanceof DataError, String(e));
        assert.ok(e.path.endsWith("gt_joint_3d_mono_raw/10.txt"));
        assert.equal(e.line, 1);
        return true;
      },
    );
    const lines: string[] = [];
    const pipe = createPipeline(ROOT, {
      source: "test",
      batchSize: 2,
      inputSize: 32,
      workers: 1,
      skipBad: true,
      log: (l) => lines.push(l),
    });
    const ids: number[] = [];
    for await (const b of pipe) ids.push(...b.ids);
    assert.deepEqual(ids, [9, 11]);
    assert.equal(pipe.stats().badSamples, 1);
    assert.equal(pipe.stats().bad[0].id, 10);
    assert.ok(lines.some((l) => l.includes("10.txt")));
  } finally {
    Deno.writeTextFileSync(bad, saved);
  }
});

/** Niceness of each thread of this process (Linux /proc), main thread first. */
function threadNiceness(): { main: number; all: number[] } {
  const nice = (stat: string) => Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[16]);
  const all = [...Deno.readDirSync("/proc/self/task")].map((t) =>
    nice(Deno.readTextFileSync(`/proc/self/task/${t.name}/stat`))
  );
  return { main: nice(Deno.readTextFileSync("/proc/thread-self/stat")), all };
}

Deno.test({
  name: "workerNice lowers the sample workers' threads only, never the calling thread",
  ignore: Deno.build.os !== "linux",
  fn: async () => {
    const niced = async (workerNice: number) => {
      const pipe = createPipeline(ROOT, {
        source: "train",
        batchSize: 2,
        inputSize: 32,
        workers: 2,
        workerNice,
      });
      const it = pipe[Symbol.asyncIterator]();
      assert.equal((await it.next()).done, false);
      const t = threadNiceness();
      await pipe.close();
      return { main: t.main, workers: t.all.filter((n) => n === workerNice).length };
    };
    const low = await niced(19);
    assert.equal(low.main, 0);
    assert.ok(low.workers >= 2, `${low.workers} thread(s) at niceness 19, expected the 2 workers`);
  },
});
