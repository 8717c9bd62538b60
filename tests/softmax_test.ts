import assert from "node:assert/strict";
import { SoftmaxHM } from "../graph/layers/softmax_hm.ts";
import { EuclideanLoss } from "../graph/layers/euclidean_loss.ts";
import { Net } from "../graph/net.ts";
import { SGD } from "../graph/solver.ts";
import { sharedGpu } from "../kernels/device.ts";
import { NormalizeHM } from "../graph/layers/normalize_hm.ts";
import type { NormalizeMode } from "../kernels/softmax.ts";
import { assertClose, forEachReduceLayout, gradcheck, probe, randomArray } from "./gradcheck.ts";
import { normalizeBackwardRef, normalizeRef, softmaxBackwardRef, softmaxRef } from "./reference/softmax.ts";

const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);

async function compareSoftmax(
  shape: number[],
  o: { depthBins?: number; scale: number; legacy: boolean; lo?: number; hi?: number; seed: number },
) {
  const D = o.depthBins ?? 1;
  const layout = { groups: (shape[0] * shape[1]) / D, groupSize: (numel(shape) * D) / (shape[0] * shape[1]) };
  const x = randomArray(numel(shape), o.seed, o.lo ?? -1, o.hi ?? 1);
  const p = await probe(
    new SoftmaxHM("sm", { bottom: "x", top: "y", depthBins: o.depthBins, scale: o.scale, legacy: o.legacy }),
    [shape],
  );
  p.set([x]);
  const [y] = await p.forward();
  const ref = { ...layout, scale: o.scale, legacy: o.legacy };
  assertClose(y, softmaxRef(x, ref), { atol: 1e-7, rtol: 1e-4, what: "softmax forward" });
  const g = await p.backward();
  assertClose(g.bottoms[0], softmaxBackwardRef({ y, dy: p.r[0] }, ref), {
    atol: 1e-6,
    rtol: 1e-3,
    what: "softmax backward",
  });
  p.net.destroy();
}

Deno.test("softmax 2D: GPU matches the CPU twin, clean and legacy (atol 1e-7/1e-6, rtol 1e-4/1e-3)", async () => {
  await forEachReduceLayout(async () => {
    await compareSoftmax([2, 3, 5, 7], { scale: 1.7, legacy: false, seed: 1 });
    await compareSoftmax([2, 3, 5, 7], { scale: 1.7, legacy: true, seed: 2 });
  });
});

Deno.test("softmax 3D: cubes split into several chunks match the CPU twin (x50 pre-scale)", async () => {
  await forEachReduceLayout(async () => {
    // 3 bins x 40 x 40 = 4800 values per cube: two chunks, the second one partial.
    await compareSoftmax([1, 6, 40, 40], { depthBins: 3, scale: 50, legacy: false, lo: 0, hi: 1, seed: 3 });
    await compareSoftmax([1, 6, 40, 40], { depthBins: 3, scale: 50, legacy: true, lo: 0, hi: 0.2, seed: 4 });
  });
});

Deno.test("softmax: finite-difference gradient check, 2D and 3D", async () => {
  const p2 = await probe(new SoftmaxHM("sm", { bottom: "x", top: "y", scale: 2 }), [[2, 2, 3, 3]]);
  await gradcheck(p2, [randomArray(36, 5)]);
  p2.net.destroy();
  const p3 = await probe(new SoftmaxHM("sm", { bottom: "x", top: "y", depthBins: 2, scale: 3 }), [[
    1,
    4,
    3,
    3,
  ]]);
  await gradcheck(p3, [randomArray(36, 6)]);
  p3.net.destroy();
});

