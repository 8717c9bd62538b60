/** CPU twins of kernels/activation.ts. */

/** y = max(x, 0). */
export function reluRef(x: Float32Array): Float32Array {
  return x.map((v) => Math.max(v, 0));
}

/** dx = dy where x > 0. */
export function reluBackwardRef(x: Float32Array, dy: Float32Array): Float32Array {
  return x.map((v, i) => (v > 0 ? dy[i] : 0));
}
