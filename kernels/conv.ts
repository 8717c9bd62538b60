/**
 * 2-D convolution (NCHW, weights [K, C/groups, kh, kw], Caffe semantics) as implicit GEMM on the
 * tiled core of gemm.ts. The three kernels differ only in their load/store hooks:
 *
 * | kernel | GEMM per group g (Cg = C/groups, Kg = K/groups) | A | B | C |
 * |---|---|---|---|---|
 * | forward | Kg x (N*OH*OW) x (Cg*kh*kw) | weights | im2col(x) | y (+ bias) |
 * | dgrad | Cg x (N*H*W) x (Kg*kh*kw) | weights, transposed | col2im view of dy | dx (= or +=) |
 * | wgrad | Kg x (Cg*kh*kw) x (N*OH*OW) | dy | im2col(x), transposed | dw |
 *
 * Nothing is materialised: the im2col index arithmetic runs inside the hooks with every size a
 * literal, so divisions are by constants. dgrad gathers (rather than scatters) so each dx
 * element is written once, which keeps the result deterministic and lets it accumulate into a
 * gradient another consumer already wrote. 1x1 stride-1 unpadded convolutions get plain-GEMM
 * hooks (no index decoding, vec4 loads along pixels). A transposed convolution (deconvolution)
 * runs forward as dgrad and backward as forward + wgrad of the mirrored geometry. Depthwise
 * forward and dgrad, where a GEMM would have M = 1, go to the direct kernels of depthwise.ts.
 * On CPU adapters, ungrouped convolutions take the register-blocked direct kernels of
 * conv_direct.ts instead (strided input gradients keep the GEMM core; see {@linkcode ConvPath}).
 * @module
 */
import {
  type Binding,
  declare,
  elementwise,
  type KernelSource,
  type Recorder,
  type Region,
  u32,
  WG,
} from "./kernel.ts";
import { workgroupFold } from "./reduce.ts";
import {
  CPU_TILE,
  defaultTile,
  type GemmDims,
  type GemmHooks,
  gemmKernel,
  GPU_TILE,
  pickSplitK,
  pickTile,
  type TileConfig,
} from "./gemm.ts";
import { type ConvGeometry, type Epilogue, isDepthwise, isPointwise, shapeLabel } from "./conv_geometry.ts";
import { recordDepthwiseDgrad, recordDepthwiseForward } from "./depthwise.ts";
import {
  directDgradWorkspaceFloats,
  directFits,
  directWgradWorkspaceFloats,
  recordDirectDgrad,
  recordDirectForward,
  recordDirectWgrad,
} from "./conv_direct.ts";

/** A tensor binding that is read as vec4 when `vec` (scalar reads then go through a component). */
function tensor(name: string, access: Binding["access"], vec: boolean): {
  binding: Binding;
  at(i: string): string;
  at4(i: string): string;
} {
  return {
    binding: { name, access, type: vec ? "vec4<f32>" : "f32" },
    at: (i) => vec ? `${name}[(${i}) / 4u][(${i}) % 4u]` : `${name}[${i}]`,
    at4: (i) => `${name}[(${i}) / 4u]`,
  };
}

/**
 * Flat NCHW index of pixel `n` (image-major over `images x hw` pixels) of channel `ch` in a
 * tensor with `channels` channels of `hw` pixels each.
 */
function pixelAt(n: string, ch: string, t: { channels: number; hw: number }): string {
  return `(${n} / ${u32(t.hw)}) * ${u32(t.channels * t.hw)} + (${ch}) * ${u32(t.hw)} + ${n} % ${u32(t.hw)}`;
}

/**
 * Store hooks writing C[m, n] of group g to `out` at `at(g, m, n)`, adding bias[g * M + m] and
 * accumulating as the epilogue asks; the vec4 form when `out` is read as vec4.
 */