Deno.test("softmax x50: stable up to 10 (sums to one, no NaN); legacy overflows to NaN", async () => {
  const shape = [1, 8, 8, 8];
  const x = randomArray(numel(shape), 7, 0, 9.5);
  x[100] = 10; // the peak: exp(500) is far beyond float32
  for (const legacy of [false, true]) {
    const p = await probe(new SoftmaxHM("sm", { bottom: "x", top: "y", depthBins: 4, scale: 50, legacy }), [
      shape,
    ]);
    p.set([x]);
    const [y] = await p.forward();
    const twin = softmaxRef(x, { groups: 2, groupSize: 256, scale: 50, legacy });
    if (!legacy) {
      assert.ok(y.every(Number.isFinite), "clean softmax produced a non-finite value");
      for (let g = 0; g < 2; g++) {
        const s = y.subarray(g * 256, (g + 1) * 256).reduce((a, b) => a + b, 0);
        assert.ok(Math.abs(s - 1) < 1e-5, `cube ${g} sums to ${s}`);
      }
      assertClose(y, twin, { atol: 1e-7, rtol: 1e-4, what: "stable softmax" });
      assert.ok(y[100] > 0.5, "the peak keeps most of the mass");
    } else {
      // 50 * v > ~88.7 overflows float32 exp; the sum becomes inf and inf / inf is NaN.
      assert.ok(Number.isNaN(twin[100]), "the twin reproduces the overflow");
      assert.ok(!Number.isFinite(y[100]), `legacy softmax should overflow, got ${y[100]}`);
    }
    p.net.destroy();
  }
});

async function compareNormalize(
  shape: number[],
  o: { depthBins?: number; legacy: boolean; x: Float32Array; mode: NormalizeMode },
) {
  const D = o.depthBins ?? 1;
  const ref = {
    groups: (shape[0] * shape[1]) / D,
    groupSize: (numel(shape) * D) / (shape[0] * shape[1]),
    threshold: 0.003,
    mode: o.mode,
    channels: shape[1],
  };
  const p = await probe(
    new NormalizeHM("nm", { bottom: "x", top: "y", depthBins: o.depthBins, legacy: o.legacy }),
    [shape],
  );
  p.set([o.x]);
  const [y] = await p.forward();
  const yRef = normalizeRef(o.x, ref);
  assertClose(y, yRef, { atol: 1e-7, rtol: 1e-4, what: `normalize ${o.mode} forward` });
  const g = await p.backward();
  assertClose(g.bottoms[0], normalizeBackwardRef({ x: o.x, y: yRef, dy: p.r[0] }, ref), {
    atol: 1e-5,
    rtol: 1e-3,
    what: `normalize ${o.mode} backward`,
  });
  p.net.destroy();
  return y;
}

/** Heatmap-like values: some channels all below threshold, others mixed with negatives. */
function heatmapValues(n: number, seed: number, zeroGroups: number[], groupSize: number): Float32Array {
  const x = randomArray(n, seed, -0.2, 1);
  for (const g of zeroGroups) x.fill(0.001, g * groupSize, (g + 1) * groupSize);
  return x;
}

Deno.test("normalize 2D/3D: GPU matches the CPU twin in every mode (atol 1e-7/1e-5, rtol 1e-4/1e-3)", async () => {
  await forEachReduceLayout(async () => {
    const s2 = [2, 3, 6, 6];
    const x2 = heatmapValues(numel(s2), 11, [1, 5], 36);
    await compareNormalize(s2, { legacy: false, x: x2, mode: "clean" });
    await compareNormalize(s2, { legacy: true, x: x2, mode: "legacy2d" });
    // 2 bins x 48 x 48 = 4608 per cube: chunked.
    const s3 = [1, 6, 48, 48];
    const x3 = heatmapValues(numel(s3), 12, [2], 4608);
    await compareNormalize(s3, { depthBins: 2, legacy: false, x: x3, mode: "clean" });
    await compareNormalize(s3, { depthBins: 2, legacy: true, x: x3, mode: "legacy3d" });
  });
});

