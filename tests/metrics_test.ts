import assert from "node:assert/strict";
import { sharedGpu } from "../kernels/device.ts";
import type { Layer } from "../graph/layer.ts";
import { Net } from "../graph/net.ts";
import { runLayer } from "../graph/ops.ts";
import { Rng } from "../io/prng.ts";
import { PoseErrors, PoseMetrics } from "../graph/layers/metrics.ts";
import { assertClose } from "./gradcheck.ts";
import { mpjpeRef, mpjpeRelRef, paMpjpeRef, perJointRef, relAxesRef } from "./reference/metrics.ts";

const B = 6, J = 16;

/** Random GT poses 4-6 m in front of the camera, with ~0.5 m limbs around the root. */
function poses(seed: number, batch = B): Float32Array {
  const rng = new Rng(seed), out = new Float32Array(batch * J * 3);
  for (let n = 0; n < batch; n++) {
    const root = [rng.uniform(-500, 500), rng.uniform(-500, 500), rng.uniform(4000, 6000)];
    for (let j = 0; j < J; j++) {
      for (let c = 0; c < 3; c++) out[(n * J + j) * 3 + c] = root[c] + (j ? rng.normal() * 400 : 0);
    }
  }
  return out;
}

/** A random rotation matrix (row-major) from a normalised Gaussian quaternion. */
function randomRotation(rng: Rng): number[] {
  const q = [rng.normal(), rng.normal(), rng.normal(), rng.normal()];
  const l = Math.hypot(...q);
  const [w, x, y, z] = q.map((v) => v / l);
  return [
    1 - 2 * (y * y + z * z),
    2 * (x * y - w * z),
    2 * (x * z + w * y),
    2 * (x * y + w * z),
    1 - 2 * (x * x + z * z),
    2 * (y * z - w * x),
    2 * (x * z - w * y),
    2 * (y * z + w * x),
    1 - 2 * (x * x + y * y),
  ];
}

/** Each sample mapped by its own x -> s R x + t, plus Gaussian noise of std `noise` mm. */
function similarCopy(gt: Float32Array, seed: number, noise: number): Float32Array {
  const rng = new Rng(seed), out = new Float32Array(gt.length);
  for (let n = 0; n < gt.length / (J * 3); n++) {
    const R = randomRotation(rng), s = rng.uniform(0.6, 1.6);
    const t = [rng.uniform(-800, 800), rng.uniform(-800, 800), rng.uniform(-800, 800)];
    for (let j = 0; j < J; j++) {
      const o = (n * J + j) * 3, p = [gt[o], gt[o + 1], gt[o + 2]];
      for (let r = 0; r < 3; r++) {
        out[o + r] = s * (R[3 * r] * p[0] + R[3 * r + 1] * p[1] + R[3 * r + 2] * p[2]) + t[r] +
          noise * rng.normal();
      }
    }
  }
  return out;
}

async function errors(pred: Float32Array, gt: Float32Array, batch = B) {
  const shape = { shape: [batch, J, 3], data: pred }, gts = { shape: [batch, J, 3], data: gt };
  const r = await runLayer(
    new PoseErrors("err", {
      pred: "p",
      gt: "g",
      tops: { mpjpe: "abs", mpjpeRel: "rel", paMpjpe: "pa", relAxes: "axes" },
    }),
    { p: shape, g: gts },
  );
  assert.deepEqual(r.axes.shape, [batch, J, 3]);
  return { abs: r.abs.data, rel: r.rel.data, pa: r.pa.data, axes: r.axes.data };
}

Deno.test("metrics: per-sample per-joint errors match the CPU twins (PA against Horn's quaternion method)", async () => {
  const gt = poses(1);
  const pred = similarCopy(gt, 2, 40);
  // One sample is a mirror image: the best proper rotation cannot undo it.
  for (let j = 0; j < J; j++) pred[(2 * J + j) * 3] = -gt[(2 * J + j) * 3];
  const e = await errors(pred, gt);
  const o = { batch: B, joints: J };
  assertClose(e.abs, mpjpeRef(pred, gt, o), { atol: 2e-3, rtol: 1e-5, what: "MPJPE" });
  assertClose(e.rel, mpjpeRelRef(pred, gt, { ...o, root: 0 }), {
    atol: 2e-3,
    rtol: 1e-5,
    what: "root-relative",
  });
  assertClose(e.axes, relAxesRef(pred, gt, { ...o, root: 0 }), { atol: 2e-3, rtol: 1e-5, what: "per axis" });
  // f32 centring and a unit-norm SVD leave ~1e-5 relative error on coordinates of ~1e3 mm.
  assertClose(e.pa, paMpjpeRef(pred, gt, o), { atol: 2e-2, rtol: 1e-4, what: "PA-MPJPE" });
  const mirrored = e.pa.slice(2 * J, 3 * J).reduce((a, b) => a + b, 0) / J;
  assert.ok(mirrored > 30, `a mirrored pose keeps a large PA error (${mirrored} mm)`);
});

