import assert from "node:assert/strict";
import { sharedGpu } from "../kernels/device.ts";
import { createRegion, download } from "../graph/tensor.ts";
import { KernelCache, Recorder } from "../kernels/kernel.ts";
import { type ConvGeometry, convGeometry, type ConvParams } from "../kernels/conv_geometry.ts";
import {
  type ConvPath,
  dgradWorkspaceFloats,
  recordBiasGrad,
  recordConvDgrad,
  recordConvForward,
  recordConvWgrad,
  wgradDims,
  wgradWorkspaceFloats,
} from "../kernels/conv.ts";
import {
  CPU_TILE,
  GPU_TILE,
  parseTile,
  pickSplitK,
  pickTile,
  recordGemm,
  type TileConfig,
} from "../kernels/gemm.ts";
import {
  directDgradWorkspaceFloats,
  directFits,
  transposeWeightsKernel,
  wgradPlan,
} from "../kernels/conv_direct.ts";
import { Convolution, type ConvolutionOptions } from "../graph/layers/convolution.ts";
import { Net } from "../graph/net.ts";
import { benchConv } from "../run/bench/conv.ts";
import { assertClose, gradcheck, probe, randomArray, submitRecorded } from "./gradcheck.ts";
import {
  biasGradRef,
  convDgradRef,
  convForwardRef,
  convWgradRef,
  gemmRef,
  transposeWeightsRef,
} from "./reference/conv.ts";

// f32 GPU sums against f64 references over at most a few hundred terms in [-1, 1].
const TOL = { atol: 2e-5, rtol: 1e-4 };

/**
 * Runs forward (+bias, accumulating onto y0), dgrad (accumulating onto dx0), wgrad (alone and
 * with the bias folded in), bias grad. With path "direct", each kernel the direct family can run
 * is forced onto it (the others take the GEMM core); the dispatch labels come back to check that.
 */
async function runAll(g: ConvGeometry, o: { tile?: TileConfig; path?: ConvPath }, seed: number) {
  const gpu = await sharedGpu();
  const xN = g.n * g.c * g.h * g.w, yN = g.n * g.k * g.oh * g.ow;
  const wN = g.k * (g.c / g.groups) * g.kh * g.kw;
  const x = randomArray(xN, seed), w = randomArray(wN, seed + 1), bias = randomArray(g.k, seed + 2);
  const dy = randomArray(yN, seed + 3), y0 = randomArray(yN, seed + 4), dx0 = randomArray(xN, seed + 5);
  const r = {
    x: createRegion(gpu, x),
    w: createRegion(gpu, w),
    bias: createRegion(gpu, bias),
    dy: createRegion(gpu, dy),
    y: createRegion(gpu, y0),
    yb: createRegion(gpu, yN),
    dx: createRegion(gpu, dx0),
    dxo: createRegion(gpu, xN),
    dw: createRegion(gpu, randomArray(wN, seed + 6)),
    db: createRegion(gpu, g.k),
    // Stale values, so a missed write of the bias-folded weight gradient shows.
    dw2: createRegion(gpu, randomArray(wN, seed + 7)),
    db2: createRegion(gpu, randomArray(g.k, seed + 8)),
    // Room for split or per-image-group partial sums of the weight gradient, and for the input
    // gradient's transposed weights.
    ws: createRegion(
      gpu,
      Math.max(1, wgradWorkspaceFloats(g, { bias: true, tile: o.tile }), dgradWorkspaceFloats(g, o)),
    ),
  };
  const rec = new Recorder(new KernelCache(gpu));
  const opts = (kind: "forward" | "dgrad" | "wgrad") => ({
    tile: o.tile,
    path: o.path === "direct" && !directFits(g, kind) ? "gemm" as const : o.path,
  });
  recordConvForward(rec, { x: r.x, w: r.w, y: r.y, geometry: g }, { ...opts("forward"), accumulate: true });
  recordConvForward(rec, { x: r.x, w: r.w, bias: r.bias, y: r.yb, geometry: g }, opts("forward"));
  // With the workspace, an input gradient whose weights overflow a window runs from transposed
  // weights; without it, as sweeps over blocks of dy's channels: both paths, one each.
  recordConvDgrad(rec, { dy: r.dy, w: r.w, dx: r.dx, workspace: r.ws, geometry: g }, {
    ...opts("dgrad"),
    accumulate: true,
  });
  recordConvDgrad(rec, { dy: r.dy, w: r.w, dx: r.dxo, geometry: g }, opts("dgrad"));
  recordConvWgrad(rec, { dy: r.dy, x: r.x, dw: r.dw, workspace: r.ws, geometry: g }, opts("wgrad"));
  recordConvWgrad(
    rec,
    { dy: r.dy, x: r.x, dw: r.dw2, db: r.db2, workspace: r.ws, geometry: g },
    opts("wgrad"),
  );
  recordBiasGrad(rec, { dy: r.dy, db: r.db }, { n: g.n, k: g.k, hw: g.oh * g.ow });
  await submitRecorded(rec);
  const out = {
    yAcc: await download(gpu, r.y),
    yBias: await download(gpu, r.yb),
    dxAcc: await download(gpu, r.dx),
    dx: await download(gpu, r.dxo),
    dw: await download(gpu, r.dw),
    db: await download(gpu, r.db),
    dwBias: await download(gpu, r.dw2),
    dbFolded: await download(gpu, r.db2),
  };
  for (const v of Object.values(r)) v.buffer.destroy();
  const yRef = convForwardRef(g, x, w);
  const dxRef = convDgradRef(g, dy, w);
  const dwRef = convWgradRef(g, dy, x), dbRef = biasGradRef(dy, { n: g.n, k: g.k, hw: g.oh * g.ow });
  return {
    out,
    ref: {
      yAcc: yRef.map((v, i) => v + y0[i]),
      yBias: convForwardRef(g, x, w, bias),
      dxAcc: dxRef.map((v, i) => v + dx0[i]),
      dx: dxRef,
      dw: dwRef,
      db: dbRef,
      dwBias: dwRef,
      dbFolded: dbRef,
    },
    labels: rec.dispatches.map((d) => d.label),
  };
}

