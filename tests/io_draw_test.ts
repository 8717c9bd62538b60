import assert from "node:assert/strict";
import { drawLine, drawSkeleton, fillCircle, makeCanvas, normToPixels, upscale } from "../io/draw.ts";
import { JOINT_COLORS } from "../io/joints.ts";

const at = (c: { width: number; rgb: Uint8Array }, x: number, y: number) =>
  Array.from(c.rgb.subarray(3 * (y * c.width + x), 3 * (y * c.width + x) + 3));

Deno.test("fillCircle and drawLine cover the expected pixels and clip at the border", () => {
  const c = makeCanvas(20, 20);
  fillCircle(c, [5, 5], { radius: 2, color: [255, 0, 0] });
  assert.deepEqual(at(c, 5, 5), [255, 0, 0]);
  assert.deepEqual(at(c, 7, 5), [255, 0, 0]);
  assert.deepEqual(at(c, 7, 7), [0, 0, 0]);
  fillCircle(c, [0, 19], { radius: 3, color: [0, 9, 0] });
  assert.deepEqual(at(c, 0, 19), [0, 9, 0]);
  drawLine(c, [2, 15, 17, 15], { thickness: 3, color: [1, 2, 3] });
  assert.deepEqual(at(c, 10, 14), [1, 2, 3]);
  assert.deepEqual(at(c, 10, 16), [1, 2, 3]);
  assert.deepEqual(at(c, 10, 17), [0, 0, 0]);
  drawLine(c, [-50, -50, 100, 100], { thickness: 1, color: [7, 7, 7] });
  assert.deepEqual(at(c, 12, 12), [7, 7, 7]);
});

Deno.test("drawSkeleton paints joints in the seed colours; upscale and normToPixels", () => {
  const c = makeCanvas(64, 64, { fill: [128, 128, 128] });
  const joints = new Float64Array(32);
  for (let j = 0; j < 16; j++) {
    joints[2 * j] = 4 + 3.5 * j;
    joints[2 * j + 1] = 32;
  }
  drawSkeleton(c, joints, { radius: 1, thickness: 1 });
  assert.deepEqual(at(c, 4, 32), [...JOINT_COLORS[0]]);
  assert.deepEqual(at(c, 4 + 3.5 * 4, 32), [...JOINT_COLORS[4]]);
  const big = upscale(c, 2);
  assert.equal(big.width, 128);
  assert.deepEqual(at(big, 9, 65), at(c, 4, 32));
  assert.deepEqual(Array.from(normToPixels([0.5, 0.25], 64)), [31.5, 15.5]);
  assert.deepEqual(Array.from(normToPixels([0.5], 256, { legacy: true })), [128]);
});
