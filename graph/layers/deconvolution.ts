/**
 * Caffe Deconvolution (transposed convolution): input [N, Cin, H, W], weights
 * [Cin, Cout/group, kh, kw], output [N, Cout, (H-1)*s - 2p + kh, (W-1)*s - 2p + kw].
 *
 * It is exactly the input gradient of the convolution that maps the output back onto the
 * input, so it runs on the same kernels with roles swapped: forward is that convolution's
 * dgrad (bias added in its epilogue), the input gradient is its forward, and the weight
 * gradient is its wgrad with input and output-gradient exchanged. A depthwise deconvolution (the
 * upsampling below) runs forward and input gradient on the direct kernels of
 * kernels/depthwise.ts, which those conv launchers pick by geometry.
 *
 * The seed upsamples with group = channels, kernel 4, stride 2, pad 1, no bias, lr_mult 0 and
 * the bilinear filler: the separable kernel [0.25, 0.75, 0.75, 0.25] with zero padding, so the
 * first output row is 0.75 * x0 (attenuated at the edge, not clamped). With frozen weights no
 * weight-gradient kernel is recorded.
 * @module
 */
import {
  type BackwardContext,
  fmtShape,
  type ForwardContext,
  Layer,
  type SetupContext,
  type Shape,
  ShapeError,
} from "../layer.ts";
import type { ConvGeometry } from "../../kernels/conv_geometry.ts";
import { recordBiasGrad, recordConvDgrad, recordConvForward, recordConvWgrad } from "../../kernels/conv.ts";
import { type ConvolutionOptions, declareConvParams, geometryOrThrow } from "./convolution.ts";

function pair(v: number | readonly [number, number] | undefined, dflt: number): [number, number] {
  if (v === undefined) return [dflt, dflt];
  return typeof v === "number" ? [v, v] : [v[0], v[1]];
}

/** Transposed 2-D convolution; options as for Convolution, `numOutput` = Cout. */
export class Deconvolution extends Layer {
  readonly type = "Deconvolution";
  readonly opts: ConvolutionOptions;
  /** Geometry of the mirrored convolution: Cout x OH x OW -> Cin x H x W. */
  #mirror: ConvGeometry | null = null;

  constructor(name: string, opts: ConvolutionOptions) {
    super(name, [opts.bottom], [opts.top]);
    this.opts = opts;
  }

  /** Geometry of the convolution this layer transposes (its input is this layer's output). */
  get mirror(): ConvGeometry {
    if (!this.#mirror) throw new Error(`layer "${this.name}": geometry is known only after setup`);
    return this.#mirror;
  }

  setup(bottoms: readonly Shape[], ctx: SetupContext): Shape[] {
    this.expectBottoms(bottoms, 1);
    const x = bottoms[0];
    const o = this.opts;
    if (x.length !== 4) {
      throw new ShapeError(this.name, "input shape", "NxCxHxW", fmtShape(x));
    }
    const [n, cin, h, w] = x;
    const [kh, kw] = pair(o.kernel, 1), [sh, sw] = pair(o.stride, 1), [ph, pw] = pair(o.pad, 0);
    const oh = (h - 1) * sh - 2 * ph + kh, ow = (w - 1) * sw - 2 * pw + kw;
    const out = [n, o.numOutput, oh, ow];
    if (oh < 1 || ow < 1) {
      throw new ShapeError(
        this.name,
        `output shape for kernel ${kh}x${kw}, stride ${sh}x${sw}, pad ${ph}x${pw}`,
        "a non-empty output",
        `${fmtShape(out)} from input ${fmtShape(x)}`,
      );
    }
    const group = o.group ?? 1;
    if (cin % group || o.numOutput % group) {
      throw new ShapeError(
        this.name,
        `channels for group ${group}`,
        `input and output channels divisible by ${group}`,
        `input ${fmtShape(x)}, output ${fmtShape(out)}`,
      );
    }
    const g = geometryOrThrow(this.name, out, o, "mirrored convolution input", { k: cin });
    if (g.oh !== h || g.ow !== w) {
      throw new ShapeError(this.name, "mirrored convolution", fmtShape(x), `${n}x${cin}x${g.oh}x${g.ow}`);
    }
    this.#mirror = g;
    declareConvParams(ctx, o, [cin, o.numOutput / g.groups, kh, kw], o.numOutput);
    return [out];
  }

  override canAddToTop(): boolean {
    return true;
  }

  override backwardReadsTop(): boolean {
    return false;
  }

  forward(c: ForwardContext): void {
    recordConvDgrad(c.rec, {
      dy: c.bottoms[0].region,
      w: c.params[0].region,
      bias: c.params[1]?.region,
      dx: c.tops[0].region,
      geometry: this.mirror,
    }, { tile: this.opts.tile, path: this.opts.path, accumulate: c.addToTops?.[0] });
  }

  override backward(c: BackwardContext): void {
    const g = this.mirror;
    const dy = c.topDiffs[0]!;
    const tile = { tile: this.opts.tile, path: this.opts.path };
    if (c.paramDiffs[0]) {
      recordConvWgrad(c.rec, { dy: c.bottoms[0].region, x: dy, dw: c.paramDiffs[0], geometry: g }, tile);
    }
    if (c.paramDiffs[1]) {
      recordBiasGrad(c.rec, { dy, db: c.paramDiffs[1] }, { n: g.n, k: g.c, hw: g.h * g.w });
    }
    const dx = c.bottomDiffs[0];
    if (dx) {
      recordConvForward(c.rec, { x: dy, w: c.params[0].region, y: dx, geometry: g }, {
        ...tile,
        accumulate: c.accumulate[0],
      });
    }
  }
}
