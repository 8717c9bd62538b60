/**
 * Convolution and GEMM benchmarks, and the kernel lab that picked the GEMM tiles.
 *
 * benchConv times the three implicit-GEMM kernels of a 3x3 128->128 convolution on 1x128x64x64
 * (forward with bias, input gradient, weight gradient); benchGemm times a 1024^3 GEMM. Each
 * figure is the median over several runs of wall time from submit to queue completion, after a
 * warm-up run, with the kernel repeated inside one compute pass so that a run lasts long enough
 * to swamp submit overhead on fast GPUs.
 *
 * As a script it is the kernel lab: `deno run -A run/bench/conv.ts --sweep` times a list of
 * tile configurations (override with `--tiles 128x128x16/16x16,64x64x8/4x4`); `--tile T` times
 * one; `--quick` shrinks the problems. Set DENO_WEBGPU_BACKEND=gl|vulkan to compare backends.
 * @module
 */
import { parseArgs } from "node:util";
import { describeGpu, type Gpu, sharedGpu } from "../../kernels/device.ts";
import { createRegion } from "../../graph/tensor.ts";
import { Rng } from "../../io/prng.ts";
import { encodeProgram, KernelCache, Recorder, type Region } from "../../kernels/kernel.ts";
import { type ConvGeometry, convGeometry, convMacs } from "../../kernels/conv_geometry.ts";
import {
  type ConvPath,
  dgradWorkspaceFloats,
  recordConvDgrad,
  recordConvForward,
  recordConvWgrad,
} from "../../kernels/conv.ts";
import { defaultTile, fmtTile, parseTile, recordGemm, type TileConfig } from "../../kernels/gemm.ts";
import { median } from "./stats.ts";

/** Options of {@linkcode benchConv} and {@linkcode benchGemm}. */
export interface ConvBenchOptions {
  /** Device (default: the shared one). */
  gpu?: Gpu;
  /** Smaller problems for smoke runs: a 64->64 conv at 32x32 and a 256^3 GEMM. */
  quick?: boolean;
  /** Base GEMM tile (fitted per kernel); default the adapter's. */
  tile?: TileConfig | string;
  /** Timed runs; the median is reported. Default 5 (3 when quick). */
  runs?: number;
  /**
   * benchConv's problem as [n, c, h, w, k]: a 3x3 pad-1 convolution of k outputs (default
   * 1x128x64x64 -> 128, or 1x64x32x32 -> 64 when quick).
   */
  problem?: readonly [number, number, number, number, number];
  /** Kernel family of benchConv (default "auto", the adapter's choice; see kernels/conv.ts). */
  path?: ConvPath;
}

/** One timed kernel. */
export interface KernelTiming {
  /** Median milliseconds per call. */
  ms: number;
  /** Fastest run, milliseconds per call (less sensitive to background load). */
  minMs: number;
  /** GFLOP/s at the median wall time. */
  gflops: number;
  /**
   * GFLOP per CPU-second this process used (median), where /proc/self/stat is readable; null
   * otherwise. On a CPU adapter sharing its cores with other jobs this shows the kernel's own
   * efficiency: multiply by the free cores for the unloaded rate.
   */
  gflopsPerCpuSecond: number | null;
}

/** User+system CPU milliseconds of this process (all threads), or null off Linux. */
function cpuMs(): number | null {
  try {
    const s = Deno.readTextFileSync("/proc/self/stat");
    const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) * 10; // clock ticks, 100 per second on Linux
  } catch {
    return null;
  }
}

/** Result of {@linkcode benchConv}. */
export interface ConvBenchResult {
  adapter: string;
  backend: string;
  tile: string;
  /** The forward's kernel (names the family that ran: GEMM core or direct). */
  kernels: string;
  /** Input shape and conv parameters. */
  problem: string;
  forward: KernelTiming;
  dgrad: KernelTiming;
  wgrad: KernelTiming;
}

/** Result of {@linkcode benchGemm}. */
export interface GemmBenchResult {
  adapter: string;
  backend: string;
  tile: string;
  /** "MxNxK". */
  problem: string;
  gemm: KernelTiming;
}

