/**
 * The bridge between WGSL text and recorded GPU work. A kernel is WGSL source specialised with
 * constants for one shape; pipelines are cached by source text, bind groups are made once at
 * build time, and a program is a flat list of dispatches that a step replays with almost no JS.
 * @module
 */
import { type Gpu, GpuError } from "./device.ts";

/** A contiguous byte range of a GPU buffer; every tensor lives in one. */
export interface Region {
  buffer: GPUBuffer;
  /** Byte offset; a multiple of the device's storage offset alignment. */
  offset: number;
  /** Byte size (a multiple of 4). */
  size: number;
}

/** WGSL source of one compute kernel. */
export interface KernelSource {
  /** Names the kernel in errors and profiles, e.g. "conv_fwd 3x3 s1". */
  label: string;
  code: string;
  /** Entry point (default "main"). */
  entry?: string;
}

/** One recorded kernel dispatch. */
export interface KernelDispatch {
  label: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  groups: [number, number, number];
}

/**
 * A kernel dispatch as {@linkcode Recorder} records it: its source and bindings, compiled and
 * bound on first use, so that a dispatch a program fuses with others (see fuse.ts) is never
 * compiled on its own.
 */
export class RecordedKernel implements KernelDispatch {
  readonly label: string;
  readonly src: KernelSource;
  readonly regions: readonly (Region | GPUTextureView)[];
  readonly groups: [number, number, number];
  readonly #kernels: KernelCache;
  readonly #owner: string;
  #pipeline: GPUComputePipeline | null = null;
  #bindGroup: GPUBindGroup | null = null;

  constructor(
    kernels: KernelCache,
    owner: string,
    label: string,
    src: KernelSource,
    regions: readonly (Region | GPUTextureView)[],
    groups: [number, number, number],
  ) {
    this.#kernels = kernels;
    this.#owner = owner;
    this.label = label;
    this.src = src;
    this.regions = regions;
    this.groups = groups;
  }

  /** The compiled pipeline (compiled now if it is not yet). */
  get pipeline(): GPUComputePipeline {
    return this.#pipeline ??= this.#kernels.pipeline(this.src, this.#owner);
  }

  /** The bind group of the regions (made now if it is not yet). */
  get bindGroup(): GPUBindGroup {
    return this.#bindGroup ??= this.#kernels.gpu.device.createBindGroup({
      label: this.label,
      layout: this.pipeline.getBindGroupLayout(0),
      entries: this.regions.map((r, i) => ({
        binding: i,
        resource: "buffer" in r ? { buffer: r.buffer, offset: r.offset, size: r.size } : r,
      })),
    });
  }
}

/**
 * One recorded buffer-to-texture copy. On a CPU adapter a copy is a memory copy (~4 GB/s on
 * llvmpipe), while a kernel's storage loads take a lane-by-lane path: a kernel that reads an
 * operand through a copy of it in a texture runs several times cheaper loads (see windows.ts).
 */
export interface TextureCopy {
  label: string;
  copy: {
    source: GPUTexelCopyBufferInfo;
    destination: GPUTexelCopyTextureInfo;
    size: [number, number, number];
  };
}

/**
 * One recorded buffer-to-buffer copy: on a CPU adapter a memory copy, where a kernel moving the
 * same values would load them lane by lane (concatenation and its backward, see tensor_ops.ts).
 */
export interface BufferCopy {
  label: string;
  copy: { from: GPUBuffer; fromOffset: number; to: GPUBuffer; toOffset: number; size: number };
}

/** A copy step of a program: into a texture or into a buffer. */
export type Copy = TextureCopy | BufferCopy;

/** One step of a recorded program: a kernel dispatch or a copy. */
export type Dispatch = KernelDispatch | Copy;

/** Encodes one recorded copy (outside any pass). */
export function encodeCopy(enc: GPUCommandEncoder, d: Copy): void {
  const c = d.copy;
  if ("destination" in c) enc.copyBufferToTexture(c.source, c.destination, c.size);
  else enc.copyBufferToBuffer(c.from, c.fromOffset, c.to, c.toOffset, c.size);
}

