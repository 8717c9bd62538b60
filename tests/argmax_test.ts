import assert from "node:assert/strict";
import { Argmax } from "../graph/layers/argmax.ts";
import { runLayer } from "../graph/ops.ts";
import { type CellGrid, UNIT_BOUNDS } from "../kernels/integral.ts";
import { assertClose, forEachReduceLayout, randomArray } from "./gradcheck.ts";
import { argmaxRef } from "./reference/integral.ts";

const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
const TOL = { atol: 1e-6, rtol: 1e-6 };

function grid(depth: number, height: number, width: number, bounds = UNIT_BOUNDS): CellGrid {
  return { depth, height, width, bounds, offset: 0.5 };
}

Deno.test("argmax 2D: first maximum, ties to the earlier cell, (0.5, 0.5) when nothing exceeds 1e-6", async () => {
  // Rows of 7 and of 8: maps of whole vec4s read a texture copy on a CPU adapter (lanes layout).
  for (const W of [7, 8]) {
    await forEachReduceLayout(async () => {
      const shape = [2, 3, 6, W];
      const x = randomArray(numel(shape), 31);
      const n = 6 * W;
      // Channel 1: an exact tie between cells 5 and 30; channel 2: nothing above 1e-6.
      x[n + 5] = 2;
      x[n + 30] = 2;
      x.fill(1e-7, 2 * n, 3 * n);
      for (const legacy of [false, true]) {
        const out = await runLayer(new Argmax("am", { bottom: "h", top: "xy", legacy }), {
          h: { shape, data: x },
        });
        const y = out.xy.data;
        const want = argmaxRef(x, { groups: 6, grid: grid(1, 6, W), legacy }).filter((_, i) => i % 3 !== 2);
        assertClose(y, want, { ...TOL, what: `argmax 2D W=${W} legacy=${legacy}` });
        assertClose([y[2], y[3]], [(5 % W + 0.5) / W, (Math.floor(5 / W) + 0.5) / 6], {
          ...TOL,
          what: "tie goes to cell 5",
        });
        assert.deepEqual([y[4], y[5]], [0.5, 0.5]);
      }
    });
  }
});

Deno.test("argmax 3D: decodes (col, row, bin) centres with bounds, single and split outputs", async () => {
  await forEachReduceLayout(async () => {
    const shape = [2, 2 * 5, 6, 4];
    const bounds = { x: [-1, 1] as const, y: [0, 2] as const, z: [0.25, 0.75] as const };
    const x = randomArray(numel(shape), 32);
    x.fill(-1, 0, 120); // joint 0 of sample 0 is all negative: the cube centre
    const want = argmaxRef(x, { groups: 4, grid: grid(5, 6, 4, bounds) });
    const one = await runLayer(new Argmax("am", { bottom: "h", top: "xyz", depthBins: 5, bounds }), {
      h: { shape, data: x },
    });
    assertClose(one.xyz.data, want, { ...TOL, what: "argmax 3D" });
    assert.deepEqual([...one.xyz.data.subarray(0, 3)], [0, 1, 0.5]);
    const split = await runLayer(new Argmax("am", { bottom: "h", tops: ["xy", "z"], depthBins: 5, bounds }), {
      h: { shape, data: x },
    });
    assertClose(split.xy.data, want.filter((_, i) => i % 3 !== 2), { ...TOL, what: "split xy" });
    assertClose(split.z.data, want.filter((_, i) => i % 3 === 2), { ...TOL, what: "split z" });
  });
});

Deno.test("argmax 3D: a near-tie within 1e-6 separates the parallel rule from the seed's scan", async () => {
  const shape = [1, 4, 16, 16]; // one joint, D = 4
  const x = randomArray(numel(shape), 33, 0, 0.5);
  x[100] = 0.9;
  x[700] = 0.9000004; // larger, but by less than 1e-6
  for (const legacy of [false, true]) {
    const out = await runLayer(new Argmax("am", { bottom: "h", top: "xyz", depthBins: 4, legacy }), {
      h: { shape, data: x },
    });
    const want = argmaxRef(x, { groups: 1, grid: grid(4, 16, 16), legacy });
    assertClose(out.xyz.data, want, { ...TOL, what: `near tie legacy=${legacy}` });
    const k = legacy ? 100 : 700;
    assertClose(out.xyz.data, [
      (k % 16 + 0.5) / 16,
      (Math.floor(k / 16) % 16 + 0.5) / 16,
      (Math.floor(k / 256) + 0.5) / 4,
    ], TOL);
  }
});
