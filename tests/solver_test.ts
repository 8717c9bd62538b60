import assert from "node:assert/strict";
import { type Gpu, sharedGpu } from "../kernels/device.ts";
import { Net } from "../graph/net.ts";
import { Adam, chunks, learningRate, type LrPolicy, RMSProp, SGD, type Solver } from "../graph/solver.ts";
import { EuclideanLoss } from "../graph/layers/euclidean_loss.ts";
import { kernelFamily } from "../graph/profile.ts";
import { assertClose, randomArray } from "./gradcheck.ts";
import {
  lrRef,
  ParamProbe,
  type RefParam,
  refParam,
  type RefSolverSpec,
  refStep,
} from "./reference/solvers.ts";

/** The seed's d64 schedule (SEED_SPEC §6): multistep at 650000, gamma 0.2, from base 2.5e-5. */
const SEED_D64: LrPolicy = { type: "multistep", gamma: 0.2, stepvalues: [650000] };

const POLICIES: { policy: LrPolicy; start: number }[] = [
  { policy: { type: "fixed" }, start: 0 },
  { policy: { type: "step", gamma: 0.5, stepsize: 2 }, start: 0 },
  { policy: { type: "multistep", gamma: 0.3, stepvalues: [1, 3, 4] }, start: 0 },
  { policy: SEED_D64, start: 649998 },
  { policy: { type: "poly", power: 2, maxIter: 10 }, start: 2 },
  { policy: { type: "exp", gamma: 0.8 }, start: 0 },
  { policy: { type: "inv", gamma: 0.1, power: 0.75 }, start: 3 },
];

Deno.test("lr policies follow Caffe's formulas, including the seed's d64 multistep schedule", () => {
  for (const { policy } of POLICIES) {
    for (const it of [0, 1, 2, 3, 4, 5, 7, 9, 649999, 650000, 650001]) {
      if (policy.type === "poly" && it > policy.maxIter) continue;
      assertClose([learningRate(0.1, policy, it)], [lrRef({ baseLr: 0.1, policy }, it)], {
        rtol: 1e-12,
        atol: 0,
        what: `${policy.type} at ${it}`,
      });
    }
  }
  assert.equal(learningRate(2.5e-5, SEED_D64, 649999), 2.5e-5);
  assertClose([learningRate(2.5e-5, SEED_D64, 650000)], [5e-6], { rtol: 1e-12, atol: 0 });
  assertClose([learningRate(2.5e-5, SEED_D64, 720929)], [5e-6], { rtol: 1e-12, atol: 0 });
  // What the GPU receives is the f32 rounding of that rate, and the 1-based iteration.
  const h = new RMSProp({ baseLr: 2.5e-5, policy: SEED_D64 }).hyper(650000);
  assert.equal(h[0], Math.fround(learningRate(2.5e-5, SEED_D64, 650000)));
  assertClose([h[0]], [5e-6], { rtol: 1e-7, atol: 0 });
  assert.equal(h[1], 650001);
});

Deno.test("solver defaults are Caffe's (RMSProp 0.99 / 1e-8, SGD momentum 0.9, Adam 0.9 / 0.999 / 1e-8)", () => {
  const r = new RMSProp({ baseLr: 1 }), s = new SGD({ baseLr: 1 }), a = new Adam({ baseLr: 1 });
  assert.deepEqual([r.rmsDecay, r.delta, s.momentum, a.beta1, a.beta2, a.eps], [
    0.99,
    1e-8,
    0.9,
    0.9,
    0.999,
    1e-8,
  ]);
});

Deno.test("chunks split a group at the binding limit, aligned, covering it exactly", () => {
  assert.deepEqual(chunks(512, 1000, 300, 256), [[512, 256], [768, 256], [1024, 256], [1280, 232]]);
  assert.deepEqual(chunks(0, 64, 1 << 20, 256), [[0, 64]]);
});

interface Case {
  spec: RefSolverSpec;
  make: () => Solver;
}

const N_A = 37, N_B = 19, N_C = 11;

/**
 * A probe with three lr/decay groups (lr 1 decay 1; lr 2 decay 0; frozen) and a running
 * statistic, each learnable one pulled towards a fresh random target every step.
 */
