import assert from "node:assert/strict";
import { runLayer } from "../graph/ops.ts";
import { ReLU } from "../graph/layers/relu.ts";

Deno.test("runLayer runs a layer on Float32Arrays and names a missing input", async () => {
  const out = await runLayer(new ReLU("r", "x", "y"), {
    x: { shape: [2, 2], data: new Float32Array([-1, 2, -3, 4]) },
  });
  assert.deepEqual([...out.y.data], [0, 2, 0, 4]);
  assert.deepEqual(out.y.shape, [2, 2]);
  await assert.rejects(() => runLayer(new ReLU("r", "x", "y"), {}), /needs input "x"/);
  await assert.rejects(
    () => runLayer(new ReLU("r", "x", "y"), { x: { shape: [3], data: new Float32Array(2) } }),
    /has 2 values but shape 3/,
  );
});
