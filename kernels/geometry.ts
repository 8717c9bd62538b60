/**
 * Camera geometry on the GPU (SEED_SPEC §2.2, §4.5, §4.6, §8.1, §8.3): root-relative depth
 * encode/decode, pinhole back-projection of norm crop coordinates with a depth (the seed's
 * GenPredMono3D and GenAug3D) and projection of camera-frame points to raw-frame pixels with
 * the H36M lens-distortion model.
 *
 * Layouts: points are [B, J, 3] camera-frame mm, 2D joints [B, J, 2] norm crop coordinates,
 * depth [B, J], camera [B, 4] = fx fy cx cy, distortion [B, 5] = k1 k2 k3 p1 p2, and the crop
 * frame either `cropToBbx` [B, 6] = (a, b, c, d, e, f) with raw x = a u + b v + c,
 * y = d u + e v + f (clean), or the bbx [B, 4] = x1 y1 x2 y2 read as if the crop were the bbx
 * (legacy, §8.3).
 *
 * Decode and back-projection are affine in the 2D joints for a fixed depth and affine in the depth
 * for fixed 2D joints, so their backward passes are closed-form and exact.
 * @module
 */
import { elementwise, f32, type Recorder, type Region, u32 } from "./kernel.ts";

/** Bounds of the normalised root-relative depth: n = (z - z_root - lb) / (ub - lb). */
export interface DepthBounds {
  lb: number;
  ub: number;
}

/** The seed's encoding bounds; the clean default for both directions (§4.5, §8.1). */
export const ENCODE_DEPTH_BOUNDS: Readonly<DepthBounds> = { lb: -1005.185902, ub: 980.8599 };

/** The seed's decoding bounds: with encoding bounds they turn a perfect z into 0.928 z - 17.76 mm (§8.1). */
export const LEGACY_DECODE_DEPTH_BOUNDS: Readonly<DepthBounds> = { lb: -950.637313, ub: 892.544664 };

/** How norm crop coordinates reach raw-frame pixels. */
export type CropFrame = "affine" | "bbx";

/** Floats per sample of the crop-frame input. */
export function cropFrameWidth(frame: CropFrame): number {
  return frame === "affine" ? 6 : 4;
}

/**
 * WGSL lets `ca..cf` (the norm -> raw affine of sample `n`) read from binding `crop`. The legacy
 * bbx frame is the same affine with no rotation: scale by the box side, offset by its corner.
 */
function cropLets(frame: CropFrame): string {
  if (frame === "affine") {
    return `  let ca = crop[n * 6u]; let cb = crop[n * 6u + 1u]; let cc = crop[n * 6u + 2u];
  let cd = crop[n * 6u + 3u]; let ce = crop[n * 6u + 4u]; let cf = crop[n * 6u + 5u];`;
  }
  return `  let ca = crop[n * 4u + 2u] - crop[n * 4u]; let cb = 0.0; let cc = crop[n * 4u];
  let cd = 0.0; let ce = crop[n * 4u + 3u] - crop[n * 4u + 1u]; let cf = crop[n * 4u + 1u];`;
}

const CAMERA_LETS =
  `  let fx = cam[n * 4u]; let fy = cam[n * 4u + 1u]; let cx = cam[n * 4u + 2u]; let cy = cam[n * 4u + 3u];`;

/** Shape of a batch of per-joint values. */
export interface BatchJoints {
  batch: number;
  joints: number;
}

/** Options of {@linkcode depthEncode}. */
export interface DepthEncodeIo extends BatchJoints {
  /** [B, J, 3] camera-frame points whose z is encoded. */
  points: Region;
  /** [B, J, 3] points whose joint `root` supplies z_root (often the same as `points`). */
  rootFrom: Region;
  /** [B, J] normalised depth. */
  out: Region;
  root: number;
  bounds: DepthBounds;
}

