/**
 * Integral decoders (SEED_SPEC §4.10): the seed's IntegralX/Y/Z and IntegralVector chain, the
 * fused SoftArgmax that replaces it (and can be trained through), and the 2D
 * NumericalCoordinateRegression.
 * @module
 */
import {
  type BackwardContext,
  type ForwardContext,
  Layer,
  numel,
  type SetupContext,
  type Shape,
  ShapeError,
} from "../layer.ts";
import {
  type CellGrid,
  type CoordBounds,
  type CoordOutput,
  type IntegralAxis,
  integralAxisBackward,
  integralAxisForward,
  integralAxisLength,
  integralVectorBackward,
  integralVectorForward,
  softArgmaxBackward,
  softArgmaxForward,
  softArgmaxStatsFloats,
  UNIT_BOUNDS,
} from "../../kernels/integral.ts";
import type { GroupLayout } from "../../kernels/reduce.ts";

/** Options of {@linkcode Integral}. */
export interface IntegralOptions {
  /** [N,C,H,W], e.g. one joint's cube [N,D,S,S]. */
  bottom: string;
  /** [N,W] for x, [N,H] for y, [N,C] for z. */
  top: string;
  axis: IntegralAxis;
}

/** IntegralX / IntegralY / IntegralZ: the marginal of a map along one axis. */
export class Integral extends Layer {
  readonly type = "Integral";
  readonly axis: IntegralAxis;
  #shape: [number, number, number, number] = [0, 0, 0, 0];

  constructor(name: string, o: IntegralOptions) {
    super(name, [o.bottom], [o.top]);
    this.axis = o.axis;
  }

  setup(bottoms: readonly Shape[]): Shape[] {
    this.expectBottoms(bottoms, 1);
    const s = bottoms[0];
    if (s.length !== 4) throw new ShapeError(this.name, "input", "[N,C,H,W]", s.join("x"));
    this.#shape = [s[0], s[1], s[2], s[3]];
    return [[s[0], integralAxisLength(s, this.axis)]];
  }

  forward(c: ForwardContext): void {
    integralAxisForward(c.rec, {
      shape: this.#shape,
      axis: this.axis,
      x: c.bottoms[0].region,
      y: c.tops[0].region,
    });
  }

