/** The bench's per-preset table: kernel families grouped into the README's columns. */
import assert from "node:assert/strict";
import { columnShares, type TrainStepResult, trainTable } from "../run/bench/train.ts";
import { benchDispatch } from "../run/bench/dispatch.ts";
import { sharedGpu } from "../kernels/device.ts";

function result(families: Record<string, number>): TrainStepResult {
  const total = Object.values(families).reduce((a, b) => a + b, 0);
  return {
    preset: "tiny",
    name: "tiny@32",
    inputSize: 32,
    d2: 16,
    batch: 8,
    paramsM: 0.25,
    dispatchesPerStep: 452,
    gpuMiB: 13.8,
    msPerStep: 82.46,
    minMsPerStep: 80,
    samplesPerSec: 97.01,
    encodeMsPerStep: 2.14,
    cpuCores: 1.68,
    runs: 5,
    stepsPerRun: 9,
    families: Object.fromEntries(
      Object.entries(families).map(([k, ms]) => [k, { ms, share: ms / total, dispatches: 1 }]),
    ),
    profiledMs: total,
    profileMethod: "replay",
  };
}

Deno.test("bench table: kernel families fall into the README's columns, the rest under other", () => {
  const r = result({
    conv_fwd_direct: 30,
    conv_dgrad_direct: 20,
    conv_wgrad_direct: 15,
    conv_wgrad_direct_fold: 3,
    conv_bias_grad: 2,
    bn_fwd: 6,
    bn_bwd: 4,
    weighted_sum: 3,
    concat: 2,
    softmax_norm: 3,
    euclidean_loss: 1,
    depth_encode: 1,
    RMSProp: 7,
    maxpool_fwd: 3,
  });
  const shares = Object.fromEntries(columnShares(r).map((c) => [c.title, Math.round(100 * c.share)]));
  assert.deepEqual(shares, {
    "conv forward": 30,
    "input grad": 20,
    "weight grad": 20,
    "batch norm": 10,
    "add, concat": 5,
    "heads, losses": 5,
    other: 10,
  });
  const lines = trainTable([r]).split("\n");
  assert.deepEqual(lines.length, 3);
  assert.deepEqual(
    lines[2],
    "| tiny@32 | 82.5 ms | 97.0 | 452 | 2.1 ms | 1.68 | 121% | 30% | 20% | 20% | 10% | 5% | 5% | 10% |",
  );
});

Deno.test("dispatch bench: per-dispatch microseconds of a trivial kernel, and bad sizes named", async () => {
  const gpu = await sharedGpu();
  const d = await benchDispatch(gpu, { runs: 1, perRun: 40 });
  for (const us of [d.oneGroupUs, d.manyGroupsUs]) assert.ok(Number.isFinite(us) && us >= 0, String(us));
  assert.equal(d.perRun, 40);
  assert.equal(d.lpNumThreads, Deno.env.get("LP_NUM_THREADS") ?? null);
  await assert.rejects(benchDispatch(gpu, { perRun: 5 }), /perRun >= 10/);
});
