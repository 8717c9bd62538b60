/** CPU twins of the loss kernels. */

/** Caffe Euclidean loss sum((a-b)^2)/(2N) and its gradient w.r.t. a scaled by weight. */
export function euclideanRef(
  a: Float32Array,
  b: Float32Array,
  batch: number,
  weight = 1,
): { loss: number; grad: Float32Array } {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return { loss: s / (2 * batch), grad: a.map((v, i) => (weight * (v - b[i])) / batch) };
}
