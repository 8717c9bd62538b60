/**
 * Finding a WebGPU adapter and device. Everything else receives the `Gpu` this returns, so the
 * adapter, backend and optional features are decided in one place.
 * @module
 */

/** The device plus what we learned about it. */
export interface Gpu {
  device: GPUDevice;
  /** Human-readable adapter description, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)". */
  adapterName: string;
  /** Backend requested through DENO_WEBGPU_BACKEND, or "default". */
  backend: string;
  /** True when the adapter is a CPU fallback (llvmpipe/lavapipe/WARP). */
  isFallback: boolean;
  /** Optional features we detected and enabled. */
  features: { shaderF16: boolean; subgroups: boolean; timestampQuery: boolean };
  /** Largest single storage binding, in bytes. */
  maxBindingBytes: number;
  /** Largest buffer, in bytes. */
  maxBufferBytes: number;
  /** Required alignment of storage-buffer binding offsets, in bytes. */
  offsetAlignment: number;
  /** Errors the device reported outside any error scope (validation at submit, device loss). */
  errors: string[];
  /** Worker threads a Mesa CPU adapter runs workgroups on (LP_NUM_THREADS; 0: the queue thread), when set. */
  cpuThreads?: number;
  /**
   * False where a kernel cannot read one layer of a 2-D array texture through a 2-D view (wgpu's
   * GL backend reads layer 0 whatever the view says); packed operands then take one texture per
   * image or stay in buffers. Absent: true.
   */
  layerViews?: boolean;
}

/** Returns and clears the errors the device reported outside error scopes. */
export function takeGpuErrors(gpu: Gpu): string[] {
  return gpu.errors.splice(0, gpu.errors.length);
}

/** Raised when no usable WebGPU adapter exists; the message says what to install. */
export class NoGpuError extends Error {
  constructor(detail: string) {
    super(
      `No WebGPU adapter found (${detail}). volpose needs WebGPU: on a machine without a GPU install Mesa's ` +
        `software drivers (Debian/Ubuntu: apt-get install mesa-vulkan-drivers libgl1-mesa-dri), or install ` +
        `your GPU's Vulkan/Metal/D3D12 driver; DENO_WEBGPU_BACKEND=vulkan|gl picks a backend.`,
    );
    this.name = "NoGpuError";
  }
}

/** A GPU-side failure (validation, out of memory, shader compilation) with the layer and kernel named. */
export class GpuError extends Error {
  constructor(message: string, opts?: { cause?: unknown }) {
    super(message, opts);
    this.name = "GpuError";
  }
}

let shared: Promise<Gpu> | null = null;

/**
 * Worker threads for Mesa's CPU rasteriser (llvmpipe, and lavapipe on top of it), which reads
 * LP_NUM_THREADS once, when the first adapter is created. Its default, one thread per core,
 * measured badly on a 2-core machine: the training step used 0.96-0.99 of the 2 cores, as if
 * both workers shared one, and a 1-thread pool was no slower. Twice as many threads as cores
 * kept both cores busy (1.65-1.75 of 2) and cut the tiny step from 170-195 ms to 112-130 ms.
 * A value the user set is kept; GPU drivers ignore the variable.
 */
function cpuAdapterThreads(): number | undefined {
  try {
    const set = Deno.env.get("LP_NUM_THREADS");
    const n = cpuWorkerThreads(navigator.hardwareConcurrency, set);
    if (set === undefined && n) Deno.env.set("LP_NUM_THREADS", String(n));
    return n;
  } catch {
    return undefined; // no env permission: Mesa keeps its own default
  }
}

/**
 * The worker-thread count for a CPU adapter: the user's LP_NUM_THREADS when set (0: no workers,
 * every workgroup runs on Vulkan's queue thread; undefined when it is not a count: Mesa then
 * applies its own rule), else twice `cores`, at most 32.
 */
export function cpuWorkerThreads(cores: number, userValue?: string): number | undefined {
  if (userValue !== undefined) {
    const n = Number(userValue.trim());
    return userValue.trim() !== "" && Number.isInteger(n) && n >= 0 ? n : undefined;
  }
  return Math.min(32, 2 * Math.max(1, Math.floor(cores) || 1));
}

/** Options for {@linkcode openGpu}. */
export interface OpenGpuOptions {
  /** Prefer a high-performance adapter (default) or a low-power one. */
  powerPreference?: GPUPowerPreference;
  /** Enable shader-f16 when available (default true). */
  allowF16?: boolean;
  /** Print the adapter line to stderr (default false). */
  verbose?: boolean;
}

/**
 * Opens a WebGPU device with the adapter's largest buffer limits. Throws {@linkcode NoGpuError}
 * with an install hint when there is no adapter.
 */
