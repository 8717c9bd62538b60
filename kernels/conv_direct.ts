/**
 * Register-blocked direct convolution kernels for CPU adapters (llvmpipe/lavapipe).
 *
 * How a CPU adapter runs WGSL decides their shape. Each core runs whole workgroups, eight
 * invocations per 256-bit SIMD instruction. Arithmetic on values already in registers (or
 * spilled to the stack) is cheap: an 8-lane FMA costs about a cycle. Every buffer access is
 * not: measured on llvmpipe, a storage or workgroup-memory load costs ~25-50 cycles per 8 lanes
 * (each lane's address is fetched one lane at a time, with bounds and mask checks), a
 * uniform-buffer load ~7, a vec4 storage load about the same as a scalar one, and a barrier
 * switches coroutines. So the kernels here load every value once into a register and reuse it
 * as often as the problem allows, and never use workgroup memory or barriers:
 *
 * - Forward and input gradient (`directSweepKernel`): each invocation computes TM = 16 output
 *   channels x TR = 2 rows of TN = 8 consecutive output columns (four rows of 4 on narrow
 *   outputs). Per input channel (a loop) it loads the TR x (TN + kw - 1) input values of each
 *   kernel row once, then, output channel by output channel, each of the kh x kw weights once
 *   (from a uniform buffer, lane-shared) and its TR x TN FMAs, so every (spilled) accumulator
 *   takes its kh x kw FMAs in a row; 1x1 inputs come in as vec4. Kernels larger than 3x3 loop
 *   over kernel rows instead, which keeps their code and LLVM's compile time small. The input
 *   gradient of a stride-1 convolution is the same sweep over dy with flipped taps, the channel
 *   roles swapped and the complementary padding.
 * - Weight gradient (`directWgradKernel`): each invocation owns TC input channels (two for 3x3
 *   kernels, a few for 1x1, one kernel row for RGB inputs) and TM output channels, all taps of
 *   each plus their bias sums, and walks the output pixels of its images. With vec4 dy it takes
 *   four output columns at a time, in one flat loop over (image, row, quad): TM vec4 loads of dy
 *   (lane-shared), the x values the four columns read, then per accumulator its four FMAs in a
 *   row (TM x TC x kh x kw x 4 FMAs); otherwise one column at a time with the input window
 *   sliding along the row. Images are split over workgroups only to reach two; the partial sums
 *   are folded by a second dispatch in a fixed order.
 *
 * - Inputs through uniform windows or packed textures (windows.ts: a storage load takes a
 *   lane-by-lane path in llvmpipe, several times the cost of either). Where the whole batch of an
 *   operand read in the inner loop (the sweep's input, the weight gradient's dy and x) fits 64 KiB,
 *   the kernel reads it through one window. Otherwise, on a CPU adapter, it is packed into a
 *   texture first and one dispatch walks the batch: a dispatch per group of images that fits a
 *   window (or per image and block of output channels of dy), each with llvmpipe's hand-over to
 *   its workers and the weight gradient's partial sums to fold, ran slower. Without packing
 *   (other adapters), the groups and blocks run one dispatch each.
 *
 * - Packed rows come in as whole texels: where the operand's rows are whole texels, a sweep loads
 *   the texels holding a row's padded columns (4 for 10 columns of a 3x3 kernel on 8 outputs)
 *   and each distinct input row once across the kernel rows; the weight gradient likewise its
 *   x columns (3 texels for 6 columns).
 *
 * Weights are bound as uniform buffers, which hold 64 KiB: a forward whose weights exceed that
 * runs one dispatch per block of output channels, so any layer size fits. An input gradient whose
 * weights exceed it runs the same way from the weights transposed into the workspace (one
 * dispatch per block of dx's channels), or without a workspace one per block of reduction
 * channels, each adding into dx. Where not even a register block's 16 output channels fit one
 * window, the forward's block reads its weights from two to four windows. GPUs keep the tiled
 * GEMM core.
 * @module
 */
import type { KernelSource, Recorder, Region } from "./kernel.ts";
import { elementwise, u32 } from "./kernel.ts";
import { type ConvGeometry, isPointwise, shapeLabel } from "./conv_geometry.ts";
import {
  copiesForReading,
  packable,
  packImages,
  textureDecl,
  UNIFORM_FLOATS,
  uniformDecl,
  uniformWindow,
} from "./windows.ts";

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

/**
 * One sweep: out[n, o, oy, ox] (= or +=) [bias[o]] + sum over reduction channels r and taps
 * (ky, kx) of W(o, r, ky, kx) * in[n, r, oy*sh + ky - ph, ox*sw + kx - pw] (zero outside).
 * Weights come from a uniform window: W(o, r, ky, kx) = w[o * os + r * rs + tap(ky, kx)] with o
 * and r relative to the window.
 */
export interface SweepShape {
  n: number;
  /** Input channels of the tensor read (`in`), its height and width. */
  cin: number;
  hin: number;
  win: number;
  /** Output channels of the tensor written (`out`), its height and width. */
  cout: number;
  hout: number;
  wout: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  /** Output channels this dispatch writes: [o0, o0 + oCount). */
  o0: number;
  oCount: number;
  /** Reduction channels this dispatch sums: [r0, r0 + rCount). */
  r0: number;
  rCount: number;
  /** Weight strides of o and r within the window, and whether taps are flipped (input gradient). */
  os: number;
  rs: number;
  flip: boolean;
  /**
   * Uniform windows the weights come in (default 1). With more, the sweep is one register block
   * (oCount = TM) and window b holds its output channels [b * oCount / wSplit, (b + 1) * oCount / wSplit).
   */
  wSplit?: number;
}

/**
 * Register block of a sweep: TM output channels x TR output rows x TN output columns per
 * invocation (TR x TN = 16 where the output allows, so each weight feeds 16 outputs), and the
 * workgroup size: the invocations rounded up to a SIMD chunk of 8, at most SWEEP_WG.
 */
export function sweepBlock(
  s: Pick<SweepShape, "n" | "oCount" | "hout" | "wout" | "kh" | "kw">,
): { tm: number; tr: number; tn: number; lanes: number; wg: number } {
  // 16 channels: 32 ran 15-20% faster on 1x1 kernels with 64-256 outputs but took LLVM ~4x as
  // long to compile (2.4 s a kernel), and on 3x3 kernels it spills and runs slower.
  const tm = divisorAtMost(s.oCount, 16);
  const tn = divisorAtMost(s.wout, 8);
  // 16 outputs per channel (two rows of 8, or four of 4): every weight, a lane-shared load that
  // costs as much as several FMAs, then feeds 16 FMAs instead of 8. The accumulators spill either
  // way; measured on 3x3 layers of 4-32 pixel maps, forward and input gradient ran 15-25% faster
  // than with one row of 8 (32 outputs gained little more and halves the lanes again).
  const tr = divisorAtMost(s.hout, Math.max(1, Math.floor(16 / tn)));
  const lanes = s.n * (s.hout / tr) * (s.wout / tn);
  // At least two workgroups where the lanes allow, so that both cores of a 2-core CPU take part:
  // an 8x8 3x3 16->16 layer (32 lanes, one block of channels) ran ~12% faster per call as two
  // workgroups of 16 than as one of 32. Each lane's sums are its own, so results do not change.
  let wg = fitWorkgroup(lanes);
  while (wg > 8 && Math.ceil(lanes / wg) * (s.oCount / tm) < 2) wg /= 2;
  return { tm, tr, tn, lanes, wg };
}

/** Invocations per workgroup of the direct kernels: a few SIMD chunks each, many workgroups to share. */
const SWEEP_WG = 32;

/** A workgroup size for `lanes` invocations: a power of two from 8 (one SIMD chunk) to SWEEP_WG. */
function fitWorkgroup(lanes: number): number {
  return Math.min(SWEEP_WG, Math.max(8, 2 ** Math.ceil(Math.log2(lanes))));
}