/** n_j = (z_j - z_root - lb) / (ub - lb) (§4.5 encode). */
export function depthEncode(rec: Recorder, io: DepthEncodeIo): void {
  const J = io.joints;
  const k = elementwise("depth_encode", {
    bindings: [
      { name: "pts", access: "read" },
      { name: "rootsrc", access: "read" },
      { name: "out", access: "read_write" },
    ],
    n: io.batch * J,
    body: `  let n = i / ${u32(J)};
  let zr = rootsrc[(n * ${u32(J)} + ${u32(io.root)}) * 3u + 2u];
  out[i] = (pts[i * 3u + 2u] - zr - ${f32(io.bounds.lb)}) / ${f32(io.bounds.ub - io.bounds.lb)};`,
  });
  rec.dispatch(k.src, [io.points, io.rootFrom, io.out], k.groups);
}

/** Options of {@linkcode depthDecode}. */
export interface DepthDecodeIo extends BatchJoints {
  /** [B, J] normalised depth. */
  depth: Region;
  /** [B, J, 3] points whose joint `root` supplies the absolute root depth (the GT, §4.5). */
  rootFrom: Region;
  /** [B, J] absolute depth in mm. */
  out: Region;
  root: number;
  bounds: DepthBounds;
}

/** z_j = n_j (ub - lb) + lb + z_root (§4.5 decode). */
export function depthDecode(rec: Recorder, io: DepthDecodeIo): void {
  const J = io.joints;
  const k = elementwise("depth_decode", {
    bindings: [
      { name: "depth", access: "read" },
      { name: "rootsrc", access: "read" },
      { name: "out", access: "read_write" },
    ],
    n: io.batch * J,
    body: `  let n = i / ${u32(J)};
  let zr = rootsrc[(n * ${u32(J)} + ${u32(io.root)}) * 3u + 2u];
  out[i] = depth[i] * ${f32(io.bounds.ub - io.bounds.lb)} + ${f32(io.bounds.lb)} + zr;`,
  });
  rec.dispatch(k.src, [io.depth, io.rootFrom, io.out], k.groups);
}

/** d depth (+)= dz (ub - lb): the decode is affine in the normalised depth. */
export function depthDecodeBackward(
  rec: Recorder,
  io: { dz: Region; dDepth: Region; n: number; bounds: DepthBounds; accumulate: boolean },
): void {
  const k = elementwise(`depth_decode_bwd${io.accumulate ? " acc" : ""}`, {
    bindings: [{ name: "dz", access: "read" }, { name: "dd", access: "read_write" }],
    n: io.n,
    body: `  dd[i] = ${io.accumulate ? "dd[i] + " : ""}dz[i] * ${f32(io.bounds.ub - io.bounds.lb)};`,
  });
  rec.dispatch(k.src, [io.dz, io.dDepth], k.groups);
}

/** Where a back-projection takes its absolute depth from. */
export type DepthSource =
  /** A [B, J] depth in mm (GenPredMono3D). */
  | "depth"
  /** The z of [B, J, 3] points at the same joint index (GenAug3D's GT depth). */
  | "points_z";

/** Options of {@linkcode backProject}. */
export interface BackProjectIo extends BatchJoints {
  /** [B, J, 2] 2D joints; multiplied by `scale2d` to get norm crop coordinates. */
  joints2d: Region;
  /** [B, J] depth (mm) or [B, J, 3] points, see `depthSource`. */
  depth: Region;
  depthSource: DepthSource;
  /** [B, 4] fx fy cx cy. */
  camera: Region;
  /** [B, 6] affine or [B, 4] bbx, see `frame`. */
  crop: Region;
  frame: CropFrame;
  /** [B, J, 3] camera-frame mm. */
  out: Region;
  /** 1 for norm input; 1 / 256 for the seed's GenAug3D, which takes crop pixels. */
  scale2d?: number;
}

function depthExpr(src: DepthSource): string {
  return src === "depth" ? "depth[i]" : "depth[i * 3u + 2u]";
}