const CONFIGS: {
  name: string;
  input: number[];
  p: ConvParams;
  uniform?: boolean;
  /** Each must match the label of some dispatch of the direct run. */
  expect?: RegExp[];
}[] = [
  { name: "1x1 (plain GEMM, vec4 pixels)", input: [2, 8, 4, 4], p: { k: 12, kernel: 1 } },
  { name: "1x1 odd sizes", input: [1, 3, 5, 3], p: { k: 5, kernel: 1 } },
  { name: "3x3 pad 1", input: [2, 5, 7, 6], p: { k: 6, kernel: 3, pad: 1 } },
  { name: "7x7 stride 2 pad 3", input: [1, 3, 13, 11], p: { k: 8, kernel: 7, stride: 2, pad: 3 } },
  { name: "3x3 stride 2 no pad", input: [2, 4, 9, 8], p: { k: 4, kernel: 3, stride: 2 } },
  { name: "groups 2", input: [2, 6, 6, 5], p: { k: 8, kernel: 3, pad: 1, groups: 2 } },
  { name: "depthwise 3x3", input: [2, 6, 5, 7], p: { k: 6, kernel: 3, pad: 1, groups: 6 } },
  { name: "depthwise 4x4 s2 p1", input: [1, 4, 8, 6], p: { k: 4, kernel: 4, stride: 2, pad: 1, groups: 4 } },
  {
    name: "non-square 3x5 s2x1 p1x2",
    input: [1, 4, 8, 9],
    p: { k: 5, kernel: [3, 5], stride: [2, 1], pad: [1, 2] },
  },
  { name: "1x1 stride 2 (not pointwise)", input: [1, 4, 6, 6], p: { k: 4, kernel: 1, stride: 2 } },
  // Shapes whose per-image windows let the direct weight gradient run too.
  { name: "3x3 pad 1 on 8x8 (direct wgrad)", input: [2, 4, 8, 8], p: { k: 8, kernel: 3, pad: 1 } },
  {
    name: "7x7 stride 2 pad 3 on 16x16 (direct wgrad)",
    input: [2, 3, 16, 16],
    p: { k: 8, kernel: 7, stride: 2, pad: 3 },
  },
  { name: "1x1 to 40 (direct wgrad in two channel blocks)", input: [2, 4, 4, 4], p: { k: 40, kernel: 1 } },
  // Direct-path shapes: weights over one uniform binding (two forward and two input-gradient
  // sweeps), 32-channel 1x1 blocks with vec4 loads and two input channels per weight-gradient
  // invocation, and four output rows per invocation on a 4-wide output.
  {
    name: "3x3 64->40 on 6x6 (weights split over sweeps)",
    input: [2, 64, 6, 6],
    p: { k: 40, kernel: 3, pad: 1 },
  },
  // vec4 loads and, with rows of whole vec4s, vec4 stores (" o4"), plain and accumulating.
  {
    name: "1x1 16->64 on 8x8 (vec4 sweeps)",
    input: [2, 16, 8, 8],
    p: { k: 64, kernel: 1 },
    uniform: true,
    expect: [/conv_fwd_direct .* \+= .* v4 o4 ux\d$/, /conv_dgrad_direct .* v4 o4 ux\d$/],
  },
  // Images of 18432 floats, over one 64 KiB uniform window, and so is a block of 8 channels of
  // one image's output gradient: the sweeps, which read each input value three times, and the
  // weight gradient read their operands packed into textures, the sweeps a row's padded columns
  // as whole texels.
  {
    name: "3x3 8->8 on 48x48 (operands through textures)",
    input: [1, 8, 48, 48],
    p: { k: 8, kernel: 3, pad: 1 },
    uniform: false,
    expect: [
      /conv_fwd_direct 1x8x48x48->8 k3x3 .* o4 txr$/,
      /conv_dgrad_direct 1x8x48x48->8 k3x3 .* o4 txr$/,
      /conv_wgrad_direct 1x8x48x48->8 k3x3 .* tdy txr$/,
    ],
  },
  // Images of 49923 and 33282 floats, not whole texels: every direct kernel reads storage.
  {
    name: "1x1 3->2 on 129x129 (storage-bound direct kernels)",
    input: [1, 3, 129, 129],
    p: { k: 2, kernel: 1 },
    uniform: false,
    // Rows of 129 values: scalar stores.
    expect: [/conv_fwd_direct .*tn\d+$/, /conv_dgrad_direct .*tn\d+$/, /conv_wgrad_direct .* tc\d+$/],
  },
  // Images of 18000 floats, dy's of 36000: over a uniform window, the weight gradient would run
  // per image and 10-channel block; it runs one pass over both images, dy and x packed into
  // textures (rows of 30 values: scalar loads).
  {
    name: "3x3 20->40 on 30x30 (weight gradient in output-channel blocks)",
    input: [2, 20, 30, 30],
    p: { k: 40, kernel: 3, pad: 1 },
    uniform: false,
    expect: [/conv_wgrad_direct 2x20x30x30->40 k3x3 .* tdy tx$/],
  },
  // Likewise a pointwise kernel whose x would fit windows, with vec4 texel loads.
  {
    name: "1x1 8->32 on 32x32 (weight gradient in output-channel blocks, vec4)",
    input: [2, 8, 32, 32],
    p: { k: 32, kernel: 1 },
    uniform: true,
    expect: [/conv_wgrad_direct 2x8x32x32->32 k1x1 .* v4 tdy tx$/],
  },
  { name: "3x3 pad 1 on 4x4 (4-row blocks)", input: [2, 8, 4, 4], p: { k: 8, kernel: 3, pad: 1 } },
  // A 5x5 kernel loops over its rows; padding 2 still starts a row's texels one texel early.
  {
    name: "5x5 pad 2 8->4 on 48x48 (texel rows in a kernel-row loop)",
    input: [1, 8, 48, 48],
    p: { k: 4, kernel: 5, pad: 2 },
    expect: [/conv_fwd_direct 1x8x48x48->4 k5x5 .* txr$/],
  },
  // 128 input channels: 16 output channels' 3x3 weights overflow one 64 KiB window, so the
  // forward's register block reads them from two.
  {
    name: "3x3 128->16 on 16x16 (weights in two uniform windows)",
    input: [1, 128, 16, 16],
    p: { k: 16, kernel: 3, pad: 1 },
    expect: [
      /conv_fwd_direct 1x128x16x16->16 k3x3 .* tm16\/2w .* txr$/,
      // The input gradient's weights overflow a window too: from transposed weights, two blocks
      // of dx's channels (with the workspace), or sweeps over blocks of 14 of dy's (without).
      /conv_dgrad_direct 1x128x16x16->16 k3x3 .* \+= wT c0\+112 /,
      /conv_dgrad_direct 1x128x16x16->16 k3x3 .* m0\+14 /,
    ],
  },
  // 24 weight-gradient invocations (two channels each) in one workgroup of 24 lanes, and a
  // 16-channel 3x3 kernel whose weight gradient runs single channels (see the wgradPlan test).
  {
    name: "3x3 48->32 on 8x8 (24-lane weight-gradient workgroups)",
    input: [2, 48, 8, 8],
    p: { k: 32, kernel: 3, pad: 1 },
    expect: [/conv_wgrad_direct 2x48x8x8->32 k3x3 .* tc2 /],
  },
  {
    name: "3x3 16->16 on 32x32 (single-channel weight gradient)",
    input: [1, 16, 32, 32],
    p: { k: 16, kernel: 3, pad: 1 },
    expect: [/conv_wgrad_direct 1x16x32x32->16 k3x3 .* tc1 /],
  },
  // x fits one window for both images, dy a window per image: the weight gradient runs one pass
  // over dy and x packed into textures, split over the two images (the partials folded from a
  // texture copy); the forward reads both images through one window; the input gradient reads
  // dy packed in one pass instead of a window per image.
  {
    name: "3x3 8->16 on 32x32 (packed weight gradient split over the images, folded)",
    input: [2, 8, 32, 32],
    p: { k: 16, kernel: 3, pad: 1 },
    expect: [
      /conv_wgrad_direct 2x8x32x32->16 k3x3 .* split2 v4 tdy txr$/,
      /conv_wgrad_direct_fold 2x8x32x32->16 .* split2 tex$/,
      /conv_fwd_direct 2x8x32x32->16 k3x3 .* ux2$/,
      /conv_dgrad_direct 2x8x32x32->16 k3x3 .* txr$/,
    ],
  },
  // vec4 1x1 sweeps take two reduction channels an iteration where the count is even (" r2": the
  // input gradient's 4), one where it is odd (the forward's 5).
  {
    name: "1x1 5->4 on 8x8 (vec4 sweeps over two channels an iteration)",
    input: [2, 5, 8, 8],
    p: { k: 4, kernel: 1 },
    expect: [/conv_dgrad_direct 2x5x8x8->4 k1x1 .*tn\d r2 v4/, /conv_fwd_direct 2x5x8x8->4 k1x1 .*tn\d v4/],
  },
  // 1x1 96->192: the input gradient's 192 x 96 weights overflow a window; transposed, they run as
  // vec4 sweeps over blocks of 80 and 16 of dx's channels.
  {
    name: "1x1 96->192 on 4x4 (input gradient from transposed weights)",
    input: [1, 96, 4, 4],
    p: { k: 192, kernel: 1 },
    expect: [/conv_dgrad_wT 192x96x1x1/, /conv_dgrad_direct 1x96x4x4->192 k1x1 .* \+= wT c80\+16 .* v4/],
  },
];

