/**
 * Geometry layers (SEED_SPEC §4.5, §4.6, §2.2): depth encode/decode, back-projection of norm 2D
 * plus depth to camera-frame mm (GenPredMono3D, GenAug3D) and projection to raw-frame pixels.
 *
 * Clean behaviour is the default. `legacy` reproduces the seed: DepthDecode then uses the seed's
 * decoding bounds (§8.1), and the back-projection and projection layers take the bbx [B, 4] and
 * treat the 256 crop as the bbx (§8.3) instead of the exact `cropToBbx` affine [B, 6].
 *
 * Decode and GenPredMono3D are differentiable w.r.t. the normalised depth and the 2D joints, so a
 * 3D loss on the decoded joints trains the integral (soft-argmax) outputs through them.
 * @module
 */
import { ROOT_JOINT } from "../../io/joints.ts";
import {
  backProject,
  backProjectBackward,
  type CropFrame,
  cropFrameWidth,
  type DepthBounds,
  depthDecode,
  depthDecodeBackward,
  depthEncode,
  ENCODE_DEPTH_BOUNDS,
  LEGACY_DECODE_DEPTH_BOUNDS,
  project,
} from "../../kernels/geometry.ts";
import { type BackwardContext, type ForwardContext, Layer, numel, type Shape, ShapeError } from "../layer.ts";

function frameOf(legacy: boolean | undefined): CropFrame {
  return legacy ? "bbx" : "affine";
}

/** [B, J, 3] check; returns J. */
function expectPoints(layer: string, what: string, s: Shape, batch?: number): number {
  if (s.length !== 3 || s[2] !== 3 || (batch !== undefined && s[0] !== batch)) {
    throw new ShapeError(layer, what, `${batch ?? "B"} x J x 3`, s.join("x"));
  }
  return s[1];
}

/** Checks a [B, w] per-sample input. */
function expectPerSample(layer: string, what: string, s: Shape, batch: number, w: number): void {
  if (s.length !== 2 || s[0] !== batch || s[1] !== w) {
    throw new ShapeError(layer, what, `${batch}x${w}`, s.join("x"));
  }
}

function checkRoot(layer: string, root: number, joints: number): void {
  if (!Number.isInteger(root) || root < 0 || root >= joints) {
    throw new ShapeError(layer, "root joint", `an index below ${joints}`, String(root));
  }
}

/** Options of {@linkcode DepthEncode}. */
export interface DepthEncodeOptions {
  /** [B, J, 3] camera-frame points (mm). */
  points: string;
  /** [B, J, 3] points supplying the root depth (default: `points` itself). */
  rootFrom?: string;
  /** [B, J] normalised root-relative depth. */
  top: string;
  /** Root joint index (default ROOT_JOINT). */
  root?: number;
  /** Default: the seed's encoding bounds. */
  bounds?: DepthBounds;
}

/** ConvertDepth, encode direction (§4.5): n_j = (z_j - z_root - lb) / (ub - lb). Forward only. */
export class DepthEncode extends Layer {
  readonly type = "DepthEncode";
  readonly root: number;
  readonly bounds: DepthBounds;

  constructor(name: string, o: DepthEncodeOptions) {
    super(name, o.rootFrom ? [o.points, o.rootFrom] : [o.points], [o.top]);
    this.root = o.root ?? ROOT_JOINT;
    this.bounds = o.bounds ?? ENCODE_DEPTH_BOUNDS;
  }

  setup(bottoms: readonly Shape[]): Shape[] {
    const J = expectPoints(this.name, "points", bottoms[0]);
    if (bottoms.length > 1) this.expectShape("rootFrom (must match points)", bottoms[1], bottoms[0]);
    checkRoot(this.name, this.root, J);
    return [[bottoms[0][0], J]];
  }

  forward(c: ForwardContext): void {
    const [B, J] = c.tops[0].shape;
    depthEncode(c.rec, {
      points: c.bottoms[0].region,
      rootFrom: c.bottoms[c.bottoms.length - 1].region,
      out: c.tops[0].region,
      batch: B,
      joints: J,
      root: this.root,
      bounds: this.bounds,
    });
  }
}

/** Options of {@linkcode DepthDecode}. */
export interface DepthDecodeOptions {
  /** [B, J] normalised depth (differentiable). */
  depth: string;
  /** [B, J, 3] points supplying the absolute root depth: the GT 3D in the seed (a label). */
  rootFrom: string;
  /** [B, J] absolute depth in mm. */
  top: string;
  root?: number;
  /** Explicit bounds; override `legacy`. */
  bounds?: DepthBounds;
  /** Use the seed's decoding bounds (§8.1): a perfect depth comes back as 0.928 z - 17.76 mm. */
  legacy?: boolean;
}