/** Workgroup counts: 1-3 numbers. */
export type Groups = readonly [number, number?, number?];

/** Compiles kernels once per source text and reports WGSL errors with the owner's name. */
export class KernelCache {
  readonly gpu: Gpu;
  #pipelines = new Map<string, GPUComputePipeline>();
  #pending: Promise<void>[] = [];

  constructor(gpu: Gpu) {
    this.gpu = gpu;
  }

  /** Number of distinct compiled pipelines. */
  get size(): number {
    return this.#pipelines.size;
  }

  /** The pipeline for `src`; `owner` (a layer name) is used in error messages. */
  pipeline(src: KernelSource, owner = "?"): GPUComputePipeline {
    const key = `${src.entry ?? "main"}\n${src.code}`;
    let p = this.#pipelines.get(key);
    if (p) return p;
    const device = this.gpu.device;
    device.pushErrorScope("validation");
    const module = device.createShaderModule({ label: src.label, code: src.code });
    p = device.createComputePipeline({
      label: `${owner}: ${src.label}`,
      layout: "auto",
      compute: { module, entryPoint: src.entry ?? "main" },
    });
    this.#pending.push(
      device.popErrorScope().then((err) => {
        if (err) {
          throw new GpuError(
            `WGSL kernel "${src.label}" of layer "${owner}" failed to compile: ${err.message}\n` +
              numbered(src.code),
          );
        }
      }),
    );
    this.#pipelines.set(key, p);
    return p;
  }

  /** Waits for all compilations so far and throws the first error, naming layer and kernel. */
  async check(): Promise<void> {
    const pending = this.#pending;
    this.#pending = [];
    await Promise.all(pending);
  }
}

function numbered(code: string): string {
  return code.split("\n").map((l, i) => `${String(i + 1).padStart(4)}| ${l}`).join("\n");
}

/** Records dispatches into a program; layers receive one at build time. */
export class Recorder {
  readonly kernels: KernelCache;
  readonly dispatches: Dispatch[] = [];
  /** Scratch textures the recorded kernels use, by size (see {@linkcode Recorder.scratchTexture}). */
  readonly textures: Map<string, GPUTexture> = new Map();
  /** Layer currently recording, used to label dispatches and errors. */
  owner = "?";

  /**
   * Compile and bind each kernel when the program first uses it instead of when it is recorded
   * (a net's programs, which fusion may rewrite first).
   */
  readonly lazy: boolean;

  constructor(kernels: KernelCache, opts: { lazy?: boolean } = {}) {
    this.kernels = kernels;
    this.lazy = opts.lazy ?? false;
  }

  /**
   * An rgba32float 2-D array texture of `width` x at least `height` x `layers`, writable from
   * kernels and readable with textureLoad: the shortest one already made for this width, layer
   * count and slot that is tall enough, else a new one. The program runs its dispatches in order,
   * so every user copies its data in just before reading it; operands read together take
   * different slots.
   */
  scratchTexture(width: number, height: number, layers: number, slot = 0): GPUTexture {
    let t: GPUTexture | undefined;
    for (const [k, u] of this.textures) {
      if (
        k.endsWith(`/${slot}`) && u.width === width && u.depthOrArrayLayers === layers && u.height >= height
      ) {
        if (!t || u.height < t.height) t = u;
      }
    }
    const key = `${width}x${height}x${layers}/${slot}`;
    if (!t) {
      t = this.kernels.gpu.device.createTexture({
        label: `scratch ${key}`,
        size: [width, height, layers],
        format: "rgba32float",
        usage: GPUTextureUsage.STORAGE_BINDING | GPUTextureUsage.TEXTURE_BINDING | GPUTextureUsage.COPY_DST,
      });
      this.textures.set(key, t);
    }
    return t;
  }

