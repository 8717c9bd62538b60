import assert from "node:assert/strict";
import { sharedGpu } from "../kernels/device.ts";
import { Net } from "../graph/net.ts";
import { SGD } from "../graph/solver.ts";
import { Deconvolution } from "../graph/layers/deconvolution.ts";
import { convGeometry } from "../kernels/conv_geometry.ts";
import { assertClose, gradcheck, probe, randomArray } from "./gradcheck.ts";
import { biasGradRef, convForwardRef, convWgradRef, deconvForwardRef } from "./reference/conv.ts";

const TOL = { atol: 2e-5, rtol: 1e-4 };

Deno.test("deconvolution: forward and backward match the CPU twin (groups 2, k3 s2 p1, bias)", async () => {
  const d = { n: 2, cin: 4, h: 3, w: 5, cout: 6, k: 3, s: 2, p: 1, groups: 2 };
  const layer = new Deconvolution("up", {
    bottom: "x",
    top: "y",
    numOutput: d.cout,
    kernel: d.k,
    stride: d.s,
    pad: d.p,
    group: d.groups,
    weightFiller: { type: "gaussian", std: 0.4 },
    biasFiller: { type: "uniform", min: -1, max: 1 },
  });
  const p = await probe(layer, [[d.n, d.cin, d.h, d.w]]);
  const x = randomArray(d.n * d.cin * d.h * d.w, 21);
  p.set([x]);
  const w = await p.net.readParam("up.weight"), bias = await p.net.readParam("up.bias");
  const [y] = await p.forward();
  const oh = (d.h - 1) * d.s - 2 * d.p + d.k, ow = (d.w - 1) * d.s - 2 * d.p + d.k;
  assert.deepEqual(p.net.shape("y"), [d.n, d.cout, oh, ow]);
  assertClose(y, deconvForwardRef(x, w, { ...d, bias }), { ...TOL, what: "deconv forward" });
  // Backward through the mirrored convolution (Cout x OH x OW -> Cin x H x W).
  const g = convGeometry([d.n, d.cout, oh, ow], {
    k: d.cin,
    kernel: d.k,
    stride: d.s,
    pad: d.p,
    groups: d.groups,
  });
  const dy = p.r[0];
  const grads = await p.backward();
  assertClose(grads.bottoms[0], convForwardRef(g, dy, w), { ...TOL, what: "deconv dx" });
  assertClose(grads.params[0], convWgradRef(g, x, dy), { ...TOL, what: "deconv dw" });
  assertClose(grads.params[1], biasGradRef(dy, { n: d.n, k: d.cout, hw: oh * ow }), {
    ...TOL,
    what: "deconv db",
  });
  await gradcheck(p, [x]);
  p.net.destroy();
});

Deno.test("deconvolution: the seed's bilinear x2 upsampling is exact, edges attenuated (0.75 * x0)", async () => {
  const [n, c, h, w] = [1, 3, 3, 4];
  const up = () =>
    new Deconvolution("up", {
      bottom: "x",
      top: "y",
      numOutput: c,
      group: c,
      kernel: 4,
      stride: 2,
      pad: 1,
      bias: false,
      lrMult: [0, 0],
      weightFiller: { type: "bilinear" },
    });
  const gpu = await sharedGpu();
  // Small integers: every product with 0.25/0.75 and every sum is exact in f32.
  const x = Float32Array.from({ length: n * c * h * w }, (_, i) => ((i * 7) % 11) - 5);
  const net = await Net.build(gpu, {
    inputs: { x: [n, c, h, w] },
    layers: [up()],
  }, { train: false });
  net.setInput("x", x);
  net.forward();
  const y = await net.read("y");
  assert.deepEqual(net.shape("y"), [n, c, 2 * h, 2 * w]);
  const k = [0.25, 0.75, 0.75, 0.25];
  // Separable 1-D transposed conv with zero padding: out[o] = sum_i x[i] * k[o + 1 - 2i].
  const up1 = (src: number[]) =>
    Array.from({ length: 2 * src.length }, (_, o) => {
      let s = 0;
      src.forEach((v, i) => {
        const t = o + 1 - 2 * i;
        if (t >= 0 && t < 4) s += v * k[t];
      });
      return s;
    });
  const want = new Float32Array(y.length);
  for (let ch = 0; ch < c; ch++) {
    const rows = Array.from(
      { length: h },
      (_, r) => up1(Array.from(x.subarray((ch * h + r) * w, (ch * h + r + 1) * w))),
    );
    for (let ox = 0; ox < 2 * w; ox++) {
      const col = up1(rows.map((r) => r[ox]));
      col.forEach((v, oy) => (want[(ch * 2 * h + oy) * 2 * w + ox] = v));
    }
  }
  assertClose(y, want, { atol: 0, rtol: 0, what: "bilinear upsampling" });
  // The corner is 0.75^2 * x[0,0] and the first row starts 0.75 * (0.75 x00), 0.75 * (0.75 x00 + 0.25 x01).
  assert.equal(y[0], 0.5625 * x[0]);
  assert.equal(y[1], 0.75 * (0.75 * x[0] + 0.25 * x[1]));
  net.destroy();

  // Frozen weights (lr_mult 0): the backward records dgrad only, no weight gradient.
  const frozen = await Net.build(gpu, { inputs: { x: [n, c, h, w] }, layers: [up()] }, {
    solver: new SGD({ baseLr: 0, momentum: 0 }),
    gradInputs: ["x"],
  });
  const learn = new Deconvolution("up", { ...up().opts, lrMult: [1, 0] });
  const learned = await Net.build(gpu, { inputs: { x: [n, c, h, w] }, layers: [learn] }, {
    solver: new SGD({ baseLr: 0, momentum: 0 }),
    gradInputs: ["x"],
  });
  assert.equal(learned.dispatchCount("train") - frozen.dispatchCount("train"), 1);
  frozen.destroy();
  learned.destroy();
});

Deno.test("deconvolution: depthwise k4 s2 p1 vs the scatter reference, and gradient check", async () => {
  const d = { n: 2, cin: 3, h: 4, w: 3, cout: 3, k: 4, s: 2, p: 1, groups: 3 };
  const layer = new Deconvolution("up", {
    bottom: "x",
    top: "y",
    numOutput: 3,
    group: 3,
    kernel: 4,
    stride: 2,
    pad: 1,
    bias: false,
    weightFiller: { type: "gaussian", std: 0.5 },
  });
  const p = await probe(layer, [[d.n, d.cin, d.h, d.w]]);
  const x = randomArray(d.n * d.cin * d.h * d.w, 33);
  p.set([x]);
  const [y] = await p.forward();
  assertClose(y, deconvForwardRef(x, await p.net.readParam("up.weight"), d), {
    ...TOL,
    what: "depthwise deconv",
  });
  await gradcheck(p, [x]);
  p.net.destroy();
});

Deno.test("deconvolution: shape errors name the layer and both shapes", async () => {
  const gpu = await sharedGpu();
  const build = (input: number[], group: number, kernel = 4) =>
    Net.build(gpu, {
      inputs: { x: input },
      layers: [
        new Deconvolution("up_bad", {
          bottom: "x",
          top: "y",
          numOutput: 4,
          kernel,
          stride: 2,
          pad: 1,
          group,
        }),
      ],
    });
  await assert.rejects(() => build([1, 3, 4, 4], 2), /layer "up_bad".*group 2.*1x3x4x4.*1x4x8x8/);
  await assert.rejects(() => build([1, 4, 1, 1], 1, 1), /layer "up_bad".*1x4x-1x-1.*1x4x1x1/);
});
