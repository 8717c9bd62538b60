/**
 * Co-dispatch: independent kernels of a recorded program run as one dispatch.
 *
 * On a CPU adapter every dispatch hands its workgroups to the driver's worker threads and waits
 * for them (35-90 us on llvmpipe, whatever the kernel does): the tiny@32 training step's ~470
 * dispatches spend about a fifth of the step there. Many neighbouring dispatches do not depend on
 * each other (a convolution's input and weight gradients, the solver's updates of different
 * parameters), so {@linkcode fuseProgram} moves each kernel dispatch up to the nearest earlier one
 * it may run beside, and {@linkcode fuseSources} writes one kernel that runs both: the fused grid
 * is the parts' workgroups one after another, and each workgroup calls the part its index falls in
 * with the built-in values that part's own dispatch would have given it.
 *
 * Only kernels without workgroup memory or barriers take part (their workgroups are independent,
 * so a part's workgroups may be regrouped to the fused workgroup size), with 1-D workgroups of a
 * power-of-two size. Results are bit-identical: every invocation runs the same code on the same
 * values. The planner fuses only kernels of one workgroup size (regrouping a 256-lane kernel into
 * 8-lane workgroups made the whole tiny@32 step 1.4x slower) and never one kernel twice in one
 * dispatch (the driver compiles every copy: with duplicates allowed, the first step's shader
 * compilation took three times as long).
 * @module
 */
import type { Copy, Dispatch, Region } from "./kernel.ts";

/** What fusion needs to know of a recorded kernel dispatch. */
export interface FusablePart {
  label: string;
  /** WGSL source (entry point `main`). */
  code: string;
  /** Buffer ranges or texture views bound to @binding(0..n-1). */
  regions: readonly (Region | GPUTextureView)[];
  groups: readonly [number, number, number];
}

/** How a kernel uses one binding. */
type BindingKind = "uniform" | "storage-read" | "storage-rw" | "texture";

/** The parts of a kernel's WGSL fusion rewrites. */
interface ParsedKernel {
  /** Workgroup size (x only). */
  size: number;
  kinds: BindingKind[];
  /** Names declared at module scope (bindings, functions, constants). */
  names: string[];
  /** The entry point's parameters: built-in name and parameter name, in order. */
  params: { builtin: string; name: string; type: string }[];
}

const parsed = new Map<string, ParsedKernel | null>();

/** Parses a kernel for fusion; null when it cannot take part (barriers, workgroup memory, 2-D workgroups, ...). */
export function parseKernel(code: string): ParsedKernel | null {
  const hit = parsed.get(code);
  if (hit !== undefined) return hit;
  const p = parseUncached(code);
  parsed.set(code, p);
  return p;
}

