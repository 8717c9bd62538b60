/**
 * The tiled GEMM core every convolution runs on, and plain (batched, row-major) matrix
 * multiplication built from it.
 *
 * The core computes, for each group g, C[m, n] = sum_k A[m, k] * B[k, n] with M x N x K baked
 * into the WGSL. It never addresses memory itself: where A and B come from and where C goes are
 * given by {@linkcode GemmHooks}, small WGSL generators per use (plain matrices here; im2col
 * views of images in conv.ts). One tuned loop nest therefore serves the forward, input-gradient
 * and weight-gradient kernels while each addressing scheme stays readable on its own.
 *
 * Structure: a workgroup owns a BM x BN tile of C. Per BK-slice of the reduction it stages an A
 * tile and a B tile in workgroup memory (each element fetched once through the hooks, bounds
 * handled here), then every thread accumulates a TM x TN sub-tile in registers. Threads own
 * rows `ty + i * (BM / TM)` and columns `tx + j * (BN / TN)` (in units of 4 when vectorised),
 * strided rather than contiguous so neighbouring threads touch neighbouring words.
 *
 * Why vec4 everywhere it is legal: on CPU WebGPU (Mesa llvmpipe) each lane of a SIMD batch of
 * invocations performs its own scalar memory access, so the cost is per load instruction, not
 * per byte; a vec4 load costs about as much as a scalar one. Workgroup tiles are therefore
 * stored as vec4 along M and N, global loads and stores use vec4 where the hooks can prove
 * alignment, and large per-thread tiles raise the FMA-to-load ratio (run/bench/conv.ts sweeps
 * them). On GPUs the same layout gives 128-bit shared-memory traffic.
 * @module
 */
import { type Binding, declare, type KernelSource, type Recorder, type Region, u32 } from "./kernel.ts";

/** Workgroup and per-thread tile sizes of the GEMM core. */
export interface TileConfig {
  /** Output rows per workgroup (a multiple of `tm`). */
  bm: number;
  /** Output columns per workgroup (a multiple of `tn`). */
  bn: number;
  /** Reduction depth staged in workgroup memory per iteration. */
  bk: number;
  /** Output rows per thread (register blocking); a multiple of 4 uses vec4 loads. */
  tm: number;
  /** Output columns per thread; a multiple of 4 uses vec4 loads and accumulators. */
  tn: number;
  /** Workgroup buffers per operand: 2 overlaps staging the next slice with computing this one. */
  buffers?: 1 | 2;
}

/**
 * Tiles for CPU adapters (llvmpipe): large per-thread tiles, because every workgroup-memory
 * load is a per-lane scalar access there. Chosen by the sweep in run/bench/conv.ts: GFLOP per
 * CPU-second on a 2-core EPYC (1024^3 GEMM / 3x3 conv forward) for per-thread tiles 4x4 3.0/3.6,
 * 8x8 5.5/4.6, 8x16 8.0/6.0, 16x16 10.7/7.5; the 16x16 tile double-buffered at bk 8 measured the
 * same, and 16x32 or 32x32 spill and drop to ~4.
 */
export const CPU_TILE: TileConfig = { bm: 128, bn: 128, bk: 16, tm: 16, tn: 16 };

/** Tiles for GPUs: 256 threads with 8x8 outputs each, within typical register budgets (not yet timed on one). */
export const GPU_TILE: TileConfig = { bm: 128, bn: 128, bk: 8, tm: 8, tn: 8 };

/** The default tile for an adapter. */
export function defaultTile(gpu: { isFallback: boolean }): TileConfig {
  return gpu.isFallback ? CPU_TILE : GPU_TILE;
}

/** WGSL u32 expressions naming one element of the A, B or C matrix of group `g`. */
export interface GemmIndex {
  g: string;
  m: string;
  n: string;
  k: string;
}

/** Index of an A element. */
export type AIndex = Omit<GemmIndex, "n">;
/** Index of a B element. */
export type BIndex = Omit<GemmIndex, "m">;
/**
 * Index of a C element; `s` names the K-split (0 <= s < splitK) when the launch splits K, and
 * the value is then a partial sum over that split's K range.
 */
export type CIndex = Omit<GemmIndex, "k"> & { s?: string };