Deno.test("normalize legacy 2D: a near-zero channel resets channels 0..c of its sample to uniform", async () => {
  // Sample 0: channel 2 of 4 is all below threshold -> channels 0, 1, 2 uniform, 3 normalised.
  // Sample 1 has no empty channel and is untouched.
  const shape = [2, 4, 2, 2];
  const x = randomArray(32, 13, 0.1, 1);
  x.fill(0.002, 8, 12);
  const y = await compareNormalize(shape, { legacy: true, x, mode: "legacy2d" });
  for (let i = 0; i < 12; i++) assert.equal(y[i], 0.25);
  const z = x.subarray(12, 16).reduce((a, b) => a + b, 0);
  assertClose(y.subarray(12, 16), x.subarray(12, 16).map((v) => v / z), { what: "channel 3" });
  assert.notEqual(y[16], 0.25);
  const clean = await compareNormalize(shape, { legacy: false, x, mode: "clean" });
  assert.notEqual(clean[0], 0.25, "clean mode only makes the empty channel uniform");
  for (let i = 8; i < 12; i++) assert.equal(clean[i], 0.25);
});

Deno.test("normalize clean: finite-difference gradient check, 2D and 3D", async () => {
  // Keep every value clear of the threshold so the above-threshold set does not change under eps.
  const away = (x: Float32Array) => x.map((v) => (Math.abs(v) < 0.05 ? v + 0.1 : v));
  const p2 = await probe(new NormalizeHM("nm", { bottom: "x", top: "y" }), [[2, 2, 3, 3]]);
  await gradcheck(p2, [away(randomArray(36, 14, -0.3, 1))], { eps: 1e-3 });
  p2.net.destroy();
  const p3 = await probe(new NormalizeHM("nm", { bottom: "x", top: "y", depthBins: 2 }), [[1, 4, 3, 3]]);
  await gradcheck(p3, [away(randomArray(36, 15, -0.3, 1))], { eps: 1e-3 });
  p3.net.destroy();
});

Deno.test("softmax 3D backward adds into a gradient another layer wrote (texture path on CPU adapters)", async () => {
  // x feeds the softmax and a loss of its own; the loss writes dx first (backward order), the
  // softmax then adds to it. Cubes of 2 x 4 x 4 = 32 values: whole vec4s.
  const gpu = await sharedGpu();
  const shape = [2, 8, 4, 4], n = numel(shape), B = 2;
  const x = randomArray(n, 21), t1 = randomArray(n, 22, 0, 0.1), t2 = randomArray(n, 23);
  const net = await Net.build(gpu, {
    inputs: { x: shape, t1: shape, t2: shape },
    layers: [
      new SoftmaxHM("sm", { bottom: "x", top: "y", depthBins: 2, scale: 3 }),
      new EuclideanLoss("ly", { pred: "y", target: "t1", top: "Ly", weight: 5 }),
      new EuclideanLoss("lx", { pred: "x", target: "t2", top: "Lx", weight: 0.5 }),
    ],
  }, { solver: new SGD({ baseLr: 0 }), gradInputs: ["x"], keep: ["y"] });
  net.setInput("x", x);
  net.setInput("t1", t1);
  net.setInput("t2", t2);
  net.step();
  const layout = { groups: 8, groupSize: 32, scale: 3, legacy: false };
  const y = softmaxRef(x, layout);
  const dy = y.map((v, i) => (5 * (v - t1[i])) / B);
  const want = softmaxBackwardRef({ y, dy }, layout).map((g, i) => g + (0.5 * (x[i] - t2[i])) / B);
  assertClose(await net.readDiff("x"), want, {
    atol: 1e-6,
    rtol: 1e-3,
    what: "dx (softmax added to the loss's)",
  });
  const labels = net.dispatchLabels().filter((l) => l.startsWith("sm: softmax_bwd"));
  assert.ok(labels.some((l) => / acc /.test(l)), labels.join("\n"));
  if (gpu.isFallback) {
    assert.ok(labels.filter((l) => !l.endsWith(" fold")).every((l) => / tex /.test(l)), labels.join("\n"));
  }
  net.destroy();
});