function epilogue(
  out: ReturnType<typeof tensor>,
  o: { at: (grp: string, m: string, n: string) => string; M: number; ep: Epilogue; vec: boolean },
): Pick<GemmHooks, "store" | "store4"> {
  const value = (grp: string, v: string, vec: boolean) => {
    if (!o.ep.bias) return v;
    const b = `bias[${grp} * ${u32(o.M)} + m]`;
    return `${v} + ${vec ? `vec4(${b})` : b}`;
  };
  const put = (ref: string, v: string) => `${ref} = ${o.ep.accumulate ? `${ref} + ` : ""}${v};`;
  return {
    store: ({ g, m, n }, v) => `{ let m = ${m}; ${put(out.at(o.at(g, "m", n)), value(g, v, false))} }`,
    store4: o.vec
      ? ({ g, m, n }, v) => `{ let m = ${m}; ${put(out.at4(o.at(g, "m", n)), value(g, v, true))} }`
      : undefined,
  };
}

/** WGSL helpers decoding GEMM indices into image coordinates (all divisors are literals). */
function decodePrelude(g: ConvGeometry): string {
  const { kh, kw, oh, ow, h, w } = g;
  return `
// k of an im2col column -> (channel in group, kernel row, kernel col)
fn tap(k: u32) -> vec3u { return vec3u(k / ${u32(kh * kw)}, (k / ${u32(kw)}) % ${u32(kh)}, k % ${u32(kw)}); }
// flat output pixel -> (image, row, col)
fn opix(n: u32) -> vec3u { return vec3u(n / ${u32(oh * ow)}, (n / ${u32(ow)}) % ${u32(oh)}, n % ${u32(ow)}); }
// flat input pixel -> (image, row, col)
fn ipix(n: u32) -> vec3u { return vec3u(n / ${u32(h * w)}, (n / ${u32(w)}) % ${u32(h)}, n % ${u32(w)}); }`;
}

/**
 * x[b, g*Cg + c, y*sh - ph + r, xx*sw - pw + s] or 0 in the padding. Unsigned wrap-around turns
 * negative coordinates into huge ones, so one `<` per axis covers both edges.
 */
function im2colFn(g: ConvGeometry, x: { at(i: string): string }): string {
  const cg = g.c / g.groups;
  return `
fn im2col(grp: u32, t: vec3u, p: vec3u) -> f32 {
  let iy = p.y * ${u32(g.sh)} + t.y - ${u32(g.ph)};
  let ix = p.z * ${u32(g.sw)} + t.z - ${u32(g.pw)};
  if (iy >= ${u32(g.h)} || ix >= ${u32(g.w)}) { return 0.0; }
  return ${x.at(`((p.x * ${u32(g.c)} + grp * ${u32(cg)} + t.x) * ${u32(g.h)} + iy) * ${u32(g.w)} + ix`)};
}`;
}

/** A kernel plus its launch size. */
export interface ConvKernel {
  src: KernelSource;
  groups: [number, number, number];
}

/** GEMM sizes of the forward pass. */
export function forwardDims(g: ConvGeometry): GemmDims {
  return { M: g.k / g.groups, N: g.n * g.oh * g.ow, K: (g.c / g.groups) * g.kh * g.kw, groups: g.groups };
}

/** GEMM sizes of the input gradient. */
export function dgradDims(g: ConvGeometry): GemmDims {
  return { M: g.c / g.groups, N: g.n * g.h * g.w, K: (g.k / g.groups) * g.kh * g.kw, groups: g.groups };
}

/** GEMM sizes of the weight gradient. */
export function wgradDims(g: ConvGeometry): GemmDims {
  return { M: g.k / g.groups, N: (g.c / g.groups) * g.kh * g.kw, K: g.n * g.oh * g.ow, groups: g.groups };
}

/**
 * y = conv(x, w) (+ bias). Bindings: x, w, [bias], y.
 */