// Every config runs with the adapter's tile plus one other: the GPU default (so its code path is
// checked here too), small tiles with partial edges and scalar (tm, tn < 4) paths, and a
// double-buffered tile.
const EXTRA_TILES: [string, TileConfig][] = [
  ["GPU tile", GPU_TILE],
  ["tile 8x16x4/2x4", parseTile("8x16x4/2x4")],
  ["tile 16x8x8/4x1", parseTile("16x8x8/4x1")],
  ["tile 16x16x4/4x4 double-buffered", parseTile("16x16x4/4x4d")],
];

for (const [ci, c] of CONFIGS.entries()) {
  Deno.test(`conv kernels: ${c.name} match the CPU twin (forward+bias, accumulate, dgrad, wgrad, bias grad)`, async () => {
    const g = convGeometry(c.input, c.p);
    const runs: [string, { tile?: TileConfig; path?: ConvPath }][] = [
      ["adapter default", {}],
      ["GEMM, adapter tile", { path: "gemm" }],
      ["direct", { path: "direct" }],
      [EXTRA_TILES[ci % EXTRA_TILES.length][0], { tile: EXTRA_TILES[ci % EXTRA_TILES.length][1] }],
    ];
    for (const [ti, [tname, o]] of runs.entries()) {
      const { out, ref, labels } = await runAll(g, o, 100 * ci + 10 * ti);
      for (const key of Object.keys(ref) as (keyof typeof ref)[]) {
        assertClose(out[key], ref[key], { ...TOL, what: `${c.name}, ${tname}: ${key}` });
      }
      const direct = labels.filter((l) => l.includes("_direct")).length;
      if (o.path === "gemm" || o.tile) assert.equal(direct, 0, `${tname}: ${labels}`);
      // The adapter default takes the direct forward on CPU adapters wherever it fits.
      if (!o.path && !o.tile && directFits(g, "forward")) {
        const fallback = (await sharedGpu()).isFallback;
        assert.equal(labels.some((l) => l.includes("conv_fwd_direct")), fallback, `${tname}: ${labels}`);
      }
      if (o.path === "direct") {
        const want = (["forward", "dgrad", "wgrad"] as const).filter((k) => directFits(g, k)).length;
        assert.ok(
          direct >= want * 2,
          `${c.name}: ${want} kernel kinds fit the direct path\n${labels.join("\n")}`,
        );
        // Inputs through uniform windows (labels " ux<images>", " udy") where whole images fit one.
        if (c.uniform !== undefined) {
          assert.equal(
            labels.some((l) => / ux\d| udy/.test(l)),
            c.uniform,
            `${c.name}: ${labels.join("\n")}`,
          );
        }
        // Without texture layer views (wgpu's GL backend) batches are not packed: other paths, same values.
        for (const want of (await sharedGpu()).layerViews === false ? [] : c.expect ?? []) {
          assert.ok(labels.some((l) => want.test(l)), `${c.name}: ${want}\n${labels.join("\n")}`);
        }
      }
    }
  });
}

