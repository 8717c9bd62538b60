/**
 * Minimal raster drawing on interleaved RGB byte buffers (filled circles, thick line segments,
 * skeletons in the seed's colours), for inspection and evaluation images. Coordinates are
 * pixel-index coordinates: the centre of pixel (i, j) is (i, j).
 * @module
 */

import { BONE_COLORS, BONES, GT_BONE_COLOR, GT_JOINT_COLOR, JOINT_COLORS, NUM_JOINTS } from "./joints.ts";

/** An RGB colour, 0-255 per channel. */
export type Rgb = readonly [number, number, number];

/** An image to draw on: width*height*3 bytes, row-major, interleaved R,G,B. */
export interface RgbCanvas {
  /** Width in px. */
  width: number;
  /** Height in px. */
  height: number;
  /** Pixel bytes. */
  rgb: Uint8Array;
}

/** A canvas filled with one colour. */
export function makeCanvas(width: number, height: number, opts: { fill?: Rgb } = {}): RgbCanvas {
  const rgb = new Uint8Array(width * height * 3);
  const [r, g, b] = opts.fill ?? [0, 0, 0];
  for (let i = 0; i < width * height; i++) {
    rgb[3 * i] = r;
    rgb[3 * i + 1] = g;
    rgb[3 * i + 2] = b;
  }
  return { width, height, rgb };
}

function put(c: RgbCanvas, x: number, y: number, col: Rgb): void {
  const i = 3 * (y * c.width + x);
  c.rgb[i] = col[0];
  c.rgb[i + 1] = col[1];
  c.rgb[i + 2] = col[2];
}

/** Fills the disc of `radius` px around `center`, clipped to the canvas. */
export function fillCircle(
  c: RgbCanvas,
  center: readonly [number, number],
  opts: { radius: number; color: Rgb },
): void {
  const [cx, cy] = center;
  const r = opts.radius;
  if (!Number.isFinite(cx) || !Number.isFinite(cy)) return;
  const x0 = Math.max(0, Math.ceil(cx - r)), x1 = Math.min(c.width - 1, Math.floor(cx + r));
  const y0 = Math.max(0, Math.ceil(cy - r)), y1 = Math.min(c.height - 1, Math.floor(cy + r));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) if ((x - cx) ** 2 + (y - cy) ** 2 <= r * r) put(c, x, y, opts.color);
  }
}

/** Draws the segment [x0, y0, x1, y1] with round caps, `thickness` px wide, clipped to the canvas. */
export function drawLine(
  c: RgbCanvas,
  seg: readonly [number, number, number, number],
  opts: { thickness: number; color: Rgb },
): void {
  const [ax, ay, bx, by] = seg;
  if (![ax, ay, bx, by].every(Number.isFinite)) return;
  const h = opts.thickness / 2;
  const dx = bx - ax, dy = by - ay;
  const len2 = dx * dx + dy * dy;
  const x0 = Math.max(0, Math.ceil(Math.min(ax, bx) - h)),
    x1 = Math.min(c.width - 1, Math.floor(Math.max(ax, bx) + h));
  const y0 = Math.max(0, Math.ceil(Math.min(ay, by) - h)),
    y1 = Math.min(c.height - 1, Math.floor(Math.max(ay, by) + h));
  for (let y = y0; y <= y1; y++) {
    for (let x = x0; x <= x1; x++) {
      const t = len2 > 0 ? Math.max(0, Math.min(1, ((x - ax) * dx + (y - ay) * dy) / len2)) : 0;
      const ex = x - (ax + t * dx), ey = y - (ay + t * dy);
      if (ex * ex + ey * ey <= h * h) put(c, x, y, opts.color);
    }
  }
}

/** Options of drawSkeleton. */
export interface SkeletonStyle {
  /** Joint disc radius in px; default 3. */
  radius?: number;
  /** Bone thickness in px; default 2. */
  thickness?: number;
  /** Ground-truth colours (one joint colour and one bone colour) instead of the per-part ones. */
  gt?: boolean;
}

/**
 * Draws the 16-joint skeleton: bones first, then joints on top, in the seed's colours.
 * `joints` holds 16 (x, y) pairs in pixel-index coordinates of the canvas.
 */
export function drawSkeleton(c: RgbCanvas, joints: ArrayLike<number>, opts: SkeletonStyle = {}): void {
  if (joints.length !== NUM_JOINTS * 2) {
    throw new RangeError(`drawSkeleton: expected ${NUM_JOINTS * 2} values, got ${joints.length}`);
  }
  const thickness = opts.thickness ?? 2, radius = opts.radius ?? 3;
  BONES.forEach(([a, b], k) => {
    const color = opts.gt ? GT_BONE_COLOR : BONE_COLORS[k];
    drawLine(c, [joints[2 * a], joints[2 * a + 1], joints[2 * b], joints[2 * b + 1]], { thickness, color });
  });
  for (let j = 0; j < NUM_JOINTS; j++) {
    fillCircle(c, [joints[2 * j], joints[2 * j + 1]], {
      radius,
      color: opts.gt ? GT_JOINT_COLOR : JOINT_COLORS[j],
    });
  }
}

/** Enlarges a canvas by an integer factor (nearest neighbour), so small network inputs stay legible. */
export function upscale(c: RgbCanvas, factor: number): RgbCanvas {
  if (!Number.isInteger(factor) || factor < 1) {
    throw new RangeError(`upscale: factor must be an integer >= 1`);
  }
  const w = c.width * factor, h = c.height * factor;
  const rgb = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) {
    const sy = Math.floor(y / factor);
    for (let x = 0; x < w; x++) {
      const s = 3 * (sy * c.width + Math.floor(x / factor)), d = 3 * (y * w + x);
      rgb[d] = c.rgb[s];
      rgb[d + 1] = c.rgb[s + 1];
      rgb[d + 2] = c.rgb[s + 2];
    }
  }
  return { width: w, height: h, rgb };
}

/**
 * Norm crop coordinates -> pixel-index coordinates of a `size`-wide canvas. Clean norm is the
 * continuous coordinate / side (pixel centres at (i + 0.5) / side); legacy norm is index / 256.
 */
export function normToPixels(
  norm: ArrayLike<number>,
  size: number,
  opts: { legacy?: boolean } = {},
): Float64Array {
  const out = new Float64Array(norm.length);
  const shift = opts.legacy ? 0 : 0.5;
  for (let i = 0; i < norm.length; i++) out[i] = norm[i] * size - shift;
  return out;
}
