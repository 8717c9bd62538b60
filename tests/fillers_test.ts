import assert from "node:assert/strict";
import { fill } from "../graph/fillers.ts";
import { NoGpuError, openGpu } from "../kernels/device.ts";

Deno.test("bilinear filler gives the seed's separable [0.25, 0.75, 0.75, 0.25] kernel for k4", () => {
  const w = fill({ type: "bilinear" }, [2, 1, 4, 4], { seed: 1, key: "up.weight" });
  const k = [0.25, 0.75, 0.75, 0.25];
  for (let c = 0; c < 2; c++) {
    for (let y = 0; y < 4; y++) for (let x = 0; x < 4; x++) assert.equal(w[c * 16 + y * 4 + x], k[y] * k[x]);
  }
  assert.throws(() => fill({ type: "bilinear" }, [1, 1, 3, 4], { seed: 1, key: "k" }), /square 4-D kernel/);
});

Deno.test("gaussian, xavier and msra fillers have the intended spread; each parameter has its own stream", () => {
  const shape = [64, 32, 3, 3]; // fan_in = 288
  const stats = (a: Float32Array) => {
    const m = a.reduce((s, v) => s + v, 0) / a.length;
    return {
      mean: m,
      std: Math.sqrt(a.reduce((s, v) => s + (v - m) ** 2, 0) / a.length),
      max: Math.max(...a.map(Math.abs)),
    };
  };
  const g = stats(fill({ type: "gaussian", std: 0.01 }, shape, { seed: 1, key: "a" }));
  assert.ok(Math.abs(g.mean) < 5e-4 && Math.abs(g.std - 0.01) < 5e-4, JSON.stringify(g));
  const xa = stats(fill({ type: "xavier" }, shape, { seed: 1, key: "a" }));
  assert.ok(xa.max <= Math.sqrt(3 / 288) && Math.abs(xa.std - 1 / Math.sqrt(288)) < 3e-3, JSON.stringify(xa));
  const ms = stats(fill({ type: "msra" }, shape, { seed: 1, key: "a" }));
  assert.ok(Math.abs(ms.std - Math.sqrt(2 / 288)) < 3e-3, JSON.stringify(ms));
  const c = fill({ type: "constant", value: 0.5 }, [3], { seed: 1, key: "a" });
  assert.deepEqual(Array.from(c), [0.5, 0.5, 0.5]);
  // Same key and seed: identical; another key or seed: different.
  const a1 = fill({ type: "gaussian", std: 1 }, [8], { seed: 1, key: "conv_1.weight" });
  assert.deepEqual(a1, fill({ type: "gaussian", std: 1 }, [8], { seed: 1, key: "conv_1.weight" }));
  assert.notDeepEqual(a1, fill({ type: "gaussian", std: 1 }, [8], { seed: 1, key: "conv_2.weight" }));
  assert.notDeepEqual(a1, fill({ type: "gaussian", std: 1 }, [8], { seed: 2, key: "conv_1.weight" }));
});

Deno.test("no WebGPU adapter: one clear sentence plus what to install", async () => {
  const nav = globalThis.navigator as Navigator & { gpu?: GPU };
  const desc = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(nav), "gpu");
  Object.defineProperty(nav, "gpu", {
    value: { requestAdapter: () => Promise.resolve(null) },
    configurable: true,
  });
  try {
    await assert.rejects(() => openGpu(), (e: Error) => {
      assert.ok(e instanceof NoGpuError);
      assert.match(e.message, /^No WebGPU adapter found \(requestAdapter returned null\)/);
      assert.match(e.message, /apt-get install mesa-vulkan-drivers/);
      return true;
    });
  } finally {
    delete (nav as unknown as Record<string, unknown>).gpu;
    if (desc && !Object.getOwnPropertyDescriptor(Object.getPrototypeOf(nav), "gpu")) {
      Object.defineProperty(Object.getPrototypeOf(nav), "gpu", desc);
    }
  }
  assert.ok((await openGpu()).device, "the real adapter is back afterwards");
});
