/**
 * The geometry of one training sample as three 2x3 affine maps, built once per sample from the
 * augmentation parameters:
 *
 * - `jointMap`: stored 224-crop joint coordinates -> norm crop coordinates (the 2D label);
 * - `sampleMap`: output pixel index (S x S network input) -> 224-source pixel index (the warp);
 * - `normToRaw`: norm crop coordinates -> raw-frame pixels (back-projection, `cropToBbx`).
 *
 * Conventions (clean, the default). Pixel `i` covers the continuous interval [i, i+1); stored
 * joint coordinates and raw-frame (camera) pixels are pixel-index coordinates, so a continuous
 * coordinate is index + 0.5. "Norm" is the continuous crop coordinate divided by the crop side
 * (256), so it is resolution-independent: pixel p of an S-wide input has its centre at
 * (p + 0.5) / S. The 224 source crop is the bbx region resized to 224, with
 * u_raw = x1 + u224 * (x2 - x1) / 224 (sourceToRaw). Augmentation scales by m / (0.005 * scale) and rotates about the person
 * centre (center_x, center_y, continuous), which lands on the crop centre (128, 128); a flip
 * mirrors about that centre. Hence in test mode (m = 1, no rotation, no flip):
 *
 *     c256 = c224 / 1.12 + 28      (continuous),  i.e.  u256 = (u224 + 0.5) / 1.12 - 0.5 + 28  (index)
 *     norm = ((u224 + 0.5) / 1.12 + 28) / 256
 *
 * Legacy geometry (SEED_SPEC §3, §8.17): joints are scaled by k ignoring OpenCV's half-pixel
 * resize convention, the rotation canvas is one pixel larger than the resized image (+0.5 px
 * shift), the crop centre is truncated, flips use x <- 255 - x, and norm = index / 256. In test
 * mode this gives exactly u256 = u224 / 1.12 + 28.5. Separately, `legacyBbx` makes `normToRaw`
 * treat the 256 crop as the bbx, as the seed's GenAug3D does (§8.3).
 * @module
 */

/** Row-major 2x3 affine [a, b, c, d, e, f]: x' = a x + b y + c, y' = d x + e y + f. */
export type Affine = Float64Array;

/** Side of the crop the norm coordinates refer to. */
export const CROP_SIDE = 256;
/** Side of the stored source crops. */
export const SOURCE_SIDE = 224;

/** Builds an affine from its six coefficients. */
function affine(a: number, b: number, c: number, d: number, e: number, f: number): Affine {
  return Float64Array.of(a, b, c, d, e, f);
}

/** The identity map. */
export function identity(): Affine {
  return affine(1, 0, 0, 0, 1, 0);
}

/** `outer ∘ inner`: applies `inner` first. */
export function compose(outer: Affine, inner: Affine): Affine {
  const [a, b, c, d, e, f] = outer;
  const [A, B, C, D, E, F] = inner;
  return affine(
    a * A + b * D,
    a * B + b * E,
    a * C + b * F + c,
    d * A + e * D,
    d * B + e * E,
    d * C + e * F + f,
  );
}

/** Composes left to right in application order: `chain(m1, m2, m3)` applies m1 first. */
export function chain(...maps: Affine[]): Affine {
  return maps.reduce((acc, m) => compose(m, acc), identity());
}

/** The inverse map. */
export function invert(m: Affine): Affine {
  const [a, b, c, d, e, f] = m;
  const det = a * e - b * d;
  if (det === 0 || !Number.isFinite(det)) throw new RangeError("invert: singular affine map");
  const ia = e / det, ib = -b / det, id = -d / det, ie = a / det;
  return affine(ia, ib, -(ia * c + ib * f), id, ie, -(id * c + ie * f));
}

/** Applies a map to one point. */
export function apply(m: Affine, p: readonly [number, number]): [number, number] {
  const [x, y] = p;
  return [m[0] * x + m[1] * y + m[2], m[3] * x + m[4] * y + m[5]];
}

