/**
 * Concat and Slice along one axis (Caffe semantics; the channel axis by default). The seed
 * concatenates its inception branches and the inter-stack link, and slices the 16*D-channel
 * heatmap volume into 16 per-joint cubes.
 * @module
 */
import { type BackwardContext, type ForwardContext, Layer, type Shape, ShapeError } from "../layer.ts";
import { type AxisPart, type AxisShape, concatAxis, splitAxis } from "../../kernels/tensor_ops.ts";

function axisOf(layer: string, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!(a >= 0 && a < rank)) throw new ShapeError(layer, "axis", `in [-${rank}, ${rank})`, String(axis));
  return a;
}

function around(shape: Shape, axis: number): AxisShape {
  const prod = (s: Shape) => s.reduce((a, b) => a * b, 1);
  return { outer: prod(shape.slice(0, axis)), inner: prod(shape.slice(axis + 1)) };
}

/** Options of {@linkcode Concat}. */
export interface ConcatOptions {
  bottoms: readonly string[];
  top: string;
  /** Axis to join along (negative counts from the end). Default 1 (channels). */
  axis?: number;
}

/** Joins inputs that agree on every axis but `axis`. */
export class Concat extends Layer {
  readonly type = "Concat";
  readonly axis: number;
  #lens: number[] = [];
  #shape: AxisShape = { outer: 0, inner: 0 };

  constructor(name: string, opts: ConcatOptions) {
    super(name, opts.bottoms, [opts.top]);
    if (opts.bottoms.length < 1) throw new RangeError(`layer "${name}": Concat needs at least 1 input`);
    this.axis = opts.axis ?? 1;
  }

  setup(bottoms: readonly Shape[]): Shape[] {
    this.expectBottoms(bottoms, this.bottoms.length);
    const first = bottoms[0];
    const a = axisOf(this.name, this.axis, first.length);
    bottoms.forEach((s, i) => {
      const want = s.map((d, k) => (k === a ? d : first[k]));
      this.expectShape(`input ${i} ("${this.bottoms[i]}") off the concat axis`, s, want);
    });
    this.#lens = bottoms.map((s) => s[a]);
    this.#shape = around(first, a);
    const top = [...first];
    top[a] = this.#lens.reduce((x, y) => x + y, 0);
    return [top];
  }

  forward(c: ForwardContext): void {
    concatAxis(c.rec, {
      parts: c.bottoms.map((b, i) => ({ region: b.region, len: this.#lens[i] })),
      out: c.tops[0].region,
      shape: this.#shape,
    });
  }

  override backward(c: BackwardContext): void {
    const dy = c.topDiffs[0];
    if (!dy) return;
    const parts: AxisPart[] = this.bottoms.map((name, i) => ({
      region: c.bottomDiffs[i],
      len: this.#lens[i],
      // A repeated input's later copies add to what the first one wrote.
      accumulate: c.accumulate[i] || this.bottoms.indexOf(name) < i,
    }));
    splitAxis(c.rec, { x: dy, parts, shape: this.#shape });
  }
}

/** Options of {@linkcode Slice}. */
export interface SliceOptions {
  bottom: string;
  tops: readonly string[];
  /** Axis to cut (negative counts from the end). Default 1 (channels). */
  axis?: number;
  /**
   * Caffe's slice_point: tops.length - 1 increasing cut positions. Default: equal pieces (the
   * axis must divide evenly).
   */
  slicePoints?: readonly number[];
}

/** Cuts the input along `axis` into consecutive pieces. */
export class Slice extends Layer {
  readonly type = "Slice";
  readonly axis: number;
  readonly slicePoints: readonly number[] | undefined;
  #lens: number[] = [];
  #shape: AxisShape = { outer: 0, inner: 0 };

  constructor(name: string, opts: SliceOptions) {
    super(name, [opts.bottom], opts.tops);
    if (opts.tops.length < 1) throw new RangeError(`layer "${name}": Slice needs at least 1 output`);
    this.axis = opts.axis ?? 1;
    this.slicePoints = opts.slicePoints;
  }

  setup(bottoms: readonly Shape[]): Shape[] {
    this.expectBottoms(bottoms, 1);
    const s = bottoms[0];
    const a = axisOf(this.name, this.axis, s.length);
    const L = s[a], T = this.tops.length;
    let cuts: number[];
    if (this.slicePoints) {
      cuts = [...this.slicePoints];
      const ok = cuts.length === T - 1 && cuts.every((p, i) => p > (i ? cuts[i - 1] : 0) && p < L);
      if (!ok) {
        throw new ShapeError(
          this.name,
          "slice points",
          `${T - 1} increasing positions inside (0, ${L})`,
          `[${cuts.join(", ")}]`,
        );
      }
    } else {
      if (L % T !== 0) throw new ShapeError(this.name, `axis ${a} extent`, `a multiple of ${T}`, String(L));
      cuts = Array.from({ length: T - 1 }, (_, i) => ((i + 1) * L) / T);
    }
    const bounds = [0, ...cuts, L];
    this.#lens = bounds.slice(1).map((b, i) => b - bounds[i]);
    this.#shape = around(s, a);
    return this.#lens.map((len) => s.map((d, k) => (k === a ? len : d)));
  }

  forward(c: ForwardContext): void {
    splitAxis(c.rec, {
      x: c.bottoms[0].region,
      parts: c.tops.map((t, i) => ({ region: t.region, len: this.#lens[i] })),
      shape: this.#shape,
    });
  }

  override backward(c: BackwardContext): void {
    const dx = c.bottomDiffs[0];
    if (!dx) return;
    // Pieces nobody differentiates have no gradient buffer; their slice of dx is zero.
    concatAxis(c.rec, {
      parts: c.topDiffs.map((d, i) => ({ region: d, len: this.#lens[i] })),
      out: dx,
      shape: this.#shape,
      accumulate: c.accumulate[0],
    });
  }
}
