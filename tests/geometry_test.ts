import assert from "node:assert/strict";
import { sharedGpu } from "../kernels/device.ts";
import { Net } from "../graph/net.ts";
import type { Layer, Shape } from "../graph/layer.ts";
import { Rng } from "../io/prng.ts";
import { DepthDecode, DepthEncode, GenAug3D, GenPredMono3D, Project } from "../graph/layers/geometry.ts";
import { ENCODE_DEPTH_BOUNDS, LEGACY_DECODE_DEPTH_BOUNDS } from "../kernels/geometry.ts";
import { assertClose, gradcheck, probe } from "./gradcheck.ts";
import { backProjectRef, depthDecodeRef, depthEncodeRef, projectRef } from "./reference/geometry.ts";

const B = 3, J = 16;

/** Plausible H36M-like samples: cameras, crop frames (rotated, scaled), poses 4-6 m away. */
function scene(seed: number) {
  const rng = new Rng(seed);
  const f32 = (n: number, fn: (i: number) => number) => Float32Array.from({ length: n }, (_, i) => fn(i));
  const camera = f32(B * 4, (i) => [1145, 1144, 512, 515][i % 4] + rng.uniform(-5, 5));
  const distortion = f32(B * 5, (i) => [-0.2, 0.24, -0.002, -0.0007, -0.0015][i % 5] * rng.uniform(0.5, 1.5));
  const crop = new Float32Array(B * 6), bbx = new Float32Array(B * 4);
  for (let n = 0; n < B; n++) {
    const t = rng.uniform(-0.6, 0.6), s = rng.uniform(300, 500);
    crop.set([
      s * Math.cos(t),
      -s * Math.sin(t),
      rng.uniform(200, 400),
      s * Math.sin(t),
      s * Math.cos(t),
      rng
        .uniform(200, 400),
    ], 6 * n);
    const x1 = rng.uniform(200, 400), y1 = rng.uniform(200, 400);
    bbx.set([x1, y1, x1 + s, y1 + s], 4 * n);
  }
  const points = new Float32Array(B * J * 3);
  for (let n = 0; n < B; n++) {
    const root = [rng.uniform(-300, 300), rng.uniform(-300, 300), rng.uniform(4000, 6000)];
    for (let j = 0; j < J; j++) {
      for (let k = 0; k < 3; k++) {
        points[(n * J + j) * 3 + k] = root[k] + (j === 0 ? 0 : rng.uniform(-700, 700));
      }
    }
  }
  const joints2d = f32(B * J * 2, () => rng.uniform(0.1, 0.9));
  const norm = f32(B * J, () => rng.uniform(0.1, 0.9));
  const depthMm = f32(B * J, () => rng.uniform(4000, 6000));
  return { camera, distortion, crop, bbx, points, joints2d, norm, depthMm };
}

/** Builds a forward-only net over `layers` and returns the named outputs. */
async function run(
  inputs: Record<string, [Shape, Float32Array]>,
  layers: Layer[],
  outs: string[],
): Promise<Float32Array[]> {
  const gpu = await sharedGpu();
  const shapes = Object.fromEntries(Object.entries(inputs).map(([k, v]) => [k, v[0]]));
  const net = await Net.build(gpu, { inputs: shapes, layers }, { train: false });
  for (const [k, v] of Object.entries(inputs)) net.setInput(k, v[1]);
  net.forward();
  const r = await Promise.all(outs.map((o) => net.read(o)));
  net.destroy();
  return r;
}

Deno.test("geometry: depth encode matches the CPU twin (root from a second input, root 3)", async () => {
  const s = scene(1), gt = scene(2).points;
  const [enc] = await run(
    { p: [[B, J, 3], s.points], g: [[B, J, 3], gt] },
    [new DepthEncode("enc", { points: "p", rootFrom: "g", top: "n", root: 3 })],
    ["n"],
  );
  const ref = depthEncodeRef(s.points, gt, { batch: B, joints: J, root: 3, bounds: ENCODE_DEPTH_BOUNDS });
  assertClose(enc, ref, { atol: 1e-6, rtol: 1e-5, what: "encode" });
});