export function convForwardKernel(
  g: ConvGeometry,
  opts: { epilogue?: Epilogue; tile: TileConfig },
): ConvKernel {
  const ep = opts.epilogue ?? {};
  const dims = forwardDims(g);
  const { M, K } = dims;
  const ohw = g.oh * g.ow, hw = g.h * g.w;
  const pw = isPointwise(g);
  const x = tensor("x", "read", pw && hw % 4 === 0);
  const w = tensor("w", "read", K % 4 === 0);
  const y = tensor("y", "read_write", ohw % 4 === 0);
  const cg = g.c / g.groups;
  const yAt = (grp: string, m: string, n: string) =>
    pixelAt(n, `${grp} * ${u32(M)} + ${m}`, { channels: g.k, hw: ohw });
  const xAt = (grp: string, k: string, n: string) =>
    pixelAt(n, `${grp} * ${u32(cg)} + ${k}`, { channels: g.c, hw });
  const hooks: GemmHooks = {
    bindings: [
      x.binding,
      w.binding,
      ...(ep.bias ? [{ name: "bias", access: "read" as const }] : []),
      y.binding,
    ],
    prelude: pw ? "" : decodePrelude(g) + im2colFn(g, x),
    aContiguous: "k",
    bContiguous: "n",
    loadA: ({ g: grp, m, k }) => w.at(`(${grp} * ${u32(M)} + ${m}) * ${u32(K)} + ${k}`),
    loadA4: K % 4 === 0
      ? ({ g: grp, m, k }) => w.at4(`(${grp} * ${u32(M)} + ${m}) * ${u32(K)} + ${k}`)
      : undefined,
    loadB: pw
      ? ({ g: grp, k, n }) => x.at(xAt(grp, k, n))
      : ({ g: grp, k, n }) => `im2col(${grp}, tap(${k}), opix(${n}))`,
    loadB4: pw && hw % 4 === 0 ? ({ g: grp, k, n }) => x.at4(xAt(grp, k, n)) : undefined,
    ...epilogue(y, { at: yAt, M, ep, vec: ohw % 4 === 0 }),
  };
  return gemmKernel(`conv_fwd ${shapeLabel(g)}${epLabel(ep)}`, { dims, hooks, tile: opts.tile });
}

function epLabel(ep: Epilogue): string {
  return `${ep.bias ? " +bias" : ""}${ep.accumulate ? " acc" : ""}`;
}

/**
 * dx = conv_transpose(dy, w), the gradient of the convolution input (also the forward pass of
 * a deconvolution). Bindings: dy, w, [bias], dx; bias is indexed by input channel.
 */
export function convDgradKernel(
  g: ConvGeometry,
  opts: { epilogue?: Epilogue; tile: TileConfig },
): ConvKernel {
  const ep = opts.epilogue ?? {};
  const dims = dgradDims(g);
  const { M } = dims;
  const kg = g.k / g.groups, cg = g.c / g.groups, taps = g.kh * g.kw;
  const ohw = g.oh * g.ow, hw = g.h * g.w;
  const pw = isPointwise(g);
  const dy = tensor("dy", "read", pw && ohw % 4 === 0);
  const w = tensor("w", "read", pw && cg % 4 === 0);
  const dx = tensor("dx", "read_write", hw % 4 === 0);
  const dxAt = (grp: string, m: string, n: string) =>
    pixelAt(n, `${grp} * ${u32(cg)} + ${m}`, { channels: g.c, hw });
  const dyAt = (grp: string, k: string, n: string) =>
    pixelAt(n, `${grp} * ${u32(kg)} + ${k}`, { channels: g.k, hw: ohw });
  // A[c, (kk, r, s)] = w[g*Kg + kk, c, r, s].
  const wAt = (grp: string, m: string, k: string) =>
    pw
      ? `(${grp} * ${u32(kg)} + ${k}) * ${u32(cg)} + ${m}`
      : `((${grp} * ${u32(kg)} + ${k} / ${u32(taps)}) * ${u32(cg)} + ${m}) * ${u32(taps)} + ${k} % ${
        u32(taps)
      }`;
  // Output pixel (oy, ox) reaches input (iy, ix) through tap (r, s) when
  // iy = oy*sh - ph + r, i.e. oy = (iy + ph - r) / sh exactly; wrap-around rejects negatives.
  const col2im = `
fn col2im(grp: u32, t: vec3u, p: vec3u) -> f32 {
  let ty = p.y + ${u32(g.ph)} - t.y;
  let tx = p.z + ${u32(g.pw)} - t.z;
  let oy = ty / ${u32(g.sh)};
  let ox = tx / ${u32(g.sw)};
  if (oy >= ${u32(g.oh)} || ox >= ${u32(g.ow)}${g.sh > 1 ? ` || ty % ${u32(g.sh)} != 0u` : ""}${
    g.sw > 1 ? ` || tx % ${u32(g.sw)} != 0u` : ""
  }) { return 0.0; }
  return ${dy.at(`((p.x * ${u32(g.k)} + grp * ${u32(kg)} + t.x) * ${u32(g.oh)} + oy) * ${u32(g.ow)} + ox`)};
}`;
  const hooks: GemmHooks = {
    bindings: [
      dy.binding,
      w.binding,
      ...(ep.bias ? [{ name: "bias", access: "read" as const }] : []),
      dx.binding,
    ],
    prelude: pw ? "" : decodePrelude(g) + col2im,
    // Runs of kh*kw taps are contiguous along k; for 1x1 kernels the channel index is.
    aContiguous: pw ? "m" : "k",
    bContiguous: "n",
    loadA: ({ g: grp, m, k }) => w.at(wAt(grp, m, k)),
    loadA4: pw && cg % 4 === 0 ? ({ g: grp, m, k }) => w.at4(wAt(grp, m, k)) : undefined,
    loadB: pw
      ? ({ g: grp, k, n }) => dy.at(dyAt(grp, k, n))
      : ({ g: grp, k, n }) => `col2im(${grp}, tap(${k}), ipix(${n}))`,
    loadB4: pw && hw % 4 === 0 ? ({ g: grp, k, n }) => dy.at4(dyAt(grp, k, n)) : undefined,
    ...epilogue(dx, { at: dxAt, M, ep, vec: hw % 4 === 0 }),
  };
  return gemmKernel(`conv_dgrad ${shapeLabel(g)}${epLabel(ep)}`, { dims, hooks, tile: opts.tile });
}

