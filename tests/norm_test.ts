import assert from "node:assert/strict";
import { sharedGpu } from "../kernels/device.ts";
import { type Layer, numel, type Shape } from "../graph/layer.ts";
import { Net } from "../graph/net.ts";
import { SGD } from "../graph/solver.ts";
import { ReLU } from "../graph/layers/relu.ts";
import { BatchNorm } from "../graph/layers/batch_norm.ts";
import { GroupNorm } from "../graph/layers/group_norm.ts";
import { Scale } from "../graph/layers/scale.ts";
import { ScaleVector } from "../graph/layers/vector_ops.ts";
import { assertClose, DotLoss, gradcheck, probe, randomArray } from "./gradcheck.ts";
import { reluBackwardRef } from "./reference/activation.ts";
import {
  batchNormBackwardRef,
  batchNormRef,
  groupNormBackwardRef,
  groupNormRef,
  type RefShape,
  type RunningRef,
  runningUpdateRef,
  scaleBackwardRef,
  scaleRef,
} from "./reference/norm.ts";

// f32 kernels against float64 twins: reductions over <= a few hundred terms stay well inside these.
const FWD = { atol: 2e-5, rtol: 1e-4 };
const BWD = { atol: 5e-5, rtol: 1e-3 };

function view(shape: Shape): RefShape {
  return { outer: shape[0], channels: shape[1], inner: numel(shape.slice(2)) };
}

/** Runs `layer` forward and backward once and checks both against the given twins. */
async function checkLayer(
  layer: Layer,
  shape: Shape,
  o: {
    seed: number;
    params?: Record<string, Float32Array>;
    fwd: (x: Float32Array) => Float32Array;
    bwd: (
      x: Float32Array,
      dy: Float32Array,
    ) => { dx: Float32Array; dgamma?: Float32Array; dbeta?: Float32Array };
    what: string;
    /** Each must match the label of some dispatch of the training program. */
    labels?: readonly RegExp[];
  },
): Promise<void> {
  const x = randomArray(numel(shape), o.seed, -2, 3);
  const p = await probe(layer, [shape]);
  for (const [k, v] of Object.entries(o.params ?? {})) p.net.writeParam(`${layer.name}.${k}`, v);
  p.set([x]);
  const [y] = await p.forward();
  assertClose(y, o.fwd(x), { ...FWD, what: `${o.what} forward` });
  const g = await p.backward();
  const ref = o.bwd(x, p.r[0]);
  assertClose(g.bottoms[0], ref.dx, { ...BWD, what: `${o.what} dx` });
  const keys = p.net.layout.entries.filter((e) => e.layer === layer.name).map((e) => e.decl.name);
  if (ref.dgamma && keys.includes("weight")) {
    assertClose(g.params[keys.indexOf("weight")], ref.dgamma, { ...BWD, what: `${o.what} dgamma` });
  }
  if (ref.dbeta && keys.includes("bias")) {
    assertClose(g.params[keys.indexOf("bias")], ref.dbeta, { ...BWD, what: `${o.what} dbeta` });
  }
  if (o.labels) {
    const labels = (await p.net.profile("train", 1)).map((e) => e.label);
    for (const want of o.labels) {
      assert.ok(labels.some((l) => want.test(l)), `${o.what}: ${want} in\n${labels.join("\n")}`);
    }
  }
  p.net.destroy();
}

for (
  const [shape, affine, relu] of [
    [[2, 3, 4, 5], true, true],
    [[2, 3, 4, 5], false, false],
    [[3, 4, 13, 11], true, false], // 429 values per channel: more than one workgroup stride
    [[1, 5, 9, 30], false, true], // batch 1
    [[2, 3, 4, 8], true, true], // rows of whole vec4s: the "lanes" layout reads four at a time
    [[6, 7], true, true], // 2-D input: one position per channel
  ] as const
) {
  Deno.test(`batch_norm: ${shape.join("x")} affine=${affine} relu=${relu}, batch stats, GPU vs CPU twin`, async () => {
    const C = shape[1];
    const gamma = randomArray(C, 5, 0.5, 1.5), beta = randomArray(C, 6, -0.5, 0.5);
    const ro = { gamma: affine ? gamma : undefined, beta: affine ? beta : undefined, relu };
    // Both reduction layouts, whichever the adapter would pick.
    for (const layout of ["lanes", "workgroups"] as const) {
      await checkLayer(new BatchNorm("bn", { bottom: "x", top: "y", affine, relu, layout }), shape, {
        seed: 3,
        params: affine ? { weight: gamma, bias: beta } : {},
        fwd: (x) => batchNormRef(x, view(shape), ro),
        bwd: (x, dy) => batchNormBackwardRef(x, dy, view(shape), ro),
        what: `bn (${layout})`,
      });
    }
  });
}

