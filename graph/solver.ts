/**
 * Optimisers. A solver records its update kernels into the training program once; per step it
 * only supplies a few hyper-parameters (learning rate, iteration) that the net writes to a small
 * GPU buffer before the submit. Updates run over the flat parameter buffer, one dispatch per
 * group of parameters sharing lr/decay multipliers (split into chunks the device can bind).
 * @module
 */
import type { ParamLayout } from "./net.ts";
import { elementwise, f32, type Recorder, type Region } from "../kernels/kernel.ts";
import { viewSizes } from "../kernels/prewarm.ts";

/** What a solver gets when recording its update. */
export interface SolverContext {
  layout: ParamLayout;
  /** 16 floats written before every step: [0] learning rate, [1] iteration + 1, then solver-specific. */
  hyper: Region;
  /** Allocates a persistent GPU buffer (history), counted in the net's memory. */
  alloc(label: string, bytes: number): GPUBuffer;
}

/** Learning-rate schedule (Caffe lr_policy). */
export type LrPolicy =
  | { type: "fixed" }
  | { type: "step"; gamma: number; stepsize: number }
  | { type: "multistep"; gamma: number; stepvalues: number[] }
  | { type: "poly"; power: number; maxIter: number }
  | { type: "exp"; gamma: number }
  | { type: "inv"; gamma: number; power: number };

/** Learning rate at iteration `iter` (Caffe's formulas). */
export function learningRate(baseLr: number, policy: LrPolicy, iter: number): number {
  switch (policy.type) {
    case "fixed":
      return baseLr;
    case "step":
      return baseLr * Math.pow(policy.gamma, Math.floor(iter / policy.stepsize));
    case "multistep":
      return baseLr * Math.pow(policy.gamma, policy.stepvalues.filter((s) => iter >= s).length);
    case "poly":
      return baseLr * Math.pow(Math.max(0, 1 - iter / policy.maxIter), policy.power);
    case "exp":
      return baseLr * Math.pow(policy.gamma, iter);
    case "inv":
      return baseLr * Math.pow(1 + policy.gamma * iter, -policy.power);
  }
}

/** Common solver settings. */
export interface SolverOptions {
  baseLr: number;
  policy?: LrPolicy;
  /** L2 weight decay (scaled per parameter by decay_mult). */
  weightDecay?: number;
}

/** An optimiser the net can record. */
export interface Solver {
  readonly type: string;
  readonly options: SolverOptions;
  /** Records the update dispatches (called once per net build). */
  record(rec: Recorder, ctx: SolverContext): void;
  /** The 16 hyper-parameter floats for the step that starts at `iter`. */
  hyper(iter: number): Float32Array;
  /** Solver history buffers (same layout as the parameters), for checkpoints. */
  history(): GPUBuffer[];
}

/** Splits a parameter group into byte ranges no larger than the device can bind at once. */
export function chunks(offset: number, bytes: number, maxBinding: number, align: number): [number, number][] {
  const step = Math.floor(maxBinding / align) * align;
  const out: [number, number][] = [];
  for (let o = 0; o < bytes; o += step) out.push([offset + o, Math.min(step, bytes - o)]);
  return out;
}

/** Shared plumbing: history buffers and per-chunk dispatch of an element-wise update. */
abstract class BaseSolver implements Solver {
  abstract readonly type: string;
  readonly options: SolverOptions;
  #history: GPUBuffer[] = [];

  constructor(options: SolverOptions) {
    this.options = options;
  }

  /** Number of history buffers the update needs. */
  protected abstract readonly historyCount: number;

  /**
   * WGSL body updating element `i` of w (param), g (grad), h0/h1 (history), with `lr` the
   * multiplied learning rate and `g` already including weight decay; `read(name)` is the
   * expression that reads an operand's element (its stores go to `name[i]`).
   */
  protected abstract updateBody(read: (name: string) => string): string;

  /** Extra hyper floats from index 2 on. */
  protected extraHyper(_iter: number): number[] {
    return [];
  }