/** Index of a row sum of A (see {@linkcode GemmHooks.storeRowSum}). */
export type RowIndex = Omit<GemmIndex, "k" | "n"> & { s?: string };

/**
 * Where a GEMM reads and writes. Each generator receives WGSL u32 expressions and returns WGSL
 * text. The core calls them only for in-range indices (m < M, n < N, k < K), so a hook needs no
 * bounds checks beyond what its own addressing adds (zero padding, stride holes).
 *
 * The optional vec4 forms cover four consecutive elements along the operand's contiguous index
 * starting at the given (4-aligned) index. Provide them only when the layout guarantees that
 * such a run is contiguous and 16-byte aligned whenever that dimension is a multiple of 4; the
 * core uses them only then.
 */
export interface GemmHooks {
  /** Storage bindings in binding order; hooks refer to them by name. */
  bindings: readonly Binding[];
  /** Module-scope WGSL (constants, helper functions) the hooks rely on. */
  prelude?: string;
  /** Which index of A is contiguous in memory (orders the cooperative loads). */
  aContiguous: "m" | "k";
  /** Which index of B is contiguous in memory. */
  bContiguous: "k" | "n";
  /** f32 expression for A[m, k] of group g. */
  loadA(ix: AIndex): string;
  /** f32 expression for B[k, n] of group g. */
  loadB(ix: BIndex): string;
  /** vec4<f32> expression for A at ix and the next 3 along `aContiguous`. */
  loadA4?(ix: AIndex): string;
  /** vec4<f32> expression for B at ix and the next 3 along `bContiguous`. */
  loadB4?(ix: BIndex): string;
  /** Statement(s) writing the finished value `v` (an f32 expression) of C[m, n] of group g. */
  store(ix: CIndex, v: string): string;
  /** Statement(s) writing `v` (a vec4<f32> expression) to C[m, n..n+3] of group g. */
  store4?(ix: CIndex, v: string): string;
  /**
   * When given, the core also sums each row of A over K (over the split's K range when K is
   * split) from the tiles it stages anyway, and writes it with this statement (v an f32
   * expression). A convolution's weight gradient gets its bias gradient this way: A is dy there.
   */
  storeRowSum?(ix: RowIndex, v: string): string;
}

/** Problem size of one GEMM launch. */
export interface GemmDims {
  M: number;
  N: number;
  K: number;
  /** Independent problems (conv groups, batch); dispatched along z. Default 1. */
  groups?: number;
  /**
   * Split the reduction into this many consecutive K ranges of {@linkcode splitChunk} each, one
   * workgroup per range (also along z), for problems with too few output tiles to occupy the
   * device. The store hooks then receive the split index and must write partial sums apart;
   * the caller reduces them. Default 1.
   */
  splitK?: number;
}

/** K range of one split: a multiple of `bk` so that only the last split can end mid-slice. */
export function splitChunk(dims: GemmDims, tile: TileConfig): number {
  const s = dims.splitK ?? 1;
  return Math.ceil(Math.ceil(dims.K / s) / tile.bk) * tile.bk;
}

/**
 * Chooses a K split for a problem whose output tiles cannot occupy `target` workgroups: the
 * fewest splits reaching the target while each keeps at least `minChunk` of K (so that the
 * partial-sum traffic stays small next to the multiply-adds). Never leaves a split empty.
 */
export function pickSplitK(
  dims: GemmDims,
  tile: TileConfig,
  opts: { target: number; minChunk: number },
): number {
  const tiles = gemmGroups({ ...dims, splitK: 1 }, tile).reduce((a, b) => a * b, 1);
  if (tiles >= opts.target) return 1;
  const want = Math.min(Math.ceil(opts.target / tiles), Math.floor(dims.K / opts.minChunk));
  if (want <= 1) return 1;
  // Round to what the bk-aligned chunk really yields.
  const chunk = splitChunk({ ...dims, splitK: want }, tile);
  return Math.ceil(dims.K / chunk);
}

/** Largest workgroup memory the core uses; the WebGPU default limit. */
const MAX_SHARED_BYTES = 16384;

/**
 * Fewest threads pickTile lets a workgroup have before it trades per-thread tile for threads.
 * 32 rather than 64 keeps 8x8 per-thread tiles (not 4x8) on the 16-32-channel convolutions of
 * the tiny preset: on llvmpipe every workgroup-memory read is a per-lane load, so the larger
 * register block wins (training step 761 -> 691 and 786 -> 718 ms side by side, conv forward
 * plus input gradient -30..-60 ms); 16 lost again (too little staging parallelism).
 */
