/**
 * Image files as plain interleaved RGB bytes. 8-bit PNGs (the dataset's crops) are decoded and
 * encoded here on top of the runtime's native (de)compression streams; JPEG and unusual PNG
 * variants go through imagescript (pure WASM/JS, so everything also runs inside workers).
 * @module
 */

import { decode, Image } from "imagescript";
import { DataError } from "./errors.ts";

/** A decoded image: `rgb` holds width*height*3 bytes, row-major, interleaved R,G,B. */
export interface RgbImage {
  /** Width in px. */
  width: number;
  /** Height in px. */
  height: number;
  /** Interleaved RGB bytes. */
  rgb: Uint8Array;
}

/** Drops the alpha channel of an RGBA bitmap. */
function rgbaToRgb(rgba: Uint8Array | Uint8ClampedArray, n: number): Uint8Array {
  const rgb = new Uint8Array(n * 3);
  for (let i = 0, j = 0; i < n; i++, j += 4) {
    rgb[3 * i] = rgba[j];
    rgb[3 * i + 1] = rgba[j + 1];
    rgb[3 * i + 2] = rgba[j + 2];
  }
  return rgb;
}

// ---------------------------------------------------------------------------------------------
// PNG: the common 8-bit, non-interlaced case is decoded here with the runtime's native inflate,
// several times faster than the WASM decoder, which stays the fallback for everything else.

const PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

function isPng(b: Uint8Array): boolean {
  return b.length >= 8 && PNG_SIGNATURE.every((v, i) => b[i] === v);
}

async function inflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new DecompressionStream("deflate"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

async function deflate(data: Uint8Array): Promise<Uint8Array> {
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("deflate"),
  );
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

/** Decodes an 8-bit non-interlaced PNG to RGB; null when the variant is not handled here. */
async function decodePngFast(b: Uint8Array, path: string): Promise<RgbImage | null> {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let p = 8;
  let width = 0, height = 0, colorType = -1;
  let palette: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  while (p + 8 <= b.length) {
    const len = dv.getUint32(p);
    const type = String.fromCharCode(b[p + 4], b[p + 5], b[p + 6], b[p + 7]);
    if (p + 12 + len > b.length) {
      throw new DataError(path, "a complete PNG", { got: `truncated ${type} chunk` });
    }
    const body = b.subarray(p + 8, p + 8 + len);
    if (type === "IHDR") {
      width = dv.getUint32(p + 8);
      height = dv.getUint32(p + 12);
      const depth = body[8], interlace = body[12];
      colorType = body[9];
      if (depth !== 8 || interlace !== 0) return null;
    } else if (type === "PLTE") palette = body;
    else if (type === "IDAT") idat.push(body);
    else if (type === "IEND") break;
    p += 12 + len;
  }
  const channels = ({ 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 } as Record<number, number>)[colorType];
  if (!channels || width === 0 || height === 0 || (colorType === 3 && !palette)) return null;
  let total = 0;
  for (const c of idat) total += c.length;
  const z = new Uint8Array(total);
  for (let i = 0, o = 0; i < idat.length; o += idat[i].length, i++) z.set(idat[i], o);
  let raw: Uint8Array;
  try {
    raw = await inflate(z);
  } catch (e) {
    throw new DataError(path, "a PNG with valid compressed data", { got: String(e), cause: e });
  }
  const stride = width * channels;
  if (raw.length < (stride + 1) * height) {
    throw new DataError(path, `${(stride + 1) * height} bytes of PNG image data`, { got: `${raw.length}` });
  }
  const px = unfilter(raw, stride, height, channels, path);
  const rgb = new Uint8Array(width * height * 3);
  const n = width * height;
  if (colorType === 2) rgb.set(px.subarray(0, n * 3));
  else if (colorType === 6) {
    for (let i = 0; i < n; i++) {
      rgb[3 * i] = px[4 * i];
      rgb[3 * i + 1] = px[4 * i + 1];
      rgb[3 * i + 2] = px[4 * i + 2];
    }
  } else if (colorType === 3) {
    for (let i = 0; i < n; i++) {
      const k = 3 * px[i];
      rgb[3 * i] = palette![k];
      rgb[3 * i + 1] = palette![k + 1];
      rgb[3 * i + 2] = palette![k + 2];
    }
  } else {
    for (let i = 0; i < n; i++) rgb[3 * i] = rgb[3 * i + 1] = rgb[3 * i + 2] = px[channels * i];
  }
  return { width, height, rgb };
}

/** Undoes the per-row PNG filters (None, Sub, Up, Average, Paeth). */
function unfilter(raw: Uint8Array, stride: number, height: number, bpp: number, path: string): Uint8Array {
  const out = new Uint8Array(stride * height);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)];
    const src = y * (stride + 1) + 1, row = y * stride, up = row - stride;
    switch (f) {
      case 0:
        out.set(raw.subarray(src, src + stride), row);
        break;
      case 1:
        for (let x = 0; x < stride; x++) out[row + x] = raw[src + x] + (x >= bpp ? out[row + x - bpp] : 0);
        break;
      case 2:
        for (let x = 0; x < stride; x++) out[row + x] = raw[src + x] + (y > 0 ? out[up + x] : 0);
        break;
      case 3:
        for (let x = 0; x < stride; x++) {
          const a = x >= bpp ? out[row + x - bpp] : 0, b = y > 0 ? out[up + x] : 0;
          out[row + x] = raw[src + x] + ((a + b) >> 1);
        }
        break;
      case 4:
        for (let x = 0; x < stride; x++) {
          const a = x >= bpp ? out[row + x - bpp] : 0;
          const b = y > 0 ? out[up + x] : 0;
          const c = x >= bpp && y > 0 ? out[up + x - bpp] : 0;
          const pa = Math.abs(b - c), pb = Math.abs(a - c), pc = Math.abs(a + b - 2 * c);
          out[row + x] = raw[src + x] + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
        }
        break;
      default:
        throw new DataError(path, "PNG row filter 0-4", { got: `${f} in row ${y}` });
    }
  }
  return out;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, body: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + body.length);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, body.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(body, 8);
  dv.setUint32(8 + body.length, crc32(out.subarray(4, 8 + body.length)));
  return out;
}