// On CPU adapters the lanes layout reads x (and dy) through uniform windows of whole images:
// several windows with a short last one, one scalar window; images too large for any from
// texture copies where they are whole vec4s, else from storage.
for (
  const [shape, want] of [
    [[5, 8, 40, 16], / ux2$/], // 5120 floats an image: windows of 3 and 2 images, vec4
    [[3, 4, 13, 11], / ux1$/], // rows not whole vec4s: scalar reads of one window
    [[2, 2, 100, 90], / v4 tex$/], // 18,000 floats an image: texture copies
    [[2, 2, 101, 90], / (update|relu|acc)$/], // 18,180, not whole vec4s: scalar storage reads
  ] as const
) {
  Deno.test(`batch_norm: ${shape.join("x")} lanes layout with input windows, GPU vs CPU twin`, async () => {
    const C = shape[1];
    const gamma = randomArray(C, 5, 0.5, 1.5), beta = randomArray(C, 6, -0.5, 0.5);
    const ro = { gamma, beta, relu: true };
    const fallback = (await sharedGpu()).isFallback;
    await checkLayer(
      new BatchNorm("bn", { bottom: "x", top: "y", affine: true, relu: true, layout: "lanes" }),
      shape,
      {
        seed: 4,
        params: { weight: gamma, bias: beta },
        fwd: (x) => batchNormRef(x, view(shape), ro),
        bwd: (x, dy) => batchNormBackwardRef(x, dy, view(shape), ro),
        what: `bn lanes ${shape.join("x")}`,
        labels: fallback
          ? [
            new RegExp(`bn_fwd batch lanes.*${want.source}`),
            new RegExp(`bn_bwd batch lanes.*${want.source}`),
          ]
          : [],
      },
    );
  });
}

Deno.test("batch_norm: channels far from zero (mean 1e3-3e3, std 0.3) keep their variance in both layouts", async () => {
  // A one-pass E[x^2] - E[x]^2 in f32 loses the variance here (squares ~1e6 against a variance of 0.08);
  // the kernels' shifted or two-pass sums keep the normalised values within f32 rounding of the mean.
  const shape = [2, 3, 4, 8];
  const x = randomArray(numel(shape), 9, -0.5, 0.5).map((v, i) => v + 1000 * (1 + Math.floor(i / 32) % 3));
  for (const layout of ["lanes", "workgroups"] as const) {
    const p = await probe(new BatchNorm("bn", { bottom: "x", top: "y", layout }), [shape]);
    p.set([x]);
    const [y] = await p.forward();
    assertClose(y, batchNormRef(x, view(shape)), {
      atol: 2e-3,
      rtol: 1e-3,
      what: `bn far from zero (${layout})`,
    });
    p.net.destroy();
  }
});

Deno.test("batch_norm: pinned running statistics (frozen BN): forward and constant-statistics backward", async () => {
  const shape = [2, 3, 4, 5];
  const mean = randomArray(3, 8, -0.5, 0.5), variance = randomArray(3, 9, 0.3, 2);
  const gamma = randomArray(3, 5, 0.5, 1.5), beta = randomArray(3, 6, -0.5, 0.5);
  const ro = { gamma, beta, relu: true, running: { mean, variance } };
  for (const layout of ["lanes", "workgroups"] as const) {
    await checkLayer(
      new BatchNorm("bn", { bottom: "x", top: "y", affine: true, relu: true, globalStats: true, layout }),
      shape,
      {
        seed: 4,
        params: { weight: gamma, bias: beta, running_mean: mean, running_var: variance },
        fwd: (x) => batchNormRef(x, view(shape), ro),
        bwd: (x, dy) => batchNormBackwardRef(x, dy, view(shape), ro),
        what: `bn running (${layout})`,
      },
    );
  }
});