Deno.test("gemm: batched plain GEMM matches the CPU twin (vec4 and scalar layouts, accumulate)", async () => {
  const gpu = await sharedGpu();
  for (
    const [M, N, K, tile] of [[20, 36, 12, "8x16x4/4x4"], [7, 9, 5, "8x8x4/2x2"], [
      64,
      64,
      32,
      undefined,
    ]] as const
  ) {
    const batch = 2;
    const A = randomArray(batch * M * K, M),
      B = randomArray(batch * K * N, N),
      C0 = randomArray(batch * M * N, K);
    const a = createRegion(gpu, A), b = createRegion(gpu, B), c = createRegion(gpu, C0);
    const rec = new Recorder(new KernelCache(gpu));
    recordGemm(rec, { a, b, c }, {
      M,
      N,
      K,
      batch,
      accumulate: true,
      tile: tile ? parseTile(tile) : undefined,
    });
    await submitRecorded(rec);
    const got = await download(gpu, c);
    const want = new Float32Array(batch * M * N);
    for (let i = 0; i < batch; i++) {
      const r = gemmRef(A.subarray(i * M * K), B.subarray(i * K * N), { M, N, K });
      for (let j = 0; j < M * N; j++) want[i * M * N + j] = r[j] + C0[i * M * N + j];
    }
    assertClose(got, want, { ...TOL, what: `gemm ${M}x${N}x${K}` });
    for (const r of [a, b, c]) r.buffer.destroy();
  }
});

