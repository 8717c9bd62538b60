/**
 * Direct convolution kernels for CPU adapters (llvmpipe/lavapipe), where one operand is read
 * from a uniform buffer.
 *
 * Why: a CPU adapter runs eight invocations per SIMD instruction and pays for every storage or
 * workgroup-memory load one lane at a time (on llvmpipe a loop iteration with one such load took
 * ~6x as long as one with an FMA alone, vec4 loads 4x that), while a uniform-buffer load at an
 * index that is the same for every lane compiles to one scalar load and a broadcast (about the
 * cost of the FMA). So each
 * lane loads one activation value per tap from storage and multiplies it by up to 32 weights (or
 * output gradients) read from a uniform buffer, accumulating 32 outputs in registers; there is
 * no workgroup memory and no barrier. On llvmpipe this runs 3x3 convolutions of 16-32 channels
 * ~2x faster than the tiled GEMM core (`deno task bench --only conv`, "smallConv"), which
 * stays the path on GPUs and for layers whose operand does not fit a uniform binding.
 *
 * | kernel | lanes | uniform operand | per lane |
 * |---|---|---|---|
 * | forward | output pixels | weights [K, C, kh, kw] | TM output channels |
 * | dgrad (stride 1) | input pixels | weights | TM input channels |
 * | wgrad | (channel, tap) pairs, plus one bias lane | dy of one image, KB channels | KB output channels |
 *
 * A uniform binding holds at most 64 KiB (16384 floats), so weights must fit whole, and the
 * weight gradient runs one dispatch per (image, block of KB output channels), each folding its
 * image into dw in image order (deterministic).
 * @module
 */
import type { KernelSource, Recorder, Region } from "./kernel.ts";
import { u32 } from "./kernel.ts";
import { type ConvGeometry, shapeLabel } from "./conv_geometry.ts";

/** Floats one uniform binding may hold (the WebGPU default limit of 64 KiB). */
export const UNIFORM_FLOATS = 16384;

/** Outputs a lane accumulates at most (registers: more spill and lose the gain). */
const MAX_TM = 32;

/** Invocations per workgroup: a few SIMD chunks, many workgroups for the cores to share. */
const DIRECT_WG = 64;

/** One kernel with its workgroup counts. */
interface DirectKernel {
  src: KernelSource;
  groups: [number, number, number];
}

/** Largest divisor of n that is at most `most`. */
function divisorAtMost(n: number, most: number): number {
  for (let d = Math.min(n, most); d > 1; d--) if (n % d === 0) return d;
  return 1;
}

/** The uniform binding of a region of `floats` floats: its size rounded up to whole vec4s. */
function uniformRegion(r: Region, floats: number): Region | null {
  const size = Math.ceil(floats / 4) * 16;
  if (size > UNIFORM_FLOATS * 4 || r.offset + size > r.buffer.size) return null;
  if (!(r.buffer.usage & GPUBufferUsage.UNIFORM)) return null;
  return { buffer: r.buffer, offset: r.offset, size };
}

/** WGSL declaring `name` as a uniform array of `floats` floats and a scalar reader `fnName(i)`. */
function uniformDecl(binding: number, name: string, floats: number, fnName: string): string {
  return `@group(0) @binding(${binding}) var<uniform> ${name}: array<vec4<f32>, ${Math.ceil(floats / 4)}>;
fn ${fnName}(i: u32) -> f32 { return ${name}[i >> 2u][i & 3u]; }`;
}

function padded(g: ConvGeometry): boolean {
  return g.ph > 0 || g.pw > 0 || (g.oh - 1) * g.sh + g.kh > g.h || (g.ow - 1) * g.sw + g.kw > g.w;
}

/**
 * Whether the direct kernels can run `g`: one group; for forward and dgrad, weights that fit one
 * uniform binding (and stride 1 for dgrad); for wgrad, per-image windows of dy that fit one and
 * start at 256-byte multiples. The record functions still decline regions whose buffer lacks
 * UNIFORM usage or room to round a binding up to whole vec4s.
 */
export function directFits(g: ConvGeometry, kind: "forward" | "dgrad" | "wgrad"): boolean {
  if (g.groups !== 1) return false;
  if (kind === "wgrad") {
    // Per-image windows of dy and x start at multiples of their sizes: keep those multiples of
    // 256 bytes, the largest offset alignment WebGPU allows an adapter to demand.
    // Fewer than 8 output channels per window leave too few multiply-adds per activation load.
    const kb = wgradBlock(g);
    return kb >= Math.min(g.k, 8) && (kb * g.oh * g.ow) % 64 === 0 && (g.c * g.h * g.w) % 64 === 0;
  }
  if (kind === "dgrad" && (g.sh !== 1 || g.sw !== 1)) return false;
  return g.k * g.c * g.kh * g.kw <= UNIFORM_FLOATS;
}