/**
 * Times one recorded program: a warm-up run (pipeline creation, first-use costs), then a run of
 * ten repetitions sizes the repetition count so a timed run lasts ~0.5 s, then `runs` timed runs.
 * Sizing from one repetition would time the submit's round trip (a fast GPU) or Deno's ~10 ms
 * queue poll (llvmpipe) instead of the kernels.
 */
async function timeProgram(
  gpu: Gpu,
  rec: Recorder,
  o: { runs: number; flops: number },
): Promise<KernelTiming> {
  const cpu: number[] = [];
  const once = async (reps: number) => {
    const c0 = cpuMs();
    const t0 = performance.now();
    const enc = gpu.device.createCommandEncoder();
    for (let r = 0; r < reps; r++) encodeProgram(enc, rec.dispatches);
    gpu.device.queue.submit([enc.finish()]);
    await gpu.device.queue.onSubmittedWorkDone();
    const ms = (performance.now() - t0) / reps;
    const c1 = cpuMs();
    if (c0 !== null && c1 !== null) cpu.push((c1 - c0) / reps);
    return ms;
  };
  await once(1);
  // Size from ten repetitions: waiting for the queue costs a fixed ~10 ms in Deno, which a single
  // repetition would count as kernel time. A timed run then lasts ~0.5 s.
  const first = await once(10);
  cpu.length = 0;
  const reps = Math.max(10, Math.min(2000, Math.ceil(500 / Math.max(first, 1e-3))));
  const t: number[] = [];
  for (let i = 0; i < o.runs; i++) t.push(await once(reps));
  const ms = median(t);
  const cpuMed = cpu.length ? median(cpu) : 0;
  return {
    ms,
    minMs: Math.min(...t),
    gflops: o.flops / (ms * 1e6),
    gflopsPerCpuSecond: cpuMed > 0 ? o.flops / (cpuMed * 1e6) : null,
  };
}

function resolveTile(gpu: Gpu, tile: TileConfig | string | undefined): TileConfig {
  if (typeof tile === "string") return parseTile(tile);
  return tile ?? defaultTile(gpu);
}

/** Times conv forward (+bias), dgrad and wgrad of a 3x3 pad-1 conv (default 1x128x64x64 -> 128). */
export async function benchConv(opts: ConvBenchOptions = {}): Promise<ConvBenchResult> {
  const gpu = opts.gpu ?? await sharedGpu();
  const tile = resolveTile(gpu, opts.tile);
  const runs = opts.runs ?? (opts.quick ? 3 : 5);
  const [n, c, h, w, k] = opts.problem ?? (opts.quick ? [1, 64, 32, 32, 64] : [1, 128, 64, 64, 128]);
  const g: ConvGeometry = convGeometry([n, c, h, w], { k, kernel: 3, pad: 1 });
  const rng = new Rng(3);
  const buffers: Region[] = [];
  const region = (n: number) => {
    const r = createRegion(gpu, rng.fillNormal(new Float32Array(n)), "bench");
    buffers.push(r);
    return r;
  };
  const x = region(g.n * g.c * g.h * g.w), dx = region(g.n * g.c * g.h * g.w);
  const y = region(g.n * g.k * g.oh * g.ow), dy = region(g.n * g.k * g.oh * g.ow);
  const wt = region(g.k * g.c * g.kh * g.kw), dw = region(g.k * g.c * g.kh * g.kw), bias = region(g.k);
  const cache = new KernelCache(gpu);
  const recorder = (fill: (rec: Recorder) => void) => {
    const rec = new Recorder(cache);
    rec.owner = "bench";
    fill(rec);
    return rec;
  };
  // An explicit tile means the GEMM core; otherwise the adapter's choice unless a path is given.
  const o = { tile: opts.tile === undefined ? undefined : tile, path: opts.path };
  const fwd = recorder((rec) => recordConvForward(rec, { x, w: wt, bias, y, geometry: g }, o));
  const ws = region(Math.max(4, dgradWorkspaceFloats(g, o)));
  const dgrad = recorder((rec) => recordConvDgrad(rec, { dy, w: wt, dx, workspace: ws, geometry: g }, o));
  const wgrad = recorder((rec) => recordConvWgrad(rec, { dy, x, dw, geometry: g }, o));
  await cache.check();
  const flops = 2 * convMacs(g);
  try {
    return {
      adapter: gpu.adapterName,
      backend: gpu.backend,
      tile: fmtTile(tile),
      kernels: fwd.dispatches.map((d) => d.label.split(": ")[1]).join(", "),
      problem: `${g.n}x${g.c}x${g.h}x${g.w} 3x3 pad 1 -> ${g.k}`,
      forward: await timeProgram(gpu, fwd, { runs, flops }),
      dgrad: await timeProgram(gpu, dgrad, { runs, flops }),
      wgrad: await timeProgram(gpu, wgrad, { runs, flops }),
    };
  } finally {
    for (const b of buffers) b.buffer.destroy();
  }
}