/** The sweep kernel. Bindings: in, w (uniform window), [bias], out. */
export function directSweepKernel(
  s: SweepShape,
  opts: {
    bias?: boolean;
    accumulate?: boolean;
    label: string;
    vec4?: boolean;
    uniformX?: boolean;
    /** The input packed into a texture (all images, see windows.ts packImages). */
    textureX?: boolean;
    /** Store (and, accumulating, load) the output four columns at a time ({@linkcode sweepOutVec4}). */
    vec4Out?: boolean;
  },
): DirectKernel {
  const { tm: TM, tr: TR, tn: TN, lanes, wg: WG } = sweepBlock(s);
  if (opts.vec4Out && !sweepOutVec4(s)) {
    throw new RangeError(`sweep ${opts.label}: vec4 stores need rows and column blocks of whole vec4s`);
  }
  if (opts.vec4 && !sweepVec4(s)) {
    throw new RangeError(`sweep ${opts.label}: vec4 loads need an unpadded 1x1 kernel`);
  }
  const OXB = s.wout / TN, OYB = s.hout / TR;
  const R = (TN - 1) * s.sw + s.kw; // input columns a block reads per input row
  const HW = s.hin * s.win;
  const padY = s.ph > 0 || (s.hout - 1) * s.sh + s.kh - s.ph > s.hin;
  const padX = s.pw > 0 || (s.wout - 1) * s.sw + s.kw - s.pw > s.win;
  const J = Array.from({ length: TM }, (_, j) => j);
  const Tr = Array.from({ length: TR }, (_, r) => r), Tn = Array.from({ length: TN }, (_, t) => t);
  const acc = (j: number, r: number, t: number) => `a${j}_${r}_${t}`;
  // Per-invocation column geometry, computed once outside the loops: for each input column u of
  // the block, its offset in a row (clamped into it) and whether it lies inside the image.
  const pre: string[] = [];
  for (let u = 0; u < R; u++) {
    pre.push(`  let ix${u} = ox0 * ${u32(s.sw)} + ${u32(u)} - ${u32(s.pw)};`);
    if (padX) {
      pre.push(`  let okx${u} = ix${u} < ${u32(s.win)};`);
      pre.push(`  let cx${u} = select(0u, ix${u}, okx${u});`);
    } else pre.push(`  let cx${u} = ix${u};`);
  }
  // Padded rows read from a packed texture come in as whole texels: the R columns of a row lie in
  // K texels from column ox0 - P4 (the padding rounded up to a texel), e.g. 4 texel loads instead of
  // 10 for a 3x3 kernel on 8 columns. A texel load costs about what a scalar one does (windows.ts).
  const texRows = !!opts.textureX && !opts.vec4 && s.sw === 1 && s.win % 4 === 0 && TN % 4 === 0;
  const P4 = Math.ceil(s.pw / 4) * 4, K = Math.ceil((P4 - s.pw + R) / 4);
  // Unrolled kernel rows share input rows (row r of kernel row ky is input row r * sh + ky): each
  // distinct input row d is loaded once, as z{d}_{u}, and the kernel rows name it.
  const inputRow = (r: number, ky: string) => texRows && /^\d+u$/.test(ky) ? r * s.sh + parseInt(ky) : -1;
  const vn = (r: number, u: number, ky: string, sfx: string) => {
    const d = inputRow(r, ky);
    return d >= 0 ? `z${d}_${u}` : `v${r}_${u}${sfx}`;
  };
  const loaded = new Set<number>();
  // The TR x R input values of kernel row `ky` (a WGSL expression), named v{r}_{u}{sfx} (or z{d}_{u}).
  const rowLoads = (ky: string, sfx: string, chan = 0): string => {
    let c = "";
    for (const r of Tr) {
      const d = inputRow(r, ky);
      if (d >= 0) {
        if (loaded.has(d)) continue;
        loaded.add(d);
      }
      const name = (u: number) => vn(r, u, ky, sfx);
      const iy = `iy${r}${sfx}`, oky = `oky${r}${sfx}`, row = `row${r}${sfx}`;
      c += `      let ${iy} = oy0 * ${u32(s.sh)} + ${u32(r * s.sh)} + ${ky} - ${u32(s.ph)};\n`;
      if (padY) c += `      let ${oky} = ${iy} < ${u32(s.hin)};\n`;
      c += `      let ${row} = xc${chan ? ` + ${u32(chan * HW)}` : ""} + ${
        padY ? `select(0u, ${iy}, ${oky})` : iy
      } * ${u32(s.win)};\n`;
      if (opts.vec4) {
        // Unpadded stride-1 1x1 kernel: the row segment is TN contiguous, 16-byte aligned values.
        for (let k = 0; k < R / 4; k++) {
          const t = `(${row} + cx0) / 4u + ${u32(k)}`;
          c += `      let q${r}_${k}${sfx} = ${
            opts.textureX ? `xAt4(${t})` : `${opts.uniformX ? "xu" : "x4"}[${t}]`
          };\n`;
        }
        for (let u = 0; u < R; u++) c += `      let ${name(u)} = q${r}_${u >> 2}${sfx}[${u & 3}];\n`;
        continue;
      }
      if (texRows) {
        for (let k = 0; k < K; k++) {
          // The first texel of the tensor's first row would lie before it: clamped (its columns are padding).
          const t = P4 > 0
            ? `(max(${row} + ox0 + ${u32(4 * k)}, ${u32(P4)}) - ${u32(P4)}) >> 2u`
            : `(${row} + ox0) / 4u + ${u32(k)}`;
          c += `      let q${r}_${k}${sfx} = xAt4(${t});\n`;
        }
      }
      for (let u = 0; u < R; u++) {
        const ok = [padY ? oky : "", padX ? `okx${u}` : ""].filter(Boolean);
        const off = u - s.pw + P4;
        const load = texRows
          ? `q${r}_${off >> 2}${sfx}[${off & 3}]`
          : opts.uniformX || opts.textureX
          ? `xAt(${row} + cx${u})`
          : `x[${row} + cx${u}]`;
        c += ok.length
          ? `      let ${name(u)} = select(0.0, ${load}, ${ok.join(" && ")});\n`
          : `      let ${name(u)} = ${load};\n`;
      }
    }
    return c;
  };
  // Weight of output j at tap (ky, kx): row-major, or flipped for the input gradient; from the
  // window holding output j.
  const split = s.wSplit ?? 1, perWindow = TM / split;
  if (split > 1 && (s.oCount !== TM || TM % split !== 0)) {
    throw new RangeError(
      `sweep ${opts.label}: ${split} weight windows need one register block of whole windows`,
    );
  }
  const wt = (j: number) => split > 1 ? `wt${Math.floor(j / perWindow)}` : "wt";
  const weight = (j: number, ky: string, kx: number, chan = 0) =>
    s.flip
      ? `${wt(j)}(wr${j} + ${u32(chan * s.rs + s.kh * s.kw - 1 - kx)} - ${ky} * ${u32(s.kw)})`
      : `${wt(j)}(wr${j}${chan ? ` + ${u32(chan * s.rs)}` : ""} + ${ky} * ${u32(s.kw)} + ${u32(kx)})`;
  // The FMAs of output j over the given kernel rows: one lane-shared weight per tap, each feeding
  // TR x TN FMAs.
  const fmas = (j: number, rows: readonly (readonly [string, string, number?])[]): string => {
    let c = "";
    for (const [ky, sfx, chan] of rows) {
      for (let kx = 0; kx < s.kw; kx++) {
        c += `        let w${j}_${kx}${sfx} = ${weight(j, ky, kx, chan ?? 0)};\n`;
        for (const r of Tr) {
          for (const t of Tn) {
            c += `        ${acc(j, r, t)} = fma(w${j}_${kx}${sfx}, ${vn(r, t * s.sw + kx, ky, sfx)}, ${
              acc(j, r, t)
            });\n`;
          }
        }
      }
    }
    return `      {\n${c}      }\n`;
  };
  // Per reduction channel (a loop): the input rows, then the FMAs grouped by output channel, so
  // that each accumulator takes all of its taps' FMAs in a row. With the TM x TR x TN accumulators
  // spilled (they are), an accumulator loaded once for kh x kw FMAs instead of once per FMA ran
  // the tiny preset's 8x8 3x3 32->32 forward in 0.73x the time of a loop over kernel rows with the
  // output channels inside (llvmpipe, 2026-12-07). Kernels up to 3x3 unroll their rows; larger
  // ones (a 7x7 stem) loop over them, which keeps the code, and LLVM's compile time, small.
  let body: string;
  // A 1x1 kernel has one tap, so its accumulators took one FMA per visit: with vec4 loads, two
  // reduction channels per iteration give each accumulator two FMAs in a row (the same order of
  // sums). Measured on whole layers of 8 images (2026-12-08, A/B in one process): forward 64 -> 64
  // at 8x8 1.14-1.24x, 96 -> 96 at 16x16 1.13-1.20x and at 32x32 1.04-1.23x, input gradient 96 ->
  // 96 at 32x32 1.20-1.27x, 16 -> 32 at 16x16 1.14x; four channels ran slower than two.
  const RU = opts.vec4 && s.rCount % 2 === 0 ? 2 : 1;
  if (RU > 1) {
    const rows = Array.from({ length: RU }, (_, c): [string, string, number] => ["0u", `_c${c}`, c]);
    body = rows.map(([ky, sfx, c]) => rowLoads(ky, sfx, c)).join("") + J.map((j) => fmas(j, rows)).join("");
  } else if (s.kh * s.kw <= 9) {
    const rows = Array.from({ length: s.kh }, (_, ky): [string, string] => [u32(ky), `_k${ky}`]);
    body = rows.map(([ky, sfx]) => rowLoads(ky, sfx)).join("") + J.map((j) => fmas(j, rows)).join("");
  } else {
    body = `    for (var ky = 0u; ky < ${u32(s.kh)}; ky++) {\n${rowLoads("ky", "")}${
      J.map((j) => fmas(j, [["ky", ""]])).join("")
    }    }\n`;
  }
  const wFloats = weightWindowFloats(s);
  // Each output value is out (+ its old value) = acc (+ bias), as scalars or four columns at once;
  // on llvmpipe a vec4 store costs ~2.5x less per value than four scalar ones.
  const stores = opts.vec4Out
    ? J.flatMap((j) =>
      Tr.flatMap((r) =>
        Array.from({ length: TN / 4 }, (_, k) => {
          const o = `out4[ob / 4u + ${u32((j * s.hout * s.wout + r * s.wout) / 4 + k)}]`;
          const a = `vec4<f32>(${[0, 1, 2, 3].map((u) => acc(j, r, 4 * k + u)).join(", ")})`;
          const v = opts.bias ? `${a} + bias[oc + ${u32(j)}]` : a;
          return `  ${o} = ${opts.accumulate ? `${o} + ` : ""}${v};`;
        })
      )
    )
    : J.flatMap((j) =>
      Tr.flatMap((r) =>
        Tn.map((t) => {
          const o = `out[ob + ${u32(j * s.hout * s.wout + r * s.wout + t)}]`;
          const v = opts.bias ? `${acc(j, r, t)} + bias[oc + ${u32(j)}]` : acc(j, r, t);
          return `  ${o} = ${opts.accumulate ? `${o} + ` : ""}${v};`;
        })
      )
    );
  const code = `${
    opts.uniformX
      ? uniformDecl(0, "xu", s.n * s.cin * HW, "xAt")
      : opts.textureX
      ? textureDecl(0, "xt", "xAt")
      : opts.vec4
      ? "@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;"
      : "@group(0) @binding(0) var<storage, read> x: array<f32>;"
  }
${
    split > 1
      ? Array.from({ length: split }, (_, b) => uniformDecl(1 + b, `w${b}`, wFloats, `wt${b}`)).join("\n")
      : uniformDecl(1, "w", wFloats, "wt")
  }
${opts.bias ? `@group(0) @binding(${1 + split}) var<storage, read> bias: array<f32>;` : ""}
@group(0) @binding(${opts.bias ? 2 + split : 1 + split}) var<storage, read_write> ${
    opts.vec4Out ? "out4: array<vec4<f32>>" : "out: array<f32>"
  };
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let q = min(gid.x, ${u32(lanes - 1)});
  let ox0 = (q % ${u32(OXB)}) * ${u32(TN)};
  let oy0 = ((q / ${u32(OXB)}) % ${u32(OYB)}) * ${u32(TR)};
  let img = q / ${u32(OXB * OYB)};
  let ol = wid.y * ${u32(TM)};
${
    J.map((j) =>
      split > 1
        ? `  let wb${j} = ${u32((j % perWindow) * s.os)};`
        : `  let wb${j} = (ol + ${u32(j)}) * ${u32(s.os)};`
    ).join("\n")
  }
${pre.join("\n")}
${J.flatMap((j) => Tr.flatMap((r) => Tn.map((t) => `  var ${acc(j, r, t)} = 0.0;`))).join("\n")}
  for (var r = 0u; r < ${u32(s.rCount)}; ${RU > 1 ? `r += ${u32(RU)}` : "r++"}) {
    let xc = (img * ${u32(s.cin)} + ${u32(s.r0)} + r) * ${u32(HW)};
${J.map((j) => `    let wr${j} = wb${j} + r * ${u32(s.rs)};`).join("\n")}
${body}  }
  if (gid.x >= ${u32(lanes)}) { return; }
  let oc = ${u32(s.o0)} + ol;
  let ob = ((img * ${u32(s.cout)} + oc) * ${u32(s.hout)} + oy0) * ${u32(s.wout)} + ox0;
${stores.join("\n")}
}`;
  return {
    src: {
      label: `${opts.label} tm${TM}${split > 1 ? `/${split}w` : ""} ${TR > 1 ? `${TR}x` : ""}tn${TN}${
        RU > 1 ? ` r${RU}` : ""
      }${opts.vec4 ? " v4" : ""}${opts.vec4Out ? " o4" : ""}${
        opts.uniformX ? ` ux${s.n}` : texRows ? " txr" : opts.textureX ? " tx" : ""
      }`,
      code,
    },
    groups: [Math.ceil(lanes / WG), s.oCount / TM, 1],
  };
}