async function buildProbeNet(solver: Solver, o: ProbeOptions) {
  const gpu = o.gpu ?? await sharedGpu();
  const [na, nb, nc] = o.sizes ?? [N_A, N_B, N_C];
  return await Net.build(gpu, {
    inputs: { ta: [1, na], tb: [1, nb], tc: [1, nc] },
    layers: [
      new ParamProbe("p", [
        { name: "a", shape: [na] },
        { name: "b", shape: [nb], lrMult: 2, decayMult: 0 },
        { name: "c", shape: [nc], lrMult: 0 },
        { name: "run", shape: [na], learnable: false, filler: { type: "constant", value: 0 } },
      ]),
      new EuclideanLoss("la", { pred: "p_a", target: "ta", top: "La" }),
      new EuclideanLoss("lb", { pred: "p_b", target: "tb", top: "Lb", weight: 0.5 }),
      new EuclideanLoss("lc", { pred: "p_c", target: "tc", top: "Lc" }),
    ],
  }, { solver, seed: 3, coDispatch: o.coDispatch });
}

/** The adapter the probe net is built on (default: the shared one) and its three group sizes. */
interface ProbeOptions {
  gpu?: Gpu;
  sizes?: [number, number, number];
  /** The update labels the program must hold (which path it took). */
  updates?: RegExp;
  /** BuildOptions.coDispatch (default: the net's). */
  coDispatch?: boolean;
}

async function runAgainstReference(c: Case, steps: number, start = 0, o: ProbeOptions = {}): Promise<void> {
  const net = await buildProbeNet(c.make(), o);
  const [na, nb, nc] = o.sizes ?? [N_A, N_B, N_C];
  net.iter = start;
  const keys = ["p.a", "p.b", "p.c", "p.run"];
  const init = await Promise.all(keys.map((k) => net.readParam(k)));
  const ref: RefParam[] = [
    refParam(init[0], c.spec),
    refParam(init[1], c.spec, { lrMult: 2, decayMult: 0 }),
    refParam(init[2], c.spec, { lrMult: 0 }),
    refParam(init[3], c.spec, { learnable: false }),
  ];
  const weights = [1, 0.5, 1];
  for (let s = 0; s < steps; s++) {
    const t = [randomArray(na, 100 + s), randomArray(nb, 200 + s), randomArray(nc, 300 + s)];
    net.setInput("ta", t[0]);
    net.setInput("tb", t[1]);
    net.setInput("tc", t[2]);
    const grads = ref.slice(0, 3).map((p, k) => p.w.map((w, i) => weights[k] * (w - t[k][i])));
    grads.push(new Float32Array(na));
    // The training forward folds the pre-update parameter into the running statistic.
    ref[3].w = ref[3].w.map((r, i) => 0.9 * r + 0.1 * ref[0].w[i]);
    refStep(c.spec, { params: ref, grads, iter: start + s });
    net.step();
    const got = await Promise.all(keys.slice(0, 2).map((k) => net.readParam(k)));
    const what = `${c.spec.type} ${c.spec.policy?.type ?? "fixed"} step ${start + s}`;
    assertClose(got[0], ref[0].w, { atol: 2e-6, rtol: 2e-5, what: `${what}: lr_mult 1 group` });
    assertClose(got[1], ref[1].w, { atol: 2e-6, rtol: 2e-5, what: `${what}: lr_mult 2 decay_mult 0 group` });
  }
  assert.equal(net.iter, start + steps);
  assert.deepEqual(await net.readParam("p.c"), init[2], "a frozen parameter (lr_mult 0) never changes");
  assertClose(await net.readParam("p.run"), ref[3].w, {
    atol: 1e-6,
    what: "running statistic, untouched by the solver",
  });
  const history = net.solver!.history();
  assert.equal(history.length, ref[0].hist.length);
  net.destroy();
}

