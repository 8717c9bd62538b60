/**
 * Depthwise convolution (groups = input channels = output channels) as direct kernels, one
 * invocation per output element summing its few taps.
 *
 * Why not the GEMM core: a depthwise GEMM has M = 1 and K = kh*kw per group, so every staged
 * operand element feeds a single multiply-add and the tile machinery (workgroup staging,
 * barriers, register blocking) is pure overhead; on a CPU adapter the hourglass upsampling ran
 * at ~0.5 GFLOP/s that way. The direct forms read each input through its tap arithmetic and
 * write each output once, so results are deterministic and accumulating into an existing
 * gradient is free.
 *
 * The input gradient gathers: dx[iy, ix] sums dy[oy, ox] * w[r, s] over the taps with
 * iy = oy*sh - ph + r. For stride > 1 only taps r with r = (iy + ph) mod sh can land, so the loop
 * starts there and steps by the stride (2x2 of the 4x4 taps for the seed's x2 upsampling).
 * The weight gradient keeps the GEMM path (kernels/conv.ts), where the reduction over pixels is
 * long enough to amortise the tiles.
 * @module
 */
import { type ConvGeometry, type Epilogue, isDepthwise } from "./conv_geometry.ts";
import { type Binding, elementwise, type KernelSource, type Recorder, type Region, u32 } from "./kernel.ts";
import { copiesForReading, textureDecl } from "./windows.ts";

function check(g: ConvGeometry): void {
  if (!isDepthwise(g)) {
    throw new RangeError(
      `depthwise kernels need groups = channels = outputs, got ${g.c}->${g.k} g${g.groups}`,
    );
  }
}

function label(kind: string, g: ConvGeometry, ep: Epilogue, tex = false): string {
  return `dw_${kind} ${g.n}x${g.c}x${g.h}x${g.w} k${g.kh}x${g.kw} s${g.sh}x${g.sw} p${g.ph}x${g.pw}${
    ep.bias ? " +bias" : ""
  }${ep.accumulate ? " acc" : ""}${tex ? " tex" : ""}`;
}

/**
 * The bindings of a depthwise kernel reading `input` and writing `output`: input, w, [bias], output;
 * without `input` when it is read from a texture (declared after these, see `rowWalk`).
 */
function bindings(input: string | null, output: string, ep: Epilogue): Binding[] {
  return [
    ...(input ? [{ name: input, access: "read" as const }] : []),
    { name: "w", access: "read" },
    ...(ep.bias ? [{ name: "bias", access: "read" as const }] : []),
    { name: output, access: "read_write" },
  ];
}

/**
 * A row-walking kernel: one invocation per (image, channel, `row` of `rows`), in workgroups of one
 * SIMD chunk (few invocations, each doing a row's work). `body` sees `i`, the row, `plane`
 * (image * channels + channel), `ch` and `wb` (the channel's first weight).
 */
function rowWalk(
  kind: string,
  g: ConvGeometry,
  ep: Epilogue,
  io: [string, string],
  o: { row: string; rows: number; tex?: string[] },
  body: string,
): { src: KernelSource; groups: [number, number, number] } {
  const tex = o.tex ?? [];
  const storage = bindings(tex.length ? null : io[0], io[1], ep);
  const k = elementwise(label(kind, g, ep, tex.length > 0), {
    bindings: storage,
    prelude: tex.map((name, t) => textureDecl(storage.length + t, `t_${name}`, `${name}_`)).join("\n"),
    n: g.n * g.c * o.rows,
    wg: 8,
    body: `  let ${o.row} = i % ${u32(o.rows)};
  let plane = i / ${u32(o.rows)};
  let ch = plane % ${u32(g.c)};
  let wb = ch * ${u32(g.kh * g.kw)};
${body}`,
  });
  return { src: k.src, groups: [k.groups[0], k.groups[1] ?? 1, 1] };
}

/** The store of one finished value `v` of channel `ch` to `out[i]`, per the epilogue. */
function put(out: string, ep: Epilogue): string {
  const v = ep.bias ? "v + bias[ch]" : "v";
  return `${out}[i] = ${ep.accumulate ? `${out}[i] + ` : ""}${v};`;
}

