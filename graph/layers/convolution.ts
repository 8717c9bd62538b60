/**
 * Caffe Convolution: NCHW input, weights [K, C/group, kh, kw], optional bias [K]. Forward,
 * input gradient and weight gradient run on the implicit-GEMM core (GPUs) or the direct kernels
 * (CPU adapters), both in kernels/conv.ts; the bias is added in the forward kernel's epilogue and
 * its gradient comes out of the weight-gradient kernel as the sums of dy (deterministic; a
 * separate per-channel sum only when the weights are frozen).
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
import type { Filler } from "../fillers.ts";
import { type ConvGeometry, convGeometry } from "../../kernels/conv_geometry.ts";
import {
  type ConvPath,
  dgradWorkspaceFloats,
  recordBiasGrad,
  recordConvDgrad,
  recordConvForward,
  recordConvWgrad,
  wgradWorkspaceFloats,
} from "../../kernels/conv.ts";
import type { TileConfig } from "../../kernels/gemm.ts";

/** A size given for both axes or as [height, width]. */
export type Size2 = number | readonly [number, number];

/** Options shared by Convolution and Deconvolution. */
export interface ConvolutionOptions {
  bottom: string;
  top: string;
  /** Output channels. */
  numOutput: number;
  kernel: Size2;
  /** Default 1. */
  stride?: Size2;
  /** Zero padding on each side; default 0. */
  pad?: Size2;
  /** Channel groups (group = channels is depthwise); default 1. */
  group?: number;
  /** Learn a per-output-channel bias; default true. */
  bias?: boolean;
  /** Default gaussian std 0.01 (the seed's). */
  weightFiller?: Filler;
  /** Default constant 0. */
  biasFiller?: Filler;
  /** Learning-rate multipliers of [weight, bias]; default [1, 2]. */
  lrMult?: readonly [number, number];
  /** Weight-decay multipliers of [weight, bias]; default [1, 0]. */
  decayMult?: readonly [number, number];
  /** GEMM tile override (benchmarks); default the adapter's, fitted per kernel. */
  tile?: TileConfig;
  /** Kernel family (default "auto": direct kernels on CPU adapters where they fit, else GEMM). */
  path?: ConvPath;
}

/** Declares weight (and bias) of a conv-like layer. */
export function declareConvParams(
  ctx: SetupContext,
  o: ConvolutionOptions,
  weightShape: Shape,
  biasSize: number,
): void {
  const lr = o.lrMult ?? [1, 2], decay = o.decayMult ?? [1, 0];
  ctx.param({
    name: "weight",
    shape: weightShape,
    filler: o.weightFiller ?? { type: "gaussian", std: 0.01 },
    lrMult: lr[0],
    decayMult: decay[0],
    learnable: true,
  });
  if (o.bias ?? true) {
    ctx.param({
      name: "bias",
      shape: [biasSize],
      filler: o.biasFiller ?? { type: "constant", value: 0 },
      lrMult: lr[1],
      decayMult: decay[1],
      learnable: true,
    });
  }
}

/** Geometry of a conv over `input`, or a ShapeError naming the layer, its kernel and the input. */
export function geometryOrThrow(
  layer: string,
  input: Shape,
  o: ConvolutionOptions,
  what: string,
  p: { k: number; c?: number },
): ConvGeometry {
  try {
    return convGeometry(input, { k: p.k, kernel: o.kernel, stride: o.stride, pad: o.pad, groups: o.group });
  } catch (e) {
    const k = typeof o.kernel === "number" ? [o.kernel, o.kernel] : o.kernel;
    throw new ShapeError(
      layer,
      `${what} for kernel ${k[0]}x${k[1]}, ${p.k} outputs, group ${o.group ?? 1} (${(e as Error).message})`,
      "NxCxHxW input that the kernel fits",
      fmtShape(input),
    );
  }
}

/** 2-D convolution. */
export class Convolution extends Layer {
  readonly type = "Convolution";
  readonly opts: ConvolutionOptions;
  #geom: ConvGeometry | null = null;

  constructor(name: string, opts: ConvolutionOptions) {
    super(name, [opts.bottom], [opts.top]);
    this.opts = opts;
  }

  /** The geometry resolved at setup. */
  get geometry(): ConvGeometry {
    if (!this.#geom) throw new Error(`layer "${this.name}": geometry is known only after setup`);
    return this.#geom;
  }

  setup(bottoms: readonly Shape[], ctx: SetupContext): Shape[] {
    this.expectBottoms(bottoms, 1);
    const g = geometryOrThrow(this.name, bottoms[0], this.opts, "input shape", { k: this.opts.numOutput });
    this.#geom = g;
    declareConvParams(ctx, this.opts, [g.k, g.c / g.groups, g.kh, g.kw], g.k);
    ctx.workspace(Math.max(
      wgradWorkspaceFloats(g, { bias: this.opts.bias ?? true, tile: this.opts.tile }),
      dgradWorkspaceFloats(g, { tile: this.opts.tile }),
    ));
    return [[g.n, g.k, g.oh, g.ow]];
  }

  override canAddToTop(): boolean {
    return true;
  }

  override backwardReadsTop(): boolean {
    return false;
  }

  forward(c: ForwardContext): void {
    recordConvForward(c.rec, {
      x: c.bottoms[0].region,
      w: c.params[0].region,
      bias: c.params[1]?.region,
      y: c.tops[0].region,
      geometry: this.geometry,
    }, { tile: this.opts.tile, path: this.opts.path, accumulate: c.addToTops?.[0] });
  }

  override backward(c: BackwardContext): void {
    const g = this.geometry;
    const dy = c.topDiffs[0]!;
    const tile = { tile: this.opts.tile, path: this.opts.path };
    const [dw, db] = c.paramDiffs;
    if (dw) {
      // The bias gradient rides along: it is the row sums of dy, which the wgrad GEMM stages anyway.
      recordConvWgrad(c.rec, {
        dy,
        x: c.bottoms[0].region,
        dw,
        db: db ?? undefined,
        workspace: c.workspace,
        geometry: g,
      }, tile);
    } else if (db) {
      recordBiasGrad(c.rec, { dy, db }, { n: g.n, k: g.k, hw: g.oh * g.ow });
    }
    const dx = c.bottomDiffs[0];
    if (dx) {
      recordConvDgrad(c.rec, { dy, w: c.params[0].region, dx, workspace: c.workspace, geometry: g }, {
        ...tile,
        accumulate: c.accumulate[0],
      });
    }
  }
}
