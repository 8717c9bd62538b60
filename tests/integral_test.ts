import { sharedGpu } from "../kernels/device.ts";
import {
  Integral,
  IntegralVector,
  NumericalCoordinateRegression,
  SoftArgmax,
} from "../graph/layers/integral.ts";
import type { Layer } from "../graph/layer.ts";
import { Net } from "../graph/net.ts";
import { type CellGrid, UNIT_BOUNDS } from "../kernels/integral.ts";
import { assertClose, forEachReduceLayout, gradcheck, probe, randomArray } from "./gradcheck.ts";
import {
  integralAxisBackwardRef,
  integralAxisRef,
  integralVectorBackwardRef,
  integralVectorRef,
  softArgmaxBackwardRef,
  softArgmaxRef,
} from "./reference/integral.ts";

const numel = (s: number[]) => s.reduce((a, b) => a * b, 1);
const FWD = { atol: 1e-5, rtol: 1e-4 };

Deno.test("integral x/y/z: GPU matches the CPU twin (atol 1e-5, rtol 1e-4) and passes gradcheck", async () => {
  const shape = [2, 3, 4, 5];
  const x = randomArray(numel(shape), 21);
  for (const axis of ["x", "y", "z"] as const) {
    const p = await probe(new Integral("int", { bottom: "x", top: "y", axis }), [shape]);
    p.set([x]);
    const [y] = await p.forward();
    assertClose(y, integralAxisRef(x, { shape, axis }), { ...FWD, what: `integral ${axis}` });
    const g = await p.backward();
    assertClose(g.bottoms[0], integralAxisBackwardRef(p.r[0], { shape, axis }), {
      atol: 0,
      rtol: 0,
      what: `integral ${axis} backward`,
    });
    await gradcheck(p, [x], { samples: 6 });
    p.net.destroy();
  }
});

Deno.test("integral vector: GPU matches the CPU twin and passes gradcheck", async () => {
  const x = randomArray(21, 22);
  const bounds = [-1, 1] as const;
  const p = await probe(new IntegralVector("iv", { bottom: "x", top: "y", bounds }), [[3, 7]]);
  p.set([x]);
  const [y] = await p.forward();
  assertClose(y, integralVectorRef(x, { rows: 3, bounds }), { ...FWD, what: "integral vector" });
  const g = await p.backward();
  assertClose(g.bottoms[0], integralVectorBackwardRef(p.r[0], { length: 7, bounds }), {
    ...FWD,
    what: "backward",
  });
  await gradcheck(p, [x]);
  p.net.destroy();
});

function grid(depth: number, height: number, width: number, bounds = UNIT_BOUNDS, offset = 0.5): CellGrid {
  return { depth, height, width, bounds, offset };
}

Deno.test("soft-argmax 3D: one [B,J,3] top with custom bounds matches the twin; gradcheck", async () => {
  await forEachReduceLayout(async () => {
    // J=2, D=3, H=5, W=7: unequal extents catch swapped axes, and 105 cells per group take the
    // backward's one-cell form (the other tests' groups, multiples of 4, take the four-cell one).
    const shape = [2, 6, 5, 7];
    const bounds = { x: [-1, 1] as const, y: [0, 1] as const, z: [0.2, 0.8] as const };
    const x = randomArray(numel(shape), 23, 0, 1);
    const p = await probe(new SoftArgmax("sa", { bottom: "p", top: "xyz", depthBins: 3, bounds }), [shape]);
    p.set([x]);
    const [y] = await p.forward();
    const gr = grid(3, 5, 7, bounds);
    assertClose(y, softArgmaxRef(x, { groups: 4, grid: gr }), { ...FWD, what: "soft-argmax" });
    const g = await p.backward();
    assertClose(g.bottoms[0], softArgmaxBackwardRef(p.r[0], { groups: 4, grid: gr }), {
      ...FWD,
      what: "soft-argmax backward",
    });
    await gradcheck(p, [x]);
    p.net.destroy();
  });
});