/**
 * y = depthwise_conv(x, w) (+ bias) (+= y). Bindings: x, w, [bias], y; w is [c, 1, kh, kw].
 */
export function depthwiseForwardKernel(
  g: ConvGeometry,
  opts: { epilogue?: Epilogue } = {},
): { src: KernelSource; groups: [number, number, number] } {
  check(g);
  const ep = opts.epilogue ?? {};
  const { kh, kw, sh, sw, ph, pw, h, w, oh, ow } = g;
  const k = elementwise(label("fwd", g, ep), {
    bindings: bindings("x", "y", ep),
    n: g.n * g.c * oh * ow,
    // Unsigned wrap-around turns a negative coordinate into a huge one: one compare per axis.
    body: `  let ox = i % ${u32(ow)};
  let oy = (i / ${u32(ow)}) % ${u32(oh)};
  let plane = i / ${u32(oh * ow)};
  let ch = plane % ${u32(g.c)};
  let xb = plane * ${u32(h * w)};
  let wb = ch * ${u32(kh * kw)};
  var v = 0.0;
  for (var r = 0u; r < ${u32(kh)}; r++) {
    let iy = oy * ${u32(sh)} + r - ${u32(ph)};
    if (iy >= ${u32(h)}) { continue; }
    for (var s = 0u; s < ${u32(kw)}; s++) {
      let ix = ox * ${u32(sw)} + s - ${u32(pw)};
      if (ix >= ${u32(w)}) { continue; }
      v = fma(x[xb + iy * ${u32(w)} + ix], w[wb + r * ${u32(kw)} + s], v);
    }
  }
  ${put("y", ep)}`,
  });
  return { src: k.src, groups: [k.groups[0], k.groups[1] ?? 1, 1] };
}

/**
 * {@linkcode depthwiseForwardKernel} as row walks: one invocation per (image, channel, output
 * row) keeps the channel's kh x kw weights in registers and slides a kh x kw window of x along the
 * row, loading only the sw newest columns of each input row per output (the per-element form
 * loads every tap of x and w for every output: 2*kh*kw loads against kh*sw). Same fma chain, in
 * the same tap order, as the per-element kernel, and a tap outside the image contributes
 * fma(0, w, v) = v, so results match it bit for bit. The hourglass upsampling's input gradient
 * (4x4 taps, stride 2) is this kernel.
 */
export function depthwiseForwardRowsKernel(
  g: ConvGeometry,
  opts: { epilogue?: Epilogue; texture?: boolean } = {},
): { src: KernelSource; groups: [number, number, number] } {
  check(g);
  const ep = opts.epilogue ?? {};
  const xAt = (at: string) => (opts.texture ? `x_(${at})` : `x[${at}]`);
  const { kh, kw, sh, sw, ph, pw, h, w, oh, ow } = g;
  // Columns that stay in the window from one output to the next, and those loaded anew.
  const keep = Math.max(kw - sw, 0);
  const R = Array.from({ length: kh }, (_, r) => r), S = Array.from({ length: kw }, (_, s) => s);
  const v = (r: number, s: number) => `v${r}_${s}`;
  // Column s of the window for output column `ox`: in the image, or a zero.
  const load = (r: number, s: number, ox: string) => {
    const ix = `${ox} * ${u32(sw)} + ${u32(s)} - ${u32(pw)}`;
    return `select(0.0, ${xAt(`row${r} + select(0u, ${ix}, ${ix} < ${u32(w)})`)}, ok${r} && ${ix} < ${
      u32(w)
    })`;
  };
  let chain = "0.0";
  for (const r of R) for (const s of S) chain = `fma(${v(r, s)}, w${r}_${s}, ${chain})`;
  // Unsigned wrap-around turns a negative coordinate into a huge one: one compare per axis.
  return rowWalk(
    "fwd rows",
    g,
    ep,
    ["x", "y"],
    { row: "oy", rows: oh, tex: opts.texture ? ["x"] : [] },
    `  let xb = plane * ${u32(h * w)};
  let yb = i * ${u32(ow)};
${R.map((r) => S.map((s) => `  let w${r}_${s} = w[wb + ${u32(r * kw + s)}];`).join("\n")).join("\n")}
${
      R.map((r) =>
        `  let iy${r} = oy * ${u32(sh)} + ${u32(r)} - ${u32(ph)};
  let ok${r} = iy${r} < ${u32(h)};
  let row${r} = xb + select(0u, iy${r}, ok${r}) * ${u32(w)};`
      ).join("\n")
    }
${R.map((r) => S.slice(0, keep).map((s) => `  var ${v(r, s)} = ${load(r, s, "0u")};`).join("\n")).join("\n")}
  for (var ox = 0u; ox < ${u32(ow)}; ox++) {
${R.map((r) => S.slice(keep).map((s) => `    let ${v(r, s)} = ${load(r, s, "ox")};`).join("\n")).join("\n")}
    let acc = ${chain};
    y[yb + ox] = ${ep.accumulate ? "y[yb + ox] + " : ""}${ep.bias ? "acc + bias[ch]" : "acc"};
${R.map((r) => S.slice(0, keep).map((s) => `    ${v(r, s)} = ${v(r, s + sw)};`).join("\n")).join("\n")}
  }`,
  );
}