/** Whether a sweep can read its input as vec4: an unpadded stride-1 1x1 kernel on rows of whole vec4s. */
function sweepVec4(s: SweepShape): boolean {
  const { tn } = sweepBlock(s);
  return s.kh === 1 && s.kw === 1 && s.sh === 1 && s.sw === 1 && s.ph === 0 && s.pw === 0 && tn % 4 === 0 &&
    s.win % 4 === 0;
}

/** Whether a sweep's stores can be vec4: rows and each invocation's run of TN columns are whole vec4s. */
function sweepOutVec4(s: SweepShape): boolean {
  return sweepBlock(s).tn % 4 === 0 && s.wout % 4 === 0;
}

/** True when a region can be bound as an array of vec4 (16-byte offset and size). */
function vec4Region(r: Region): boolean {
  return r.offset % 16 === 0 && r.size % 16 === 0;
}

/** Floats of the weight window a sweep reads. */
function weightWindowFloats(s: SweepShape): number {
  return (s.oCount / (s.wSplit ?? 1) - 1) * s.os + (s.rCount - 1) * s.rs + s.kh * s.kw;
}

/** The tensor sizes and geometry of a sweep that runs the forward convolution `g`. */
function sweepGeometry(g: ConvGeometry): Pick<
  SweepShape,
  "n" | "cin" | "hin" | "win" | "cout" | "hout" | "wout" | "kh" | "kw" | "sh" | "sw" | "ph" | "pw"
> {
  return {
    n: g.n,
    cin: g.c,
    hin: g.h,
    win: g.w,
    cout: g.k,
    hout: g.oh,
    wout: g.ow,
    kh: g.kh,
    kw: g.kw,
    sh: g.sh,
    sw: g.sw,
    ph: g.ph,
    pw: g.pw,
  };
}

/**
 * The input gradient of a stride-1 convolution as a forward convolution over dy: dy's k channels
 * in, dx's c channels out, the complementary padding (its taps read flipped from the weights
 * transposed to [c][k][taps]).
 */
function transposedDgradGeometry(g: ConvGeometry): ConvGeometry {
  return {
    n: g.n,
    c: g.k,
    h: g.oh,
    w: g.ow,
    k: g.c,
    kh: g.kh,
    kw: g.kw,
    sh: 1,
    sw: 1,
    ph: g.kh - 1 - g.ph,
    pw: g.kw - 1 - g.pw,
    groups: 1,
    oh: g.h,
    ow: g.w,
  };
}

/** The sweeps of a forward convolution: one per block of output channels whose weights fit a uniform window. */
export function forwardSweeps(g: ConvGeometry, align = 256): SweepShape[] {
  const CT = g.c * g.kh * g.kw;
  const per = Math.floor(UNIFORM_FLOATS / CT);
  if (per < 1) return [];
  const want = sweepBlock({ n: g.n, oCount: g.k, hout: g.oh, wout: g.ow, kh: g.kh, kw: g.kw }).tm;
  // Where a window holds fewer than a register block's channels (3x3 kernels on 114 or more
  // input channels), the block reads its weights from two to four windows: every input value
  // loaded then feeds the whole block. A 3x3 128 -> 128 forward at 64x64 with one window ran
  // blocks of 8 channels.
  let split = 1;
  if (per < want) {
    split = [2, 3, 4].find((b) => want % b === 0 && want / b <= per && ((want / b) * CT * 4) % align === 0) ??
      1;
  }
  // Otherwise the register block, shrunk when even 16 output channels' weights overflow a window.
  const tm = split > 1 ? want : Math.min(want, divisorAtMost(g.k, per));
  // Blocks of whole TM-channel register blocks whose windows start at aligned offsets.
  let block = g.k;
  if (split > 1) block = tm;
  else if (per < g.k) {
    block = Math.floor(per / tm) * tm;
    while (block > 0 && (block * CT * 4) % align !== 0) block -= tm;
  }
  if (block < 1) return [];
  const out: SweepShape[] = [];
  for (let o0 = 0; o0 < g.k; o0 += block) {
    out.push({
      ...sweepGeometry(g),
      o0,
      oCount: Math.min(block, g.k - o0),
      r0: 0,
      rCount: g.c,
      os: CT,
      rs: g.kh * g.kw,
      flip: false,
      wSplit: split,
    });
  }
  return out;
}

/**
 * The sweeps of a stride-1 input gradient: dx = sum over output channels m of dy[m] swept with
 * the flipped kernel; one sweep per block of m whose weights fit a uniform window, the later
 * ones adding into dx.
 */
export function dgradSweeps(g: ConvGeometry, align = 256): SweepShape[] {
  if (g.sh !== 1 || g.sw !== 1) return [];
  const CT = g.c * g.kh * g.kw;
  let per = Math.floor(UNIFORM_FLOATS / CT);
  // Windows of whole blocks of output channels, starting at aligned offsets.
  if (per < g.k) { while (per > 0 && (per * CT * 4) % align !== 0) per--; }
  if (per < 1) return [];
  const out: SweepShape[] = [];
  for (let r0 = 0; r0 < g.k; r0 += per) {
    out.push({
      ...sweepGeometry(transposedDgradGeometry(g)),
      o0: 0,
      oCount: g.c,
      r0,
      rCount: Math.min(per, g.k - r0),
      os: g.kh * g.kw,
      rs: CT,
      flip: true,
    });
  }
  return out;
}

/**
 * Whether the direct kernels can run `g`: one group; for the input gradient also stride 1; for
 * the weight gradient a row of kernel taps per invocation that stays in registers.
 */
export function directFits(g: ConvGeometry, kind: "forward" | "dgrad" | "wgrad"): boolean {
  if (g.groups !== 1) return false;
  if (kind === "forward") return forwardSweeps(g).length > 0;
  if (kind === "dgrad") return dgradSweeps(g).length > 0;
  return g.kh * g.kw <= 49;
}

/**
 * Records one sweep, reading its input through uniform windows where whole images fit one (see
 * windows.ts): the images are cut into groups whose input fits 64 KiB, and the same kernel
 * (specialised to the group's image count) runs once per group, bound at that group's offsets.
 * Where that takes several groups, or no group fits, it reads the input packed into a texture
 * where `io.packed` gives one (CPU adapters), else the groups, else storage. Each output value is
 * computed exactly as in one storage-bound dispatch.
 */
