import assert from "node:assert/strict";
import {
  apply,
  chain,
  compose,
  invert,
  NO_AUG,
  rawToSource,
  rotation,
  type SampleFrame,
  sampleGeometry,
  scaling,
  sourceToRaw,
  translate,
} from "../stages/geometry.ts";

const FRAME: SampleFrame = {
  centerX: 112,
  centerY: 112,
  scale: 224,
  width: 224,
  height: 224,
  bbx: [265, 264, 658, 657],
};
const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} != ${b}`);

Deno.test("affine compose, chain and invert", () => {
  const m = chain(translate(3, -2), rotation(30), scaling(1.7));
  const [x, y] = apply(m, [5, 7]);
  const [bx, by] = apply(invert(m), [x, y]);
  close(bx, 5);
  close(by, 7);
  const [cx, cy] = apply(compose(scaling(2), translate(1, 1)), [1, 2]);
  assert.deepEqual([cx, cy], [4, 6]);
});

Deno.test("legacy test mode: u256 = u224 / 1.12 + 28.5 exactly", () => {
  const g = sampleGeometry(FRAME, NO_AUG, { legacyGeometry: true });
  for (const u of [0, 17.25, 111.5, 112, 200.123456, 223]) {
    const [x, y] = apply(g.jointMap, [u, 223 - u]);
    close(x * 256, u / 1.12 + 28.5, 1e-9);
    close(y * 256, (223 - u) / 1.12 + 28.5, 1e-9);
  }
});

Deno.test("clean test mode: norm = ((u224 + 0.5) / 1.12 + 28) / 256, image and joints agree", () => {
  for (const size of [256, 128, 64]) {
    const g = sampleGeometry(FRAME, NO_AUG, { inputSize: size });
    for (const u of [0, 50.5, 111.5, 223]) {
      const [x] = apply(g.jointMap, [u, u]);
      close(x, ((u + 0.5) / 1.12 + 28) / 256);
      // The output pixel whose centre sits at that norm coordinate samples exactly source pixel u.
      const p = x * size - 0.5;
      const [sx, sy] = apply(g.sampleMap, [p, p]);
      close(sx, u, 1e-9);
      close(sy, u, 1e-9);
    }
  }
  // The source centre lands on the crop centre.
  const [cx] = apply(sampleGeometry(FRAME, NO_AUG).jointMap, [111.5, 111.5]);
  close(cx, 0.5);
});

Deno.test("clean normToRaw inverts jointMap then maps the source onto the bbx", () => {
  const g = sampleGeometry(FRAME, { scale: 1.2, rotateDeg: 25, flip: true });
  const [un, vn] = apply(g.jointMap, [40, 150]);
  const [u, v] = apply(g.normToRaw, [un, vn]);
  const [ru, rv] = apply(sourceToRaw(FRAME.bbx), [40, 150]);
  close(u, ru, 1e-9);
  close(v, rv, 1e-9);
  const [e0, e1] = apply(sourceToRaw(FRAME.bbx), [224, 0]);
  assert.deepEqual([e0, e1], [658, 264]);
  const [back] = apply(rawToSource(FRAME.bbx), [ru, rv]);
  close(back, 40, 1e-9);
});
