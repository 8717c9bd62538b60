import assert from "node:assert/strict";
import { sharedGpu } from "../kernels/device.ts";
import type { Layer } from "../graph/layer.ts";
import { Argmax } from "../graph/layers/argmax.ts";
import { HeatmapTarget, VolumeTarget } from "../graph/layers/heatmap_target.ts";
import { SoftArgmax } from "../graph/layers/integral.ts";
import { SoftmaxHM } from "../graph/layers/softmax_hm.ts";
import { Net } from "../graph/net.ts";
import { runLayer } from "../graph/ops.ts";
import { depthWindow, type Heatmap2DKind } from "../kernels/heatmap.ts";
import { assertClose, forEachReduceLayout, randomArray } from "./gradcheck.ts";
import { renderHeatmaps2DRef, renderVolumeRef } from "./reference/heatmap.ts";
import { benchVolumetric } from "../run/bench/volumetric.ts";

const TOL = { atol: 1e-6, rtol: 1e-5 };

Deno.test("2D targets: every renderer, clean and legacy, matches the CPU twin (atol 1e-6, rtol 1e-5)", async () => {
  const B = 2, J = 3;
  const joints = randomArray(B * J * 2, 41, -0.05, 1.05); // some joints outside the crop
  const cases: [Heatmap2DKind, number, number][] = [
    ["baseline", 16, 2],
    ["baseline", 32, 1.5],
    ["baseline", 6, 2], // not whole vec4s: one column per unit
    ["cpm", 32, 7],
    ["plain", 16, 0.05],
    ["binary", 16, 0.1],
  ];
  // Both layouts: the lanes one walks a run of a joint's cells per invocation, the other one unit.
  await forEachReduceLayout(async (layout) => {
    for (const [kind, size, sigma] of cases) {
      for (const legacy of [false, true]) {
        const layer = new HeatmapTarget("hm", { bottom: "j", top: "h", kind, size, sigma, legacy });
        const out = await runLayer(layer, { j: { shape: [B, J, 2], data: joints } });
        assert.deepEqual(out.h.shape, [B, J, size, size]);
        const want = renderHeatmaps2DRef(joints, { batch: B, joints: J, size, kind, sigma, legacy });
        assertClose(out.h.data, want, { ...TOL, what: `${kind} S${size} legacy=${legacy} ${layout}` });
      }
    }
  });
});

Deno.test("3D targets: clean, sub-bin and legacy volumes match the CPU twin at D = 4 and 16, sides 16 and 6", async () => {
  // Both layouts: the lanes one walks a run of cells of one joint per invocation, the other four or one.
  await forEachReduceLayout(async () => {
    const B = 2, J = 3;
    const joints = randomArray(B * J * 2, 42, -0.05, 1.05);
    const depth3 = randomArray(B * J * 3, 43, -0.1, 1.1); // [B,J,3]: the last value is the depth
    // Side 16 renders four columns per invocation, side 6 one.
    for (const [D, S] of [[4, 16], [16, 16], [4, 6]]) {
      for (const mode of ["clean", "subbin", "legacy"]) {
        const layer = new VolumeTarget("vt", {
          bottoms: ["j", "z"],
          top: "v",
          size: S,
          depthBins: D,
          legacy: mode === "legacy",
          subBinDepth: mode === "subbin",
        });
        const out = await runLayer(layer, {
          j: { shape: [B, J, 2], data: joints },
          z: { shape: [B, J, 3], data: depth3 },
        });
        assert.deepEqual(out.v.shape, [B, J * D, S, S]);
        const want = renderVolumeRef({ joints, depth: depth3 }, {
          batch: B,
          joints: J,
          size: S,
          depthBins: D,
          sigma: 2,
          legacy: mode === "legacy",
          subBinDepth: mode === "subbin",
          depthStride: 3,
        });
        assertClose(out.v.data, want, { ...TOL, what: `volume D${D} S${S} ${mode}` });
      }
    }
  });
});

