/**
 * Image files as plain interleaved RGB bytes. Decoding and encoding go through imagescript (PNG
 * and JPEG, pure WASM/JS so it also runs inside workers); everything else in the project works
 * on the returned byte arrays.
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

/**
 * Decodes PNG or JPEG bytes; `path` only names the source in errors. With `expectSize`, an image
 * of another size is a DataError.
 */
export async function decodeImageBytes(
  bytes: Uint8Array,
  path: string,
  opts: { expectSize?: [number, number] } = {},
): Promise<RgbImage> {
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

/** Encodes interleaved RGB bytes as an opaque PNG. */
export async function encodePng(rgb: Uint8Array, width: number, height: number): Promise<Uint8Array> {
  if (rgb.length !== width * height * 3) {
    throw new RangeError(
      `encodePng: expected ${width * height * 3} bytes for ${width}x${height}, got ${rgb.length}`,
    );
  }
  const img = new Image(width, height);
  const bm = img.bitmap;
  for (let i = 0, n = width * height; i < n; i++) {
    bm[4 * i] = rgb[3 * i];
    bm[4 * i + 1] = rgb[3 * i + 1];
    bm[4 * i + 2] = rgb[3 * i + 2];
    bm[4 * i + 3] = 255;
  }
  return await img.encode(1);
}
