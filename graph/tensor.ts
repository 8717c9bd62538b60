/**
 * Moving f32 data between the CPU and GPU regions.
 * @module
 */
import type { Gpu } from "../kernels/device.ts";
import type { Region } from "../kernels/kernel.ts";

/** Writes `data` to `region` (queued; ordered before the next submit). */
export function upload(gpu: Gpu, region: Region, data: Float32Array): void {
  if (data.byteLength > region.size) {
    throw new RangeError(`upload of ${data.byteLength} bytes into a ${region.size}-byte region`);
  }
  gpu.device.queue.writeBuffer(
    region.buffer,
    region.offset,
    data.buffer as ArrayBuffer,
    data.byteOffset,
    data.byteLength,
  );
}

/** Copies `region` back to the CPU (waits for the queue). */
export async function download(gpu: Gpu, region: Region): Promise<Float32Array> {
  const staging = gpu.device.createBuffer({
    size: region.size,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const enc = gpu.device.createCommandEncoder();
  enc.copyBufferToBuffer(region.buffer, region.offset, staging, 0, region.size);
  gpu.device.queue.submit([enc.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  staging.destroy();
  return out;
}

/** A standalone GPU buffer holding `data` (for tests and scripts). */
export function createRegion(gpu: Gpu, data: Float32Array | number, label = "tensor"): Region {
  const n = typeof data === "number" ? data : data.length;
  // Whole vec4s, so the region can be bound as a uniform array<vec4<f32>> (kernels/conv_direct.ts).
  const size = Math.max(16, Math.ceil(n / 4) * 16);
  const buffer = gpu.device.createBuffer({
    label,
    size,
    usage: GPUBufferUsage.STORAGE | GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_SRC |
      GPUBufferUsage.COPY_DST,
  });
  if (typeof data !== "number") upload(gpu, { buffer, offset: 0, size }, data);
  return { buffer, offset: 0, size: n * 4 };
}