  override backward(c: BackwardContext): void {
    const dx = c.bottomDiffs[0], dy = c.topDiffs[0];
    if (!dx || !dy) return;
    integralAxisBackward(c.rec, { shape: this.#shape, axis: this.axis, dy, dx, accumulate: c.accumulate[0] });
  }
}

/** Options of {@linkcode IntegralVector}. */
export interface IntegralVectorLayerOptions {
  /** [N, K] (any trailing shape is flattened into K). */
  bottom: string;
  /** [N, 1]. */
  top: string;
  /** Position range (default [0, 1], what the c2f nets use; the seed's proto default is [-1, 1]). */
  bounds?: readonly [number, number];
}

/** IntegralVector: y = sum_k p_k * (lb + (ub - lb)(k + 0.5)/K). */
export class IntegralVector extends Layer {
  readonly type = "IntegralVector";
  readonly bounds: readonly [number, number];
  #rows = 0;
  #length = 0;

  constructor(name: string, o: IntegralVectorLayerOptions) {
    super(name, [o.bottom], [o.top]);
    this.bounds = o.bounds ?? [0, 1];
  }

  setup(bottoms: readonly Shape[]): Shape[] {
    this.expectBottoms(bottoms, 1);
    this.#rows = bottoms[0][0];
    this.#length = numel(bottoms[0]) / this.#rows;
    return [[this.#rows, 1]];
  }

  forward(c: ForwardContext): void {
    integralVectorForward(c.rec, {
      rows: this.#rows,
      length: this.#length,
      bounds: this.bounds,
      x: c.bottoms[0].region,
      y: c.tops[0].region,
    });
  }

  override backward(c: BackwardContext): void {
    const dx = c.bottomDiffs[0], dy = c.topDiffs[0];
    if (!dx || !dy) return;
    integralVectorBackward(c.rec, {
      rows: this.#rows,
      length: this.#length,
      bounds: this.bounds,
      dy,
      dx,
      accumulate: c.accumulate[0],
    });
  }
}

/** Options of {@linkcode SoftArgmax}. */
export interface SoftArgmaxLayerOptions {
  /** Probabilities: [B, J*D, H, W] with `depthBins`, else [B, J, H, W]. */
  bottom: string;
  /** One output: [B,J,3] (x,y,z) in 3D, [B,J,2] in 2D. */
  top?: string;
  /** 3D only, the seed's split: [(x,y) as [B,J,2], z as [B,J]], the layout of the 2D and depth labels. */
  tops?: readonly [string, string];
  /** Depth bins D; omit for 2D maps. */
  depthBins?: number;
  /** Coordinate ranges per axis (default [0,1] each: norm units). */
  bounds?: Partial<CoordBounds>;
}

/**
 * Fused soft-argmax: per joint, the expected cell centre under its probability map or cube,
 * x = sum_i p_i (lb + (ub - lb)(col_i + 0.5)/W), likewise y and z. Equals the seed's
 * IntegralX/Y/Z -> IntegralVector chain in one pass. Differentiable, so a coordinate loss on
 * its output trains the heatmaps (Integral Human Pose Regression); it does not renormalise,
 * so feed it a softmax output.
 */
export class SoftArgmax extends Layer {
  readonly type = "SoftArgmax";
  readonly depthBins: number | undefined;
  readonly bounds: CoordBounds;
  #layout: GroupLayout = { groups: 0, groupSize: 0 };
  #grid: CellGrid = { depth: 1, height: 1, width: 1, bounds: UNIT_BOUNDS, offset: 0.5 };

  constructor(name: string, o: SoftArgmaxLayerOptions) {
    const tops = o.tops ? [...o.tops] : o.top ? [o.top] : [];
    super(name, [o.bottom], tops);
    if (tops.length === 0) throw new Error(`layer "${name}": give top or tops`);
    if (o.tops && o.depthBins === undefined) {
      throw new Error(`layer "${name}": split tops [xy, z] need depthBins (a 3D input)`);
    }
    this.depthBins = o.depthBins;
    this.bounds = { ...UNIT_BOUNDS, ...o.bounds };
  }

  setup(bottoms: readonly Shape[], ctx: SetupContext): Shape[] {
    this.expectBottoms(bottoms, 1);
    const s = bottoms[0];
    if (s.length !== 4) throw new ShapeError(this.name, "input", "[B, J*D, H, W]", s.join("x"));
    const [B, C, H, W] = s;
    const D = this.depthBins ?? 1;
    if (C % D !== 0) throw new ShapeError(this.name, "channels", `a multiple of depthBins ${D}`, String(C));
    const J = C / D;
    this.#layout = { groups: B * J, groupSize: D * H * W };
    this.#grid = { depth: D, height: H, width: W, bounds: this.bounds, offset: 0.5 };
    ctx.state("partials", softArgmaxStatsFloats(this.#layout));
    if (this.tops.length === 2) return [[B, J, 2], [B, J]];
    return [[B, J, this.depthBins === undefined ? 2 : 3]];
  }

  #axes(t: number): (0 | 1 | 2)[] {
    if (this.tops.length === 2) return t === 0 ? [0, 1] : [2];
    return this.depthBins === undefined ? [0, 1] : [0, 1, 2];
  }

  forward(c: ForwardContext): void {
    softArgmaxForward(c.rec, {
      ...this.#layout,
      grid: this.#grid,
      x: c.bottoms[0].region,
      stats: c.states[0],
      outputs: c.tops.map((t, k): CoordOutput => ({ region: t.region, axes: this.#axes(k) })),
    });
  }

  override backward(c: BackwardContext): void {
    const dx = c.bottomDiffs[0];
    if (!dx) return;
    const grads = c.topDiffs.flatMap((d, k) => (d ? [{ region: d, axes: this.#axes(k) }] : []));
    softArgmaxBackward(c.rec, { ...this.#layout, grid: this.#grid, grads, dx, accumulate: c.accumulate[0] });
  }
}

/** Options of {@linkcode NumericalCoordinateRegression}. */
export interface NumericalCoordinateRegressionOptions {
  /** Normalised 2D maps [B,J,H,W]. */
  bottom: string;
  /** (x, y) per joint, [B,J,2]. */
  top: string;
  /**
   * The seed's version (§8.13): cells at col/W (no half-cell) and a backward that writes every
   * joint's gradient into channel 0 (read here as plain overwrites, so the last joint's wins).
   */
  legacy?: boolean;
}

/** 2D integral regression x = sum p (col + 0.5)/W, y = sum p (row + 0.5)/H. */
export class NumericalCoordinateRegression extends Layer {
  readonly type = "NumericalCoordinateRegression";
  readonly legacy: boolean;
  #layout: GroupLayout = { groups: 0, groupSize: 0 };
  #grid: CellGrid = { depth: 1, height: 1, width: 1, bounds: UNIT_BOUNDS, offset: 0.5 };
  #joints = 1;

  constructor(name: string, o: NumericalCoordinateRegressionOptions) {
    super(name, [o.bottom], [o.top]);
    this.legacy = o.legacy ?? false;
  }

  setup(bottoms: readonly Shape[], ctx: SetupContext): Shape[] {
    this.expectBottoms(bottoms, 1);
    const s = bottoms[0];
    if (s.length !== 4) throw new ShapeError(this.name, "input", "[B,J,H,W]", s.join("x"));
    const [B, J, H, W] = s;
    this.#joints = J;
    this.#layout = { groups: B * J, groupSize: H * W };
    this.#grid = { depth: 1, height: H, width: W, bounds: UNIT_BOUNDS, offset: this.legacy ? 0 : 0.5 };
    ctx.state("partials", softArgmaxStatsFloats(this.#layout));
    return [[B, J, 2]];
  }

  forward(c: ForwardContext): void {
    softArgmaxForward(c.rec, {
      ...this.#layout,
      grid: this.#grid,
      x: c.bottoms[0].region,
      stats: c.states[0],
      outputs: [{ region: c.tops[0].region, axes: [0, 1] }],
    });
  }

  override backward(c: BackwardContext): void {
    const dx = c.bottomDiffs[0], dy = c.topDiffs[0];
    if (!dx || !dy) return;
    softArgmaxBackward(c.rec, {
      ...this.#layout,
      grid: this.#grid,
      grads: [{ region: dy, axes: [0, 1] }],
      dx,
      accumulate: c.accumulate[0],
      channelZeroBug: this.legacy ? { joints: this.#joints } : undefined,
    });
  }
}
