/**
 * Caffe's Eltwise SUM: the weighted element-wise sum of two or more same-shaped inputs (the
 * residual additions of the seed's bottleneck and inception blocks).
 * @module
 */
import { type BackwardContext, type ForwardContext, Layer, numel, type Shape } from "../layer.ts";
import { scaledCopies, type ScaledTarget, weightedSum } from "../../kernels/tensor_ops.ts";

/** Options of {@linkcode Eltwise}. */
export interface EltwiseOptions {
  bottoms: readonly string[];
  top: string;
  /** One coefficient per input (Caffe's coeff). Default all 1. */
  coeffs?: readonly number[];
}

/** top = sum_k coeffs[k] * bottoms[k]. */
export class Eltwise extends Layer {
  readonly type = "Eltwise";
  readonly coeffs: readonly number[];

  constructor(name: string, opts: EltwiseOptions) {
    super(name, opts.bottoms, [opts.top]);
    if (opts.bottoms.length < 2) throw new RangeError(`layer "${name}": Eltwise needs at least 2 inputs`);
    this.coeffs = opts.coeffs ?? opts.bottoms.map(() => 1);
    if (this.coeffs.length !== opts.bottoms.length) {
      throw new RangeError(
        `layer "${name}": ${this.coeffs.length} coefficients for ${opts.bottoms.length} inputs`,
      );
    }
  }

  override get sumsBottoms(): boolean {
    return this.coeffs.every((c) => c === 1) && new Set(this.bottoms).size === this.bottoms.length;
  }

  override backwardReadsTop(): boolean {
    return false;
  }

  setup(bottoms: readonly Shape[]): Shape[] {
    this.expectBottoms(bottoms, this.bottoms.length);
    bottoms.forEach((s, i) => this.expectShape(`input ${i} ("${this.bottoms[i]}")`, s, bottoms[0]));
    return [bottoms[0]];
  }

  forward(c: ForwardContext): void {
    weightedSum(c.rec, {
      inputs: c.bottoms.map((b) => b.region),
      coeffs: this.coeffs,
      out: c.tops[0].region,
      n: numel(c.tops[0].shape),
    });
  }

  override backward(c: BackwardContext): void {
    const dy = c.topDiffs[0];
    if (!dy) return;
    // An input listed twice has one gradient buffer; it receives the sum of its coefficients.
    const byName = new Map<string, ScaledTarget>();
    this.bottoms.forEach((name, i) => {
      const region = c.bottomDiffs[i];
      if (!region) return;
      const t = byName.get(name);
      if (t) t.coeff += this.coeffs[i];
      else byName.set(name, { region, coeff: this.coeffs[i], accumulate: c.accumulate[i] });
    });
    if (byName.size === 0) return;
    scaledCopies(c.rec, { src: dy, targets: [...byName.values()], n: numel(c.tops[0].shape) });
  }
}
