/**
 * Uniform windows: read-only tensors bound as one or more 64 KiB uniform buffers instead of a
 * storage buffer. On CPU adapters (llvmpipe) a storage load whose address differs between lanes,
 * or that sits in a loop or branch, is done lane by lane (each scalar inserted into a stack copy
 * of the vector, then reloaded): about 190 cycles per 8 lanes for an f32, 790 for a vec4. A
 * uniform load goes through a gather, about 45 and 210, shared address or not. Kernels whose
 * time is their loads read their inputs through windows where the tensor can be cut into them.
 * GPUs keep storage reads: there a lane-varying uniform load serialises.
 * @module
 */
import type { Recorder, Region } from "./kernel.ts";

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