export async function openGpu(opts: OpenGpuOptions = {}): Promise<Gpu> {
  const gpuApi = (globalThis.navigator as Navigator & { gpu?: GPU }).gpu;
  if (!gpuApi) throw new NoGpuError("navigator.gpu is undefined in this Deno build");
  const cpuThreads = cpuAdapterThreads();
  let adapter: GPUAdapter | null = null;
  try {
    adapter = await gpuApi.requestAdapter({ powerPreference: opts.powerPreference ?? "high-performance" });
  } catch (e) {
    throw new NoGpuError(`requestAdapter failed: ${(e as Error).message}`);
  }
  if (!adapter) throw new NoGpuError("requestAdapter returned null");
  const want: GPUFeatureName[] = [];
  const has = (f: string) => adapter!.features.has(f as GPUFeatureName);
  const features = {
    shaderF16: (opts.allowF16 ?? true) && has("shader-f16"),
    subgroups: has("subgroups"),
    timestampQuery: has("timestamp-query"),
  };
  if (features.shaderF16) want.push("shader-f16");
  if (features.subgroups) want.push("subgroups" as GPUFeatureName);
  if (features.timestampQuery) want.push("timestamp-query");
  const L = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxBufferSize: L.maxBufferSize,
    maxStorageBufferBindingSize: L.maxStorageBufferBindingSize,
    maxStorageBuffersPerShaderStage: L.maxStorageBuffersPerShaderStage,
    maxComputeWorkgroupStorageSize: L.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: L.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: L.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: L.maxComputeWorkgroupSizeY,
    maxUniformBuffersPerShaderStage: L.maxUniformBuffersPerShaderStage,
    // Alignment limits are minimums: asking for the adapter's (32 on llvmpipe, often 256 on
    // GPUs) lets uniform weight windows and parameters start closer together.
    minUniformBufferOffsetAlignment: L.minUniformBufferOffsetAlignment,
    minStorageBufferOffsetAlignment: L.minStorageBufferOffsetAlignment,
  };
  const device = await adapter.requestDevice({ requiredFeatures: want, requiredLimits });
  const info = adapter.info;
  const adapterName = [info.description, info.vendor && !/^\d+$/.test(info.vendor) ? info.vendor : ""]
    .filter(Boolean).join(" / ") || "unknown adapter";
  let backend = "default";
  try {
    backend = Deno.env.get("DENO_WEBGPU_BACKEND") ?? "default";
  } catch { /* no env permission: keep "default" */ }
  const gpu: Gpu = {
    device,
    adapterName,
    backend,
    isFallback: (info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter ??
      /llvmpipe|lavapipe|swiftshader|warp/i.test(adapterName),
    features,
    maxBindingBytes: device.limits.maxStorageBufferBindingSize,
    maxBufferBytes: device.limits.maxBufferSize,
    offsetAlignment: Math.max(device.limits.minStorageBufferOffsetAlignment, 4),
    errors: [],
  };
  if (gpu.isFallback && cpuThreads !== undefined) gpu.cpuThreads = cpuThreads;
  gpu.layerViews = await layerViewsWork(device);
  device.addEventListener("uncapturederror", (e) => {
    gpu.errors.push((e as GPUUncapturedErrorEvent).error.message);
    e.preventDefault();
  });
  device.lost.then((info) => {
    if (info.reason !== "destroyed") gpu.errors.push(`device lost: ${info.message}`);
  });
  if (opts.verbose) console.error(describeGpu(gpu));
  return gpu;
}

/**
 * Whether a kernel reading a 2-D view of layer 1 of an array texture sees layer 1: one small
 * kernel, run once per device.
 */
async function layerViewsWork(device: GPUDevice): Promise<boolean> {
  const tex = device.createTexture({
    size: [1, 1, 2],
    format: "rgba32float",
    usage: GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST,
  });
  const out = device.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: 16, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  try {
    for (const layer of [0, 1]) {
      device.queue.writeTexture(
        { texture: tex, origin: [0, 0, layer] },
        new Float32Array([layer + 1, 0, 0, 0]),
        { bytesPerRow: 16 },
        [1, 1, 1],
      );
    }
    const pipeline = device.createComputePipeline({
      layout: "auto",
      compute: {
        module: device.createShaderModule({
          code: `@group(0) @binding(0) var t: texture_2d<f32>;
@group(0) @binding(1) var<storage, read_write> o: vec4<f32>;
@compute @workgroup_size(1) fn main() { o = textureLoad(t, vec2u(0u, 0u), 0); }`,
        }),
        entryPoint: "main",
      },
    });
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(
      0,
      device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [
          {
            binding: 0,
            resource: tex.createView({ dimension: "2d", baseArrayLayer: 1, arrayLayerCount: 1 }),
          },
          { binding: 1, resource: { buffer: out } },
        ],
      }),
    );
    pass.dispatchWorkgroups(1);
    pass.end();
    enc.copyBufferToBuffer(out, 0, read, 0, 16);
    device.queue.submit([enc.finish()]);
    await read.mapAsync(GPUMapMode.READ);
    return new Float32Array(read.getMappedRange())[0] === 2;
  } catch {
    return false;
  } finally {
    tex.destroy();
    out.destroy();
    read.destroy();
  }
}

/** One line naming adapter, backend and features. */
export function describeGpu(gpu: Gpu): string {
  const f = Object.entries(gpu.features).filter(([, v]) => v).map(([k]) => k).join(", ") || "none";
  return `WebGPU adapter: ${gpu.adapterName}${
    gpu.isFallback ? " (CPU fallback)" : ""
  }; backend ${gpu.backend}; ` +
    `optional features: ${f}${
      gpu.cpuThreads === 0
        ? "; kernels on the queue thread (LP_NUM_THREADS=0)"
        : gpu.cpuThreads
        ? `; ${gpu.cpuThreads} CPU worker threads`
        : ""
    }` +
    (gpu.layerViews === false ? "; no texture layer views (packed operands stay in buffers)" : "");
}

/** A process-wide device, opened once (tests and scripts share it). */
export function sharedGpu(opts: OpenGpuOptions = {}): Promise<Gpu> {
  shared ??= openGpu(opts);
  return shared;
}