function recordSweep(
  rec: Recorder,
  s: SweepShape,
  io: { x: Region; w: readonly Region[]; bias?: Region; out: Region; packed: () => GPUTextureView | null },
  opts: { bias: boolean; accumulate: boolean; label: string; vec4: boolean },
): void {
  const limits = rec.kernels.gpu.device.limits;
  const inImage = s.cin * s.hin * s.win, outImage = s.cout * s.hout * s.wout;
  const images = inImage <= UNIFORM_FLOATS ? divisorAtMost(s.n, Math.floor(UNIFORM_FLOATS / inImage)) : 0;
  const units = images ? s.n / images : 0;
  const groups = Array.from({ length: units }, (_, u) => ({
    x: uniformWindow(
      io.x,
      u * images * inImage * 4,
      images * inImage,
      limits.minUniformBufferOffsetAlignment,
    ),
    out: sub(io.out, u * images * outImage * 4, images * outImage * 4),
  }));
  // Only where a group still fills a SIMD chunk of invocations (fewer images would idle lanes), and,
  // on a CPU adapter, where one window holds the whole batch: several groups are several dispatches,
  // each with its hand-over to llvmpipe's workers, and one pass over the batch packed into a texture
  // ran faster (2026-12-08, A/B in one process, whole layers of 8 images): 3x3 96 -> 96 at 8x8
  // forward 1.82x (two images a window), 48 -> 48 at 16x16 1.40x (one), 16 -> 16 at 16x16
  // 1.05-1.13x; 1x1 16 -> 32 at 16x16 input gradient 1.59x, 64 -> 64 at 8x8 0.98-1.15x.
  if (
    units > 0 && sweepBlock({ ...s, n: images }).lanes >= 8 &&
    groups.every((g) => g.x && g.out.offset % limits.minStorageBufferOffsetAlignment === 0) &&
    (units === 1 || !io.packed())
  ) {
    const vec4Out = sweepOutVec4(s) && groups.every((g) => vec4Region(g.out));
    const k = directSweepKernel({ ...s, n: images }, { ...opts, uniformX: true, vec4Out });
    for (const g of groups) {
      rec.dispatch(k.src, [g.x!, ...io.w, ...(opts.bias ? [io.bias!] : []), g.out], k.groups);
    }
    return;
  }
  const view = io.packed();
  const k = directSweepKernel(s, {
    ...opts,
    textureX: !!view,
    vec4Out: sweepOutVec4(s) && vec4Region(io.out),
  });
  rec.dispatch(k.src, [view ?? io.x, ...io.w, ...(opts.bias ? [io.bias!] : []), io.out], k.groups);
}

/**
 * The sweeps' input packed into a texture on first use, on a CPU adapter: the pack is a memory
 * copy (~4 GB/s on llvmpipe), and even a single pass of the sweep's loads costs more from storage
 * (the tiny preset's 1x1 input gradient of 32 -> 256 channels: 1.94 -> 1.19 ms with the copy).
 */
function lazyPack(rec: Recorder, x: Region, floats: number): () => GPUTextureView | null {
  let view: GPUTextureView | null | undefined;
  return () => {
    if (view === undefined) {
      view = rec.kernels.gpu.isFallback ? packImages(rec, x, 1, floats)?.[0] ?? null : null;
    }
    return view;
  };
}

/** The forward sweeps of `g` with the uniform windows of `w` each reads; null when one cannot be bound. */
function forwardPlan(rec: Recorder, g: ConvGeometry, w: Region): { s: SweepShape; w: Region[] }[] | null {
  const align = rec.kernels.gpu.device.limits.minUniformBufferOffsetAlignment;
  const plan = forwardSweeps(g, align).map((s) => {
    const split = s.wSplit ?? 1, per = s.oCount / split;
    return {
      s,
      w: Array.from(
        { length: split },
        (_, b) => uniformWindow(w, (s.o0 + b * per) * s.os * 4, weightWindowFloats(s), align),
      ),
    };
  });
  if (plan.some((p) => p.w.some((w) => !w))) return null;
  return plan as { s: SweepShape; w: Region[] }[];
}

/** Records a forward convolution as sweeps; false (nothing recorded) when a weight window cannot be bound. */
export function recordDirectForward(
  rec: Recorder,
  io: { x: Region; w: Region; bias?: Region; y: Region; geometry: ConvGeometry },
  opts: { accumulate?: boolean } = {},
): boolean {
  const g = io.geometry;
  if (!directFits(g, "forward")) return false;
  const plan = forwardPlan(rec, g, io.w);
  if (!plan) return false;
  const packed = lazyPack(rec, io.x, g.n * g.c * g.h * g.w);
  for (const { s, w } of plan) {
    const label = `conv_fwd_direct ${shapeLabel(g)}${io.bias ? " +bias" : ""}${opts.accumulate ? " +=" : ""}${
      plan.length > 1 ? ` o${s.o0}+${s.oCount}` : ""
    }`;
    const vec4 = sweepVec4(s) && vec4Region(io.x);
    recordSweep(rec, s, { x: io.x, w, bias: io.bias, out: io.y, packed }, {
      bias: !!io.bias,
      accumulate: !!opts.accumulate,
      label,
      vec4,
    });
  }
  return true;
}

/**
 * Workspace floats the direct input gradient of `g` wants: the weights transposed, where its
 * weights overflow one uniform window (several sweeps over blocks of dy's channels) and the
 * transposed form fits; 0 where it runs from the weights as they are.
 */
export function directDgradWorkspaceFloats(g: ConvGeometry, align = 256): number {
  if (!directFits(g, "dgrad") || dgradSweeps(g, align).length < 2) return 0;
  if (g.ph > g.kh - 1 || g.pw > g.kw - 1) return 0;
  return forwardSweeps(transposedDgradGeometry(g), align).length ? g.k * g.c * g.kh * g.kw : 0;
}

/** w [k][c][taps] -> wT [c][k][taps]: one invocation a (c, k) pair. Bindings: w, wT. */
export function transposeWeightsKernel(g: Pick<ConvGeometry, "k" | "c" | "kh" | "kw">): DirectKernel {
  const T = g.kh * g.kw;
  const k = elementwise(`conv_dgrad_wT ${g.k}x${g.c}x${g.kh}x${g.kw}`, {
    bindings: [{ name: "w", access: "read" }, { name: "wt", access: "read_write" }],
    n: g.c * g.k,
    body: `  let src = ((i % ${u32(g.k)}) * ${u32(g.c)} + i / ${u32(g.k)}) * ${u32(T)};
  for (var t = 0u; t < ${u32(T)}; t++) { wt[i * ${u32(T)} + t] = w[src + t]; }`,
  });
  return { src: k.src, groups: [k.groups[0], k.groups[1] ?? 1, 1] };
}

/**
 * Records the input gradient as forward sweeps over dy from the transposed weights (written into
 * `workspace` first): each block of dx's channels sums all of dy's channels in one sweep and is
 * written once. Where the weights overflow a window, the sweeps over blocks of dy's channels each
 * added into all of dx: every sweep's invocations paid their setup and stores for a few channels,
 * and all but the first a read of dx (2026-12-08, call by call in one process, whole layers of 8
 * images, transposes included: 3x3 96->96 at 32x32 1.33-1.48x, 48->48 0.75-1.29x, 96->96 at 16x16
 * 1.29x; 1x1 192->192 at 32x32 1.66x, at 16x16 1.45x). False, with nothing recorded, where it
 * cannot run.
 */
function recordTransposedDgrad(
  rec: Recorder,
  io: { dy: Region; w: Region; bias?: Region; dx: Region; workspace?: Region | null; geometry: ConvGeometry },
  opts: { accumulate?: boolean },
): boolean {
  const g = io.geometry;
  const align = rec.kernels.gpu.device.limits.minUniformBufferOffsetAlignment;
  const floats = directDgradWorkspaceFloats(g, align);
  if (!floats || !io.workspace || io.workspace.size < floats * 4) return false;
  const wT = sub(io.workspace, 0, floats * 4);
  const gt = transposedDgradGeometry(g);
  const plan = forwardPlan(rec, gt, wT);
  if (!plan) return false;
  const t = transposeWeightsKernel(g);
  rec.dispatch(t.src, [io.w, wT], t.groups);
  const packed = lazyPack(rec, io.dy, g.n * g.k * g.oh * g.ow);
  for (const { s, w } of plan) {
    const label = `conv_dgrad_direct ${shapeLabel(g)}${io.bias ? " +bias" : ""}${
      opts.accumulate ? " +=" : ""
    } wT${plan.length > 1 ? ` c${s.o0}+${s.oCount}` : ""}`;
    recordSweep(rec, { ...s, flip: true }, { x: io.dy, w, bias: io.bias, out: io.dx, packed }, {
      bias: !!io.bias,
      accumulate: !!opts.accumulate,
      label,
      vec4: sweepVec4(s) && vec4Region(io.dy),
    });
  }
  return true;
}

/**
 * Records a stride-1 input gradient as sweeps; false (nothing recorded) when it cannot run. Where
 * the weights overflow a uniform window and `workspace` holds {@linkcode directDgradWorkspaceFloats},
 * it runs from the transposed weights ({@linkcode recordTransposedDgrad}).
 */
