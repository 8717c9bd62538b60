import assert from "node:assert/strict";
import { EuclideanLoss } from "../graph/layers/euclidean_loss.ts";
import { sharedGpu } from "../kernels/device.ts";
import { Net } from "../graph/net.ts";
import { SGD } from "../graph/solver.ts";
import { assertClose, forEachReduceLayout, randomArray } from "./gradcheck.ts";
import { euclideanRef } from "./reference/losses.ts";

Deno.test("euclidean loss: value and gradient match the CPU twin (loss weight 0.3, 2 passes of the reduction)", async () => {
  await forEachReduceLayout(async () => {
    const gpu = await sharedGpu();
    // > 2048 terms, so pass 1 has several partials; whole vec4s (on a CPU adapter the lanes sum
    // reads texture copies) and not.
    for (const shape of [[3, 4, 33, 31], [3, 3, 33, 31]]) {
      const n = shape.reduce((x, y) => x * y);
      const a = randomArray(n, 3), b = randomArray(n, 4);
      const net = await Net.build(gpu, {
        inputs: { a: shape, b: shape },
        layers: [new EuclideanLoss("loss", { pred: "a", target: "b", top: "L", weight: 0.3 })],
      }, { solver: new SGD({ baseLr: 0 }), gradInputs: ["a"] });
      net.setInput("a", a);
      net.setInput("b", b);
      net.step();
      const s = await net.readScalars();
      const ref = euclideanRef(a, b, 3, 0.3);
      assertClose(s.L, [ref.loss], { rtol: 1e-5, what: "loss" });
      assertClose(await net.readDiff("a"), ref.grad, { atol: 1e-7, rtol: 1e-5, what: "dL/da" });
      const tex = net.dispatchLabels().some((l) => l.includes("(partial sums, lanes) tex"));
      assert.equal(
        tex,
        gpu.isFallback && n % 4 === 0 && net.dispatchLabels().some((l) => l.includes("lanes")),
      );
      net.destroy();
    }
  });
});

Deno.test("euclidean loss: gradients into a prediction two losses share and into a target, vec4 and scalar sizes", async () => {
  // 3x4x8x8 (whole vec4s: read from texture copies on a CPU adapter) and 3x1x5x7 (105 values:
  // the storage kernel). "a" feeds two losses, so the second accumulates into its gradient; "b"
  // takes a target gradient (the negative of the prediction's).
  const gpu = await sharedGpu();
  for (const shape of [[3, 4, 8, 8], [3, 1, 5, 7]]) {
    const n = shape.reduce((x, y) => x * y);
    const a = randomArray(n, 5), b = randomArray(n, 6), t = randomArray(n, 7);
    const net = await Net.build(gpu, {
      inputs: { a: shape, b: shape, t: shape },
      layers: [
        new EuclideanLoss("l1", { pred: "a", target: "b", top: "L1", weight: 0.3, targetGrad: true }),
        new EuclideanLoss("l2", { pred: "a", target: "t", top: "L2", weight: 2 }),
      ],
    }, { solver: new SGD({ baseLr: 0 }), gradInputs: ["a", "b"], coDispatch: false }); // labels kernel by kernel
    net.setInput("a", a);
    net.setInput("b", b);
    net.setInput("t", t);
    net.step();
    const r1 = euclideanRef(a, b, 3, 0.3), r2 = euclideanRef(a, t, 3, 2);
    const what = `${shape.join("x")}`;
    const tol = { atol: 1e-7, rtol: 1e-5 };
    assertClose(await net.readDiff("a"), r1.grad.map((g, i) => g + r2.grad[i]), {
      ...tol,
      what: `${what} dL/da`,
    });
    assertClose(await net.readDiff("b"), r1.grad.map((g) => -g), { ...tol, what: `${what} dL/db` });
    const labels = net.dispatchLabels().filter((l) => l.includes("euclidean_loss_bwd"));
    assert.equal(labels.length, 3, labels.join("\n"));
    if (gpu.isFallback) assert.equal(labels.every((l) => l.endsWith(" tex")), n % 4 === 0, labels.join("\n"));
    net.destroy();
  }
});