Deno.test("gemm: pickTile shrinks to skinny problems and keeps tiles valid", () => {
  const dw = pickTile({ M: 1, N: 4096, K: 16 }, CPU_TILE);
  assert.equal(dw.bm, 1);
  assert.equal(dw.tm, 1);
  assert.ok(dw.bn >= 64, `depthwise tile ${JSON.stringify(dw)} keeps enough columns`);
  const thin = pickTile({ M: 128, N: 9, K: 4096 }, GPU_TILE);
  assert.ok(thin.bn <= 16, `wgrad of a 1-channel 3x3 conv: ${JSON.stringify(thin)}`);
  assert.deepEqual(pickTile({ M: 512, N: 4096, K: 512 }, CPU_TILE), CPU_TILE);
  assert.throws(() => parseTile("64x64x16/3x4"), /bm % tm/);
});

Deno.test("convolution: shape errors name the layer and both shapes", async () => {
  const gpu = await sharedGpu();
  const build = (input: number[], o: Partial<ConstructorParameters<typeof Convolution>[1]>) =>
    Net.build(gpu, {
      inputs: { x: input },
      layers: [new Convolution("conv_bad", { bottom: "x", top: "y", numOutput: 4, kernel: 3, ...o })],
    });
  await assert.rejects(() => build([1, 3, 8, 8], { group: 2 }), /layer "conv_bad".*group 2.*1x3x8x8/);
  await assert.rejects(() => build([1, 3, 2, 2], {}), /layer "conv_bad".*kernel 3x3.*1x3x2x2/);
  await assert.rejects(() => build([3, 8, 8], {}), /layer "conv_bad".*NxCxHxW.*3x8x8/);
});