Deno.test("geometry: depth decode forward/backward match the CPU twin; gradcheck", async () => {
  const s = scene(3);
  for (const legacy of [false, true]) {
    const p = await probe(new DepthDecode("dec", { depth: "n", rootFrom: "g", top: "z", legacy }), [[B, J], [
      B,
      J,
      3,
    ]]);
    p.set([s.norm, s.points]);
    const [z] = await p.forward();
    const bounds = legacy ? LEGACY_DECODE_DEPTH_BOUNDS : ENCODE_DEPTH_BOUNDS;
    const ref = depthDecodeRef(s.norm, s.points, { batch: B, joints: J, root: 0, bounds, dz: p.r[0] });
    assertClose(z, ref.z, { atol: 1e-3, rtol: 1e-6, what: `decode (legacy ${legacy})` });
    const g = await p.backward();
    assertClose(g.bottoms[0], ref.dDepth, { atol: 1e-4, rtol: 1e-5, what: "d depth" });
    assert.equal(g.bottoms[1].length, 0, "no gradient to the GT root");
    await gradcheck(p, [s.norm.slice(), s.points.slice()]);
    p.net.destroy();
  }
});

Deno.test("geometry: encode -> decode is the identity with clean bounds and 0.928066 z - 17.758 mm with legacy", async () => {
  const s = scene(4);
  const rootZ = (n: number) => s.points[n * J * 3 + 2];
  for (const legacy of [false, true]) {
    const [z] = await run({ p: [[B, J, 3], s.points] }, [
      new DepthEncode("enc", { points: "p", top: "n" }),
      new DepthDecode("dec", { depth: "n", rootFrom: "p", top: "z", legacy }),
    ], ["z"]);
    const got = z.map((v, i) => v - rootZ(Math.floor(i / J)));
    const want = got.map((_, i) => {
      const rel = s.points[3 * i + 2] - rootZ(Math.floor(i / J));
      return legacy ? 0.928066 * rel - 17.758 : rel;
    });
    // f32 at ~5 m carries ~5e-4 mm; the rounded legacy constants add < 1 mm * 1e-6 per mm of depth.
    assertClose(got, want, { atol: legacy ? 5e-3 : 2e-3, rtol: 0, what: `round trip (legacy ${legacy})` });
  }
});

Deno.test("geometry: GenPredMono3D forward/backward match the CPU twin (clean affine and legacy bbx); gradcheck", async () => {
  const s = scene(5);
  for (const legacy of [false, true]) {
    const crop = legacy ? s.bbx : s.crop;
    const layer = new GenPredMono3D("mono", {
      joints2d: "j2",
      depth: "z",
      camera: "cam",
      crop: "crop",
      top: "xyz",
      legacy,
    });
    const p = await probe(layer, [[B, J, 2], [B, J], [B, 4], [B, legacy ? 4 : 6]]);
    const inputs = [s.joints2d, s.depthMm, s.camera, crop];
    p.set(inputs);
    const [xyz] = await p.forward();
    const ref = backProjectRef(s.joints2d, s.depthMm, {
      batch: B,
      joints: J,
      camera: s.camera,
      crop,
      legacy,
      dOut: p.r[0],
    });
    assertClose(xyz, ref.xyz, { atol: 2e-3, rtol: 2e-6, what: `back-projection (legacy ${legacy})` });
    const g = await p.backward();
    assertClose(g.bottoms[0], ref.d2d, { atol: 1e-3, rtol: 1e-5, what: "d joints2d" });
    assertClose(g.bottoms[1], ref.dDepth, { atol: 1e-6, rtol: 1e-5, what: "d depth" });
    assert.equal(g.bottoms[2].length + g.bottoms[3].length, 0, "camera and crop are constants");
    // The map is affine in each input separately, so large steps are exact and beat f32 noise.
    const copy = inputs.map((a) => a.slice());
    await gradcheck(p, copy, { eps: 0.05, checkInputs: [0] });
    await gradcheck(p, copy, { eps: 2, checkInputs: [1] });
    p.net.destroy();
  }
});