export function recordDirectDgrad(
  rec: Recorder,
  io: { dy: Region; w: Region; bias?: Region; dx: Region; workspace?: Region | null; geometry: ConvGeometry },
  opts: { accumulate?: boolean } = {},
): boolean {
  const g = io.geometry;
  if (!directFits(g, "dgrad")) return false;
  if (recordTransposedDgrad(rec, io, opts)) return true;
  const align = rec.kernels.gpu.device.limits.minUniformBufferOffsetAlignment;
  const plan = dgradSweeps(g, align).map((s) => ({
    s,
    w: uniformWindow(io.w, s.r0 * s.rs * 4, weightWindowFloats(s), align),
  }));
  if (plan.some((p) => !p.w)) return false;
  const packed = lazyPack(rec, io.dy, g.n * g.k * g.oh * g.ow);
  plan.forEach(({ s, w }, i) => {
    const acc = opts.accumulate || i > 0, bias = !!io.bias && i === 0;
    const label = `conv_dgrad_direct ${shapeLabel(g)}${bias ? " +bias" : ""}${acc ? " +=" : ""}${
      plan.length > 1 ? ` m${s.r0}+${s.rCount}` : ""
    }`;
    const vec4 = sweepVec4(s) && vec4Region(io.dy);
    recordSweep(rec, s, { x: io.dy, w: [w!], bias: io.bias, out: io.dx, packed }, {
      bias,
      accumulate: acc,
      label,
      vec4,
    });
  });
  return true;
}

/** Fewest workgroups a weight gradient runs as (see {@linkcode wgradPlan}). */
const WGRAD_BLOCKS = 2;

/**
 * Multiply-adds below which a weight gradient is not split over images. On llvmpipe every
 * dispatch costs ~40-65 us of hand-over to the worker threads (2026-12-07, Zen 3, 4 threads)
 * whatever it does, and the split's fold is one more: measured per call, the tiny preset's
 * 4x4-map layers (65k-295k MACs) ran 0.15-0.17 ms faster unsplit, an 8x8 3x3 16->16 layer (1.2M)
 * 0.08 ms slower and a 16x16 one (2.4M per dispatch) 1 ms slower.
 */
const WGRAD_SPLIT_MACS = 600_000;

/**
 * How the weight gradient of `g` is cut: TM output channels and TC input channels per
 * invocation (TC > 1 only for small kernels, so TC x kh x kw values feed each dy value), and S
 * splits of the images.
 */
export function wgradPlan(
  g: ConvGeometry,
  opts: { split?: boolean } = {},
): { tm: number; tc: number; rows: number; lanes: number; wg: number; splits: number; perSplit: number } {
  // TC channels per invocation while that still leaves a SIMD chunk (8) of invocations: up to two
  // for a 3x3 kernel (18 taps, each dy value feeding 18 x TM FMAs), eight for 1x1. Each dy value
  // is a lane-shared load that costs as much as several FMAs; two channels ran 15-30% faster than
  // one on 3x3 layers of 8-32 pixel maps, and the tiny step's first (compiling) step took the same
  // ~150 s with Mesa's shader cache off either way.
  const taps = g.kh * g.kw;
  const most = Math.max(1, Math.min(Math.floor((taps === 1 ? 8 : 18) / taps), Math.floor(g.c / 8)));
  let best = wgradCut(g, divisorAtMost(g.c, most), opts);
  // A kernel with taps, where a dispatch has work enough for both workers (WGRAD_SPLIT_MACS): one
  // or two channels, whichever fills the SIMD chunks and the workers best (see wgradCost). The 3x3
  // 16 -> 16 layer at 32x32 (one image per dispatch) ran 1.25-1.34x faster as 16 single-channel
  // invocations than as 8 of two (llvmpipe, 2026-12-08). For 1x1 kernels the same choice among
  // 4-8 channels (96 in blocks of 6 rather than 8, 160 in blocks of 5) measured 0.89-1.20x
  // across three runs, so they keep the largest count.
  const macs = g.n * g.oh * g.ow * g.k * g.c * taps;
  if (taps === 1 || macs < WGRAD_SPLIT_MACS) return best;
  for (let tc = Math.ceil(most / 2); tc <= most; tc++) {
    if (g.c % tc !== 0) continue;
    const p = wgradCut(g, tc, opts);
    if (wgradCost(g, p) <= wgradCost(g, best)) best = p;
  }
  return best;
}

/**
 * Relative time of a weight-gradient cut: SIMD chunks run (idle lanes included) x channels per
 * invocation, over the workers that many workgroups keep busy (WGRAD_BLOCKS, the count the splits
 * aim at). Ties go to the larger TC (fewer dy loads per FMA).
 */
function wgradCost(g: ConvGeometry, p: ReturnType<typeof wgradCut>): number {
  const groups = Math.ceil(p.lanes / p.wg), blocks = (g.k / p.tm) * groups * p.splits;
  return ((g.k / p.tm) * groups * p.wg * p.tc) / Math.min(WGRAD_BLOCKS, blocks);
}

/** The cut of {@linkcode wgradPlan} for TC channels per invocation. */
function wgradCut(
  g: ConvGeometry,
  tc: number,
  opts: { split?: boolean },
): { tm: number; tc: number; rows: number; lanes: number; wg: number; splits: number; perSplit: number } {
  const tm = divisorAtMost(g.k, 16);
  // Too few channels for a chunk (an RGB input): one invocation per (channel, kernel row).
  const rows = g.c / tc < 8 && g.kh > 1 ? 1 : g.kh;
  const lanes = (g.c / tc) * (g.kh / rows);
  // Workgroups of whole SIMD chunks, as many as divide the chunks evenly (at most SWEEP_WG
  // lanes): 48 invocations run as two groups of 24, not as 32 + 16 idle lanes of 32 computing
  // clamped copies. Measured on whole layers (llvmpipe, 2026-12-08): 3x3 96 -> 16 at 32x32 and
  // 96 -> 48 at 16x16 1.25-1.32x faster, 1x1 192 -> 64 at 16x16 1.15x.
  let wg = 8 * divisorAtMost(Math.ceil(lanes / 8), SWEEP_WG / 8);
  // With a single image (channel blocks of one image each), no split can make up for too few
  // workgroups: then one SIMD chunk per workgroup. Each lane's sums are its own, so neither
  // changes any result.
  if (g.n === 1 && (g.k / tm) * Math.ceil(lanes / wg) < WGRAD_BLOCKS) wg = 8;
  // At least WGRAD_BLOCKS workgroups, splitting the images (whole ones) when the channel blocks
  // are fewer. A fixed count rather than the machine's cores, so the summation order (and the
  // result, bit for bit) does not depend on the machine; two matched eight on the tiny preset.
  // Not below WGRAD_SPLIT_MACS, where the fold's dispatch costs more than the second worker saves.
  const blocks = (g.k / tm) * Math.ceil(lanes / wg);
  const macs = g.n * g.oh * g.ow * g.k * g.c * g.kh * g.kw;
  const splits = opts.split === false || macs < WGRAD_SPLIT_MACS
    ? 1
    : Math.max(1, Math.min(g.n, Math.ceil(WGRAD_BLOCKS / blocks)));
  const perSplit = Math.ceil(g.n / splits);
  return { tm, tc, rows, lanes, wg, splits: Math.ceil(g.n / perSplit), perSplit };
}

/**
 * The weight gradient with dy read through uniform windows: on CPU adapters a uniform load is
 * several times cheaper than a storage load (see windows.ts), and dy is the operand every FMA
 * block starts from. The images
 * are cut into `units` groups of `images` whose dy fits one 64 KiB window; each group is one
 * dispatch of the same kernel (bound at that group's offsets) writing its partial sums, folded
 * in group order. Where one image's dy overflows a window, the output channels are cut into
 * blocks of `block` whose dy of one image fits (contiguous within the image), each block its own
 * weight gradient over single images. Where not even one register block fits (64x64 maps), dy is
 * packed into a texture instead (`textureDy`, single images; see windows.ts packImages).
 */
export function wgradUniformPlan(
  g: ConvGeometry,
): {
  images: number;
  units: number;
  unitFloats: number;
  uniformX: boolean;
  block: number;
  textureDy: boolean;
} {
  const OHW = g.oh * g.ow, x = g.c * g.h * g.w;
  let block = g.k, textureDy = false;
  if (g.k * OHW > UNIFORM_FLOATS) {
    // Blocks of whole register blocks (16 channels, or all of a smaller divisor).
    const tm = divisorAtMost(g.k, 16);
    block = tm * divisorAtMost(g.k / tm, Math.floor(UNIFORM_FLOATS / (OHW * tm)));
    // Not even one register block of an image fits: dy packed into a texture, an image a layer.
    if (block * OHW > UNIFORM_FLOATS) [block, textureDy] = [g.k, true];
  }
  const dy = block * OHW;
  // x through windows too where its images fit as well.
  const uniformX = x <= UNIFORM_FLOATS;
  const images = block < g.k || textureDy
    ? 1
    : divisorAtMost(g.n, Math.floor(UNIFORM_FLOATS / (uniformX ? Math.max(dy, x) : dy)));
  const sub = { ...g, n: images, k: block };
  const { splits } = wgradPlan(sub);
  const units = g.n / images;
  const total = block * (g.c * g.kh * g.kw + 1);
  // Each group's partials start 256-byte aligned, so they can be bound at any storage alignment.
  const unitFloats = units * splits > 1 ? Math.ceil((splits * total) / 64) * 64 : 0;
  return { images, units, unitFloats, uniformX, block, textureDy };
}

