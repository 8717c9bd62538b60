/**
 * The static network: named blobs and layers, built once from a TypeScript definition. Build
 * infers shapes, decides where gradients flow (Caffe's pruning: a layer whose outputs reach no
 * weighted loss records no backward), lays parameters out in one buffer grouped by lr/decay
 * multipliers, folds residual sums into the layers that feed them, plans activation and gradient
 * buffers from their lifetimes, and records two programs: a training step (forward, losses,
 * backward, solver update, scalar accumulation) and an inference pass. A step replays one
 * program in one compute pass and one submit; scalars (losses, metrics) accumulate on the GPU and
 * are read back only when asked.
 * @module
 */
import { type Gpu, GpuError, takeGpuErrors } from "../kernels/device.ts";
import { fill } from "./fillers.ts";
import {
  type BackwardContext,
  fmtShape,
  type ForwardContext,
  type Layer,
  type Mode,
  numel,
  type ParamDecl,
  type Shape,
  ShapeError,
  type Tensor,
} from "./layer.ts";
import type { Solver } from "./solver.ts";
import {
  type Dispatch,
  elementwise,
  encodeProgram,
  KernelCache,
  RecordedKernel,
  Recorder,
  type Region,
} from "../kernels/kernel.ts";
import { fuseProgram, fuseSources } from "../kernels/fuse.ts";
import { type Prewarm, prewarmOnce, warmKernels } from "../kernels/prewarm.ts";
import { download, upload } from "./tensor.ts";
import { type FamilyTime, type KernelTime, profileDispatches, replayFamilies } from "./profile.ts";

/** Most kernels one co-dispatch runs (bounds the fused kernel's code size and compile time). */
const CO_DISPATCH_PARTS = 4;
/** How many program steps back a kernel may move to join a co-dispatch. */
const CO_DISPATCH_LOOKBACK = 12;
/** Most WGSL bytes of a co-dispatched kernel. */
const CO_DISPATCH_CODE_BYTES = 64 * 1024;

/** A network definition: its input blobs and its layers in execution (topological) order. */
export interface NetDef {
  name?: string;
  inputs: Record<string, Shape>;
  layers: Layer[];
}

/** Options for {@linkcode Net.build}. */
export interface BuildOptions {
  /** Record the training program (default: true when a solver is given). */
  train?: boolean;
  /** The optimiser; required for training. */
  solver?: Solver;
  /** Seed of the parameter initialisers (default 1). */
  seed?: number;
  /** Layers whose parameters are frozen (lr_mult forced to 0). */
  freeze?: readonly string[];
  /** Inference normalises batch norm with running statistics (true) or batch statistics (false, the seed). */
  globalStats?: boolean;
  /** Net inputs that receive a gradient (for gradient checks and scripts); none by default. */
  gradInputs?: readonly string[];
  /**
   * Blobs whose values must survive to the end of a pass so they can be read back. Blobs no layer
   * consumes (the net's outputs) are always kept; others may share memory with later blobs.
   */
  keep?: readonly string[];
  /**
   * Fold residual sums into the layers that produce their inputs (default true): the first
   * producer writes the sum's buffer, the others add into it, and no pass copies the sum's
   * gradient back to its inputs. False records every sum as its own layer (comparisons, tests).
   */
  fuse?: boolean;
  /** Run the monitor-only layers every this many training steps (default 1; see {@linkcode Net.monitorEvery}). */
  monitorEvery?: number;
  /**
   * Run independent neighbouring kernels of each program as one dispatch (kernels/fuse.ts).
   * Default: on CPU adapters, where every dispatch costs a hand-over to the driver's threads.
   */
  coDispatch?: boolean;
  /**
   * On a CPU adapter, compile the programs' kernels on a second device too, on a worker thread,
   * from the other end (kernels/prewarm.ts), unless an earlier build's worker already ran them:
   * where the shader cache is cold this halves the time to the first step. Default false; the
   * train and eval tasks turn it on.
   */
  prewarm?: boolean;
}

/** One parameter tensor in the flat parameter buffer. */
export interface ParamEntry {
  /** "layer.name", e.g. "conv_1.weight"; the checkpoint key. */
  key: string;
  layer: string;
  decl: ParamDecl;
  /** Byte offset in the parameter (and gradient, and solver history) buffers. */
  offset: number;
  count: number;
}

/** A contiguous byte range of trainable parameters sharing lr and decay multipliers. */
export interface ParamGroup {
  lrMult: number;
  decayMult: number;
  offset: number;
  bytes: number;
}

/** Where all parameters live. */
export interface ParamLayout {
  entries: ParamEntry[];
  data: GPUBuffer;
  diff: GPUBuffer;
  bytes: number;
  groups: ParamGroup[];
}

interface BlobInfo {
  name: string;
  shape: Shape;
  producer: number; // layer index, -1 for inputs
  consumers: number[];
  data: Region | null;
  diff: Region | null;
  requiresGrad: boolean;
  writers: number[]; // layers writing this blob's gradient, in backward order
  scalarSlot: number; // >= 0 for scalar tops
  kept: boolean; // data lives to the end of the program (readable after a pass)
}

/** A parameter declaration and the index of the layer that made it. */
interface ParamDeclEntry {
  layer: number;
  decl: ParamDecl;
}

interface LayerInfo {
  layer: Layer;
  params: number[]; // indices into layout.entries
  states: Region[];
  stateDecls: { name: string; floats: number }[];
  runsBackward: boolean;
}

// UNIFORM too: on CPU adapters the direct convolution kernels bind weights and output gradients as
// uniform buffers (kernels/conv_direct.ts).
const USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_SRC |
  GPUBufferUsage.COPY_DST;
