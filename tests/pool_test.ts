import assert from "node:assert/strict";
import { sharedGpu } from "../kernels/device.ts";
import { type Layer, numel, type Shape } from "../graph/layer.ts";
import { Net } from "../graph/net.ts";
import { SGD } from "../graph/solver.ts";
import { ReLU } from "../graph/layers/relu.ts";
import { MaxPool } from "../graph/layers/pool.ts";
import { Upsample } from "../graph/layers/upsample.ts";
import { ScaleVector } from "../graph/layers/vector_ops.ts";
import { Rng } from "../io/prng.ts";
import { assertClose, DotLoss, gradcheck, probe, randomArray } from "./gradcheck.ts";
import { reluBackwardRef } from "./reference/activation.ts";
import {
  maxPoolBackwardRef,
  maxPoolRef,
  type PoolRef,
  upsampleNearestBackwardRef,
  upsampleNearestRef,
} from "./reference/tensor_ops.ts";

// Pooling and upsampling only move values (exact); sums of up to 9 gradients differ in rounding.
const EXACT = { atol: 0, rtol: 0 };
const SUMS = { atol: 1e-6, rtol: 1e-6 };

/** Values from {0, 1, 2}: plenty of ties, so "the first maximum wins" is exercised. */
function tied(n: number, seed: number): Float32Array {
  const r = new Rng(seed);
  return Float32Array.from({ length: n }, () => r.int(3));
}

/** Distinct values at least 0.05 apart, so a finite-difference step never changes a window's winner. */
function separated(n: number, seed: number): Float32Array {
  const r = new Rng(seed);
  const v = Float32Array.from({ length: n }, (_, i) => i * 0.05 - n * 0.025);
  for (let i = n - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [v[i], v[j]] = [v[j], v[i]];
  }
  return v;
}

/**
 * Builds layer(x) and relu(x), both probed; the layer runs first in the forward, so last in the
 * backward, and must add its gradient to relu's.
 */
async function accumulated(
  layer: Layer,
  shape: Shape,
  x: Float32Array,
): Promise<{ dx: Float32Array; ra: Float32Array; rb: Float32Array }> {
  const gpu = await sharedGpu();
  const dry = await Net.build(gpu, { inputs: { x: shape }, layers: [layer] }, { train: false });
  const top = dry.shape(layer.tops[0]);
  dry.destroy();
  // x is produced by an identity layer: a net input's gradient buffer only lives until its first
  // writer in the backward (Net's arena), too early for the layer's accumulation.
  const net = await Net.build(gpu, {
    inputs: { x_in: shape, ra: top, rb: shape },
    layers: [
      new ScaleVector("feed", { bottom: "x_in", top: "x", scale: 1 }),
      layer,
      new ReLU("other", "x", "b"),
      new DotLoss("la", [layer.tops[0], "ra"], "La"),
      new DotLoss("lb", ["b", "rb"], "Lb"),
    ],
  }, { solver: new SGD({ baseLr: 0 }), gradInputs: ["x_in"] });
  const ra = randomArray(numel(top), 2), rb = randomArray(numel(shape), 3);
  net.setInput("x_in", x);
  net.setInput("ra", ra);
  net.setInput("rb", rb);
  net.step();
  const dx = await net.readDiff("x");
  net.destroy();
  const other = reluBackwardRef(x, rb);
  return { dx: dx.map((v, i) => v - other[i]), ra, rb };
}

const POOLS: { shape: Shape; kernel: number; stride: number; pad: number; what: string; pairs?: boolean }[] =
  [
    { shape: [2, 3, 8, 10], kernel: 2, stride: 2, pad: 0, what: "2x2/2 (tiled backward)" },
    // Rows of whole vec4s: on a CPU adapter, pairs of windows read from a texture copy of x.
    {
      shape: [2, 3, 6, 12],
      kernel: 2,
      stride: 2,
      pad: 0,
      what: "2x2/2 rows of vec4s (window pairs)",
      pairs: true,
    },
    { shape: [1, 2, 7, 9], kernel: 2, stride: 2, pad: 0, what: "2x2/2 odd size (ceil-mode partial windows)" },
    { shape: [2, 2, 9, 8], kernel: 3, stride: 2, pad: 1, what: "3x3/2 pad 1 (overlapping, gather backward)" },
    { shape: [1, 2, 6, 7], kernel: 3, stride: 1, pad: 0, what: "3x3/1 (heavily overlapping)" },
  ];