/** Renders one sample's volume and returns, per joint, the indices of slices holding any value. */
async function slicesOf(o: { joints: number[]; depth: number[]; D: number; S: number; legacy: boolean }) {
  const J = o.depth.length, S = o.S, D = o.D;
  const out = await runLayer(
    new VolumeTarget("vt", { bottoms: ["j", "z"], top: "v", size: S, depthBins: D, legacy: o.legacy }),
    {
      j: { shape: [1, J, 2], data: new Float32Array(o.joints) },
      z: { shape: [1, J], data: new Float32Array(o.depth) },
    },
  );
  const v = out.v.data;
  const slices: number[][] = [];
  for (let j = 0; j < J; j++) {
    slices.push([]);
    for (let d = 0; d < D; d++) {
      const s = v.subarray(((j * D + d) * S) * S, ((j * D + d + 1) * S) * S);
      if (s.some((x) => x > 0)) slices[j].push(d);
    }
  }
  return { v, slices };
}

Deno.test("legacy 3D target: the seed's depth windows (D=64: 13 slices, sigma_z 2.167; D=4: one slice)", async () => {
  assert.deepEqual(depthWindow(64), { size: 13, half: 6, sigmaZ: 13 / 6 });
  assert.deepEqual(
    [32, 16, 8, 4, 2].map((D) => depthWindow(D).size),
    [7, 5, 3, 1, 1],
  );
  // z = 0.5: fine bin 32, coarse z* = 32 (1-based) -> slices 25..37 (0-based) at D = 64.
  // z = 1.2 is out of range: the seed falls back to fine bin 1, i.e. the first slice.
  const S = 16, p = [0.5, 0.5, 0.5, 0.5];
  const r64 = await slicesOf({ joints: p, depth: [0.5, 1.2], D: 64, S, legacy: true });
  assert.deepEqual(r64.slices[0], Array.from({ length: 13 }, (_, i) => 25 + i));
  assert.deepEqual(r64.slices[1], [0, 1, 2, 3, 4, 5, 6]);
  // Centre (8, 8) of slice 31 is the peak 1; one slice off it is exp(-1 / (2 sigma_z^2)).
  const at = (d: number) => r64.v[(d * S + 8) * S + 8];
  assertClose([at(31), at(32), at(37)], [
    1,
    Math.exp(-1 / (2 * (13 / 6) ** 2)),
    Math.exp(-36 / (2 * (13 / 6) ** 2)),
  ], TOL);
  // D = 4: z = 0.5 -> z* = ceil(32 * 4 / 64) = 2; z = 0.9 -> fine 58 -> z* = ceil(3.625) = 4.
  const r4 = await slicesOf({ joints: p, depth: [0.5, 0.9], D: 4, S, legacy: true });
  assert.deepEqual(r4.slices, [[1], [3]]);
  // Clean mode clamps out-of-range depth to the nearest bin instead.
  const clean = await slicesOf({ joints: p, depth: [1.2, -0.3], D: 4, S, legacy: false });
  assert.deepEqual(clean.slices, [[3], [0]]);
});

Deno.test("legacy placement decodes +half a cell (+2 px in the 256 crop); clean decodes to the joint", async () => {
  // A joint at crop pixel u = 4k lies on a cell boundary of the 64-cell grid.
  const u = [100, 148], S = 64;
  const joints = new Float32Array([u[0] / 256, u[1] / 256]);
  for (const legacy of [false, true]) {
    const hm = await runLayer(new HeatmapTarget("hm", { bottom: "j", top: "h", size: S, legacy }), {
      j: { shape: [1, 1, 2], data: joints },
    });
    // Centroid of the rendered map in crop pixels, using the decoders' cell centres.
    let m = 0, sx = 0, sy = 0;
    hm.h.data.forEach((v, i) => {
      m += v;
      sx += v * ((i % S) + 0.5) * 4;
      sy += v * (Math.floor(i / S) + 0.5) * 4;
    });
    const bias = legacy ? 2 : 0;
    assertClose([sx / m, sy / m], [u[0] + bias, u[1] + bias], {
      atol: 1e-3,
      rtol: 0,
      what: `legacy=${legacy}`,
    });
    if (legacy) {
      const am = await runLayer(new Argmax("am", { bottom: "h", top: "xy" }), { h: hm.h });
      assertClose([am.xy.data[0] * 256, am.xy.data[1] * 256], [102, 150], { atol: 1e-4, rtol: 0 });
    }
  }
});