const SCALAR_FLOATS = 64;

function align(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/**
 * A recorded program: the training step ("train"), the training step without the monitor-only
 * layers ("train-lean", see {@linkcode Net.monitorEvery}; the full step when there are none), or
 * the inference pass.
 */
export type Phase = "train" | "train-lean" | "infer";

/** A built network. */
export class Net {
  readonly gpu: Gpu;
  readonly name: string;
  readonly kernels: KernelCache;
  readonly layout: ParamLayout;
  readonly solver: Solver | null;
  /** Seed of the parameter initialisers; checkpoint loads re-initialise unmatched parameters with it. */
  readonly seed: number;
  /** Iterations completed (the solver's iteration counter). */
  iter = 0;
  /**
   * The monitor-only layers (training-batch metrics such as MPJPE; see `#monitorOnlyLayers`) and
   * the forwards of losses that only sum their value for display (see `#monitorForwards`) run on
   * the training steps whose iteration is a multiple of this, and on the first step after the
   * build; the other steps skip their dispatches, and their scalars keep the last values computed,
   * so a window's mean is the mean of the steps that ran them. Loss gradients and every update are
   * unaffected. 1 (the default) runs them every step.
   */
  monitorEvery: number;
  #layers: LayerInfo[] = [];
  #blobs = new Map<string, BlobInfo>();
  #inputs: string[];
  #scalarNames: string[] = [];
  #scalars: GPUBuffer | null = null;
  #acc: GPUBuffer | null = null;
  #accCount = 0;
  #hyper: GPUBuffer;
  #workspace: Region | null = null;
  #train: Dispatch[] | null = null;
  /** The programs as recorded, before co-dispatch (for profiles by kernel family). */
  #recorded = new Map<Dispatch[], Dispatch[]>();
  readonly #coDispatch: boolean;
  readonly #prewarmWanted: boolean;
  /** The running shader-cache prewarm, if one was started (see {@linkcode BuildOptions.prewarm}). */
  prewarm: Prewarm | null = null;
  /** The training step without the monitor-only layers' forward dispatches (null when it has none). */
  #trainLean: Dispatch[] | null = null;
  /** Whether a full training step ran since the build, so every monitor scalar holds a value. */
  #monitored = false;
  #infer = new Map<boolean, Dispatch[]>();
  #globalStats: boolean;
  #bytes = 0;
  #buffers: GPUBuffer[] = [];
  /** Scratch textures of the recorded programs (CPU adapters read large operands through them). */
  #textures: GPUTexture[] = [];
  /** Residual sums folded into their producers: dropped from both programs. */
  #fused = new Set<number>();
  /** Per writing layer, which of its tops it adds into (a folded sum's later producers). */
  #addTo = new Map<number, boolean[]>();
  /** Blob -> the blob whose buffers (values and gradient) it shares, for inputs of folded sums. */
  #alias = new Map<string, string>();

  private constructor(gpu: Gpu, def: NetDef, opts: BuildOptions) {
    this.gpu = gpu;
    this.name = def.name ?? "net";
    this.kernels = new KernelCache(gpu);
    this.solver = opts.solver ?? null;
    this.seed = opts.seed ?? 1;
    this.#globalStats = opts.globalStats ?? false;
    this.monitorEvery = opts.monitorEvery ?? 1;
    this.#coDispatch = opts.coDispatch ?? gpu.isFallback;
    this.#prewarmWanted = opts.prewarm ?? false;
    this.#inputs = Object.keys(def.inputs);
    const wantTrain = opts.train ?? !!opts.solver;
    const { decls, workspaceFloats } = this.#setupLayers(def, opts);
    this.#planGradients(decls, wantTrain);
    this.layout = this.#layoutParams(decls);
    this.#initParams();
    this.#allocActivations(opts.keep ?? [], wantTrain, opts.fuse ?? true);
    this.#allocStatesAndWorkspace(workspaceFloats);
    this.#hyper = this.#alloc("solver hyper-parameters", 64);
    this.#recordPrograms(wantTrain);
  }

  /**
   * Phase 1, shapes: runs every layer's setup in order, creating blobs with their shapes,
   * consumers and scalar slots, and collecting parameter declarations and the largest
   * workspace request.
   */
  #setupLayers(def: NetDef, opts: BuildOptions): { decls: ParamDeclEntry[]; workspaceFloats: number } {
    for (const [name, shape] of Object.entries(def.inputs)) {
      const blob = this.#newBlob(name, shape, -1);
      blob.requiresGrad = opts.gradInputs?.includes(name) ?? false;
      this.#blobs.set(name, blob);
    }
    const seen = new Set<string>();
    const decls: ParamDeclEntry[] = [];
    let workspaceFloats = 0;
    this.#layers = def.layers.map((layer, li) => {
      if (seen.has(layer.name)) {
        throw new ShapeError(layer.name, "layer name", "a unique name", "a duplicate");
      }
      seen.add(layer.name);
      const bottomShapes = layer.bottoms.map((b) => {
        const blob = this.#blobs.get(b);
        if (!blob) {
          throw new ShapeError(
            layer.name,
            `input "${b}"`,
            "a blob produced earlier or a net input",
            "nothing",
          );
        }
        blob.consumers.push(li);
        return blob.shape;
      });
      const info: LayerInfo = { layer, params: [], states: [], stateDecls: [], runsBackward: false };
      const topShapes = layer.setup(bottomShapes, {
        param: (decl) => {
          const frozen = opts.freeze?.includes(layer.name);
          decls.push({ layer: li, decl: frozen ? { ...decl, lrMult: 0 } : decl });
          info.params.push(decls.length - 1);
          return info.params.length - 1;
        },
        state: (name, floats) => {
          info.stateDecls.push({ name, floats });
          return info.stateDecls.length - 1;
        },
        workspace: (floats) => {
          workspaceFloats = Math.max(workspaceFloats, floats);
        },
      });
      if (topShapes.length !== layer.tops.length) {
        throw new ShapeError(
          layer.name,
          "number of outputs",
          String(layer.tops.length),
          String(topShapes.length),
        );
      }
      layer.tops.forEach((t, i) => this.#addTop(layer, t, topShapes[i], li));
      return info;
    });
    return { decls, workspaceFloats };
  }

  /** Creates the blob of one layer output, checking its name and shape. */
  #addTop(layer: Layer, t: string, shape: Shape, li: number): void {
    if (this.#blobs.has(t)) {
      throw new ShapeError(
        layer.name,
        `output "${t}"`,
        "a new blob name (in-place layers are not supported)",
        t,
      );
    }
    if (shape.some((d) => !Number.isInteger(d) || d <= 0)) {
      throw new ShapeError(layer.name, `output "${t}" shape`, "positive integer dimensions", fmtShape(shape));
    }
    const blob = this.#newBlob(t, shape, li);
    if (layer.scalarTops) {
      if (numel(shape) > SCALAR_FLOATS) {
        throw new ShapeError(
          layer.name,
          `scalar output "${t}"`,
          `<= ${SCALAR_FLOATS} values`,
          fmtShape(shape),
        );
      }
      blob.scalarSlot = this.#scalarNames.length;
      this.#scalarNames.push(t);
    }
    this.#blobs.set(t, blob);
  }

  /**
   * Phase 2, gradient flow (Caffe's pruning). Forward: which blobs depend on trainable
   * parameters. Backward, in reverse: a layer runs backward when it is a weighted loss or one of
   * its tops receives gradient, and lists itself as a writer of each bottom's gradient.
   */
  #planGradients(decls: readonly ParamDeclEntry[], wantTrain: boolean): void {
    const trainable = (li: number) =>
      this.#layers[li].params.some((p) => decls[p].decl.learnable && decls[p].decl.lrMult !== 0);
    for (const [li, info] of this.#layers.entries()) {
      const l = info.layer;
      const req = l.differentiable &&
        (trainable(li) || l.bottoms.some((b, i) => l.propagates(i) && this.#blobs.get(b)!.requiresGrad));
      for (const t of l.tops) this.#blobs.get(t)!.requiresGrad = req;
    }
    if (!wantTrain) return;
    const gradFlows = new Set<string>();
    for (let li = this.#layers.length - 1; li >= 0; li--) {
      const info = this.#layers[li];
      const l = info.layer;
      const isLoss = l.lossWeight !== 0 && l.differentiable;
      info.runsBackward = l.differentiable && (isLoss || l.tops.some((t) => gradFlows.has(t))) &&
        (trainable(li) || l.bottoms.some((b, i) => l.propagates(i) && this.#blobs.get(b)!.requiresGrad));
      if (!info.runsBackward) continue;
      l.bottoms.forEach((b, i) => {
        const blob = this.#blobs.get(b)!;
        if (l.propagates(i) && blob.requiresGrad && !blob.writers.includes(li)) {
          blob.writers.push(li);
          gradFlows.add(b);
        }
      });
    }
  }

  /**
   * Phase 3, parameters: one flat buffer (and one for gradients), trainable parameters first,
   * grouped by (lrMult, decayMult) so the solver updates each group in one range.
   */
  #layoutParams(decls: readonly ParamDeclEntry[]): ParamLayout {
    // Bindable offsets, and 16-byte aligned so the solver updates four values per invocation.
    const align4 = Math.max(this.gpu.offsetAlignment, 16);
    const order = decls.map((_, i) => i).sort((a, b) => {
      const da = decls[a].decl, db = decls[b].decl;
      const ka = da.learnable && da.lrMult !== 0 ? 0 : 1, kb = db.learnable && db.lrMult !== 0 ? 0 : 1;
      return ka - kb || da.lrMult - db.lrMult || da.decayMult - db.decayMult || a - b;
    });
    const entries: ParamEntry[] = new Array(decls.length);
    let off = 0;
    const groups: ParamGroup[] = [];
    for (const i of order) {
      const { layer, decl } = decls[i];
      const count = numel(decl.shape);
      entries[i] = {
        key: `${this.#layers[layer].layer.name}.${decl.name}`,
        layer: this.#layers[layer].layer.name,
        decl,
        offset: off,
        count,
      };
      if (decl.learnable && decl.lrMult !== 0) {
        const g = groups[groups.length - 1];
        if (g && g.lrMult === decl.lrMult && g.decayMult === decl.decayMult && g.offset + g.bytes === off) {
          g.bytes = align(off + count * 4, align4) - g.offset;
        } else {
          groups.push({
            lrMult: decl.lrMult,
            decayMult: decl.decayMult,
            offset: off,
            bytes: align(count * 4, align4),
          });
        }
      }
      off = align(off + count * 4, align4);
    }
    const paramBytes = Math.max(off, 4);
    return {
      entries,
      data: this.#alloc("params", paramBytes),
      diff: this.#alloc("param gradients", paramBytes),
      bytes: paramBytes,
      groups,
    };
  }

  /** Fills every parameter from its filler, seeded by the net seed and the parameter key. */
  #initParams(): void {
    for (const e of this.layout.entries) {
      upload(
        this.gpu,
        { buffer: this.layout.data, offset: e.offset, size: e.count * 4 },
        fill(e.decl.filler, e.decl.shape, { seed: this.seed, key: e.key }),
      );
    }
  }

  /** Phase 4, memory: activations and gradients from lifetimes; scalars in their own small buffers. */
  #allocActivations(keep: readonly string[], wantTrain: boolean, fuse: boolean): void {
    for (const k of keep) {
      const blob = this.#blobs.get(k);
      if (!blob) {
        throw new ShapeError(this.name, `kept blob "${k}"`, "the name of a blob of this net", "nothing");
      }
      blob.kept = true;
    }
    if (fuse) this.#planFusion();
    this.#planArena(wantTrain);
    if (this.#scalarNames.length) {
      const bytes = this.#scalarNames.length * SCALAR_FLOATS * 4;
      this.#scalars = this.#alloc("scalars", bytes);
      this.#acc = this.#alloc("scalar accumulators", bytes);
      for (const blob of this.#blobs.values()) {
        if (blob.scalarSlot >= 0) {
          blob.data = {
            buffer: this.#scalars,
            offset: blob.scalarSlot * SCALAR_FLOATS * 4,
            size: numel(blob.shape) * 4,
          };
        }
      }
    }
  }

  /**
   * Residual sums. A layer that only sums its inputs ({@linkcode Layer.sumsBottoms}) is dropped
   * when every input is read by nothing else, is not kept, and comes from a layer whose backward
   * does not read it; its inputs then share the sum's buffers. The earliest producer writes the
   * sum's buffer and each later one adds into it ({@linkcode Layer.canAddToTop}), so the forward
   * pass saves the sum's pass over memory; backward reads the sum's gradient where the dropped
   * layer copied it to each input, saving that pass too. A sum of sums folds into one buffer.
   */
  #planFusion(): void {
    // Writers ([layer, top]) of each folded sum's buffer, keyed by the sum's top, in layer order.
    const writers = new Map<string, [number, number][]>();
    for (const [li, { layer: l }] of this.#layers.entries()) {
      if (!l.sumsBottoms || l.tops.length !== 1) continue;
      const all: [number, number][] = [];
      const foldable = l.bottoms.every((name) => {
        const b = this.#blobs.get(name)!;
        if (b.producer < 0 || b.kept || b.scalarSlot >= 0 || b.consumers.length !== 1) return false;
        const inner = writers.get(name);
        if (inner) {
          all.push(...inner);
          return true;
        }
        const t = this.#layers[b.producer].layer.tops.indexOf(name);
        if (this.#layers[b.producer].layer.backwardReadsTop(t)) return false;
        all.push([b.producer, t]);
        return true;
      });
      all.sort((a, b) => a[0] - b[0]);
      if (!foldable || !all.slice(1).every(([p, t]) => this.#layers[p].layer.canAddToTop(t))) continue;
      for (const name of l.bottoms) {
        writers.delete(name);
        this.#alias.set(name, l.tops[0]);
      }
      writers.set(l.tops[0], all);
      this.#fused.add(li);
    }
    for (const all of writers.values()) {
      for (const [p, t] of all.slice(1)) {
        const flags = this.#addTo.get(p) ?? this.#layers[p].layer.tops.map(() => false);
        flags[t] = true;
        this.#addTo.set(p, flags);
      }
    }
  }

  /** The blob whose buffers `name` uses (itself unless it feeds a folded sum). */
  #root(name: string): string {
    let r = name;
    for (let a = this.#alias.get(r); a !== undefined; a = this.#alias.get(r)) r = a;
    return r;
  }

  /** Layers' persistent state buffers and the shared transient workspace. */
  #allocStatesAndWorkspace(workspaceFloats: number): void {
    for (const info of this.#layers) {
      info.states = info.stateDecls.map((s) => {
        const buf = this.#alloc(`${info.layer.name} state ${s.name}`, Math.max(4, s.floats * 4));
        return { buffer: buf, offset: 0, size: buf.size };
      });
    }
    if (workspaceFloats > 0) {
      const buf = this.#alloc("workspace", workspaceFloats * 4);
      this.#workspace = { buffer: buf, offset: 0, size: buf.size };
    }
  }

  /** Phase 5, programs: the training step (when training) and the inference pass. */
  #recordPrograms(wantTrain: boolean): void {
    if (wantTrain) {
      if (!this.solver) throw new Error(`net "${this.name}": training needs a solver`);
      const monitors = this.#monitorForwards();
      const skip = new Set<number>();
      const train = this.#record({ phase: "train", globalStats: false }, true, {
        layers: monitors,
        indices: skip,
      });
      this.#train = this.#coDispatched(train);
      if (skip.size) this.#trainLean = this.#coDispatched(train.filter((_, i) => !skip.has(i)));
    }
    const infer = this.#coDispatched(this.#record({ phase: "infer", globalStats: this.#globalStats }, false));
    this.#infer.set(this.#globalStats, infer);
    const programs = [this.#train, this.#trainLean, infer].filter((p): p is Dispatch[] => p !== null);
    if (this.#prewarmWanted && this.gpu.isFallback) {
      // The main device compiles in the order the programs first run; the worker from the end.
      this.prewarm = prewarmOnce(this.gpu.adapterName, warmKernels(programs).reverse());
    }
    for (const p of programs) this.#bind(p);
  }

  /** A recorded program made ready to run: co-dispatched (when enabled), compiled and bound. */
  #finish(recorded: Dispatch[]): Dispatch[] {
    return this.#bind(this.#coDispatched(recorded));
  }

  /** Compiles and binds every kernel of a program. */
  #bind(list: Dispatch[]): Dispatch[] {
    for (const d of list) if (!("copy" in d)) void d.bindGroup;
    return list;
  }

  /** A recorded program with its independent kernels co-dispatched (when enabled). */
  #coDispatched(recorded: Dispatch[]): Dispatch[] {
    let list = recorded;
    if (this.#coDispatch) {
      const L = this.gpu.device.limits;
      list = fuseProgram(
        recorded,
        (d) =>
          d instanceof RecordedKernel && !d.src.entry
            ? { label: d.label, code: d.src.code, regions: d.regions, groups: d.groups }
            : null,
        (parts) => {
          const f = fuseSources(parts);
          const owner = parts[0].label.split(": ")[0];
          const label = `${owner}: co_dispatch ${parts.map((p) => p.label).join(" + ")}`;
          return new RecordedKernel(
            this.kernels,
            owner,
            label,
            {
              label: `co_dispatch of ${parts.length}`,
              code: f.code,
            },
            f.regions,
            f.groups,
          );
        },
        {
          maxUniformBuffersPerShaderStage: L.maxUniformBuffersPerShaderStage,
          maxStorageBuffersPerShaderStage: L.maxStorageBuffersPerShaderStage,
          maxSampledTexturesPerShaderStage: L.maxSampledTexturesPerShaderStage,
          maxParts: CO_DISPATCH_PARTS,
          lookback: CO_DISPATCH_LOOKBACK,
          maxCodeBytes: CO_DISPATCH_CODE_BYTES,
        },
      );
    }
    this.#recorded.set(list, recorded);
    return list;
  }

  /** Builds a network on `gpu`; shape errors throw here, WGSL and out-of-memory errors are awaited here. */
  static async build(gpu: Gpu, def: NetDef, opts: BuildOptions = {}): Promise<Net> {
    gpu.device.pushErrorScope("out-of-memory");
    gpu.device.pushErrorScope("validation");
    let net: Net | null = null;
    let failure: unknown = null;
    try {
      net = new Net(gpu, def, opts);
    } catch (e) {
      failure = e;
    }
    const validation = await gpu.device.popErrorScope();
    const oom = await gpu.device.popErrorScope();
    if (failure) throw failure;
    const name = def.name ?? "net";
    if (oom) {
      net?.destroy();
      throw new GpuError(
        `net "${name}": out of GPU memory while allocating ${net?.gpuBytes ?? "?"} bytes (${oom.message}); ` +
          `try a smaller batch, input size or preset`,
      );
    }
    if (validation) {
      throw new GpuError(`net "${name}": WebGPU validation failed at build: ${validation.message}`);
    }
    if (!net) throw new Error("unreachable");
    await net.kernels.check();
    return net;
  }

  #newBlob(name: string, shape: Shape, producer: number): BlobInfo {
    return {
      name,
      shape,
      producer,
      consumers: [],
      data: null,
      diff: null,
      requiresGrad: false,
      writers: [],
      scalarSlot: -1,
      kept: false,
    };
  }

  #alloc(label: string, bytes: number): GPUBuffer {
    const size = align(Math.max(bytes, 4), 4);
    if (size > this.gpu.maxBufferBytes) {
      throw new GpuError(
        `net "${this.name}": ${label} needs ${size} bytes, over the device's buffer limit ${this.gpu.maxBufferBytes}`,
      );
    }
    const buf = this.gpu.device.createBuffer({ label, size, usage: USAGE });
    this.#bytes += size;
    this.#buffers.push(buf);
    return buf;
  }

  /**
   * Assigns every activation and gradient a buffer: blobs whose lifetimes (positions in the
   * training program) do not overlap share one buffer, sized to the largest of them.
   */
  #planArena(train: boolean): void {
    const L = this.#layers.length;
    const fwd = (li: number) => li;
    const bwd = (li: number) => 2 * L - 1 - li;
    interface Want {
      blob: BlobInfo;
      diff: boolean;
      start: number;
      end: number;
      bytes: number;
    }
    const wants: Want[] = [];
    for (const blob of this.#blobs.values()) {
      if (blob.scalarSlot >= 0) continue;
      const bytes = numel(blob.shape) * 4;
      if (bytes > this.gpu.maxBindingBytes) {
        throw new ShapeError(
          blob.producer >= 0 ? this.#layers[blob.producer].layer.name : "input",
          `blob "${blob.name}" (${fmtShape(blob.shape)})`,
          `at most ${this.gpu.maxBindingBytes} bytes per binding on this device`,
          `${bytes} bytes`,
        );
      }
      const users = [blob.producer, ...blob.consumers].filter((li) => li >= 0);
      const last = train ? 2 * L : L;
      let start = blob.producer >= 0 ? fwd(blob.producer) : 0;
      let end = Math.max(start, ...blob.consumers.map(fwd));
      if (train) {
        for (const li of users) if (this.#layers[li].runsBackward) end = Math.max(end, bwd(li));
      }
      // Inputs are written before the pass starts; outputs and kept blobs are read after it ends.
      if (blob.producer < 0) start = 0;
      if (blob.producer < 0 || blob.consumers.length === 0) blob.kept = true;
      if (blob.kept) end = last;
      wants.push({ blob, diff: false, start, end, bytes });
      if (train && blob.writers.length) {
        const s = Math.min(...blob.writers.map(bwd));
        // An input's gradient is read after the pass (gradient checks, scripts): keep it to the end.
        const e = blob.producer < 0
          ? last
          : this.#layers[blob.producer].runsBackward
          ? bwd(blob.producer)
          : Math.max(...blob.writers.map(bwd));
        wants.push({ blob, diff: true, start: s, end: e, bytes });
      }
    }
    // Inputs of folded sums live in their sum's buffers: one lifetime covering all of them.
    const own = new Map(
      wants.filter((w) => !this.#alias.has(w.blob.name)).map((w) => [`${w.diff}:${w.blob.name}`, w]),
    );
    const members = wants.filter((w) => this.#alias.has(w.blob.name));
    for (const w of members) {
      const r = own.get(`${w.diff}:${this.#root(w.blob.name)}`);
      if (!r) {
        throw new Error(`net "${this.name}": blob "${w.blob.name}" shares a buffer that was not planned`);
      }
      r.start = Math.min(r.start, w.start);
      r.end = Math.max(r.end, w.end);
    }
    wants.splice(0, wants.length, ...own.values());
    wants.sort((a, b) => b.bytes - a.bytes || a.start - b.start);
    const slots: { bytes: number; spans: [number, number][]; members: Want[] }[] = [];
    for (const w of wants) {
      let best = -1;
      for (let s = 0; s < slots.length; s++) {
        if (slots[s].spans.some(([a, b]) => !(w.end < a || b < w.start))) continue;
        if (best < 0 || Math.abs(slots[s].bytes - w.bytes) < Math.abs(slots[best].bytes - w.bytes)) best = s;
      }
      if (best < 0) slots.push({ bytes: w.bytes, spans: [[w.start, w.end]], members: [w] });
      else {
        slots[best].bytes = Math.max(slots[best].bytes, w.bytes);
        slots[best].spans.push([w.start, w.end]);
        slots[best].members.push(w);
      }
    }
    for (const slot of slots) {
      const buf = this.#alloc(
        slot.members.map((m) => (m.diff ? "d:" : "") + m.blob.name).slice(0, 4).join(","),
        slot.bytes,
      );
      for (const m of slot.members) {
        const region = { buffer: buf, offset: 0, size: m.bytes };
        if (m.diff) m.blob.diff = region;
        else m.blob.data = region;
      }
    }
    for (const [name] of this.#alias) {
      const blob = this.#blobs.get(name)!, root = this.#blobs.get(this.#root(name))!;
      blob.data = root.data;
      if (train && blob.writers.length) blob.diff = root.diff;
    }
  }

  #tensor(name: string): Tensor {
    const b = this.#blobs.get(name)!;
    return { shape: b.shape, region: b.data! };
  }

  #paramTensor(pi: number): Tensor {
    const e = this.layout.entries[pi];
    return { shape: e.decl.shape, region: { buffer: this.layout.data, offset: e.offset, size: e.count * 4 } };
  }

  /**
   * Layers whose forward only feeds scalars no training step needs (metrics such as MPJPE, and
   * what only they read): they run no backward, hold no parameters (batch norm's running
   * statistics are parameters), and every consumer of their tops is such a layer too. Their state
   * buffers are scratch only they use.
   */
  #monitorOnlyLayers(): Set<number> {
    const needed = new Set<number>();
    for (let li = this.#layers.length - 1; li >= 0; li--) {
      const info = this.#layers[li];
      const feedsNeeded = info.layer.tops.some((t) =>
        this.#blobs.get(t)!.consumers.some((c) => needed.has(c))
      );
      if (
        info.runsBackward || info.params.length || this.#addTo.has(li) || feedsNeeded ||
        this.#fused.has(li)
      ) needed.add(li);
    }
    return new Set(this.#layers.keys().filter((li) => !needed.has(li)));
  }

  /**
   * Layers whose forward the lean training step skips: the monitor-only layers, and layers such as
   * losses whose forward only writes scalars for display (`Layer.forwardFeedsBackward` false) that
   * no other layer but a monitor reads. Their backward still runs every step.
   */
  #monitorForwards(): Set<number> {
    const monitors = this.#monitorOnlyLayers();
    for (const [li, info] of this.#layers.entries()) {
      if (
        !info.layer.forwardFeedsBackward() && !this.#addTo.has(li) && !this.#fused.has(li) &&
        info.layer.tops.every((t) => this.#blobs.get(t)!.consumers.every((c) => monitors.has(c)))
      ) monitors.add(li);
    }
    return monitors;
  }

  /**
   * Records a program. With `monitors`, the indices of the dispatches and copies that the forward
   * of `monitors.layers` recorded go into `monitors.indices`.
   */
  #record(
    mode: Mode,
    withBackward: boolean,
    monitors?: { layers: ReadonlySet<number>; indices: Set<number> },
  ): Dispatch[] {
    const rec = new Recorder(this.kernels, { lazy: true });
    for (const [li, info] of this.#layers.entries()) {
      if (this.#fused.has(li)) continue;
      rec.owner = info.layer.name;
      const first = rec.dispatches.length;
      info.layer.forward({ ...this.#forwardContext(info, rec, mode), addToTops: this.#addTo.get(li) });
      if (monitors?.layers.has(li)) {
        for (let i = first; i < rec.dispatches.length; i++) monitors.indices.add(i);
      }
    }
    if (withBackward) {
      for (let li = this.#layers.length - 1; li >= 0; li--) {
        const info = this.#layers[li];
        if (!info.runsBackward || this.#fused.has(li)) continue;
        rec.owner = info.layer.name;
        const l = info.layer;
        const c: BackwardContext = {
          ...this.#forwardContext(info, rec, mode),
          topDiffs: l.tops.map((t) => this.#blobs.get(t)!.diff),
          bottomDiffs: l.bottoms.map((b) => {
            const blob = this.#blobs.get(b)!;
            return blob.writers.includes(li) ? blob.diff : null;
          }),
          accumulate: l.bottoms.map((b) => {
            const w = this.#blobs.get(b)!.writers;
            return w.includes(li) && w[0] !== li;
          }),
          paramDiffs: info.params.map((p) => {
            const e = this.layout.entries[p];
            return e.decl.learnable && e.decl.lrMult !== 0
              ? { buffer: this.layout.diff, offset: e.offset, size: e.count * 4 }
              : null;
          }),
        };
        l.backward(c);
      }
      rec.owner = "solver";
      this.solver!.record(rec, {
        layout: this.layout,
        hyper: { buffer: this.#hyper, offset: 0, size: 64 },
        alloc: (label, bytes) => this.#alloc(label, bytes),
      });
    }
    if (this.#scalars) {
      rec.owner = "scalars";
      const n = this.#scalarNames.length * SCALAR_FLOATS;
      const k = elementwise("accumulate scalars", {
        bindings: [{ name: "s", access: "read" }, { name: "acc", access: "read_write" }],
        n,
        body: "  acc[i] = acc[i] + s[i];",
      });
      const whole = (b: GPUBuffer) => ({ buffer: b, offset: 0, size: b.size });
      rec.dispatch(k.src, [whole(this.#scalars), whole(this.#acc!)], k.groups);
    }
    for (const t of rec.textures.values()) {
      this.#textures.push(t);
      this.#bytes += t.width * t.height * t.depthOrArrayLayers * 16;
    }
    return rec.dispatches;
  }

  #forwardContext(info: LayerInfo, rec: Recorder, mode: Mode): ForwardContext {
    const l = info.layer;
    return {
      rec,
      mode,
      bottoms: l.bottoms.map((b) => this.#tensor(b)),
      tops: l.tops.map((t) => this.#tensor(t)),
      params: info.params.map((p) => this.#paramTensor(p)),
      states: info.states,
      workspace: this.#workspace,
    };
  }

  /** Total bytes of every GPU buffer this net allocated (parameters, activations, gradients, solver state). */
  get gpuBytes(): number {
    return this.#bytes;
  }

  /** Number of parameter values (learnable ones only unless `all`). */
  paramCount(all = false): number {
    return this.layout.entries.filter((e) => all || e.decl.learnable).reduce((s, e) => s + e.count, 0);
  }

  /** Names of the scalar outputs (losses and metrics), in slot order. */
  get scalarNames(): readonly string[] {
    return this.#scalarNames;
  }

  /**
   * Labels ("layer: kernel") of the dispatches of the training step, in order: all of them, or
   * ("train-lean") those of the steps that skip the monitor-only layers; or of the inference pass.
   */
  dispatchLabels(phase: Phase = "train"): string[] {
    return (this.#program(phase) ?? []).map((d) => d.label);
  }

  /** The recorded program of `phase` (null when the net was built without it). */
  #program(phase: Phase): Dispatch[] | null {
    if (phase === "infer") return this.#infer.get(this.#globalStats) ?? null;
    return phase === "train-lean" ? this.#trainLean ?? this.#train : this.#train;
  }

  /** Number of kernel dispatches in a program (default the training step); copies not counted. */
  dispatchCount(phase: Phase = "train"): number {
    return (this.#program(phase) ?? []).filter((d) => !("copy" in d)).length;
  }

  /** The dispatches and copies a phase runs, in order (empty when the net has no such program). */
  program(phase: Phase = "train"): readonly Dispatch[] {
    return this.#program(phase) ?? [];
  }

  /** Shape of a blob. */
  shape(name: string): Shape {
    const b = this.#blobs.get(name);
    if (!b) throw new Error(`net "${this.name}" has no blob "${name}"`);
    return b.shape;
  }

  /** Names of all blobs. */
  get blobNames(): string[] {
    return [...this.#blobs.keys()];
  }

  /** Uploads a net input. */
  setInput(name: string, data: Float32Array): void {
    if (!this.#inputs.includes(name)) {
      throw new Error(`net "${this.name}": "${name}" is not an input (inputs: ${this.#inputs.join(", ")})`);
    }
    const b = this.#blobs.get(name)!;
    if (data.length !== numel(b.shape)) {
      throw new ShapeError(
        this.name,
        `input "${name}"`,
        `${numel(b.shape)} values (${fmtShape(b.shape)})`,
        `${data.length}`,
      );
    }
    upload(this.gpu, b.data!, data);
  }

  /** Records one training step (forward, backward, update) and submits it. No readback. */
  step(): void {
    if (!this.#train) throw new Error(`net "${this.name}" was built without a training program`);
    this.gpu.device.queue.writeBuffer(
      this.#hyper,
      0,
      this.solver!.hyper(this.iter) as Float32Array<ArrayBuffer>,
    );
    const lean = this.#trainLean && this.#monitored && this.monitorEvery > 1 &&
      this.iter % this.monitorEvery !== 0;
    this.#submit(lean ? this.#trainLean! : this.#train);
    if (!lean) this.#monitored = true;
    this.iter++;
  }

  /** Runs the inference program (forward only). */
  forward(): void {
    this.#submit(this.#infer.get(this.#globalStats)!);
  }

  /** Switches inference batch norm between running (true) and batch (false) statistics. */
  async setGlobalStats(global: boolean): Promise<void> {
    this.#globalStats = global;
    if (!this.#infer.has(global)) {
      this.#infer.set(global, this.#finish(this.#record({ phase: "infer", globalStats: global }, false)));
      await this.kernels.check();
    }
  }

  #submit(list: readonly Dispatch[]): void {
    const enc = this.gpu.device.createCommandEncoder();
    encodeProgram(enc, list);
    this.gpu.device.queue.submit([enc.finish()]);
    this.#accCount++;
  }

  /**
   * Reads a blob's values back. Only blobs that survive the pass can be read: inputs, outputs,
   * scalars and those named in `keep` at build time.
   */
  read(name: string): Promise<Float32Array> {
    const b = this.#blobs.get(name);
    if (!b?.data) throw new Error(`net "${this.name}" has no blob "${name}"`);
    if (!b.kept && b.scalarSlot < 0) {
      throw new Error(
        `net "${this.name}": blob "${name}" shares memory with later blobs; build with keep: ["${name}"] to read it`,
      );
    }
    return download(this.gpu, b.data);
  }

  /**
   * Times every dispatch of a program (see {@linkcode profileDispatches}): milliseconds per
   * kernel label summed over repeats, slowest first.
   */
  async profile(phase: Phase = "train", repeats = 1): Promise<KernelTime[]> {
    const list = this.#program(phase);
    if (!list) throw new Error(`net "${this.name}" has no ${phase} program`);
    if (phase !== "infer") {
      this.gpu.device.queue.writeBuffer(
        this.#hyper,
        0,
        this.solver!.hyper(this.iter) as Float32Array<ArrayBuffer>,
      );
    }
    const times = await profileDispatches(this.gpu, list, repeats);
    this.#accCount += repeats;
    return times;
  }

  /**
   * Wall time per kernel family of a program by replay (see {@linkcode replayFamilies}): the
   * profile to read on CPU adapters. Leaves parameters as the replayed updates left them and
   * discards the accumulated scalars. Co-dispatched kernels form a family of their own
   * ("co_dispatch"); with `asRecorded` the program is replayed as recorded instead, each kernel
   * its own dispatch, so every family is timed alone (what co-dispatch saves is then the sum's
   * excess over the step).
   */
  async replayProfile(
    phase: Phase = "train",
    opts: { lo?: number; hi?: number; trials?: number; asRecorded?: boolean } = {},
  ): Promise<FamilyTime[]> {
    const run = this.#program(phase);
    if (!run) throw new Error(`net "${this.name}" has no ${phase} program`);
    // asRecorded: every kernel its own dispatch, as recorded before co-dispatch (compiles them).
    const list = opts.asRecorded ? this.#recorded.get(run) ?? run : run;
    const times = await replayFamilies(this.gpu, list, opts);
    await this.readScalars(); // the replays accumulated scalars out of step: start clean
    return times;
  }

  /** Reads a blob's gradient (training nets; zero-length when no gradient flows to it). */
  async readDiff(name: string): Promise<Float32Array> {
    const b = this.#blobs.get(name);
    if (!b) throw new Error(`net "${this.name}" has no blob "${name}"`);
    return b.diff ? await download(this.gpu, b.diff) : new Float32Array(0);
  }

  /** Reads one parameter by key ("layer.name"). */
  readParam(key: string): Promise<Float32Array> {
    const e = this.param(key);
    return download(this.gpu, { buffer: this.layout.data, offset: e.offset, size: e.count * 4 });
  }

  /** Reads one parameter's gradient by key. */
  readParamDiff(key: string): Promise<Float32Array> {
    const e = this.param(key);
    return download(this.gpu, { buffer: this.layout.diff, offset: e.offset, size: e.count * 4 });
  }

  /** Overwrites one parameter by key. */
  writeParam(key: string, data: Float32Array): void {
    const e = this.param(key);
    if (data.length !== e.count) {
      throw new ShapeError(
        e.layer,
        `parameter "${key}"`,
        `${e.count} values (${fmtShape(e.decl.shape)})`,
        `${data.length}`,
      );
    }
    upload(this.gpu, { buffer: this.layout.data, offset: e.offset, size: e.count * 4 }, data);
  }

  /** The layout entry of a parameter. */
  param(key: string): ParamEntry {
    const e = this.layout.entries.find((x) => x.key === key);
    if (!e) throw new Error(`net "${this.name}" has no parameter "${key}"`);
    return e;
  }

  /**
   * Averages of every scalar output over the passes run since the last call, then resets the
   * accumulators. One readback for all losses and metrics.
   */
  async readScalars(): Promise<Record<string, Float32Array>> {
    const out: Record<string, Float32Array> = {};
    if (!this.#acc || this.#accCount === 0) return out;
    const all = await download(this.gpu, { buffer: this.#acc, offset: 0, size: this.#acc.size });
    this.#throwGpuErrors();
    const count = this.#accCount;
    this.#scalarNames.forEach((name, k) => {
      const n = numel(this.#blobs.get(name)!.shape);
      out[name] = all.slice(k * SCALAR_FLOATS, k * SCALAR_FLOATS + n).map((v) => v / count);
    });
    const enc = this.gpu.device.createCommandEncoder();
    enc.clearBuffer(this.#acc);
    this.gpu.device.queue.submit([enc.finish()]);
    this.#accCount = 0;
    return out;
  }

  /** Waits until all submitted work is done; throws if the GPU reported an error meanwhile. */
  async sync(): Promise<void> {
    await this.gpu.device.queue.onSubmittedWorkDone();
    this.#throwGpuErrors();
  }

  #throwGpuErrors(): void {
    const errs = takeGpuErrors(this.gpu);
    if (errs.length) {
      throw new GpuError(`net "${this.name}": the GPU reported ${errs.length} error(s); first: ${errs[0]}`);
    }
  }

  /** Releases every GPU buffer. */
  destroy(): void {
    this.prewarm?.stop();
    for (const b of this.#buffers) b.destroy();
    for (const t of this.#textures) t.destroy();
    this.#buffers = [];
    this.#textures = [];
  }
}