const MIN_THREADS = 32;

/** Checks a tile config; throws RangeError naming the broken rule. */
export function validateTile(t: TileConfig): void {
  const ok = [t.bm, t.bn, t.bk, t.tm, t.tn].every((v) => Number.isInteger(v) && v > 0);
  if (!ok || t.bm % t.tm || t.bn % t.tn) {
    throw new RangeError(`tile ${fmtTile(t)}: sizes must be positive with bm % tm == 0 and bn % tn == 0`);
  }
  const threads = (t.bm / t.tm) * (t.bn / t.tn);
  if (threads > 256) throw new RangeError(`tile ${fmtTile(t)}: ${threads} threads per workgroup (max 256)`);
  if ((t.bm + t.bn) * t.bk * 4 * (t.buffers ?? 1) > MAX_SHARED_BYTES) {
    throw new RangeError(`tile ${fmtTile(t)}: needs more than ${MAX_SHARED_BYTES} bytes of workgroup memory`);
  }
}

/** Formats a tile as "BMxBNxBK/TMxTN", e.g. "128x128x16/16x16", with a trailing "d" when double-buffered. */
export function fmtTile(t: TileConfig): string {
  return `${t.bm}x${t.bn}x${t.bk}/${t.tm}x${t.tn}${t.buffers === 2 ? "d" : ""}`;
}

/** Parses the {@linkcode fmtTile} format, e.g. "128x128x16/16x16" or "128x128x8/8x8d". */
export function parseTile(s: string): TileConfig {
  const m = /^(\d+)x(\d+)x(\d+)\/(\d+)x(\d+)(d?)$/.exec(s.trim());
  if (!m) throw new RangeError(`tile "${s}": expected BMxBNxBK/TMxTN[d], e.g. 128x128x16/16x16`);
  const [bm, bn, bk, tm, tn] = m.slice(1, 6).map(Number);
  const t: TileConfig = m[6] ? { bm, bn, bk, tm, tn, buffers: 2 } : { bm, bn, bk, tm, tn };
  validateTile(t);
  return t;
}

/**
 * Fits `base` to a problem: halves the workgroup (and then per-thread) tile along a dimension
 * the problem cannot fill (depthwise convs have M = 1; wgrad of a 3-channel input has N = 147),
 * then widens the other side while fewer than {@linkcode MIN_THREADS} threads would share the
 * staging work.
 */
export function pickTile(dims: GemmDims, base: TileConfig): TileConfig {
  const t = { ...base };
  const fit = (size: number, b: "bm" | "bn", r: "tm" | "tn") => {
    while (t[b] / 2 >= size && t[b] > 1) {
      if (t[b] > t[r]) t[b] /= 2;
      else {
        t[b] /= 2;
        t[r] = Math.max(1, t[r] / 2);
      }
    }
  };
  fit(dims.M, "bm", "tm");
  fit(dims.N, "bn", "tn");
  const threads = () => (t.bm / t.tm) * (t.bn / t.tn);
  const fits = (bm: number, bn: number) => (bm + bn) * t.bk * 4 * (t.buffers ?? 1) <= MAX_SHARED_BYTES;
  while (threads() < MIN_THREADS) {
    if (t.bn < dims.N && fits(t.bm, t.bn * 2)) t.bn *= 2;
    else if (t.bm < dims.M && fits(t.bm * 2, t.bn)) t.bm *= 2;
    else if (t.tn > 4 && t.tn > t.tm) t.tn /= 2;
    else if (t.tm > 4) t.tm /= 2;
    else break;
  }
  validateTile(t);
  return t;
}

/** Workgroup counts of a GEMM launch. */
export function gemmGroups(dims: GemmDims, tile: TileConfig): [number, number, number] {
  return [Math.ceil(dims.N / tile.bn), Math.ceil(dims.M / tile.bm), (dims.groups ?? 1) * (dims.splitK ?? 1)];
}