// ---------------------------------------------------------------------------------------------

/**
 * Decodes PNG or JPEG bytes; `path` only names the source in errors. With `expectSize`, an image
 * of another size is a DataError.
 */
export async function decodeImageBytes(
  bytes: Uint8Array,
  path: string,
  opts: { expectSize?: [number, number] } = {},
): Promise<RgbImage> {
  const fast = isPng(bytes) ? await decodePngFast(bytes, path) : null;
  if (fast) {
    if (opts.expectSize && (fast.width !== opts.expectSize[0] || fast.height !== opts.expectSize[1])) {
      throw new DataError(path, `a ${opts.expectSize[0]}x${opts.expectSize[1]} image`, {
        got: `${fast.width}x${fast.height}`,
      });
    }
    return fast;
  }
  let img: unknown;
  try {
    img = await decode(bytes);
  } catch (e) {
    throw new DataError(path, "a PNG or JPEG image", { got: `undecodable bytes (${e})`, cause: e });
  }
  if (!(img instanceof Image)) {
    throw new DataError(path, "a still PNG or JPEG image", { got: "an animation" });
  }
  const { width, height } = img;
  if (opts.expectSize && (width !== opts.expectSize[0] || height !== opts.expectSize[1])) {
    throw new DataError(path, `a ${opts.expectSize[0]}x${opts.expectSize[1]} image`, {
      got: `${width}x${height}`,
    });
  }
  return { width, height, rgb: rgbaToRgb(img.bitmap, width * height) };
}

/** Reads and decodes an image file (PNG or JPEG). Missing or undecodable files are DataErrors. */
export async function decodeImage(
  path: string,
  opts: { expectSize?: [number, number] } = {},
): Promise<RgbImage> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    const got = e instanceof Deno.errors.NotFound ? "no file" : String(e);
    throw new DataError(path, "a PNG or JPEG image", { got, cause: e });
  }
  return await decodeImageBytes(bytes, path, opts);
}

/**
 * Encodes interleaved RGB bytes as an 8-bit RGB PNG. Each row takes the filter with the smallest
 * sum of absolute residuals (the usual heuristic), then the runtime's native deflate compresses.
 */
export async function encodePng(rgb: Uint8Array, width: number, height: number): Promise<Uint8Array> {
  if (rgb.length !== width * height * 3) {
    throw new RangeError(
      `encodePng: expected ${width * height * 3} bytes for ${width}x${height}, got ${rgb.length}`,
    );
  }
  const stride = width * 3;
  const filtered = new Uint8Array((stride + 1) * height);
  const cand = Array.from({ length: 5 }, () => new Uint8Array(stride));
  for (let y = 0; y < height; y++) {
    const row = y * stride, up = row - stride;
    let best = 0, bestCost = Infinity;
    for (let f = 0; f < 5; f++) {
      const c = cand[f];
      let cost = 0;
      for (let x = 0; x < stride; x++) {
        const v = rgb[row + x];
        const a = x >= 3 ? rgb[row + x - 3] : 0, b = y > 0 ? rgb[up + x] : 0;
        const cc = x >= 3 && y > 0 ? rgb[up + x - 3] : 0;
        let pred = 0;
        if (f === 1) pred = a;
        else if (f === 2) pred = b;
        else if (f === 3) pred = (a + b) >> 1;
        else if (f === 4) {
          const pa = Math.abs(b - cc), pb = Math.abs(a - cc), pc = Math.abs(a + b - 2 * cc);
          pred = pa <= pb && pa <= pc ? a : pb <= pc ? b : cc;
        }
        const r = (v - pred) & 255;
        c[x] = r;
        cost += r < 128 ? r : 256 - r;
      }
      if (cost < bestCost) {
        bestCost = cost;
        best = f;
      }
    }
    filtered[y * (stride + 1)] = best;
    filtered.set(cand[best], y * (stride + 1) + 1);
  }
  const ihdr = new Uint8Array(13);
  const dv = new DataView(ihdr.buffer);
  dv.setUint32(0, width);
  dv.setUint32(4, height);
  ihdr.set([8, 2, 0, 0, 0], 8);
  const parts = [
    Uint8Array.from(PNG_SIGNATURE),
    chunk("IHDR", ihdr),
    chunk("IDAT", await deflate(filtered)),
    chunk("IEND", new Uint8Array(0)),
  ];
  const out = new Uint8Array(parts.reduce((n, q) => n + q.length, 0));
  for (let i = 0, o = 0; i < parts.length; o += parts[i].length, i++) out.set(parts[i], o);
  return out;
}

/** Decodes through the WASM decoder only (reference for tests of the native path). */
export async function decodeImageReference(bytes: Uint8Array): Promise<RgbImage> {
  const img = await decode(bytes);
  if (!(img instanceof Image)) throw new RangeError("decodeImageReference: not a still image");
  return { width: img.width, height: img.height, rgb: rgbaToRgb(img.bitmap, img.width * img.height) };
}