/** y (+)= conv(x, w) (+ bias). Bindings: x, w (uniform), [bias], y. */
export function directForwardKernel(
  g: ConvGeometry,
  opts: { bias?: boolean; accumulate?: boolean } = {},
): DirectKernel {
  const T = g.kh * g.kw, CT = g.c * T, OHW = g.oh * g.ow, P = g.n * OHW;
  const TM = divisorAtMost(g.k, MAX_TM);
  const acc = Array.from({ length: TM }, (_, j) => j);
  const check = padded(g);
  let taps = "";
  for (let ky = 0; ky < g.kh; ky++) {
    taps += `    let iy${ky} = oy * ${u32(g.sh)} + ${u32(ky)} - ${u32(g.ph)};\n`;
    for (let kx = 0; kx < g.kw; kx++) {
      const t = ky * g.kw + kx;
      const at = `xc + iy${ky} * ${u32(g.w)} + ox * ${u32(g.sw)} + ${u32(kx)} - ${u32(g.pw)}`;
      taps += check
        ? `    var v${t} = 0.0;
    if (iy${ky} < ${u32(g.h)} && ox * ${u32(g.sw)} + ${u32(kx)} - ${u32(g.pw)} < ${
          u32(g.w)
        }) { v${t} = x[${at}]; }\n`
        : `    let v${t} = x[${at}];\n`;
      taps += acc.map((j) => `    a${j} = fma(wt(e + ${u32(j * CT + t)}), v${t}, a${j});\n`).join("");
    }
  }
  const code = `@group(0) @binding(0) var<storage, read> x: array<f32>;
${uniformDecl(1, "w", g.k * CT, "wt")}
${opts.bias ? "@group(0) @binding(2) var<storage, read> bias: array<f32>;" : ""}
@group(0) @binding(${opts.bias ? 3 : 2}) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(${DIRECT_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let p = min(gid.x, ${u32(P - 1)});
  let m0 = wid.y * ${u32(TM)};
  let img = p / ${u32(OHW)};
  let oy = (p / ${u32(g.ow)}) % ${u32(g.oh)};
  let ox = p % ${u32(g.ow)};
${acc.map((j) => `  var a${j} = 0.0;`).join("\n")}
  for (var c = 0u; c < ${u32(g.c)}; c++) {
    let xc = (img * ${u32(g.c)} + c) * ${u32(g.h * g.w)};
    let e = m0 * ${u32(CT)} + c * ${u32(T)};
${taps}  }
  if (gid.x >= ${u32(P)}) { return; }
  let yo = (img * ${u32(g.k)} + m0) * ${u32(OHW)} + oy * ${u32(g.ow)} + ox;
${
    acc.map((j) => {
      const v = opts.bias ? `a${j} + bias[m0 + ${u32(j)}]` : `a${j}`;
      const o = `y[yo + ${u32(j * OHW)}]`;
      return `  ${o} = ${opts.accumulate ? `${o} + ` : ""}${v};`;
    }).join("\n")
  }
}`;
  const label = `conv_fwd_direct ${shapeLabel(g)}${opts.bias ? " +bias" : ""}${opts.accumulate ? " +=" : ""}`;
  return { src: { label, code }, groups: [Math.ceil(P / DIRECT_WG), g.k / TM, 1] };
}

/**
 * dx (+)= conv_transpose(dy, w) (+ bias per input channel) for stride 1. Bindings: dy, w
 * (uniform), [bias], dx.
 */