/** One operand tile's staging plan (see `stageTile`). */
interface StagePlan {
  /** Name of the workgroup array. */
  arr: string;
  /** Tile extent along K and along M (for A) or N (for B). */
  rows: number;
  cols: number;
  /** Workgroup array holds vec4 along `cols`. */
  vecCols: boolean;
  /** Global loads walk `cols` (true) or `rows` (false) fastest. */
  colsFast: boolean;
  /** Global loads fetch 4 consecutive elements along the fast index. */
  load4: boolean;
  /** Bound checks needed along cols / rows. */
  checkCols: string | null;
  checkRows: string | null;
  /** WGSL load expression for an element (scalar) or run of 4 (vec4) at tile position (row, col). */
  load(row: string, col: string): string;
  /** WGSL u32 offset of the target buffer within the workgroup array (double buffering). */
  offset: string;
}

/**
 * Emits the cooperative copy of one operand tile into workgroup memory: thread `li` handles
 * units li, li + T, ... where a unit is one element or one aligned run of 4 along the
 * contiguous index (which varies fastest across threads for coalescing).
 */
function stageTile(p: StagePlan, T: number): string {
  const unit = p.load4 ? 4 : 1;
  const fastLen = (p.colsFast ? p.cols : p.rows) / unit;
  const slowLen = p.colsFast ? p.rows : p.cols;
  const total = fastLen * slowLen;
  const lines: string[] = [];
  const off = p.offset === "0u" ? "" : `${p.offset} + `;
  const at = (row: string, col: string) =>
    p.vecCols
      ? `${p.arr}[${off}(${row}) * ${u32(p.cols / 4)} + (${col}) / 4u][(${col}) % 4u]`
      : `${p.arr}[${off}(${row}) * ${u32(p.cols)} + ${col}]`;
  for (let pass = 0; pass * T < total; pass++) {
    const e = pass === 0 ? "li" : `(li + ${u32(pass * T)})`;
    const fast = `(${e} % ${u32(fastLen)})${unit > 1 ? " * 4u" : ""}`;
    const slow = `(${e} / ${u32(fastLen)})`;
    const row = p.colsFast ? slow : fast, col = p.colsFast ? fast : slow;
    const guard = (pass + 1) * T > total ? `${e} < ${u32(total)}` : "";
    const conds = [p.checkRows?.replace("$", "r"), p.checkCols?.replace("$", "c")].filter(Boolean);
    const body: string[] = [`let r = ${row};`, `let c = ${col};`];
    const zero = unit > 1 ? "vec4<f32>()" : "0.0";
    body.push(`var v = ${zero};`);
    body.push(
      conds.length ? `if (${conds.join(" && ")}) { v = ${p.load("r", "c")}; }` : `v = ${p.load("r", "c")};`,
    );
    if (unit === 1) body.push(`${at("r", "c")} = v;`);
    else if (p.colsFast && p.vecCols) body.push(`${p.arr}[${off}r * ${u32(p.cols / 4)} + c / 4u] = v;`);
    else {
      for (let q = 0; q < 4; q++) {
        const rq = p.colsFast ? "r" : `r + ${u32(q)}`, cq = p.colsFast ? `c + ${u32(q)}` : "c";
        body.push(`${at(rq, cq)} = v[${q}];`);
      }
    }
    const block = body.map((l) => `      ${l}`).join("\n");
    lines.push(guard ? `    if (${guard}) {\n${block}\n    }` : `    {\n${block}\n    }`);
  }
  return lines.join("\n");
}

/**
 * Emits the WGSL of one specialised GEMM: dims and tile sizes are literals, and bounds checks
 * are emitted only along dimensions the tile does not divide.
 */