  /** Records one dispatch of `src` binding `regions` (buffer ranges or texture views) to @binding(0..n-1) of group 0. */
  dispatch(src: KernelSource, regions: readonly (Region | GPUTextureView)[], groups: Groups): void {
    const g: [number, number, number] = [groups[0], groups[1] ?? 1, groups[2] ?? 1];
    if (g.some((v) => !Number.isInteger(v) || v < 0 || v > 65535)) {
      throw new GpuError(`layer "${this.owner}" kernel "${src.label}": bad workgroup counts ${g.join("x")}`);
    }
    const d = new RecordedKernel(this.kernels, this.owner, `${this.owner}: ${src.label}`, src, regions, g);
    if (!this.lazy) void d.bindGroup;
    if (g[0] * g[1] * g[2] === 0) return;
    this.dispatches.push(d);
  }

  /**
   * Records a copy of `floats` floats of `src` into rows of `width` rgba32float texels of layer
   * `layer` of `texture` (row-major, the last row partial): a kernel then reads float i as
   * component i % 4 of texel (i / 4 % width, i / 4 / width). Whole rows go in one copy, the rest
   * in a second.
   */
  copyToTexture(
    label: string,
    src: Region,
    texture: GPUTexture,
    width: number,
    floats: number,
    layer = 0,
  ): void {
    if (width % 16 !== 0 || src.offset % 16 !== 0 || floats % 4 !== 0 || floats * 4 > src.size) {
      throw new GpuError(
        `layer "${this.owner}" copy "${label}": ${floats} floats at byte ${src.offset} into rows of ${width} ` +
          `texels (need a multiple of 16 texels, a 16-byte aligned source and whole texels)`,
      );
    }
    const texels = floats / 4, rows = Math.floor(texels / width), rest = texels - rows * width;
    if (
      texture.width < width || texture.height < rows + (rest > 0 ? 1 : 0) ||
      layer >= texture.depthOrArrayLayers
    ) {
      throw new GpuError(
        `layer "${this.owner}" copy "${label}": texture ${texture.width}x${texture.height}x${texture.depthOrArrayLayers} ` +
          `too small for ${rows + (rest > 0 ? 1 : 0)} rows of ${width} texels in layer ${layer}`,
      );
    }
    const push = (offset: number, origin: number, size: [number, number, number]) =>
      this.dispatches.push({
        label: `${this.owner}: ${label}`,
        copy: {
          source: { buffer: src.buffer, offset, bytesPerRow: width * 16, rowsPerImage: size[1] },
          destination: { texture, origin: [0, origin, layer] },
          size,
        },
      });
    if (rows > 0) push(src.offset, 0, [width, rows, 1]);
    if (rest > 0) push(src.offset + rows * width * 16, rows, [rest, 1, 1]);
  }

  /**
   * Records a copy of `floats` floats from float `fromFloat` of `src` to float `toFloat` of `dst`,
   * two regions of different buffers (WebGPU copies between distinct buffers only).
   */
  copyBuffer(
    label: string,
    src: Region,
    fromFloat: number,
    dst: Region,
    toFloat: number,
    floats: number,
  ): void {
    const size = floats * 4;
    if (
      src.buffer === dst.buffer || fromFloat < 0 || toFloat < 0 || (fromFloat + floats) * 4 > src.size ||
      (toFloat + floats) * 4 > dst.size
    ) {
      throw new GpuError(
        `layer "${this.owner}" copy "${label}": ${floats} floats from float ${fromFloat} of a ${src.size}-byte region ` +
          `to float ${toFloat} of a ${dst.size}-byte region (need both inside their regions, in different buffers)`,
      );
    }
    if (size === 0) return;
    this.dispatches.push({
      label: `${this.owner}: ${label}`,
      copy: {
        from: src.buffer,
        fromOffset: src.offset + fromFloat * 4,
        to: dst.buffer,
        toOffset: dst.offset + toFloat * 4,
        size,
      },
    });
  }
}

/**
 * Replays a recorded program into a command encoder: runs of dispatches in one compute pass,
 * copies between passes. The per-step hot loop.
 */