Deno.test("soft-argmax 3D split tops [xy, z] over chunked cubes match the twin", async () => {
  await forEachReduceLayout(async () => {
    const shape = [1, 6, 40, 40]; // 3 x 40 x 40 = 4800 per joint: two chunks
    const x = randomArray(numel(shape), 24, 0, 1 / 2400);
    const p = await probe(new SoftArgmax("sa", { bottom: "p", tops: ["xy", "z"], depthBins: 3 }), [shape]);
    p.set([x]);
    const [xy, z] = await p.forward();
    const want = softArgmaxRef(x, { groups: 2, grid: grid(3, 40, 40) });
    assertClose(xy, [want[0], want[1], want[3], want[4]], { ...FWD, what: "xy" });
    assertClose(z, [want[2], want[5]], { ...FWD, what: "z" });
    const g = await p.backward();
    const dy = new Float32Array(6);
    for (let j = 0; j < 2; j++) dy.set([p.r[0][2 * j], p.r[0][2 * j + 1], p.r[1][j]], 3 * j);
    assertClose(g.bottoms[0], softArgmaxBackwardRef(dy, { groups: 2, grid: grid(3, 40, 40) }), {
      ...FWD,
      what: "split backward",
    });
    p.net.destroy();
  });
});

Deno.test("soft-argmax 2D matches the twin; equals the seed's IntegralX/Y/Z -> IntegralVector chain", async () => {
  const x2 = randomArray(2 * 3 * 6 * 6, 25, 0, 1);
  const p = await probe(new SoftArgmax("sa", { bottom: "p", top: "xy" }), [[2, 3, 6, 6]]);
  p.set([x2]);
  const [y] = await p.forward();
  const want = softArgmaxRef(x2, { groups: 6, grid: grid(1, 6, 6) });
  assertClose(y, want.filter((_, i) => i % 3 !== 2), { ...FWD, what: "2D soft-argmax" });
  const g = await p.backward();
  const dy = new Float32Array(18);
  for (let j = 0; j < 6; j++) dy.set([p.r[0][2 * j], p.r[0][2 * j + 1], 0], 3 * j);
  assertClose(g.bottoms[0], softArgmaxBackwardRef(dy, { groups: 6, grid: grid(1, 6, 6) }), {
    ...FWD,
    what: "2D backward",
  });
  p.net.destroy();

  // One cube [N, D, S, S] through the seed's chain against the fused layer. Separate nets, as
  // the arena may reuse a blob's buffer once its last consumer has run.
  const cube = [2, 4, 5, 5];
  const x = randomArray(numel(cube), 26, 0, 1);
  const gpu = await sharedGpu();
  const run = async (layers: Layer[], top: string) => {
    const net = await Net.build(gpu, { inputs: { cube }, layers }, { train: false });
    net.setInput("cube", x);
    net.forward();
    const out = await net.read(top);
    net.destroy();
    return out;
  };
  const fused = await run([new SoftArgmax("sa", { bottom: "cube", top: "xyz", depthBins: 4 })], "xyz");
  for (const [axis, k] of [["x", 0], ["y", 1], ["z", 2]] as const) {
    const chain = await run([
      new Integral("i", { bottom: "cube", top: "m", axis }),
      new IntegralVector("v", { bottom: "m", top: "c" }),
    ], "c");
    assertClose([fused[k], fused[3 + k]], chain, { ...FWD, what: `${axis} via the chain` });
  }
});

Deno.test("numerical coordinate regression: clean (col+0.5)/S and legacy col/S with the channel-0 backward", async () => {
  // Both layouts: the lanes one walks a run of cells per invocation, the other one to four cells.
  await forEachReduceLayout(async () => {
    const shape = [2, 3, 4, 5];
    const x = randomArray(numel(shape), 27, 0, 1);
    for (const legacy of [false, true]) {
      const p = await probe(new NumericalCoordinateRegression("ncr", { bottom: "p", top: "xy", legacy }), [
        shape,
      ]);
      p.set([x]);
      const [y] = await p.forward();
      const gr = grid(1, 4, 5, UNIT_BOUNDS, legacy ? 0 : 0.5);
      const want = softArgmaxRef(x, { groups: 6, grid: gr });
      assertClose(y, want.filter((_, i) => i % 3 !== 2), { ...FWD, what: `ncr forward legacy=${legacy}` });
      const g = await p.backward();
      const dy = new Float32Array(18);
      for (let j = 0; j < 6; j++) dy.set([p.r[0][2 * j], p.r[0][2 * j + 1], 0], 3 * j);
      const bug = legacy ? { joints: 3 } : undefined;
      assertClose(g.bottoms[0], softArgmaxBackwardRef(dy, { groups: 6, grid: gr, channelZeroBug: bug }), {
        ...FWD,
        what: `ncr backward ${legacy}`,
      });
      if (!legacy) await gradcheck(p, [x]);
      p.net.destroy();
    }
  });
});