export function directDgradKernel(
  g: ConvGeometry,
  opts: { bias?: boolean; accumulate?: boolean } = {},
): DirectKernel {
  if (g.sh !== 1 || g.sw !== 1) throw new RangeError(`direct dgrad needs stride 1, got ${g.sh}x${g.sw}`);
  const T = g.kh * g.kw, CT = g.c * T, HW = g.h * g.w, OHW = g.oh * g.ow, P = g.n * HW;
  const TM = divisorAtMost(g.c, MAX_TM);
  const acc = Array.from({ length: TM }, (_, j) => j);
  const check = padded(g) || g.oh !== g.h || g.ow !== g.w;
  let taps = "";
  for (let ky = 0; ky < g.kh; ky++) {
    taps += `    let oy${ky} = iy + ${u32(g.ph)} - ${u32(ky)};\n`;
    for (let kx = 0; kx < g.kw; kx++) {
      const t = ky * g.kw + kx;
      const ox = `ix + ${u32(g.pw)} - ${u32(kx)}`;
      const at = `dk + oy${ky} * ${u32(g.ow)} + ${ox}`;
      taps += check
        ? `    var v${t} = 0.0;
    if (oy${ky} < ${u32(g.oh)} && ${ox} < ${u32(g.ow)}) { v${t} = dy[${at}]; }\n`
        : `    let v${t} = dy[${at}];\n`;
      taps += acc.map((j) => `    a${j} = fma(wt(e + ${u32(j * T + t)}), v${t}, a${j});\n`).join("");
    }
  }
  const code = `@group(0) @binding(0) var<storage, read> dy: array<f32>;
${uniformDecl(1, "w", g.k * CT, "wt")}
${opts.bias ? "@group(0) @binding(2) var<storage, read> bias: array<f32>;" : ""}
@group(0) @binding(${opts.bias ? 3 : 2}) var<storage, read_write> dx: array<f32>;
@compute @workgroup_size(${DIRECT_WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let q = min(gid.x, ${u32(P - 1)});
  let c0 = wid.y * ${u32(TM)};
  let img = q / ${u32(HW)};
  let iy = (q / ${u32(g.w)}) % ${u32(g.h)};
  let ix = q % ${u32(g.w)};
${acc.map((j) => `  var a${j} = 0.0;`).join("\n")}
  for (var k = 0u; k < ${u32(g.k)}; k++) {
    let dk = (img * ${u32(g.k)} + k) * ${u32(OHW)};
    let e = (k * ${u32(g.c)} + c0) * ${u32(T)};
${taps}  }
  if (gid.x >= ${u32(P)}) { return; }
  let xo = (img * ${u32(g.c)} + c0) * ${u32(HW)} + iy * ${u32(g.w)} + ix;
${
    acc.map((j) => {
      const v = opts.bias ? `a${j} + bias[c0 + ${u32(j)}]` : `a${j}`;
      const o = `dx[xo + ${u32(j * HW)}]`;
      return `  ${o} = ${opts.accumulate ? `${o} + ` : ""}${v};`;
    }).join("\n")
  }
}`;
  const label = `conv_dgrad_direct ${shapeLabel(g)}${opts.bias ? " +bias" : ""}${
    opts.accumulate ? " +=" : ""
  }`;
  return { src: { label, code }, groups: [Math.ceil(P / DIRECT_WG), g.c / TM, 1] };
}

/**
 * Output channels per weight-gradient dispatch: the largest divisor of K, at most 32, whose dy
 * window (KB channels of one image) fits a uniform binding; 0 when none does.
 */
export function wgradBlock(g: ConvGeometry): number {
  const OHW = g.oh * g.ow;
  for (let kb = Math.min(g.k, MAX_TM); kb >= 1; kb--) {
    if (g.k % kb === 0 && kb * OHW <= UNIFORM_FLOATS) return kb;
  }
  return 0;
}

/** Workgroup size of the weight gradient: few lanes (C*kh*kw + 1), so small groups share the cores. */
const WGRAD_WG = 32;

/**
 * The part of dw (and db) that one image's output channels k0 .. k0+KB contribute; the first
 * image overwrites, later ones add. Bindings: dy window (uniform: dy[img, k0 .. k0+KB]), x window
 * (x[img]), dw, [db].
 */
export function directWgradKernel(
  g: ConvGeometry,
  opts: { k0: number; first: boolean; bias?: boolean },
): DirectKernel {
  const KB = wgradBlock(g);
  if (!KB || g.groups !== 1) throw new RangeError(`direct wgrad cannot run ${shapeLabel(g)}`);
  const T = g.kh * g.kw, CT = g.c * T, OHW = g.oh * g.ow;
  const lanes = CT + (opts.bias ? 1 : 0);
  const acc = Array.from({ length: KB }, (_, j) => j);
  const check = padded(g);
  const xAt = `xc + iy * ${u32(g.w)} + ix`;
  const load = check
    ? `var v = 0.0;
      if (iy < ${u32(g.h)} && ix < ${u32(g.w)}) { v = x[${xAt}]; }`
    : `let v = x[${xAt}];`;
  const store = (j: number, o: string) => `${o} = ${opts.first ? "" : `${o} + `}a${j};`;
  const code = `${uniformDecl(0, "dyw", KB * OHW, "dyv")}
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> dw: array<f32>;
${opts.bias ? "@group(0) @binding(3) var<storage, read_write> db: array<f32>;" : ""}
@compute @workgroup_size(${WGRAD_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let l = min(gid.x, ${u32(lanes - 1)});
  let bias_lane = l >= ${u32(CT)};
  let ch = min(l, ${u32(CT - 1)}) / ${u32(T)};
  let t = min(l, ${u32(CT - 1)}) % ${u32(T)};
  let ky = t / ${u32(g.kw)};
  let kx = t % ${u32(g.kw)};
  let xc = ch * ${u32(g.h * g.w)};
${acc.map((j) => `  var a${j} = 0.0;`).join("\n")}
  for (var oy = 0u; oy < ${u32(g.oh)}; oy++) {
    let iy = oy * ${u32(g.sh)} + ky - ${u32(g.ph)};
    for (var ox = 0u; ox < ${u32(g.ow)}; ox++) {
      let ix = ox * ${u32(g.sw)} + kx - ${u32(g.pw)};
      ${load}
      let u = select(v, 1.0, bias_lane);
      let p = oy * ${u32(g.ow)} + ox;
${acc.map((j) => `      a${j} = fma(dyv(p + ${u32(j * OHW)}), u, a${j});`).join("\n")}
    }
  }
  if (gid.x >= ${u32(lanes)}) { return; }
  if (bias_lane) {
${opts.bias ? acc.map((j) => `    ${store(j, `db[${u32(opts.k0 + j)}]`)}`).join("\n") : ""}
    return;
  }
${acc.map((j) => `  ${store(j, `dw[${u32((opts.k0 + j) * CT)} + l]`)}`).join("\n")}
}`;
  const label = `conv_wgrad_direct ${shapeLabel(g)}${opts.bias ? " +bias" : ""} k${opts.k0}+${KB}${
    opts.first ? "" : " +="
  }`;
  return { src: { label, code }, groups: [Math.ceil(lanes / WGRAD_WG), 1, 1] };
}

