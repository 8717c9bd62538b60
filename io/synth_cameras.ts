/**
 * Cameras of the synthetic dataset: the four real Human3.6M calibrations with each subject's
 * extrinsics (assets/h36m_cameras.json), pinhole projection as the seed does it (f and c only,
 * no distortion), subject placement in front of a camera, and the square person box that maps the
 * raw ~1000x1000 frame to the 224x224 crop.
 * @module
 */

import type { Rng } from "./prng.ts";
import type { Camera } from "./sample_files.ts";

/** One of the four H36M cameras: intrinsics and frame size. */
export interface RigCamera {
  /** 1-based camera id as in info_all. */
  id: number;
  /** Serial number, used in video names. */
  name: string;
  /** Frame width in px. */
  width: number;
  /** Frame height in px. */
  height: number;
  /** fx, fy. */
  f: [number, number];
  /** cx, cy. */
  c: [number, number];
  /** Radial distortion k1 k2 k3 (stored, never applied). */
  k: [number, number, number];
  /** Tangential distortion p1 p2 (stored, never applied). */
  p: [number, number];
}

/** The calibration asset in memory. */
export interface CameraRig {
  /** The four cameras, id order. */
  cameras: RigCamera[];
  /** Per subject, per camera (id order): R row-major world->camera and T the camera centre. */
  subjects: Record<string, { R: number[]; T: number[] }[]>;
}

/** Loads assets/h36m_cameras.json. */
export function loadCameraRig(): CameraRig {
  const o = JSON.parse(Deno.readTextFileSync(new URL("../assets/h36m_cameras.json", import.meta.url)));
  return { cameras: o.cameras, subjects: o.subjects };
}

/** The `camera_all/` record of a subject seen by camera `cameraId` (1-based). */
export function subjectCamera(rig: CameraRig, subject: string, cameraId: number): Camera {
  const cam = rig.cameras[cameraId - 1];
  const ext = rig.subjects[subject]?.[cameraId - 1];
  if (!cam || !ext) throw new RangeError(`no calibration for ${subject} camera ${cameraId}`);
  return {
    R: [...ext.R],
    T: [...ext.T],
    f: [cam.f[0], cam.f[1]],
    c: [cam.c[0], cam.c[1]],
    k: [cam.k[0], cam.k[1], cam.k[2]],
    p: [cam.p[0], cam.p[1]],
  };
}

/** World points (n x 3, mm) to camera frame: X = R (P - T). */
export function worldToCamera(cam: Pick<Camera, "R" | "T">, world: ArrayLike<number>): Float64Array {
  const { R, T } = cam;
  const out = new Float64Array(world.length);
  for (let i = 0; i < world.length; i += 3) {
    const x = world[i] - T[0], y = world[i + 1] - T[1], z = world[i + 2] - T[2];
    out[i] = R[0] * x + R[1] * y + R[2] * z;
    out[i + 1] = R[3] * x + R[4] * y + R[5] * z;
    out[i + 2] = R[6] * x + R[7] * y + R[8] * z;
  }
  return out;
}

/** Camera-frame points (n x 3, mm) to raw-frame pixels (n x 2): u = f X/Z + c, no distortion. */
export function projectPinhole(cam: Pick<Camera, "f" | "c">, pts: ArrayLike<number>): Float64Array {
  const n = pts.length / 3;
  const out = new Float64Array(2 * n);
  for (let j = 0; j < n; j++) {
    const z = pts[3 * j + 2];
    out[2 * j] = cam.f[0] * pts[3 * j] / z + cam.c[0];
    out[2 * j + 1] = cam.f[1] * pts[3 * j + 1] / z + cam.c[1];
  }
  return out;
}

/** Raw-frame pixels (n x 2) to 224-crop pixels through a square box: u224 = (u - x1) / (x2 - x1) * 224. */
export function rawToCrop(
  uv: ArrayLike<number>,
  bbx: readonly [number, number, number, number],
  size = 224,
): Float64Array {
  const [x1, y1, x2, y2] = bbx;
  const sx = size / (x2 - x1), sy = size / (y2 - y1);
  const out = new Float64Array(uv.length);
  for (let i = 0; i < uv.length; i += 2) {
    out[i] = (uv[i] - x1) * sx;
    out[i + 1] = (uv[i + 1] - y1) * sy;
  }
  return out;
}

