/**
 * Caffe's Scale layer on its own: a learned per-channel gamma and optional beta on axis 1.
 * The seed always uses it right after BatchNorm, where `BatchNorm({affine: true})` fuses it;
 * this standalone form is for the remaining cases.
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
import { type ChannelShape, scaleBackward, scaleForward } from "../../kernels/norm.ts";

/** Options of {@linkcode Scale}. */
export interface ScaleOptions {
  bottom: string;
  top: string;
  /** Learn a per-channel beta too (Caffe's bias_term). Default true. */
  bias?: boolean;
  /** Learning-rate multipliers of gamma and beta. Default 1 and 1. */
  weightLrMult?: number;
  biasLrMult?: number;
  /** Weight-decay multipliers of gamma and beta. Default 1 and 0. */
  weightDecayMult?: number;
  biasDecayMult?: number;
}

/** y = gamma[c] * x + beta[c] over the channel axis of an [N, C, ...] tensor. */
export class Scale extends Layer {
  readonly type = "Scale";
  readonly bias: boolean;
  readonly #opts: ScaleOptions;
  #shape: ChannelShape = { outer: 0, channels: 0, inner: 0 };

  constructor(name: string, opts: ScaleOptions) {
    super(name, [opts.bottom], [opts.top]);
    this.#opts = opts;
    this.bias = opts.bias ?? true;
  }

  setup(bottoms: readonly Shape[], ctx: SetupContext): Shape[] {
    this.expectBottoms(bottoms, 1);
    const s = bottoms[0];
    if (s.length < 2) throw new ShapeError(this.name, "input", "[N, C, ...] (at least 2 axes)", s.join("x"));
    const C = s[1];
    this.#shape = { outer: s[0], channels: C, inner: s.slice(2).reduce((a, b) => a * b, 1) };
    ctx.param({
      name: "weight",
      shape: [C],
      filler: { type: "constant", value: 1 },
      lrMult: this.#opts.weightLrMult ?? 1,
      decayMult: this.#opts.weightDecayMult ?? 1,
      learnable: true,
    });
    if (this.bias) {
      ctx.param({
        name: "bias",
        shape: [C],
        filler: { type: "constant", value: 0 },
        lrMult: this.#opts.biasLrMult ?? 1,
        decayMult: this.#opts.biasDecayMult ?? 0,
        learnable: true,
      });
    }
    return [s];
  }

  forward(c: ForwardContext): void {
    scaleForward(c.rec, {
      x: c.bottoms[0].region,
      y: c.tops[0].region,
      shape: this.#shape,
      gamma: c.params[0].region,
      beta: this.bias ? c.params[1].region : null,
    });
  }

  override backward(c: BackwardContext): void {
    const dy = c.topDiffs[0];
    if (!dy) return;
    scaleBackward(c.rec, {
      x: c.bottoms[0].region,
      dy,
      shape: this.#shape,
      gamma: c.params[0].region,
      dx: c.bottomDiffs[0],
      accumulate: c.accumulate[0],
      dgamma: c.paramDiffs[0],
      dbeta: this.bias ? c.paramDiffs[1] : null,
    });
  }
}
