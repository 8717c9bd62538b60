import assert from "node:assert/strict";
import { runLayer, SoftArgmax, SoftmaxHM, VolumeTarget } from "../mod.ts";

Deno.test("mod.ts: render a volumetric target for a known joint and decode it back by x50 softmax + soft-argmax", async () => {
  const D = 16, S = 64, J = 16;
  const joints2d = new Float32Array(J * 2).map((_, i) => (i % 2 ? 0.3 : 0.6) + 0.01 * Math.floor(i / 2));
  const depth = new Float32Array(J).map((_, j) => 0.2 + 0.04 * j);
  const { vol } = await runLayer(
    new VolumeTarget("t", { bottoms: ["j", "z"], top: "vol", depthBins: D, size: S }),
    { j: { shape: [1, J, 2], data: joints2d }, z: { shape: [1, J], data: depth } },
  );
  const { prob } = await runLayer(
    new SoftmaxHM("sm", { bottom: "v", top: "prob", depthBins: D, scale: 50 }),
    { v: vol },
  );
  const { xyz } = await runLayer(new SoftArgmax("sa", { bottom: "prob", top: "xyz", depthBins: D }), {
    prob,
  });
  assert.deepEqual(xyz.shape, [1, J, 3]);
  for (let j = 0; j < J; j++) {
    assert.ok(Math.abs(xyz.data[3 * j] - joints2d[2 * j]) < 0.5 / S, `joint ${j} x`);
    assert.ok(Math.abs(xyz.data[3 * j + 1] - joints2d[2 * j + 1]) < 0.5 / S, `joint ${j} y`);
    assert.ok(Math.abs(xyz.data[3 * j + 2] - depth[j]) < 0.5 / D, `joint ${j} z`);
  }
});