/** Workspace floats the direct weight gradient needs (0 without a split). */
export function directWgradWorkspaceFloats(g: ConvGeometry, bias: boolean): number {
  const { splits } = wgradPlan(g);
  const u = wgradUniformPlan(g);
  return Math.max(
    splits > 1 ? splits * g.k * (g.c * g.kh * g.kw + (bias ? 1 : 0)) : 0,
    u.units * u.unitFloats,
  );
}

/**
 * dw (and db) of one image split, or of all images: invocation = block of TC input channels,
 * workgroup y = block of TM output channels, z = split. Writes dw/db directly without a split,
 * else the split's partial rows [m][c*T + t] (+ a bias column) into ws. Bindings: dy, x, dw or
 * ws, [db].
 */
export function directWgradKernel(
  g: ConvGeometry,
  opts: {
    bias: boolean;
    split?: boolean;
    vec4?: boolean;
    uniformDy?: boolean;
    uniformX?: boolean;
    /** x packed into a texture, one image (see windows.ts packImages). */
    textureX?: boolean;
    /** dy likewise. */
    textureDy?: boolean;
    partials?: boolean;
  },
): DirectKernel {
  const { tm: TM, tc: TC, rows: KY, lanes, wg: WG, splits: S, perSplit } = wgradPlan(g, opts);
  const T = g.kh * g.kw, CT = g.c * T, OHW = g.oh * g.ow, HW = g.h * g.w;
  const rowLen = CT + (opts.bias ? 1 : 0);
  const J = Array.from({ length: TM }, (_, j) => j), Q = Array.from({ length: TC }, (_, q) => q);
  const Rr = Array.from({ length: KY }, (_, r) => r), Kx = Array.from({ length: g.kw }, (_, kx) => kx);
  const padY = g.ph > 0 || (g.oh - 1) * g.sh + g.kh - g.ph > g.h;
  const padX = g.pw > 0 || (g.ow - 1) * g.sw + g.kw - g.pw > g.w;
  // The window of x an output pixel reads: v{q}_{r}_{kx} for each of the TC channels and KY
  // kernel rows. Moving one output column right shifts it by sw columns, so only columns
  // kx >= kw - sw are loaded anew.
  const keep = Math.max(0, g.kw - g.sw);
  const xr = (at: string) => opts.uniformX || opts.textureX ? `xAt(${at})` : `x[${at}]`;
  const xCol = (kx: number, ox: string) => `${ox} * ${u32(g.sw)} + ${u32(kx)} - ${u32(g.pw)}`;
  // Whether x's column kx of output column ox, in kernel row r, lies inside the image.
  const inside = (r: number, kx: number, ox: string) =>
    [padY ? `oky${r}` : "", padX ? `(${xCol(kx, ox)}) < ${u32(g.w)}` : ""].filter(Boolean);
  const load = (q: number, r: number, kx: number, ox: string) => {
    const ix = xCol(kx, ox), conds = inside(r, kx, ox);
    const at = `xc${q} + row${r} + ${ix}`;
    return conds.length
      ? `select(0.0, ${xr(`select(0u, ${at}, ${conds.join(" && ")})`)}, ${conds.join(" && ")})`
      : xr(at);
  };
  const v = (q: number, r: number, kx: number) => `v${q}_${r}_${kx}`;
  const a = (j: number, q: number, r: number, kx: number) => `a${j}_${q}_${r}_${kx}`;
  // With vec4 access, four output columns per iteration: dy (and, for an unpadded 1x1 kernel,
  // x) come in as one vec4 per channel instead of four scalars.
  const vec = !!opts.vec4 && g.ow % 4 === 0;
  const xVec = vec && isPointwise(g) && g.w % 4 === 0 && (g.h * g.w) % 4 === 0;
  // Otherwise, from a packed texture with rows of whole texels, the four columns' x values of a
  // kernel row come in as K4 texels (3 instead of 6 for a 3x3 kernel), as in the sweeps.
  const texCols = vec && !xVec && !!opts.textureX && g.sw === 1 && g.w % 4 === 0;
  const X4 = Math.ceil(g.pw / 4) * 4, K4 = Math.ceil((X4 - g.pw + 3 + g.kw) / 4);
  // The sliding window of one column at a time (without vec4 access).
  const decl = vec ? [] : Q.flatMap((q) => Rr.flatMap((r) => Kx.map((kx) => `  var ${v(q, r, kx)} = 0.0;`)));
  const acc = J.flatMap((j) => [
    ...Q.flatMap((q) => Rr.flatMap((r) => Kx.map((kx) => `  var ${a(j, q, r, kx)} = 0.0;`))),
    ...(opts.bias ? [`  var b${j} = 0.0;`] : []),
  ]);
  let rowSetup = "";
  for (const r of Rr) {
    rowSetup += `      let iy${r} = oy * ${u32(g.sh)} + ky0 + ${u32(r)} - ${u32(g.ph)};\n`;
    if (padY) rowSetup += `      let oky${r} = iy${r} < ${u32(g.h)};\n`;
    rowSetup += `      let row${r} = select(0u, iy${r}, ${padY ? `oky${r}` : "true"}) * ${u32(g.w)};\n`;
    if (vec) continue;
    for (const q of Q) {
      for (let kx = 0; kx < keep; kx++) rowSetup += `      ${v(q, r, kx)} = ${load(q, r, kx, "0u")};\n`;
    }
  }
  // One output column: load the window's new columns, then TM x TC x KY x kw FMAs, then slide.
  const column = (ox: string, d: (j: number) => string) => {
    let c = "";
    for (const q of Q) {
      for (const r of Rr) {
        for (let kx = keep; kx < g.kw; kx++) {
          c += `        ${v(q, r, kx)} = ${load(q, r, kx, ox)};\n`;
        }
      }
    }
    for (const j of J) {
      c += `        {\n          let d = ${d(j)};\n`;
      for (const q of Q) {
        for (const r of Rr) {
          for (const kx of Kx) {
            c += `          ${a(j, q, r, kx)} = fma(d, ${v(q, r, kx)}, ${a(j, q, r, kx)});\n`;
          }
        }
      }
      if (opts.bias) c += `          b${j} += d;\n`;
      c += "        }\n";
    }
    for (const q of Q) {
      for (const r of Rr) {
        for (let kx = 0; kx < keep; kx++) c += `        ${v(q, r, kx)} = ${v(q, r, kx + g.sw)};\n`;
      }
    }
    return c;
  };
  // Four output columns (one vec4 of dy per output channel) against the x values they read: dy's
  // and, for a pointwise kernel, x's vec4 index are given (`dyAt`, `xAt`).
  const vecBody = (dyAt: (j: number) => string, xAt: ((q: number) => string) | null): string => {
    let body = "";
    for (const j of J) {
      const t = dyAt(j);
      body += `        let dv${j} = ${
        opts.textureDy ? `dyAt4(${t})` : `${opts.uniformDy ? "dyu" : "dy4"}[${t}]`
      };\n`;
    }
    if (xAt) {
      for (const q of Q) {
        const t = xAt(q);
        body += `        let xv${q} = ${
          opts.textureX ? `xAt4(${t})` : `${opts.uniformX ? "xu" : "x4"}[${t}]`
        };\n`;
      }
    }
    // The x values the four columns read, (3 sw + kw) per channel and kernel row, then per
    // accumulator its four FMAs in a row: a spilled accumulator is loaded and stored once per four
    // FMAs, not once per FMA. On the tiny preset's 3x3 layers (8x8 and 16x16 maps) this ran in 0.75x
    // the time of a loop over the four columns, each touching every accumulator once (llvmpipe,
    // 2026-12-07). The sums keep their order: each accumulator still adds column by column.
    const cv = (q: number, r: number, m: number) => xAt ? `xv${q}[${m}]` : `c${q}_${r}_${m}`;
    if (!xAt) {
      for (const q of Q) {
        for (const r of Rr) {
          if (texCols) {
            // Whole texels from column ox4 * 4 - X4 (the padding rounded up to a texel), clamped at
            // the tensor's start (those columns are padding).
            for (let k = 0; k < K4; k++) {
              const at = `xc${q} + row${r} + ox4 * 4u + ${u32(4 * k)}`;
              body += `        let t${q}_${r}_${k} = xAt4(${
                X4 > 0 ? `(max(${at}, ${u32(X4)}) - ${u32(X4)}) >> 2u` : `(${at}) >> 2u`
              });\n`;
            }
            for (let m = 0; m < 4 + g.kw - 1; m++) {
              const off = m - g.pw + X4, c = inside(r, m, "ox4 * 4u");
              const t = `t${q}_${r}_${off >> 2}[${off & 3}]`;
              body += `        let ${cv(q, r, m)} = ${
                c.length ? `select(0.0, ${t}, ${c.join(" && ")})` : t
              };\n`;
            }
            continue;
          }
          for (let m = 0; m < 3 * g.sw + g.kw; m++) {
            body += `        let ${cv(q, r, m)} = ${load(q, r, m, "ox4 * 4u")};\n`;
          }
        }
      }
    }
    for (const j of J) {
      body += "        {\n";
      for (const q of Q) {
        for (const r of Rr) {
          for (const kx of Kx) {
            for (let u = 0; u < 4; u++) {
              body += `          ${a(j, q, r, kx)} = fma(dv${j}[${u}], ${cv(q, r, u * g.sw + kx)}, ${
                a(j, q, r, kx)
              });\n`;
            }
          }
        }
      }
      if (opts.bias) { for (const c of "xyzw") body += `          b${j} += dv${j}.${c};\n`; }
      body += "        }\n";
    }
    return body;
  };
  // One flat loop over (image, output row, quad of columns) instead of three nested ones, in the
  // same order, so every sum is the same; a pointwise kernel reads each channel's pixels as one run
  // and needs no row at all. Each loop level costs llvmpipe its mask bookkeeping on every
  // loop-carried accumulator: timed alone (2026-12-07), the tiny preset's 1x1 weight gradients ran
  // 4-20% faster flat, its 3x3 ones 10-27%. Two quads per iteration of the pointwise loop (eight
  // FMAs per accumulator update) were mixed, -9% to +11%.
  const P4 = OHW / 4;
  const W4 = g.ow / 4, QUADS = g.oh * W4;
  const loops = xVec
    ? `  for (var t = n0 * ${u32(P4)}; t < n1 * ${u32(P4)}; t++) {
    let img = t / ${u32(P4)};
    let p4 = t - img * ${u32(P4)};
${
      vecBody(
        (j) => `(img * ${u32(g.k)} + m0 + ${u32(j)}) * ${u32(P4)} + p4`,
        (q) => `(img * ${u32(g.c)} + c0 + ${u32(q)}) * ${u32(HW / 4)} + p4`,
      )
    }  }`
    : vec
    ? `  for (var t = n0 * ${u32(QUADS)}; t < n1 * ${u32(QUADS)}; t++) {
    let img = t / ${u32(QUADS)};
    let oy = (t - img * ${u32(QUADS)}) / ${u32(W4)};
    let ox4 = t - img * ${u32(QUADS)} - oy * ${u32(W4)};
${Q.map((q) => `    let xc${q} = (img * ${u32(g.c)} + c0 + ${u32(q)}) * ${u32(HW)};`).join("\n")}
    let dyb = (img * ${u32(g.k)} + m0) * ${u32(OHW)} + oy * ${u32(g.ow)};
${rowSetup}${vecBody((j) => `(dyb + ${u32(j * OHW)}) / 4u + ox4`, null)}  }`
    : `  for (var img = n0; img < n1; img++) {
${Q.map((q) => `    let xc${q} = (img * ${u32(g.c)} + c0 + ${u32(q)}) * ${u32(HW)};`).join("\n")}
    for (var oy = 0u; oy < ${u32(g.oh)}; oy++) {
      let dyb = (img * ${u32(g.k)} + m0) * ${u32(OHW)} + oy * ${u32(g.ow)};
${rowSetup}      for (var ox = 0u; ox < ${u32(g.ow)}; ox++) {
${
      column("ox", (j) =>
        opts.uniformDy || opts.textureDy
          ? `dyAt(dyb + ${u32(j * OHW)} + ox)`
          : `dy[dyb + ${u32(j * OHW)} + ox]`)
    }      }
    }
  }`;
  const split = S > 1 || !!opts.partials;
  const rowAt = (j: number) =>
    split ? `((wid.z * ${u32(g.k)} + m0 + ${u32(j)}) * ${u32(rowLen)})` : `((m0 + ${u32(j)}) * ${u32(CT)})`;
  const stores = J.flatMap((j) =>
    Q.flatMap((q) =>
      Rr.flatMap((r) =>
        Kx.map((kx) =>
          `  ${split ? "ws" : "dw"}[${rowAt(j)} + (c0 + ${u32(q)}) * ${u32(T)} + (ky0 + ${u32(r)}) * ${
            u32(g.kw)
          } + ${u32(kx)}] = ${a(j, q, r, kx)};`
        )
      )
    )
  );
  const biasStores = opts.bias
    ? J.map((j) => split ? `    ws[${rowAt(j)} + ${u32(CT)}] = b${j};` : `    db[m0 + ${u32(j)}] = b${j};`)
    : [];
  const rowLanes = g.kh / KY;
  const dyDecl = opts.uniformDy
    ? uniformDecl(0, "dyu", g.n * g.k * OHW, "dyAt")
    : opts.textureDy
    ? textureDecl(0, "dyt", "dyAt")
    : vec
    ? "@group(0) @binding(0) var<storage, read> dy4: array<vec4<f32>>;"
    : "@group(0) @binding(0) var<storage, read> dy: array<f32>;";
  const code = `${dyDecl}
${
    opts.uniformX
      ? uniformDecl(1, "xu", g.n * g.c * HW, "xAt")
      : opts.textureX
      ? textureDecl(1, "xt", "xAt")
      : xVec
      ? "@group(0) @binding(1) var<storage, read> x4: array<vec4<f32>>;"
      : "@group(0) @binding(1) var<storage, read> x: array<f32>;"
  }
@group(0) @binding(2) var<storage, read_write> ${split ? "ws" : "dw"}: array<f32>;
${opts.bias && !split ? "@group(0) @binding(3) var<storage, read_write> db: array<f32>;" : ""}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(workgroup_id) wid: vec3u) {
  let l = min(gid.x, ${u32(lanes - 1)});
  let c0 = (l / ${u32(rowLanes)}) * ${u32(TC)};
  let ky0 = (l % ${u32(rowLanes)}) * ${u32(KY)};
  let m0 = wid.y * ${u32(TM)};
  let n0 = wid.z * ${u32(perSplit)};
  let n1 = min(n0 + ${u32(perSplit)}, ${u32(g.n)});
${decl.join("\n")}
${acc.join("\n")}
${loops}
  if (gid.x >= ${u32(lanes)}) { return; }
${stores.join("\n")}
${biasStores.length ? `  if (gid.x == 0u) {\n${biasStores.join("\n")}\n  }` : ""}
}`;
  const label = `conv_wgrad_direct ${shapeLabel(g)}${opts.bias ? " +bias" : ""} tm${TM} tc${TC}${
    KY < g.kh ? " row" : ""
  }${split ? ` split${S}` : ""}${vec ? " v4" : ""}${opts.uniformDy ? " udy" : opts.textureDy ? " tdy" : ""}${
    opts.uniformX ? " ux" : texCols ? " txr" : opts.textureX ? " tx" : ""
  }`;
  return { src: { label, code }, groups: [Math.ceil(lanes / WG), g.k / TM, S] };
}

