/**
 * The prewarm worker (see prewarm.ts): opens its own WebGPU device, and compiles and runs each
 * kernel it is sent once on stand-in buffers and textures of the same sizes, so that the
 * driver's shader cache holds them before the main thread's device reaches them.
 * @module
 */
/// <reference lib="deno.worker" />
import { openGpu } from "./device.ts";
import type { WarmKernel } from "./prewarm.ts";

interface Request {
  kernels: WarmKernel[];
  groups: number;
}

self.onmessage = async (e: MessageEvent<Request>) => {
  const started = performance.now();
  let done = 0;
  let error: string | undefined;
  try {
    const gpu = await openGpu();
    const device = gpu.device;
    const buffers: GPUBuffer[] = [];
    const textures = new Map<string, GPUTextureView>();
    const buffer = (i: number, size: number) => {
      if (!buffers[i] || buffers[i].size < size) {
        buffers[i]?.destroy();
        buffers[i] = device.createBuffer({
          size: Math.max(size, 256),
          usage: GPUBufferUsage.STORAGE | GPUBufferUsage.UNIFORM,
        });
      }
      return buffers[i];
    };
    const texture = (width: number, height: number) => {
      const key = `${width}x${height}`;
      let v = textures.get(key);
      if (!v) {
        v = device.createTexture({
          size: [width, height, 1],
          format: "rgba32float",
          usage: GPUTextureUsage.TEXTURE_BINDING,
        }).createView({ dimension: "2d" });
        textures.set(key, v);
      }
      return v;
    };
    for (const k of e.data.kernels) {
      device.pushErrorScope("validation");
      const pipeline = device.createComputePipeline({
        layout: "auto",
        compute: { module: device.createShaderModule({ code: k.code }), entryPoint: k.entry },
      });
      const bindGroup = device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: k.bindings.map((b, i) => ({
          binding: i,
          resource: b.kind === "buffer"
            ? { buffer: buffer(i, b.size), size: b.size }
            : texture(b.width, b.height),
        })),
      });
      const enc = device.createCommandEncoder();
      const pass = enc.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, bindGroup);
      pass.dispatchWorkgroups(e.data.groups, 1, 1);
      pass.end();
      device.queue.submit([enc.finish()]);
      const err = await device.popErrorScope();
      await device.queue.onSubmittedWorkDone();
      // A kernel the device refuses is skipped (the main device reports it with its owner).
      if (err) error ??= err.message;
      else done++;
    }
    device.destroy();
    self.postMessage({ done, ms: performance.now() - started, error });
  } catch (err) {
    self.postMessage({ done, ms: performance.now() - started, error: String(err) });
  }
};