/** How a weight-gradient launch delivers its result. */
export interface WgradOptions {
  tile: TileConfig;
  /** Also produce the bias gradient (the row sums of dy, which the GEMM stages anyway). */
  bias?: boolean;
  /**
   * K splits (see {@linkcode GemmDims.splitK}); above 1 the kernel writes partial sums to a
   * workspace that {@linkcode wgradReduceKernel} folds. Default 1.
   */
  splitK?: number;
}

/**
 * dw = sum over images and output pixels of dy x im2col(x), overwriting dw; with `bias` also
 * db[k] = sum of dy over images and pixels. Bindings: dy, x, dw, [db]; with a K split: dy, x,
 * ws, where ws holds, per split s, group g and row m, the N weight partials then the bias
 * partial: ws[((s * groups + g) * M + m) * (N + bias) + n].
 */
export function convWgradKernel(g: ConvGeometry, opts: WgradOptions): ConvKernel {
  const S = opts.splitK ?? 1;
  const dims = { ...wgradDims(g), splitK: S };
  const { M, N } = dims;
  const cg = g.c / g.groups;
  const ohw = g.oh * g.ow, hw = g.h * g.w;
  const pw = isPointwise(g);
  const dy = tensor("dy", "read", ohw % 4 === 0);
  const x = tensor("x", "read", pw && hw % 4 === 0);
  const np = N + (opts.bias ? 1 : 0);
  // The workspace row has an odd length with a bias column, so only then is it read as scalars.
  const out = S > 1 ? tensor("ws", "read_write", np % 4 === 0) : tensor("dw", "read_write", N % 4 === 0);
  const rowAt = (grp: string, m: string, s?: string) =>
    S > 1
      ? `((${s} * ${u32(g.groups)} + ${grp}) * ${u32(M)} + ${m}) * ${u32(np)}`
      : `(${grp} * ${u32(M)} + ${m}) * ${u32(N)}`;
  // The reduction index k runs over (image, output pixel), so it takes the pixel role here.
  const dyAt = (grp: string, m: string, k: string) =>
    pixelAt(k, `${grp} * ${u32(M)} + ${m}`, { channels: g.k, hw: ohw });
  const xAt = (grp: string, n: string, k: string) =>
    pixelAt(k, `${grp} * ${u32(cg)} + ${n}`, { channels: g.c, hw });
  const vecOut = S > 1 ? np % 4 === 0 : N % 4 === 0;
  const hooks: GemmHooks = {
    bindings: [
      dy.binding,
      x.binding,
      out.binding,
      ...(opts.bias && S === 1 ? [{ name: "db", access: "read_write" as const }] : []),
    ],
    prelude: pw ? "" : decodePrelude(g) + im2colFn(g, x),
    aContiguous: "k",
    bContiguous: "k",
    loadA: ({ g: grp, m, k }) => dy.at(dyAt(grp, m, k)),
    loadA4: ohw % 4 === 0 ? ({ g: grp, m, k }) => dy.at4(dyAt(grp, m, k)) : undefined,
    loadB: pw
      ? ({ g: grp, k, n }) => x.at(xAt(grp, n, k))
      : ({ g: grp, k, n }) => `im2col(${grp}, tap(${n}), opix(${k}))`,
    loadB4: pw && hw % 4 === 0 ? ({ g: grp, k, n }) => x.at4(xAt(grp, n, k)) : undefined,
    store: ({ g: grp, m, n, s }, v) => `${out.at(`${rowAt(grp, m, s)} + ${n}`)} = ${v};`,
    store4: vecOut
      ? ({ g: grp, m, n, s }, v) => `${out.at4(`${rowAt(grp, m, s)} + ${n}`)} = ${v};`
      : undefined,
    storeRowSum: !opts.bias
      ? undefined
      : S > 1
      ? ({ g: grp, m, s }, v) => `${out.at(`${rowAt(grp, m, s)} + ${u32(N)}`)} = ${v};`
      : ({ g: grp, m }, v) => `db[${grp} * ${u32(M)} + ${m}] = ${v};`,
  };
  return gemmKernel(`conv_wgrad ${shapeLabel(g)}${opts.bias ? " +bias" : ""}`, {
    dims,
    hooks,
    tile: opts.tile,
  });
}