Deno.test("batch_norm: running statistics follow Caffe's moving average; inference uses batch or running stats", async () => {
  const shape = [2, 3, 4, 5], s = view(shape);
  const layer = new BatchNorm("bn", { bottom: "x", top: "y", affine: true, relu: false });
  const p = await probe(layer, [shape]);
  let r: RunningRef = { mean: [0, 0, 0], variance: [1, 1, 1], scale: [0, 0, 0] };
  for (let step = 0; step < 4; step++) {
    const x = randomArray(numel(shape), 20 + step, -1 + step, 2 + 2 * step);
    p.set([x]);
    await p.backward();
    r = runningUpdateRef(r, x, s, 0.999);
  }
  assertClose(await p.net.readParam("bn.running_mean"), r.mean, {
    atol: 1e-5,
    rtol: 1e-4,
    what: "running mean",
  });
  assertClose(await p.net.readParam("bn.running_var"), r.variance, {
    atol: 1e-5,
    rtol: 1e-4,
    what: "running var",
  });
  assertClose(await p.net.readParam("bn.moving_scale"), r.scale, { rtol: 1e-6, what: "moving scale" });
  // Inference with batch statistics (the seed) must not touch the running estimates.
  const x = randomArray(numel(shape), 30, -3, 1);
  p.set([x]);
  const [yb] = await p.forward();
  assertClose(yb, batchNormRef(x, s), { ...FWD, what: "infer, batch stats" });
  assertClose(await p.net.readParam("bn.running_mean"), r.mean, {
    atol: 1e-5,
    rtol: 1e-4,
    what: "unchanged",
  });
  await p.net.setGlobalStats(true);
  const [yg] = await p.forward();
  const running = { mean: r.mean, variance: r.variance };
  assertClose(yg, batchNormRef(x, s, { running }), { ...FWD, what: "infer, running stats" });
  p.net.destroy();
});

Deno.test("batch_norm: finite-difference gradient check through batch statistics (with and without ReLU)", async () => {
  // f32 losses with step 1e-2: the default tolerance (atol 2e-3, rtol 2e-2) holds.
  for (const relu of [false, true]) {
    const shape = [2, 3, 4, 5];
    const p = await probe(new BatchNorm("bn", { bottom: "x", top: "y", affine: true, relu }), [shape]);
    p.net.writeParam("bn.weight", randomArray(3, 5, 0.5, 1.5));
    p.net.writeParam("bn.bias", randomArray(3, 6, -0.5, 0.5));
    await gradcheck(p, [randomArray(numel(shape), 7, -2, 2)], { samples: 16 });
    p.net.destroy();
  }
});

Deno.test("batch_norm: finite-difference gradient check with pinned running statistics", async () => {
  const shape = [2, 3, 4, 5];
  const layer = new BatchNorm("bn", { bottom: "x", top: "y", affine: true, globalStats: true });
  const p = await probe(layer, [shape]);
  p.net.writeParam("bn.running_mean", randomArray(3, 8, -0.5, 0.5));
  p.net.writeParam("bn.running_var", randomArray(3, 9, 0.3, 2));
  p.net.writeParam("bn.weight", randomArray(3, 5, 0.5, 1.5));
  await gradcheck(p, [randomArray(numel(shape), 7, -2, 2)]);
  p.net.destroy();
});