async function runNet(layers: Layer[], inputs: Record<string, [number[], Float32Array]>, top: string) {
  const gpu = await sharedGpu();
  const shapes = Object.fromEntries(Object.entries(inputs).map(([k, [s]]) => [k, s]));
  const net = await Net.build(gpu, { inputs: shapes, layers }, { train: false });
  for (const [k, [, d]] of Object.entries(inputs)) net.setInput(k, d);
  net.forward();
  const out = await net.read(top);
  net.destroy();
  return out;
}

Deno.test("clean 3D target round trip: argmax and x50 softmax + soft-argmax land within half a bin (D = 2, 16, 64)", async () => {
  const S = 32;
  const xy = [0.3712, 0.6231, 0.55, 0.41, 0.7013, 0.2948];
  const z = [0.441, 0.2718, 0.8125];
  const J = z.length;
  const inputs: Record<string, [number[], Float32Array]> = {
    j: [[1, J, 2], new Float32Array(xy)],
    z: [[1, J], new Float32Array(z)],
  };
  for (const D of [2, 16, 64]) {
    const target = () => new VolumeTarget("vt", { bottoms: ["j", "z"], top: "v", size: S, depthBins: D });
    const am = await runNet(
      [target(), new Argmax("am", { bottom: "v", top: "p", depthBins: D })],
      inputs,
      "p",
    );
    const sa = await runNet(
      [
        target(),
        new SoftmaxHM("sm", { bottom: "v", top: "prob", depthBins: D, scale: 50 }),
        new SoftArgmax("sa", { bottom: "prob", top: "p", depthBins: D }),
      ],
      inputs,
      "p",
    );
    for (const [name, p] of [["argmax", am], ["soft-argmax", sa]] as const) {
      for (let j = 0; j < J; j++) {
        const err = [
          Math.abs(p[3 * j] - xy[2 * j]),
          Math.abs(p[3 * j + 1] - xy[2 * j + 1]),
          Math.abs(p[3 * j + 2] - z[j]),
        ];
        // z = 0.8125 lies on a bin boundary at D = 16 and 64: either neighbour's centre is right,
        // so the bound is half a bin plus float32 rounding of the decoder's sums.
        const tol = 1e-6;
        assert.ok(
          err[0] <= 0.5 / S + tol && err[1] <= 0.5 / S + tol && err[2] <= 0.5 / D + tol,
          `${name} D=${D} joint ${j}: decoded ${[...p.subarray(3 * j, 3 * j + 3)]} vs ${[
            xy[2 * j],
            xy[2 * j + 1],
            z[j],
          ]}`,
        );
      }
    }
  }
});

Deno.test("volumetric bench: runs at a tiny size and reports plain numbers", async () => {
  const r = await benchVolumetric({ batch: 1, joints: 2, size: 8, depthBins: 4, runs: 1, warmup: 0 });
  assert.equal(r.targetBytes, 2 * 4 * 8 * 8 * 4);
  assert.equal(r.softmaxBytes, r.targetBytes);
  for (const v of [r.renderMs, r.forwardMs, r.stepMs, r.backwardMs, ...Object.values(r.perSample)]) {
    assert.ok(Number.isFinite(v) && v >= 0);
  }
});