/** X = (u - cx) / fx z, Y = (v - cy) / fy z, Z = z with (u, v) the raw-frame pixel of the 2D joint (§4.6). */
export function backProject(rec: Recorder, io: BackProjectIo): void {
  const J = io.joints, s = io.scale2d ?? 1;
  const k = elementwise(`back_project ${io.frame} ${io.depthSource}`, {
    bindings: [
      { name: "j2", access: "read" },
      { name: "depth", access: "read" },
      { name: "cam", access: "read" },
      { name: "crop", access: "read" },
      { name: "out", access: "read_write" },
    ],
    n: io.batch * J,
    body: `  let n = i / ${u32(J)};
${CAMERA_LETS}
${cropLets(io.frame)}
  let un = j2[i * 2u] * ${f32(s)};
  let vn = j2[i * 2u + 1u] * ${f32(s)};
  let z = ${depthExpr(io.depthSource)};
  let u = ca * un + cb * vn + cc;
  let v = cd * un + ce * vn + cf;
  out[i * 3u] = (u - cx) / fx * z;
  out[i * 3u + 1u] = (v - cy) / fy * z;
  out[i * 3u + 2u] = z;`,
  });
  rec.dispatch(k.src, [io.joints2d, io.depth, io.camera, io.crop, io.out], k.groups);
}

/** Options of {@linkcode backProjectBackward}. */
export interface BackProjectBackwardIo extends BatchJoints {
  joints2d: Region;
  /** [B, J] depth in mm. */
  depth: Region;
  camera: Region;
  crop: Region;
  frame: CropFrame;
  /** [B, J, 3] gradient of the output. */
  dOut: Region;
  /** [B, J, 2] gradient of the 2D joints, or null. */
  dJoints2d: Region | null;
  /** [B, J] gradient of the depth, or null. */
  dDepth: Region | null;
  accumulate2d: boolean;
  accumulateDepth: boolean;
}

/**
 * Gradients of the back-projection: for fixed z it is affine in (u_n, v_n) through the crop
 * affine, d(X, Y)/d(u_n, v_n) = z [a/fx b/fx; d/fy e/fy]; for fixed 2D it is linear in z,
 * d(X, Y, Z)/dz = ((u - cx)/fx, (v - cy)/fy, 1).
 */
export function backProjectBackward(rec: Recorder, io: BackProjectBackwardIo): void {
  const J = io.joints;
  const head = `  let n = i / ${u32(J)};
${CAMERA_LETS}
${cropLets(io.frame)}
  let gx = g[i * 3u] / fx;
  let gy = g[i * 3u + 1u] / fy;`;
  // Auto layouts drop unused bindings, so each kernel declares exactly what it reads.
  const common = [
    { name: "cam", access: "read" as const },
    { name: "crop", access: "read" as const },
    { name: "g", access: "read" as const },
    { name: "d", access: "read_write" as const },
  ];
  if (io.dJoints2d) {
    const acc = io.accumulate2d;
    const k = elementwise(`back_project_bwd_2d ${io.frame}${acc ? " acc" : ""}`, {
      bindings: [{ name: "depth", access: "read" }, ...common],
      n: io.batch * J,
      body: `${head}
  let z = depth[i];
  d[i * 2u] = ${acc ? "d[i * 2u] + " : ""}z * (gx * ca + gy * cd);
  d[i * 2u + 1u] = ${acc ? "d[i * 2u + 1u] + " : ""}z * (gx * cb + gy * ce);`,
    });
    rec.dispatch(k.src, [io.depth, io.camera, io.crop, io.dOut, io.dJoints2d], k.groups);
  }
  if (io.dDepth) {
    const acc = io.accumulateDepth;
    const k = elementwise(`back_project_bwd_depth ${io.frame}${acc ? " acc" : ""}`, {
      bindings: [{ name: "j2", access: "read" }, ...common],
      n: io.batch * J,
      body: `${head}
  let un = j2[i * 2u];
  let vn = j2[i * 2u + 1u];
  let u = ca * un + cb * vn + cc;
  let v = cd * un + ce * vn + cf;
  d[i] = ${acc ? "d[i] + " : ""}gx * (u - cx) + gy * (v - cy) + g[i * 3u + 2u];`,
    });
    rec.dispatch(k.src, [io.joints2d, io.camera, io.crop, io.dOut, io.dDepth], k.groups);
  }
}

