import assert from "node:assert/strict";
import { sharedGpu } from "../kernels/device.ts";
import { createRegion, download } from "../graph/tensor.ts";
import {
  type Dispatch,
  encodeProgram,
  KernelCache,
  type KernelDispatch,
  Recorder,
} from "../kernels/kernel.ts";
import { type FusablePart, fuseProgram, fuseSources, parseKernel } from "../kernels/fuse.ts";
import { Net } from "../graph/net.ts";
import { RMSProp } from "../graph/solver.ts";
import { Convolution } from "../graph/layers/convolution.ts";
import { BatchNorm } from "../graph/layers/batch_norm.ts";
import { Eltwise } from "../graph/layers/eltwise.ts";
import { EuclideanLoss } from "../graph/layers/euclidean_loss.ts";
import { randomArray } from "./gradcheck.ts";

// Three kernels that read every built-in a part may ask for, share module-scope names (`w`, `at`,
// `N`) that the others use as locals or swizzles, and have workgroup sizes 8, 256 and 32.
const A = `@group(0) @binding(0) var<uniform> w: array<vec4<f32>, 16>;
@group(0) @binding(1) var<storage, read_write> o: array<f32>;
const N = 300u;
fn at(i: u32) -> f32 { return w[i & 15u].w + f32(i); }
@compute @workgroup_size(8)
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = gid.x + gid.y * nwg.x * 8u;
  if (i >= N) { return; }
  o[i] = at(i) * 2.0 + f32(nwg.x * 100u + nwg.y);
}`;
const B = `@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) li: u32, @builtin(local_invocation_id) lid: vec3u) {
  let i = wid.x * 256u + li;
  if (i >= 600u) { return; }
  let w = x[i];
  o[i] = w + f32(wid.x) * 1000.0 + f32(lid.x) * 0.5;
}`;
const C = `@group(0) @binding(0) var<storage, read> at: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> o: array<f32>;
const N = 70u;
@compute @workgroup_size(32)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x >= N) { return; }
  let v = at[gid.x];
  o[gid.x] = v.x + v.w * 3.0;
}`;

// B's twin with other code: the planner fuses only kernels of one workgroup size and distinct code.
const B2 = B.replace("* 1000.0", "* 2000.0");

Deno.test("co-dispatch: kernels fused into one dispatch write exactly what they write alone", async () => {
  const gpu = await sharedGpu();
  const wA = createRegion(gpu, randomArray(64, 1)), xB = createRegion(gpu, randomArray(600, 2));
  const xC = createRegion(gpu, randomArray(4 * 70, 3));
  const run = async (fused: boolean) => {
    const outs = [createRegion(gpu, 304), createRegion(gpu, 600), createRegion(gpu, 70)];
    const parts: FusablePart[] = [
      { label: "a", code: A, regions: [wA, outs[0]], groups: [19, 2, 1] },
      { label: "b", code: B, regions: [xB, outs[1]], groups: [3, 1, 1] },
      { label: "c", code: C, regions: [xC, outs[2]], groups: [3, 1, 1] },
    ];
    const rec = new Recorder(new KernelCache(gpu));
    if (fused) {
      const f = fuseSources(parts);
      assert.deepEqual(f.groups, [38 * 1 + 3 * 32 + 3 * 4, 1, 1]);
      rec.dispatch({ label: "fused", code: f.code }, f.regions, f.groups);
    } else for (const p of parts) rec.dispatch({ label: p.label, code: p.code }, p.regions, p.groups);
    await rec.kernels.check();
    const enc = gpu.device.createCommandEncoder();
    encodeProgram(enc, rec.dispatches);
    gpu.device.queue.submit([enc.finish()]);
    const got = await Promise.all(outs.map((r) => download(gpu, r)));
    for (const r of outs) r.buffer.destroy();
    return got;
  };
  const alone = await run(false), fused = await run(true);
  for (let k = 0; k < 3; k++) assert.deepEqual(fused[k], alone[k], `part ${k}`);
  assert.ok(alone[1].some((v, i) => v !== 0 && i > 256), "the test writes the second workgroup of part b");
  for (const r of [wA, xB, xC]) r.buffer.destroy();
});

Deno.test("co-dispatch: kernels with barriers, workgroup memory or 2-D workgroups are left alone", () => {
  assert.ok(parseKernel(A) && parseKernel(B) && parseKernel(C));
  assert.equal(parseKernel(A.replace("  o[i] =", "  workgroupBarrier();\n  o[i] =")), null);
  assert.equal(parseKernel(`var<workgroup> t: array<f32, 8>;\n${A}`), null);
  assert.equal(parseKernel(A.replace("@workgroup_size(8)", "@workgroup_size(8, 2)")), null);
  assert.equal(parseKernel(A.replace("@workgroup_size(8)", "@workgroup_size(12)")), null);
});

