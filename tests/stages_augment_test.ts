import assert from "node:assert/strict";
import { FLIP_PERMUTATION } from "../io/joints.ts";
import type { AugParams } from "../stages/geometry.ts";
import {
  DEPTH_LB,
  DEPTH_UB,
  type LoadedSample,
  prepareSample,
  type SampleOptions,
} from "../stages/sample.ts";
import { planarToRgb } from "../stages/warp.ts";
import { consistentRecord } from "./fixtures/tiny_dataset.ts";

/** A grey 224 image with a white 3x3 dot centred on pixel (x, y), and joint 0 (all-id 0) there. */
function dotSample(x: number, y: number): LoadedSample {
  const record = consistentRecord(1);
  record.joints2d[0] = x;
  record.joints2d[1] = y;
  const rgb = new Uint8Array(224 * 224 * 3).fill(128);
  for (let dy = -1; dy <= 1; dy++) {
    for (let dx = -1; dx <= 1; dx++) {
      rgb.fill(255, 3 * ((y + dy) * 224 + x + dx), 3 * ((y + dy) * 224 + x + dx) + 3);
    }
  }
  return { record, image: { width: 224, height: 224, rgb } };
}

/** Centroid (pixel-index coords) of the brightness above the grey level. */
function brightCentroid(planes: Float32Array, size: number): [number, number] {
  const rgb = planarToRgb(planes, size);
  let sw = 0, sx = 0, sy = 0;
  for (let i = 0; i < size * size; i++) {
    const w = Math.max(0, rgb[3 * i] - 140);
    sw += w;
    sx += w * (i % size);
    sy += w * Math.floor(i / size);
  }
  return [sx / sw, sy / sw];
}

const CASES: [AugParams, number][] = [
  [{ scale: 1, rotateDeg: 0, flip: false }, 256],
  [{ scale: 1.3, rotateDeg: 35, flip: false }, 256],
  [{ scale: 0.75, rotateDeg: -28, flip: true }, 256],
  [{ scale: 1.1, rotateDeg: 12, flip: true }, 128],
];

Deno.test("augmentation keeps the joint on the image content (clean: within 0.3 px)", () => {
  const s = dotSample(150, 70);
  for (const [params, size] of CASES) {
    const out = prepareSample(s, params, { inputSize: size });
    // Joint 0 (root) is on the midline, so a flip does not move it to another slot.
    const [px, py] = brightCentroid(out.image, size);
    const ex = out.joints2d[0] * size - 0.5, ey = out.joints2d[1] * size - 0.5;
    assert.ok(
      Math.hypot(px - ex, py - ey) < 0.3,
      `${JSON.stringify(params)}: dot ${px},${py} vs joint ${ex},${ey}`,
    );
  }
});

Deno.test("legacy geometry keeps the joint on the content within its half-pixel quirks", () => {
  const s = dotSample(60, 180);
  for (const [params] of CASES) {
    const out = prepareSample(s, params, { legacy: true });
    const [px, py] = brightCentroid(out.image, 256);
    const ex = out.joints2d[0] * 256, ey = out.joints2d[1] * 256;
    assert.ok(
      Math.hypot(px - ex, py - ey) < 1,
      `${JSON.stringify(params)}: dot ${px},${py} vs joint ${ex},${ey}`,
    );
  }
});

Deno.test("flip mirrors and swaps left/right in 2D and 3D (legacy: 2D only)", () => {
  const s = dotSample(100, 100);
  const base = { scale: 1.05, rotateDeg: 10 };
  for (const legacy of [false, true]) {
    const opts: SampleOptions = { legacy: legacy ? { unswappedDepth: true } : false };
    const a = prepareSample(s, { ...base, flip: false }, opts);
    const b = prepareSample(s, { ...base, flip: true }, opts);
    for (let j = 0; j < 16; j++) {
      const k = FLIP_PERMUTATION[j];
      assert.ok(Math.abs(b.joints2d[2 * j] - (1 - a.joints2d[2 * k])) < 1e-6);
      assert.ok(Math.abs(b.joints2d[2 * j + 1] - a.joints2d[2 * k + 1]) < 1e-6);
      for (let c = 0; c < 3; c++) assert.equal(b.gt3d[3 * j + c], a.gt3d[3 * (legacy ? j : k) + c]);
    }
  }
});

Deno.test("aug3d equals GT 3D in clean mode (test and augmented) but not with cropAsBbx; depth encoding", () => {
  const s = { record: consistentRecord(3), image: dotSample(100, 100).image };
  for (
    const params of [{ scale: 1, rotateDeg: 0, flip: false }, { scale: 0.8, rotateDeg: -33, flip: true }]
  ) {
    const out = prepareSample(s, params, {});
    for (let i = 0; i < 48; i++) assert.ok(Math.abs(out.aug3d[i] - out.gt3d[i]) < 0.01, `${i}`);
  }
  const legacy = prepareSample(s, { scale: 1, rotateDeg: 0, flip: false }, { legacy: true });
  let err = 0;
  for (let i = 0; i < 48; i++) err = Math.max(err, Math.abs(legacy.aug3d[i] - legacy.gt3d[i]));
  assert.ok(err > 20, `the seed's frame should shrink x, y about the bbx centre (max diff ${err})`);
  const out = prepareSample(s, { scale: 1, rotateDeg: 0, flip: false }, {});
  assert.equal(out.depth[0], Math.fround(-DEPTH_LB / (DEPTH_UB - DEPTH_LB)));
  const z5 = (out.gt3d[3 * 5 + 2] - out.gt3d[2] - DEPTH_LB) / (DEPTH_UB - DEPTH_LB);
  assert.ok(Math.abs(out.depth[5] - z5) < 1e-6);
  assert.deepEqual(
    Array.from(out.camera),
    Array.from(Float32Array.of(1145.049405, 1143.781096, 512.541505, 515.451487)),
  );
});

Deno.test("channel order: bgr puts blue in plane 0, rgb in plane 2; values are (p - 128) / 256", () => {
  const s = dotSample(112, 112);
  const rgb = s.image.rgb;
  for (let i = 0; i < 224 * 224; i++) rgb[3 * i + 2] = 200; // blue everywhere
  const bgr = prepareSample(s, { scale: 1, rotateDeg: 0, flip: false }, { inputSize: 64 });
  const plain = prepareSample(s, { scale: 1, rotateDeg: 0, flip: false }, {
    inputSize: 64,
    channelOrder: "rgb",
  });
  const mid = 32 * 64 + 20;
  assert.ok(Math.abs(bgr.image[mid] - (200 - 128) / 256) < 1e-3);
  assert.ok(Math.abs(plain.image[2 * 4096 + mid] - (200 - 128) / 256) < 1e-3);
  // the grey border
  assert.equal(bgr.image[0], 0);
});