/** ConvertDepth, decode direction (§4.5): z_j = n_j (ub - lb) + lb + z_root. */
export class DepthDecode extends Layer {
  readonly type = "DepthDecode";
  readonly root: number;
  readonly bounds: DepthBounds;

  constructor(name: string, o: DepthDecodeOptions) {
    super(name, [o.depth, o.rootFrom], [o.top]);
    this.root = o.root ?? ROOT_JOINT;
    this.bounds = o.bounds ?? (o.legacy ? LEGACY_DECODE_DEPTH_BOUNDS : ENCODE_DEPTH_BOUNDS);
  }

  override propagates(i: number): boolean {
    return i === 0;
  }

  setup(bottoms: readonly Shape[]): Shape[] {
    this.expectBottoms(bottoms, 2);
    const [B, J] = bottoms[0];
    if (bottoms[0].length !== 2) throw new ShapeError(this.name, "depth", "B x J", bottoms[0].join("x"));
    this.expectShape("rootFrom", bottoms[1], [B, J, 3]);
    checkRoot(this.name, this.root, J);
    return [[B, J]];
  }

  forward(c: ForwardContext): void {
    const [B, J] = c.tops[0].shape;
    depthDecode(c.rec, {
      depth: c.bottoms[0].region,
      rootFrom: c.bottoms[1].region,
      out: c.tops[0].region,
      batch: B,
      joints: J,
      root: this.root,
      bounds: this.bounds,
    });
  }

  override backward(c: BackwardContext): void {
    const d = c.bottomDiffs[0];
    if (!d) return;
    depthDecodeBackward(c.rec, {
      dz: c.topDiffs[0]!,
      dDepth: d,
      n: numel(c.tops[0].shape),
      bounds: this.bounds,
      accumulate: c.accumulate[0],
    });
  }
}

/** Options of {@linkcode GenPredMono3D}. */
export interface GenPredMono3DOptions {
  /** [B, J, 2] norm crop coordinates (differentiable). */
  joints2d: string;
  /** [B, J] absolute depth in mm (differentiable), e.g. a DepthDecode output. */
  depth: string;
  /** [B, 4] fx fy cx cy. */
  camera: string;
  /** [B, 6] cropToBbx affine; with `legacy`, the [B, 4] bbx. */
  crop: string;
  /** [B, J, 3] camera-frame mm. */
  top: string;
  /** Treat the crop as the bbx (§8.3): `crop` is then the bbx x1 y1 x2 y2. */
  legacy?: boolean;
}

/**
 * GenPredMono3D (§4.6): pinhole back-projection of predicted norm 2D joints with an absolute
 * depth. (u, v) = cropToBbx(u_n, v_n); X = (u - cx) z / fx, Y = (v - cy) z / fy, Z = z.
 */
export class GenPredMono3D extends Layer {
  readonly type = "GenPredMono3D";
  readonly frame: CropFrame;

  constructor(name: string, o: GenPredMono3DOptions) {
    super(name, [o.joints2d, o.depth, o.camera, o.crop], [o.top]);
    this.frame = frameOf(o.legacy);
  }

  override propagates(i: number): boolean {
    return i < 2;
  }

  setup(bottoms: readonly Shape[]): Shape[] {
    this.expectBottoms(bottoms, 4);
    const [B, J] = bottoms[1];
    if (bottoms[1].length !== 2) throw new ShapeError(this.name, "depth", "B x J", bottoms[1].join("x"));
    this.expectShape("joints2d", bottoms[0], [B, J, 2]);
    expectPerSample(this.name, "camera", bottoms[2], B, 4);
    expectPerSample(
      this.name,
      this.frame === "bbx" ? "bbx (legacy)" : "cropToBbx",
      bottoms[3],
      B,
      cropFrameWidth(this.frame),
    );
    return [[B, J, 3]];
  }

  forward(c: ForwardContext): void {
    const [B, J] = c.tops[0].shape;
    backProject(c.rec, {
      joints2d: c.bottoms[0].region,
      depth: c.bottoms[1].region,
      depthSource: "depth",
      camera: c.bottoms[2].region,
      crop: c.bottoms[3].region,
      frame: this.frame,
      out: c.tops[0].region,
      batch: B,
      joints: J,
    });
  }

  override backward(c: BackwardContext): void {
    const [B, J] = c.tops[0].shape;
    backProjectBackward(c.rec, {
      joints2d: c.bottoms[0].region,
      depth: c.bottoms[1].region,
      camera: c.bottoms[2].region,
      crop: c.bottoms[3].region,
      frame: this.frame,
      dOut: c.topDiffs[0]!,
      dJoints2d: c.bottomDiffs[0],
      dDepth: c.bottomDiffs[1],
      accumulate2d: c.accumulate[0],
      accumulateDepth: c.accumulate[1],
      batch: B,
      joints: J,
    });
  }
}

