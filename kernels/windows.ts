/**
 * Uniform windows: read-only tensors bound as one or more 64 KiB uniform buffers instead of a
 * storage buffer. On CPU adapters (llvmpipe) a storage load is done lane by lane (each scalar
 * inserted into a stack copy of the vector, then reloaded), shared address or not; a uniform load
 * is a gather. Measured in one loop benchmark on a Zen 3 core (cycles per 8-lane load, loop cost
 * taken off): storage ~150 for an f32 and ~530 for a vec4, uniform ~17 and ~40. Kernels whose time
 * is their loads read their inputs through windows where the tensor can be cut into them. GPUs
 * keep storage reads: there a lane-varying uniform load serialises.
 *
 * Operands too large for windows are copied into a scratch rgba32float texture (a buffer-to-texture
 * copy, which llvmpipe runs as a memory copy) and read with textureLoad: ~55 cycles for a texel of
 * four floats in the same benchmark. The copy costs less than even one pass of storage loads, so
 * kernels on CPU adapters take it wherever the operand can be copied.
 * @module
 */
import { type Recorder, type Region, u32 } from "./kernel.ts";
import { viewSizes } from "./prewarm.ts";

/** Floats one uniform binding may hold (the WebGPU default limit of 64 KiB). */
export const UNIFORM_FLOATS = 16384;

/** The uniform binding of `floats` floats at `offset` bytes into `r`'s buffer, or null when it cannot be bound. */
export function uniformWindow(r: Region, offset: number, floats: number, align: number): Region | null {
  const size = Math.ceil(floats / 4) * 16;
  const off = r.offset + offset;
  if (size > UNIFORM_FLOATS * 4 || off % align !== 0 || off + size > r.buffer.size) return null;
  if (!(r.buffer.usage & GPUBufferUsage.UNIFORM)) return null;
  return { buffer: r.buffer, offset: off, size };
}

/** WGSL declaring `name` as a uniform array of `floats` floats and a scalar reader `fnName(i)`. */
export function uniformDecl(binding: number, name: string, floats: number, fnName: string): string {
  return `@group(0) @binding(${binding}) var<uniform> ${name}: array<vec4<f32>, ${Math.ceil(floats / 4)}>;
fn ${fnName}(i: u32) -> f32 { return ${name}[i >> 2u][i & 3u]; }`;
}

/**
 * A tensor of `slices` equal slices of `sliceFloats` floats each (the images of an NCHW tensor),
 * cut into windows of whole slices: window w holds slices [w * perWindow, w * perWindow + count(w)).
 */
export interface SliceWindows {
  regions: Region[];
  perWindow: number;
  /** Floats of one slice. */
  sliceFloats: number;
  count(w: number): number;
}

/**
 * Cuts `r` (`slices` x `sliceFloats` floats) into uniform windows of whole slices; null when one
 * slice overflows a window, more than `maxWindows` are needed, a window start is not aligned
 * for a uniform binding, or the buffer was not made bindable as uniform.
 */
export function sliceWindows(
  rec: Recorder,
  r: Region,
  slices: number,
  sliceFloats: number,
  maxWindows: number,
): SliceWindows | null {
  const perWindow = Math.min(slices, Math.floor(UNIFORM_FLOATS / sliceFloats));
  if (perWindow < 1) return null;
  const n = Math.ceil(slices / perWindow);
  if (n > maxWindows) return null;
  const align = rec.kernels.gpu.device.limits.minUniformBufferOffsetAlignment;
  const count = (w: number) => Math.min(perWindow, slices - w * perWindow);
  const regions: Region[] = [];
  for (let w = 0; w < n; w++) {
    const win = uniformWindow(r, w * perWindow * sliceFloats * 4, count(w) * sliceFloats, align);
    if (!win) return null;
    regions.push(win);
  }
  return { regions, perWindow, sliceFloats, count };
}

/** Uniform bindings a kernel may use on this device. */
export function uniformBindings(rec: Recorder): number {
  return rec.kernels.gpu.device.limits.maxUniformBuffersPerShaderStage;
}