/** Options of {@linkcode project}. */
export interface ProjectIo extends BatchJoints {
  /** [B, J, 3] camera-frame points. */
  points: Region;
  /** [B, 4] fx fy cx cy. */
  camera: Region;
  /** [B, 5] k1 k2 k3 p1 p2, or null for a pinhole camera. */
  distortion: Region | null;
  /** Map raw pixels back to norm crop coordinates through the inverse of this frame; null keeps raw pixels. */
  crop: Region | null;
  frame: CropFrame;
  /** [B, J, 2] raw-frame pixels or norm crop coordinates. */
  out: Region;
}

/**
 * Camera-frame point -> raw-frame pixel with the H36M distortion (§2.2): (a, b) = (X, Y)/Z,
 * r2 = a^2 + b^2, radial = 1 + k1 r2 + k2 r2^2 + k3 r2^3, tan = p1 b + p2 a,
 * q = (a, b)(radial + tan) + (p2, p1) r2, pixel = f q + c. Optionally inverted through the crop frame.
 */
export function project(rec: Recorder, io: ProjectIo): void {
  const J = io.joints;
  const bindings = [
    { name: "pts", access: "read" as const },
    { name: "cam", access: "read" as const },
    ...(io.distortion ? [{ name: "dist", access: "read" as const }] : []),
    ...(io.crop ? [{ name: "crop", access: "read" as const }] : []),
    { name: "out", access: "read_write" as const },
  ];
  const distort = io.distortion
    ? `  let k1 = dist[n * 5u]; let k2 = dist[n * 5u + 1u]; let k3 = dist[n * 5u + 2u];
  let p1 = dist[n * 5u + 3u]; let p2 = dist[n * 5u + 4u];
  let r2 = a * a + b * b;
  let radial = 1.0 + r2 * (k1 + r2 * (k2 + r2 * k3));
  let tg = p1 * b + p2 * a;
  let qa = a * (radial + tg) + p2 * r2;
  let qb = b * (radial + tg) + p1 * r2;`
    : `  let qa = a;
  let qb = b;`;
  // Solving the 2x2 system rather than storing an inverse keeps one crop input for both directions.
  const toNorm = io.crop
    ? `${cropLets(io.frame)}
  let rx = px - cc;
  let ry = py - cf;
  let det = ca * ce - cb * cd;
  out[i * 2u] = (ce * rx - cb * ry) / det;
  out[i * 2u + 1u] = (ca * ry - cd * rx) / det;`
    : `  out[i * 2u] = px;
  out[i * 2u + 1u] = py;`;
  const name = `project${io.distortion ? " distorted" : ""}${io.crop ? ` to_norm ${io.frame}` : ""}`;
  const k = elementwise(name, {
    bindings,
    n: io.batch * J,
    body: `  let n = i / ${u32(J)};
${CAMERA_LETS}
  let a = pts[i * 3u] / pts[i * 3u + 2u];
  let b = pts[i * 3u + 1u] / pts[i * 3u + 2u];
${distort}
  let px = fx * qa + cx;
  let py = fy * qb + cy;
${toNorm}`,
  });
  const regions = [io.points, io.camera];
  if (io.distortion) regions.push(io.distortion);
  if (io.crop) regions.push(io.crop);
  regions.push(io.out);
  rec.dispatch(k.src, regions, k.groups);
}
