/**
 * The seed's small vector layers (SEED_SPEC §4.4, the seed's per-sample scale and shift of a vector): ScaleVector, AddVectorByConstant and
 * AddVectorBySingleVector. MulRGB is ScaleVector without a backward.
 * @module
 */
import { type BackwardContext, type ForwardContext, Layer, numel, type Shape, ShapeError } from "../layer.ts";
import {
  addRowScalarBackward,
  addRowScalarForward,
  scaledCopies,
  weightedSum,
} from "../../kernels/tensor_ops.ts";

/** y = scale * x + shift, dx = scale * dy: the common core of the two constant ops. */
abstract class AffineConstant extends Layer {
  protected abstract readonly scale: number;
  protected abstract readonly shift: number;

  setup(bottoms: readonly Shape[]): Shape[] {
    this.expectBottoms(bottoms, 1);
    return [bottoms[0]];
  }

  forward(c: ForwardContext): void {
    weightedSum(c.rec, {
      inputs: [c.bottoms[0].region],
      coeffs: [this.scale],
      shift: this.shift,
      out: c.tops[0].region,
      n: numel(c.tops[0].shape),
    });
  }

  override backward(c: BackwardContext): void {
    const dx = c.bottomDiffs[0], dy = c.topDiffs[0];
    if (!dx || !dy) return;
    scaledCopies(c.rec, {
      src: dy,
      targets: [{ region: dx, coeff: this.scale, accumulate: c.accumulate[0] }],
      n: numel(c.tops[0].shape),
    });
  }
}

/** Options of {@linkcode ScaleVector}. */
export interface ScaleVectorOptions {
  bottom: string;
  top: string;
  /** The factor a. */
  scale: number;
}

/** y = a * x; dx = a * dy. */
export class ScaleVector extends AffineConstant {
  readonly type = "ScaleVector";
  protected readonly scale: number;
  protected readonly shift = 0;

  constructor(name: string, opts: ScaleVectorOptions) {
    super(name, [opts.bottom], [opts.top]);
    this.scale = opts.scale;
  }
}

/** Options of {@linkcode AddVectorByConstant}. */
export interface AddVectorByConstantOptions {
  bottom: string;
  top: string;
  /** The constant a. */
  value: number;
}

/** y = x + a; dx = dy. */
export class AddVectorByConstant extends AffineConstant {
  readonly type = "AddVectorByConstant";
  protected readonly scale = 1;
  protected readonly shift: number;

  constructor(name: string, opts: AddVectorByConstantOptions) {
    super(name, [opts.bottom], [opts.top]);
    this.shift = opts.value;
  }
}

/** Options of {@linkcode AddVectorBySingleVector}. */
export interface AddVectorBySingleVectorOptions {
  /** x, [N, ...]. */
  bottom: string;
  /** s, one value per sample: [N] or [N, 1]. */
  vector: string;
  top: string;
  /**
   * Reproduce the seed's backward (SEED_SPEC §8.14: a wrong index in its loop), which indexes s[n + i]; its net effect is
   * ds[n] = dy[n, 0]. Default false: ds[n] = sum_i dy[n, i].
   */
  legacy?: boolean;
}

/** y[n, i] = x[n, i] + s[n]. */
export class AddVectorBySingleVector extends Layer {
  readonly type = "AddVectorBySingleVector";
  readonly legacy: boolean;
  #rows = 0;
  #cols = 0;

  constructor(name: string, opts: AddVectorBySingleVectorOptions) {
    super(name, [opts.bottom, opts.vector], [opts.top]);
    this.legacy = opts.legacy ?? false;
  }

  setup(bottoms: readonly Shape[]): Shape[] {
    this.expectBottoms(bottoms, 2);
    const [x, s] = bottoms;
    if (x.length < 1) throw new ShapeError(this.name, "input", "[N, ...]", "a scalar");
    if (numel(s) !== x[0] || s[0] !== x[0]) {
      throw new ShapeError(
        this.name,
        `vector "${this.bottoms[1]}"`,
        `[${x[0]}] or [${x[0]}, 1]`,
        s.join("x"),
      );
    }
    this.#rows = x[0];
    this.#cols = numel(x) / x[0];
    return [x];
  }

  forward(c: ForwardContext): void {
    addRowScalarForward(c.rec, {
      x: c.bottoms[0].region,
      s: c.bottoms[1].region,
      y: c.tops[0].region,
      rows: this.#rows,
      cols: this.#cols,
    });
  }

  override backward(c: BackwardContext): void {
    const dy = c.topDiffs[0];
    if (!dy || (!c.bottomDiffs[0] && !c.bottomDiffs[1])) return;
    addRowScalarBackward(c.rec, {
      dy,
      rows: this.#rows,
      cols: this.#cols,
      dx: c.bottomDiffs[0],
      accumulateX: c.accumulate[0],
      ds: c.bottomDiffs[1],
      accumulateS: c.accumulate[1],
      legacy: this.legacy,
    });
  }
}