export function gemmKernel(
  label: string,
  opts: { dims: GemmDims; hooks: GemmHooks; tile: TileConfig },
): { src: KernelSource; groups: [number, number, number] } {
  const { dims, hooks, tile } = opts;
  validateTile(tile);
  const { bm, bn, bk, tm, tn } = tile;
  const nbuf = tile.buffers ?? 1;
  const { M, N, K } = dims;
  const S = dims.splitK ?? 1;
  const chunk = splitChunk(dims, tile);
  if (S > 1 && (S - 1) * chunk >= K) {
    throw new RangeError(`gemm ${label}: split ${S} of K ${K} leaves one empty`);
  }
  const sIx = S > 1 ? { s: "split" } : {};
  // K range of this workgroup: literals without a split, so the loop bound is a constant.
  const kBeg = S > 1 ? "kbeg" : "0u", kEnd = S > 1 ? "kend" : u32(K);
  const vecA = tm % 4 === 0, vecB = tn % 4 === 0;
  const TX = bn / tn, TY = bm / tm, T = TX * TY;
  const checkM = M % bm !== 0, checkN = N % bn !== 0, checkK = K % bk !== 0;
  const lt = (what: string, n: number) => `${what} < ${u32(n)}`;

  // A tile: rows = k (bk), cols = m (bm). vec4 global runs need the run inside one tile and the
  // contiguous problem dimension a multiple of 4 (so a run is wholly in or out of bounds).
  const a4 = !!hooks.loadA4 &&
    (hooks.aContiguous === "m" ? bm % 4 === 0 && M % 4 === 0 : bk % 4 === 0 && K % 4 === 0);
  const stageA = (ks: string, offset: string) =>
    stageTile({
      arr: "As",
      offset,
      rows: bk,
      cols: bm,
      vecCols: vecA,
      colsFast: hooks.aContiguous === "m",
      load4: a4,
      checkRows: checkK ? lt(`(${ks} + $)`, K) : null,
      checkCols: checkM ? lt("(m0 + $)", M) : null,
      load: (r, c) => {
        const ix = { g: "g", m: `(m0 + ${c})`, k: `(${ks} + ${r})` };
        return a4 ? hooks.loadA4!(ix) : hooks.loadA(ix);
      },
    }, T);
  const b4 = !!hooks.loadB4 &&
    (hooks.bContiguous === "n" ? bn % 4 === 0 && N % 4 === 0 : bk % 4 === 0 && K % 4 === 0);
  const stageB = (ks: string, offset: string) =>
    stageTile({
      arr: "Bs",
      offset,
      rows: bk,
      cols: bn,
      vecCols: vecB,
      colsFast: hooks.bContiguous === "n",
      load4: b4,
      checkRows: checkK ? lt(`(${ks} + $)`, K) : null,
      checkCols: checkN ? lt("(n0 + $)", N) : null,
      load: (r, c) => {
        const ix = { g: "g", n: `(n0 + ${c})`, k: `(${ks} + ${r})` };
        return b4 ? hooks.loadB4!(ix) : hooks.loadB(ix);
      },
    }, T);

  // Register tile: rows (i, r) and column groups j; with vecB each accumulator is a vec4 of
  // four adjacent columns.
  const I = vecA ? tm / 4 : tm, R = vecA ? 4 : 1, J = vecB ? tn / 4 : tn;
  const rowOf = (i: number, r: number) =>
    vecA ? `(ty + ${u32(i * TY)}) * 4u + ${u32(r)}` : `ty + ${u32(i * TY)}`;
  const colOf = (j: number) => vecB ? `(tx + ${u32(j * TX)}) * 4u` : `tx + ${u32(j * TX)}`;
  const accT = vecB ? "vec4<f32>" : "f32";
  const decl: string[] = [], inner: string[] = [], stores: string[] = [];
  const rowStride = vecA ? bm / 4 : bm, colStride = vecB ? bn / 4 : bn;
  for (let i = 0; i < I; i++) inner.push(`let a${i} = As[ka + ty + ${u32(i * TY)}];`);
  if (hooks.storeRowSum) {
    // Every thread sums its rows (uniform control flow; one add per loaded A value), and the
    // threads of the first column of the first N tile write them.
    for (let i = 0; i < I; i++) {
      decl.push(`  var rs${i} = ${vecA ? "vec4<f32>" : "f32"}();`);
      inner.push(`rs${i} += a${i};`);
      for (let r = 0; r < R; r++) {
        const m = `(m0 + ${rowOf(i, r)})`;
        const cond = ["wid.x == 0u", "tx == 0u", ...(checkM ? [lt(m, M)] : [])];
        const st = hooks.storeRowSum({ g: "g", m, ...sIx }, vecA ? `rs${i}[${r}]` : `rs${i}`);
        stores.push(`  if (${cond.join(" && ")}) { ${st} }`);
      }
    }
  }
  for (let j = 0; j < J; j++) inner.push(`let b${j} = Bs[kb + tx + ${u32(j * TX)}];`);
  const useStore4 = vecB && !!hooks.store4 && N % 4 === 0;
  for (let i = 0; i < I; i++) {
    for (let r = 0; r < R; r++) {
      const av = vecA ? `a${i}[${r}]` : `a${i}`;
      for (let j = 0; j < J; j++) {
        const c = `c${i}_${r}_${j}`;
        decl.push(`  var ${c} = ${accT}();`);
        inner.push(`${c} = fma(${vecB ? `vec4(${av})` : av}, b${j}, ${c});`);
        const m = `(m0 + ${rowOf(i, r)})`, n0 = `(n0 + ${colOf(j)})`;
        const mOk = checkM ? [lt(m, M)] : [];
        if (!vecB) {
          const cond = [...mOk, ...(checkN ? [lt(n0, N)] : [])];
          const st = hooks.store({ g: "g", m, n: n0, ...sIx }, c);
          stores.push(cond.length ? `  if (${cond.join(" && ")}) { ${st} }` : `  ${st}`);
        } else if (useStore4) {
          const cond = [...mOk, ...(checkN ? [lt(n0, N)] : [])];
          const st = hooks.store4!({ g: "g", m, n: n0, ...sIx }, c);
          stores.push(cond.length ? `  if (${cond.join(" && ")}) { ${st} }` : `  ${st}`);
        } else {
          for (let q = 0; q < 4; q++) {
            const n = `(${n0} + ${u32(q)})`;
            const cond = [...mOk, ...(checkN ? [lt(n, N)] : [])];
            const st = hooks.store({ g: "g", m, n, ...sIx }, `${c}[${q}]`);
            stores.push(cond.length ? `  if (${cond.join(" && ")}) { ${st} }` : `  ${st}`);
          }
        }
      }
    }
  }
  const compute = (offA: string, offB: string) =>
    `    for (var kk = 0u; kk < ${u32(bk)}; kk++) {
      let ka = ${offA}kk * ${u32(rowStride)};
      let kb = ${offB}kk * ${u32(colStride)};
${inner.map((l) => `      ${l}`).join("\n")}
    }`;
  // Single buffer: stage, barrier, compute, barrier. Double buffer: the next slice is staged
  // into the other half while this one is consumed, so one barrier per slice suffices.
  const sizeA = bk * rowStride, sizeB = bk * colStride;
  const mainLoop = nbuf === 1
    ? `  for (var k0 = ${kBeg}; k0 < ${kEnd}; k0 += ${u32(bk)}) {
${stageA("k0", "0u")}
${stageB("k0", "0u")}
    workgroupBarrier();
${compute("", "")}
    workgroupBarrier();
  }`
    : `${stageA(kBeg, "0u")}
${stageB(kBeg, "0u")}
  workgroupBarrier();
  for (var k0 = ${kBeg}; k0 < ${kEnd}; k0 += ${u32(bk)}) {
    let cur = ((k0 - ${kBeg}) / ${u32(bk)}) & 1u;
    let k1 = k0 + ${u32(bk)};
    if (k1 < ${kEnd}) {
      let nxtA = (1u - cur) * ${u32(sizeA)};
      let nxtB = (1u - cur) * ${u32(sizeB)};
${stageA("k1", "nxtA")}
${stageB("k1", "nxtB")}
    }
    let curA = cur * ${u32(sizeA)};
    let curB = cur * ${u32(sizeB)};
${compute("curA + ", "curB + ")}
    workgroupBarrier();
  }`;
  const code = `${declare(hooks.bindings)}
${hooks.prelude ?? ""}
var<workgroup> As: array<${vecA ? "vec4<f32>" : "f32"}, ${nbuf * bk * rowStride}>;
var<workgroup> Bs: array<${vecB ? "vec4<f32>" : "f32"}, ${nbuf * bk * colStride}>;

@compute @workgroup_size(${TX}, ${TY})
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
${
    S > 1
      ? `  let g = wid.z / ${u32(S)};
  let split = wid.z % ${u32(S)};
  let kbeg = split * ${u32(chunk)};
  let kend = min(kbeg + ${u32(chunk)}, ${u32(K)});`
      : "  let g = wid.z;"
  }
  let m0 = wid.y * ${u32(bm)};
  let n0 = wid.x * ${u32(bn)};
  let tx = lid.x;
  let ty = lid.y;
${decl.join("\n")}
${mainLoop}
${stores.join("\n")}
}`;
  const split = S > 1 ? ` split${S}` : "";
  return { src: { label: `${label} ${fmtTile(tile)}${split}`, code }, groups: gemmGroups(dims, tile) };
}