/**
 * Folds the split partials of {@linkcode convWgradKernel} in split order (fixed, so the result
 * is bit-reproducible) into dw and, with `bias`, db. Bindings: ws, dw, [db].
 */
export function wgradReduceKernel(g: ConvGeometry, opts: { splitK: number; bias?: boolean }): ConvKernel {
  const { M, N, groups } = wgradDims(g);
  const np = N + (opts.bias ? 1 : 0), total = (groups ?? 1) * M * np;
  const terms = Array.from({ length: opts.splitK - 1 }, (_, s) => ` + ws[i + ${u32((s + 1) * total)}]`);
  const k = elementwise(
    `conv_wgrad_reduce ${shapeLabel(g)}${opts.bias ? " +bias" : ""} split${opts.splitK}`,
    {
      bindings: [
        { name: "ws", access: "read" },
        { name: "dw", access: "read_write" },
        ...(opts.bias ? [{ name: "db", access: "read_write" as const }] : []),
      ],
      n: total,
      body: `  let v = ws[i]${terms.join("")};
  let row = i / ${u32(np)};
  let n = i % ${u32(np)};
  ${opts.bias ? `if (n == ${u32(N)}) { db[row] = v; } else { dw[row * ${u32(N)} + n] = v; }` : "dw[i] = v;"}`,
    },
  );
  return { src: k.src, groups: [k.groups[0], k.groups[1] ?? 1, 1] };
}

/** Splits the weight gradient uses on an adapter with this base tile (1 when it needs none). */
function wgradSplit(g: ConvGeometry, tile: TileConfig, isFallback: boolean): number {
  // CPU adapters run a few workgroups per core at a time; GPUs want many more. Each split keeps
  // at least 256 reduction steps so the partials stay cheap next to the multiply-adds.
  const target = isFallback ? 16 : 128;
  return pickSplitK(wgradDims(g), tile, { target, minChunk: 256 });
}

/**
 * Workspace floats {@linkcode recordConvWgrad} wants for `g` on either adapter kind (layers
 * request it at setup, before the adapter's tile is at hand).
 */
