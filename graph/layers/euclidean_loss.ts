/**
 * Caffe's Euclidean (L2) loss: L = sum((a - b)^2) / (2N), N = batch size; the gradient w.r.t. a
 * is w * (a - b) / N (and the negative for b when b needs one).
 * @module
 */
import {
  type BackwardContext,
  type ForwardContext,
  Layer,
  numel,
  type SetupContext,
  type Shape,
} from "../layer.ts";
import { elementwise, f32, type Region, u32 } from "../../kernels/kernel.ts";
import { copiesForReading, textureDecl } from "../../kernels/windows.ts";
import { LANES_WG, partialCount, recordFoldLanes, recordSum, reduceLayout } from "../../kernels/reduce.ts";

/** L2 loss between a prediction and a target of the same shape. */
export class EuclideanLoss extends Layer {
  readonly type = "EuclideanLoss";
  override readonly scalarTops = true;
  /** Whether the target (bottom 1) may receive a gradient (false: it is a label). */
  readonly targetGrad: boolean;

  constructor(
    name: string,
    io: { pred: string; target: string; top: string; weight?: number; targetGrad?: boolean },
  ) {
    super(name, [io.pred, io.target], [io.top]);
    this.lossWeight = io.weight ?? 1;
    this.targetGrad = io.targetGrad ?? false;
  }

  override propagates(i: number): boolean {
    return i === 0 || this.targetGrad;
  }

  setup(bottoms: readonly Shape[], ctx: SetupContext): Shape[] {
    this.expectBottoms(bottoms, 2);
    this.expectShape("target shape (must match the prediction)", bottoms[1], bottoms[0]);
    ctx.state("partials", partialCount(numel(bottoms[0])));
    return [[1]];
  }

  forward(c: ForwardContext): void {
    const [a, b] = c.bottoms;
    const sum = {
      label: "euclidean_loss",
      partials: c.states[0],
      out: c.tops[0].region,
      scale: 1 / (2 * a.shape[0]),
    };
    if (reduceLayout(c.rec) === "lanes" && forwardFromTextures(c, a.region, b.region, numel(a.shape), sum)) {
      return;
    }
    recordSum(c.rec, {
      label: "euclidean_loss",
      n: numel(a.shape),
      inputs: [{ name: "a", access: "read", region: a.region }, {
        name: "b",
        access: "read",
        region: b.region,
      }],
      prelude: "    let d = a[i] - b[i];",
      term: "d * d",
      partials: c.states[0],
      out: c.tops[0].region,
      scale: 1 / (2 * a.shape[0]),
    });
  }

  /** The forward only sums the loss for display; the backward reads just the bottoms. */
  override forwardFeedsBackward(): boolean {
    return false;
  }

  override backward(c: BackwardContext): void {
    const [a, b] = c.bottoms;
    const n = numel(a.shape);
    const s = this.lossWeight / a.shape[0];
    c.bottomDiffs.forEach((d, k) => {
      if (!d) return;
      const sign = k === 0 ? s : -s;
      if (
        c.rec.kernels.gpu.isFallback &&
        backwardFromTextures(c, { a: a.region, b: b.region, d, n, sign, acc: c.accumulate[k] })
      ) {
        return;
      }
      const kern = elementwise(`euclidean_loss_bwd${c.accumulate[k] ? " acc" : ""}`, {
        bindings: [{ name: "a", access: "read" }, { name: "b", access: "read" }, {
          name: "d",
          access: "read_write",
        }],
        n,
        body: `  d[i] = ${c.accumulate[k] ? "d[i] + " : ""}${f32(sign)} * (a[i] - b[i]);`,
      });
      c.rec.dispatch(kern.src, [a.region, b.region, d], kern.groups);
    });
  }
}

/**
 * The loss on a CPU adapter: a and b copied into textures (a storage load there takes a
 * lane-by-lane path, see kernels/windows.ts), each of the partial sums walking its texels four
 * values at a time, then the usual in-order fold of the partials. The sum is taken in another
 * order than the storage kernel's (four running sums per partial), so the two agree to rounding.
 * False (nothing recorded) for a single partial, values that are not whole vec4s or a region that
 * cannot be copied.
 */
function forwardFromTextures(
  c: ForwardContext,
  a: Region,
  b: Region,
  n: number,
  sum: { label: string; partials: Region; out: Region; scale: number },
): boolean {
  // A single partial (a few thousand values) is one storage dispatch: nothing to gain.
  const P = partialCount(n), T = n / 4;
  if (n % 4 !== 0 || P < 2) return false;
  const views = copiesForReading(c.rec, [a, b], n);
  if (!views) return false;
  const k = elementwise(`euclidean_loss (partial sums, lanes) tex`, {
    bindings: [{ name: "partials", access: "read_write" }],
    prelude: `${textureDecl(1, "ta", "a_")}\n${textureDecl(2, "tb", "b_")}`,
    n: P,
    wg: LANES_WG,
    body: `  var acc = vec4<f32>();
  for (var t = i; t < ${u32(T)}; t += ${u32(P)}) {
    let d = a_4(t) - b_4(t);
    acc = fma(d, d, acc);
  }
  partials[i] = (acc.x + acc.y) + (acc.z + acc.w);`,
  });
  c.rec.dispatch(k.src, [sum.partials, ...views], k.groups);
  recordFoldLanes(c.rec, sum, P);
  return true;
}

/**
 * The gradient on a CPU adapter: a, b (and d when accumulating) copied into textures and read
 * four values a texel, d written as vec4s; a storage load there takes a lane-by-lane path (see
 * kernels/windows.ts). The tiny preset's 3D heatmap loss (131,072 values): 2.27 -> 0.46 ms, plus 0.10 for the copies.
 * False (nothing recorded) when the values are not whole vec4s or a region cannot be copied.
 */
function backwardFromTextures(
  c: BackwardContext,
  o: { a: Region; b: Region; d: Region; n: number; sign: number; acc: boolean },
): boolean {
  if (o.n % 4 !== 0 || o.d.offset % 16 !== 0) return false;
  const views = copiesForReading(c.rec, [o.a, o.b, ...(o.acc ? [o.d] : [])], o.n);
  if (!views) return false;
  const k = elementwise(`euclidean_loss_bwd${o.acc ? " acc" : ""} tex`, {
    bindings: [{ name: "d", access: "read_write", type: "vec4<f32>" }],
    prelude: [
      textureDecl(1, "ta", "a_"),
      textureDecl(2, "tb", "b_"),
      ...(o.acc ? [textureDecl(3, "td", "d_")] : []),
    ]
      .join("\n"),
    n: o.n / 4,
    body: `  d[i] = ${o.acc ? "d_4(i) + " : ""}${f32(o.sign)} * (a_4(i) - b_4(i));`,
  });
  c.rec.dispatch(k.src, [o.d, ...views], k.groups);
  return true;
}