/** Options of {@linkcode GenAug3D}. */
export interface GenAug3DOptions {
  /** [B, J, 2] augmented 2D joints: norm crop coordinates, or crop pixels when `cropSide` is set. */
  joints2d: string;
  /** [B, J, 3] GT camera-frame points; joint j's z is used for joint j. */
  gt3d: string;
  camera: string;
  /** [B, 6] cropToBbx affine; with `legacy`, the [B, 4] bbx. */
  crop: string;
  top: string;
  /** The 2D input is in pixels of a crop this wide (the seed passes 256-crop pixels); default: norm input. */
  cropSide?: number;
  /** Treat the crop as the bbx (§8.3). */
  legacy?: boolean;
}

/**
 * GenAug3D (§4.6): the 2D label back-projected with the GT depth of the same joint index. Which
 * depth that is after a flip (§8.4) is decided by whoever builds `gt3d`. Forward only (labels).
 */
export class GenAug3D extends Layer {
  readonly type = "GenAug3D";
  readonly frame: CropFrame;
  readonly cropSide: number;

  constructor(name: string, o: GenAug3DOptions) {
    super(name, [o.joints2d, o.gt3d, o.camera, o.crop], [o.top]);
    this.frame = frameOf(o.legacy);
    this.cropSide = o.cropSide ?? 1;
  }

  setup(bottoms: readonly Shape[]): Shape[] {
    this.expectBottoms(bottoms, 4);
    const J = expectPoints(this.name, "gt3d", bottoms[1]);
    const B = bottoms[1][0];
    this.expectShape("joints2d", bottoms[0], [B, J, 2]);
    expectPerSample(this.name, "camera", bottoms[2], B, 4);
    expectPerSample(this.name, "crop", bottoms[3], B, cropFrameWidth(this.frame));
    return [[B, J, 3]];
  }

  forward(c: ForwardContext): void {
    const [B, J] = c.tops[0].shape;
    backProject(c.rec, {
      joints2d: c.bottoms[0].region,
      depth: c.bottoms[1].region,
      depthSource: "points_z",
      camera: c.bottoms[2].region,
      crop: c.bottoms[3].region,
      frame: this.frame,
      out: c.tops[0].region,
      batch: B,
      joints: J,
      scale2d: 1 / this.cropSide,
    });
  }
}

/** Options of {@linkcode Project}. */
export interface ProjectOptions {
  /** [B, J, 3] camera-frame points (mm). */
  points: string;
  /** [B, 4] fx fy cx cy. */
  camera: string;
  /** [B, 5] k1 k2 k3 p1 p2 (H36M order); omitted: pinhole. */
  distortion?: string;
  /** Output norm crop coordinates by inverting this frame ([B, 6] affine, or [B, 4] bbx with `legacy`). */
  crop?: string;
  /** [B, J, 2] raw-frame pixels, or norm crop coordinates when `crop` is given. */
  top: string;
  legacy?: boolean;
}

/** Projection of camera-frame points to raw-frame pixels, with optional H36M lens distortion (§2.2). Forward only. */
export class Project extends Layer {
  readonly type = "Project";
  readonly frame: CropFrame;
  readonly hasDistortion: boolean;
  readonly hasCrop: boolean;

  constructor(name: string, o: ProjectOptions) {
    super(name, [o.points, o.camera, ...(o.distortion ? [o.distortion] : []), ...(o.crop ? [o.crop] : [])], [
      o.top,
    ]);
    this.frame = frameOf(o.legacy);
    this.hasDistortion = !!o.distortion;
    this.hasCrop = !!o.crop;
  }

  setup(bottoms: readonly Shape[]): Shape[] {
    const J = expectPoints(this.name, "points", bottoms[0]);
    const B = bottoms[0][0];
    expectPerSample(this.name, "camera", bottoms[1], B, 4);
    let k = 2;
    if (this.hasDistortion) expectPerSample(this.name, "distortion", bottoms[k++], B, 5);
    if (this.hasCrop) expectPerSample(this.name, "crop", bottoms[k++], B, cropFrameWidth(this.frame));
    return [[B, J, 2]];
  }

  forward(c: ForwardContext): void {
    const [B, J] = c.tops[0].shape;
    let k = 2;
    project(c.rec, {
      points: c.bottoms[0].region,
      camera: c.bottoms[1].region,
      distortion: this.hasDistortion ? c.bottoms[k++].region : null,
      crop: this.hasCrop ? c.bottoms[k++].region : null,
      frame: this.frame,
      out: c.tops[0].region,
      batch: B,
      joints: J,
    });
  }
}