/** Options for {@linkcode recordGemm}: C (+)= A * B over `batch` independent problems. */
export interface GemmOptions {
  M: number;
  N: number;
  K: number;
  /** Problems in one launch; matrices of problem b start at b * rows * cols. Default 1. */
  batch?: number;
  /** A is stored [K, M] (read transposed) instead of [M, K]. */
  transA?: boolean;
  /** B is stored [N, K] instead of [K, N]. */
  transB?: boolean;
  /** Add into C instead of overwriting it. */
  accumulate?: boolean;
  /** Tile override (default: {@linkcode defaultTile} fitted with {@linkcode pickTile}). */
  tile?: TileConfig;
  label?: string;
}

/**
 * Hooks of a plain batched row-major GEMM. Matrices are bound as vec4 arrays when every matrix
 * size is a multiple of 4 (so every row run starting at a multiple of 4 is aligned).
 */
export function gemmHooks(o: GemmOptions): GemmHooks {
  const { M, N, K } = o;
  const v = (M * K) % 4 === 0 && (K * N) % 4 === 0 && (M * N) % 4 === 0;
  const sa = u32(M * K), sb = u32(K * N), sc = u32(M * N);
  const aAt = ({ g, m, k }: AIndex) =>
    o.transA ? `${g} * ${sa} + ${k} * ${u32(M)} + ${m}` : `${g} * ${sa} + ${m} * ${u32(K)} + ${k}`;
  const bAt = ({ g, k, n }: BIndex) =>
    o.transB ? `${g} * ${sb} + ${n} * ${u32(K)} + ${k}` : `${g} * ${sb} + ${k} * ${u32(N)} + ${n}`;
  const cAt = ({ g, m, n }: CIndex) => `${g} * ${sc} + ${m} * ${u32(N)} + ${n}`;
  const scalar = (arr: string, at: string) => v ? `${arr}[(${at}) / 4u][(${at}) % 4u]` : `${arr}[${at}]`;
  const type = v ? "vec4<f32>" : "f32";
  return {
    bindings: [{ name: "a", access: "read", type }, { name: "b", access: "read", type }, {
      name: "c",
      access: "read_write",
      type,
    }],
    aContiguous: o.transA ? "m" : "k",
    bContiguous: o.transB ? "k" : "n",
    loadA: (ix) => scalar("a", aAt(ix)),
    loadB: (ix) => scalar("b", bAt(ix)),
    loadA4: v ? (ix) => `a[(${aAt(ix)}) / 4u]` : undefined,
    loadB4: v ? (ix) => `b[(${bAt(ix)}) / 4u]` : undefined,
    store: (ix, val) => {
      const at = cAt(ix);
      const ref = scalar("c", at);
      return `${ref} = ${o.accumulate ? `${ref} + ` : ""}${val};`;
    },
    store4: v
      ? (ix, val) => {
        const ref = `c[(${cAt(ix)}) / 4u]`;
        return `${ref} = ${o.accumulate ? `${ref} + ` : ""}${val};`;
      }
      : undefined,
  };
}

/** Builds the kernel of {@linkcode recordGemm} without recording it (benchmarks use this). */
export function gemm(
  o: GemmOptions & { tile: TileConfig },
): { src: KernelSource; groups: [number, number, number] } {
  const dims = { M: o.M, N: o.N, K: o.K, groups: o.batch ?? 1 };
  return gemmKernel(o.label ?? `gemm ${o.M}x${o.N}x${o.K}`, { dims, hooks: gemmHooks(o), tile: o.tile });
}

/** Records C (+)= A * B for row-major matrices in `a`, `b`, `c`. */
export function recordGemm(rec: Recorder, io: { a: Region; b: Region; c: Region }, o: GemmOptions): void {
  const dims = { M: o.M, N: o.N, K: o.K, groups: o.batch ?? 1 };
  const k = gemm({ ...o, tile: o.tile ?? pickTile(dims, defaultTile(rec.kernels.gpu)) });
  rec.dispatch(k.src, [io.a, io.b, io.c], k.groups);
}
