import assert from "node:assert/strict";
import { sharedGpu } from "../kernels/device.ts";
import type { Layer, Shape } from "../graph/layer.ts";
import { Net } from "../graph/net.ts";
import { runLayer } from "../graph/ops.ts";
import { Rng } from "../io/prng.ts";
import { SGD } from "../graph/solver.ts";
import { DepthDecode, GenPredMono3D } from "../graph/layers/geometry.ts";
import {
  AdaptiveWeightEuclideanLoss,
  IntegralCoordLoss,
  JSRegularizationLoss,
  SmoothL1Loss,
} from "../graph/layers/pose_losses.ts";
import { assertClose, gradcheck, type Probe, randomArray } from "./gradcheck.ts";
import { adaptiveRef, coordRef, jsRef, smoothL1Ref } from "./reference/pose_losses.ts";

/**
 * A {@linkcode Probe} around a loss net: the probed value is what the backward differentiates,
 * `lossWeight * L` by default, or `value(scalars)` when the gradient treats something as constant.
 */
async function lossProbe(
  layers: Layer[],
  inputs: Record<string, Shape>,
  o: { gradInputs: string[]; value?: (s: Record<string, Float32Array>) => number },
): Promise<Probe & { scalars(): Promise<Record<string, Float32Array>> }> {
  const gpu = await sharedGpu();
  const net = await Net.build(gpu, { inputs, layers }, {
    solver: new SGD({ baseLr: 0, momentum: 0 }),
    gradInputs: o.gradInputs,
  });
  const names = Object.keys(inputs);
  const losses = layers.filter((l) => l.lossWeight !== 0);
  const value = o.value ??
    ((s: Record<string, Float32Array>) => losses.reduce((acc, l) => acc + l.lossWeight * s[l.tops[0]][0], 0));
  const scalars = async () => {
    net.forward();
    return await net.readScalars();
  };
  return {
    net,
    r: [],
    set(values) {
      names.forEach((n, i) => net.setInput(n, values[i]));
    },
    async forward() {
      const s = await scalars();
      return layers.flatMap((l) => l.tops.map((t) => s[t]));
    },
    async backward() {
      net.step();
      await net.readScalars();
      return { bottoms: await Promise.all(names.map((n) => net.readDiff(n))), params: [] };
    },
    async loss() {
      return value(await scalars());
    },
    scalars,
  };
}

/** Values in [-hi, hi] kept at least `gap` away from every point in `kinks`. */
function awayFrom(n: number, seed: number, hi: number, kinks: number[], gap: number): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: n }, () => {
    for (;;) {
      const v = rng.uniform(-hi, hi);
      if (kinks.every((k) => Math.abs(v - k) > gap)) return v;
    }
  });
}

Deno.test("smooth L1: value and gradient match the CPU twin (sigma 1 and 2); gradcheck", async () => {
  const shape = [2, 3, 5, 7], n = 210;
  for (const sigma of [1, 2]) {
    const t = randomArray(n, 20);
    const x = awayFrom(n, 21, 3, [0], 0.02);
    const pred = x.map((v, i) => v + t[i]);
    const p = await lossProbe([
      new SmoothL1Loss("sl1", { pred: "p", target: "t", top: "L", weight: 0.5, sigma }),
    ], {
      p: shape,
      t: shape,
    }, { gradInputs: ["p"] });
    p.set([pred, t]);
    const ref = smoothL1Ref(pred, t, { batch: 2, weight: 0.5, sigma });
    const [L] = await p.forward();
    assertClose(L, [ref.loss], { rtol: 1e-5, what: `smooth L1 sigma ${sigma}` });
    const g = await p.backward();
    assertClose(g.bottoms[0], ref.grad, { atol: 1e-7, rtol: 1e-5, what: "d pred" });
    assert.equal(g.bottoms[1].length, 0, "no gradient to the target");
    await gradcheck(p, [pred, t]);
    p.net.destroy();
  }
});