Deno.test("convolution layer: forward and backward match the CPU twin; gradient check", async () => {
  const shape = [2, 4, 6, 5];
  const layer = new Convolution("conv", {
    bottom: "x",
    top: "y",
    numOutput: 6,
    kernel: 3,
    pad: 1,
    stride: [1, 2],
    group: 2,
    weightFiller: { type: "gaussian", std: 0.3 },
    biasFiller: { type: "uniform", min: -0.5, max: 0.5 },
  });
  const p = await probe(layer, [shape]);
  const x = randomArray(2 * 4 * 6 * 5, 5);
  p.set([x]);
  const g = convGeometry(shape, { k: 6, kernel: 3, pad: 1, stride: [1, 2], groups: 2 });
  const w = await p.net.readParam("conv.weight"), b = await p.net.readParam("conv.bias");
  const [y] = await p.forward();
  assertClose(y, convForwardRef(g, x, w, b), { ...TOL, what: "conv layer forward" });
  const grads = await p.backward();
  assertClose(grads.bottoms[0], convDgradRef(g, p.r[0], w), { ...TOL, what: "conv layer dx" });
  assertClose(grads.params[0], convWgradRef(g, p.r[0], x), { ...TOL, what: "conv layer dw" });
  assertClose(grads.params[1], biasGradRef(p.r[0], { n: 2, k: 6, hw: g.oh * g.ow }), {
    ...TOL,
    what: "conv layer db",
  });
  await gradcheck(p, [x]);
  p.net.destroy();
});

Deno.test("convolution layer: defaults follow the seed (gaussian 0.01, bias 0, lr 1/2, decay 1/0)", async () => {
  const gpu = await sharedGpu();
  const net = await Net.build(gpu, {
    inputs: { x: [1, 2, 4, 4] },
    layers: [new Convolution("c", { bottom: "x", top: "y", numOutput: 3, kernel: 1, bias: true })],
  });
  const w = net.param("c.weight"), b = net.param("c.bias");
  assert.deepEqual([w.decl.shape, w.decl.lrMult, w.decl.decayMult], [[3, 2, 1, 1], 1, 1]);
  assert.deepEqual([b.decl.shape, b.decl.lrMult, b.decl.decayMult], [[3], 2, 0]);
  assert.deepEqual(w.decl.filler, { type: "gaussian", std: 0.01 });
  assert.deepEqual(await net.readParam("c.bias"), new Float32Array(3));
  net.destroy();
});

/** Runs the weight gradient with the bias folded in, split `splitK` ways through a workspace. */
async function runWgrad(g: ConvGeometry, o: { splitK?: number; tile?: TileConfig; seed: number }) {
  // The split-K GEMM path: the direct kernels (the default on CPU adapters) have no split.
  const gpu = await sharedGpu();
  const xN = g.n * g.c * g.h * g.w, yN = g.n * g.k * g.oh * g.ow;
  const wN = g.k * (g.c / g.groups) * g.kh * g.kw;
  const x = randomArray(xN, o.seed), dy = randomArray(yN, o.seed + 1);
  const { M, N, groups } = wgradDims(g);
  const r = {
    x: createRegion(gpu, x),
    dy: createRegion(gpu, dy),
    // Stale values everywhere, so a missed write shows.
    dw: createRegion(gpu, randomArray(wN, o.seed + 2)),
    db: createRegion(gpu, randomArray(g.k, o.seed + 3)),
    ws: createRegion(
      gpu,
      randomArray(Math.max(1, (o.splitK ?? 16) * (groups ?? 1) * M * (N + 1)), o.seed + 4),
    ),
  };
  const rec = new Recorder(new KernelCache(gpu));
  recordConvWgrad(rec, { dy: r.dy, x: r.x, dw: r.dw, db: r.db, workspace: r.ws, geometry: g }, {
    tile: o.tile,
    splitK: o.splitK,
    path: "gemm",
  });
  await submitRecorded(rec);
  const out = { dw: await download(gpu, r.dw), db: await download(gpu, r.db) };
  for (const v of Object.values(r)) v.buffer.destroy();
  const ref = { dw: convWgradRef(g, dy, x), db: biasGradRef(dy, { n: g.n, k: g.k, hw: g.oh * g.ow }) };
  return { out, ref, dispatches: rec.dispatches.map((d) => d.label) };
}

