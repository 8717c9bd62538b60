/**
 * CPU twins of the solvers (Caffe's SGD, RMSProp and Adam updates and lr policies), written from
 * Caffe's formulas independently of graph/solver.ts, plus a probe layer that exposes parameters
 * as blobs so a loss on them produces known gradients for any lr/decay group.
 * @module
 */
import {
  type BackwardContext,
  type ForwardContext,
  Layer,
  numel,
  type SetupContext,
  type Shape,
} from "../../graph/layer.ts";
import type { Filler } from "../../graph/fillers.ts";
import { elementwise } from "../../kernels/kernel.ts";

/** An lr policy in the reference's own words (mirrors Caffe's solver.prototxt fields). */
export type RefPolicy =
  | { type: "fixed" }
  | { type: "step"; gamma: number; stepsize: number }
  | { type: "multistep"; gamma: number; stepvalues: number[] }
  | { type: "poly"; power: number; maxIter: number }
  | { type: "exp"; gamma: number }
  | { type: "inv"; gamma: number; power: number };

/** Caffe's SGDSolver::GetLearningRate at iteration `iter`. */
export function lrRef(spec: { baseLr: number; policy?: RefPolicy }, iter: number): number {
  const { baseLr, policy = { type: "fixed" } } = spec;
  if (policy.type === "fixed") return baseLr;
  if (policy.type === "step") return baseLr * policy.gamma ** Math.trunc(iter / policy.stepsize);
  if (policy.type === "multistep") {
    // Caffe advances current_step while iter >= stepvalue[current_step].
    let step = 0;
    while (step < policy.stepvalues.length && iter >= policy.stepvalues[step]) step++;
    return baseLr * policy.gamma ** step;
  }
  if (policy.type === "poly") return baseLr * (1 - iter / policy.maxIter) ** policy.power;
  if (policy.type === "exp") return baseLr * policy.gamma ** iter;
  return baseLr * (1 + policy.gamma * iter) ** -policy.power;
}

/** Settings of a reference solver. */
export interface RefSolverSpec {
  type: "SGD" | "RMSProp" | "Adam";
  baseLr: number;
  policy?: RefPolicy;
  weightDecay?: number;
  momentum?: number;
  rmsDecay?: number;
  delta?: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
}

/** One parameter as the reference sees it. */
export interface RefParam {
  w: Float32Array;
  lrMult: number;
  decayMult: number;
  /** False for saved-but-untrained state (never touched by the solver). */
  learnable: boolean;
  /** Solver history (1 buffer for SGD/RMSProp, 2 for Adam), zero at the start. */
  hist: Float32Array[];
}

/** Creates a reference parameter with zero history. */
export function refParam(w: Float32Array, spec: RefSolverSpec, o: Partial<RefParam> = {}): RefParam {
  const count = spec.type === "Adam" ? 2 : 1;
  return {
    w: w.slice(),
    lrMult: o.lrMult ?? 1,
    decayMult: o.decayMult ?? 1,
    learnable: o.learnable ?? true,
    hist: Array.from({ length: count }, () => new Float32Array(w.length)),
  };
}

/**
 * One solver step at iteration `iter` (0-based, before the update) with gradients `grads` (one
 * per parameter), in float64 arithmetic with every stored value rounded to f32 as the GPU stores it.
 */
