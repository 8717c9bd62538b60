/**
 * Per-kernel GPU time of a recorded program. With timestamp queries every dispatch runs in its
 * own compute pass between two timestamps (the whole program in one submit per 2048
 * dispatches); without them each dispatch is submitted alone and awaited, so its time then
 * includes a submit's round trip. Times are summed per kernel label.
 *
 * On a CPU adapter timestamps do not track the step (each dispatch's pass carries a launch
 * cost, and once a program packs textures its kernels under-report), so {@linkcode replayFamilies}
 * times each kernel family by wall clock instead: the family's dispatches replayed back to back.
 * @module
 */
import type { Gpu } from "../kernels/device.ts";
import { type Dispatch, encodeCopy, encodeDispatches, encodeProgram } from "../kernels/kernel.ts";

/** GPU time of one kernel label, summed over its dispatches and the repeats. */
export interface KernelTime {
  /** "layer: kernel label". */
  label: string;
  ms: number;
  /** Dispatches with this label (times repeats). */
  count: number;
}

/** Query pairs per query set. */
const CHUNK = 2048;

/** Times every dispatch of `list` `repeats` times; slowest label first. */
export async function profileDispatches(
  gpu: Gpu,
  list: readonly Dispatch[],
  repeats = 1,
): Promise<KernelTime[]> {
  const device = gpu.device;
  const by = new Map<string, { ms: number; count: number }>();
  const add = (label: string, ms: number) => {
    const e = by.get(label) ?? { ms: 0, count: 0 };
    e.ms += ms;
    e.count++;
    by.set(label, e);
  };
  for (let r = 0; r < repeats; r++) {
    if (!gpu.features.timestampQuery) {
      for (const d of list) {
        const t = performance.now();
        const enc = device.createCommandEncoder();
        encodeProgram(enc, [d]);
        device.queue.submit([enc.finish()]);
        await device.queue.onSubmittedWorkDone();
        add(d.label, performance.now() - t);
      }
      continue;
    }
    for (let c0 = 0; c0 < list.length; c0 += CHUNK) {
      const part = list.slice(c0, c0 + CHUNK);
      const qs = device.createQuerySet({ type: "timestamp", count: 2 * part.length });
      const resolve = device.createBuffer({
        size: 16 * part.length,
        usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
      });
      const read = device.createBuffer({
        size: 16 * part.length,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      const enc = device.createCommandEncoder();
      part.forEach((d, k) => {
        if ("copy" in d) {
          // A copy has no pass to time: it runs (the kernels after it read its texture) and its
          // time lands in no label.
          encodeCopy(enc, d);
          return;
        }
        const pass = enc.beginComputePass({
          timestampWrites: { querySet: qs, beginningOfPassWriteIndex: 2 * k, endOfPassWriteIndex: 2 * k + 1 },
        });
        encodeDispatches(pass, [d]);
        pass.end();
      });
      enc.resolveQuerySet(qs, 0, 2 * part.length, resolve, 0);
      enc.copyBufferToBuffer(resolve, 0, read, 0, 16 * part.length);
      device.queue.submit([enc.finish()]);
      await read.mapAsync(GPUMapMode.READ);
      const ts = new BigUint64Array(read.getMappedRange().slice(0));
      read.unmap();
      part.forEach((d, k) => {
        if (!("copy" in d)) add(d.label, Number(ts[2 * k + 1] - ts[2 * k]) / 1e6);
      });
      qs.destroy();
      resolve.destroy();
      read.destroy();
    }
  }
  return [...by.entries()].map(([label, v]) => ({ label, ...v })).sort((a, b) => b.ms - a.ms);
}

/**
 * The kernel family of a profile label: the first word of the kernel name after the layer,
 * e.g. "hg1_up: dw_dgrad 8x64x16x16 ..." -> "dw_dgrad".
 */
export function kernelFamily(label: string): string {
  return label.split(": ").slice(1).join(": ").split(" ")[0];
}

/** Milliseconds and dispatch counts per kernel family, largest first. */
export function byFamily(times: readonly KernelTime[]): { family: string; ms: number; count: number }[] {
  const by = new Map<string, { ms: number; count: number }>();
  for (const t of times) {
    const f = kernelFamily(t.label);
    const e = by.get(f) ?? { ms: 0, count: 0 };
    e.ms += t.ms;
    e.count += t.count;
    by.set(f, e);
  }
  return [...by.entries()].map(([family, v]) => ({ family, ...v })).sort((a, b) => b.ms - a.ms);
}

/** Wall time of one kernel family per step, from {@linkcode replayFamilies}. */
export interface FamilyTime {
  family: string;
  ms: number;
  /** Dispatches (and copies) of the family in one step. */
  count: number;
}

/**
 * Per-family time of a program by replay: each family's entries (dispatches and copies, in
 * program order) are submitted `lo` and `hi` times over, and the family's time per step is the
 * difference of the two wall times over `hi - lo`, the median of `trials` pairs. The difference
 * cancels the submit's round trip (~11 ms on llvmpipe); what remains includes each dispatch's
 * hand-over to the adapter's threads, a real cost of the step that timestamps miss or
 * misplace. On llvmpipe the families of the tiny and small steps summed to 90-104% of the
 * step's wall time. The whole program runs about `trials * (lo + hi)` times, so this suits programs of a few
 * seconds; values of the replayed kernels' outputs are left as the replays leave them.
 */
export async function replayFamilies(
  gpu: Gpu,
  list: readonly Dispatch[],
  opts: { lo?: number; hi?: number; trials?: number } = {},
): Promise<FamilyTime[]> {
  const lo = opts.lo ?? 1, hi = opts.hi ?? 4, trials = opts.trials ?? 3;
  if (!(hi > lo && lo >= 1 && trials >= 1)) {
    throw new RangeError(`replayFamilies: need hi > lo >= 1, trials >= 1`);
  }
  const groups = new Map<string, Dispatch[]>();
  for (const d of list) {
    const f = kernelFamily(d.label);
    const g = groups.get(f);
    if (g) g.push(d);
    else groups.set(f, [d]);
  }
  const device = gpu.device;
  const run = async (entries: readonly Dispatch[], reps: number) => {
    const enc = device.createCommandEncoder();
    for (let r = 0; r < reps; r++) encodeProgram(enc, entries);
    const cb = enc.finish();
    const t = performance.now();
    device.queue.submit([cb]);
    await device.queue.onSubmittedWorkDone();
    return performance.now() - t;
  };
  const out: FamilyTime[] = [];
  for (const [family, entries] of groups) {
    await run(entries, 1); // first touch
    const d: number[] = [];
    for (let t = 0; t < trials; t++) {
      const a = await run(entries, lo);
      const b = await run(entries, hi);
      d.push((b - a) / (hi - lo));
    }
    d.sort((x, y) => x - y);
    out.push({ family, ms: Math.max(0, d[d.length >> 1]), count: entries.length });
  }
  return out.sort((a, b) => b.ms - a.ms);
}