export function encodeProgram(enc: GPUCommandEncoder, list: readonly Dispatch[]): void {
  let i = 0;
  while (i < list.length) {
    const d = list[i];
    if ("copy" in d) {
      encodeCopy(enc, d);
      i++;
      continue;
    }
    let j = i;
    while (j < list.length && !("copy" in list[j])) j++;
    const pass = enc.beginComputePass();
    encodeRange(pass, list, i, j);
    pass.end();
    i = j;
  }
}

/** Replays recorded dispatches (no copies: see {@linkcode encodeProgram}) into an open compute pass. */
export function encodeDispatches(pass: GPUComputePassEncoder, list: readonly Dispatch[]): void {
  encodeRange(pass, list, 0, list.length);
}

function encodeRange(pass: GPUComputePassEncoder, list: readonly Dispatch[], from: number, to: number): void {
  let last: GPUComputePipeline | null = null;
  for (let i = from; i < to; i++) {
    const d = list[i];
    if ("copy" in d) {
      throw new GpuError(`"${d.label}" is a copy: replay programs with copies through encodeProgram`);
    }
    if (d.pipeline !== last) {
      pass.setPipeline(d.pipeline);
      last = d.pipeline;
    }
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(d.groups[0], d.groups[1], d.groups[2]);
  }
}

/** Default workgroup size of 1-D kernels. */
export const WG = 256;

/**
 * Workgroup counts covering `n` invocations of a 1-D kernel of size `wg`, folded into 2-D when
 * more than 65535 groups are needed. Pair with {@linkcode flatIndex} in the WGSL.
 */
export function grid1d(n: number, wg = WG): [number, number] {
  const groups = Math.max(1, Math.ceil(n / wg));
  if (groups <= 65535) return [groups, 1];
  const y = Math.ceil(groups / 65535);
  return [Math.ceil(groups / y), y];
}

/** WGSL expression for the flat invocation index of a kernel launched with {@linkcode grid1d}. */
export function flatIndex(wg = WG): string {
  return `(gid.x + gid.y * nwg.x * ${wg}u)`;
}

/** Formats a number as a WGSL f32 literal (always with a decimal point or exponent). */
export function f32(x: number): string {
  if (!Number.isFinite(x)) throw new RangeError(`f32 literal must be finite, got ${x}`);
  const s = String(Math.fround(x));
  return /[.eE]/.test(s) ? s : `${s}.0`;
}

/** Formats a non-negative integer as a WGSL u32 literal. */
export function u32(x: number): string {
  if (!Number.isInteger(x) || x < 0 || x > 0xffffffff) throw new RangeError(`u32 literal out of range: ${x}`);
  return `${x}u`;
}

/** One storage binding of a generated kernel. */
export interface Binding {
  name: string;
  /** "read" for inputs, "read_write" for outputs. */
  access: "read" | "read_write";
  /** Element type, default "f32". */
  type?: string;
}

/** WGSL declarations for `bindings` in order, as @group(0) @binding(i). */
export function declare(bindings: readonly Binding[]): string {
  return bindings.map((b, i) =>
    `@group(0) @binding(${i}) var<storage, ${b.access}> ${b.name}: array<${b.type ?? "f32"}>;`
  )
    .join("\n");
}

/**
 * A 1-D kernel over `n` elements: `body` runs with `i` (u32) in range. The common skeleton of
 * element-wise forward and backward kernels; `wg` invocations per workgroup (default WG; a
 * kernel whose invocations each do a lot of work uses fewer, so the workgroups spread).
 */
export function elementwise(
  label: string,
  opts: { bindings: readonly Binding[]; n: number; body: string; prelude?: string; wg?: number },
): { src: KernelSource; groups: Groups } {
  const wg = opts.wg ?? WG;
  const code = `${declare(opts.bindings)}
${opts.prelude ?? ""}
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) gid: vec3u, @builtin(num_workgroups) nwg: vec3u) {
  let i = ${flatIndex(wg)};
  if (i >= ${u32(opts.n)}) { return; }
${opts.body}
}`;
  return { src: { label, code }, groups: grid1d(opts.n, wg) };
}