Deno.test("conv wgrad: split K with the bias folded in matches the CPU twin and repeats bit for bit", async () => {
  // Long reductions (the cases split K exists for) need a looser tolerance: ~2000-term f32 sums.
  const tol = { atol: 1e-4, rtol: 1e-4 };
  const cases: { name: string; input: number[]; p: ConvParams; tile?: string }[] = [
    { name: "7x7 s2 3->16 (M 16, N 147)", input: [2, 3, 32, 32], p: { k: 16, kernel: 7, stride: 2, pad: 3 } },
    { name: "3x3 16->16", input: [2, 16, 16, 16], p: { k: 16, kernel: 3, pad: 1 } },
    { name: "1x1 8->12 (vec4 pixels)", input: [2, 8, 16, 16], p: { k: 12, kernel: 1 } },
    { name: "groups 2, odd sizes", input: [3, 6, 9, 7], p: { k: 4, kernel: 3, pad: 1, groups: 2 } },
    {
      name: "3x3 with a small double-buffered tile",
      input: [2, 5, 12, 12],
      p: { k: 6, kernel: 3, pad: 1 },
      tile: "8x16x4/4x4d",
    },
    {
      name: "3x3 with a scalar tile",
      input: [2, 5, 12, 12],
      p: { k: 6, kernel: 3, pad: 1 },
      tile: "16x8x8/4x1",
    },
  ];
  for (const [ci, c] of cases.entries()) {
    const g = convGeometry(c.input, c.p);
    const tile = c.tile ? parseTile(c.tile) : undefined;
    for (const splitK of [1, 3, undefined]) {
      const what = `${c.name}, split ${splitK ?? "auto"}`;
      const a = await runWgrad(g, { splitK, tile, seed: 10 * ci });
      assertClose(a.out.dw, a.ref.dw, { ...tol, what: `${what}: dw` });
      assertClose(a.out.db, a.ref.db, { ...tol, what: `${what}: db` });
      if (splitK === 3) assert.ok(a.dispatches.some((l) => l.includes("reduce")), `${what}: ${a.dispatches}`);
      const b = await runWgrad(g, { splitK, tile, seed: 10 * ci });
      assert.deepEqual(b.out, a.out, `${what}: repeat is bit-identical`);
    }
  }
});

Deno.test("conv wgrad: few-tile problems split K on a CPU adapter and the layer reserves the workspace", () => {
  const g = convGeometry([8, 3, 64, 64], { k: 16, kernel: 7, stride: 2, pad: 3 });
  const tile = pickTile(wgradDims(g), CPU_TILE);
  const s = pickSplitK(wgradDims(g), tile, { target: 16, minChunk: 256 });
  assert.ok(s >= 8, `conv_1 wgrad splits ${s} ways`);
  assert.ok(wgradWorkspaceFloats(g, { bias: true }) >= s * 16 * 148);
  // Large problems have tiles enough for a CPU.
  const big = wgradDims(convGeometry([8, 256, 64, 64], { k: 256, kernel: 3, pad: 1 }));
  assert.equal(pickSplitK(big, pickTile(big, CPU_TILE), { target: 16, minChunk: 256 }), 1);
});

Deno.test("conv wgrad plan: workgroups of whole SIMD chunks; single channels where that fills both workers", () => {
  const plan = (x: number[], k: number, kernel: number) =>
    wgradPlan(convGeometry(x, { k, kernel, pad: kernel >> 1 }));
  // 48 invocations: two workgroups of 24, no idle lanes (a power of two would run 32 + 16 of 32).
  const p48 = plan([2, 96, 8, 8], 96, 3);
  assert.deepEqual([p48.tc, p48.lanes, p48.wg], [2, 48, 24]);
  // 24 invocations in blocks of 16 output channels: one group of 24 per block.
  const p24 = plan([2, 48, 8, 8], 32, 3);
  assert.deepEqual([p24.tc, p24.lanes, p24.wg], [2, 24, 24]);
  // A 16-channel 3x3 weight gradient of one image: two chunks of single channels, not one of two.
  const p16 = plan([1, 16, 32, 32], 16, 3);
  assert.deepEqual([p16.tc, p16.lanes, p16.wg], [1, 16, 8]);
  // Below the size where a second workgroup pays (the tiny preset's 4x4 maps), two channels stay.
  const small = plan([1, 16, 4, 4], 16, 3);
  assert.equal(small.tc, 2);
  // 1x1 kernels keep the largest count of at most eight channels.
  assert.equal(plan([1, 96, 32, 32], 16, 1).tc, 8);
});

