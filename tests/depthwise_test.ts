import assert from "node:assert/strict";
import { sharedGpu } from "../kernels/device.ts";
import { createRegion, download } from "../graph/tensor.ts";
import { KernelCache, Recorder } from "../kernels/kernel.ts";
import { convGeometry, type ConvParams, isDepthwise } from "../kernels/conv_geometry.ts";
import { recordDepthwiseDgrad, recordDepthwiseForward } from "../kernels/depthwise.ts";
import { assertClose, randomArray, submitRecorded } from "./gradcheck.ts";
import { convDgradRef, convForwardRef } from "./reference/conv.ts";

// At most kh*kw (<= 25) f32 products per output against f64 references.
const TOL = { atol: 1e-5, rtol: 1e-5 };

const CASES: { name: string; input: number[]; p: ConvParams }[] = [
  { name: "3x3 s1 p1", input: [2, 5, 7, 6], p: { k: 5, kernel: 3, pad: 1, groups: 5 } },
  // The mirror of the seed's x2 bilinear upsampling: only 2x2 of the 4x4 taps land per dx element.
  { name: "4x4 s2 p1", input: [2, 4, 16, 12], p: { k: 4, kernel: 4, stride: 2, pad: 1, groups: 4 } },
  { name: "odd 4x4 s2 p1", input: [1, 3, 9, 7], p: { k: 3, kernel: 4, stride: 2, pad: 1, groups: 3 } },
  {
    name: "non-square 3x5 s2x3 p1x2",
    input: [2, 3, 10, 11],
    p: { k: 3, kernel: [3, 5], stride: [2, 3], pad: [1, 2], groups: 3 },
  },
  // dx sides that are multiples of the stride take the row-walking input gradient; the others
  // above and below, the per-element one. On a CPU adapter, outputs of four or more columns take the
  // row-walking forward; the last two cases (three columns), the per-element one.
  {
    name: "non-square 3x5 s2x3 p1x2, divisible sides",
    input: [2, 3, 10, 12],
    p: { k: 3, kernel: [3, 5], stride: [2, 3], pad: [1, 2], groups: 3 },
  },
  {
    name: "stride past the kernel 2x2 s3, divisible sides",
    input: [1, 2, 9, 9],
    p: { k: 2, kernel: 2, stride: 3, groups: 2 },
  },
  {
    name: "stride past the kernel 2x2 s3",
    input: [1, 2, 8, 8],
    p: { k: 2, kernel: 2, stride: 3, groups: 2 },
  },
];

for (const [ci, c] of CASES.entries()) {
  Deno.test(`depthwise kernels: ${c.name} forward and dgrad (bias, accumulate) match the CPU twin, repeatably, from storage and from textures`, async () => {
    const gpu = await sharedGpu();
    const g = convGeometry(c.input, c.p);
    assert.ok(isDepthwise(g));
    const xN = g.n * g.c * g.h * g.w, yN = g.n * g.k * g.oh * g.ow, wN = g.k * g.kh * g.kw;
    const s = 50 * ci;
    const x = randomArray(xN, s), w = randomArray(wN, s + 1), bias = randomArray(g.c, s + 2);
    const dy = randomArray(yN, s + 3), y0 = randomArray(yN, s + 4), dx0 = randomArray(xN, s + 5);
    // textures: the row walks read their operands from texture copies (a CPU adapter's default).
    const run = async (textures: boolean) => {
      const r = {
        x: createRegion(gpu, x),
        w: createRegion(gpu, w),
        bias: createRegion(gpu, bias),
        dy: createRegion(gpu, dy),
        y: createRegion(gpu, randomArray(yN, s + 6)),
        yAcc: createRegion(gpu, y0),
        dx: createRegion(gpu, randomArray(xN, s + 7)),
        dxAcc: createRegion(gpu, dx0),
        dxBias: createRegion(gpu, xN),
      };
      const rec = new Recorder(new KernelCache(gpu));
      recordDepthwiseForward(rec, { x: r.x, w: r.w, bias: r.bias, y: r.y, geometry: g }, { textures });
      recordDepthwiseForward(rec, { x: r.x, w: r.w, y: r.yAcc, geometry: g }, { accumulate: true, textures });
      recordDepthwiseDgrad(rec, { dy: r.dy, w: r.w, dx: r.dx, geometry: g }, { textures });
      recordDepthwiseDgrad(rec, { dy: r.dy, w: r.w, dx: r.dxAcc, geometry: g }, {
        accumulate: true,
        textures,
      });
      recordDepthwiseDgrad(rec, { dy: r.dy, w: r.w, bias: r.bias, dx: r.dxBias, geometry: g }, { textures });
      await rec.kernels.check();
      const rows = rec.dispatches.filter((d) => d.label.includes("dw_dgrad rows")).length;
      assert.equal(rows, g.h % g.sh === 0 && g.w % g.sw === 0 ? 3 : 0, `${c.name}: input gradient kernel`);
      const fwdRows = rec.dispatches.filter((d) => d.label.includes("dw_fwd rows")).length;
      assert.equal(fwdRows, gpu.isFallback && g.ow >= 4 ? 2 : 0, `${c.name}: forward kernel`);
      // Whole vec4s of every operand copy into textures; the odd-sized cases stay on storage.
      const copies = [xN, yN].every((n) => n % 4 === 0);
      const tex = rec.dispatches.filter((d) => d.label.includes("rows") && d.label.endsWith(" tex")).length;
      assert.equal(tex, textures && copies ? rows + fwdRows : 0, `${c.name}: row walks from textures`);
      await submitRecorded(rec);
      const out = {
        y: await download(gpu, r.y),
        yAcc: await download(gpu, r.yAcc),
        dx: await download(gpu, r.dx),
        dxAcc: await download(gpu, r.dxAcc),
        dxBias: await download(gpu, r.dxBias),
      };
      for (const v of Object.values(r)) v.buffer.destroy();
      return out;
    };
    const yRef = convForwardRef(g, x, w), dxRef = convDgradRef(g, dy, w);
    const hw = g.h * g.w;
    const ref = {
      y: convForwardRef(g, x, w, bias),
      yAcc: yRef.map((v, i) => v + y0[i]),
      dx: dxRef,
      dxAcc: dxRef.map((v, i) => v + dx0[i]),
      dxBias: dxRef.map((v, i) => v + bias[Math.floor(i / hw) % g.c]),
    };
    const outs = [];
    for (const textures of [true, false]) {
      const out = await run(textures);
      for (const key of Object.keys(ref) as (keyof typeof ref)[]) {
        assertClose(out[key], ref[key], { ...TOL, what: `${c.name}: ${key}, textures ${textures}` });
      }
      assert.deepEqual(await run(textures), out, `${c.name}: a second run is bit-identical`);
      outs.push(out);
    }
    // The same values either way, except that the input gradient's sum with the dx it is added to
    // may differ in the last bits: the shader compiler fuses that addition with the last multiply-add
    // of some taps in one form and not the other (both are within the tolerance above).
    const { dxAcc: _, ...same } = outs[0];
    const { dxAcc: __, ...same2 } = outs[1];
    assert.deepEqual(same, same2, `${c.name}: storage and texture reads agree`);
  });
}

Deno.test("depthwise kernels: refuse a non-depthwise geometry", () => {
  const g = convGeometry([1, 4, 6, 6], { k: 8, kernel: 3, groups: 4 });
  assert.equal(isDepthwise(g), false);
  assert.throws(
    () => recordDepthwiseForward(null as unknown as Recorder, { x: null!, w: null!, y: null!, geometry: g }),
    /groups = channels = outputs/,
  );
});