/**
 * Folds partial rows into dw and db, adding the slots in the order given (image order, so the
 * sum does not depend on the machine). Bindings: ws, dw, [db]. `slots` are float offsets in ws.
 */
function wgradFoldKernel(g: ConvGeometry, opts: { bias: boolean; slots: readonly number[] }): DirectKernel {
  const CT = g.c * g.kh * g.kw, rowLen = CT + (opts.bias ? 1 : 0), total = g.k * rowLen;
  const [first, ...rest] = opts.slots;
  const terms = rest.map((o) => ` + ws[i + ${u32(o)}]`).join("");
  const k = elementwise(
    `conv_wgrad_direct_fold ${shapeLabel(g)}${opts.bias ? " +bias" : ""} split${opts.slots.length}`,
    {
      bindings: [
        { name: "ws", access: "read" },
        { name: "dw", access: "read_write" },
        ...(opts.bias ? [{ name: "db", access: "read_write" as const }] : []),
      ],
      n: total,
      body: `  let v = ws[i + ${u32(first)}]${terms};
  let m = i / ${u32(rowLen)};
  let e = i % ${u32(rowLen)};
  ${opts.bias ? `if (e == ${u32(CT)}) { db[m] = v; } else { dw[m * ${u32(CT)} + e] = v; }` : "dw[i] = v;"}`,
    },
  );
  return { src: k.src, groups: [k.groups[0], k.groups[1] ?? 1, 1] };
}

/**
 * The fold of {@linkcode wgradFoldKernel} reading the partials from a texture copy of them (a CPU
 * adapter, where storage loads take the lane-by-lane path): each invocation adds the slots' texels
 * for four consecutive values, in the same order, so dw and db are bit for bit the storage fold's.
 * Bindings: the partials' view (textureDecl), dw, [db]. Slots must start at whole texels.
 */
function wgradFoldTextureKernel(
  g: ConvGeometry,
  opts: { bias: boolean; slots: readonly number[] },
): DirectKernel {
  const CT = g.c * g.kh * g.kw, rowLen = CT + (opts.bias ? 1 : 0), total = g.k * rowLen;
  const terms = opts.slots.map((o) => `p_4(i + ${u32(o / 4)})`).join(" + ");
  const k = elementwise(
    `conv_wgrad_direct_fold ${shapeLabel(g)}${opts.bias ? " +bias" : ""} split${opts.slots.length} tex`,
    {
      bindings: [
        { name: "dw", access: "read_write" },
        ...(opts.bias ? [{ name: "db", access: "read_write" as const }] : []),
      ],
      prelude: textureDecl(opts.bias ? 2 : 1, "parts", "p_"),
      n: Math.ceil(total / 4),
      body: `  let v = ${terms};
  for (var j = 0u; j < 4u; j++) {
    let e = i * 4u + j;
    if (e >= ${u32(total)}) { break; }
    ${
        opts.bias
          ? `let m = e / ${u32(rowLen)};
    let r = e % ${u32(rowLen)};
    if (r == ${u32(CT)}) { db[m] = v[j]; } else { dw[m * ${u32(CT)} + r] = v[j]; }`
          : "dw[e] = v[j];"
      }
  }`,
    },
  );
  return { src: k.src, groups: [k.groups[0], k.groups[1] ?? 1, 1] };
}

