import assert from "node:assert/strict";
import { sharedGpu } from "../kernels/device.ts";
import { Net } from "../graph/net.ts";
import { SGD } from "../graph/solver.ts";
import { ReLU } from "../graph/layers/relu.ts";
import { EuclideanLoss } from "../graph/layers/euclidean_loss.ts";
import { assertClose, randomArray } from "./gradcheck.ts";
import { euclideanRef } from "./reference/losses.ts";
import { reluBackwardRef } from "./reference/activation.ts";

Deno.test("net build: shape mismatch names the layer and both shapes; unknown input names it", async () => {
  const gpu = await sharedGpu();
  await assert.rejects(
    () =>
      Net.build(gpu, {
        inputs: { a: [2, 3], b: [2, 4] },
        layers: [new EuclideanLoss("my_loss", { pred: "a", target: "b", top: "L" })],
      }),
    /layer "my_loss": target shape \(must match the prediction\): expected 2x3, got 2x4/,
  );
  await assert.rejects(
    () => Net.build(gpu, { inputs: { a: [2] }, layers: [new ReLU("r", "nope", "y")] }),
    /layer "r": input "nope"/,
  );
  await assert.rejects(
    () => Net.build(gpu, { inputs: { a: [2] }, layers: [new ReLU("r", "a", "y"), new ReLU("r", "y", "z")] }),
    /layer "r": layer name/,
  );
});

Deno.test("net: a blob read by two losses gets the sum of both gradients; a weight-0 branch records no backward", async () => {
  const gpu = await sharedGpu();
  const n = 40;
  const x = randomArray(n, 11), t1 = randomArray(n, 12), t2 = randomArray(n, 13);
  const net = await Net.build(gpu, {
    inputs: { x: [2, 20], t1: [2, 20], t2: [2, 20] },
    layers: [
      new ReLU("relu", "x", "y"),
      new EuclideanLoss("l1", { pred: "y", target: "t1", top: "L1", weight: 1 }),
      new EuclideanLoss("l2", { pred: "y", target: "t2", top: "L2", weight: 0.5 }),
      new ReLU("monitor_relu", "y", "m"),
      new EuclideanLoss("monitor", { pred: "m", target: "t1", top: "M", weight: 0 }),
    ],
  }, { solver: new SGD({ baseLr: 0 }), gradInputs: ["x"] });
  net.setInput("x", x);
  net.setInput("t1", t1);
  net.setInput("t2", t2);
  net.step();
  const s = await net.readScalars();
  const y = x.map((v) => Math.max(v, 0));
  const g1 = euclideanRef(y, t1, 2, 1), g2 = euclideanRef(y, t2, 2, 0.5);
  assertClose(s.L1, [g1.loss], { rtol: 1e-5 });
  assertClose(s.L2, [g2.loss], { rtol: 1e-5 });
  assertClose(s.M, [g1.loss], { rtol: 1e-5, what: "weight-0 monitor still computed" });
  const dy = g1.grad.map((v, i) => v + g2.grad[i]);
  assertClose(await net.readDiff("y"), dy, { atol: 1e-7, rtol: 1e-5, what: "summed gradient" });
  assertClose(await net.readDiff("x"), reluBackwardRef(x, dy), { atol: 1e-7, rtol: 1e-5 });
  assert.equal((await net.readDiff("m")).length, 0, "no gradient buffer for the weight-0 branch");
  net.destroy();
});

Deno.test("net: monitor-only layers and loss values run every monitorEvery steps; gradients and updates every step", async () => {
  const gpu = await sharedGpu();
  const xs = [0, 1, 2, 3].map((k) => randomArray(40, 21 + k)), t = randomArray(40, 31);
  const build = (monitorEvery: number) =>
    Net.build(gpu, {
      inputs: { x: [2, 20], t: [2, 20] },
      layers: [
        new ReLU("relu", "x", "y"),
        new EuclideanLoss("loss", { pred: "y", target: "t", top: "L", weight: 1 }),
        new ReLU("monitor_relu", "y", "m"),
        new EuclideanLoss("monitor", { pred: "m", target: "t", top: "M", weight: 0 }),
      ],
    }, { solver: new SGD({ baseLr: 0 }), gradInputs: ["x"], monitorEvery });
  const every = await build(1), sampled = await build(2);
  const lean = sampled.dispatchLabels("train-lean");
  assert.ok(lean.length < sampled.dispatchLabels("train").length, "the lean step is shorter");
  assert.ok(
    !lean.some((l) => /^monitor/.test(l)),
    `monitor layers left in the lean step: ${lean.join(", ")}`,
  );
  assert.ok(
    lean.some((l) => /^loss: euclidean_loss_bwd/.test(l)),
    "the loss's backward stays in the lean step",
  );
  assert.ok(
    !lean.some((l) => /^loss: euclidean_loss /.test(l)),
    `the loss's value is summed in the lean step: ${lean.join(", ")}`,
  );
  const losses = xs.map((x) => euclideanRef(x.map((v) => Math.max(v, 0)), t, 2, 1).loss);
  for (const net of [every, sampled]) {
    net.setInput("t", t);
    for (const x of xs) {
      net.setInput("x", x);
      net.step();
    }
  }
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length;
  const a = await every.readScalars(), b = await sampled.readScalars();
  assertClose(a.L, [mean(losses)], { rtol: 1e-5, what: "loss, every step" });
  assertClose(a.M, [mean(losses)], { rtol: 1e-5, what: "monitor, every step" });
  // Steps 0 and 2 ran the monitor and summed the loss; steps 1 and 3 held their values.
  const held = [mean([losses[0], losses[0], losses[2], losses[2]])];
  assertClose(b.L, held, { rtol: 1e-5, what: "loss, held" });
  assertClose(b.M, held, { rtol: 1e-5, what: "monitor, held" });
  assertClose(await sampled.readDiff("x"), await every.readDiff("x"), { what: "gradient unaffected" });
  every.destroy();
  sampled.destroy();
});

Deno.test("net: scalars average over steps and reset after reading", async () => {
  const gpu = await sharedGpu();
  const net = await Net.build(gpu, {
    inputs: { a: [1, 4], b: [1, 4] },
    layers: [new EuclideanLoss("l", { pred: "a", target: "b", top: "L" })],
  }, { train: false });
  net.setInput("b", new Float32Array(4));
  net.setInput("a", new Float32Array([1, 1, 1, 1])); // L = 2
  net.forward();
  net.setInput("a", new Float32Array([2, 2, 2, 2])); // L = 8
  net.forward();
  assertClose((await net.readScalars()).L, [5]);
  net.forward();
  assertClose((await net.readScalars()).L, [8]);
  net.destroy();
});

Deno.test("net arena: a chain of activations reuses buffers (inference plan)", async () => {
  const gpu = await sharedGpu();
  const layers = Array.from({ length: 8 }, (_, i) => new ReLU(`r${i}`, i ? `y${i - 1}` : "x", `y${i}`));
  const net = await Net.build(gpu, { inputs: { x: [1024] }, layers }, { train: false });
  // 9 blobs of 4 KiB each; a chain needs only 2 live at once (plus the input, alive throughout).
  const activationBytes = net.gpuBytes - 64 /* hyper */ - 8 /* empty params + grads */;
  assert.ok(activationBytes <= 3 * 4096, `activations use ${activationBytes} bytes, expected reuse`);
  net.setInput("x", randomArray(1024, 5));
  net.forward();
  assert.equal((await net.read("y7")).length, 1024);
  net.destroy();
});
