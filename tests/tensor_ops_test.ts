import assert from "node:assert/strict";
import { sharedGpu } from "../kernels/device.ts";
import { type Layer, numel, type Shape } from "../graph/layer.ts";
import { Net } from "../graph/net.ts";
import { SGD } from "../graph/solver.ts";
import { ReLU } from "../graph/layers/relu.ts";
import { Eltwise } from "../graph/layers/eltwise.ts";
import { Concat, Slice } from "../graph/layers/concat_slice.ts";
import { Flatten, Reshape } from "../graph/layers/reshape.ts";
import { AddVectorByConstant, AddVectorBySingleVector, ScaleVector } from "../graph/layers/vector_ops.ts";
import { assertClose, DotLoss, gradcheck, probe, randomArray } from "./gradcheck.ts";
import { reluBackwardRef } from "./reference/activation.ts";
import {
  addRowScalarBackwardRef,
  addRowScalarRef,
  concatRef,
  sliceRef,
  weightedSumRef,
} from "./reference/tensor_ops.ts";

const EXACT = { atol: 0, rtol: 0 };
// Weighted sums round differently from the float64 twins; the accumulated checks also subtract.
const CLOSE = { atol: 1e-5, rtol: 1e-5 };

/**
 * Builds the layer plus a ReLU on each of its (distinct) inputs, everything probed. The layer
 * runs first in the forward, so last in the backward: it must add to the ReLU's gradients.
 * Returns each input's gradient minus the ReLU's share, and the probe weights of the layer's tops.
 */
async function accumulated(
  layer: Layer,
  shapes: readonly Shape[],
  xs: readonly Float32Array[],
): Promise<{ dx: Map<string, Float32Array>; r: Float32Array[] }> {
  const gpu = await sharedGpu();
  const inputs: Record<string, Shape> = {};
  layer.bottoms.forEach((b, i) => (inputs[b] = shapes[i]));
  const dry = await Net.build(gpu, { inputs, layers: [layer] }, { train: false });
  const tops = layer.tops.map((t) => dry.shape(t));
  dry.destroy();
  const names = [...new Set(layer.bottoms)];
  // Each input passes through an identity layer first: a net input's gradient buffer is only
  // kept alive until its first writer in the backward (see the report on Net's arena), so the
  // summed gradient is read from a produced blob instead.
  const shapeOf = (b: string) => shapes[layer.bottoms.indexOf(b)];
  for (const b of names) {
    inputs[`${b}_in`] = shapeOf(b);
    delete inputs[b];
  }
  const layers: Layer[] = [
    ...names.map((b) => new ScaleVector(`feed_${b}`, { bottom: `${b}_in`, top: b, scale: 1 })),
    layer,
  ];
  const r = tops.map((s, k) => randomArray(numel(s), 40 + k));
  const rb = names.map((b, k) => randomArray(numel(shapeOf(b)), 50 + k));
  tops.forEach((s, k) => {
    inputs[`r${k}`] = s;
    layers.push(new DotLoss(`l${k}`, [layer.tops[k], `r${k}`], `L${k}`));
  });
  names.forEach((b, k) => {
    inputs[`rb${k}`] = shapeOf(b);
    layers.push(new ReLU(`relu${k}`, b, `b${k}`), new DotLoss(`lb${k}`, [`b${k}`, `rb${k}`], `Lb${k}`));
  });
  const net = await Net.build(gpu, { inputs, layers }, {
    solver: new SGD({ baseLr: 0 }),
    gradInputs: names.map((b) => `${b}_in`),
  });
  layer.bottoms.forEach((b, i) => net.setInput(`${b}_in`, xs[i]));
  r.forEach((v, k) => net.setInput(`r${k}`, v));
  rb.forEach((v, k) => net.setInput(`rb${k}`, v));
  net.step();
  const dx = new Map<string, Float32Array>();
  for (const [k, b] of names.entries()) {
    const other = reluBackwardRef(xs[layer.bottoms.indexOf(b)], rb[k]);
    dx.set(b, (await net.readDiff(b)).map((v, i) => v - other[i]));
  }
  net.destroy();
  return { dx, r };
}

