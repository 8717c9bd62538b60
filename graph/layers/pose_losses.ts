/**
 * Loss layers beyond Caffe's Euclidean (SEED_SPEC §4.12, §8.14, §8.23). All are normalised by
 * the batch size N (bottom 0's first dimension) as Caffe does, scaled by their loss weight in the
 * backward, and send no gradient to their targets.
 *
 * - SmoothL1Loss: Fast R-CNN smooth L1 with sigma (default 1), sum / N.
 * - JSRegularizationLoss: Jensen-Shannon divergence between P and Q on elements where both exceed
 *   eps; gradient to P only.
 * - AdaptiveWeightEuclideanLoss: sum_i w_i sum (pred_i - gt_i)^2 / N with w_i = 1 / mean|pred_i - gt_i|
 *   computed in the forward and held constant in the backward. Clean mode guards the division
 *   (w_i = 1 / max(mean, eps)); `legacy` divides by zero as the seed does.
 * - IntegralCoordLoss: L1 (sum v |x| / N) or L2 (sum v x^2 / (2N), Caffe's Euclidean when v = 1)
 *   on decoded joints [B, J, C] with optional per-joint weights v [B, J].
 * @module
 */
import {
  adaptiveBackward,
  adaptiveCombine,
  adaptiveStats,
  coordBackward,
  coordForward,
  type CoordNorm,
  jsBackward,
  jsForward,
  smoothL1Backward,
  smoothL1Forward,
} from "../../kernels/pose_losses.ts";
import { partialCount } from "../../kernels/reduce.ts";
import {
  type BackwardContext,
  type ForwardContext,
  Layer,
  numel,
  type SetupContext,
  type Shape,
  ShapeError,
} from "../layer.ts";

/** Options shared by the two-input losses. */
export interface PairLossOptions {
  pred: string;
  target: string;
  /** [1] loss value. */
  top: string;
  /** Loss weight (default 1; 0 makes it a monitor with no backward). */
  weight?: number;
}

/** Fast R-CNN smooth L1: sum_i f(pred_i - target_i) / N, f(x) = 0.5 (sigma x)^2 if |x| < 1/sigma^2 else |x| - 0.5/sigma^2. */
export class SmoothL1Loss extends Layer {
  readonly type = "SmoothL1Loss";
  override readonly scalarTops = true;
  readonly sigma: number;

  constructor(name: string, o: PairLossOptions & { sigma?: number }) {
    super(name, [o.pred, o.target], [o.top]);
    this.lossWeight = o.weight ?? 1;
    this.sigma = o.sigma ?? 1;
  }

  override propagates(i: number): boolean {
    return i === 0;
  }

  setup(bottoms: readonly Shape[], ctx: SetupContext): Shape[] {
    this.expectBottoms(bottoms, 2);
    this.expectShape("target shape (must match the prediction)", bottoms[1], bottoms[0]);
    ctx.state("partials", partialCount(numel(bottoms[0])));
    return [[1]];
  }

  forward(c: ForwardContext): void {
    const [p, t] = c.bottoms;
    smoothL1Forward(c.rec, {
      pred: p.region,
      target: t.region,
      sigma: this.sigma,
      out: c.tops[0].region,
      partials: c.states[0],
      n: numel(p.shape),
      scale: 1 / p.shape[0],
    });
  }

  /** The forward only sums the loss for display; the backward reads just the bottoms. */
  override forwardFeedsBackward(): boolean {
    return false;
  }

  override backward(c: BackwardContext): void {
    const d = c.bottomDiffs[0];
    if (!d) return;
    const [p, t] = c.bottoms;
    smoothL1Backward(c.rec, {
      pred: p.region,
      target: t.region,
      sigma: this.sigma,
      d,
      n: numel(p.shape),
      scale: this.lossWeight / p.shape[0],
      accumulate: c.accumulate[0],
    });
  }
}

/** Options of {@linkcode JSRegularizationLoss}. */
export interface JSRegularizationOptions {
  /** The distribution that is trained (e.g. a heatmap). */
  p: string;
  /** The reference distribution (e.g. its label); gets no gradient. */
  q: string;
  top: string;
  weight?: number;
  /** Elements with P <= eps or Q <= eps are left out (default 1e-6, as the seed). */
  eps?: number;
}

/** Jensen-Shannon regularisation (§4.12): sum_masked 0.5[P log(2P/(P+Q)) + Q log(2Q/(P+Q))] / N. */
export class JSRegularizationLoss extends Layer {
  readonly type = "JSRegularizationLoss";
  override readonly scalarTops = true;
  readonly eps: number;

