/**
 * The layer contract. A layer declares its parameters and output shapes once (`setup`), then
 * records its forward and backward kernels once per program (`forward`, `backward`). Recording
 * happens at build time; a training step only replays what was recorded.
 * @module
 */
import type { Recorder, Region } from "../kernels/kernel.ts";
import type { Filler } from "./fillers.ts";

/** Tensor shape, NCHW for images. */
export type Shape = readonly number[];

/** Number of elements of a shape. */
export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Formats a shape as "2x3x64x64". */
export function fmtShape(shape: Shape): string {
  return shape.length ? shape.join("x") : "scalar";
}

/** A GPU tensor as layers see it while recording. */
export interface Tensor {
  shape: Shape;
  region: Region;
}

/** A parameter declared by a layer. */
export interface ParamDecl {
  /** Name within the layer, e.g. "weight", "bias", "running_mean". */
  name: string;
  shape: Shape;
  filler: Filler;
  /** Learning-rate multiplier (Caffe lr_mult); 0 freezes the parameter. */
  lrMult: number;
  /** Weight-decay multiplier (Caffe decay_mult). */
  decayMult: number;
  /** False for state that is saved but never trained (batch-norm running statistics). */
  learnable: boolean;
}

/** Build-time services a layer may use in `setup`. */
export interface SetupContext {
  /** Declares a parameter; returns its index into `params`. */
  param(decl: ParamDecl): number;
  /** Declares a persistent scratch buffer of `floats` f32 (kept between forward and backward); returns its index. */
  state(name: string, floats: number): number;
  /**
   * Requests transient workspace of `floats` f32, valid only inside one recorded forward or backward call
   * (all layers share one buffer sized to the largest request).
   */
  workspace(floats: number): void;
}

/** How a program runs the network. */
export interface Mode {
  /** "train" records backward and updates running statistics; "infer" records forward only. */
  phase: "train" | "infer";
  /** Batch norm normalises with running statistics (true) or with the current batch's (false). */
  globalStats: boolean;
}

/** What a layer sees when recording its forward kernels. */
export interface ForwardContext {
  rec: Recorder;
  mode: Mode;
  bottoms: readonly Tensor[];
  tops: readonly Tensor[];
  params: readonly Tensor[];
  states: readonly Region[];
  workspace: Region | null;
  /**
   * Per top: add this layer's result into the top's current values instead of overwriting them
   * (set only for layers whose {@linkcode Layer.canAddToTop} says so; absent means overwrite).
   */
  addToTops?: readonly boolean[];
}

/** What a layer sees when recording its backward kernels. */
export interface BackwardContext extends ForwardContext {
  /** Gradient of each top (null when nothing downstream needs it). */
  topDiffs: readonly (Region | null)[];
  /** Where to write each bottom's gradient; null when that bottom needs none. */
  bottomDiffs: readonly (Region | null)[];
  /** Per bottom: add into `bottomDiffs[i]` (true) or overwrite it (false; this layer writes it first). */
  accumulate: readonly boolean[];
  /** Gradient of each parameter; null for frozen or non-learnable ones. Always overwritten. */
  paramDiffs: readonly (Region | null)[];
}

/** Build-time shape error naming the layer and both shapes. */
export class ShapeError extends Error {
  constructor(layer: string, what: string, expected: string, got: string) {
    super(`layer "${layer}": ${what}: expected ${expected}, got ${got}`);
    this.name = "ShapeError";
  }
}

/** Base class of every layer. */
export abstract class Layer {
  /** Layer type, e.g. "Convolution". */
  abstract readonly type: string;
  readonly name: string;
  readonly bottoms: readonly string[];
  readonly tops: readonly string[];
  /** Non-zero for a training loss: its backward seeds the bottom gradients scaled by this weight. */
  lossWeight = 0;
  /** True for losses and metrics: their tops are small vectors (<= 64 floats) accumulated on the GPU and read back. */
  readonly scalarTops: boolean = false;

  constructor(name: string, bottoms: readonly string[], tops: readonly string[]) {
    this.name = name;
    this.bottoms = bottoms;
    this.tops = tops;
  }

  /** Validates bottom shapes, declares parameters, returns top shapes. */
  abstract setup(bottoms: readonly Shape[], ctx: SetupContext): Shape[];

  /**
   * Whether forward can add its result into top `i` (`ForwardContext.addToTops`) instead of
   * overwriting it. The net then folds a residual sum that follows this layer into it.
   */
  canAddToTop(_i: number): boolean {
    return false;
  }

  /**
   * Whether backward reads the values of top `i`. Only a layer whose backward does not may have
   * that top's buffer shared with a residual sum (which overwrites it).
   */
  backwardReadsTop(_i: number): boolean {
    return true;
  }

  /**
   * True when the only top is the plain sum of the bottoms (each once, coefficient 1): the net
   * may then drop this layer and have the bottoms' producers write into one buffer.
   */
  get sumsBottoms(): boolean {
    return false;
  }

  /**
   * Whether backward needs anything this layer's forward wrote (its tops or its state). A loss whose
   * forward only sums its value for display, and whose backward reads just its bottoms, answers
   * false: training then runs that forward with the monitor-only layers (see `Net.monitorEvery`).
   */
  forwardFeedsBackward(): boolean {
    return true;
  }

  /** Whether gradient can flow to bottom `i` (false for labels, indices, constants). */
  propagates(_i: number): boolean {
    return true;
  }

  /** Records the forward kernels. */
  abstract forward(c: ForwardContext): void;

  /** Records the backward kernels. Layers without a gradient keep this default. */
  backward(_c: BackwardContext): void {
    throw new Error(`layer "${this.name}" (${this.type}) has no backward`);
  }

  /** Whether this layer has a backward at all. */
  get differentiable(): boolean {
    return this.backward !== Layer.prototype.backward;
  }

  /** Throws a ShapeError unless `got` equals `expected`. */
  protected expectShape(what: string, got: Shape, expected: Shape): void {
    if (got.length !== expected.length || got.some((d, i) => d !== expected[i])) {
      throw new ShapeError(this.name, what, fmtShape(expected), fmtShape(got));
    }
  }

  /** Throws a ShapeError unless `bottoms.length === n`. */
  protected expectBottoms(bottoms: readonly Shape[], n: number): void {
    if (bottoms.length !== n) {
      throw new ShapeError(this.name, "number of inputs", String(n), String(bottoms.length));
    }
  }
}
