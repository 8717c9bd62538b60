/**
 * Fitting a decaying rate to a time budget: the arithmetic, when fits happen, and a real run whose
 * simulated clock is slow, so its schedule shrinks to the budget and its rate still reaches zero.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { BudgetFit, FIT_MARGIN, FIT_PROBE_ITERS, FIT_WARMUP_ITERS, fittedIters } from "../run/budget_fit.ts";
import { generateDataset } from "../io/synth_dataset.ts";
import { train } from "../run/train.ts";
import { parseRunConfig, runConfig } from "../run/config.ts";
import { sharedGpu } from "../kernels/device.ts";
import { tinyRunConfig } from "./tiny_run.ts";

Deno.test("budget fit: iterations that fit the time left, at most the plan", () => {
  // 100 s left at 10 it/s, no evaluations: 97% of them.
  assert.equal(
    fittedIters({ iter: 500, planned: 6500, remainingSec: 100, itersPerSec: 10, evalSec: 0, evalEvery: 0 }),
    500 + Math.floor(FIT_MARGIN * 1000),
  );
  // Evaluations of 5 s every 100 iterations cost 0.05 s an iteration, and the last one is kept aside.
  assert.equal(
    fittedIters({ iter: 0, planned: 6500, remainingSec: 100, itersPerSec: 10, evalSec: 5, evalEvery: 100 }),
    Math.floor((FIT_MARGIN * 100 - 5) / 0.15),
  );
  // A fast machine keeps the plan; a hopeless budget still takes one more step.
  assert.equal(
    fittedIters({ iter: 0, planned: 6500, remainingSec: 600, itersPerSec: 1000, evalSec: 0, evalEvery: 0 }),
    6500,
  );
  assert.equal(
    fittedIters({ iter: 40, planned: 6500, remainingSec: -3, itersPerSec: 10, evalSec: 0, evalEvery: 0 }),
    41,
  );
  // No speed measured: the plan stands.
  assert.equal(
    fittedIters({ iter: 40, planned: 6500, remainingSec: 10, itersPerSec: 0, evalSec: 0, evalEvery: 0 }),
    6500,
  );
});

Deno.test("budget fit: one probe after the warm-up, then a fit before every evaluation", () => {
  const f = new BudgetFit({ planned: 10000, budgetSec: 1000, evalEvery: 1000, startIter: 0 });
  const fits: [number, number][] = [];
  // 5 it/s; every 1,000th step is followed by an evaluation of 20 s.
  let t = 30; // the first steps compile
  for (let it = 1; it <= 3000; it++) {
    if (it > 1) t += 0.2;
    const n = f.afterStep(it, t, it % 1000 === 0);
    if (n !== null) fits.push([it, n]);
    if (it % 1000 === 0) {
      t += 20;
      f.evaluated(it, 20, t);
    }
  }
  assert.deepEqual(fits.map(([it]) => it), [FIT_WARMUP_ITERS + FIT_PROBE_ITERS, 1000, 2000, 3000]);
  // At the probe: 970 s left minus the warm-up's at 5 it/s with 0 s evaluations known.
  const [, first] = fits[0];
  const probeT = 30 + 0.2 * (FIT_WARMUP_ITERS + FIT_PROBE_ITERS - 1);
  assert.equal(first, FIT_WARMUP_ITERS + FIT_PROBE_ITERS + Math.floor(FIT_MARGIN * (1000 - probeT) / 0.2));
  // From the first evaluation on, fits know its cost and plan fewer iterations: about where the
  // simulated budget ends (970 s at 0.2 s an iteration plus 20 s every 1,000: ~4,270).
  assert.ok(fits[2][1] < fits[1][1], JSON.stringify(fits));
  for (const [, n] of fits.slice(2)) assert.ok(n > 4100 && n < 4450, JSON.stringify(fits));
});

Deno.test("budget fit: a slow run ends its schedule and its poly rate where the budget ends", async () => {
  const dir = await Deno.makeTempDir({ prefix: "volpose_fit_" });
  try {
    const data = join(dir, "data");
    await generateDataset(data, { train: 16, test: 8, seed: 4, workers: 0 });
    // The tiny preset fits its schedule when no iterations are given; explicit ones are kept.
    assert.deepEqual(runConfig("tiny", { data }).fitBudget, { plannedIters: 10000 });
    assert.equal(runConfig("tiny", { data, iters: 100 }).fitBudget, undefined);
    assert.equal(runConfig("tiny", { data, solver: { policy: { type: "fixed" } } }).fitBudget, undefined);
    assert.equal(runConfig("small", { data }).fitBudget, undefined);
    const cfg = tinyRunConfig(data, { timeBudgetSec: 60, evalEvery: 5, evalSamples: 2, iters: undefined });
    assert.deepEqual(cfg.fitBudget, { plannedIters: 10000 });
    // Every clock reading advances 0.25 s: about two readings a step, so ~2 steps a simulated second.
    let ms = 0;
    const clock = () => (ms += 250);
    const runDir = join(dir, "run");
    const lines: string[] = [];
    const r = await train(cfg, {
      runDir,
      gpu: await sharedGpu(),
      progress: false,
      log: (l) => lines.push(l),
      clock,
    });
    assert.ok(lines.some((l) => /the schedule now ends at \d+ \(was 10000\)/.test(l)), lines.join("\n"));
    assert.ok(r.iter > 20 && r.iter < 200, `ended at ${r.iter}`);
    // The saved config holds the fitted end for --resume; the caller's config is left as it was.
    const saved = parseRunConfig(await Deno.readTextFile(join(runDir, "config.json")), "config.json");
    assert.equal(saved.schedule[0].iters, r.iter);
    assert.deepEqual(saved.solver.policy, { type: "poly", power: 1, maxIter: r.iter });
    assert.equal(cfg.schedule[0].iters, 10000);
    // The rate of the last logged step is a small fraction of the base: the decay ran its course.
    const rows = (await Deno.readTextFile(join(runDir, "metrics.jsonl"))).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    const lastTrain = rows.filter((x) => x.type === "train").at(-1);
    assert.equal(lastTrain.iter, r.iter);
    assert.ok(lastTrain.lr < 0.05 * cfg.solver.baseLr, `lr ${lastTrain.lr}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
