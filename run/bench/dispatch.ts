/**
 * The fixed cost of one dispatch: a trivial kernel dispatched back to back in one compute pass,
 * timed per dispatch. On a GPU this is the launch latency the command processor hides behind
 * other work; on a CPU adapter (llvmpipe/lavapipe) it is the hand-over of each dispatch from the
 * queue thread to the rasterizer's worker threads and back, which the whole step pays once per
 * dispatch: multiplied by a step's dispatch count it bounds what fusing kernels can save.
 *
 * Mesa's llvmpipe reads LP_NUM_THREADS when the adapter is created: with 0 it runs every
 * workgroup on the queue thread, with no hand-over but on one core. The figure reports the
 * setting it ran under.
 * @module
 */
import type { Gpu } from "../../kernels/device.ts";
import { median } from "./stats.ts";

/** Result of {@linkcode benchDispatch}. */
export interface DispatchTimings {
  /** Microseconds per dispatch of one workgroup of 8 invocations (median over runs). */
  oneGroupUs: number;
  /** Microseconds per dispatch of 64 workgroups of 64 invocations. */
  manyGroupsUs: number;
  /** Dispatches per timed run. */
  perRun: number;
  runs: number;
  /** LP_NUM_THREADS as the process saw it (null: unset, llvmpipe then uses one thread per core). */
  lpNumThreads: string | null;
}

const KERNEL = (wg: number) =>
  `@group(0) @binding(0) var<storage, read_write> b: array<f32>;
@compute @workgroup_size(${wg})
fn main(@builtin(global_invocation_id) g: vec3u) {
  b[g.x] = b[g.x] + 1.0;
}`;

/**
 * Times `perRun` dispatches of a one-line kernel in one pass, minus a run of `perRun / 10`, so the
 * submit's round trip and Deno's queue poll cancel; the median over `runs`.
 */
export async function benchDispatch(
  gpu: Gpu,
  opts: { runs?: number; perRun?: number } = {},
): Promise<DispatchTimings> {
  const runs = opts.runs ?? 5, perRun = opts.perRun ?? 1000;
  if (!(Number.isInteger(runs) && runs >= 1 && Number.isInteger(perRun) && perRun >= 10)) {
    throw new RangeError(`benchDispatch: need runs >= 1 and perRun >= 10, got ${runs} and ${perRun}`);
  }
  const device = gpu.device;
  const buffer = device.createBuffer({ size: 64 * 64 * 4, usage: GPUBufferUsage.STORAGE });
  try {
    const time = async (wg: number, groups: number) => {
      const pipeline = device.createComputePipeline({
        layout: "auto",
        compute: { module: device.createShaderModule({ code: KERNEL(wg) }), entryPoint: "main" },
      });
      const bindGroup = device.createBindGroup({
        layout: pipeline.getBindGroupLayout(0),
        entries: [{ binding: 0, resource: { buffer } }],
      });
      const run = async (n: number) => {
        const enc = device.createCommandEncoder();
        const pass = enc.beginComputePass();
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bindGroup);
        for (let i = 0; i < n; i++) pass.dispatchWorkgroups(groups);
        pass.end();
        const cb = enc.finish();
        const t = performance.now();
        device.queue.submit([cb]);
        await device.queue.onSubmittedWorkDone();
        return performance.now() - t;
      };
      const few = Math.max(1, Math.round(perRun / 10));
      await run(few); // compile, first touch
      const us: number[] = [];
      for (let r = 0; r < runs; r++) {
        const long = await run(perRun);
        const short = await run(few);
        us.push(Math.max(0, (long - short) / (perRun - few)) * 1000);
      }
      return +median(us).toFixed(2);
    };
    return {
      oneGroupUs: await time(8, 1),
      manyGroupsUs: await time(64, 64),
      perRun,
      runs,
      lpNumThreads: Deno.env.get("LP_NUM_THREADS") ?? null,
    };
  } finally {
    buffer.destroy();
  }
}