Deno.test("eltwise: 2 inputs with coefficients and 9 inputs (two dispatches), GPU vs CPU twin", async () => {
  // 120 values run as vec4s, 45 as scalars.
  for (const [k, shape] of [[2, [2, 3, 4, 5]], [9, [2, 3, 4, 5]], [2, [1, 3, 5, 3]]] as const) {
    const n = numel(shape);
    const names = Array.from({ length: k }, (_, i) => `x${i}`);
    const coeffs = names.map((_, i) => (i % 2 ? -0.5 : 1) * (1 + i / 4));
    const xs = names.map((_, i) => randomArray(n, 60 + i));
    const p = await probe(new Eltwise("sum", { bottoms: names, top: "y", coeffs }), names.map(() => shape));
    p.set(xs);
    const [y] = await p.forward();
    assertClose(y, weightedSumRef(xs, coeffs), { ...CLOSE, what: "eltwise forward" });
    const g = await p.backward();
    g.bottoms.forEach((d, i) =>
      assertClose(d, p.r[0].map((v) => coeffs[i] * v), { ...CLOSE, what: `dx${i}` })
    );
    await gradcheck(p, xs, { samples: 4 });
    p.net.destroy();
  }
});

Deno.test("eltwise: an input listed twice gets both coefficients; accumulates into a shared gradient", async () => {
  const shape = [2, 6], n = 12;
  const a = randomArray(n, 1), b = randomArray(n, 2);
  const layer = new Eltwise("sum", { bottoms: ["a", "b", "a"], top: "y", coeffs: [1, 2, 0.25] });
  const p = await probe(layer, [shape, shape, shape]);
  p.set([a, b, a]);
  assertClose((await p.forward())[0], weightedSumRef([a, b, a], [1, 2, 0.25]), { ...CLOSE, what: "forward" });
  const g = await p.backward();
  assertClose(g.bottoms[0], p.r[0].map((v) => 1.25 * v), { ...CLOSE, what: "d(a)" });
  p.net.destroy();
  const acc = await accumulated(
    new Eltwise("sum", { bottoms: ["a", "b", "a"], top: "y", coeffs: [1, 2, 0.25] }),
    [shape, shape, shape],
    [a, b, a],
  );
  assertClose(acc.dx.get("a")!, acc.r[0].map((v) => 1.25 * v), { ...CLOSE, what: "accumulated d(a)" });
  assertClose(acc.dx.get("b")!, acc.r[0].map((v) => 2 * v), { ...CLOSE, what: "accumulated d(b)" });
});

const outerOf = (s: Shape, axis: number) => numel(s.slice(0, axis));

Deno.test("concat: channels of 3 inputs, 9 inputs (two dispatches) and axis 2; backward splits; accumulate", async () => {
  const cases: { shapes: Shape[]; axis: number }[] = [
    { shapes: [[2, 3, 4, 5], [2, 1, 4, 5], [2, 4, 4, 5]], axis: 1 },
    { shapes: Array.from({ length: 9 }, (_, i) => [2, 1 + (i % 3), 3, 2]), axis: 1 },
    { shapes: [[2, 3, 4, 5], [2, 3, 2, 5]], axis: 2 },
  ];
  for (const { shapes, axis } of cases) {
    const names = shapes.map((_, i) => `x${i}`);
    const xs = shapes.map((s, i) => randomArray(numel(s), 70 + i));
    const lens = shapes.map((s) => s[axis]);
    const outer = numel(shapes[0].slice(0, axis)), inner = numel(shapes[0].slice(axis + 1));
    const p = await probe(new Concat("cat", { bottoms: names, top: "y", axis }), shapes);
    // A CPU adapter moves the slices by buffer copies (at most 64 a layer), a GPU by kernels.
    const labels = p.net.dispatchLabels("train");
    const copies = p.net.gpu.isFallback && outerOf(shapes[0], axis) * shapes.length <= 64;
    assert.equal(
      labels.filter((l) => l.includes("concat_copy")).length,
      copies ? outerOf(shapes[0], axis) * shapes.length : 0,
    );
    assert.equal(labels.some((l) => l.includes("split_copy")), copies);
    p.set(xs);
    assertClose((await p.forward())[0], concatRef(xs, lens, outer, inner), {
      ...EXACT,
      what: "concat forward",
    });
    const g = await p.backward();
    const want = sliceRef(p.r[0], lens, outer, inner);
    g.bottoms.forEach((d, i) => assertClose(d, want[i], { ...EXACT, what: `concat d${i}` }));
    p.net.destroy();
    const acc = await accumulated(new Concat("cat", { bottoms: names, top: "y", axis }), shapes, xs);
    const wantAcc = sliceRef(acc.r[0], lens, outer, inner);
    names.forEach((b, i) => assertClose(acc.dx.get(b)!, wantAcc[i], { ...CLOSE, what: `accumulated d${i}` }));
  }
});