Deno.test("conv dgrad: weights transposed to [c][k][taps] match the CPU twin", async () => {
  const gpu = await sharedGpu();
  const g = { k: 5, c: 3, kh: 3, kw: 2 };
  const w = randomArray(g.k * g.c * g.kh * g.kw, 41);
  const r = { w: createRegion(gpu, w), wt: createRegion(gpu, w.length) };
  const rec = new Recorder(new KernelCache(gpu));
  const t = transposeWeightsKernel(g);
  rec.dispatch(t.src, [r.w, r.wt], t.groups);
  await submitRecorded(rec);
  assert.deepEqual(await download(gpu, r.wt), transposeWeightsRef(w, g));
  for (const v of Object.values(r)) v.buffer.destroy();
  // Only input gradients whose weights overflow a window want the workspace.
  assert.equal(directDgradWorkspaceFloats(convGeometry([8, 32, 8, 8], { k: 32, kernel: 3, pad: 1 })), 0);
  assert.equal(
    directDgradWorkspaceFloats(convGeometry([8, 96, 8, 8], { k: 96, kernel: 3, pad: 1 })),
    96 * 96 * 9,
  );
});

/**
 * A Convolution "conv" (x -> y, gaussian weights) probed on `shape` and run forward and backward
 * on random x: its training program's labels, x, the geometry and the gradients.
 */
async function runConvLayer(
  shape: number[],
  opts: Pick<ConvolutionOptions, "numOutput" | "kernel" | "pad" | "path">,
  seed: number,
) {
  const layer = new Convolution("conv", {
    bottom: "x",
    top: "y",
    weightFiller: { type: "gaussian", std: 0.3 },
    ...opts,
  });
  const p = await probe(layer, [shape]);
  const labels = (await p.net.profile("train", 1)).map((e) => e.label);
  const x = randomArray(shape.reduce((a, b) => a * b), seed);
  p.set([x]);
  await p.forward();
  const grads = await p.backward();
  const g = convGeometry(shape, { k: opts.numOutput, kernel: opts.kernel, pad: opts.pad });
  return { p, labels, x, g, grads };
}

Deno.test("convolution layer: input gradient from transposed weights in the net workspace", async () => {
  // 1x1 96->192: the weight gradient's partials and the transposed weights share the workspace.
  const { p, labels, x, g, grads } = await runConvLayer([2, 96, 4, 4], { numOutput: 192, kernel: 1 }, 9);
  if ((await sharedGpu()).isFallback) {
    assert.ok(labels.some((l) => l.includes("conv_dgrad_wT")), labels.join("\n"));
  }
  const w = await p.net.readParam(p.net.layout.entries.find((e) => e.layer === "conv")!.key);
  const tol = { atol: 1e-4, rtol: 1e-4 };
  assertClose(grads.bottoms[0], convDgradRef(g, p.r[0], w), { ...tol, what: "conv layer dx (transposed)" });
  assertClose(grads.params[0], convWgradRef(g, p.r[0], x), { ...tol, what: "conv layer dw" });
  p.net.destroy();
});

Deno.test("convolution layer: split-K weight and bias gradients through the net workspace", async () => {
  const { p, labels, x, g, grads } = await runConvLayer(
    [2, 3, 24, 24],
    { numOutput: 8, kernel: 3, pad: 1, path: "gemm" },
    7,
  );
  assert.ok(labels.some((l) => l.includes("conv_wgrad_reduce")), labels.join("\n"));
  assert.ok(!labels.some((l) => l.includes("conv_bias_grad")), labels.join("\n"));
  const tol = { atol: 1e-4, rtol: 1e-4 };
  assertClose(grads.params[0], convWgradRef(g, p.r[0], x), { ...tol, what: "conv layer dw (split)" });
  assertClose(grads.params[1], biasGradRef(p.r[0], { n: 2, k: 8, hw: g.oh * g.ow }), {
    ...tol,
    what: "conv layer db (split)",
  });
  p.net.destroy();
});

Deno.test("conv bench: times a problem whose operands go through texture copies", async () => {
  // 48x48 maps: the direct kernels of a CPU adapter read them packed into textures, i.e. the
  // recorded programs hold copies between their dispatches.
  const r = await benchConv({ problem: [1, 8, 48, 48, 8], runs: 1 });
  for (const k of [r.forward, r.dgrad, r.wgrad]) {
    assert.ok(k.ms > 0 && Number.isFinite(k.ms), JSON.stringify(k));
  }
});
