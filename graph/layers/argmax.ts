/**
 * Argmax decoders (no backward): ArgmaxHM on 2D maps and the 3D argmax on joint cubes
 * (SEED_SPEC §4.11), decoding the first maximum to cell centres.
 * @module
 */
import { type ForwardContext, Layer, type Shape, ShapeError } from "../layer.ts";
import { type CellGrid, type CoordBounds, type CoordOutput, UNIT_BOUNDS } from "../../kernels/integral.ts";
import { argmaxDecode } from "../../kernels/argmax.ts";
import type { GroupLayout } from "../../kernels/reduce.ts";

/** Options of {@linkcode Argmax}. */
export interface ArgmaxLayerOptions {
  /** Raw heatmaps: [B, J*D, H, W] with `depthBins`, else [B, J, H, W]. */
  bottom: string;
  /** One output: [B,J,3] (x,y,z) in 3D, [B,J,2] in 2D. */
  top?: string;
  /** 3D only, the seed's split: [(x,y) as [B,J,2], z as [B,J]]. */
  tops?: readonly [string, string];
  /** Depth bins D; omit for 2D maps. */
  depthBins?: number;
  /** Coordinate ranges per axis (default [0,1] each). */
  bounds?: Partial<CoordBounds>;
  /** Run the seed's sequential 1e-6 scan literally (differs only on near-ties). */
  legacy?: boolean;
}

/**
 * Per joint, the cell centre of the first maximum: x = lb + (ub - lb)(col + 0.5)/W, likewise y
 * and z = lb + (ub - lb)(k + 0.5)/D; the grid centre when no value exceeds 1e-6.
 */
export class Argmax extends Layer {
  readonly type = "Argmax";
  readonly depthBins: number | undefined;
  readonly bounds: CoordBounds;
  readonly legacy: boolean;
  #layout: GroupLayout = { groups: 0, groupSize: 0 };
  #grid: CellGrid = { depth: 1, height: 1, width: 1, bounds: UNIT_BOUNDS, offset: 0.5 };

  constructor(name: string, o: ArgmaxLayerOptions) {
    const tops = o.tops ? [...o.tops] : o.top ? [o.top] : [];
    super(name, [o.bottom], tops);
    if (tops.length === 0) throw new Error(`layer "${name}": give top or tops`);
    if (o.tops && o.depthBins === undefined) {
      throw new Error(`layer "${name}": split tops [xy, z] need depthBins (a 3D input)`);
    }
    this.depthBins = o.depthBins;
    this.bounds = { ...UNIT_BOUNDS, ...o.bounds };
    this.legacy = o.legacy ?? false;
  }

  override propagates(): boolean {
    return false;
  }

  setup(bottoms: readonly Shape[]): Shape[] {
    this.expectBottoms(bottoms, 1);
    const s = bottoms[0];
    if (s.length !== 4) throw new ShapeError(this.name, "input", "[B, J*D, H, W]", s.join("x"));
    const [B, C, H, W] = s;
    const D = this.depthBins ?? 1;
    if (C % D !== 0) throw new ShapeError(this.name, "channels", `a multiple of depthBins ${D}`, String(C));
    const J = C / D;
    this.#layout = { groups: B * J, groupSize: D * H * W };
    this.#grid = { depth: D, height: H, width: W, bounds: this.bounds, offset: 0.5 };
    if (this.tops.length === 2) return [[B, J, 2], [B, J]];
    return [[B, J, this.depthBins === undefined ? 2 : 3]];
  }

  forward(c: ForwardContext): void {
    const axes = (k: number): (0 | 1 | 2)[] =>
      this.tops.length === 2 ? (k === 0 ? [0, 1] : [2]) : this.depthBins === undefined ? [0, 1] : [0, 1, 2];
    argmaxDecode(c.rec, {
      ...this.#layout,
      grid: this.#grid,
      x: c.bottoms[0].region,
      outputs: c.tops.map((t, k): CoordOutput => ({ region: t.region, axes: axes(k) })),
      legacy: this.legacy,
    });
  }
}
