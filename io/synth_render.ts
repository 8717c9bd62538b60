/**
 * Renders one synthetic sample straight into its 224x224 crop: a room (textured floor and back
 * wall seen through the real camera, or an abstract backdrop), a soft contact shadow, and a
 * person built from shaded ellipsoids around the 3D joints, ray-cast per pixel with a depth
 * buffer so limbs occlude each other correctly. Each subject's outfit is colour-blocked (left
 * sleeve and trouser leg in an accent colour), so which side is the anatomical left shows even
 * where the face is a few pixels, as real clothing and faces show it. Everything is drawn with
 * the crop's own pinhole intrinsics, so the figure lines up with the 2D labels to the pixel.
 *
 * Pure CPU and allocation-light: about 2-4 ms per image on one core.
 * @module
 */

import type { Rng } from "./prng.ts";
import type { BodyColors, SubjectBody } from "./synth_poses.ts";

type Vec3 = [number, number, number];
type Rgb = [number, number, number];

/** What renderSample needs to draw one crop. */
export interface RenderScene {
  /** 32 joints (X, Y, Z) in camera mm. */
  joints: ArrayLike<number>;
  /** Crop intrinsics (see cropIntrinsics): crop pixel centres at integer coordinates. */
  intrinsics: { fx: number; fy: number; cx: number; cy: number };
  /** World->camera rotation (row-major) and camera centre (world mm, z up, floor at z = 0). */
  camera: { R: readonly number[]; T: readonly number[] };
  /** World (x, y) of the floor point under the pelvis, mm (for the contact shadow). */
  floorPoint: [number, number];
  /** The subject's body (girth, colours, sleeves). */
  body: SubjectBody;
  /** Side of the square crop; 224 unless testing. */
  size?: number;
}

/** A rendered crop. */
export interface RenderResult {
  /** size*size*3 interleaved RGB bytes. */
  rgb: Uint8Array;
  /** Fraction of crop pixels covered by the figure. */
  coverage: number;
}

// ---------------------------------------------------------------------------------------------
// Small vector helpers

function sub(a: Vec3, b: Vec3): Vec3 {
  return [a[0] - b[0], a[1] - b[1], a[2] - b[2]];
}
function add(a: Vec3, b: Vec3, s = 1): Vec3 {
  return [a[0] + s * b[0], a[1] + s * b[1], a[2] + s * b[2]];
}
function lerp(a: Vec3, b: Vec3, t: number): Vec3 {
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
}
function dot(a: Vec3, b: Vec3): number {
  return a[0] * b[0] + a[1] * b[1] + a[2] * b[2];
}
function cross(a: Vec3, b: Vec3): Vec3 {
  return [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]];
}
function norm(a: Vec3): number {
  return Math.hypot(a[0], a[1], a[2]);
}
function unit(a: Vec3, fallback: Vec3 = [0, -1, 0]): Vec3 {
  const n = norm(a);
  return n > 1e-9 ? [a[0] / n, a[1] / n, a[2] / n] : fallback;
}
/** `a` with its component along unit `u` removed, normalised. */
function orthonormal(a: Vec3, u: Vec3): Vec3 {
  const r = sub(a, [u[0] * dot(a, u), u[1] * dot(a, u), u[2] * dot(a, u)]);
  if (norm(r) > 1e-6) return unit(r);
  // Any perpendicular will do when the two are parallel.
  return unit(Math.abs(u[0]) < 0.9 ? cross(u, [1, 0, 0]) : cross(u, [0, 1, 0]));
}

// ---------------------------------------------------------------------------------------------
// Procedural noise (hash-based, no tables, so every sample's texture comes from its seed alone)

