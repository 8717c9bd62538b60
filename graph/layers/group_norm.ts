/**
 * Group normalisation: per sample, channels are split into consecutive groups and each group is
 * normalised over its channels and positions. It needs no batch, so it suits batch size 1 and
 * behaves identically in training and inference (no running statistics).
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
import { type ChannelShape, groupNormBackward, groupNormForward } from "../../kernels/norm.ts";

/** Options of {@linkcode GroupNorm}. */
export interface GroupNormOptions {
  bottom: string;
  top: string;
  /** Number of groups; must divide the channel count. Default 32. */
  groups?: number;
  /** Per-channel gamma/beta ("weight"/"bias"). Default true. */
  affine?: boolean;
  /** Fused ReLU on the output. Default false. */
  relu?: boolean;
  /** Added to the variance. Default 1e-5. */
  eps?: number;
  /** Learning-rate multipliers of gamma and beta. Default 1 and 1. */
  weightLrMult?: number;
  biasLrMult?: number;
  /** Weight-decay multiplier of gamma and beta. Default 0. */
  decayMult?: number;
}

/** Group norm over an [N, C, ...] tensor with optional affine and ReLU. */
export class GroupNorm extends Layer {
  readonly type = "GroupNorm";
  readonly groups: number;
  readonly affine: boolean;
  readonly relu: boolean;
  readonly eps: number;
  readonly #opts: GroupNormOptions;
  #shape: ChannelShape = { outer: 0, channels: 0, inner: 0 };

  constructor(name: string, opts: GroupNormOptions) {
    super(name, [opts.bottom], [opts.top]);
    this.#opts = opts;
    this.groups = opts.groups ?? 32;
    this.affine = opts.affine ?? true;
    this.relu = opts.relu ?? false;
    this.eps = opts.eps ?? 1e-5;
    if (!Number.isInteger(this.groups) || this.groups < 1) {
      throw new RangeError(`layer "${name}": groups must be a positive integer, got ${this.groups}`);
    }
  }

  setup(bottoms: readonly Shape[], ctx: SetupContext): Shape[] {
    this.expectBottoms(bottoms, 1);
    const s = bottoms[0];
    if (s.length < 2) throw new ShapeError(this.name, "input", "[N, C, ...] (at least 2 axes)", s.join("x"));
    const C = s[1];
    if (C % this.groups !== 0) {
      throw new ShapeError(this.name, "channels", `a multiple of groups (${this.groups})`, String(C));
    }
    this.#shape = { outer: s[0], channels: C, inner: s.slice(2).reduce((a, b) => a * b, 1) };
    if (this.affine) {
      const decayMult = this.#opts.decayMult ?? 0;
      ctx.param({
        name: "weight",
        shape: [C],
        filler: { type: "constant", value: 1 },
        lrMult: this.#opts.weightLrMult ?? 1,
        decayMult,
        learnable: true,
      });
      ctx.param({
        name: "bias",
        shape: [C],
        filler: { type: "constant", value: 0 },
        lrMult: this.#opts.biasLrMult ?? 1,
        decayMult,
        learnable: true,
      });
    }
    ctx.state("saved group mean and inverse std", 2 * s[0] * this.groups);
    return [s];
  }

  forward(c: ForwardContext): void {
    groupNormForward(c.rec, {
      x: c.bottoms[0].region,
      y: c.tops[0].region,
      shape: this.#shape,
      groups: this.groups,
      eps: this.eps,
      relu: this.relu,
      gamma: this.affine ? c.params[0].region : null,
      beta: this.affine ? c.params[1].region : null,
      saved: c.states[0],
    });
  }

  override backward(c: BackwardContext): void {
    const dy = c.topDiffs[0];
    if (!dy) return;
    groupNormBackward(c.rec, {
      x: c.bottoms[0].region,
      dy,
      shape: this.#shape,
      groups: this.groups,
      relu: this.relu,
      gamma: this.affine ? c.params[0].region : null,
      beta: this.affine ? c.params[1].region : null,
      saved: c.states[0],
      dx: c.bottomDiffs[0],
      accumulate: c.accumulate[0],
      dgamma: this.affine ? c.paramDiffs[0] : null,
      dbeta: this.affine ? c.paramDiffs[1] : null,
    });
  }
}
