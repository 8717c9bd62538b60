/**
 * Test harness shared by every layer test: builds a one-layer net on GPU, compares its forward
 * and backward with a CPU reference twin, and checks its gradients by finite differences.
 * @module
 */
import assert from "node:assert/strict";
import { sharedGpu } from "../kernels/device.ts";
import {
  type BackwardContext,
  type ForwardContext,
  Layer,
  numel,
  type SetupContext,
  type Shape,
} from "../graph/layer.ts";
import { Net } from "../graph/net.ts";
import { SGD } from "../graph/solver.ts";
import { encodeProgram, f32, type Recorder } from "../kernels/kernel.ts";
import { forceReduceLayout, partialCount, recordSum, type ReduceLayout } from "../kernels/reduce.ts";
import { elementwise } from "../kernels/kernel.ts";
import { Rng } from "../io/prng.ts";

/** L = sum_i r_i * x_i with a fixed random r, so dL/dx = r: a probe for any layer's backward. */
export class DotLoss extends Layer {
  readonly type = "DotLoss";
  override readonly scalarTops = true;
  constructor(name: string, bottoms: [string, string], top: string) {
    super(name, bottoms, [top]);
    this.lossWeight = 1;
  }
  override propagates(i: number): boolean {
    return i === 0;
  }
  setup(b: readonly Shape[], ctx: SetupContext): Shape[] {
    this.expectShape("probe shape", b[1], b[0]);
    ctx.state("partials", partialCount(numel(b[0])));
    return [[1]];
  }
  forward(c: ForwardContext): void {
    recordSum(c.rec, {
      label: "dot",
      n: numel(c.bottoms[0].shape),
      inputs: [
        { name: "x", access: "read", region: c.bottoms[0].region },
        { name: "r", access: "read", region: c.bottoms[1].region },
      ],
      term: "x[i] * r[i]",
      partials: c.states[0],
      out: c.tops[0].region,
    });
  }
  override backward(c: BackwardContext): void {
    const d = c.bottomDiffs[0];
    if (!d) return;
    const k = elementwise("dot_bwd", {
      bindings: [{ name: "r", access: "read" }, { name: "d", access: "read_write" }],
      n: numel(c.bottoms[0].shape),
      body: `  d[i] = ${c.accumulate[0] ? "d[i] + " : ""}${f32(this.lossWeight)} * r[i];`,
    });
    c.rec.dispatch(k.src, [c.bottoms[1].region, d], k.groups);
  }
}

/** Waits for the recorder's kernels to compile (throwing on an error), then submits its dispatches in one pass. */
export async function submitRecorded(rec: Recorder): Promise<void> {
  await rec.kernels.check();
  const gpu = rec.kernels.gpu;
  const enc = gpu.device.createCommandEncoder();
  encodeProgram(enc, rec.dispatches);
  gpu.device.queue.submit([enc.finish()]);
}

/** Seeded random array in [lo, hi). */
export function randomArray(n: number, seed: number, lo = -1, hi = 1): Float32Array {
  return new Rng(seed).fillUniform(new Float32Array(n), lo, hi);
}