Deno.test("concat: an input used twice receives the sum of both slices' gradients", async () => {
  const a = randomArray(2 * 2 * 3, 1), b = randomArray(2 * 1 * 3, 2);
  const p = await probe(new Concat("cat", { bottoms: ["a", "b", "a"], top: "y" }), [[2, 2, 3], [2, 1, 3], [
    2,
    2,
    3,
  ]]);
  p.set([a, b, a]);
  assertClose((await p.forward())[0], concatRef([a, b, a], [2, 1, 2], 2, 3), EXACT);
  const g = await p.backward();
  const parts = sliceRef(p.r[0], [2, 1, 2], 2, 3);
  assertClose(g.bottoms[0], parts[0].map((v, i) => v + parts[2][i]), { ...CLOSE, what: "d(a)" });
  assertClose(g.bottoms[1], parts[1], { ...EXACT, what: "d(b)" });
  p.net.destroy();
});

Deno.test("slice: 16 cubes of a 16*D-channel volume, explicit slice points, unused pieces give zero gradient", async () => {
  const D = 3, shape = [2, 16 * D, 2, 3], n = numel(shape);
  const x = randomArray(n, 9);
  const tops = Array.from({ length: 16 }, (_, j) => `cube_${j}`);
  const lens = tops.map(() => D);
  // Only some cubes reach a loss; the others' gradients must come back as zeros.
  const probed = [0, 3, 4, 5, 15];
  const p = await probe(new Slice("slice", { bottom: "x", tops }), [shape], { tops: probed });
  p.set([x]);
  const ys = await p.forward();
  const want = sliceRef(x, lens, 2, 6);
  ys.forEach((y, j) => assertClose(y, want[j], { ...EXACT, what: `cube ${j}` }));
  const g = await p.backward();
  const diffs = lens.map((len, j) => {
    const k = probed.indexOf(j);
    return k >= 0 ? p.r[k] : new Float32Array(2 * len * 6);
  });
  assertClose(g.bottoms[0], concatRef(diffs, lens, 2, 6), { ...EXACT, what: "slice backward" });
  p.net.destroy();

  const points = [1, 4, 6];
  const s2 = [3, 7, 2];
  const x2 = randomArray(numel(s2), 10);
  const layer = new Slice("slice", { bottom: "x", tops: ["a", "b", "c", "d"], slicePoints: points });
  const p2 = await probe(layer, [s2]);
  p2.set([x2]);
  const ys2 = await p2.forward();
  sliceRef(x2, [1, 3, 2, 1], 3, 2).forEach((w, j) =>
    assertClose(ys2[j], w, { ...EXACT, what: `piece ${j}` })
  );
  await gradcheck(p2, [x2]);
  p2.net.destroy();
  const acc = await accumulated(
    new Slice("slice", { bottom: "x", tops: ["a", "b", "c", "d"], slicePoints: points }),
    [s2],
    [x2],
  );
  assertClose(acc.dx.get("x")!, concatRef(acc.r, [1, 3, 2, 1], 3, 2), {
    ...CLOSE,
    what: "accumulated slice",
  });
});

Deno.test("slice and reshape reject bad geometry at build time", async () => {
  const gpu = await sharedGpu();
  const build = (layer: Layer, shape: Shape) => Net.build(gpu, { inputs: { x: shape }, layers: [layer] });
  await assert.rejects(
    () => build(new Slice("s", { bottom: "x", tops: ["a", "b"], slicePoints: [9] }), [1, 8]),
    /layer "s": slice points/,
  );
  await assert.rejects(
    () => build(new Slice("s", { bottom: "x", tops: ["a", "b", "c"] }), [1, 8]),
    /multiple of 3/,
  );
  await assert.rejects(
    () => build(new Reshape("r", { bottom: "x", top: "y", shape: [5, -1] }), [2, 6]),
    /layer "r"/,
  );
});