  hyper(iter: number): Float32Array {
    const h = new Float32Array(16);
    h[0] = learningRate(this.options.baseLr, this.options.policy ?? { type: "fixed" }, iter);
    h[1] = iter + 1;
    this.extraHyper(iter).forEach((v, k) => (h[2 + k] = v));
    return h;
  }

  history(): GPUBuffer[] {
    return this.#history;
  }

  record(rec: Recorder, ctx: SolverContext): void {
    const { layout } = ctx;
    this.#history = Array.from({ length: this.historyCount }, (_, k) => {
      const b = ctx.alloc(`${this.type} history ${k}`, layout.bytes);
      return b;
    });
    const gpu = rec.kernels.gpu;
    // On a CPU adapter the operands are read from texture copies of them (chunks of at most
    // TEXTURE_CHUNK_BYTES): a storage load there takes a lane-by-lane path, and the copies are
    // memory copies. 256k parameters: 4.6-5.0 ms an update through storage, 2.1-2.3 ms through
    // copies and textures (llvmpipe, Zen 3, the copies included). GPUs read storage directly.
    const viaTextures = gpu.isFallback;
    const cut = viaTextures ? Math.min(gpu.maxBindingBytes, TEXTURE_CHUNK_BYTES) : gpu.maxBindingBytes;
    const parts = layout.groups.flatMap((g) =>
      chunks(g.offset, g.bytes, cut, Math.max(gpu.offsetAlignment, 16)).map(([off, bytes]) => ({
        g,
        off,
        bytes,
      }))
    );
    const rows = Math.ceil(Math.max(0, ...parts.map((p) => p.bytes / 16)) / TEXTURE_WIDTH);
    const operands = ["w", "dw", ...this.#history.map((_, k) => `h${k}`)];
    const textures = viaTextures && rows > 0
      ? operands.map((_, slot) => rec.scratchTexture(TEXTURE_WIDTH, rows, 1, SOLVER_SLOT + slot))
      : [];
    for (const { g, off, bytes } of parts) {
      // Four parameters per invocation: on a CPU adapter a storage load costs about the same
      // whether it fetches a scalar or a vec4, so the update runs on a quarter of the loads. The
      // update bodies read as scalar code; WGSL broadcasts their scalar factors over the vectors.
      if (off % 16 !== 0 || bytes % 16 !== 0) {
        throw new RangeError(
          `${this.type}: parameter chunk at byte ${off} (${bytes} bytes) is not 16-byte aligned`,
        );
      }
      const type = "vec4<f32>";
      const wd = (this.options.weightDecay ?? 0) * g.decayMult;
      const hist = this.#history.map((_, k) => ({ name: `h${k}`, access: "read_write" as const, type }));
      // Storage bindings: w and the history (read and written), dw only when not copied.
      const dw = { name: "dw", access: "read" as const, type };
      const stored = [
        { name: "w", access: "read_write" as const, type },
        ...(viaTextures ? [] : [dw]),
        ...hist,
      ];
      // Reads of an operand: its storage element, or its texel in the texture copy.
      const read = (name: string) => viaTextures ? `textureLoad(t_${name}, p, 0)` : `${name}[i]`;
      // The hyper-parameters are the same for every invocation: a uniform binding, which a CPU
      // adapter reads several times faster than a storage one (see kernels/windows.ts).
      const prelude = [
        `@group(0) @binding(${stored.length}) var<uniform> hyper: array<vec4<f32>, 4>;`,
        ...(viaTextures
          ? operands.map((name, k) =>
            `@group(0) @binding(${stored.length + 1 + k}) var t_${name}: texture_2d<f32>;`
          )
          : []),
      ].join("\n");
      const k = elementwise(
        `${this.type} update lr_mult ${g.lrMult} decay_mult ${g.decayMult} v4${viaTextures ? " tex" : ""}`,
        {
          bindings: stored,
          prelude,
          n: bytes / 16,
          body: `${
            viaTextures ? `  let p = vec2u(i % ${TEXTURE_WIDTH}u, i / ${TEXTURE_WIDTH}u);\n` : ""
          }  let lr = hyper[0].x * ${f32(g.lrMult)};
  let g = ${read("dw")}${wd !== 0 ? ` + ${f32(wd)} * ${read("w")}` : ""};
${this.updateBody(read)}`,
        },
      );
      const r = (buffer: GPUBuffer) => ({ buffer, offset: off, size: bytes });
      const buffers = [layout.data, layout.diff, ...this.#history];
      if (viaTextures) {
        buffers.forEach((b, slot) =>
          rec.copyToTexture(
            `${this.type} copy ${operands[slot]}`,
            r(b),
            textures[slot],
            TEXTURE_WIDTH,
            bytes / 4,
          )
        );
      }
      rec.dispatch(
        k.src,
        [
          r(layout.data),
          ...(viaTextures ? [] : [r(layout.diff)]),
          ...this.#history.map(r),
          ctx.hyper,
          ...textures.map((t) => {
            const v = t.createView({ dimension: "2d" });
            viewSizes.set(v, [t.width, t.height]);
            return v;
          }),
        ],
        k.groups,
      );
    }
  }
}