export function wgradWorkspaceFloats(
  g: ConvGeometry,
  opts: { bias?: boolean; tile?: TileConfig } = {},
): number {
  const { M, N, groups } = wgradDims(g);
  const cands: [TileConfig, boolean][] = opts.tile
    ? [[opts.tile, true], [opts.tile, false]]
    : [[CPU_TILE, true], [GPU_TILE, false]];
  let most = 0;
  for (const [base, fallback] of cands) {
    const s = wgradSplit(g, pickTile(wgradDims(g), base), fallback);
    if (s > 1) most = Math.max(most, s * (groups ?? 1) * M * (N + (opts.bias ? 1 : 0)));
  }
  // The direct kernels of CPU adapters (never chosen when a tile is forced).
  if (!opts.tile && directFits(g, "wgrad")) most = Math.max(most, directWgradWorkspaceFloats(g, !!opts.bias));
  return most;
}

/**
 * Workspace floats {@linkcode recordConvDgrad} wants for `g`: the transposed weights of a CPU
 * adapter's direct input gradient where its weights overflow a uniform window (none when a tile
 * is forced, which keeps the GEMM core).
 */
export function dgradWorkspaceFloats(g: ConvGeometry, opts: { tile?: TileConfig } = {}): number {
  return opts.tile ? 0 : directDgradWorkspaceFloats(g);
}

/**
 * db[k] = sum over images and pixels of dy[b, k, :, :], one workgroup per channel with a fixed
 * summation order (deterministic, no atomics). Bindings: dy, db.
 */
export function biasGradKernel(dims: { n: number; k: number; hw: number }): ConvKernel {
  const { n, k, hw } = dims;
  const code = `${declare([{ name: "dy", access: "read" }, { name: "db", access: "read_write" }])}
${workgroupFold({ name: "sum", type: "f32", combine: "a + b" })}
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u) {
  let ch = wid.x + wid.y * 65535u;
  if (ch >= ${u32(k)}) { return; }
  var acc = 0.0;
  for (var b = 0u; b < ${u32(n)}; b++) {
    let base = (b * ${u32(k)} + ch) * ${u32(hw)};
    for (var i = lid.x; i < ${u32(hw)}; i += ${u32(WG)}) { acc += dy[base + i]; }
  }
  let total = sum(acc, lid.x);
  if (lid.x == 0u) { db[ch] = total; }
}`;
  const gx = Math.min(k, 65535), gy = Math.ceil(k / 65535);
  return { src: { label: `conv_bias_grad ${n}x${k}x${hw}`, code }, groups: [gx, gy, 1] };
}

/**
 * Which kernels a convolution records. "auto": the direct kernels of conv_direct.ts on CPU
 * adapters wherever they can run (unless a tile is given), the GEMM core otherwise; "gemm" and
 * "direct" force one ("direct" throws where it cannot run).
 */
export type ConvPath = "auto" | "gemm" | "direct";

/** Tile options shared by the record helpers. */
export interface TileOptions {
  /** Base tile (default: the adapter's); fitted to each GEMM with pickTile. */
  tile?: TileConfig;
  /** Kernel family (default "auto"). */
  path?: ConvPath;
}

/** Tries the direct kernel when the options allow it; throws when "direct" was demanded and it cannot run. */
function tryDirect(rec: Recorder, o: TileOptions, what: string, record: () => boolean): boolean {
  const path = o.path ?? "auto";
  if (path === "gemm" || (path === "auto" && (o.tile || !rec.kernels.gpu.isFallback))) return false;
  if (record()) return true;
  if (path === "direct") {
    throw new RangeError(
      `${what}: the direct kernel cannot run here (grouped, strided input gradient, or an operand ` +
        `over 64 KiB / unaligned / without UNIFORM usage for its uniform binding)`,
    );
  }
  return false;
}

function tileFor(rec: Recorder, dims: GemmDims, o: TileOptions): TileConfig {
  return pickTile(dims, o.tile ?? defaultTile(rec.kernels.gpu));
}