/**
 * Pinhole intrinsics of the crop itself, so a renderer can draw straight into it: crop pixel
 * centres sit at integer coordinates, exactly where rawToCrop puts a projected point.
 */
export function cropIntrinsics(
  cam: Pick<Camera, "f" | "c">,
  bbx: readonly [number, number, number, number],
  size = 224,
): { fx: number; fy: number; cx: number; cy: number } {
  const sx = size / (bbx[2] - bbx[0]), sy = size / (bbx[3] - bbx[1]);
  return { fx: cam.f[0] * sx, fy: cam.f[1] * sy, cx: (cam.c[0] - bbx[0]) * sx, cy: (cam.c[1] - bbx[1]) * sy };
}

/**
 * A square integer box around projected joints: the joints' extent fills `fill` of the side and
 * the box centre is shifted by up to `jitter` of the side (real crops are not perfectly centred).
 */
export function squareBox(
  uv: ArrayLike<number>,
  rng: Rng,
  opts: { fill?: [number, number]; jitter?: number } = {},
): [number, number, number, number] {
  const [fillLo, fillHi] = opts.fill ?? [0.8, 0.9];
  const jitter = opts.jitter ?? 0.03;
  let u0 = Infinity, u1 = -Infinity, v0 = Infinity, v1 = -Infinity;
  for (let i = 0; i < uv.length; i += 2) {
    u0 = Math.min(u0, uv[i]);
    u1 = Math.max(u1, uv[i]);
    v0 = Math.min(v0, uv[i + 1]);
    v1 = Math.max(v1, uv[i + 1]);
  }
  const side = Math.max(8, Math.round(Math.max(u1 - u0, v1 - v0) / rng.uniform(fillLo, fillHi)));
  const cu = (u0 + u1) / 2 + rng.uniform(-jitter, jitter) * side;
  const cv = (v0 + v1) / 2 + rng.uniform(-jitter, jitter) * side;
  const x1 = Math.round(cu - side / 2), y1 = Math.round(cv - side / 2);
  return [x1, y1, x1 + side, y1 + side];
}

/** Where a subject stands relative to a camera. */
export interface SubjectPlacement {
  /** Rotation of the body about the vertical, radians. */
  yaw: number;
  /** World x of the floor point under the pelvis, mm. */
  x: number;
  /** World y of the floor point under the pelvis, mm. */
  y: number;
}

/**
 * Draws a placement that puts the pelvis 3.5-6.5 m from the camera (by default) within the
 * camera's horizontal field of view, at a random yaw. `fits` is asked whether a candidate keeps
 * the person in the frame; after `tries` failures the candidate is pulled to the optical axis,
 * which at these distances always fits.
 */
export function placeSubject(
  cam: Pick<Camera, "R" | "T" | "f" | "c">,
  pelvisHeight: number,
  rng: Rng,
  opts: { distance?: [number, number]; tries?: number; fits?: (p: SubjectPlacement) => boolean } = {},
): SubjectPlacement {
  const [dLo, dHi] = opts.distance ?? [3500, 6500];
  const tries = opts.tries ?? 12;
  const { R, T } = cam;
  // The optical axis is R's third row in world coordinates; its horizontal part is "forward".
  const ax = R[6], ay = R[7];
  const an = Math.hypot(ax, ay);
  const heading = Math.atan2(ay / an, ax / an);
  const halfFov = Math.atan(cam.c[0] / cam.f[0]);
  const yaw = rng.uniform(-Math.PI, Math.PI);
  let last: SubjectPlacement = { yaw, x: 0, y: 0 };
  for (let t = 0; t <= tries; t++) {
    const d = rng.uniform(dLo, dHi);
    const dh = Math.sqrt(Math.max(1, d * d - (T[2] - pelvisHeight) ** 2));
    const az = t < tries ? rng.uniform(-0.55, 0.55) * halfFov : 0;
    last = { yaw, x: T[0] + dh * Math.cos(heading + az), y: T[1] + dh * Math.sin(heading + az) };
    if (t === tries || !opts.fits || opts.fits(last)) return last;
  }
  return last;
}