Deno.test("co-dispatch: planning keeps every dependency and WebGPU's usage rule", async () => {
  const gpu = await sharedGpu();
  const buf = () =>
    gpu.device.createBuffer({ size: 4096, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.UNIFORM });
  const [p, q, r, s, t] = [buf(), buf(), buf(), buf(), buf()];
  const reg = (b: GPUBuffer, offset = 0, size = 1024) => ({ buffer: b, offset, size });
  const parts = new Map<Dispatch, FusablePart>();
  const k = (label: string, code: string, regions: FusablePart["regions"]): Dispatch => {
    const d: KernelDispatch = { label, pipeline: null!, bindGroup: null!, groups: [1, 1, 1] };
    parts.set(d, { label, code, regions, groups: [1, 1, 1] });
    return d;
  };
  const plan = (list: Dispatch[], maxParts = 4) =>
    fuseProgram(list, (d) => parts.get(d) ?? null, (ps) => ({
      label: ps.map((x) => x.label).join("+"),
      pipeline: null!,
      bindGroup: null!,
      groups: [1, 1, 1],
    }), {
      maxUniformBuffersPerShaderStage: 12,
      maxStorageBuffersPerShaderStage: 8,
      maxSampledTexturesPerShaderStage: 16,
      maxParts,
      lookback: 12,
      maxCodeBytes: 1 << 16,
    }).map((d) => d.label);
  // b reads only q, c writes r: all three independent of a (reads p, writes s).
  const a = k("a", B, [reg(p), reg(s)]);
  const b = k("b", B2, [reg(q), reg(t)]);
  const c = k("c", B, [reg(q), reg(r)]);
  assert.deepEqual(plan([a, b]), ["a+b"]);
  // Reads what a writes: stays after it.
  const readsS = k("readsS", B2, [reg(s), reg(t)]);
  assert.deepEqual(plan([a, readsS]), ["a", "readsS"]);
  // Writes what a reads (p) at a different range: no overlap, so it may join... unless a reads it
  // through a binding WebGPU cannot mix with a writable one in one dispatch.
  const writesP = k("writesP", B2, [reg(q), reg(p, 2048)]);
  assert.deepEqual(plan([a, writesP]), ["a", "writesP"], "storage read and read_write of one buffer");
  const writesS2 = k("writesS2", B2, [reg(q), reg(s, 2048)]);
  assert.deepEqual(plan([a, writesS2]), ["a+writesS2"], "two writable bindings of disjoint ranges");
  // Two copies of one kernel stay apart: their fused module would compile the same code twice.
  const twin = k("twin", B, [reg(q), reg(t)]);
  assert.deepEqual(plan([a, twin]), ["a", "twin"]);
  // A copy in between that reads what c would write keeps c below it; one that does not lets c pass.
  const copyR: Dispatch = {
    label: "copyR",
    copy: { from: r, fromOffset: 0, to: p, toOffset: 3072, size: 64 },
  };
  const copyT: Dispatch = {
    label: "copyT",
    copy: { from: q, fromOffset: 0, to: t, toOffset: 3072, size: 64 },
  };
  assert.deepEqual(plan([b, copyR, c]), ["b", "copyR", "c"]);
  assert.deepEqual(plan([b, copyT, c]), ["b+c", "copyT"]);
  // At most maxParts kernels a dispatch.
  assert.deepEqual(plan([a, b, c], 2), ["a+b", "c"]);
  for (const x of [p, q, r, s, t]) x.destroy();
});

Deno.test("co-dispatch: a net's training steps are bit-identical with and without it, in fewer dispatches", async () => {
  const gpu = await sharedGpu();
  const x = randomArray(2 * 4 * 6 * 6, 41), t = randomArray(2 * 8 * 6 * 6, 42);
  const conv = (name: string, bottom: string, kernel: number) =>
    new Convolution(name, {
      bottom,
      top: name,
      numOutput: 8,
      kernel,
      pad: kernel >> 1,
      weightFiller: { type: "gaussian", std: 0.3 },
      biasFiller: { type: "gaussian", std: 0.1 },
    });
  const run = async (coDispatch: boolean) => {
    const net = await Net.build(gpu, {
      inputs: { x: [2, 4, 6, 6], t: [2, 8, 6, 6] },
      layers: [
        conv("c1", "x", 3),
        new BatchNorm("bn1", { bottom: "c1", top: "b1", affine: true, relu: true }),
        conv("c2", "b1", 3),
        conv("skip", "x", 1),
        new Eltwise("sum", { bottoms: ["c2", "skip"], top: "sum" }),
        new BatchNorm("bn2", { bottom: "sum", top: "b2", affine: true, relu: true }),
        conv("c3", "b2", 1),
        new EuclideanLoss("loss", { pred: "c3", target: "t", top: "L" }),
      ],
    }, { solver: new RMSProp({ baseLr: 0.01 }), gradInputs: ["x"], coDispatch });
    net.setInput("x", x);
    net.setInput("t", t);
    for (let i = 0; i < 3; i++) net.step();
    const out = {
      loss: (await net.readScalars()).L,
      dx: await net.readDiff("x"),
      params: [] as Float32Array[],
    };
    for (const e of net.layout.entries) out.params.push(await net.readParam(e.key));
    const n = net.dispatchCount();
    net.destroy();
    return { out, n };
  };
  const plain = await run(false), co = await run(true);
  assert.ok(co.n < plain.n, `co-dispatch runs ${co.n} dispatches, the recorded program ${plain.n}`);
  assert.deepEqual(co.out.loss, plain.out.loss);
  assert.deepEqual(co.out.dx, plain.out.dx);
  co.out.params.forEach((v, i) => assert.deepEqual(v, plain.out.params[i], `parameter ${i}`));
});