/** Applies a map to interleaved (x, y) pairs; `out` (may alias `xy`) is allocated when absent. */
export function applyPoints(
  m: Affine,
  xy: ArrayLike<number>,
  opts: { out?: Float64Array | Float32Array } = {},
): Float64Array | Float32Array {
  const out = opts.out ?? new Float64Array(xy.length);
  for (let i = 0; i + 1 < xy.length; i += 2) {
    const x = xy[i], y = xy[i + 1];
    out[i] = m[0] * x + m[1] * y + m[2];
    out[i + 1] = m[3] * x + m[4] * y + m[5];
  }
  return out;
}

/** Translation by (tx, ty). */
export function translate(tx: number, ty: number): Affine {
  return affine(1, 0, tx, 0, 1, ty);
}

/** Uniform scaling by s about the origin. */
export function scaling(s: number): Affine {
  return affine(s, 0, 0, 0, s, 0);
}

/** OpenCV's rotation (getRotationMatrix2D, positive = counter-clockwise on screen) about the origin. */
export function rotation(degrees: number): Affine {
  const t = degrees * Math.PI / 180;
  const c = Math.cos(t), s = Math.sin(t);
  return affine(c, s, 0, -s, c, 0);
}

/** Horizontal mirror x -> w - x. */
export function mirror(w: number): Affine {
  return affine(-1, 0, w, 0, 1, 0);
}

/** Square bbx (x1, y1, x2, y2) in raw-frame px. */
export type Bbx = readonly [number, number, number, number];

/**
 * 224-source pixel coordinates -> raw-frame pixel coordinates: u_raw = x1 + u224 * (x2 - x1) / 224.
 * Both sides use the same pixel-coordinate origin, as the synthetic generator's projection does
 * (io/synth_cameras.ts rawToCrop), so back-projecting its 2D reproduces its 3D exactly.
 */
export function sourceToRaw(bbx: Bbx, side = SOURCE_SIDE): Affine {
  const sx = (bbx[2] - bbx[0]) / side, sy = (bbx[3] - bbx[1]) / side;
  return affine(sx, 0, bbx[0], 0, sy, bbx[1]);
}

/** Raw-frame pixel index -> 224-source pixel index (inverse of sourceToRaw). */
export function rawToSource(bbx: Bbx, side = SOURCE_SIDE): Affine {
  return invert(sourceToRaw(bbx, side));
}

/** One draw of the augmentation. */
export interface AugParams {
  /** Scale multiplier m (1 = none). */
  scale: number;
  /** Rotation in degrees, counter-clockwise positive. */
  rotateDeg: number;
  /** Horizontal flip. */
  flip: boolean;
}

/** The no-augmentation parameters of test mode. */
export const NO_AUG: AugParams = { scale: 1, rotateDeg: 0, flip: false };

/** What a sample's geometry needs to know. */
export interface SampleFrame {
  /** Person centre in the source (center_x, center_y files). */
  centerX: number;
  /** Person centre y. */
  centerY: number;
  /** Person size in px (scale file); the seed's scale_provided is 0.005 * scale. */
  scale: number;
  /** Source image width (224). */
  width: number;
  /** Source image height (224). */
  height: number;
  /** Raw-frame bbx of the source crop. */
  bbx: Bbx;
}

/** The per-sample maps; see the module comment. */
export interface SampleGeometry {
  /** Stored joint coords -> norm. */
  jointMap: Affine;
  /** Output pixel index -> source pixel index. */
  sampleMap: Affine;
  /** Norm -> raw-frame px. */
  normToRaw: Affine;
  /** Source pixels per output pixel (for antialiasing). */
  footprint: number;
}

/** Output pixel index of an `inputSize` image -> 256-crop pixel index. */
function outputToCropIndex(inputSize: number): Affine {
  const r = CROP_SIDE / inputSize;
  return chain(translate(0.5, 0.5), scaling(r), translate(-0.5, -0.5));
}

