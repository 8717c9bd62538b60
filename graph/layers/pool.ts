/**
 * Max pooling with Caffe's geometry (ceil-mode output, clipped windows, first maximum wins).
 * The seed downsamples with 2x2 windows at stride 2.
 * @module
 */
import { type BackwardContext, type ForwardContext, Layer, type Shape, ShapeError } from "../layer.ts";
import { maxPoolBackward, maxPoolForward, pooledSize, type PoolGeometry } from "../../kernels/pool.ts";

/** Options of {@linkcode MaxPool}; a number means the same value for height and width. */
export interface MaxPoolOptions {
  bottom: string;
  top: string;
  /** Window size. Default 2. */
  kernel?: number | [number, number];
  /** Step between windows. Default: the window size. */
  stride?: number | [number, number];
  /** Zero-free padding (padded positions never win). Default 0. */
  pad?: number | [number, number];
}

function pair(v: number | [number, number]): [number, number] {
  return typeof v === "number" ? [v, v] : [v[0], v[1]];
}

/** Max pooling over the last two axes of an [N, C, H, W] tensor. */
export class MaxPool extends Layer {
  readonly type = "MaxPool";
  readonly kernel: [number, number];
  readonly stride: [number, number];
  readonly pad: [number, number];
  #geometry: PoolGeometry | null = null;

  constructor(name: string, opts: MaxPoolOptions) {
    super(name, [opts.bottom], [opts.top]);
    this.kernel = pair(opts.kernel ?? 2);
    this.stride = pair(opts.stride ?? this.kernel);
    this.pad = pair(opts.pad ?? 0);
    for (let a = 0; a < 2; a++) {
      if (!(this.kernel[a] >= 1 && this.stride[a] >= 1 && this.pad[a] >= 0 && this.pad[a] < this.kernel[a])) {
        throw new RangeError(
          `layer "${name}": need kernel >= 1, stride >= 1 and 0 <= pad < kernel; got kernel ${this.kernel}, ` +
            `stride ${this.stride}, pad ${this.pad}`,
        );
      }
    }
  }

  setup(bottoms: readonly Shape[]): Shape[] {
    this.expectBottoms(bottoms, 1);
    const s = bottoms[0];
    if (s.length !== 4) throw new ShapeError(this.name, "input", "[N, C, H, W]", s.join("x"));
    this.#geometry = {
      planes: s[0] * s[1],
      height: s[2],
      width: s[3],
      kernel: this.kernel,
      stride: this.stride,
      pad: this.pad,
    };
    return [[
      s[0],
      s[1],
      pooledSize(s[2], this.kernel[0], this.stride[0], this.pad[0]),
      pooledSize(s[3], this.kernel[1], this.stride[1], this.pad[1]),
    ]];
  }

  forward(c: ForwardContext): void {
    maxPoolForward(c.rec, { x: c.bottoms[0].region, y: c.tops[0].region, geometry: this.#geometry! });
  }

  override backward(c: BackwardContext): void {
    const dx = c.bottomDiffs[0], dy = c.topDiffs[0];
    if (!dx || !dy) return;
    maxPoolBackward(c.rec, {
      x: c.bottoms[0].region,
      dy,
      dx,
      geometry: this.#geometry!,
      accumulate: c.accumulate[0],
    });
  }
}
