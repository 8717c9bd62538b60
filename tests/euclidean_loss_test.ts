import { EuclideanLoss } from "../graph/layers/euclidean_loss.ts";
import { sharedGpu } from "../kernels/device.ts";
import { Net } from "../graph/net.ts";
import { SGD } from "../graph/solver.ts";
import { assertClose, forEachReduceLayout, randomArray } from "./gradcheck.ts";
import { euclideanRef } from "./reference/losses.ts";

Deno.test("euclidean loss: value and gradient match the CPU twin (loss weight 0.3, 2 passes of the reduction)", async () => {
  await forEachReduceLayout(async () => {
    const gpu = await sharedGpu();
    const shape = [3, 4, 33, 31]; // > 2048 terms, so pass 1 has several partials
    const n = 3 * 4 * 33 * 31;
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
    net.destroy();
  });
});