export function refStep(
  spec: RefSolverSpec,
  step: { params: RefParam[]; grads: Float32Array[]; iter: number },
): void {
  const { params, grads, iter } = step;
  const rate = lrRef(spec, iter);
  params.forEach((p, k) => {
    if (!p.learnable || p.lrMult === 0) return;
    const local = Math.fround(rate) * p.lrMult;
    const wd = (spec.weightDecay ?? 0) * p.decayMult;
    for (let i = 0; i < p.w.length; i++) {
      const g = grads[k][i] + wd * p.w[i];
      if (spec.type === "SGD") {
        const h = (spec.momentum ?? 0.9) * p.hist[0][i] + local * g;
        p.hist[0][i] = h;
        p.w[i] = p.w[i] - h;
      } else if (spec.type === "RMSProp") {
        const d = spec.rmsDecay ?? 0.99;
        const v = d * p.hist[0][i] + (1 - d) * g * g;
        p.hist[0][i] = v;
        p.w[i] = p.w[i] - local * g / (Math.sqrt(v) + (spec.delta ?? 1e-8));
      } else {
        const b1 = spec.beta1 ?? 0.9, b2 = spec.beta2 ?? 0.999, t = iter + 1;
        const m = b1 * p.hist[0][i] + (1 - b1) * g;
        const v = b2 * p.hist[1][i] + (1 - b2) * g * g;
        p.hist[0][i] = m;
        p.hist[1][i] = v;
        const correction = Math.sqrt(1 - b2 ** t) / (1 - b1 ** t);
        p.w[i] = p.w[i] - local * correction * m / (Math.sqrt(v) + (spec.eps ?? 1e-8));
      }
    }
  });
}

/** One parameter of a {@linkcode ParamProbe}. */
export interface ProbeParam {
  name: string;
  shape: Shape;
  lrMult?: number;
  decayMult?: number;
  /** False: a running statistic, updated by the training forward (r = 0.9 r + 0.1 w0) instead of the solver. */
  learnable?: boolean;
  filler?: Filler;
}

/**
 * A layer with no inputs whose tops are copies of its parameters (top k has shape [1, numel]),
 * named `<layer>_<param>`. A loss on top k gives parameter k exactly that loss's gradient, so
 * solver updates can be checked against {@linkcode refStep}. Non-learnable parameters behave like
 * batch-norm running statistics: the training forward folds the first parameter into them.
 */
export class ParamProbe extends Layer {
  readonly type = "ParamProbe";
  readonly specs: readonly ProbeParam[];

  constructor(name: string, specs: readonly ProbeParam[]) {
    super(name, [], specs.map((s) => `${name}_${s.name}`));
    this.specs = specs;
  }

  setup(_bottoms: readonly Shape[], ctx: SetupContext): Shape[] {
    for (const s of this.specs) {
      ctx.param({
        name: s.name,
        shape: s.shape,
        filler: s.filler ?? { type: "uniform", min: -1, max: 1 },
        lrMult: s.lrMult ?? 1,
        decayMult: s.decayMult ?? 1,
        learnable: s.learnable ?? true,
      });
    }
    return this.specs.map((s) => [1, numel(s.shape)]);
  }

  forward(c: ForwardContext): void {
    c.params.forEach((p, k) => {
      const n = numel(p.shape);
      const copy = elementwise("probe_copy", {
        bindings: [{ name: "w", access: "read" }, { name: "y", access: "read_write" }],
        n,
        body: "  y[i] = w[i];",
      });
      c.rec.dispatch(copy.src, [p.region, c.tops[k].region], copy.groups);
      if (c.mode.phase === "train" && this.specs[k].learnable === false) {
        // Reads the copy in top 0: binding the parameter buffer twice, once writable, is invalid.
        const n0 = numel(c.params[0].shape);
        const run = elementwise("probe_running", {
          bindings: [{ name: "y0", access: "read" }, { name: "r", access: "read_write" }],
          n,
          body: `  r[i] = 0.9 * r[i] + 0.1 * y0[i % ${n0}u];`,
        });
        c.rec.dispatch(run.src, [c.tops[0].region, p.region], run.groups);
      }
    });
  }

  override backward(c: BackwardContext): void {
    c.paramDiffs.forEach((d, k) => {
      if (!d) return;
      const top = c.topDiffs[k];
      const n = numel(c.params[k].shape);
      const kern = top
        ? elementwise("probe_bwd", {
          bindings: [{ name: "dy", access: "read" }, { name: "dw", access: "read_write" }],
          n,
          body: "  dw[i] = dy[i];",
        })
        : elementwise("probe_bwd_zero", {
          bindings: [{ name: "dw", access: "read_write" }],
          n,
          body: "  dw[i] = 0.0;",
        });
      c.rec.dispatch(kern.src, top ? [top, d] : [d], kern.groups);
    });
  }
}