Deno.test("JS regularisation: masking, value and gradient to P only match the CPU twin; gradcheck", async () => {
  const shape = [2, 4, 6, 6], n = 288;
  const rng = new Rng(30);
  // Masked entries sit far below eps (P = -0.5, Q = 0), so finite differences cannot unmask them.
  const P = Float32Array.from({ length: n }, (_, i) => (i % 7 === 0 ? -0.5 : rng.uniform(0.05, 1)));
  const Q = Float32Array.from({ length: n }, (_, i) => (i % 11 === 0 ? 0 : rng.uniform(0.05, 1)));
  const p = await lossProbe([new JSRegularizationLoss("js", { p: "P", q: "Q", top: "L", weight: 2 })], {
    P: shape,
    Q: shape,
  }, { gradInputs: ["P", "Q"] });
  p.set([P, Q]);
  const ref = jsRef(P, Q, { batch: 2, weight: 2 });
  const [L] = await p.forward();
  assertClose(L, [ref.loss], { rtol: 1e-5, what: "JS" });
  const g = await p.backward();
  assertClose(g.bottoms[0], ref.grad, { atol: 1e-7, rtol: 1e-5, what: "dP" });
  assert.equal(g.bottoms[1].length, 0, "no gradient to Q");
  assert.ok(g.bottoms[0].every((v, i) => (i % 7 && i % 11) || v === 0), "masked elements get 0");
  await gradcheck(p, [P, Q]);
  p.net.destroy();
});

Deno.test("adaptive-weight Euclidean: weights, per-pair terms, loss and gradients match the CPU twin; gradcheck with weights held", async () => {
  const sa = [2, 3, 4], sb = [2, 10];
  const pa = randomArray(24, 40),
    ga = randomArray(24, 41),
    pb = randomArray(20, 42, -5, 5),
    gb = randomArray(20, 43);
  const layer = new AdaptiveWeightEuclideanLoss("ada", {
    pairs: [["pa", "ga"], ["pb", "gb"]],
    top: "L",
    weightsTop: "W",
    termsTop: "T",
    weight: 0.7,
  });
  let held: number[] = [];
  // The backward treats w_i as constants: differentiate sum_i w_i(x0) S_i(x) / N = sum_i T_i w_i(x0) / w_i(x).
  const p = await lossProbe([layer], { pa: sa, ga: sa, pb: sb, gb: sb }, {
    gradInputs: ["pa", "ga", "pb", "gb"],
    value: (s) => 0.7 * held.reduce((acc, w0, i) => acc + (s.T[i] * w0) / s.W[i], 0),
  });
  const inputs = [pa, ga, pb, gb];
  p.set(inputs);
  const ref = adaptiveRef([[pa, ga], [pb, gb]], { batch: 2, weight: 0.7 });
  const [L, W, T] = await p.forward();
  assertClose(L, [ref.loss], { rtol: 1e-5, what: "loss" });
  assertClose(W, ref.weights, { rtol: 1e-5, what: "weights" });
  assertClose(T, ref.terms, { rtol: 1e-5, what: "terms" });
  held = [...W];
  const g = await p.backward();
  assertClose(g.bottoms[0], ref.grads[0], { atol: 1e-7, rtol: 1e-5, what: "d pred a" });
  assertClose(g.bottoms[2], ref.grads[1], { atol: 1e-7, rtol: 1e-5, what: "d pred b" });
  assert.equal(g.bottoms[1].length + g.bottoms[3].length, 0, "no gradient to the GT");
  await gradcheck(p, inputs, { checkInputs: [0, 2] });
  p.net.destroy();
});

Deno.test("adaptive-weight Euclidean: a pair with zero error stays finite in clean mode", async () => {
  const s = [2, 8];
  const a = randomArray(16, 50), b = randomArray(16, 51), c = randomArray(16, 52);
  const p = await lossProbe(
    [new AdaptiveWeightEuclideanLoss("ada", { pairs: [["a", "a2"], ["b", "c"]], top: "L", weightsTop: "W" })],
    { a: s, a2: s, b: s, c: s },
    { gradInputs: ["a", "b"] },
  );
  p.set([a, a.slice(), b, c]);
  const [L, W] = await p.forward();
  const ref = adaptiveRef([[a, a], [b, c]], { batch: 2 });
  assert.ok(Number.isFinite(L[0]) && W.every(Number.isFinite), `finite loss ${L[0]} and weights ${W}`);
  assertClose(L, [ref.loss], { rtol: 1e-5, what: "loss = the other pair's term" });
  const g = await p.backward();
  assert.ok(g.bottoms[0].every((v) => v === 0), "zero gradient for the exact pair");
  assertClose(g.bottoms[2], ref.grads[1], { atol: 1e-7, rtol: 1e-5 });
  p.net.destroy();
});