  constructor(name: string, o: JSRegularizationOptions) {
    super(name, [o.p, o.q], [o.top]);
    this.lossWeight = o.weight ?? 1;
    this.eps = o.eps ?? 1e-6;
  }

  override propagates(i: number): boolean {
    return i === 0;
  }

  setup(bottoms: readonly Shape[], ctx: SetupContext): Shape[] {
    this.expectBottoms(bottoms, 2);
    this.expectShape("Q shape (must match P)", bottoms[1], bottoms[0]);
    ctx.state("partials", partialCount(numel(bottoms[0])));
    return [[1]];
  }

  forward(c: ForwardContext): void {
    const [p, q] = c.bottoms;
    jsForward(c.rec, {
      p: p.region,
      q: q.region,
      eps: this.eps,
      out: c.tops[0].region,
      partials: c.states[0],
      n: numel(p.shape),
      scale: 1 / p.shape[0],
    });
  }

  /** The forward only sums the loss for display; the backward reads just the bottoms. */
  override forwardFeedsBackward(): boolean {
    return false;
  }

  override backward(c: BackwardContext): void {
    const d = c.bottomDiffs[0];
    if (!d) return;
    const [p, q] = c.bottoms;
    jsBackward(c.rec, {
      p: p.region,
      q: q.region,
      eps: this.eps,
      d,
      n: numel(p.shape),
      scale: this.lossWeight / p.shape[0],
      accumulate: c.accumulate[0],
    });
  }
}

/** Options of {@linkcode AdaptiveWeightEuclideanLoss}. */
export interface AdaptiveWeightOptions {
  /** (pred, gt) blob pairs; each pair may have its own shape, all share the batch size. */
  pairs: readonly (readonly [string, string])[];
  /** [1] loss. */
  top: string;
  /** Optional [P] top with the weights w_i of the last forward. */
  weightsTop?: string;
  /** Optional [P] top with each pair's weighted term w_i sum (pred_i - gt_i)^2 / N. */
  termsTop?: string;
  weight?: number;
  /** Clean guard: w_i = 1 / max(mean|pred_i - gt_i|, eps) (default 1e-8). */
  eps?: number;
  /** The seed's unguarded 1 / mean: infinite weight and a NaN loss when a pair matches exactly (§8.14). */
  legacy?: boolean;
}

/** AdaptiveWeightEucLoss (§4.12): L = sum_i w_i sum (pred_i - gt_i)^2 / N, w_i = 1 / mean|pred_i - gt_i|. */
export class AdaptiveWeightEuclideanLoss extends Layer {
  readonly type = "AdaptiveWeightEuclideanLoss";
  override readonly scalarTops = true;
  readonly pairCount: number;
  readonly eps: number;
  readonly legacy: boolean;
  readonly #extraTops: { weights: boolean; terms: boolean };

  constructor(name: string, o: AdaptiveWeightOptions) {
    if (o.pairs.length === 0) throw new ShapeError(name, "pairs", "at least one (pred, gt) pair", "none");
    const tops = [o.top, ...(o.weightsTop ? [o.weightsTop] : []), ...(o.termsTop ? [o.termsTop] : [])];
    super(name, o.pairs.flat(), tops);
    this.lossWeight = o.weight ?? 1;
    this.pairCount = o.pairs.length;
    this.eps = o.eps ?? 1e-8;
    this.legacy = o.legacy ?? false;
    this.#extraTops = { weights: !!o.weightsTop, terms: !!o.termsTop };
  }

  override propagates(i: number): boolean {
    return i % 2 === 0;
  }