/** Texels per row of the solver's texture copies. */
const TEXTURE_WIDTH = 1024;
/** Largest chunk the solver reads through textures (the textures' memory: 4 MiB per operand at most). */
const TEXTURE_CHUNK_BYTES = 4 << 20;
/** First scratch-texture slot of the solver (the kernels' packed operands use the low ones). */
const SOLVER_SLOT = 16;

/** RMSProp with Caffe's semantics: v = d*v + (1-d)*g^2; w -= lr*lr_mult*g/(sqrt(v)+delta). */
export class RMSProp extends BaseSolver {
  readonly type = "RMSProp";
  protected readonly historyCount = 1;
  readonly rmsDecay: number;
  readonly delta: number;

  constructor(options: SolverOptions & { rmsDecay?: number; delta?: number }) {
    super(options);
    this.rmsDecay = options.rmsDecay ?? 0.99;
    this.delta = options.delta ?? 1e-8;
  }

  protected updateBody(read: (name: string) => string): string {
    return `  let v = ${f32(this.rmsDecay)} * ${read("h0")} + ${f32(1 - this.rmsDecay)} * g * g;
  h0[i] = v;
  w[i] = ${read("w")} - lr * g / (sqrt(v) + ${f32(this.delta)});`;
  }
}

/** SGD with momentum (Caffe): h = m*h + lr*g; w -= h. */
export class SGD extends BaseSolver {
  readonly type = "SGD";
  protected readonly historyCount = 1;
  readonly momentum: number;

  constructor(options: SolverOptions & { momentum?: number }) {
    super(options);
    this.momentum = options.momentum ?? 0.9;
  }

  protected updateBody(read: (name: string) => string): string {
    return `  let h = ${f32(this.momentum)} * ${read("h0")} + lr * g;
  h0[i] = h;
  w[i] = ${read("w")} - h;`;
  }
}

/** Adam (Caffe): m, v moments with bias correction folded into the step size. */
export class Adam extends BaseSolver {
  readonly type = "Adam";
  protected readonly historyCount = 2;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;

  constructor(options: SolverOptions & { beta1?: number; beta2?: number; eps?: number }) {
    super(options);
    this.beta1 = options.beta1 ?? 0.9;
    this.beta2 = options.beta2 ?? 0.999;
    this.eps = options.eps ?? 1e-8;
  }

  protected override extraHyper(iter: number): number[] {
    const t = iter + 1;
    return [Math.sqrt(1 - Math.pow(this.beta2, t)) / (1 - Math.pow(this.beta1, t))];
  }

  protected updateBody(read: (name: string) => string): string {
    return `  let m = ${f32(this.beta1)} * ${read("h0")} + ${f32(1 - this.beta1)} * g;
  let v = ${f32(this.beta2)} * ${read("h1")} + ${f32(1 - this.beta2)} * g * g;
  h0[i] = m;
  h1[i] = v;
  w[i] = ${read("w")} - lr * hyper[0].z * m / (sqrt(v) + ${f32(this.eps)});`;
  }
}