/** Times C = A * B for square row-major matrices (default 1024^3). */
export async function benchGemm(opts: ConvBenchOptions = {}): Promise<GemmBenchResult> {
  const gpu = opts.gpu ?? await sharedGpu();
  const tile = resolveTile(gpu, opts.tile);
  const runs = opts.runs ?? (opts.quick ? 3 : 5);
  const n = opts.quick ? 256 : 1024;
  const rng = new Rng(4);
  const a = createRegion(gpu, rng.fillNormal(new Float32Array(n * n)), "bench");
  const b = createRegion(gpu, rng.fillNormal(new Float32Array(n * n)), "bench");
  const c = createRegion(gpu, n * n, "bench");
  const rec = new Recorder(new KernelCache(gpu));
  rec.owner = "bench";
  recordGemm(rec, { a, b, c }, { M: n, N: n, K: n, tile });
  await rec.kernels.check();
  try {
    return {
      adapter: gpu.adapterName,
      backend: gpu.backend,
      tile: fmtTile(tile),
      problem: `${n}x${n}x${n}`,
      gemm: await timeProgram(gpu, rec, { runs, flops: 2 * n * n * n }),
    };
  } finally {
    for (const r of [a, b, c]) r.buffer.destroy();
  }
}

/** Tiles the lab sweeps by default: workgroup 64-128 square, per-thread 4x4 to 16x16. */
export const SWEEP_TILES: readonly string[] = [
  "64x64x16/4x4",
  "64x64x16/8x8",
  "128x128x8/8x8",
  "64x128x16/8x16",
  "128x128x16/16x16",
  "128x64x16/16x8",
];

function fmtTiming(t: KernelTiming): string {
  const cpu = t.gflopsPerCpuSecond === null ? "" : `, ${t.gflopsPerCpuSecond.toFixed(1)} GFLOP per CPU-s`;
  return `${t.gflops.toFixed(1).padStart(6)} GFLOP/s (${t.ms.toFixed(1)} ms, best ${
    t.minMs.toFixed(1)
  }${cpu})`;
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean", default: false },
      sweep: { type: "boolean", default: false },
      tile: { type: "string" },
      tiles: { type: "string" },
      runs: { type: "string" },
      json: { type: "boolean", default: false },
    },
  });
  const gpu = await sharedGpu();
  console.log(describeGpu(gpu));
  const tiles: (string | undefined)[] = values.sweep || values.tiles
    ? (values.tiles?.split(",") ?? [...SWEEP_TILES])
    : [values.tile];
  for (const tile of tiles) {
    const o = { gpu, quick: values.quick, tile, runs: values.runs ? Number(values.runs) : undefined };
    const conv = await benchConv(o);
    const gemm = await benchGemm(o);
    if (values.json) console.log(JSON.stringify({ conv, gemm }));
    else {
      console.log(`tile ${conv.tile}`);
      console.log(`  conv ${conv.problem} forward ${fmtTiming(conv.forward)}`);
      console.log(`  conv ${conv.problem} dgrad   ${fmtTiming(conv.dgrad)}`);
      console.log(`  conv ${conv.problem} wgrad   ${fmtTiming(conv.wgrad)}`);
      console.log(`  gemm ${gemm.problem}             ${fmtTiming(gemm.gemm)}`);
    }
  }
}