Deno.test("batch_norm: a second consumer of the input makes BN accumulate its input gradient", async () => {
  const gpu = await sharedGpu();
  const shape = [2, 3, 4, 5], n = numel(shape);
  // BN comes first in the forward, so it runs last in the backward and must add to dx.
  // x is produced by an identity layer: a net input's gradient buffer only lives until its first
  // writer in the backward (Net's arena), too early for BN's accumulation.
  const net = await Net.build(gpu, {
    inputs: { x_in: shape, ra: shape, rb: shape },
    layers: [
      new ScaleVector("feed", { bottom: "x_in", top: "x", scale: 1 }),
      new BatchNorm("bn", { bottom: "x", top: "a", affine: false, relu: true }),
      new ReLU("relu", "x", "b"),
      new DotLoss("la", ["a", "ra"], "La"),
      new DotLoss("lb", ["b", "rb"], "Lb"),
    ],
  }, { solver: new SGD({ baseLr: 0 }), gradInputs: ["x_in"] });
  const x = randomArray(n, 1), ra = randomArray(n, 2), rb = randomArray(n, 3);
  net.setInput("x_in", x);
  net.setInput("ra", ra);
  net.setInput("rb", rb);
  net.step();
  const bn = batchNormBackwardRef(x, ra, view(shape), { relu: true }).dx;
  const want = reluBackwardRef(x, rb).map((v, i) => v + bn[i]);
  assertClose(await net.readDiff("x"), want, { ...BWD, what: "summed dx" });
  net.destroy();
});

Deno.test("batch_norm: parameters are weight, bias (learnable) and running_mean, running_var, moving_scale (state)", async () => {
  const p = await probe(new BatchNorm("bn", { bottom: "x", top: "y", affine: true }), [[2, 3, 2, 2]]);
  const decls = p.net.layout.entries.filter((e) => e.layer === "bn").map((e) => e.decl);
  assert.deepEqual(decls.map((d) => [d.name, d.learnable]), [
    ["weight", true],
    ["bias", true],
    ["running_mean", false],
    ["running_var", false],
    ["moving_scale", false],
  ]);
  p.net.destroy();
});

for (
  const [shape, groups, affine, relu] of [
    [[2, 6, 4, 5], 3, true, true],
    [[1, 8, 9, 10], 2, true, false], // 360 values per group
    [[2, 4, 3, 3], 4, false, false],
  ] as const
) {
  Deno.test(`group_norm: ${shape.join("x")} groups=${groups} affine=${affine} relu=${relu}, GPU vs CPU twin`, async () => {
    const C = shape[1];
    const gamma = randomArray(C, 5, 0.5, 1.5), beta = randomArray(C, 6, -0.5, 0.5);
    const ro = { groups, gamma: affine ? gamma : undefined, beta: affine ? beta : undefined, relu };
    await checkLayer(new GroupNorm("gn", { bottom: "x", top: "y", groups, affine, relu }), shape, {
      seed: 11,
      params: affine ? { weight: gamma, bias: beta } : {},
      fwd: (x) => groupNormRef(x, view(shape), ro),
      bwd: (x, dy) => groupNormBackwardRef(x, dy, view(shape), ro),
      what: "gn",
    });
  });
}

Deno.test("group_norm: finite-difference gradient check", async () => {
  const shape = [2, 6, 3, 4];
  const p = await probe(new GroupNorm("gn", { bottom: "x", top: "y", groups: 2, relu: true }), [shape]);
  p.net.writeParam("gn.weight", randomArray(6, 5, 0.5, 1.5));
  p.net.writeParam("gn.bias", randomArray(6, 6, -0.5, 0.5));
  await gradcheck(p, [randomArray(numel(shape), 12, -2, 2)], { samples: 16 });
  p.net.destroy();
});

for (const [shape, bias] of [[[2, 3, 4, 5], true], [[3, 5, 300], false], [[4, 6], true]] as const) {
  Deno.test(`scale: ${shape.join("x")} bias=${bias}, GPU vs CPU twin and gradient check`, async () => {
    const C = shape[1];
    const gamma = randomArray(C, 5, -1.5, 1.5), beta = randomArray(C, 6, -0.5, 0.5);
    const s = view(shape);
    await checkLayer(new Scale("sc", { bottom: "x", top: "y", bias }), shape, {
      seed: 13,
      params: bias ? { weight: gamma, bias: beta } : { weight: gamma },
      fwd: (x) => scaleRef(x, s, gamma, bias ? beta : undefined),
      bwd: (x, dy) => scaleBackwardRef(x, dy, s, gamma),
      what: "scale",
    });
    const p = await probe(new Scale("sc", { bottom: "x", top: "y", bias }), [shape]);
    p.net.writeParam("sc.weight", gamma);
    await gradcheck(p, [randomArray(numel(shape), 14)]);
    p.net.destroy();
  });
}