/**
 * Records the fold of the partials in `ws` (`floats` of them) into dw and db: from a texture copy
 * on a CPU adapter where the slots start at whole texels, else the storage fold.
 */
function recordWgradFold(
  rec: Recorder,
  g: ConvGeometry,
  o: { bias: boolean; slots: readonly number[]; ws: Region; floats: number; dw: Region; db?: Region },
): void {
  const out = [o.dw, ...(o.bias ? [o.db!] : [])];
  const view = rec.kernels.gpu.isFallback && o.slots.every((s) => s % 4 === 0) && o.floats % 4 === 0
    ? copiesForReading(rec, [sub(o.ws, 0, o.floats * 4)], o.floats, 2)?.[0]
    : null;
  if (view) {
    const f = wgradFoldTextureKernel(g, o);
    rec.dispatch(f.src, [...out, view], f.groups);
    return;
  }
  const f = wgradFoldKernel(g, o);
  rec.dispatch(f.src, [sub(o.ws, 0, o.floats * 4), ...out], f.groups);
}

/** Region `r` from `offset` bytes on for `size` bytes. */
function sub(r: Region, offset: number, size: number): Region {
  return { buffer: r.buffer, offset: r.offset + offset, size };
}

/** Records the uniform-window weight gradient (see {@linkcode wgradUniformPlan}); false when it cannot be bound. */
function recordUniformWgrad(
  rec: Recorder,
  io: { dy: Region; x: Region; dw: Region; db?: Region; workspace?: Region | null; geometry: ConvGeometry },
): boolean {
  const g = io.geometry, bias = !!io.db;
  const plan = wgradUniformPlan(g);
  const { images, units, unitFloats, uniformX, block, textureDy } = plan;
  if (textureDy && !rec.kernels.gpu.isFallback) return false;
  const limits = rec.kernels.gpu.device.limits;
  const OHW = g.oh * g.ow, HW = g.h * g.w, CT = g.c * g.kh * g.kw;
  const xBytes = images * g.c * HW * 4;
  const sg = { ...g, n: images, k: block };
  const S = wgradPlan(sg).splits;
  const partials = units * S > 1;
  if (partials && (!io.workspace || io.workspace.size < units * unitFloats * 4)) return false;
  const storageAligned = (r: Region | null | undefined) =>
    !r || r.offset % limits.minStorageBufferOffsetAlignment === 0;
  const blocks = Array.from({ length: g.k / block }, (_, b) => {
    const o0 = b * block;
    return {
      o0,
      windows: Array.from({ length: units }, (_, u) => ({
        dy: textureDy ? io.dy : uniformWindow(
          io.dy,
          (u * images * g.k + o0) * OHW * 4,
          images * block * OHW,
          limits.minUniformBufferOffsetAlignment,
        ),
        x: uniformX
          ? uniformWindow(io.x, u * xBytes, images * g.c * HW, limits.minUniformBufferOffsetAlignment)
          : sub(io.x, u * xBytes, xBytes),
      })),
      dw: sub(io.dw, o0 * CT * 4, block * CT * 4),
      db: bias ? sub(io.db!, o0 * 4, block * 4) : undefined,
    };
  });
  if (
    blocks.some((b) =>
      b.windows.some((w) => !w.dy || !w.x || !storageAligned(w.x)) || !storageAligned(b.dw) ||
      !storageAligned(b.db)
    ) || (partials && !storageAligned(io.workspace))
  ) return false;
  const vec4 = blocks.every((b) => b.windows.every((w) => vec4Region(w.x!) && vec4Region(w.dy!)));
  const dyPacked = textureDy ? packImages(rec, io.dy, g.n, g.k * OHW) : null;
  if (textureDy && !dyPacked) return false;
  // x not through windows, single images: on a CPU adapter copied into a texture first (a copy
  // costs less than one pass of storage loads).
  const packed = !uniformX && images === 1 && rec.kernels.gpu.isFallback
    ? packImages(rec, io.x, g.n, g.c * HW, 1)
    : null;
  const k = directWgradKernel(sg, {
    bias,
    vec4,
    uniformDy: !textureDy,
    textureDy,
    uniformX,
    textureX: !!packed,
    partials: units > 1,
  });
  const rowLen = CT + (bias ? 1 : 0), total = block * rowLen;
  const slots = Array.from({ length: units * S }, (_, i) => Math.floor(i / S) * unitFloats + (i % S) * total);
  for (const b of blocks) {
    const xOf = (u: number) => packed ? packed[u] : b.windows[u].x!;
    const dyOf = (u: number) => dyPacked ? dyPacked[u] : b.windows[u].dy!;
    if (!partials) {
      rec.dispatch(k.src, [dyOf(0), xOf(0), b.dw, ...(bias ? [b.db!] : [])], k.groups);
      continue;
    }
    // Blocks run one after another, so each reuses the same workspace.
    b.windows.forEach((_, u) =>
      rec.dispatch(k.src, [dyOf(u), xOf(u), sub(io.workspace!, u * unitFloats * 4, S * total * 4)], k.groups)
    );
    recordWgradFold(rec, sg, {
      bias,
      slots,
      ws: io.workspace!,
      floats: units * unitFloats,
      dw: b.dw,
      db: b.db,
    });
  }
  return true;
}

/**
 * Whether a CPU adapter runs the weight gradient of `g` as one pass over all images, dy and x
 * packed into textures, instead of the uniform plan's dispatches per group of images (or per
 * image and block of output channels) and the fold of their partial sums. On llvmpipe each of
 * those dispatches carries its hand-over to the worker threads, and each block re-reads x.
 * Measured on whole layers of 8 images (2026-12-08, A/B in one process): 1x1 64 -> 64 at 32x32
 * 1.83x faster, 96 -> 48 at 16x16 1.39x, 32 -> 256 at 8x8 2.1x, 16 -> 32 at 16x16 1.65x; 3x3
 * 96 -> 48 at 16x16 1.31x, 96 -> 16 at 32x32 1.13x; 3x3 layers whose x fits windows, over three
 * runs: 96 -> 96 at 8x8 1.17-1.54x, 16 -> 16 at 32x32 1.01-1.22x, 32 -> 32 at 16x16 1.0-1.14x,
 * 48 -> 48 at 16x16 0.94-1.14x.
 */
export function wgradPackedPass(g: ConvGeometry): boolean {
  return wgradUniformPlan(g).units > 1;
}

/**
 * Records the direct weight (and bias) gradient: on a CPU adapter, where uniform windows would cut
 * the batch, one pass over dy and x packed into textures (see {@linkcode wgradPackedPass}); else
 * through uniform windows where they fit; else from storage. With image splits the partials go
 * through `workspace` (at least {@linkcode directWgradWorkspaceFloats} floats) and a fold
 * dispatch, and without that room one pass covers all images. False (nothing recorded) when it
 * cannot run.
 */
export function recordDirectWgrad(
  rec: Recorder,
  io: { dy: Region; x: Region; dw: Region; db?: Region; workspace?: Region | null; geometry: ConvGeometry },
): boolean {
  const g = io.geometry;
  if (!directFits(g, "wgrad")) return false;
  const dyFloats = g.n * g.k * g.oh * g.ow, xFloats = g.n * g.c * g.h * g.w;
  if (
    rec.kernels.gpu.isFallback && wgradPackedPass(g) && packable(rec, io.dy, 1, dyFloats) &&
    packable(rec, io.x, 1, xFloats)
  ) {
    const dy = packImages(rec, io.dy, 1, dyFloats, 0)![0], x = packImages(rec, io.x, 1, xFloats, 1)![0];
    recordWgradPass(rec, io, dy, x, { vec4: true, textureDy: true, textureX: true });
    return true;
  }
  if (recordUniformWgrad(rec, io)) return true;
  recordWgradPass(rec, io, io.dy, io.x, { vec4: vec4Region(io.dy) && vec4Region(io.x) });
  return true;
}

/** The weight gradient as one pass over all images (split over them when the workspace has room) from `dy` and `x`. */
function recordWgradPass(
  rec: Recorder,
  io: { dw: Region; db?: Region; workspace?: Region | null; geometry: ConvGeometry },
  dy: Region | GPUTextureView,
  x: Region | GPUTextureView,
  opts: { vec4: boolean; textureDy?: boolean; textureX?: boolean },
): void {
  const g = io.geometry, bias = !!io.db;
  const { splits } = wgradPlan(g);
  const floats = splits > 1 ? splits * g.k * (g.c * g.kh * g.kw + (bias ? 1 : 0)) : 0;
  // Without room for the partials, one pass over all images.
  const split = floats > 0 && !!io.workspace && io.workspace.size >= floats * 4;
  const k = directWgradKernel(g, { bias, split, ...opts });
  if (!split) {
    rec.dispatch(k.src, [dy, x, io.dw, ...(bias ? [io.db!] : [])], k.groups);
    return;
  }
  const ws = { buffer: io.workspace!.buffer, offset: io.workspace!.offset, size: floats * 4 };
  rec.dispatch(k.src, [dy, x, ws], k.groups);
  const total = g.k * (g.c * g.kh * g.kw + (bias ? 1 : 0));
  const slots = Array.from({ length: k.groups[2] }, (_, i) => i * total);
  recordWgradFold(rec, g, { bias, slots, ws, floats, dw: io.dw, db: io.db });
}