  setup(bottoms: readonly Shape[], ctx: SetupContext): Shape[] {
    this.expectBottoms(bottoms, 2 * this.pairCount);
    let most = 1;
    for (let i = 0; i < this.pairCount; i++) {
      this.expectShape(`gt of pair ${i} (must match its pred)`, bottoms[2 * i + 1], bottoms[2 * i]);
      if (bottoms[2 * i][0] !== bottoms[0][0]) {
        throw new ShapeError(
          this.name,
          `batch of pair ${i}`,
          String(bottoms[0][0]),
          String(bottoms[2 * i][0]),
        );
      }
      most = Math.max(most, numel(bottoms[2 * i]));
    }
    ctx.state("partials", partialCount(most));
    ctx.state("stats", 2 * this.pairCount);
    ctx.state("weights", this.pairCount);
    const P = this.pairCount;
    return [[1], ...(this.#extraTops.weights ? [[P]] : []), ...(this.#extraTops.terms ? [[P]] : [])];
  }

  forward(c: ForwardContext): void {
    const [partials, stats, weights] = c.states;
    const counts: number[] = [];
    for (let i = 0; i < this.pairCount; i++) {
      const p = c.bottoms[2 * i], g = c.bottoms[2 * i + 1];
      counts.push(numel(p.shape));
      adaptiveStats(c.rec, { pred: p.region, gt: g.region, n: numel(p.shape), pair: i, stats, partials });
    }
    let k = 1;
    adaptiveCombine(c.rec, {
      stats,
      weights,
      loss: c.tops[0].region,
      weightsOut: this.#extraTops.weights ? c.tops[k++].region : null,
      termsOut: this.#extraTops.terms ? c.tops[k++].region : null,
      counts,
      batch: c.bottoms[0].shape[0],
      eps: this.eps,
      legacy: this.legacy,
    });
  }

  override backward(c: BackwardContext): void {
    for (let i = 0; i < this.pairCount; i++) {
      const d = c.bottomDiffs[2 * i];
      if (!d) continue;
      const p = c.bottoms[2 * i], g = c.bottoms[2 * i + 1];
      adaptiveBackward(c.rec, {
        pred: p.region,
        gt: g.region,
        weights: c.states[2],
        pair: i,
        d,
        n: numel(p.shape),
        scale: this.lossWeight / c.bottoms[0].shape[0],
        accumulate: c.accumulate[2 * i],
      });
    }
  }
}

/** Options of {@linkcode IntegralCoordLoss}. */
export interface IntegralCoordOptions extends PairLossOptions {
  /** Optional [B, J] per-joint weights (visibility); broadcast over the coordinates. */
  weights?: string;
  /** "l1" (default; sum v |x| / N) or "l2" (sum v x^2 / (2N)). */
  norm?: CoordNorm;
}

/**
 * Loss on decoded joint coordinates [B, J, C] (or [B, J], C = 1), e.g. integral-decoded 3D joints
 * in mm after DepthDecode + GenPredMono3D, against a target of the same shape.
 */
export class IntegralCoordLoss extends Layer {
  readonly type = "IntegralCoordLoss";
  override readonly scalarTops = true;
  readonly norm: CoordNorm;
  readonly weighted: boolean;

  constructor(name: string, o: IntegralCoordOptions) {
    super(name, [o.pred, o.target, ...(o.weights ? [o.weights] : [])], [o.top]);
    this.lossWeight = o.weight ?? 1;
    this.norm = o.norm ?? "l1";
    this.weighted = !!o.weights;
  }

  override propagates(i: number): boolean {
    return i === 0;
  }

  setup(bottoms: readonly Shape[], ctx: SetupContext): Shape[] {
    this.expectBottoms(bottoms, this.weighted ? 3 : 2);
    const s = bottoms[0];
    if (s.length !== 2 && s.length !== 3) {
      throw new ShapeError(this.name, "pred", "B x J x C or B x J", s.join("x"));
    }
    this.expectShape("target shape (must match the prediction)", bottoms[1], s);
    if (this.weighted) this.expectShape("weights", bottoms[2], [s[0], s[1]]);
    ctx.state("partials", partialCount(numel(s)));
    return [[1]];
  }

  #coords(s: Shape): number {
    return s.length === 3 ? s[2] : 1;
  }

  forward(c: ForwardContext): void {
    const [p, t, v] = c.bottoms;
    coordForward(c.rec, {
      pred: p.region,
      target: t.region,
      weights: v?.region ?? null,
      coords: this.#coords(p.shape),
      norm: this.norm,
      out: c.tops[0].region,
      partials: c.states[0],
      n: numel(p.shape),
      scale: (this.norm === "l1" ? 1 : 0.5) / p.shape[0],
    });
  }

  /** The forward only sums the loss for display; the backward reads just the bottoms. */
  override forwardFeedsBackward(): boolean {
    return false;
  }

  override backward(c: BackwardContext): void {
    const d = c.bottomDiffs[0];
    if (!d) return;
    const [p, t, v] = c.bottoms;
    coordBackward(c.rec, {
      pred: p.region,
      target: t.region,
      weights: v?.region ?? null,
      coords: this.#coords(p.shape),
      norm: this.norm,
      d,
      n: numel(p.shape),
      scale: (this.norm === "l1" ? 1 : 0.5) * this.lossWeight / p.shape[0],
      accumulate: c.accumulate[0],
    });
  }
}