/** Records y (+)= conv(x, w) (+ bias); depthwise convolutions take the direct kernel of depthwise.ts. */
export function recordConvForward(
  rec: Recorder,
  io: { x: Region; w: Region; bias?: Region; y: Region; geometry: ConvGeometry },
  opts: TileOptions & { accumulate?: boolean } = {},
): void {
  const g = io.geometry;
  if (isDepthwise(g)) return recordDepthwiseForward(rec, io, opts);
  if (tryDirect(rec, opts, `conv forward ${shapeLabel(g)}`, () => recordDirectForward(rec, io, opts))) return;
  const k = convForwardKernel(g, {
    epilogue: { bias: !!io.bias, accumulate: opts.accumulate },
    tile: tileFor(rec, forwardDims(g), opts),
  });
  rec.dispatch(k.src, [io.x, io.w, ...(io.bias ? [io.bias] : []), io.y], k.groups);
}

/**
 * Records dx (+)= conv_transpose(dy, w) (+ bias per input channel); depthwise convolutions take
 * the direct kernel of depthwise.ts. `workspace`, when it holds {@linkcode dgradWorkspaceFloats},
 * lets a CPU adapter's direct kernels run from transposed weights.
 */
export function recordConvDgrad(
  rec: Recorder,
  io: { dy: Region; w: Region; bias?: Region; dx: Region; workspace?: Region | null; geometry: ConvGeometry },
  opts: TileOptions & { accumulate?: boolean } = {},
): void {
  const g = io.geometry;
  if (isDepthwise(g)) return recordDepthwiseDgrad(rec, io, opts);
  if (tryDirect(rec, opts, `conv dgrad ${shapeLabel(g)}`, () => recordDirectDgrad(rec, io, opts))) return;
  const k = convDgradKernel(g, {
    epilogue: { bias: !!io.bias, accumulate: opts.accumulate },
    tile: tileFor(rec, dgradDims(g), opts),
  });
  rec.dispatch(k.src, [io.dy, io.w, ...(io.bias ? [io.bias] : []), io.dx], k.groups);
}

/**
 * Records dw = weight gradient of conv(x, w) given dy, and db (the bias gradient) when given.
 * Problems with few output tiles split K over several workgroups when `workspace` holds
 * {@linkcode wgradWorkspaceFloats} floats; without it they run unsplit.
 */
export function recordConvWgrad(
  rec: Recorder,
  io: { dy: Region; x: Region; dw: Region; db?: Region; workspace?: Region | null; geometry: ConvGeometry },
  opts: TileOptions & { splitK?: number } = {},
): void {
  const g = io.geometry;
  if (tryDirect(rec, opts, `conv wgrad ${shapeLabel(g)}`, () => recordDirectWgrad(rec, io))) return;
  const tile = tileFor(rec, wgradDims(g), opts);
  const bias = !!io.db;
  let S = opts.splitK ?? wgradSplit(g, tile, rec.kernels.gpu.isFallback);
  const { M, N, groups } = wgradDims(g);
  const wsBytes = S * (groups ?? 1) * M * (N + (bias ? 1 : 0)) * 4;
  if (S > 1 && (!io.workspace || io.workspace.size < wsBytes)) S = 1;
  const k = convWgradKernel(g, { tile, bias, splitK: S });
  if (S === 1) {
    rec.dispatch(k.src, [io.dy, io.x, io.dw, ...(io.db ? [io.db] : [])], k.groups);
    return;
  }
  const ws = { buffer: io.workspace!.buffer, offset: io.workspace!.offset, size: wsBytes };
  rec.dispatch(k.src, [io.dy, io.x, ws], k.groups);
  const r = wgradReduceKernel(g, { splitK: S, bias });
  rec.dispatch(r.src, [ws, io.dw, ...(io.db ? [io.db] : [])], r.groups);
}

/** Records db[k] = sum of dy over images and pixels of channel k (dy is [n, k, hw]). */
export function recordBiasGrad(
  rec: Recorder,
  io: { dy: Region; db: Region },
  dims: { n: number; k: number; hw: number },
): void {
  const k = biasGradKernel(dims);
  rec.dispatch(k.src, [io.dy, io.db], k.groups);
}