/** Records the direct forward; false (nothing recorded) when the weights cannot be bound as uniform. */
export function recordDirectForward(
  rec: Recorder,
  io: { x: Region; w: Region; bias?: Region; y: Region; geometry: ConvGeometry },
  opts: { accumulate?: boolean } = {},
): boolean {
  const g = io.geometry;
  const w = directFits(g, "forward") ? uniformRegion(io.w, g.k * g.c * g.kh * g.kw) : null;
  if (!w) return false;
  const k = directForwardKernel(g, { bias: !!io.bias, accumulate: opts.accumulate });
  rec.dispatch(k.src, [io.x, w, ...(io.bias ? [io.bias] : []), io.y], k.groups);
  return true;
}

/** Records the direct input gradient; false (nothing recorded) when it cannot run. */
export function recordDirectDgrad(
  rec: Recorder,
  io: { dy: Region; w: Region; bias?: Region; dx: Region; geometry: ConvGeometry },
  opts: { accumulate?: boolean } = {},
): boolean {
  const g = io.geometry;
  const w = directFits(g, "dgrad") ? uniformRegion(io.w, g.k * g.c * g.kh * g.kw) : null;
  if (!w) return false;
  const k = directDgradKernel(g, { bias: !!io.bias, accumulate: opts.accumulate });
  rec.dispatch(k.src, [io.dy, w, ...(io.bias ? [io.bias] : []), io.dx], k.groups);
  return true;
}

/**
 * Records the direct weight (and bias) gradient: one dispatch per image and block of output
 * channels, each binding that block of dy as a uniform buffer. False (nothing recorded) when a
 * window cannot be bound (alignment, usage or size).
 */
export function recordDirectWgrad(
  rec: Recorder,
  io: { dy: Region; x: Region; dw: Region; db?: Region; geometry: ConvGeometry },
): boolean {
  const g = io.geometry;
  if (!directFits(g, "wgrad")) return false;
  const KB = wgradBlock(g), OHW = g.oh * g.ow;
  const limits = rec.kernels.gpu.device.limits;
  const uAlign = limits.minUniformBufferOffsetAlignment, sAlign = limits.minStorageBufferOffsetAlignment;
  const CHW = g.c * g.h * g.w;
  const plan: { dy: Region; x: Region }[][] = [];
  for (let img = 0; img < g.n; img++) {
    const xOff = io.x.offset + img * CHW * 4;
    if (xOff % sAlign !== 0) return false;
    const x = { buffer: io.x.buffer, offset: xOff, size: CHW * 4 };
    const row: { dy: Region; x: Region }[] = [];
    for (let k0 = 0; k0 < g.k; k0 += KB) {
      const off = io.dy.offset + (img * g.k + k0) * OHW * 4;
      const dy = off % uAlign === 0 ? uniformRegion({ ...io.dy, offset: off }, KB * OHW) : null;
      if (!dy) return false;
      row.push({ dy, x });
    }
    plan.push(row);
  }
  plan.forEach((row, img) =>
    row.forEach((win, b) => {
      const k = directWgradKernel(g, { k0: b * KB, first: img === 0, bias: !!io.db });
      rec.dispatch(k.src, [win.dy, win.x, io.dw, ...(io.db ? [io.db] : [])], k.groups);
    })
  );
  return true;
}