Deno.test("reshape and flatten: shapes follow Caffe (0 copies, -1 infers); copies both ways; accumulate", async () => {
  const x = randomArray(2 * 6 * 4 * 4, 11);
  const r = await probe(new Reshape("r", { bottom: "x", top: "y", shape: [0, 3, -1, 4] }), [[2, 6, 4, 4]]);
  assert.deepEqual(r.net.shape("y"), [2, 3, 8, 4]);
  r.set([x]);
  assertClose((await r.forward())[0], x, EXACT);
  assertClose((await r.backward()).bottoms[0], r.r[0], EXACT);
  await gradcheck(r, [x], { samples: 4 });
  r.net.destroy();
  const f = await probe(new Flatten("f", { bottom: "x", top: "y" }), [[2, 6, 4, 4]]);
  assert.deepEqual(f.net.shape("y"), [2, 96]);
  f.net.destroy();
  const f2 = await probe(new Flatten("f", { bottom: "x", top: "y", axis: 1, endAxis: 2 }), [[2, 6, 4, 4]]);
  assert.deepEqual(f2.net.shape("y"), [2, 24, 4]);
  f2.net.destroy();
  const acc = await accumulated(new Flatten("f", { bottom: "x", top: "y" }), [[2, 6, 4, 4]], [x]);
  assertClose(acc.dx.get("x")!, acc.r[0], { ...CLOSE, what: "accumulated flatten" });
});

Deno.test("ScaleVector and AddVectorByConstant: forward, backward, gradient check", async () => {
  const shape = [3, 10], x = randomArray(30, 12);
  const sv = await probe(new ScaleVector("sv", { bottom: "x", top: "y", scale: -2.5 }), [shape]);
  sv.set([x]);
  assertClose((await sv.forward())[0], x.map((v) => -2.5 * v), CLOSE);
  assertClose((await sv.backward()).bottoms[0], sv.r[0].map((v) => -2.5 * v), CLOSE);
  await gradcheck(sv, [x]);
  sv.net.destroy();
  const ac = await probe(new AddVectorByConstant("ac", { bottom: "x", top: "y", value: 128 }), [shape]);
  ac.set([x]);
  assertClose((await ac.forward())[0], x.map((v) => v + 128), CLOSE);
  assertClose((await ac.backward()).bottoms[0], ac.r[0], EXACT);
  ac.net.destroy();
  const acc = await accumulated(new ScaleVector("sv", { bottom: "x", top: "y", scale: 3 }), [shape], [x]);
  assertClose(acc.dx.get("x")!, acc.r[0].map((v) => 3 * v), { ...CLOSE, what: "accumulated" });
});

Deno.test("AddVectorBySingleVector: ds sums each row (legacy: the seed's s[n+i] indexing); accumulate; gradient check", async () => {
  for (const [rows, cols] of [[3, 5], [2, 300]]) {
    const x = randomArray(rows * cols, 13), s = randomArray(rows, 14);
    for (const legacy of [false, true]) {
      const layer = new AddVectorBySingleVector("av", { bottom: "x", vector: "s", top: "y", legacy });
      const p = await probe(layer, [[rows, cols], [rows, 1]]);
      p.set([x, s]);
      assertClose((await p.forward())[0], addRowScalarRef(x, s, cols), { ...CLOSE, what: "forward" });
      const g = await p.backward();
      assertClose(g.bottoms[0], p.r[0], { ...EXACT, what: "dx" });
      assertClose(g.bottoms[1], addRowScalarBackwardRef(p.r[0], rows, cols, legacy), {
        ...CLOSE,
        what: "ds",
      });
      if (!legacy) await gradcheck(p, [x, s]);
      p.net.destroy();
    }
  }
  // The seed's loop leaves ds[n] = dy[n, 0].
  const dy = Float32Array.from({ length: 12 }, (_, i) => i + 1);
  assert.deepEqual([...addRowScalarBackwardRef(dy, 3, 4, true)], [1, 5, 9]);
  const x = randomArray(8, 15), s = randomArray(2, 16);
  const acc = await accumulated(
    new AddVectorBySingleVector("av", { bottom: "x", vector: "s", top: "y" }),
    [[2, 4], [2]],
    [x, s],
  );
  assertClose(acc.dx.get("x")!, acc.r[0], { ...CLOSE, what: "accumulated dx" });
  assertClose(acc.dx.get("s")!, addRowScalarBackwardRef(acc.r[0], 2, 4), {
    ...CLOSE,
    what: "accumulated ds",
  });
});
