import assert from "node:assert/strict";
import { sharedGpu } from "../kernels/device.ts";
import { Net } from "../graph/net.ts";
import { SGD } from "../graph/solver.ts";
import type { Layer } from "../graph/layer.ts";
import { Convolution } from "../graph/layers/convolution.ts";
import { Deconvolution } from "../graph/layers/deconvolution.ts";
import { BatchNorm } from "../graph/layers/batch_norm.ts";
import { MaxPool } from "../graph/layers/pool.ts";
import { ReLU } from "../graph/layers/relu.ts";
import { Eltwise } from "../graph/layers/eltwise.ts";
import { EuclideanLoss } from "../graph/layers/euclidean_loss.ts";
import type { ConvPath } from "../kernels/conv.ts";
import { assertClose, randomArray } from "./gradcheck.ts";

// s1 = bn(conv 1x1) + conv 3x3 folds (BN writes, the conv adds); s2 = s1 + deconv(conv(pool)) is a
// sum of a sum and folds into the same buffer; s3 = e + relu(e) must not fold (e is read twice).
function layers(path: ConvPath): Layer[] {
  const conv = (name: string, bottom: string, numOutput: number, kernel: number) =>
    new Convolution(name, {
      bottom,
      top: name,
      numOutput,
      kernel,
      pad: kernel >> 1,
      path,
      weightFiller: { type: "gaussian", std: 0.3 },
      biasFiller: { type: "gaussian", std: 0.1 },
    });
  return [
    conv("c1", "x", 6, 1),
    new BatchNorm("bn", { bottom: "c1", top: "bn", affine: true, relu: true }),
    conv("c2", "x", 6, 3),
    new Eltwise("s1", { bottoms: ["bn", "c2"], top: "s1" }),
    new MaxPool("pool", { bottom: "x", top: "pool", kernel: 2, stride: 2 }),
    conv("pc", "pool", 6, 1),
    new Deconvolution("up", {
      bottom: "pc",
      top: "up",
      numOutput: 6,
      group: 6,
      kernel: 4,
      stride: 2,
      pad: 1,
      weightFiller: { type: "gaussian", std: 0.3 },
    }),
    new Eltwise("s2", { bottoms: ["s1", "up"], top: "s2" }),
    conv("e", "s2", 6, 1),
    new ReLU("f", "e", "f"),
    new Eltwise("s3", { bottoms: ["e", "f"], top: "s3" }),
    new EuclideanLoss("loss", { pred: "s3", target: "t", top: "L" }),
  ];
}

for (const path of ["direct", "gemm"] as const) {
  Deno.test(`net fusion (${path} convolutions): folded residual sums give the unfolded net's loss, gradients and update`, async () => {
    const gpu = await sharedGpu();
    const x = randomArray(2 * 4 * 6 * 6, 31), t = randomArray(2 * 6 * 6 * 6, 32);
    const run = async (fuse: boolean) => {
      const net = await Net.build(
        gpu,
        { inputs: { x: [2, 4, 6, 6], t: [2, 6, 6, 6] }, layers: layers(path) },
        {
          solver: new SGD({ baseLr: 0.05, momentum: 0 }),
          gradInputs: ["x"],
          fuse,
        },
      );
      net.setInput("x", x);
      net.setInput("t", t);
      net.step();
      const out = {
        loss: (await net.readScalars()).L,
        dx: await net.readDiff("x"),
        dbn: await net.readDiff("bn"),
        de: await net.readDiff("e"),
        params: new Map<string, Float32Array>(),
        labels: net.dispatchLabels(),
      };
      for (const e of net.layout.entries) out.params.set(e.key, await net.readParam(e.key));
      net.destroy();
      return out;
    };
    const plain = await run(false), fused = await run(true);
    const owners = (labels: string[]) => new Set(labels.map((l) => l.split(":")[0]));
    for (const s of ["s1", "s2", "s3"]) assert.ok(owners(plain.labels).has(s), `unfolded net runs ${s}`);
    assert.ok(!owners(fused.labels).has("s1") && !owners(fused.labels).has("s2"), "s1 and s2 are folded");
    assert.ok(owners(fused.labels).has("s3"), "a sum whose input is read twice stays");
    assert.ok(fused.labels.length < plain.labels.length);
    assertClose(fused.loss, plain.loss, { rtol: 1e-5, what: "loss" });
    assertClose(fused.dx, plain.dx, { atol: 1e-6, rtol: 1e-4, what: "input gradient" });
    assertClose(fused.dbn, plain.dbn, { atol: 1e-6, rtol: 1e-4, what: "gradient of a folded sum's input" });
    assertClose(fused.de, plain.de, { atol: 1e-6, rtol: 1e-4, what: "gradient of an unfolded sum's input" });
    for (const [key, v] of plain.params) {
      assertClose(fused.params.get(key)!, v, { atol: 1e-6, rtol: 1e-4, what: `${key} after one update` });
    }
  });
}

Deno.test("net fusion: a kept input of a sum keeps its own values", async () => {
  const gpu = await sharedGpu();
  const x = randomArray(2 * 4 * 6 * 6, 33);
  const net = await Net.build(
    gpu,
    { inputs: { x: [2, 4, 6, 6], t: [2, 6, 6, 6] }, layers: layers("direct") },
    {
      train: false,
      keep: ["c2", "s3"],
    },
  );
  net.setInput("x", x);
  net.setInput("t", new Float32Array(2 * 6 * 6 * 6));
  net.forward();
  const owners = new Set(net.dispatchLabels("infer").map((l) => l.split(":")[0]));
  assert.ok(owners.has("s1"), "s1 is not folded: c2 is kept");
  assert.ok(!owners.has("s2"), "s2 folds: the unfolded sum s1 writes its buffer, the deconvolution adds");
  const plain = await Net.build(gpu, {
    inputs: { x: [2, 4, 6, 6], t: [2, 6, 6, 6] },
    layers: layers("direct"),
  }, {
    train: false,
    keep: ["c2", "s3"],
    fuse: false,
  });
  plain.setInput("x", x);
  plain.setInput("t", new Float32Array(2 * 6 * 6 * 6));
  plain.forward();
  assertClose(await net.read("c2"), await plain.read("c2"), { rtol: 1e-6, what: "kept blob" });
  assertClose(await net.read("s3"), await plain.read("s3"), { atol: 1e-6, rtol: 1e-5, what: "output" });
  net.destroy();
  plain.destroy();
});