Deno.test("geometry: GenAug3D takes crop pixels and the GT depth of the same joint", async () => {
  const s = scene(6);
  const px = s.joints2d.map((v) => v * 256);
  for (const legacy of [false, true]) {
    const crop = legacy ? s.bbx : s.crop;
    const [aug] = await run(
      {
        j2: [[B, J, 2], px],
        g: [[B, J, 3], s.points],
        cam: [[B, 4], s.camera],
        crop: [[B, legacy ? 4 : 6], crop],
      },
      [
        new GenAug3D("aug", {
          joints2d: "j2",
          gt3d: "g",
          camera: "cam",
          crop: "crop",
          top: "a",
          cropSide: 256,
          legacy,
        }),
      ],
      ["a"],
    );
    const z = s.points.filter((_, i) => i % 3 === 2);
    const ref = backProjectRef(s.joints2d, z, { batch: B, joints: J, camera: s.camera, crop, legacy });
    assertClose(aug, ref.xyz, { atol: 2e-3, rtol: 2e-6, what: `GenAug3D (legacy ${legacy})` });
  }
});

Deno.test("geometry: projection with H36M distortion matches the CPU twin (raw pixels and norm crop)", async () => {
  const s = scene(7);
  const inputs: Record<string, [Shape, Float32Array]> = {
    p: [[B, J, 3], s.points],
    cam: [[B, 4], s.camera],
    k: [[B, 5], s.distortion],
    crop: [[B, 6], s.crop],
  };
  // One net per layer: outputs nothing reads share arena buffers, so only the last would survive.
  const [raw] = await run(inputs, [
    new Project("raw", { points: "p", camera: "cam", distortion: "k", top: "uv" }),
  ], [
    "uv",
  ]);
  const [norm] = await run(inputs, [
    new Project("norm", { points: "p", camera: "cam", distortion: "k", crop: "crop", top: "uv" }),
  ], ["uv"]);
  const [plain] = await run(inputs, [new Project("pinhole", { points: "p", camera: "cam", top: "uv" })], [
    "uv",
  ]);
  const o = { batch: B, joints: J, camera: s.camera };
  assertClose(raw, projectRef(s.points, { ...o, distortion: s.distortion }), { atol: 1e-3, rtol: 1e-5 });
  assertClose(norm, projectRef(s.points, { ...o, distortion: s.distortion, crop: s.crop }), {
    atol: 1e-5,
    rtol: 1e-5,
  });
  assertClose(plain, projectRef(s.points, o), { atol: 1e-3, rtol: 1e-5, what: "pinhole" });
  // Distortion must actually matter here, or the comparison above proves little.
  assert.ok(raw.some((v, i) => Math.abs(v - plain[i]) > 1), "distortion moves points by > 1 px");
});

Deno.test("geometry: back-projecting a projected point returns it (non-trivial cropToBbx, and legacy bbx)", async () => {
  const s = scene(8);
  const z = s.points.filter((_, i) => i % 3 === 2);
  for (const legacy of [false, true]) {
    const crop = legacy ? s.bbx : s.crop;
    const [xyz] = await run(
      {
        p: [[B, J, 3], s.points],
        z: [[B, J], z],
        cam: [[B, 4], s.camera],
        crop: [[B, legacy ? 4 : 6], crop],
      },
      [
        new Project("proj", { points: "p", camera: "cam", crop: "crop", top: "uv", legacy }),
        new GenPredMono3D("mono", {
          joints2d: "uv",
          depth: "z",
          camera: "cam",
          crop: "crop",
          top: "xyz",
          legacy,
        }),
      ],
      ["xyz"],
    );
    assertClose(xyz, s.points, { atol: 5e-3, rtol: 1e-6, what: `round trip (legacy ${legacy})` });
  }
});

Deno.test("geometry: shape errors name the layer", async () => {
  const gpu = await sharedGpu();
  await assert.rejects(
    () =>
      Net.build(gpu, {
        inputs: { j2: [B, J, 2], z: [B, J], cam: [B, 4], crop: [B, 4] },
        layers: [
          new GenPredMono3D("mono", { joints2d: "j2", depth: "z", camera: "cam", crop: "crop", top: "x" }),
        ],
      }, { train: false }),
    /layer "mono": cropToBbx: expected 3x6, got 3x4/,
  );
});