const CASES: Case[] = [
  {
    spec: {
      type: "SGD",
      baseLr: 0.1,
      momentum: 0.9,
      weightDecay: 0.05,
      policy: { type: "step", gamma: 0.5, stepsize: 2 },
    },
    make: () =>
      new SGD({
        baseLr: 0.1,
        momentum: 0.9,
        weightDecay: 0.05,
        policy: { type: "step", gamma: 0.5, stepsize: 2 },
      }),
  },
  {
    spec: { type: "RMSProp", baseLr: 0.01, weightDecay: 0.05 },
    make: () => new RMSProp({ baseLr: 0.01, weightDecay: 0.05 }),
  },
  {
    spec: { type: "RMSProp", baseLr: 0.01, rmsDecay: 0.9, delta: 1e-6 },
    make: () => new RMSProp({ baseLr: 0.01, rmsDecay: 0.9, delta: 1e-6 }),
  },
  {
    spec: { type: "Adam", baseLr: 0.01, weightDecay: 0.05 },
    make: () => new Adam({ baseLr: 0.01, weightDecay: 0.05 }),
  },
  {
    spec: { type: "Adam", baseLr: 0.02, beta1: 0.8, beta2: 0.99, eps: 1e-6 },
    make: () => new Adam({ baseLr: 0.02, beta1: 0.8, beta2: 0.99, eps: 1e-6 }),
  },
];

for (const c of CASES) {
  const opts = Object.entries(c.spec).filter(([k]) => k !== "type" && k !== "policy").map(([k, v]) =>
    `${k} ${v}`
  );
  Deno.test(`${c.spec.type} (${opts.join(", ")}) matches its CPU twin over 6 steps with lr/decay groups`, async () => {
    await runAgainstReference(c, 6);
  });
}

Deno.test("every lr policy reaches the GPU update (SGD without momentum, RMSProp at the seed's d64 step)", async () => {
  for (const { policy, start } of POLICIES) {
    await runAgainstReference(
      {
        spec: { type: "SGD", baseLr: 0.05, momentum: 0, policy },
        make: () => new SGD({ baseLr: 0.05, momentum: 0, policy }),
      },
      4,
      start,
    );
  }
  // The seed's d64 recipe: RMSProp at 2.5e-5 stepping to 5e-6 at iteration 650000.
  await runAgainstReference(
    {
      spec: { type: "RMSProp", baseLr: 2.5e-5, policy: SEED_D64 },
      make: () => new RMSProp({ baseLr: 2.5e-5, policy: SEED_D64 }),
    },
    4,
    649998,
  );
});

Deno.test("the update reads storage on a GPU and texture copies on a CPU adapter, both as the twin, over multi-row copies", async () => {
  // Groups of 9,000 and 4,200 parameters: the texture path copies two whole rows of 1,024 texels
  // and the rest of a third, then one row and a rest, into textures shared by the groups.
  const shared = await sharedGpu();
  for (const isFallback of [false, true]) {
    for (const c of [CASES[1], CASES[3]]) {
      await runAgainstReference(c, 3, 0, {
        gpu: { ...shared, isFallback },
        sizes: [9000, 4200, 11],
        updates: isFallback ? /(copy (w|dw|h\d)$| v4 tex$)/ : / v4$/,
      });
    }
  }
});

Deno.test("replay profile: each kernel family once, the solver's copies in its family, counts summing to the step", async () => {
  // Kernel by kernel, as recorded: co-dispatch would put some updates in another owner's dispatch.
  const net = await buildProbeNet(new RMSProp({ baseLr: 0.01 }), {
    sizes: [9000, 4200, 11],
    coDispatch: false,
  });
  const labels = net.dispatchLabels();
  const fams = await net.replayProfile("train", { lo: 1, hi: 2, trials: 1 });
  assert.equal(fams.reduce((s, f) => s + f.count, 0), labels.length);
  assert.deepEqual(fams.map((f) => f.family).sort(), [...new Set(labels.map(kernelFamily))].sort());
  assert.ok(fams.every((f) => f.ms >= 0 && Number.isFinite(f.ms)));
  for (let i = 1; i < fams.length; i++) assert.ok(fams[i - 1].ms >= fams[i].ms, "largest first");
  const solver = fams.find((f) => f.family === "RMSProp")!;
  assert.equal(solver.count, labels.filter((l) => l.startsWith("solver: ")).length);
  if ((await sharedGpu()).isFallback) assert.ok(labels.some((l) => / copy w$/.test(l)), labels.join("\n"));
  await assert.rejects(() => net.replayProfile("train", { lo: 2, hi: 2 }), RangeError);
  net.destroy();
});