function hash2(x: number, y: number, seed: number): number {
  let h = (Math.imul(x | 0, 0x27d4eb2d) ^ Math.imul(y | 0, 0x165667b1) ^ seed) | 0;
  h = Math.imul(h ^ (h >>> 15), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return ((h ^ (h >>> 16)) >>> 0) / 4294967296;
}

/** Smooth value noise in [0, 1) with unit cells. */
function valueNoise(x: number, y: number, seed: number): number {
  const ix = Math.floor(x), iy = Math.floor(y);
  let fx = x - ix, fy = y - iy;
  fx = fx * fx * (3 - 2 * fx);
  fy = fy * fy * (3 - 2 * fy);
  const a = hash2(ix, iy, seed), b = hash2(ix + 1, iy, seed);
  const c = hash2(ix, iy + 1, seed), d = hash2(ix + 1, iy + 1, seed);
  return a + (b - a) * fx + (c - a) * fy + (a - b - c + d) * fx * fy;
}

/** Two octaves of value noise, in [0, 1). */
function fbm(x: number, y: number, seed: number): number {
  return 0.65 * valueNoise(x, y, seed) + 0.35 * valueNoise(2.1 * x + 17.3, 2.1 * y - 5.1, seed ^ 0x5bd1e995);
}

/** A random colour from hue/saturation/value ranges. */
function hsv(rng: Rng, s: [number, number], v: [number, number], hue?: number): Rgb {
  const h = (hue ?? rng.float()) * 6;
  const sat = rng.uniform(s[0], s[1]), val = rng.uniform(v[0], v[1]) * 255;
  const i = Math.floor(h) % 6, f = h - Math.floor(h);
  const p = val * (1 - sat), q = val * (1 - sat * f), t = val * (1 - sat * (1 - f));
  return ([[val, t, p], [q, val, p], [p, val, t], [p, q, val], [t, p, val], [val, p, q]] as Rgb[])[i];
}

function mix(a: Rgb, b: Rgb, t: number): Rgb {
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
}

// ---------------------------------------------------------------------------------------------
// Background

interface Rect {
  s0: number;
  s1: number;
  z0: number;
  z1: number;
  color: Rgb;
}

/** Draws the room behind the person: floor and back wall through the real camera geometry. */
function drawRoom(buf: Float32Array, scene: RenderScene, rng: Rng): void {
  const size = scene.size ?? 224;
  const { fx, fy, cx, cy } = scene.intrinsics;
  const R = scene.camera.R, C = scene.camera.T;
  const seed = rng.nextU32();
  // Horizontal forward of the camera and the lateral direction along the wall.
  const fwd = unit([R[6], R[7], 0], [1, 0, 0]);
  const side: Vec3 = [-fwd[1], fwd[0], 0];
  const personDist = (scene.floorPoint[0] - C[0]) * fwd[0] + (scene.floorPoint[1] - C[1]) * fwd[1];
  const wallDist = personDist + rng.uniform(1200, 5000);

  const floorKind = rng.int(4);
  const floorA = hsv(rng, [0.05, 0.7], [0.25, 0.85]);
  const floorB = mix(floorA, hsv(rng, [0, 0.6], [0.2, 0.9]), rng.uniform(0.2, 0.7));
  const tile = rng.uniform(250, 900);
  const plankAngle = rng.uniform(0, Math.PI);
  const plankW = rng.uniform(120, 300);
  const wallKind = rng.int(4);
  const wallA = hsv(rng, [0, 0.5], [0.3, 0.95]);
  const wallB = mix(wallA, hsv(rng, [0, 0.6], [0.15, 0.95]), rng.uniform(0.15, 0.6));
  const wallPeriod = rng.uniform(300, 1500);
  const rects: Rect[] = [];
  for (let k = rng.int(5); k > 0; k--) {
    const w = rng.uniform(300, 2500), h = rng.uniform(300, 2200);
    const s0 = rng.uniform(-4500, 4500), z0 = rng.uniform(0, 2400);
    rects.push({ s0, s1: s0 + w, z0, z1: z0 + h, color: hsv(rng, [0, 0.9], [0.1, 1]) });
  }
  const skirting = rng.float() < 0.6 ? hsv(rng, [0, 0.3], [0.1, 0.9]) : null;
  const fog = rng.uniform(0, 0.25);
  const shadow = rng.uniform(0.25, 0.6);
  const [px, py] = scene.floorPoint;

  for (let i = 0; i < size; i++) {
    const b = (i - cy) / fy;
    for (let j = 0; j < size; j++) {
      const a = (j - cx) / fx;
      // World direction of the pixel's ray: R^T (a, b, 1).
      const wx = R[0] * a + R[3] * b + R[6];
      const wy = R[1] * a + R[4] * b + R[7];
      const wz = R[2] * a + R[5] * b + R[8];
      const along = wx * fwd[0] + wy * fwd[1];
      const tWall = along > 1e-6 ? wallDist / along : Infinity;
      const tFloor = wz < -1e-6 ? -C[2] / wz : Infinity;
      let r: number, g: number, bl: number;
      if (tFloor < tWall) {
        const x = C[0] + tFloor * wx, y = C[1] + tFloor * wy;
        let t: number;
        if (floorKind === 0) {
          const u = x / tile, v = y / tile;
          const fu = u - Math.floor(u), fv = v - Math.floor(v);
          const grout = fu < 0.02 || fv < 0.02;
          t = grout
            ? 0.15
            : ((Math.floor(u) + Math.floor(v)) & 1) * 0.8 + 0.1 * valueNoise(u * 4, v * 4, seed);
        } else if (floorKind === 1) {
          const u = x * Math.cos(plankAngle) + y * Math.sin(plankAngle);
          const v = -x * Math.sin(plankAngle) + y * Math.cos(plankAngle);
          const k = Math.floor(v / plankW);
          const seam = v / plankW - k < 0.04;
          t = seam ? 0.05 : 0.2 + 0.6 * hash2(k, 7, seed) + 0.2 * valueNoise(u / 60, v / 8, seed);
        } else if (floorKind === 2) {
          t = fbm(x / 250, y / 250, seed) * 0.7 + 0.3 * hash2(x / 15, y / 15, seed);
        } else {
          t = fbm(x / 1500, y / 1500, seed);
        }
        r = floorA[0] + (floorB[0] - floorA[0]) * t;
        g = floorA[1] + (floorB[1] - floorA[1]) * t;
        bl = floorA[2] + (floorB[2] - floorA[2]) * t;
        const d2 = ((x - px) ** 2 + (y - py) ** 2) / 160000;
        const dark = (1 - shadow * Math.exp(-d2)) * (1 - fog * Math.min(1, tFloor / 12000));
        r *= dark;
        g *= dark;
        bl *= dark;
      } else {
        const t0 = Number.isFinite(tWall) ? tWall : 1e5;
        const s = t0 * (wx * side[0] + wy * side[1]) + (C[0] * side[0] + C[1] * side[1]);
        const z = C[2] + t0 * wz;
        let t: number;
        if (wallKind === 0) t = Math.min(1, Math.max(0, z / 3500)) + 0.15 * fbm(s / 800, z / 800, seed);
        else if (wallKind === 1) {
          const u = s / wallPeriod;
          t = (Math.floor(u) & 1) * 0.6 + (u - Math.floor(u) < 0.03 ? 0.35 : 0);
        } else if (wallKind === 2) {
          const row = Math.floor(z / 90);
          const u = (s + (row & 1) * 120) / 240;
          const mortar = z / 90 - row < 0.12 || u - Math.floor(u) < 0.05;
          t = mortar ? 0.9 : 0.25 * hash2(Math.floor(u), row, seed);
        } else t = fbm(s / 600, z / 600, seed);
        r = wallA[0] + (wallB[0] - wallA[0]) * t;
        g = wallA[1] + (wallB[1] - wallA[1]) * t;
        bl = wallA[2] + (wallB[2] - wallA[2]) * t;
        let paint: Rgb | null = skirting && z < 110 ? skirting : null;
        for (const q of rects) if (!paint && s >= q.s0 && s < q.s1 && z >= q.z0 && z < q.z1) paint = q.color;
        if (paint) {
          r = paint[0];
          g = paint[1];
          bl = paint[2];
        }
      }
      const o = 3 * (i * size + j);
      buf[o] = r;
      buf[o + 1] = g;
      buf[o + 2] = bl;
    }
  }
}

/** Draws an abstract backdrop (gradient plus blotches), ignoring the room geometry. */
function drawAbstract(buf: Float32Array, size: number, rng: Rng): void {
  const seed = rng.nextU32();
  const a = hsv(rng, [0, 0.8], [0.1, 1]), b = hsv(rng, [0, 0.8], [0.1, 1]), c = hsv(rng, [0, 1], [0, 1]);
  const ang = rng.uniform(0, 2 * Math.PI), ca = Math.cos(ang), sa = Math.sin(ang);
  const cell = rng.uniform(6, 60), amp = rng.uniform(0, 0.8);
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      const t = Math.min(1, Math.max(0, 0.5 + ((j - size / 2) * ca + (i - size / 2) * sa) / size));
      const n = amp * fbm(j / cell, i / cell, seed);
      const o = 3 * (i * size + j);
      for (let k = 0; k < 3; k++) buf[o + k] = (a[k] + (b[k] - a[k]) * t) * (1 - n) + c[k] * n;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// The figure

/** An ellipsoid: centre, orthonormal axes and their semi-axis lengths, and a colour. */
interface Ellipsoid {
  c: Vec3;
  axes: [Vec3, Vec3, Vec3];
  radii: Vec3;
  color: Rgb;
}

/** Builds the ellipsoids of a figure from 32 camera-frame joints. */
function figureParts(J: ArrayLike<number>, body: SubjectBody): Ellipsoid[] {
  const p = (k: number): Vec3 => [J[3 * k], J[3 * k + 1], J[3 * k + 2]];
  const g = body.girth;
  const col: BodyColors = body.colors;
  const parts: Ellipsoid[] = [];
  const basis = (e1: Vec3): [Vec3, Vec3, Vec3] => {
    const e2 = orthonormal(Math.abs(e1[0]) < 0.9 ? [1, 0, 0] : [0, 1, 0], e1);
    return [e1, e2, cross(e1, e2)];
  };
  const ball = (c: Vec3, r: number, color: Rgb) =>
    parts.push({ c, axes: basis([1, 0, 0]), radii: [r, r, r], color });
  // A limb tapers to about half its radius at the joints, where a ball rounds it off.
  const limb = (a: Vec3, b: Vec3, r: number, color: Rgb) => {
    const d = sub(b, a), L = norm(d);
    if (L < 1) return;
    parts.push({ c: lerp(a, b, 0.5), axes: basis(unit(d)), radii: [0.575 * L, r, r], color });
  };

  const pelvis = p(0), spine = p(12), thorax = p(13);
  const up = unit(sub(thorax, pelvis));
  const left = orthonormal(sub(p(17), p(25)), up);
  const hipsLeft = orthonormal(sub(p(6), p(1)), up);
  // left x up points where the body faces (the CMU poses were checked for this handedness).
  const front = cross(left, up);
  const frontHips = cross(hipsLeft, up);
  const shoulderHalf = 0.5 * norm(sub(p(17), p(25)));
  const hipHalf = 0.5 * norm(sub(p(6), p(1)));

  parts.push({
    c: lerp(spine, thorax, 0.3),
    axes: [up, left, front],
    radii: [0.62 * norm(sub(thorax, spine)) + 55, (0.85 * shoulderHalf + 35) * Math.sqrt(g), 100 * g],
    color: col.shirt,
  });
  parts.push({
    c: lerp(pelvis, spine, 0.55),
    axes: [up, hipsLeft, frontHips],
    radii: [0.62 * norm(sub(spine, pelvis)) + 35, (0.8 * hipHalf + 25) * Math.sqrt(g), 90 * g],
    color: col.shirt,
  });
  parts.push({
    c: add(pelvis, up, -35),
    axes: [up, hipsLeft, frontHips],
    radii: [115, (hipHalf + 45) * Math.sqrt(g), 95 * g],
    color: col.trousers,
  });

  // Head: skin ellipsoid, hair shifted up and back (so the face shows which way the body looks), a nose.
  const headUp = unit(sub(p(15), p(14)), up);
  const face = orthonormal(front, headUp);
  const headLeft = cross(headUp, face);
  const head = lerp(p(14), p(15), 0.35);
  parts.push({ c: head, axes: [headUp, headLeft, face], radii: [112, 76, 92], color: col.skin });
  parts.push({
    c: add(add(head, headUp, 14), face, -16),
    axes: [headUp, headLeft, face],
    radii: [108, 80, 90],
    color: col.hair,
  });
  ball(add(add(head, face, 90), headUp, -10), 17, col.skin);
  limb(thorax, add(p(14), headUp, -20), 48 * Math.sqrt(g), col.skin);

  // Limbs: [root, middle, end, tip] joints, the cloth, whether the lower half is bare, the end's
  // colour, and radii of [root ball, upper limb, middle ball, lower limb, end ball, tip limb]. The
  // left sleeve and trouser leg (joints 17 and 6) wear the outfit's accent colour.
  const arm = [44 * g, 47 * g, 39 * g, 38 * g, 30, 34], leg = [62 * g, 74 * g, 54 * g, 54 * g, 42, 46];
  const limbs: [number[], Rgb, boolean, Rgb, number[]][] = [
    [[17, 18, 19, 22], col.accent, body.shortSleeves, col.skin, arm],
    [[25, 26, 27, 30], col.shirt, body.shortSleeves, col.skin, arm],
    [[6, 7, 8, 10], col.accent, body.shorts, col.shoes, leg],
    [[1, 2, 3, 5], col.trousers, body.shorts, col.shoes, leg],
  ];
  for (const [[a, b, c, d], cloth, bare, end, r] of limbs) {
    const lower = bare ? col.skin : cloth;
    ball(p(a), r[0], cloth);
    limb(p(a), p(b), r[1], cloth);
    ball(p(b), r[2], lower);
    limb(p(b), p(c), r[3], lower);
    ball(p(c), r[4], end);
    limb(p(c), p(d), r[5], end);
  }
  return parts;
}

/** Lighting of one sample. */
interface Light {
  dir: Vec3;
  ambient: number;
  specular: number;
}

/** Scratch buffers reused across calls (one set per size; each worker has its own module). */
const scratch = new Map<
  number,
  { buf: Float32Array; tmp: Float32Array; depth: Float32Array; owner: Int16Array }
>();

function scratchFor(size: number) {
  let s = scratch.get(size);
  if (!s) {
    const n = size * size;
    s = {
      buf: new Float32Array(3 * n),
      tmp: new Float32Array(3 * n),
      depth: new Float32Array(n),
      owner: new Int16Array(n),
    };
    scratch.set(size, s);
  }
  return s;
}

/**
 * Ray-casts the figure into `buf` with a depth buffer. Rays leave the camera centre through
 * pixel (j, i) along (a, b, 1), so the ray parameter is the camera depth Z itself. Visibility is
 * resolved first and each visible pixel shaded once afterwards, so overdraw stays cheap.
 */
function drawFigure(buf: Float32Array, scene: RenderScene, light: Light): number {
  const size = scene.size ?? 224;
  const { fx, fy, cx, cy } = scene.intrinsics;
  const { depth, owner } = scratchFor(size);
  depth.fill(Infinity);
  owner.fill(-1);
  const parts = figureParts(scene.joints, scene.body);
  // In an ellipsoid's unit-sphere frame the ray is o + t d, o fixed and d linear in (a, b).
  const origin = parts.map((e) => e.axes.map((ax, k) => -dot(ax, e.c) / e.radii[k]) as Vec3);
  const rayIn = (e: Ellipsoid, a: number, b: number, k: number) =>
    (e.axes[k][0] * a + e.axes[k][1] * b + e.axes[k][2]) / e.radii[k];
  for (let p = 0; p < parts.length; p++) {
    const e = parts[p];
    const [e1, e2, e3] = e.axes;
    const [r1, r2, r3] = e.radii;
    // Half-extents of the ellipsoid's axis-aligned box, then a conservative screen box of that
    // box (x/z and y/z are monotonic in each coordinate).
    const ext = [0, 1, 2].map((k) => Math.hypot(r1 * e1[k], r2 * e2[k], r3 * e3[k]));
    const [X, Y, Z] = e.c;
    const zn = Z - ext[2], zf = Z + ext[2];
    if (zn < 50) continue; // behind or touching the camera: cannot happen at 3.5 m+
    const xl = X - ext[0], xh = X + ext[0], yl = Y - ext[1], yh = Y + ext[1];
    const j0 = Math.max(0, Math.floor(fx * Math.min(xl / zn, xl / zf) + cx));
    const j1 = Math.min(size - 1, Math.ceil(fx * Math.max(xh / zn, xh / zf) + cx));
    const i0 = Math.max(0, Math.floor(fy * Math.min(yl / zn, yl / zf) + cy));
    const i1 = Math.min(size - 1, Math.ceil(fy * Math.max(yh / zn, yh / zf) + cy));
    const [o1, o2, o3] = origin[p];
    const oo = o1 * o1 + o2 * o2 + o3 * o3 - 1;
    for (let i = i0; i <= i1; i++) {
      const b = (i - cy) / fy;
      for (let j = j0; j <= j1; j++) {
        const a = (j - cx) / fx;
        const d1 = (e1[0] * a + e1[1] * b + e1[2]) / r1;
        const d2 = (e2[0] * a + e2[1] * b + e2[2]) / r2;
        const d3 = (e3[0] * a + e3[1] * b + e3[2]) / r3;
        const qa = d1 * d1 + d2 * d2 + d3 * d3;
        const qb = o1 * d1 + o2 * d2 + o3 * d3;
        const disc = qb * qb - qa * oo;
        if (disc <= 0) continue;
        const t = (-qb - Math.sqrt(disc)) / qa;
        const px = i * size + j;
        if (t > 0 && t < depth[px]) {
          depth[px] = t;
          owner[px] = p;
        }
      }
    }
  }
  const L = light.dir;
  let covered = 0;
  for (let px = 0; px < size * size; px++) {
    const p = owner[px];
    if (p < 0) continue;
    covered++;
    const e = parts[p], t = depth[px];
    const a = (px % size - cx) / fx, b = (Math.floor(px / size) - cy) / fy;
    // Normal of the ellipsoid surface: sum over axes of (local coordinate / radius) * axis.
    let nx = 0, ny = 0, nz = 0;
    for (let k = 0; k < 3; k++) {
      const l = (origin[p][k] + t * rayIn(e, a, b, k)) / e.radii[k];
      nx += l * e.axes[k][0];
      ny += l * e.axes[k][1];
      nz += l * e.axes[k][2];
    }
    const nn = Math.hypot(nx, ny, nz);
    nx /= nn;
    ny /= nn;
    nz /= nn;
    const diffuse = Math.max(0, nx * L[0] + ny * L[1] + nz * L[2]);
    // Blinn-Phong with the viewer along -ray.
    const vn = Math.hypot(a, b, 1);
    let hx = L[0] - a / vn, hy = L[1] - b / vn, hz = L[2] - 1 / vn;
    const hn = Math.hypot(hx, hy, hz);
    hx /= hn;
    hy /= hn;
    hz /= hn;
    const spec = light.specular * Math.pow(Math.max(0, nx * hx + ny * hy + nz * hz), 24);
    const shade = light.ambient + (1 - light.ambient) * diffuse;
    const o = 3 * px;
    buf[o] = e.color[0] * shade + 255 * spec;
    buf[o + 1] = e.color[1] * shade + 255 * spec;
    buf[o + 2] = e.color[2] * shade + 255 * spec;
  }
  return covered / (size * size);
}

// ---------------------------------------------------------------------------------------------
// Whole sample

/**
 * Renders a crop: background (a room through the real camera in 75% of samples, else an
 * abstract backdrop), the figure, then exposure/tint, a light blur (anti-aliasing and camera
 * softness) and sensor noise. All randomness comes from `rng`.
 */
export function renderSample(scene: RenderScene, rng: Rng): RenderResult {
  const size = scene.size ?? 224;
  const n = size * size;
  const { buf, tmp } = scratchFor(size);
  if (rng.float() < 0.75) drawRoom(buf, scene, rng);
  else drawAbstract(buf, size, rng);

  const dir = unit([rng.uniform(-0.8, 0.8), rng.uniform(-1, -0.2), rng.uniform(-1, -0.3)]);
  const light: Light = { dir, ambient: rng.uniform(0.3, 0.6), specular: rng.uniform(0, 0.25) };
  const coverage = drawFigure(buf, scene, light);

  const exposure = rng.uniform(0.75, 1.2);
  const tint = [rng.uniform(0.9, 1.1), rng.uniform(0.93, 1.07), rng.uniform(0.9, 1.1)];
  const blur = rng.uniform(0.3, 1);
  const noise = rng.uniform(1, 6);
  let state = rng.nextU32() | 1;
  // Separable 3x3 binomial blur (anti-aliasing and camera softness), blended with the sharp image.
  const row = size * 3;
  for (let i = 0; i < size; i++) {
    const o = i * row;
    for (let x = 0; x < row; x++) {
      const l = x >= 3 ? x - 3 : x, r = x < row - 3 ? x + 3 : x;
      tmp[o + x] = 0.25 * (buf[o + l] + buf[o + r]) + 0.5 * buf[o + x];
    }
  }
  const out = new Uint8Array(3 * n);
  let grain = 0;
  for (let i = 0; i < size; i++) {
    const o = i * row, up = i > 0 ? o - row : o, down = i < size - 1 ? o + row : o;
    for (let x = 0; x < row; x++) {
      const c = buf[o + x];
      const s = 0.25 * (tmp[up + x] + tmp[down + x]) + 0.5 * tmp[o + x];
      // Sensor grain, shared by the three channels of a pixel (luminance noise).
      if (x % 3 === 0) {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        grain = ((state >>> 0) / 4294967296 - 0.5) * 2 * noise;
      }
      const v = (c + (s - c) * blur) * exposure * tint[x % 3] + grain;
      out[o + x] = v <= 0 ? 0 : v >= 255 ? 255 : v + 0.5;
    }
  }
  return { rgb: out, coverage };
}