Deno.test("metrics: PA-MPJPE is ~0 for a rotated, scaled, translated copy of the GT", async () => {
  const gt = poses(3);
  const pred = similarCopy(gt, 4, 0);
  const e = await errors(pred, gt);
  // The copy is stored in f32 (~3e-4 mm at 5 m), so even float64 cannot reach exactly 0.
  const ref = paMpjpeRef(pred, gt, { batch: B, joints: J });
  assert.ok(ref.every((v) => v < 2e-3), `reference: ${Math.max(...ref)} mm`);
  assert.ok(e.pa.every((v) => v < 0.05), `GPU: max ${Math.max(...e.pa)} mm`);
  assert.ok(Math.min(...e.abs) > 1, "the copy really is displaced");
});

Deno.test("metrics: root-relative MPJPE is invariant to translating the prediction (absolute MPJPE is not)", async () => {
  const gt = poses(5), pred = similarCopy(gt, 6, 30).map((v, i) => (i % 3 === 2 ? v + 5000 : v));
  const moved = pred.map((v, i) => v + [120, -340, 90][i % 3] + Math.floor(i / (J * 3)) * 17);
  const a = await errors(pred, gt), b = await errors(moved, gt);
  assertClose(b.rel, a.rel, { atol: 5e-3, rtol: 1e-5, what: "root-relative after translation" });
  assertClose(b.pa, a.pa, { atol: 5e-2, rtol: 1e-4, what: "PA after translation" });
  assert.ok(b.abs.some((v, i) => Math.abs(v - a.abs[i]) > 10), "absolute MPJPE moves");
  assert.ok(a.rel.every((v, i) => i % J !== 0 || v === 0), "the root scores 0");
});

Deno.test("metrics: scalar means and per-joint means match the CPU twins and average over passes", async () => {
  const gpu = await sharedGpu();
  const gt = poses(7), p1 = similarCopy(gt, 8, 50), p2 = similarCopy(gt, 9, 20);
  const layer: Layer = new PoseMetrics("m", {
    pred: "p",
    gt: "g",
    tops: {
      mpjpe: "mpjpe",
      mpjpeRel: "rel",
      paMpjpe: "pa",
      mpjpeJoints: "mpjpe_j",
      mpjpeRelJoints: "rel_j",
      paMpjpeJoints: "pa_j",
    },
  });
  const net = await Net.build(gpu, { inputs: { p: [B, J, 3], g: [B, J, 3] }, layers: [layer] }, {
    train: false,
  });
  net.setInput("g", gt);
  const o = { batch: B, joints: J };
  const refs = [p1, p2].map((p) => ({
    mpjpe: mpjpeRef(p, gt, o),
    rel: mpjpeRelRef(p, gt, { ...o, root: 0 }),
    pa: paMpjpeRef(p, gt, o),
  }));
  for (const p of [p1, p2]) {
    net.setInput("p", p);
    net.forward();
  }
  const s = await net.readScalars();
  for (const k of ["mpjpe", "rel", "pa"] as const) {
    const mean = (a: Float64Array) => a.reduce((x, y) => x + y, 0) / a.length;
    const want = (mean(refs[0][k]) + mean(refs[1][k])) / 2;
    assertClose(s[k], [want], { atol: 1e-2, rtol: 1e-5, what: `${k} (mean of two passes)` });
    const j0 = perJointRef(refs[0][k], o), j1 = perJointRef(refs[1][k], o);
    assertClose(s[`${k}_j`], j0.map((v, j) => (v + j1[j]) / 2), {
      atol: 2e-2,
      rtol: 1e-5,
      what: `${k} per joint`,
    });
  }
  net.destroy();
});

Deno.test("metrics: options and shapes are checked at build time", async () => {
  const gpu = await sharedGpu();
  assert.throws(() => new PoseMetrics("m", { pred: "p", gt: "g", tops: {} }), /layer "m": tops/);
  await assert.rejects(
    () =>
      Net.build(gpu, {
        inputs: { p: [2, J, 3], g: [2, J, 2] },
        layers: [new PoseErrors("e", { pred: "p", gt: "g", tops: { mpjpe: "x" } })],
      }, { train: false }),
    /layer "e": gt \(must match pred\)/,
  );
});