/**
 * dx = depthwise_conv_transpose(dy, w) (+ bias per channel) (+= dx): the input gradient of the
 * depthwise convolution `g`, and the forward pass of a depthwise deconvolution. Bindings: dy, w,
 * [bias], dx.
 */
export function depthwiseDgradKernel(
  g: ConvGeometry,
  opts: { epilogue?: Epilogue } = {},
): { src: KernelSource; groups: [number, number, number] } {
  check(g);
  const ep = opts.epilogue ?? {};
  const { kh, kw, sh, sw, ph, pw, h, w, oh, ow } = g;
  const k = elementwise(label("dgrad", g, ep), {
    bindings: bindings("dy", "dx", ep),
    n: g.n * g.c * h * w,
    // ty = iy + ph - r must be a non-negative multiple of the stride: start r at the one residue
    // that qualifies and step by the stride; oy = ty / sh then only needs an upper bound (a tap
    // past the top edge has r > iy + ph, which wraps ty around to a huge value).
    body: `  let ix = i % ${u32(w)};
  let iy = (i / ${u32(w)}) % ${u32(h)};
  let plane = i / ${u32(h * w)};
  let ch = plane % ${u32(g.c)};
  let yb = plane * ${u32(oh * ow)};
  let wb = ch * ${u32(kh * kw)};
  var v = 0.0;
  for (var r = (iy + ${u32(ph)}) % ${u32(sh)}; r < ${u32(kh)}; r += ${u32(sh)}) {
    let oy = (iy + ${u32(ph)} - r) / ${u32(sh)};
    if (oy >= ${u32(oh)}) { continue; }
    for (var s = (ix + ${u32(pw)}) % ${u32(sw)}; s < ${u32(kw)}; s += ${u32(sw)}) {
      let ox = (ix + ${u32(pw)} - s) / ${u32(sw)};
      if (ox >= ${u32(ow)}) { continue; }
      v = fma(dy[yb + oy * ${u32(ow)} + ox], w[wb + r * ${u32(kw)} + s], v);
    }
  }
  ${put("dx", ep)}`,
  });
  return { src: k.src, groups: [k.groups[0], k.groups[1] ?? 1, 1] };
}

/**
 * {@linkcode depthwiseDgradKernel} for dx sides that are multiples of the stride (an upsampling
 * deconvolution's output always is): one invocation per (image, channel, row block of sh rows)
 * walks the row's blocks of sh x sw outputs. In such a block the output of phase (py, px) takes
 * the taps r = (py + ph) mod sh, r + sh, ... and s likewise, each from dy at a fixed offset from
 * the block, (py + ph - r) / sh rows and (px + pw - s) / sw columns; so the channel's weights
 * stay in registers, the dy values the block reads sit in a small window that slides one column
 * per block, and every index is a constant. For the x2 upsampling (4x4, stride 2, pad 1) that is
 * 3 dy loads and 16 multiply-adds per four outputs, where the per-element form makes 8 loads per
 * output and loops over taps that differ between neighbouring lanes.
 */
