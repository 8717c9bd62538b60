/**
 * Shader-cache prewarming for CPU adapters.
 *
 * llvmpipe compiles a kernel to machine code when it first runs, on its queue's one thread, and
 * keeps the result in Mesa's on-disk shader cache. A net's first step on a machine whose cache
 * does not hold its kernels therefore compiles all of them one after another on one core. A
 * second device, on a worker thread, has its own queue thread: run the same kernels there in the
 * opposite order and the two devices compile from both ends until they meet, each finding in the
 * cache what the other compiled.
 *
 * Once a worker has run every kernel of a set, a marker file named by a hash of the adapter and
 * the kernels' sources (under `$XDG_CACHE_HOME/volpose/prewarmed`, else `~/.cache/...`) records
 * that the shader cache holds them, and later builds of the same net start no worker.
 * @module
 */
import { join } from "node:path";
import type { Dispatch, Region } from "./kernel.ts";
import { RecordedKernel } from "./kernel.ts";

/** One binding of a kernel to prewarm: a buffer range's size, or a texture's size in texels. */
export type WarmBinding = { kind: "buffer"; size: number } | {
  kind: "texture";
  width: number;
  height: number;
};

/** What the prewarm worker needs to compile and run one kernel. */
export interface WarmKernel {
  code: string;
  entry: string;
  bindings: WarmBinding[];
}

/** Texel sizes of the texture views kernels bind (views do not carry them). */
export const viewSizes: WeakMap<GPUTextureView, [number, number]> = new WeakMap();

/** The distinct kernels of `programs`, in first-use order. */
export function warmKernels(programs: readonly (readonly Dispatch[])[]): WarmKernel[] {
  const seen = new Set<string>();
  const out: WarmKernel[] = [];
  for (const list of programs) {
    for (const d of list) {
      if (!(d instanceof RecordedKernel)) continue;
      const entry = d.src.entry ?? "main";
      const key = `${entry}\n${d.src.code}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const bindings: WarmBinding[] = [];
      let ok = true;
      for (const r of d.regions) {
        if ("buffer" in r) bindings.push({ kind: "buffer", size: (r as Region).size });
        else {
          const s = viewSizes.get(r);
          if (!s) ok = false;
          else bindings.push({ kind: "texture", width: s[0], height: s[1] });
        }
      }
      if (ok) out.push({ code: d.src.code, entry, bindings });
    }
  }
  return out;
}

/** A running prewarm. */
export interface Prewarm {
  /** Resolves when the worker has run every kernel (or failed: then with the error). */
  done: Promise<{ done: number; ms: number; error?: string }>;
  /** Stops the worker now. */
  stop(): void;
}

/** The marker file of a kernel set on an adapter, or null where no cache folder is known. */
export function prewarmMarker(adapter: string, kernels: readonly WarmKernel[]): string | null {
  let dir: string | undefined, mesa = "";
  try {
    dir = Deno.env.get("XDG_CACHE_HOME") ?? (Deno.env.get("HOME") && join(Deno.env.get("HOME")!, ".cache"));
    // Another shader-cache folder is another cache.
    mesa = `${Deno.env.get("MESA_SHADER_CACHE_DIR") ?? ""}|${
      Deno.env.get("MESA_SHADER_CACHE_DISABLE") ?? ""
    }`;
  } catch { /* no env permission */ }
  if (!dir) return null;
  // FNV-1a, 2 x 32 bits, over the adapter and every entry point and source in order.
  let a = 0x811c9dc5, b = 0x01000193 ^ 0x5bd1e995;
  const feed = (text: string) => {
    for (let i = 0; i < text.length; i++) {
      const c = text.charCodeAt(i);
      a = Math.imul(a ^ c, 0x01000193);
      b = Math.imul(b ^ c, 0x01000193) ^ (a >>> 15);
    }
  };
  feed(`${adapter}|${mesa}`);
  for (const k of kernels) feed(`\n${k.entry}\n${k.code}`);
  const hex = (x: number) => (x >>> 0).toString(16).padStart(8, "0");
  return join(dir, "volpose", "prewarmed", `${hex(a)}${hex(b)}-${kernels.length}`);
}

/**
 * Starts a prewarm of `kernels` (run in the order given) unless their marker says an earlier one
 * completed; writes the marker when this one does. Null when none was started.
 */
export function prewarmOnce(adapter: string, kernels: WarmKernel[]): Prewarm | null {
  if (!kernels.length) return null;
  const marker = prewarmMarker(adapter, kernels);
  try {
    if (marker && Deno.statSync(marker).isFile) return null;
  } catch { /* not yet warmed (or unreadable): warm */ }
  const p = startPrewarm(kernels);
  p.done.then((r) => {
    if (r.error || r.done < kernels.length || !marker) return;
    try {
      Deno.mkdirSync(join(marker, ".."), { recursive: true });
      Deno.writeTextFileSync(marker, `${r.done} kernels in ${(r.ms / 1000).toFixed(1)} s\n`);
    } catch { /* a read-only cache folder: warm again next time */ }
  });
  return p;
}

/** Starts a worker that runs `kernels` once each, in the order given, on its own device. */
export function startPrewarm(kernels: WarmKernel[], groups = 1): Prewarm {
  const worker = new Worker(new URL("./prewarm_worker.ts", import.meta.url), { type: "module" });
  let stopped = false;
  const done = new Promise<{ done: number; ms: number; error?: string }>((resolve) => {
    worker.onmessage = (e) => {
      stopped = true;
      worker.terminate();
      resolve(e.data);
    };
    worker.onerror = (e) => {
      e.preventDefault();
      stopped = true;
      worker.terminate();
      resolve({ done: 0, ms: 0, error: e.message });
    };
  });
  worker.postMessage({ kernels, groups });
  return {
    done,
    stop() {
      if (!stopped) worker.terminate();
      stopped = true;
    },
  };
}
