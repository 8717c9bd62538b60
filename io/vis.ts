/**
 * Evaluation pictures: the input crop with predicted and ground-truth skeletons, tiled per-joint
 * heatmaps with joint names, an orthographic two-view 3D rendering of prediction against GT over a
 * ground grid, and the HTML page that puts each sample's pictures side by side with its errors.
 * Everything draws on plain RGB canvases (io/draw.ts) and is written as PNG.
 * @module
 */

import {
  drawLine,
  drawSkeleton,
  fillCircle,
  makeCanvas,
  normToPixels,
  type Rgb,
  type RgbCanvas,
  upscale,
} from "./draw.ts";
import { encodePng } from "./images.ts";
import {
  BONE_COLORS,
  BONES,
  GT_JOINT_COLOR,
  JOINT_COLORS,
  JOINT_LABELS,
  NUM_JOINTS,
  ROOT_JOINT,
} from "./joints.ts";

// ---------------------------------------------------------------------------------------------
// Text

/** 5x7 glyphs, one 5-bit row per entry (bit 4 = leftmost column); upper case is drawn as lower case. */
const GLYPHS: Record<string, readonly number[]> = {
  "0": [0x0e, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0e],
  "1": [0x04, 0x0c, 0x04, 0x04, 0x04, 0x04, 0x0e],
  "2": [0x0e, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1f],
  "3": [0x1f, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0e],
  "4": [0x02, 0x06, 0x0a, 0x12, 0x1f, 0x02, 0x02],
  "5": [0x1f, 0x10, 0x1e, 0x01, 0x01, 0x11, 0x0e],
  "6": [0x06, 0x08, 0x10, 0x1e, 0x11, 0x11, 0x0e],
  "7": [0x1f, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
  "8": [0x0e, 0x11, 0x11, 0x0e, 0x11, 0x11, 0x0e],
  "9": [0x0e, 0x11, 0x11, 0x0f, 0x01, 0x02, 0x0c],
  a: [0x00, 0x00, 0x0e, 0x01, 0x0f, 0x11, 0x0f],
  b: [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x1e],
  c: [0x00, 0x00, 0x0e, 0x10, 0x10, 0x11, 0x0e],
  d: [0x01, 0x01, 0x0d, 0x13, 0x11, 0x11, 0x0f],
  e: [0x00, 0x00, 0x0e, 0x11, 0x1f, 0x10, 0x0e],
  f: [0x06, 0x09, 0x08, 0x1c, 0x08, 0x08, 0x08],
  g: [0x00, 0x00, 0x0f, 0x11, 0x0f, 0x01, 0x0e],
  h: [0x10, 0x10, 0x16, 0x19, 0x11, 0x11, 0x11],
  i: [0x04, 0x00, 0x0c, 0x04, 0x04, 0x04, 0x0e],
  j: [0x02, 0x00, 0x06, 0x02, 0x02, 0x12, 0x0c],
  k: [0x10, 0x10, 0x12, 0x14, 0x18, 0x14, 0x12],
  l: [0x0c, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0e],
  m: [0x00, 0x00, 0x1a, 0x15, 0x15, 0x11, 0x11],
  n: [0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11],
  o: [0x00, 0x00, 0x0e, 0x11, 0x11, 0x11, 0x0e],
  p: [0x00, 0x00, 0x1e, 0x11, 0x1e, 0x10, 0x10],
  q: [0x00, 0x00, 0x0d, 0x13, 0x0f, 0x01, 0x01],
  r: [0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10],
  s: [0x00, 0x00, 0x0e, 0x10, 0x0e, 0x01, 0x1e],
  t: [0x08, 0x08, 0x1c, 0x08, 0x08, 0x09, 0x06],
  u: [0x00, 0x00, 0x11, 0x11, 0x11, 0x13, 0x0d],
  v: [0x00, 0x00, 0x11, 0x11, 0x11, 0x0a, 0x04],
  w: [0x00, 0x00, 0x11, 0x11, 0x15, 0x15, 0x0a],
  x: [0x00, 0x00, 0x11, 0x0a, 0x04, 0x0a, 0x11],
  y: [0x00, 0x00, 0x11, 0x11, 0x0f, 0x01, 0x0e],
  z: [0x00, 0x00, 0x1f, 0x02, 0x04, 0x08, 0x1f],
  " ": [0, 0, 0, 0, 0, 0, 0],
  _: [0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x1f],
  "-": [0x00, 0x00, 0x00, 0x1f, 0x00, 0x00, 0x00],
  "+": [0x00, 0x04, 0x04, 0x1f, 0x04, 0x04, 0x00],
  "=": [0x00, 0x00, 0x1f, 0x00, 0x1f, 0x00, 0x00],
  ".": [0x00, 0x00, 0x00, 0x00, 0x00, 0x0c, 0x0c],
  ",": [0x00, 0x00, 0x00, 0x00, 0x0c, 0x04, 0x08],
  ":": [0x00, 0x0c, 0x0c, 0x00, 0x0c, 0x0c, 0x00],
  "/": [0x00, 0x01, 0x02, 0x04, 0x08, 0x10, 0x00],
  "(": [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
  ")": [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
  "%": [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
  "#": [0x0a, 0x0a, 0x1f, 0x0a, 0x1f, 0x0a, 0x0a],
  "?": [0x0e, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04],
};

/** Pixel width of `text` drawn at `scale`. */
export function textWidth(text: string, scale = 1): number {
  return text.length * 6 * scale;
}

/** Draws `text` with its top-left corner at (x, y), 7 px tall per `scale`. */
export function drawText(
  c: RgbCanvas,
  text: string,
  opts: { x: number; y: number; color?: Rgb; scale?: number },
): void {
  const s = opts.scale ?? 1, col = opts.color ?? [255, 255, 255];
  let x0 = Math.round(opts.x);
  const y0 = Math.round(opts.y);
  for (const ch of text) {
    const g = GLYPHS[ch] ?? GLYPHS[ch.toLowerCase()] ?? GLYPHS["?"];
    for (let r = 0; r < 7; r++) {
      for (let k = 0; k < 5; k++) {
        if (!(g[r] & (0x10 >> k))) continue;
        for (let dy = 0; dy < s; dy++) {
          for (let dx = 0; dx < s; dx++) {
            const x = x0 + k * s + dx, y = y0 + r * s + dy;
            if (x < 0 || y < 0 || x >= c.width || y >= c.height) continue;
            const i = 3 * (y * c.width + x);
            c.rgb[i] = col[0];
            c.rgb[i + 1] = col[1];
            c.rgb[i + 2] = col[2];
          }
        }
      }
    }
    x0 += 6 * s;
  }
}

// ---------------------------------------------------------------------------------------------
// Canvas helpers

/** Copies `src` into `dst` with its top-left corner at (x, y), clipped. */
export function blit(dst: RgbCanvas, src: RgbCanvas, at: { x: number; y: number }): void {
  for (let y = 0; y < src.height; y++) {
    const ty = y + at.y;
    if (ty < 0 || ty >= dst.height) continue;
    for (let x = 0; x < src.width; x++) {
      const tx = x + at.x;
      if (tx < 0 || tx >= dst.width) continue;
      const s = 3 * (y * src.width + x), d = 3 * (ty * dst.width + tx);
      dst.rgb[d] = src.rgb[s];
      dst.rgb[d + 1] = src.rgb[s + 1];
      dst.rgb[d + 2] = src.rgb[s + 2];
    }
  }
}

/** Outline of a circle (a ring `width` px thick). */
function drawRing(c: RgbCanvas, center: readonly [number, number], o: { radius: number; color: Rgb }): void {
  const [cx, cy] = center;
  if (!Number.isFinite(cx) || !Number.isFinite(cy)) return;
  const r = o.radius;
  for (let y = Math.floor(cy - r - 1); y <= Math.ceil(cy + r + 1); y++) {
    for (let x = Math.floor(cx - r - 1); x <= Math.ceil(cx + r + 1); x++) {
      if (x < 0 || y < 0 || x >= c.width || y >= c.height) continue;
      const d = Math.hypot(x - cx, y - cy);
      if (Math.abs(d - r) > 0.75) continue;
      const i = 3 * (y * c.width + x);
      c.rgb[i] = o.color[0];
      c.rgb[i + 1] = o.color[1];
      c.rgb[i + 2] = o.color[2];
    }
  }
}

/** Writes a canvas as PNG. */
export async function writeCanvasPng(path: string, c: RgbCanvas): Promise<void> {
  await Deno.writeFile(path, await encodePng(c.rgb, c.width, c.height));
}

/** Interleaved RGB bytes of a planar network input ((pixel - 128) / 256 per plane). */
function planarToRgbBytes(image: ArrayLike<number>, size: number, channelOrder: "bgr" | "rgb"): Uint8Array {
  const plane = size * size;
  const rOff = channelOrder === "rgb" ? 0 : 2 * plane, bOff = channelOrder === "rgb" ? 2 * plane : 0;
  const out = new Uint8Array(plane * 3);
  const cvt = (v: number) => Math.max(0, Math.min(255, Math.round(v * 256 + 128)));
  for (let i = 0; i < plane; i++) {
    out[3 * i] = cvt(image[rOff + i]);
    out[3 * i + 1] = cvt(image[plane + i]);
    out[3 * i + 2] = cvt(image[bOff + i]);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Input crop with skeletons

/** GT bones are drawn in a neutral colour so that they never pass for a predicted limb. */
const GT_LINE: Rgb = [235, 235, 235];
/** The same on the white background of the 3D views. */
const GT_LINE_3D: Rgb = [150, 150, 150];

/** Options of {@linkcode drawCropOverlay}. */
export interface CropOverlayOptions {
  /** One sample's planar input [3, S, S]. */
  image: ArrayLike<number>;
  /** Input side S. */
  size: number;
  /** Plane order of `image`. */
  channelOrder: "bgr" | "rgb";
  /** Predicted joints, norm crop coordinates [16 x 2]. */
  pred: ArrayLike<number>;
  /** Ground-truth joints, norm crop coordinates [16 x 2]. */
  gt: ArrayLike<number>;
  /** Norm is pixel index / side (the seed's convention) rather than continuous coordinate / side. */
  legacy?: boolean;
  /** Caption drawn under the picture. */
  caption?: string;
}

/**
 * The network's input crop, enlarged to at least 256 px, with the predicted skeleton in the
 * seed's per-part colours, the GT joints in the seed's GT colour over thin neutral GT bones, and a
 * caption strip.
 */
export function drawCropOverlay(o: CropOverlayOptions): RgbCanvas {
  const factor = Math.max(1, Math.ceil(256 / o.size));
  const crop = upscale({
    width: o.size,
    height: o.size,
    rgb: planarToRgbBytes(o.image, o.size, o.channelOrder),
  }, factor);
  const W = crop.width;
  const gtPx = normToPixels(o.gt, W, { legacy: o.legacy });
  const predPx = normToPixels(o.pred, W, { legacy: o.legacy });
  const unit = W / 256;
  // GT bones thin and neutral: the seed's GT bone red would read as a left limb of the prediction.
  for (const [a, b] of BONES) {
    drawLine(crop, [gtPx[2 * a], gtPx[2 * a + 1], gtPx[2 * b], gtPx[2 * b + 1]], {
      thickness: 1.2 * unit,
      color: GT_LINE,
    });
  }
  drawSkeleton(crop, predPx, { radius: 3 * unit, thickness: 2.5 * unit });
  for (let j = 0; j < NUM_JOINTS; j++) {
    fillCircle(crop, [gtPx[2 * j], gtPx[2 * j + 1]], { radius: 2.5 * unit, color: GT_JOINT_COLOR });
  }
  const strip = o.caption ? 26 : 14;
  const out = makeCanvas(W, W + strip, { fill: [24, 24, 24] });
  blit(out, crop, { x: 0, y: 0 });
  let x = 4;
  const y = W + 4;
  fillCircle(out, [x + 3, y + 3], { radius: 3, color: JOINT_COLORS[8] });
  x += 10;
  drawText(out, "prediction", { x, y, color: [230, 230, 230] });
  x += textWidth("prediction") + 8;
  fillCircle(out, [x + 3, y + 3], { radius: 3, color: GT_JOINT_COLOR });
  x += 10;
  drawText(out, "gt", { x, y, color: [230, 230, 230] });
  if (o.caption) drawText(out, o.caption, { x: 4, y: y + 12, color: [170, 170, 170] });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Heatmap tiles

const INFERNO: readonly (readonly [number, number, number, number])[] = [
  [0, 0, 0, 4],
  [0.25, 87, 16, 110],
  [0.5, 188, 55, 84],
  [0.75, 249, 142, 9],
  [1, 252, 255, 164],
];

/** A dark-to-bright colour ramp (close to matplotlib's inferno) for v in [0, 1]. */
export function heatColor(v: number): Rgb {
  const t = Math.max(0, Math.min(1, Number.isFinite(v) ? v : 0));
  let k = 1;
  while (k < INFERNO.length - 1 && INFERNO[k][0] < t) k++;
  const [t0, r0, g0, b0] = INFERNO[k - 1], [t1, r1, g1, b1] = INFERNO[k];
  const f = (t - t0) / (t1 - t0);
  return [r0 + f * (r1 - r0), g0 + f * (g1 - g0), b0 + f * (b1 - b0)].map(Math.round) as unknown as Rgb;
}

/** Options of {@linkcode drawHeatmapTiles}. */
export interface HeatmapTilesOptions {
  /** Per-joint maps [J, H, H] (any non-negative scale; each tile is normalised to its own peak). */
  maps: ArrayLike<number>;
  /** Map side H. */
  side: number;
  /** Title above the grid. */
  title: string;
  /** The input crop shown dimmed under each map (planar [3, S, S]). */
  image?: ArrayLike<number>;
  /** Input side S. */
  size?: number;
  /** Plane order of `image` (default bgr). */
  channelOrder?: "bgr" | "rgb";
  /** GT joints in norm crop coordinates [J x 2], marked with a ring on each tile. */
  gt?: ArrayLike<number>;
  /** Norm is pixel index / side (the seed's convention). */
  legacy?: boolean;
  /** Tile side in px (default 112). */
  tile?: number;
  /** Tiles per row (default 4). */
  columns?: number;
  /** Joint names (default JOINT_LABELS). */
  labels?: readonly string[];
}

function bilinear(map: ArrayLike<number>, base: number, side: number, x: number, y: number): number {
  const cx = Math.max(0, Math.min(side - 1, x)), cy = Math.max(0, Math.min(side - 1, y));
  const x0 = Math.floor(cx), y0 = Math.floor(cy);
  const x1 = Math.min(side - 1, x0 + 1), y1 = Math.min(side - 1, y0 + 1);
  const fx = cx - x0, fy = cy - y0;
  const v = (xx: number, yy: number) => map[base + yy * side + xx];
  return (v(x0, y0) * (1 - fx) + v(x1, y0) * fx) * (1 - fy) + (v(x0, y1) * (1 - fx) + v(x1, y1) * fx) * fy;
}

/**
 * Tiles one map per joint, each normalised to its own peak (the peak value is printed next to the
 * joint name), over a dimmed grey copy of the input crop, with the GT joint ringed.
 */
export function drawHeatmapTiles(o: HeatmapTilesOptions): RgbCanvas {
  const side = o.side, T = o.tile ?? 112, cols = o.columns ?? 4;
  const labels = o.labels ?? JOINT_LABELS;
  const J = o.maps.length / (side * side);
  if (!Number.isInteger(J) || J < 1) {
    throw new RangeError(`drawHeatmapTiles: ${o.maps.length} values are not whole ${side}x${side} maps`);
  }
  const rows = Math.ceil(J / cols), labelH = 12, gap = 4, titleH = 18;
  const W = cols * T + (cols + 1) * gap;
  const H = titleH + rows * (T + labelH + gap) + gap;
  const out = makeCanvas(W, H, { fill: [16, 16, 16] });
  drawText(out, o.title, { x: gap, y: 5, color: [235, 235, 235] });
  let grey: Float32Array | null = null;
  if (o.image && o.size) {
    const rgb = planarToRgbBytes(o.image, o.size, o.channelOrder ?? "bgr");
    grey = new Float32Array(o.size * o.size);
    for (let i = 0; i < grey.length; i++) {
      grey[i] = (0.299 * rgb[3 * i] + 0.587 * rgb[3 * i + 1] + 0.114 * rgb[3 * i + 2]) / 255;
    }
  }
  const gtPx = o.gt ? normToPixels(o.gt, T, { legacy: o.legacy }) : null;
  for (let j = 0; j < J; j++) {
    const col = j % cols, row = Math.floor(j / cols);
    const x0 = gap + col * (T + gap), y0 = titleH + row * (T + labelH + gap);
    const base = j * side * side;
    let peak = 0;
    for (let i = 0; i < side * side; i++) peak = Math.max(peak, o.maps[base + i]);
    const tile = makeCanvas(T, T);
    for (let y = 0; y < T; y++) {
      for (let x = 0; x < T; x++) {
        const v = bilinear(o.maps, base, side, ((x + 0.5) * side) / T - 0.5, ((y + 0.5) * side) / T - 0.5);
        const h = peak > 0 ? Math.max(0, Math.min(1, v / peak)) : 0;
        const g = grey
          ? grey[Math.floor(((y + 0.5) * o.size!) / T) * o.size! + Math.floor(((x + 0.5) * o.size!) / T)]
          : 0;
        const c = heatColor(h);
        const i = 3 * (y * T + x);
        // The picture shows through where the map is low, so the peak can be placed on the body.
        for (let k = 0; k < 3; k++) tile.rgb[i + k] = Math.round(c[k] * h + 200 * g * 0.45 * (1 - h));
      }
    }
    if (gtPx) drawRing(tile, [gtPx[2 * j], gtPx[2 * j + 1]], { radius: 4, color: [80, 230, 255] });
    blit(out, tile, { x: x0, y: y0 + labelH });
    const name = labels[j] ?? `joint ${j}`;
    drawText(out, name, { x: x0, y: y0 + 2, color: [220, 220, 220] });
    const pk = peak >= 100 ? peak.toFixed(0) : peak >= 0.01 ? peak.toFixed(2) : peak.toExponential(0);
    drawText(out, pk, { x: x0 + T - textWidth(pk), y: y0 + 2, color: [150, 150, 150] });
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// 3D skeletons

/** Options of {@linkcode drawSkeleton3d}. */
export interface Skeleton3dOptions {
  /** Predicted joints, camera-frame mm [16 x 3]. */
  pred: ArrayLike<number>;
  /** GT joints, camera-frame mm [16 x 3]. */
  gt: ArrayLike<number>;
  /**
   * The camera's world->camera rotation (3x3 row-major), to stand the poses upright in the world
   * frame (Human3.6M: z up). Without it the camera's -y axis is taken as up.
   */
  rotation?: ArrayLike<number>;
  /** Side of each view in px (default 300). */
  size?: number;
  /** Looking down at the ground by this many degrees (default 12). */
  elevationDeg?: number;
  /** Caption under the views. */
  caption?: string;
}

type V3 = [number, number, number];

/** Root-aligned poses in a z-up frame whose forward direction is the camera's, seen from above. */
function uprightPoses(o: Skeleton3dOptions): { pred: V3[]; gt: V3[]; forward: V3 } {
  const R = o.rotation;
  const toWorld = (p: V3): V3 =>
    R
      ? [
        R[0] * p[0] + R[3] * p[1] + R[6] * p[2],
        R[1] * p[0] + R[4] * p[1] + R[7] * p[2],
        R[2] * p[0] + R[5] * p[1] + R[8] * p[2],
      ]
      : [p[0], p[2], -p[1]];
  const rel = (a: ArrayLike<number>): V3[] => {
    const r = ROOT_JOINT;
    return Array.from(
      { length: NUM_JOINTS },
      (_, j) => toWorld([a[3 * j] - a[3 * r], a[3 * j + 1] - a[3 * r + 1], a[3 * j + 2] - a[3 * r + 2]]),
    );
  };
  // The camera's optical axis in the world, flattened onto the ground.
  const f = toWorld([0, 0, 1]);
  const n = Math.hypot(f[0], f[1]) || 1;
  return { pred: rel(o.pred), gt: rel(o.gt), forward: [f[0] / n, f[1] / n, 0] };
}

/**
 * Prediction (the seed's colours) and GT (grey bones, GT-coloured joints) after root alignment, drawn orthographically
 * from the camera's side ("front", matching the input crop) and from 90 degrees to its right
 * ("side"), over a 250 mm ground grid under the GT's lowest joint.
 */
export function drawSkeleton3d(o: Skeleton3dOptions): RgbCanvas {
  const S = o.size ?? 300;
  const elev = ((o.elevationDeg ?? 12) * Math.PI) / 180;
  const { pred, gt, forward } = uprightPoses(o);
  const floor = Math.min(...gt.map((p) => p[2]));
  let extent = 0;
  for (const p of [...pred, ...gt]) extent = Math.max(extent, Math.hypot(p[0], p[1]), Math.abs(p[2]));
  const halfMm = Math.max(900, Math.min(2500, extent * 1.15));
  const scale = S / 2 / halfMm;
  const views: { title: string; d: V3 }[] = [
    { title: "front", d: forward },
    { title: "side", d: [-forward[1], forward[0], 0] },
  ];
  const titleH = 14, capH = o.caption ? 14 : 0, gap = 4;
  const out = makeCanvas(2 * S + 3 * gap, S + titleH + capH + gap, { fill: [250, 250, 250] });
  views.forEach((v, k) => {
    const panel = makeCanvas(S, S, { fill: [255, 255, 255] });
    const right: V3 = [v.d[1], -v.d[0], 0];
    // Tilt the line of sight down by `elev`: screen up is then a mix of world up and forward.
    const up: V3 = [Math.sin(elev) * v.d[0], Math.sin(elev) * v.d[1], Math.cos(elev)];
    const cy = S * 0.5;
    const proj = (p: V3): [number, number] => [
      S / 2 + scale * (p[0] * right[0] + p[1] * right[1]),
      cy - scale * (p[0] * up[0] + p[1] * up[1] + p[2] * up[2]),
    ];
    const grid = 250, cells = Math.ceil(halfMm / grid) + 1;
    for (let i = -cells; i <= cells; i++) {
      const a = proj([i * grid, -cells * grid, floor]), b = proj([i * grid, cells * grid, floor]);
      const c = proj([-cells * grid, i * grid, floor]), d = proj([cells * grid, i * grid, floor]);
      const col: Rgb = i === 0 ? [170, 170, 170] : [215, 215, 215];
      drawLine(panel, [a[0], a[1], b[0], b[1]], { thickness: 1, color: col });
      drawLine(panel, [c[0], c[1], d[0], d[1]], { thickness: 1, color: col });
    }
    const draw = (pose: V3[], isGt: boolean) => {
      const px = pose.map(proj);
      BONES.forEach(([a, b], bi) => {
        drawLine(panel, [px[a][0], px[a][1], px[b][0], px[b][1]], {
          thickness: isGt ? 4 : 2.5,
          color: isGt ? GT_LINE_3D : BONE_COLORS[bi],
        });
      });
      px.forEach((p, j) =>
        fillCircle(panel, p, { radius: isGt ? 3.5 : 3, color: isGt ? GT_JOINT_COLOR : JOINT_COLORS[j] })
      );
    };
    draw(gt, true);
    draw(pred, false);
    drawText(panel, "grid 25 cm", { x: 4, y: S - 11, color: [140, 140, 140] });
    const x0 = gap + k * (S + gap);
    blit(out, panel, { x: x0, y: titleH });
    drawText(out, v.title, { x: x0 + 2, y: 4, color: [40, 40, 40] });
  });
  // Legend.
  let x = out.width - gap - textWidth("pred  gt") - 24;
  fillCircle(out, [x + 3, 7], { radius: 3, color: JOINT_COLORS[8] });
  x += 9;
  drawText(out, "pred", { x, y: 4, color: [40, 40, 40] });
  x += textWidth("pred ") + 6;
  fillCircle(out, [x + 3, 7], { radius: 3, color: GT_JOINT_COLOR });
  drawText(out, "gt", { x: x + 9, y: 4, color: [40, 40, 40] });
  if (o.caption) drawText(out, o.caption, { x: gap + 2, y: titleH + S + 4, color: [60, 60, 60] });
  return out;
}

// ---------------------------------------------------------------------------------------------
// HTML index

/** One sample of the HTML index. */
export interface VisEntry {
  /** Sample id. */
  id: number;
  /** Action name. */
  action: string;
  /** Image paths relative to the index. */
  images: { title: string; src: string }[];
  /** Per-sample mean errors (mm) by method, then metric. */
  errors: Record<string, Record<string, number>>;
}

function esc(s: string): string {
  return s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]!);
}

/** The page showing each sample's pictures side by side with its errors, after a summary. */
export function visIndexHtml(o: { title: string; summary: string; entries: VisEntry[] }): string {
  const rows = o.entries.map((e) => {
    const methods = Object.keys(e.errors);
    const metrics = methods.length ? Object.keys(e.errors[methods[0]]) : [];
    const table = `<table><tr><th></th>${metrics.map((k) => `<th>${esc(k)}</th>`).join("")}</tr>${
      methods.map((m) =>
        `<tr><th>${esc(m)}</th>${
          metrics.map((k) => `<td>${Number.isFinite(e.errors[m][k]) ? e.errors[m][k].toFixed(1) : "-"}</td>`)
            .join("")
        }</tr>`
      ).join("")
    }</table>`;
    const imgs = e.images.map((im) =>
      `<figure><a href="${esc(im.src)}"><img src="${esc(im.src)}" alt="${esc(im.title)}"></a><figcaption>${
        esc(im.title)
      }</figcaption></figure>`
    ).join("");
    return `<section><h2>sample ${e.id} <small>${
      esc(e.action)
    }</small></h2><div class="row"><div class="err">${table}</div>${imgs}</div></section>`;
  }).join("\n");
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${esc(o.title)}</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; background: #fafafa; color: #222; }
pre { background: #fff; border: 1px solid #ddd; padding: 0.8em; overflow-x: auto; font-size: 12px; }
section { border-top: 1px solid #ddd; padding-top: 0.5em; margin-top: 1em; }
h2 { font-size: 16px; margin: 0.2em 0; } h2 small { color: #777; font-weight: normal; }
.row { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
figure { margin: 0; } figure img { max-height: 340px; display: block; border: 1px solid #ccc; }
figcaption { font-size: 12px; color: #555; }
table { border-collapse: collapse; font-size: 12px; } th, td { padding: 2px 6px; text-align: right; }
td { font-variant-numeric: tabular-nums; } tr:nth-child(even) { background: #f0f0f0; }
</style></head><body>
<h1>${esc(o.title)}</h1>
<pre>${esc(o.summary)}</pre>
${rows}
</body></html>
`;
}
