/**
 * Ground-truth heatmap layers (no backward): the 2D renderers of GenHeatmapAllChannels and the 3D
 * volumetric target of Gen3DHeatmapInMoreDetailV3, rendered on the GPU from joint coordinates.
 * @module
 */
import { type ForwardContext, Layer, type Shape } from "../layer.ts";
import { DEFAULT_SIGMA, type Heatmap2DKind, renderHeatmaps2D, renderVolume } from "../../kernels/heatmap.ts";

/** Options of {@linkcode HeatmapTarget}. */
export interface HeatmapTargetOptions {
  /** Norm 2D joints [B,J,2]. */
  bottom: string;
  /** Heatmaps [B,J,S,S]. */
  top: string;
  /** Heatmap side S (default 64). */
  size?: number;
  /** Renderer (default "baseline", the c2f prototxt's). */
  kind?: Heatmap2DKind;
  /** Sigma in the renderer's unit; default {@linkcode DEFAULT_SIGMA}[kind]. */
  sigma?: number;
  /** Crop side in pixels for the cpm renderer (default 256). */
  crop?: number;
  /** Reproduce the seed's cell placement (+half-cell bias, §8.2, §8.16). */
  legacy?: boolean;
}

/** 2D ground-truth heatmaps from norm joints. */
export class HeatmapTarget extends Layer {
  readonly type = "HeatmapTarget";
  readonly size: number;
  readonly kind: Heatmap2DKind;
  readonly sigma: number;
  readonly crop: number;
  readonly legacy: boolean;

  constructor(name: string, o: HeatmapTargetOptions) {
    super(name, [o.bottom], [o.top]);
    this.size = o.size ?? 64;
    this.kind = o.kind ?? "baseline";
    this.sigma = o.sigma ?? DEFAULT_SIGMA[this.kind];
    this.crop = o.crop ?? 256;
    this.legacy = o.legacy ?? false;
  }

  override propagates(): boolean {
    return false;
  }

  setup(bottoms: readonly Shape[]): Shape[] {
    this.expectBottoms(bottoms, 1);
    const [B, J] = bottoms[0];
    this.expectShape("joints (norm 2D, [B,J,2])", bottoms[0], [B, J, 2]);
    return [[B, J, this.size, this.size]];
  }

  forward(c: ForwardContext): void {
    const [B, J] = c.bottoms[0].shape;
    renderHeatmaps2D(c.rec, {
      coords: c.bottoms[0].region,
      out: c.tops[0].region,
      batch: B,
      joints: J,
      size: this.size,
      kind: this.kind,
      sigma: this.sigma,
      crop: this.crop,
      legacy: this.legacy,
    });
  }
}

/** Options of {@linkcode VolumeTarget}. */
export interface VolumeTargetOptions {
  /** [norm 2D joints [B,J,2], normalised depth [B,J] or [B,J,k] (last component used)]. */
  bottoms: readonly [string, string];
  /** Volume [B, J*D, S, S], channel j*D + d. */
  top: string;
  /** Depth bins D (2..64). */
  depthBins: number;
  /** Heatmap side S (default 64). */
  size?: number;
  /** xy sigma in cells (default 2); the depth window follows from it (§4.8). */
  sigma?: number;
  /** The seed's fine depth resolution R (default 64). */
  fineBins?: number;
  /** Clean mode: centre the depth Gaussian at z*D - 0.5 rather than on the nearest bin. */
  subBinDepth?: boolean;
  /** Reproduce the seed's placement and depth-bin rules (§8.2, §8.16). */
  legacy?: boolean;
}

/** 3D volumetric ground truth from norm joints and normalised depth. */
export class VolumeTarget extends Layer {
  readonly type = "VolumeTarget";
  readonly size: number;
  readonly depthBins: number;
  readonly sigma: number;
  readonly fineBins: number;
  readonly subBinDepth: boolean;
  readonly legacy: boolean;

  constructor(name: string, o: VolumeTargetOptions) {
    super(name, [...o.bottoms], [o.top]);
    this.size = o.size ?? 64;
    this.depthBins = o.depthBins;
    this.sigma = o.sigma ?? 2;
    this.fineBins = o.fineBins ?? 64;
    this.subBinDepth = o.subBinDepth ?? false;
    this.legacy = o.legacy ?? false;
    if (!Number.isInteger(this.depthBins) || this.depthBins < 1) {
      throw new RangeError(`layer "${name}": depthBins must be a positive integer, got ${o.depthBins}`);
    }
  }

  override propagates(): boolean {
    return false;
  }

  setup(bottoms: readonly Shape[]): Shape[] {
    this.expectBottoms(bottoms, 2);
    const [B, J] = bottoms[0];
    this.expectShape("joints (norm 2D, [B,J,2])", bottoms[0], [B, J, 2]);
    const d = bottoms[1];
    if (d.length === 2) this.expectShape("depth ([B,J])", d, [B, J]);
    else this.expectShape("depth ([B,J,k])", d, [B, J, d[2] ?? 1]);
    const S = this.size;
    return [[B, J * this.depthBins, S, S]];
  }

  forward(c: ForwardContext): void {
    const [B, J] = c.bottoms[0].shape;
    renderVolume(c.rec, {
      coords: c.bottoms[0].region,
      depth: c.bottoms[1].region,
      out: c.tops[0].region,
      batch: B,
      joints: J,
      size: this.size,
      depthBins: this.depthBins,
      depthStride: c.bottoms[1].shape[2] ?? 1,
      sigma: this.sigma,
      fineBins: this.fineBins,
      subBinDepth: this.subBinDepth,
      legacy: this.legacy,
    });
  }
}