export function depthwiseDgradRowsKernel(
  g: ConvGeometry,
  opts: { epilogue?: Epilogue; texture?: boolean } = {},
): { src: KernelSource; groups: [number, number, number] } {
  check(g);
  if (g.h % g.sh !== 0 || g.w % g.sw !== 0) {
    throw new RangeError(
      `depthwise dgrad rows: dx side ${g.h}x${g.w} is not a multiple of the stride ${g.sh}x${g.sw}`,
    );
  }
  const ep = opts.epilogue ?? {};
  const { kh, kw, sh, sw, ph, pw, h, w, oh, ow } = g;
  const HB = h / sh, WB = w / sw;
  // Taps of each phase with their dy offsets from the block: [tap, offset].
  const taps = (p: number, pad: number, k: number, st: number) => {
    const out: [number, number][] = [];
    for (let r = (p + pad) % st; r < k; r += st) out.push([r, (p + pad - r) / st]);
    return out;
  };
  const rowTaps = Array.from({ length: sh }, (_, py) => taps(py, ph, kh, sh));
  const colTaps = Array.from({ length: sw }, (_, px) => taps(px, pw, kw, sw));
  const rowOffs = [...new Set(rowTaps.flat().map(([, o]) => o))].sort((a, b) => a - b);
  const colOffs = [...new Set(colTaps.flat().map(([, o]) => o))].sort((a, b) => a - b);
  const c0 = colOffs[0] ?? 0, c1 = colOffs[colOffs.length - 1] ?? 0;
  const nm = (o: number) => (o < 0 ? `m${-o}` : `p${o}`);
  const win = (ro: number, co: number) => `d${nm(ro)}_${nm(co)}`;
  const usedW = new Set<string>();
  const lines: string[] = [];
  // The window holds columns c0..c1 (relative to the block) of every row offset; it slides by one.
  const dyAt = (at: string) => (opts.texture ? `dy_(${at})` : `dy[${at}]`);
  const load = (ro: number, co: string) =>
    `select(0.0, ${
      dyAt(`yb + select(0u, oy${nm(ro)} * ${u32(ow)} + ${co}, ok${nm(ro)} && ${co} < ${u32(ow)})`)
    }, ok${nm(ro)} && ${co} < ${u32(ow)})`;
  const decls: string[] = [];
  for (const ro of rowOffs) {
    decls.push(`  let oy${nm(ro)} = by + ${ro >= 0 ? `${u32(ro)}` : `0u - ${u32(-ro)}`};`);
    decls.push(`  let ok${nm(ro)} = oy${nm(ro)} < ${u32(oh)};`);
    for (let co = c0; co < c1; co++) {
      decls.push(`  var ${win(ro, co)} = ${co < 0 ? "0.0" : load(ro, `${u32(co)}`)};`);
    }
  }
  // Per block: load the window's last column, compute the phases, store, slide.
  lines.push(`    let cx = bx + ${c1 >= 0 ? u32(c1) : `0u - ${u32(-c1)}`};`);
  for (const ro of rowOffs) lines.push(`    let ${win(ro, c1)} = ${load(ro, "cx")};`);
  for (let py = 0; py < sh; py++) {
    for (let px = 0; px < sw; px++) {
      // The per-element kernel's fma chain in its tap order, so results match it bit for bit.
      let v = "0.0";
      for (const [r, ro] of rowTaps[py]) {
        for (const [sx, co] of colTaps[px]) {
          usedW.add(`w${r}_${sx}`);
          v = `fma(${win(ro, co)}, w${r}_${sx}, ${v})`;
        }
      }
      const at = `xb + ${u32(py * w + px)} + bx * ${u32(sw)}`;
      const val = ep.bias ? `(${v}) + bias[ch]` : v;
      const old = opts.texture ? `dx_(${at})` : `dx[${at}]`;
      lines.push(`    dx[${at}] = ${ep.accumulate ? `${old} + ` : ""}${val};`);
    }
  }
  for (const ro of rowOffs) {
    for (let co = c0; co < c1; co++) lines.push(`    ${win(ro, co)} = ${win(ro, co + 1)};`);
  }
  const wl = [...usedW].sort().map((n) => {
    const [r, sx] = n.slice(1).split("_").map(Number);
    return `  let ${n} = w[wb + ${u32(r * kw + sx)}];`;
  });
  return rowWalk(
    "dgrad rows",
    g,
    ep,
    ["dy", "dx"],
    { row: "by", rows: HB, tex: opts.texture ? ["dy", ...(ep.accumulate ? ["dx"] : [])] : [] },
    `  let yb = plane * ${u32(oh * ow)};
  let xb = plane * ${u32(h * w)} + by * ${u32(sh * w)};
${wl.join("\n")}
${decls.join("\n")}
  for (var bx = 0u; bx < ${u32(WB)}; bx++) {
${lines.join("\n")}
  }`,
  );
}

