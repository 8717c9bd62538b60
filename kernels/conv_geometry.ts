/**
 * Convolution geometry: the sizes of one convolution (NCHW input, weights [K, C/groups, kh, kw],
 * Caffe semantics) and the questions every kernel family asks of them. The GEMM-core kernels
 * (conv.ts), the direct CPU kernels (conv_direct.ts) and the depthwise kernels (depthwise.ts)
 * all take a {@linkcode ConvGeometry}; keeping it here lets them share it without importing
 * one another.
 * @module
 */

/** Sizes of one convolution, input side to output side. */
export interface ConvGeometry {
  /** Batch. */
  n: number;
  /** Input channels, height, width. */
  c: number;
  h: number;
  w: number;
  /** Output channels. */
  k: number;
  /** Kernel height and width. */
  kh: number;
  kw: number;
  /** Strides. */
  sh: number;
  sw: number;
  /** Zero padding (both sides). */
  ph: number;
  pw: number;
  /** Channel groups; `groups == c` is depthwise. */
  groups: number;
  /** Output height and width. */
  oh: number;
  ow: number;
}

/** Convolution hyper-parameters; scalars apply to both axes. */
export interface ConvParams {
  /** Output channels. */
  k: number;
  kernel: number | readonly [number, number];
  stride?: number | readonly [number, number];
  pad?: number | readonly [number, number];
  groups?: number;
}

function pair(v: number | readonly [number, number] | undefined, dflt: number): [number, number] {
  if (v === undefined) return [dflt, dflt];
  return typeof v === "number" ? [v, v] : [v[0], v[1]];
}

/**
 * The geometry of a convolution over an input of shape [n, c, h, w]. Throws RangeError when
 * the parameters are invalid or the output would be empty; callers turn that into a ShapeError.
 */
export function convGeometry(input: readonly number[], p: ConvParams): ConvGeometry {
  if (input.length !== 4) throw new RangeError(`expected a 4-D NxCxHxW input`);
  const [n, c, h, w] = input;
  const [kh, kw] = pair(p.kernel, 1);
  const [sh, sw] = pair(p.stride, 1);
  const [ph, pw] = pair(p.pad, 0);
  const groups = p.groups ?? 1;
  const ints = [p.k, kh, kw, sh, sw, groups].every((v) => Number.isInteger(v) && v > 0) &&
    [ph, pw].every((v) => Number.isInteger(v) && v >= 0);
  if (!ints) throw new RangeError(`kernel, stride, group and outputs must be positive integers, pad >= 0`);
  if (c % groups || p.k % groups) {
    throw new RangeError(`input channels ${c} and outputs ${p.k} must both be divisible by group ${groups}`);
  }
  const oh = Math.floor((h + 2 * ph - kh) / sh) + 1;
  const ow = Math.floor((w + 2 * pw - kw) / sw) + 1;
  if (oh < 1 || ow < 1) {
    throw new RangeError(`kernel ${kh}x${kw} with pad ${ph},${pw} does not fit a ${h}x${w} input`);
  }
  return { n, c, h, w, k: p.k, kh, kw, sh, sw, ph, pw, groups, oh, ow };
}

/** True when `g` is depthwise with one output per input channel (groups = channels = outputs). */
export function isDepthwise(g: ConvGeometry): boolean {
  return g.groups > 1 && g.groups === g.c && g.k === g.c;
}

/** True when the convolution is a plain GEMM (1x1, stride 1, no padding). */
export function isPointwise(g: ConvGeometry): boolean {
  return g.kh === 1 && g.kw === 1 && g.sh === 1 && g.sw === 1 && g.ph === 0 && g.pw === 0;
}

/** Multiply-adds of one forward pass (each of dgrad and wgrad costs the same). */
export function convMacs(g: ConvGeometry): number {
  return g.n * g.k * g.oh * g.ow * (g.c / g.groups) * g.kh * g.kw;
}

/** What happens to each finished output value. */
export interface Epilogue {
  /** Add bias[channel] (a `bias` binding follows the weights). */
  bias?: boolean;
  /** Add into the output instead of overwriting it. */
  accumulate?: boolean;
}

/** Names a convolution in kernel labels, e.g. "8x32x16x16->32 k3x3 s1x1 p1x1". */
export function shapeLabel(g: ConvGeometry): string {
  return `${g.n}x${g.c}x${g.h}x${g.w}->${g.k} k${g.kh}x${g.kw} s${g.sh}x${g.sw} p${g.ph}x${g.pw}${
    g.groups > 1 ? ` g${g.groups}` : ""
  }`;
}