for (const c of POOLS) {
  Deno.test(`max_pool ${c.what}: GPU vs CPU twin, forward and backward, ties go to the first maximum`, async () => {
    const g: PoolRef = {
      planes: c.shape[0] * c.shape[1],
      height: c.shape[2],
      width: c.shape[3],
      kernel: c.kernel,
      stride: c.stride,
      pad: c.pad,
    };
    const mk = () =>
      new MaxPool("pool", { bottom: "x", top: "y", kernel: c.kernel, stride: c.stride, pad: c.pad });
    const p = await probe(mk(), [c.shape]);
    const pairs = p.net.dispatchLabels("train").filter((l) => l.includes("pairs tex")).length;
    assert.equal(pairs, c.pairs && p.net.gpu.isFallback ? 2 : 0, `${c.what}: window-pair kernels`);
    for (const x of [randomArray(numel(c.shape), 4), tied(numel(c.shape), 5)]) {
      p.set([x]);
      const [y] = await p.forward();
      assertClose(y, maxPoolRef(x, g).y, { ...EXACT, what: "max pool forward" });
      const grads = await p.backward();
      assertClose(grads.bottoms[0], maxPoolBackwardRef(x, p.r[0], g), { ...SUMS, what: "max pool backward" });
    }
    p.net.destroy();
    const x = tied(numel(c.shape), 6);
    const acc = await accumulated(mk(), c.shape, x);
    assertClose(acc.dx, maxPoolBackwardRef(x, acc.ra, g), {
      atol: 1e-5,
      rtol: 1e-5,
      what: "max pool accumulated backward",
    });
  });
}

Deno.test("max_pool: finite-difference gradient check (2x2/2 and 3x3/2 pad 1)", async () => {
  for (const [kernel, stride, pad] of [[2, 2, 0], [3, 2, 1]]) {
    // Rows of 8: the 2x2/2 pooling takes the window-pair kernels on a CPU adapter.
    const shape = [1, 2, 6, 8];
    const p = await probe(new MaxPool("pool", { bottom: "x", top: "y", kernel, stride, pad }), [shape]);
    await gradcheck(p, [separated(numel(shape), 7)], { samples: 16 });
    p.net.destroy();
  }
});

Deno.test("upsample nearest x2 and x3: GPU vs CPU twin, accumulate, gradient check", async () => {
  for (const [shape, factor] of [[[2, 3, 4, 5], 2], [[1, 2, 3, 3], 3]] as const) {
    const g = { planes: shape[0] * shape[1], height: shape[2], width: shape[3], factor };
    const x = randomArray(numel(shape), 8);
    const p = await probe(new Upsample("up", { bottom: "x", top: "y", factor }), [shape]);
    p.set([x]);
    const [y] = await p.forward();
    assertClose(y, upsampleNearestRef(x, g), { ...EXACT, what: "upsample forward" });
    const grads = await p.backward();
    assertClose(grads.bottoms[0], upsampleNearestBackwardRef(p.r[0], g), {
      ...SUMS,
      what: "upsample backward",
    });
    await gradcheck(p, [x]);
    p.net.destroy();
    const acc = await accumulated(new Upsample("up", { bottom: "x", top: "y", factor }), shape, x);
    assertClose(acc.dx, upsampleNearestBackwardRef(acc.ra, g), {
      atol: 1e-5,
      rtol: 1e-5,
      what: "upsample accumulated backward",
    });
  }
});