/** True when no region of `reads` shares a buffer with a region of `writes` (a dispatch may not bind one buffer as uniform and writable storage). */
export function disjointBuffers(
  reads: readonly Region[],
  writes: readonly (Region | null | undefined)[],
): boolean {
  return reads.every((r) => writes.every((w) => !w || w.buffer !== r.buffer));
}

/** Texels per row of a packed texture. */
export const TEXTURE_WIDTH = 2048;
const TEXTURE_SHIFT = Math.log2(TEXTURE_WIDTH);

/**
 * Records copies of `images` consecutive images of `imageFloats` floats each from `r` into the
 * layers of a scratch rgba32float texture (four floats a texel, rows of {@linkcode TEXTURE_WIDTH}
 * texels) and returns one 2-D view per image, for kernels declared with {@linkcode textureDecl}.
 * Operands a kernel reads together pack into different `slot`s. On a CPU adapter a copy is a
 * memory copy, where a packing kernel's storage loads took the lane-by-lane path. Null when the
 * region is not 16-byte aligned, its images are not whole vec4s, or the texture would exceed the
 * device's limits.
 */
export function packImages(
  rec: Recorder,
  r: Region,
  images: number,
  imageFloats: number,
  slot = 0,
): GPUTextureView[] | null {
  if (!packable(rec, r, images, imageFloats)) return null;
  const rows = Math.ceil(imageFloats / 4 / TEXTURE_WIDTH);
  const tex = rec.scratchTexture(TEXTURE_WIDTH, rows, images, slot);
  for (let n = 0; n < images; n++) {
    const src = { buffer: r.buffer, offset: r.offset + n * imageFloats * 4, size: imageFloats * 4 };
    rec.copyToTexture(`pack_texture ${images}x${imageFloats}`, src, tex, TEXTURE_WIDTH, imageFloats, n);
  }
  return Array.from({ length: images }, (_, n) => {
    const v = tex.createView({ dimension: "2d", baseArrayLayer: n, arrayLayerCount: 1 });
    viewSizes.set(v, [tex.width, tex.height]);
    return v;
  });
}

/** Whether {@linkcode packImages} can pack `images` images of `imageFloats` floats from `r`. */
export function packable(rec: Recorder, r: Region, images: number, imageFloats: number): boolean {
  const limits = rec.kernels.gpu.device.limits;
  return imageFloats % 4 === 0 && r.size >= images * imageFloats * 4 && r.offset % 16 === 0 &&
    (images === 1 || rec.kernels.gpu.layerViews !== false) &&
    Math.ceil(imageFloats / 4 / TEXTURE_WIDTH) <= limits.maxTextureDimension2D &&
    images <= limits.maxTextureArrayLayers;
}

/**
 * Copies of the first `floats` floats of each of `regions` into the scratch textures of slots
 * `slot`, `slot + 1`, ..., one view each, for kernels that read them with {@linkcode textureDecl}
 * (four values a texel); null, with nothing recorded, unless every region can be copied.
 */
export function copiesForReading(
  rec: Recorder,
  regions: readonly Region[],
  floats: number,
  slot = 0,
): GPUTextureView[] | null {
  if (!regions.every((r) => packable(rec, r, 1, floats))) return null;
  return regions.map((r, k) => packImages(rec, r, 1, floats, slot + k)![0]);
}

/** WGSL declaring a packed image `name` at `binding`, with readers `fnName4(texel)` and `fnName(float index)`. */
export function textureDecl(binding: number, name: string, fnName: string): string {
  return `@group(0) @binding(${binding}) var ${name}: texture_2d<f32>;
fn ${fnName}4(texel: u32) -> vec4<f32> {
  return textureLoad(${name}, vec2u(texel & ${u32(TEXTURE_WIDTH - 1)}, texel >> ${u32(TEXTURE_SHIFT)}), 0);
}
fn ${fnName}(i: u32) -> f32 { return ${fnName}4(i >> 2u)[i & 3u]; }`;
}
