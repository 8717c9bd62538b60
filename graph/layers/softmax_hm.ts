/**
 * SoftmaxHM (2D, per channel) and Softmax3DHM (per joint's D*S*S cube) with a pre-scale, so the
 * seed's `heatmap2 x 50 -> Softmax3DHM` is one layer (SEED_SPEC §4.9, §5.6).
 * @module
 */
import {
  type BackwardContext,
  type ForwardContext,
  Layer,
  numel,
  type SetupContext,
  type Shape,
  ShapeError,
} from "../layer.ts";
import { softmaxBackward, softmaxForward, softmaxStatsFloats } from "../../kernels/softmax.ts";
import type { GroupLayout } from "../../kernels/reduce.ts";

/** Options of {@linkcode SoftmaxHM}. */
export interface SoftmaxHMOptions {
  /** Heatmaps [B, C, ...spatial]. */
  bottom: string;
  /** Probabilities, same shape. */
  top: string;
  /** 3D: channels come in cubes of D (channel j*D + d) and each cube is one softmax. */
  depthBins?: number;
  /** Pre-scale of the input (the seed uses 50 for 3D; default 1). */
  scale?: number;
  /** The seed's softmax: no max subtraction (overflows past v*scale ~ 88.7) and a diagonal backward (§8.12). */
  legacy?: boolean;
}

/** y = softmax(scale * x) over each channel (2D) or each joint cube (3D). */
export class SoftmaxHM extends Layer {
  readonly type = "SoftmaxHM";
  readonly depthBins: number;
  readonly scale: number;
  readonly legacy: boolean;
  #layout: GroupLayout = { groups: 0, groupSize: 0 };

  constructor(name: string, o: SoftmaxHMOptions) {
    super(name, [o.bottom], [o.top]);
    this.depthBins = o.depthBins ?? 1;
    this.scale = o.scale ?? 1;
    this.legacy = o.legacy ?? false;
  }

  setup(bottoms: readonly Shape[], ctx: SetupContext): Shape[] {
    this.expectBottoms(bottoms, 1);
    this.#layout = groupLayout(this.name, bottoms[0], this.depthBins);
    ctx.state("stats", softmaxStatsFloats(this.#layout));
    return [bottoms[0]];
  }

  forward(c: ForwardContext): void {
    softmaxForward(c.rec, {
      ...this.#layout,
      scale: this.scale,
      legacy: this.legacy,
      stats: c.states[0],
      x: c.bottoms[0].region,
      y: c.tops[0].region,
    });
  }

  override backward(c: BackwardContext): void {
    const dx = c.bottomDiffs[0], dy = c.topDiffs[0];
    if (!dx || !dy) return;
    softmaxBackward(c.rec, {
      ...this.#layout,
      scale: this.scale,
      legacy: this.legacy,
      stats: c.states[0],
      y: c.tops[0].region,
      dy,
      dx,
      accumulate: c.accumulate[0],
    });
  }
}

/**
 * Groups of a [B, C, ...spatial] heatmap: one per channel, or one per cube of `depthBins`
 * channels. Throws a ShapeError naming `layer` when C is not a multiple of depthBins.
 */
export function groupLayout(layer: string, shape: Shape, depthBins: number): GroupLayout {
  if (shape.length < 2) throw new ShapeError(layer, "heatmap shape", "[B, C, ...spatial]", shape.join("x"));
  const [B, C] = shape;
  if (C % depthBins !== 0) {
    throw new ShapeError(layer, "channels", `a multiple of depthBins ${depthBins}`, String(C));
  }
  const groups = (B * C) / depthBins;
  return { groups, groupSize: numel(shape) / groups };
}