function parseUncached(code: string): ParsedKernel | null {
  if (
    /workgroupBarrier|storageBarrier|textureBarrier|var<workgroup>|var<private>|^\s*(struct|override|enable|requires|diagnostic)\b/m
      .test(code)
  ) {
    return null;
  }
  const sizes = [...code.matchAll(/@workgroup_size\(\s*(\d+)\s*\)/g)];
  const entries = code.match(/@compute/g)?.length ?? 0;
  if (sizes.length !== 1 || entries !== 1) return null;
  const size = Number(sizes[0][1]);
  if (!(size >= 1 && (size & (size - 1)) === 0)) return null;
  const kinds: BindingKind[] = [];
  const names: string[] = [];
  for (const m of code.matchAll(/^@group\(0\) @binding\((\d+)\) var(<[^>]*>)? (\w+)\s*:\s*([^;]+);/gm)) {
    const i = Number(m[1]), space = (m[2] ?? "").replace(/\s/g, ""), type = m[4];
    let kind: BindingKind;
    if (space === "<uniform>") kind = "uniform";
    else if (space === "<storage,read>" || space === "<storage>") kind = "storage-read";
    else if (space === "<storage,read_write>") kind = "storage-rw";
    else if (space === "" && /^texture_(2d|2d_array|3d|1d)</.test(type)) kind = "texture";
    else return null;
    if (kinds[i] !== undefined) return null;
    kinds[i] = kind;
    names.push(m[3]);
  }
  if (kinds.some((k) => k === undefined)) return null;
  const bindingLines = code.match(/^@group\(/gm)?.length ?? 0;
  if (bindingLines !== kinds.length) return null;
  for (const m of code.matchAll(/^(?:fn|const|alias) (\w+)/gm)) names.push(m[1]);
  // Every other line at column 0 must be an attribute, a closing brace, a comment or blank.
  for (const line of code.split("\n")) {
    if (/^(\s|$|}|\/\/|@group\(|@compute|fn |const |alias )/.test(line)) continue;
    return null;
  }
  const sig = paramList(code, "main");
  if (!sig) return null;
  const params: ParsedKernel["params"] = [];
  for (const raw of code.slice(sig[0], sig[1]).split(",").map((s) => s.trim()).filter(Boolean)) {
    const m = raw.match(/^@builtin\((\w+)\)\s+(\w+)\s*:\s*([\w<>]+)$/);
    if (!m) return null;
    params.push({ builtin: m[1], name: m[2], type: m[3] });
  }
  return { size, kinds, names, params };
}

/** Where the parameter list of module-scope function `name` lies in `code`: [start, end) inside its parentheses. */
function paramList(code: string, name: string): [number, number] | null {
  const m = new RegExp(`^fn ${name}\\(`, "m").exec(code);
  if (!m) return null;
  const start = m.index + m[0].length;
  let depth = 1;
  for (let i = start; i < code.length; i++) {
    if (code[i] === "(") depth++;
    else if (code[i] === ")" && --depth === 0) return [start, i];
  }
  return null;
}

/** The WGSL of each built-in value a part's entry point may ask for, in the fused kernel's terms. */
const BUILTIN_VALUE: Record<string, string> = {
  global_invocation_id: "gid",
  workgroup_id: "wid",
  local_invocation_id: "lid",
  local_invocation_index: "pl",
  num_workgroups: "nwg",
};

/** A fused kernel: its source, its bindings in order and its workgroup counts. */
export interface FusedKernel {
  code: string;
  regions: (Region | GPUTextureView)[];
  groups: [number, number, number];
}

/**
 * One kernel running `parts` side by side: part k's workgroups take a contiguous range of the
 * fused grid. All parts must pass {@linkcode parseKernel}. The fused workgroup size is the
 * smallest part's: larger parts' workgroups span several fused workgroups, and a smaller part's
 * workgroups share one (its lanes beyond its grid do nothing).
 */
export function fuseSources(parts: readonly FusablePart[]): FusedKernel {
  const ps = parts.map((p) => {
    const k = parseKernel(p.code);
    if (!k) throw new Error(`fuseSources: kernel "${p.label}" cannot be fused`);
    return k;
  });
  const S = Math.min(...ps.map((p) => p.size));
  let code = "";
  let binding = 0, start = 0;
  const blocks: string[] = [];
  const regions: (Region | GPUTextureView)[] = [];
  parts.forEach((part, k) => {
    const p = ps[k];
    const prefix = `p${k}_`;
    let src = part.code;
    for (const name of p.names) {
      src = src.replace(new RegExp(`(?<![\\w.])${name}(?!\\w)`, "g"), prefix + name);
    }
    src = src.replace(
      /^@group\(0\) @binding\((\d+)\)/gm,
      (_, i) => `@group(0) @binding(${Number(i) + binding})`,
    );
    src = src.replace(/^@compute @workgroup_size\(\s*\d+\s*\)\s*\n/m, "");
    const sig = paramList(src, `${prefix}main`)!;
    src = src.slice(0, sig[0]) + p.params.map((q) => `${q.name}: ${q.type}`).join(", ") + src.slice(sig[1]);
    code += `// part ${k}: ${part.label}\n${src.trimEnd()}\n\n`;
    binding += p.kinds.length;
    regions.push(...part.regions);
    const [X, Y, Z] = part.groups;
    const n = X * Y * Z;
    const args = p.params.map((q) => {
      const v = BUILTIN_VALUE[q.builtin];
      if (!v) throw new Error(`fuseSources: kernel "${part.label}" reads built-in ${q.builtin}`);
      return v;
    });
    const call = `${prefix}main(${args.join(", ")});`;
    const tail = `let wid = vec3u(pw % ${X}u, (pw / ${X}u) % ${Y}u, pw / ${X * Y}u);
    let lid = vec3u(pl, 0u, 0u);
    let gid = wid * vec3u(${p.size}u, 1u, 1u) + lid;
    let nwg = vec3u(${X}u, ${Y}u, ${Z}u);
    ${call}`;
    let count: number, body: string;
    if (p.size >= S) {
      const r = p.size / S;
      count = n * r;
      body = `let q = g - ${start}u;
    let pw = q / ${r}u;
    let pl = (q % ${r}u) * ${S}u + fl;
    ${tail}`;
    } else {
      const r = S / p.size;
      count = Math.ceil(n / r);
      body = `let pw = (g - ${start}u) * ${r}u + fl / ${p.size}u;
    let pl = fl % ${p.size}u;
    if (pw < ${n}u) {
    ${tail.replaceAll("\n    ", "\n      ")}
    }`;
    }
    start += count;
    blocks.push(`if (g < ${start}u) {\n    ${body}\n  }`);
  });
  const total = start;
  const gx = Math.min(total, 65535), gy = Math.ceil(total / gx);
  code += `@compute @workgroup_size(${S})
fn main(@builtin(workgroup_id) fw: vec3u, @builtin(num_workgroups) fn_: vec3u, @builtin(local_invocation_index) fl: u32) {
  let g = fw.x + fw.y * fn_.x;
  ${blocks.join(" else ")}
}
`;
  return { code, regions, groups: [gx, gy, 1] };
}

/** One resource access of a program step: a byte range of a buffer, or any texture. */
interface Access {
  res: GPUBuffer | "textures";
  lo: number;
  hi: number;
  write: boolean;
  /** How the buffer is bound ("copy" for copies): one dispatch may not mix writable and read-only bindings of a buffer. */
  kind: BindingKind | "copy";
}

function copyAccesses(d: Copy): Access[] {
  const c = d.copy;
  if ("destination" in c) {
    const src = c.source;
    const bytes = (src.bytesPerRow ?? 0) * Math.max(1, c.size[1]);
    return [
      { res: src.buffer, lo: src.offset ?? 0, hi: (src.offset ?? 0) + bytes, write: false, kind: "copy" },
      { res: "textures", lo: 0, hi: 1, write: true, kind: "copy" },
    ];
  }
  return [
    { res: c.from, lo: c.fromOffset, hi: c.fromOffset + c.size, write: false, kind: "copy" },
    { res: c.to, lo: c.toOffset, hi: c.toOffset + c.size, write: true, kind: "copy" },
  ];
}

function kernelAccesses(p: FusablePart, k: ParsedKernel): Access[] {
  return p.regions.map((r, i) => {
    const kind = k.kinds[i];
    if (!("buffer" in r)) return { res: "textures" as const, lo: 0, hi: 1, write: false, kind };
    return { res: r.buffer, lo: r.offset, hi: r.offset + r.size, write: kind === "storage-rw", kind };
  });
}

/** Whether two steps must keep their order: a shared range that one of them writes. */
function dependent(a: readonly Access[], b: readonly Access[]): boolean {
  for (const x of a) {
    for (const y of b) {
      if (x.res === y.res && (x.write || y.write) && x.lo < y.hi && y.lo < x.hi) return true;
    }
  }
  return false;
}

/** WebGPU's usage rule within one dispatch: a buffer is either only read or only bound as writable storage. */
function usageClash(a: readonly Access[], b: readonly Access[]): boolean {
  for (const x of a) {
    for (const y of b) {
      if (
        x.res === y.res && x.res !== "textures" && (x.kind === "storage-rw") !== (y.kind === "storage-rw")
      ) {
        return true;
      }
    }
  }
  return false;
}

/** Device limits fusion respects. */
export interface FuseLimits {
  maxUniformBuffersPerShaderStage: number;
  maxStorageBuffersPerShaderStage: number;
  maxSampledTexturesPerShaderStage: number;
  /** Most kernels in one dispatch. */
  maxParts: number;
  /** How many program steps back a dispatch may move. */
  lookback: number;
  /** Most WGSL bytes of one fused kernel (its parts' sources together). */
  maxCodeBytes: number;
}

interface Group {
  parts: FusablePart[];
  original: Dispatch;
  access: Access[];
  size: number;
  counts: { uniform: number; storage: number; texture: number };
  codeBytes: number;
}

function counts(k: ParsedKernel) {
  return {
    uniform: k.kinds.filter((x) => x === "uniform").length,
    storage: k.kinds.filter((x) => x === "storage-read" || x === "storage-rw").length,
    texture: k.kinds.filter((x) => x === "texture").length,
  };
}

/**
 * Fuses a program's independent kernel dispatches: each dispatch joins the nearest earlier
 * dispatch group (within `limits.lookback` steps) that it may run beside and that every step
 * between them lets it pass (no range one writes and the other touches). `partOf` tells which
 * steps are fusable kernel dispatches; `make` turns a group of two or more into one dispatch.
 * Copies and other dispatches keep their places.
 */
export function fuseProgram(
  list: readonly Dispatch[],
  partOf: (d: Dispatch) => FusablePart | null,
  make: (parts: FusablePart[]) => Dispatch,
  limits: FuseLimits,
): Dispatch[] {
  type Step = { copy: Copy; access: Access[] } | { group: Group } | { other: Dispatch };
  const steps: Step[] = [];
  for (const d of list) {
    if ("copy" in d) {
      steps.push({ copy: d, access: copyAccesses(d) });
      continue;
    }
    const part = partOf(d);
    const k = part ? parseKernel(part.code) : null;
    if (!part || !k) {
      steps.push({ other: d });
      continue;
    }
    const access = kernelAccesses(part, k);
    const c = counts(k);
    let target: Group | null = null;
    for (let i = steps.length - 1; i >= Math.max(0, steps.length - limits.lookback); i--) {
      const s = steps[i];
      if ("other" in s) break;
      if ("copy" in s) {
        if (dependent(access, s.access)) break;
        continue;
      }
      const g = s.group;
      if (dependent(access, g.access)) break;
      if (
        g.parts.length < limits.maxParts && g.size === k.size && !usageClash(access, g.access) &&
        g.codeBytes + part.code.length <= limits.maxCodeBytes && !g.parts.some((p) => p.code === part.code) &&
        g.counts.uniform + c.uniform <= limits.maxUniformBuffersPerShaderStage &&
        g.counts.storage + c.storage <= limits.maxStorageBuffersPerShaderStage &&
        g.counts.texture + c.texture <= limits.maxSampledTexturesPerShaderStage
      ) {
        target = g;
        break;
      }
    }
    if (target) {
      target.parts.push(part);
      target.access.push(...access);
      target.codeBytes += part.code.length;
      target.counts.uniform += c.uniform;
      target.counts.storage += c.storage;
      target.counts.texture += c.texture;
    } else {
      steps.push({
        group: { parts: [part], original: d, access, size: k.size, counts: c, codeBytes: part.code.length },
      });
    }
  }
  return steps.map((s) => {
    if ("copy" in s) return s.copy;
    if ("other" in s) return s.other;
    return s.group.parts.length === 1 ? s.group.original : make(s.group.parts);
  });
}
