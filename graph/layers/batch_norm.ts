/**
 * Batch normalisation with Caffe's semantics (BatchNorm, optionally followed by Scale and ReLU,
 * fused into one layer so the seed's pre-activation "BN -> Scale -> ReLU" is one dispatch each
 * way).
 *
 * Statistics: training normalises with the batch's mean and biased variance and folds them into
 * the running estimates (see {@linkcode batchNormForward} for the exact moving-average update).
 * Inference follows the net's mode: batch statistics (the seed: use_global_stats false in TEST
 * too) or running statistics. The `globalStats` option pins the choice for this layer in both
 * phases, like Caffe's per-layer use_global_stats; pinned to running statistics, training uses
 * the simpler backward that treats the statistics as constants and leaves them unchanged.
 *
 * Parameters, in order: "weight" (gamma) and "bias" (beta) when `affine`; then the non-learnable
 * state "running_mean", "running_var" and "moving_scale" (Caffe's moving-average normaliser S,
 * one copy per channel so each channel's workgroup owns its own; all copies are equal). A Caffe
 * model converts as running_mean = blobs[0]/blobs[2], running_var = blobs[1]/blobs[2],
 * moving_scale = blobs[2].
 * @module
 */
import {
  type BackwardContext,
  type ForwardContext,
  Layer,
  type SetupContext,
  type Shape,
  ShapeError,
} from "../layer.ts";
import { batchNormBackward, batchNormForward, type ChannelShape } from "../../kernels/norm.ts";
import type { ReduceLayout } from "../../kernels/reduce.ts";

/** Options of {@linkcode BatchNorm}. */
export interface BatchNormOptions {
  bottom: string;
  top: string;
  /** Fused per-channel gamma/beta (Caffe's Scale with bias_term). Default false. */
  affine?: boolean;
  /** Fused ReLU on the output. Default false. */
  relu?: boolean;
  /** Added to the variance. Default 1e-5 (Caffe). */
  eps?: number;
  /** Caffe's moving_average_fraction. Default 0.999. */
  movingAverageFraction?: number;
  /**
   * Pin the statistics in both phases: true = running (frozen BN), false = batch. Default: batch
   * statistics in training, the net's `globalStats` in inference.
   */
  globalStats?: boolean;
  /** Learning-rate multipliers of gamma and beta. Default 1 and 1. */
  weightLrMult?: number;
  biasLrMult?: number;
  /** Weight-decay multiplier of gamma and beta. Default 0. */
  decayMult?: number;
  /** How the per-channel reductions are spread (tests, benchmarks); default the adapter's. */
  layout?: ReduceLayout;
}

/** Batch norm over the channel axis (axis 1) of an [N, C, ...] tensor, with optional affine and ReLU. */
export class BatchNorm extends Layer {
  readonly type = "BatchNorm";
  readonly affine: boolean;
  readonly relu: boolean;
  readonly eps: number;
  readonly fraction: number;
  readonly globalStats: boolean | undefined;
  readonly #opts: BatchNormOptions;
  #shape: ChannelShape = { outer: 0, channels: 0, inner: 0 };
  #p = { weight: -1, bias: -1, mean: -1, var: -1, scale: -1 };

  constructor(name: string, opts: BatchNormOptions) {
    super(name, [opts.bottom], [opts.top]);
    this.#opts = opts;
    this.affine = opts.affine ?? false;
    this.relu = opts.relu ?? false;
    this.eps = opts.eps ?? 1e-5;
    this.fraction = opts.movingAverageFraction ?? 0.999;
    this.globalStats = opts.globalStats;
    if (!(this.eps > 0)) throw new RangeError(`layer "${name}": eps must be > 0, got ${this.eps}`);
    if (!(this.fraction >= 0 && this.fraction <= 1)) {
      throw new RangeError(`layer "${name}": movingAverageFraction must be in [0, 1], got ${this.fraction}`);
    }
  }

  setup(bottoms: readonly Shape[], ctx: SetupContext): Shape[] {
    this.expectBottoms(bottoms, 1);
    const s = bottoms[0];
    if (s.length < 2) throw new ShapeError(this.name, "input", "[N, C, ...] (at least 2 axes)", s.join("x"));
    const C = s[1];
    this.#shape = { outer: s[0], channels: C, inner: s.slice(2).reduce((a, b) => a * b, 1) };
    if (this.affine) {
      const decayMult = this.#opts.decayMult ?? 0;
      this.#p.weight = ctx.param({
        name: "weight",
        shape: [C],
        filler: { type: "constant", value: 1 },
        lrMult: this.#opts.weightLrMult ?? 1,
        decayMult,
        learnable: true,
      });
      this.#p.bias = ctx.param({
        name: "bias",
        shape: [C],
        filler: { type: "constant", value: 0 },
        lrMult: this.#opts.biasLrMult ?? 1,
        decayMult,
        learnable: true,
      });
    }
    const state = (name: string, value: number) =>
      ctx.param({
        name,
        shape: [C],
        filler: { type: "constant", value },
        lrMult: 0,
        decayMult: 0,
        learnable: false,
      });
    this.#p.mean = state("running_mean", 0);
    // 1, not Caffe's 0, so an untrained layer in running-stat mode is close to the identity; the
    // first training batch replaces it anyway (moving_scale starts at 0).
    this.#p.var = state("running_var", 1);
    this.#p.scale = state("moving_scale", 0);
    ctx.state("saved batch mean and inverse std", 2 * C);
    return [s];
  }

  #useRunning(c: ForwardContext): boolean {
    return this.globalStats ?? (c.mode.phase === "infer" && c.mode.globalStats);
  }

  #affine(c: ForwardContext) {
    return this.affine
      ? { gamma: c.params[this.#p.weight].region, beta: c.params[this.#p.bias].region }
      : { gamma: null, beta: null };
  }

  forward(c: ForwardContext): void {
    const P = c.params;
    const running = this.#useRunning(c);
    batchNormForward(c.rec, {
      x: c.bottoms[0].region,
      y: c.tops[0].region,
      shape: this.#shape,
      eps: this.eps,
      relu: this.relu,
      layout: this.#opts.layout,
      ...this.#affine(c),
      stats: running ? { kind: "running", mean: P[this.#p.mean].region, var: P[this.#p.var].region } : {
        kind: "batch",
        saved: c.states[0],
        running: c.mode.phase === "train"
          ? {
            mean: P[this.#p.mean].region,
            var: P[this.#p.var].region,
            scale: P[this.#p.scale].region,
            fraction: this.fraction,
          }
          : null,
      },
    });
  }

  /** Backward recomputes the normalised values (and the ReLU mask) from the input. */
  override backwardReadsTop(): boolean {
    return false;
  }

  override backward(c: BackwardContext): void {
    const P = c.params, dy = c.topDiffs[0];
    if (!dy) return;
    batchNormBackward(c.rec, {
      x: c.bottoms[0].region,
      dy,
      shape: this.#shape,
      eps: this.eps,
      relu: this.relu,
      layout: this.#opts.layout,
      ...this.#affine(c),
      stats: this.#useRunning(c)
        ? { kind: "running", mean: P[this.#p.mean].region, var: P[this.#p.var].region }
        : { kind: "batch", saved: c.states[0] },
      dx: c.bottomDiffs[0],
      accumulate: c.accumulate[0],
      dgamma: this.affine ? c.paramDiffs[this.#p.weight] : null,
      dbeta: this.affine ? c.paramDiffs[this.#p.bias] : null,
    });
  }
}