/**
 * Options of the depthwise recorders. `textures` (default: on CPU adapters) reads the row walks'
 * operands from texture copies: there a storage load takes a lane-by-lane path and a texel load
 * costs a third of it (see windows.ts). Same fma chains either way; only an accumulating input
 * gradient may differ in its last bit, where the shader compiler fuses the final addition differently.
 */
export interface DepthwiseRecordOptions {
  accumulate?: boolean;
  textures?: boolean;
}

/** Records y (+)= depthwise_conv(x, w) (+ bias). */
export function recordDepthwiseForward(
  rec: Recorder,
  io: { x: Region; w: Region; bias?: Region; y: Region; geometry: ConvGeometry },
  opts: DepthwiseRecordOptions = {},
): void {
  const g = io.geometry, epilogue = { bias: !!io.bias, accumulate: opts.accumulate };
  check(g);
  const cpu = rec.kernels.gpu.isFallback;
  // On a CPU adapter, rows of at least four outputs amortise the window's first load; narrower
  // ones, and GPUs (one thread an output suits them), per element.
  if (cpu && g.ow >= 4) {
    const views = (opts.textures ?? true) ? copiesForReading(rec, [io.x], g.n * g.c * g.h * g.w) : null;
    const k = depthwiseForwardRowsKernel(g, { epilogue, texture: !!views });
    const rest = [io.w, ...(io.bias ? [io.bias] : []), io.y];
    rec.dispatch(k.src, views ? [...rest, ...views] : [io.x, ...rest], k.groups);
    return;
  }
  const k = depthwiseForwardKernel(g, { epilogue });
  rec.dispatch(k.src, [io.x, io.w, ...(io.bias ? [io.bias] : []), io.y], k.groups);
}

/** Records dx (+)= depthwise_conv_transpose(dy, w) (+ bias). */
export function recordDepthwiseDgrad(
  rec: Recorder,
  io: { dy: Region; w: Region; bias?: Region; dx: Region; geometry: ConvGeometry },
  opts: DepthwiseRecordOptions = {},
): void {
  const g = io.geometry, epilogue = { bias: !!io.bias, accumulate: opts.accumulate };
  const rest = [io.w, ...(io.bias ? [io.bias] : []), io.dx];
  if (g.h % g.sh === 0 && g.w % g.sw === 0) {
    // dy, and the dx being added to, from texture copies (different slots: read together). Should
    // dx not copy, dy's copy goes unread and both are read from storage.
    let views: GPUTextureView[] | null = null;
    if (opts.textures ?? rec.kernels.gpu.isFallback) {
      const dyView = copiesForReading(rec, [io.dy], g.n * g.c * g.oh * g.ow);
      const dxView = dyView && opts.accumulate
        ? copiesForReading(rec, [io.dx], g.n * g.c * g.h * g.w, 1)
        : [];
      views = dyView && dxView ? [...dyView, ...dxView] : null;
    }
    const k = depthwiseDgradRowsKernel(g, { epilogue, texture: !!views });
    rec.dispatch(k.src, views ? [...rest, ...views] : [io.dy, ...rest], k.groups);
    return;
  }
  const k = depthwiseDgradKernel(g, { epilogue });
  rec.dispatch(k.src, [io.dy, ...rest], k.groups);
}