/** Clean geometry: one continuous-coordinate similarity about the person centre. */
function cleanGeometry(f: SampleFrame, p: AugParams, inputSize: number): SampleGeometry {
  const k = p.scale / (0.005 * f.scale);
  const h = CROP_SIDE / 2;
  // continuous source -> continuous crop
  let toCrop = chain(translate(-f.centerX, -f.centerY), scaling(k), rotation(p.rotateDeg), translate(h, h));
  if (p.flip) toCrop = compose(mirror(CROP_SIDE), toCrop);
  const indexToCont = translate(0.5, 0.5);
  const jointMap = chain(indexToCont, toCrop, scaling(1 / CROP_SIDE));
  const outToCropCont = chain(indexToCont, scaling(CROP_SIDE / inputSize));
  const sampleMap = chain(outToCropCont, invert(toCrop), translate(-0.5, -0.5));
  const normToRaw = chain(
    scaling(CROP_SIDE),
    invert(toCrop),
    translate(-0.5, -0.5),
    sourceToRaw(f.bbx, f.width),
  );
  return { jointMap, sampleMap, normToRaw, footprint: CROP_SIDE / inputSize / k };
}

/** The seed's geometry (SEED_SPEC §3 step 4, quirks of §8.17 and §8.3 included). */
function legacyGeometry(f: SampleFrame, p: AugParams, inputSize: number): SampleGeometry {
  const k = p.scale / (0.005 * f.scale);
  // a. resize: image follows OpenCV's half-pixel convention, joints are just multiplied by k.
  const w = Math.round(f.width * k), h = Math.round(f.height * k);
  const imageResize = chain(translate(0.5, 0.5), scaling(k), translate(-0.5, -0.5));
  const jointResize = scaling(k);
  // b. rotate about the resized image's centre onto the bounding canvas of the rotated rectangle.
  const t = p.rotateDeg * Math.PI / 180;
  const ca = Math.abs(Math.cos(t)), sa = Math.abs(Math.sin(t));
  const cx = w / 2, cy = h / 2;
  const hx = (w * ca + h * sa) / 2, hy = (w * sa + h * ca) / 2;
  const bw = Math.ceil(cx + hx) - Math.floor(cx - hx) + 1;
  const bh = Math.ceil(cy + hy) - Math.floor(cy - hy) + 1;
  const rot = chain(translate(-cx, -cy), rotation(p.rotateDeg), translate(bw / 2, bh / 2));
  // c. crop 256 around the truncated transformed centre.
  const [ox, oy] = apply(compose(rot, jointResize), [f.centerX, f.centerY]);
  const crop = translate(CROP_SIDE / 2 - Math.trunc(ox), CROP_SIDE / 2 - Math.trunc(oy));
  // d. flip in index coordinates.
  const flip = p.flip ? mirror(CROP_SIDE - 1) : identity();
  const jointToCrop = chain(jointResize, rot, crop, flip);
  const imageToCrop = chain(imageResize, rot, crop, flip);
  const jointMap = compose(scaling(1 / CROP_SIDE), jointToCrop);
  return {
    jointMap,
    sampleMap: compose(invert(imageToCrop), outputToCropIndex(inputSize)),
    // The seed's own back-projection would need its index-based norm; reuse the clean inverse chain.
    normToRaw: chain(invert(jointMap), sourceToRaw(f.bbx, f.width)),
    footprint: CROP_SIDE / inputSize / k,
  };
}

/** The seed's GenAug3D frame (§4.6, §8.3): the 256 crop is taken to be the bbx itself. */
export function cropAsBbx(bbx: Bbx): Affine {
  return affine(bbx[2] - bbx[0], 0, bbx[0], 0, bbx[3] - bbx[1], bbx[1]);
}

/**
 * Builds the maps of one sample. `legacyGeometry` selects the seed's crop geometry (§8.17);
 * `legacyBbx` the seed's back-projection frame that treats the crop as the bbx (§8.3).
 */
export function sampleGeometry(
  frame: SampleFrame,
  params: AugParams,
  opts: { inputSize?: number; legacyGeometry?: boolean; legacyBbx?: boolean } = {},
): SampleGeometry {
  const s = opts.inputSize ?? CROP_SIDE;
  const g = opts.legacyGeometry ? legacyGeometry(frame, params, s) : cleanGeometry(frame, params, s);
  if (opts.legacyBbx) g.normToRaw = cropAsBbx(frame.bbx);
  return g;
}
