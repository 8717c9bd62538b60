/**
 * Reshape and Flatten (Caffe semantics). The data is unchanged, but every top gets its own
 * buffer in this engine (blobs cannot alias), so both directions are one copy kernel.
 * @module
 */
import { type BackwardContext, type ForwardContext, Layer, numel, type Shape, ShapeError } from "../layer.ts";
import { scaledCopies, weightedSum } from "../../kernels/tensor_ops.ts";

/** Shared copy forward and backward of the shape-only layers. */
abstract class CopyLayer extends Layer {
  forward(c: ForwardContext): void {
    weightedSum(c.rec, { inputs: [c.bottoms[0].region], out: c.tops[0].region, n: numel(c.tops[0].shape) });
  }

  override backward(c: BackwardContext): void {
    const dx = c.bottomDiffs[0], dy = c.topDiffs[0];
    if (!dx || !dy) return;
    scaledCopies(c.rec, {
      src: dy,
      targets: [{ region: dx, coeff: 1, accumulate: c.accumulate[0] }],
      n: numel(c.tops[0].shape),
    });
  }
}

/** Options of {@linkcode Reshape}. */
export interface ReshapeOptions {
  bottom: string;
  top: string;
  /** New shape; 0 copies the input's extent at that position, one -1 is inferred (Caffe). */
  shape: readonly number[];
}

/** Same values in a new shape with the same element count. */
export class Reshape extends CopyLayer {
  readonly type = "Reshape";
  readonly shape: readonly number[];

  constructor(name: string, opts: ReshapeOptions) {
    super(name, [opts.bottom], [opts.top]);
    this.shape = opts.shape;
    if (
      this.shape.filter((d) => d === -1).length > 1 || this.shape.some((d) => !Number.isInteger(d) || d < -1)
    ) {
      throw new RangeError(
        `layer "${name}": bad shape [${this.shape.join(", ")}] (integers >= 0, at most one -1)`,
      );
    }
  }

  setup(bottoms: readonly Shape[]): Shape[] {
    this.expectBottoms(bottoms, 1);
    const s = bottoms[0], n = numel(s);
    const out = this.shape.map((d, i) => {
      if (d !== 0) return d;
      if (i >= s.length) {
        throw new ShapeError(this.name, `shape[${i}] = 0`, `an input axis ${i}`, s.join("x"));
      }
      return s[i];
    });
    const known = out.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    const inf = out.indexOf(-1);
    if (inf >= 0) {
      if (known === 0 || n % known !== 0) {
        throw new ShapeError(this.name, "inferred axis", `${n} divisible by ${known}`, s.join("x"));
      }
      out[inf] = n / known;
    }
    if (numel(out) !== n) {
      throw new ShapeError(
        this.name,
        `element count of [${this.shape.join(", ")}]`,
        String(n),
        String(numel(out)),
      );
    }
    return [out];
  }
}

/** Options of {@linkcode Flatten}. */
export interface FlattenOptions {
  bottom: string;
  top: string;
  /** First axis to merge. Default 1. */
  axis?: number;
  /** Last axis to merge, inclusive; negative counts from the end. Default -1. */
  endAxis?: number;
}

/** Merges axes axis..endAxis into one ([N, C, H, W] -> [N, C*H*W] by default). */
export class Flatten extends CopyLayer {
  readonly type = "Flatten";
  readonly axis: number;
  readonly endAxis: number;

  constructor(name: string, opts: FlattenOptions) {
    super(name, [opts.bottom], [opts.top]);
    this.axis = opts.axis ?? 1;
    this.endAxis = opts.endAxis ?? -1;
  }

  setup(bottoms: readonly Shape[]): Shape[] {
    this.expectBottoms(bottoms, 1);
    const s = bottoms[0], r = s.length;
    const a = this.axis < 0 ? this.axis + r : this.axis;
    const e = this.endAxis < 0 ? this.endAxis + r : this.endAxis;
    if (!(a >= 0 && e < r && a <= e)) {
      throw new ShapeError(this.name, "axes", `0 <= axis <= endAxis < ${r}`, `${this.axis}..${this.endAxis}`);
    }
    return [[...s.slice(0, a), numel(s.slice(a, e + 1)), ...s.slice(e + 1)]];
  }
}