Deno.test("adaptive-weight Euclidean: legacy keeps the seed's unguarded 1 / mean (infinite weight, NaN loss)", async () => {
  const a = randomArray(16, 53);
  const r = await runLayer(
    new AdaptiveWeightEuclideanLoss("ada", { pairs: [["a", "b"]], top: "L", weightsTop: "W", legacy: true }),
    { a: { shape: [2, 8], data: a }, b: { shape: [2, 8], data: a.slice() } },
  );
  // IEEE division as on llvmpipe and Vulkan GPUs; WGSL itself leaves 1/0 to the implementation.
  assert.ok(
    !Number.isFinite(r.W.data[0]) && !Number.isFinite(r.L.data[0]),
    `legacy gave ${r.W.data}, ${r.L.data}`,
  );
});

Deno.test("integral coordinate loss: L1/L2, with and without per-joint weights, match the CPU twin; gradcheck", async () => {
  const B = 2, J = 16, shape = [B, J, 3], n = B * J * 3;
  const t = randomArray(n, 60, -500, 500);
  const pred = awayFrom(n, 61, 100, [0], 1).map((v, i) => v + t[i]);
  const vis = Float32Array.from({ length: B * J }, (_, i) => (i % 5 === 0 ? 0 : i % 3 === 0 ? 0.5 : 1));
  for (const norm of ["l1", "l2"] as const) {
    for (const weighted of [false, true]) {
      const layer = new IntegralCoordLoss("coord", {
        pred: "p",
        target: "t",
        top: "L",
        norm,
        weight: 0.25,
        ...(weighted ? { weights: "v" } : {}),
      });
      const inputs: Record<string, Shape> = weighted
        ? { p: shape, t: shape, v: [B, J] }
        : { p: shape, t: shape };
      const p = await lossProbe([layer], inputs, { gradInputs: ["p"] });
      const values = weighted ? [pred, t, vis] : [pred, t];
      p.set(values);
      const ref = coordRef(pred, t, {
        batch: B,
        coords: 3,
        norm,
        weight: 0.25,
        weights: weighted ? vis : undefined,
      });
      const [L] = await p.forward();
      assertClose(L, [ref.loss], { rtol: 1e-5, what: `${norm} weighted ${weighted}` });
      const g = await p.backward();
      assertClose(g.bottoms[0], ref.grad, { atol: 1e-6, rtol: 1e-5, what: "d pred" });
      // L2 values reach 1e4 mm^2 per term: a larger step keeps f32 cancellation below the tolerance.
      await gradcheck(p, values, { eps: norm === "l1" ? 0.1 : 0.5, checkInputs: [0] });
      p.net.destroy();
    }
  }
});

Deno.test("integral coordinate loss trains 2D and normalised depth through DepthDecode and GenPredMono3D (gradcheck)", async () => {
  const B = 2, J = 16, rng = new Rng(70);
  const u = (n: number, lo: number, hi: number) =>
    Float32Array.from({ length: n }, () => rng.uniform(lo, hi));
  const j2 = u(B * J * 2, 0.2, 0.8), depth = u(B * J, 0.55, 0.7);
  // Targets far from the prediction (> 1 m in every coordinate) keep |x| away from the L1 kink.
  const gt = new Float32Array(B * J * 3);
  for (let n = 0; n < B; n++) {
    const zr = rng.uniform(4500, 5500);
    for (let j = 0; j < J; j++) {
      gt.set(
        [rng.uniform(-2000, -1500), rng.uniform(1500, 2000), j ? zr - rng.uniform(1500, 1800) : zr],
        (n * J + j) * 3,
      );
    }
  }
  const cam = Float32Array.from({ length: B * 4 }, (_, i) => [1145, 1144, 512, 515][i % 4]);
  const crop = Float32Array.from({ length: B * 6 }, (_, i) => [380, -40, 300, 40, 380, 260][i % 6]);
  // One gradient input per net: the arena lets gradients of net inputs written at different
  // backward positions share a buffer, so two would clobber each other before readDiff.
  for (const [k, name] of [[0, "j2"], [1, "n"]] as const) {
    const p = await lossProbe(
      [
        new DepthDecode("dec", { depth: "n", rootFrom: "gt", top: "z" }),
        new GenPredMono3D("mono", { joints2d: "j2", depth: "z", camera: "cam", crop: "crop", top: "xyz" }),
        new IntegralCoordLoss("loss", { pred: "xyz", target: "gt", top: "L", weight: 1e-3 }),
      ],
      { j2: [B, J, 2], n: [B, J], gt: [B, J, 3], cam: [B, 4], crop: [B, 6] },
      { gradInputs: [name] },
    );
    await gradcheck(p, [j2, depth, gt, cam, crop], { eps: 1e-3, checkInputs: [k] });
    p.net.destroy();
  }
});
