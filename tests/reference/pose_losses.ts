/** CPU twins of kernels/pose_losses.ts, in float64. Each returns the loss and dL/dpred scaled by the loss weight. */

/** A loss value and the gradient of weight * loss w.r.t. the prediction. */
export interface LossRef {
  loss: number;
  grad: Float64Array;
}

/** Fast R-CNN smooth L1, sum / N. */
export function smoothL1Ref(
  pred: ArrayLike<number>,
  target: ArrayLike<number>,
  o: { batch: number; weight?: number; sigma?: number },
): LossRef {
  const s2 = (o.sigma ?? 1) ** 2, w = o.weight ?? 1;
  let loss = 0;
  const grad = new Float64Array(pred.length);
  for (let i = 0; i < pred.length; i++) {
    const x = pred[i] - target[i];
    const quadratic = Math.abs(x) < 1 / s2;
    loss += quadratic ? 0.5 * s2 * x * x : Math.abs(x) - 0.5 / s2;
    grad[i] = (w / o.batch) * (quadratic ? s2 * x : Math.sign(x));
  }
  return { loss: loss / o.batch, grad };
}

/** Jensen-Shannon regularisation with eps masking; gradient to P only. */
export function jsRef(
  p: ArrayLike<number>,
  q: ArrayLike<number>,
  o: { batch: number; weight?: number; eps?: number },
): LossRef {
  const eps = o.eps ?? 1e-6, w = o.weight ?? 1;
  let loss = 0;
  const grad = new Float64Array(p.length);
  for (let i = 0; i < p.length; i++) {
    if (!(p[i] > eps && q[i] > eps)) continue;
    const m = (p[i] + q[i]) / 2;
    loss += 0.5 * (p[i] * Math.log(p[i] / m) + q[i] * Math.log(q[i] / m));
    grad[i] = (w / o.batch) * 0.5 * Math.log(p[i] / m);
  }
  return { loss: loss / o.batch, grad };
}

/** Adaptive-weight Euclidean over pairs; weights are constants in the gradient. */
export function adaptiveRef(
  pairs: readonly (readonly [ArrayLike<number>, ArrayLike<number>])[],
  o: { batch: number; weight?: number; eps?: number; legacy?: boolean },
): { loss: number; weights: number[]; terms: number[]; grads: Float64Array[] } {
  const w = o.weight ?? 1, eps = o.eps ?? 1e-8;
  const weights: number[] = [], terms: number[] = [], grads: Float64Array[] = [];
  for (const [p, g] of pairs) {
    let abs = 0, sq = 0;
    for (let i = 0; i < p.length; i++) {
      abs += Math.abs(p[i] - g[i]);
      sq += (p[i] - g[i]) ** 2;
    }
    const mean = abs / p.length;
    const wi = o.legacy ? 1 / mean : 1 / Math.max(mean, eps);
    weights.push(wi);
    terms.push((wi * sq) / o.batch);
    grads.push(Float64Array.from({ length: p.length }, (_, i) => (w * wi * 2 * (p[i] - g[i])) / o.batch));
  }
  return { loss: terms.reduce((a, b) => a + b, 0), weights, terms, grads };
}

/** Integral coordinate loss on [B, J, C] with optional [B, J] weights: L1 sum v|x|/N or L2 sum v x^2/(2N). */
export function coordRef(
  pred: ArrayLike<number>,
  target: ArrayLike<number>,
  o: { batch: number; coords: number; norm: "l1" | "l2"; weights?: ArrayLike<number>; weight?: number },
): LossRef {
  const w = o.weight ?? 1;
  let loss = 0;
  const grad = new Float64Array(pred.length);
  for (let i = 0; i < pred.length; i++) {
    const v = o.weights ? o.weights[Math.floor(i / o.coords)] : 1;
    const x = pred[i] - target[i];
    if (o.norm === "l1") {
      loss += v * Math.abs(x);
      grad[i] = (w * v * Math.sign(x)) / o.batch;
    } else {
      loss += (v * x * x) / 2;
      grad[i] = (w * v * x) / o.batch;
    }
  }
  return { loss: loss / o.batch, grad };
}
