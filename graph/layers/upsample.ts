/**
 * Nearest-neighbour upsampling by an integer factor. (The seed itself upsamples with a fixed
 * bilinear depthwise deconvolution; this is the cheap alternative.)
 * @module
 */
import { type BackwardContext, type ForwardContext, Layer, type Shape, ShapeError } from "../layer.ts";
import {
  type UpsampleGeometry,
  upsampleNearestBackward,
  upsampleNearestForward,
} from "../../kernels/pool.ts";

/** Options of {@linkcode Upsample}. */
export interface UpsampleOptions {
  bottom: string;
  top: string;
  /** Integer scale factor for height and width. Default 2. */
  factor?: number;
}

/** [N, C, H, W] -> [N, C, f*H, f*W], each input repeated over an f x f block. */
export class Upsample extends Layer {
  readonly type = "Upsample";
  readonly factor: number;
  #geometry: UpsampleGeometry | null = null;

  constructor(name: string, opts: UpsampleOptions) {
    super(name, [opts.bottom], [opts.top]);
    this.factor = opts.factor ?? 2;
    if (!Number.isInteger(this.factor) || this.factor < 1) {
      throw new RangeError(`layer "${name}": factor must be a positive integer, got ${this.factor}`);
    }
  }

  setup(bottoms: readonly Shape[]): Shape[] {
    this.expectBottoms(bottoms, 1);
    const s = bottoms[0];
    if (s.length !== 4) throw new ShapeError(this.name, "input", "[N, C, H, W]", s.join("x"));
    this.#geometry = { planes: s[0] * s[1], height: s[2], width: s[3], factor: this.factor };
    return [[s[0], s[1], s[2] * this.factor, s[3] * this.factor]];
  }

  forward(c: ForwardContext): void {
    upsampleNearestForward(c.rec, { x: c.bottoms[0].region, y: c.tops[0].region, geometry: this.#geometry! });
  }

  override backward(c: BackwardContext): void {
    const dx = c.bottomDiffs[0], dy = c.topDiffs[0];
    if (!dx || !dy) return;
    upsampleNearestBackward(c.rec, { dy, dx, geometry: this.#geometry!, accumulate: c.accumulate[0] });
  }
}