/** Asserts |a - b| <= atol + rtol * |b| element-wise, reporting the worst element. */
export function assertClose(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
  opts: { atol?: number; rtol?: number; what?: string } = {},
): void {
  const atol = opts.atol ?? 1e-5, rtol = opts.rtol ?? 1e-4;
  assert.equal(a.length, b.length, `${opts.what ?? "values"}: length ${a.length} vs ${b.length}`);
  let worst = -1, worstExcess = 0;
  for (let i = 0; i < a.length; i++) {
    const excess = Math.abs(a[i] - b[i]) - (atol + rtol * Math.abs(b[i]));
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(excess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    assert.fail(
      `${opts.what ?? "values"} differ at [${worst}]: got ${a[worst]}, expected ${
        b[worst]
      } (atol ${atol}, rtol ${rtol})`,
    );
  }
}

/** A one-layer test net: the layer's bottoms are net inputs, each top gets a DotLoss probe. */
export interface Probe {
  net: Net;
  /** Sets all inputs (same order as the layer's bottoms). */
  set(inputs: readonly Float32Array[]): void;
  /** Runs forward and returns each top. */
  forward(): Promise<Float32Array[]>;
  /** Runs forward+backward (no parameter change: lr 0) and returns bottom and parameter gradients. */
  backward(): Promise<{ bottoms: Float32Array[]; params: Float32Array[] }>;
  /** Probe weights per top (dL/dtop). */
  r: Float32Array[];
  /** The probed loss for the current inputs. */
  loss(): Promise<number>;
}

/** Builds a {@linkcode Probe} around `layer` with inputs of the given shapes. */
export async function probe(
  layer: Layer,
  shapes: readonly Shape[],
  opts: { seed?: number; gradInputs?: readonly number[]; tops?: readonly number[]; globalStats?: boolean } =
    {},
): Promise<Probe> {
  const gpu = await sharedGpu();
  const inputs: Record<string, Shape> = {};
  layer.bottoms.forEach((b, i) => (inputs[b] = shapes[i]));
  const probed = opts.tops ?? layer.tops.map((_, i) => i);
  // Shapes of the tops are only known after setup; build once without probes to learn them.
  const dry = await Net.build(gpu, { inputs, layers: [layer] }, { train: false });
  const topShapes = layer.tops.map((t) => dry.shape(t));
  dry.destroy();
  const r = probed.map((t, k) => randomArray(numel(topShapes[t]), 1000 + k));
  probed.forEach((t, k) => (inputs[`r_${k}`] = topShapes[t]));
  const layers: Layer[] = [
    layer,
    ...probed.map((t, k) => new DotLoss(`probe_${k}`, [layer.tops[t], `r_${k}`], `L_${k}`)),
  ];
  const gradInputs = (opts.gradInputs ?? layer.bottoms.map((_, i) => i)).map((i) => layer.bottoms[i]);
  const net = await Net.build(gpu, { inputs, layers }, {
    solver: new SGD({ baseLr: 0, momentum: 0 }),
    seed: opts.seed ?? 7,
    gradInputs,
    keep: layer.tops,
    globalStats: opts.globalStats,
  });
  probed.forEach((_, k) => net.setInput(`r_${k}`, r[k]));
  const paramKeys = net.layout.entries.filter((e) => e.layer === layer.name).map((e) => e.key);
  return {
    net,
    r,
    set(values) {
      layer.bottoms.forEach((b, i) => net.setInput(b, values[i]));
    },
    async forward() {
      net.forward();
      await net.readScalars();
      return Promise.all(layer.tops.map((t) => net.read(t)));
    },
    async backward() {
      net.step();
      await net.readScalars();
      return {
        bottoms: await Promise.all(layer.bottoms.map((b) => net.readDiff(b))),
        params: await Promise.all(paramKeys.map((k) => net.readParamDiff(k))),
      };
    },
    async loss() {
      net.forward();
      const s = await net.readScalars();
      return probed.reduce((acc, _, k) => acc + s[`L_${k}`][0], 0);
    },
  };
}

/**
 * Central finite differences of the probe loss w.r.t. sampled input elements and parameters,
 * compared with the analytic gradients. f32 throughout, so the step is large-ish and the
 * tolerance loose; it catches wrong formulas, not last-bit differences.
 */
export async function gradcheck(
  p: Probe,
  inputs: Float32Array[],
  opts: { eps?: number; samples?: number; atol?: number; rtol?: number; checkInputs?: readonly number[] } =
    {},
): Promise<void> {
  const eps = opts.eps ?? 1e-2, samples = opts.samples ?? 12;
  const atol = opts.atol ?? 2e-3, rtol = opts.rtol ?? 2e-2;
  p.set(inputs);
  const an = await p.backward();
  const rng = new Rng(99);
  for (const bi of opts.checkInputs ?? inputs.map((_, i) => i)) {
    const x = inputs[bi];
    if (an.bottoms[bi].length === 0) continue;
    for (let s = 0; s < Math.min(samples, x.length); s++) {
      const j = rng.int(x.length);
      const orig = x[j];
      x[j] = orig + eps;
      p.set(inputs);
      const lp = await p.loss();
      x[j] = orig - eps;
      p.set(inputs);
      const lm = await p.loss();
      x[j] = orig;
      const fd = (lp - lm) / (2 * eps);
      const a = an.bottoms[bi][j];
      assert.ok(
        Math.abs(fd - a) <= atol + rtol * Math.max(Math.abs(a), Math.abs(fd)),
        `input ${bi}[${j}]: analytic ${a} vs finite difference ${fd}`,
      );
    }
  }
  p.set(inputs);
  const entries = p.net.layout.entries.filter((e) =>
    !e.layer.startsWith("probe_") && e.decl.learnable && e.decl.lrMult !== 0
  );
  for (const [pi, e] of entries.entries()) {
    const w = await p.net.readParam(e.key);
    for (let s = 0; s < Math.min(samples, w.length); s++) {
      const j = rng.int(w.length);
      const orig = w[j];
      w[j] = orig + eps;
      p.net.writeParam(e.key, w);
      const lp = await p.loss();
      w[j] = orig - eps;
      p.net.writeParam(e.key, w);
      const lm = await p.loss();
      w[j] = orig;
      p.net.writeParam(e.key, w);
      const fd = (lp - lm) / (2 * eps);
      const a = an.params[pi][j];
      assert.ok(
        Math.abs(fd - a) <= atol + rtol * Math.max(Math.abs(a), Math.abs(fd)),
        `param ${e.key}[${j}]: analytic ${a} vs finite difference ${fd}`,
      );
    }
  }
}

/**
 * Runs `fn` once per reduction layout ("lanes", then "workgroups"), each forced on every
 * reduction recorded meanwhile, so a test covers the layout its adapter would not pick too.
 */
export async function forEachReduceLayout(fn: (layout: ReduceLayout) => Promise<void>): Promise<void> {
  for (const layout of ["lanes", "workgroups"] as const) {
    forceReduceLayout(layout);
    try {
      await fn(layout);
    } finally {
      forceReduceLayout(null);
    }
  }
}
