/**
 * Thresholded sum-to-one normalisers: NormalizationResponseV0 (2D, per channel) and Norm3DHM
 * (per joint cube), SEED_SPEC §4.9. Only values above the threshold count towards the sum.
 * @module
 */
import { type BackwardContext, type ForwardContext, Layer, type SetupContext, type Shape } from "../layer.ts";
import {
  normalizeBackward,
  normalizeForward,
  type NormalizeMode,
  normalizeStatsFloats,
} from "../../kernels/softmax.ts";
import type { GroupLayout } from "../../kernels/reduce.ts";
import { groupLayout } from "./softmax_hm.ts";

/** Options of {@linkcode NormalizeHM}. */
export interface NormalizeHMOptions {
  /** Heatmaps [B, C, ...spatial]. */
  bottom: string;
  /** Normalised maps, same shape. */
  top: string;
  /** 3D (Norm3DHM): channels come in cubes of D and each cube is normalised as one. */
  depthBins?: number;
  /** Values count only when v - threshold > 1e-6 (default 0.003). */
  threshold?: number;
  /**
   * The seed's behaviour: 2D resets channels 0..c of a sample to uniform when channel c sums to
   * ~0 and differentiates the unthresholded sum; 3D divides every voxel by the thresholded sum;
   * both backwards are diagonal only (§8.10, §8.11).
   */
  legacy?: boolean;
}

/**
 * y = v / Z over the above-threshold values (0 elsewhere), Z their sum; a group whose sum is
 * ~0 becomes uniform. The clean backward is the full Jacobian over the above-threshold set.
 */
export class NormalizeHM extends Layer {
  readonly type = "NormalizeHM";
  readonly depthBins: number | undefined;
  readonly threshold: number;
  readonly legacy: boolean;
  #layout: GroupLayout = { groups: 0, groupSize: 0 };
  #channels = 1;

  constructor(name: string, o: NormalizeHMOptions) {
    super(name, [o.bottom], [o.top]);
    this.depthBins = o.depthBins;
    this.threshold = o.threshold ?? 0.003;
    this.legacy = o.legacy ?? false;
  }

  get mode(): NormalizeMode {
    if (!this.legacy) return "clean";
    return this.depthBins === undefined ? "legacy2d" : "legacy3d";
  }

  setup(bottoms: readonly Shape[], ctx: SetupContext): Shape[] {
    this.expectBottoms(bottoms, 1);
    this.#layout = groupLayout(this.name, bottoms[0], this.depthBins ?? 1);
    this.#channels = bottoms[0][1];
    ctx.state("stats", normalizeStatsFloats(this.#layout));
    return [bottoms[0]];
  }

  #opts(c: ForwardContext) {
    return {
      ...this.#layout,
      threshold: this.threshold,
      mode: this.mode,
      channels: this.#channels,
      stats: c.states[0],
      x: c.bottoms[0].region,
      y: c.tops[0].region,
    };
  }

  forward(c: ForwardContext): void {
    normalizeForward(c.rec, this.#opts(c));
  }

  override backward(c: BackwardContext): void {
    const dx = c.bottomDiffs[0], dy = c.topDiffs[0];
    if (!dx || !dy) return;
    normalizeBackward(c.rec, { ...this.#opts(c), dy, dx, accumulate: c.accumulate[0] });
  }
}
