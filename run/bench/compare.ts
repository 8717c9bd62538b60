/**
 * Old against new, side by side: times the training step of each preset and the conv/GEMM/BN
 * figures in two source trees (this one and `--base`, a checkout of an older commit), alternating
 * between them round by round so both see the same machine load, and prints one Markdown table
 * plus JSON. Each measurement runs in its own process with that tree's code (the measuring code
 * below imports the tree's modules by path; their public API is the same in both); with
 * `--interleave` one process builds both trees' steps (or kernels) on one device and alternates
 * between them run by run, which a machine whose speed drifts over minutes disturbs least.
 *
 *   git worktree add /tmp/volpose-old <commit>       # or: git archive <commit> | tar -x -C DIR
 *   deno run -A run/bench/compare.ts --base /tmp/volpose-old [--presets tiny,tiny@64,small] [--rounds 3]
 *                                    [--interleave] [--no-kernels] [--out FILE]
 *
 * Step figures are medians over runs of ~1 s each (a queue wait costs a fixed ~10 ms in Deno, so
 * steps run back to back and the wait is paid once per run); kernel figures are medians over
 * runs of ~0.5 s of back-to-back calls.
 * @module
 */
import { parseArgs } from "node:util";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { median } from "./stats.ts";

/** What one measuring process prints (one JSON line). */
interface Measured {
  name: string;
  ms: number;
  /** Which tree, for measurements that time both in one process. */
  side?: "old" | "new";
  extra?: Record<string, number | string>;
}

const HERE = fileURLToPath(import.meta.url);

const USAGE = `usage: deno run -A run/bench/compare.ts --base OLD_TREE [options]

  --base DIR        the older source tree (git worktree add DIR COMMIT, or git archive | tar -x)
  --presets LIST    training steps to time, NAME or NAME@INPUT (default tiny,tiny@64,small)
  --rounds N        rounds of old and new (default 3; small runs at most 2 unless interleaved)
  --interleave      time both trees in one process, alternating ~1 s runs of a step (~0.5 s of a
                    kernel's calls) for N rounds
                    (steadier on a machine whose speed drifts; the base must build on this tree's
                    device object, which every tree since the CPU-adapter kernels does)
  --no-kernels      skip the conv / GEMM / batch-norm figures
  --out FILE        also write the JSON there
  -h, --help        this text`;

/** Runs this file as a measuring child against `root`. */
async function child(root: string, task: string, cache: string, extra: string[] = []): Promise<Measured[]> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", join(root, "deno.json"), HERE, "--child", task, "--root", root, ...extra],
    // Both trees read the same synthetic dataset (this tree's cache) instead of rendering their own.
    env: { VOLPOSE_CACHE: cache },
    stdout: "piped",
    stderr: "inherit",
  });
  const out = await cmd.output();
  if (!out.success) throw new Error(`compare: measuring ${task} in ${root} failed`);
  return new TextDecoder().decode(out.stdout).trim().split("\n").filter((l) => l.startsWith("{")).map((l) =>
    JSON.parse(l) as Measured
  );
}

// ---- measuring side (runs inside the tree under test) ----

async function timeRuns(run: () => Promise<number>, n: number): Promise<number> {
  await run();
  const t: number[] = [];
  for (let i = 0; i < n; i++) t.push(await run());
  return median(t);
}

/** A tree's training step for preset `spec` ("NAME" or "NAME@INPUT"), built on `gpu` (the tree's own when absent). */
// deno-lint-ignore no-explicit-any
async function buildStep(root: string, spec: string, gpu?: any, batch?: unknown) {
  const u = (p: string) => new URL(`file://${join(root, p)}`).href;
  const { openGpu } = await import(u("kernels/device.ts")).catch(() => import(u("graph/device.ts")));
  const { Net } = await import(u("graph/net.ts"));
  const { poseNetInputs, poseNetLayers } = await import(u("graph/models/pose_net.ts"));
  const { RMSProp } = await import(u("graph/solver.ts"));
  const config = await import(u("run/config.ts"));
  const { stageNetConfig } = config;
  const { setBatch } = await import(u("run/batch.ts"));
  const { createPipeline } = await import(u("stages/pipeline.ts"));
  const { ensureDefaultDataset } = await import(u("io/dataset_cache.ts"));
  const [preset, input] = spec.split("@");
  gpu ??= await openGpu();
  const data = await ensureDefaultDataset({ log: () => {} });
  // The run config: run/config.ts's runConfig where the tree has it, else the older argv form.
  const run = config.runConfig
    ? config.runConfig(preset, { data, model: input ? { inputSize: Number(input) } : {} })
    : (await import(u("tasks/train.ts"))).configFromArgs(input ? { preset, input } : { preset }, data);
  const cfg = stageNetConfig(run, run.schedule[0].d2);
  const net = await Net.build(gpu, { inputs: poseNetInputs(cfg), layers: poseNetLayers(cfg) }, {
    solver: new RMSProp({ baseLr: run.solver.baseLr }),
    // The step as the tree's training runs it (trees before monitorEvery run every layer every step).
    monitorEvery: config.TRAIN_MONITOR_EVERY,
  });
  if (!batch) {
    const pipe = createPipeline(data, {
      source: "train",
      batchSize: cfg.batch,
      inputSize: cfg.model.inputSize,
      augment: true,
      workers: 1,
      seed: 3,
    });
    for await (const b of pipe) {
      batch = b;
      break;
    }
    await pipe.close();
  }
  setBatch(net, batch);
  net.step();
  await net.sync();
  return { net, gpu, batch, name: `${preset}@${cfg.model.inputSize}`, batchSize: cfg.batch as number };
}

/** Steps that fill about a second, from one timed step. */
// deno-lint-ignore no-explicit-any
async function stepsPerRun(net: any): Promise<number> {
  const t0 = performance.now();
  net.step();
  await net.sync();
  return Math.max(1, Math.min(100, Math.round(1000 / (performance.now() - t0))));
}

// deno-lint-ignore no-explicit-any
async function timeSteps(net: any, steps: number): Promise<number> {
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) net.step();
  await net.sync();
  return (performance.now() - t0) / steps;
}

async function measureStep(root: string, spec: string): Promise<Measured[]> {
  const { net, name, batchSize } = await buildStep(root, spec);
  const steps = await stepsPerRun(net);
  const ms = await timeRuns(() => timeSteps(net, steps), steps === 1 ? 3 : 5);
  return [{ name: `step ${name}`, ms, extra: { dispatches: net.dispatchCount(), batch: batchSize } }];
}

/**
 * Both trees' steps in one process, on one device and one batch, alternating runs of ~1 s
 * (old, new, new, old, ...) for `rounds` rounds: drifts of the machine's speed slower than a
 * round cancel. Reports each side's median and, as `ratio`, the median over rounds of old / new.
 */
async function measureStepInterleaved(roots: { old: string; new: string }, spec: string, rounds: number) {
  const b = await buildStep(roots.new, spec);
  const a = await buildStep(roots.old, spec, b.gpu, b.batch);
  const steps = await stepsPerRun(b.net);
  const t = { old: [] as number[], new: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    for (const side of (r % 2 ? ["new", "old"] : ["old", "new"]) as ("old" | "new")[]) {
      t[side].push(await timeSteps(side === "old" ? a.net : b.net, steps));
    }
  }
  const ratio = median(t.old.map((o, i) => o / t.new[i]));
  return (["old", "new"] as const).map((side): Measured => ({
    name: `step ${b.name}`,
    ms: median(t[side]),
    side,
    extra: { dispatches: (side === "old" ? a : b).net.dispatchCount(), batch: b.batchSize, ratio, rounds },
  }));
}

/** One kernel figure: its name, its FLOPs (GFLOP/s are reported where given) and a replay of its program. */
interface KernelProgram {
  name: string;
  flops?: number;
  /** Encodes the program `reps` times into one submit, waits for it and returns ms per repetition. */
  once(reps: number): Promise<number>;
}

/** A tree's kernel figures (conv 3x3 at two sizes, GEMM 1024^3, batch norm + ReLU), built on `gpu` (the tree's own when absent). */
// deno-lint-ignore no-explicit-any
async function kernelPrograms(root: string, gpu?: any): Promise<{ gpu: unknown; programs: KernelProgram[] }> {
  const u = (p: string) => new URL(`file://${join(root, p)}`).href;
  const { openGpu } = await import(u("kernels/device.ts")).catch(() => import(u("graph/device.ts")));
  const kernel = await import(u("kernels/kernel.ts"));
  const conv = await import(u("kernels/conv.ts"));
  const geom = await import(u("kernels/conv_geometry.ts")).catch(() => conv);
  const { recordGemm } = await import(u("kernels/gemm.ts"));
  const norm = await import(u("kernels/norm.ts"));
  const { createRegion } = await import(u("graph/tensor.ts"));
  gpu ??= await openGpu();
  const cache = new kernel.KernelCache(gpu);
  const R = (n: number) => createRegion(gpu, new Float32Array(n).map((_, i) => Math.sin(i * 0.37) * 0.5));
  type Rec = { dispatches: unknown[] };
  const programs: KernelProgram[] = [];
  const add = async (name: string, fill: (rec: Rec) => void, flops?: number) => {
    const rec = new kernel.Recorder(cache);
    rec.owner = "compare";
    fill(rec);
    await cache.check();
    const once = async (reps: number) => {
      const t0 = performance.now();
      const enc = gpu.device.createCommandEncoder();
      // Trees since programs may hold copies replay through encodeProgram; older ones hold dispatches only.
      if (kernel.encodeProgram) { for (let r = 0; r < reps; r++) kernel.encodeProgram(enc, rec.dispatches); }
      else {
        const pass = enc.beginComputePass();
        for (let r = 0; r < reps; r++) kernel.encodeDispatches(pass, rec.dispatches);
        pass.end();
      }
      gpu.device.queue.submit([enc.finish()]);
      await gpu.device.queue.onSubmittedWorkDone();
      return (performance.now() - t0) / reps;
    };
    programs.push({ name, flops, once });
  };
  for (const [n, c, h, k] of [[1, 128, 64, 128], [8, 32, 16, 32]]) {
    const g = geom.convGeometry([n, c, h, h], { k, kernel: 3, pad: 1 });
    const x = R(n * c * h * h), y = R(n * k * h * h), w = R(k * c * 9), b = R(k), dw = R(k * c * 9);
    // Trees from before the transposed input gradient have no dgradWorkspaceFloats.
    const ws = R(
      Math.max(4, conv.wgradWorkspaceFloats(g, { bias: false }), conv.dgradWorkspaceFloats?.(g) ?? 0),
    );
    const flops = 2 * geom.convMacs(g);
    const label = `conv 3x3 ${c}->${k} ${n}x${h}x${h}`;
    await add(
      `${label} forward`,
      (rec) => conv.recordConvForward(rec, { x, w, bias: b, y, geometry: g }),
      flops,
    );
    await add(
      `${label} dgrad`,
      (rec) => conv.recordConvDgrad(rec, { dy: y, w, dx: x, workspace: ws, geometry: g }),
      flops,
    );
    await add(
      `${label} wgrad`,
      (rec) => conv.recordConvWgrad(rec, { dy: y, x, dw, workspace: ws, geometry: g }),
      flops,
    );
  }
  {
    const n = 1024, a = R(n * n), b = R(n * n), c = R(n * n);
    await add("GEMM 1024^3", (rec) => recordGemm(rec, { a, b, c }, { M: n, N: n, K: n }), 2 * n ** 3);
  }
  {
    const [N, C, H] = [1, 256, 64], len = N * C * H * H;
    const x = R(len), y = R(len), dy = R(len), dx = R(len);
    const gamma = R(C), beta = R(C), saved = R(2 * C), dg = R(C), dbeta = R(C);
    const shape = { outer: N, channels: C, inner: H * H };
    const bn = { x, shape, eps: 1e-5, relu: true, gamma, beta, stats: { kind: "batch", saved } };
    await add("BN+ReLU 1x256x64x64 forward", (rec) => norm.batchNormForward(rec, { ...bn, y }));
    await add(
      "BN+ReLU 1x256x64x64 backward",
      (rec) => norm.batchNormBackward(rec, { ...bn, dy, dx, accumulate: false, dgamma: dg, dbeta }),
    );
  }
  return { gpu, programs };
}

/**
 * Repetitions per timed run of ~0.5 s, sized from ten (waiting for the queue costs a fixed ~10
 * ms in Deno, which one repetition would count as kernel time).
 */
async function repsFor(p: KernelProgram): Promise<number> {
  await p.once(1);
  return Math.max(10, Math.min(2000, Math.ceil(500 / (await p.once(10)))));
}

function kernelRow(
  p: KernelProgram,
  ms: number,
  extra: Record<string, number> = {},
  side?: "old" | "new",
): Measured {
  return {
    name: p.name,
    ms,
    side,
    extra: { ...(p.flops ? { gflops: p.flops / (ms * 1e6) } : {}), ...extra },
  };
}

async function measureKernels(root: string): Promise<Measured[]> {
  const { programs } = await kernelPrograms(root);
  const out: Measured[] = [];
  for (const p of programs) {
    const reps = await repsFor(p);
    out.push(kernelRow(p, await timeRuns(() => p.once(reps), 5)));
  }
  return out;
}

/**
 * Both trees' kernel figures in one process and on one device, alternating runs of ~0.5 s
 * (old, new, new, old, ...) kernel by kernel for `rounds` rounds; `ratio` is the median over
 * rounds of old / new, as for interleaved steps.
 */
async function measureKernelsInterleaved(roots: { old: string; new: string }, rounds: number) {
  const b = await kernelPrograms(roots.new);
  const a = await kernelPrograms(roots.old, b.gpu);
  const out: Measured[] = [];
  for (const [i, pb] of b.programs.entries()) {
    const pa = a.programs[i];
    await pa.once(1);
    const reps = await repsFor(pb);
    const t = { old: [] as number[], new: [] as number[] };
    for (let r = 0; r < rounds; r++) {
      for (const side of (r % 2 ? ["new", "old"] : ["old", "new"]) as ("old" | "new")[]) {
        t[side].push(await (side === "old" ? pa : pb).once(reps));
      }
    }
    const ratio = median(t.old.map((o, j) => o / t.new[j]));
    for (const side of ["old", "new"] as const) {
      out.push(kernelRow(pb, median(t[side]), { ratio, rounds }, side));
    }
  }
  return out;
}

// ---- driver ----

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      base: { type: "string" },
      presets: { type: "string", default: "tiny,tiny@64,small" },
      rounds: { type: "string", default: "3" },
      "no-kernels": { type: "boolean", default: false },
      child: { type: "string" },
      root: { type: "string" },
      out: { type: "string" },
      interleave: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (values.child) {
    const root = resolve(values.root!);
    const rows = values.child === "kernels"
      ? await measureKernels(root)
      : values.child === "interleave:kernels"
      ? await measureKernelsInterleaved({ old: resolve(values.base!), new: root }, Number(values.rounds))
      : values.child.startsWith("interleave:")
      ? await measureStepInterleaved(
        { old: resolve(values.base!), new: root },
        values.child.slice("interleave:".length),
        Number(values.rounds),
      )
      : await measureStep(root, values.child);
    for (const r of rows) console.log(JSON.stringify(r));
    return;
  }
  if (!values.base) throw new Error(`compare.ts needs --base OLD_TREE\n${USAGE}`);
  const trees = {
    old: resolve(values.base),
    new: resolve(join(fileURLToPath(new URL("../..", import.meta.url)))),
  };
  const tasks = [
    ...(values["no-kernels"] ? [] : ["kernels"]),
    ...values.presets.split(",").map((s) => s.trim()),
  ];
  const rounds = Number(values.rounds);
  const got: Record<string, Record<"old" | "new", Measured[]>> = {};
  for (const task of tasks) {
    // The small preset runs ~once per round at 5-35 s a step; fewer rounds keep it bearable.
    const n = task.startsWith("small") ? Math.min(rounds, 2) : rounds;
    if (values.interleave) {
      console.error(`compare: ${task}, both trees in one process, ${rounds} rounds`);
      for (
        const m of await child(trees.new, `interleave:${task}`, join(trees.new, ".cache"), [
          "--base",
          trees.old,
          "--rounds",
          String(rounds),
        ])
      ) {
        got[m.name] ??= { old: [], new: [] };
        got[m.name][m.side!].push(m);
      }
      continue;
    }
    for (let r = 0; r < n; r++) {
      for (const side of (r % 2 ? ["new", "old"] : ["old", "new"]) as ("old" | "new")[]) {
        console.error(`compare: ${task}, ${side}, round ${r + 1}/${n}`);
        for (const m of await child(trees[side], task, join(trees.new, ".cache"))) {
          got[m.name] ??= { old: [], new: [] };
          got[m.name][side].push(m);
        }
      }
    }
  }
  const rows = Object.entries(got).map(([name, v]) => {
    const cell = (ms: Measured[]) => {
      const t = median(ms.map((m) => m.ms));
      const gf = ms[0]?.extra?.gflops !== undefined ? median(ms.map((m) => Number(m.extra!.gflops))) : null;
      const d = ms[0]?.extra?.dispatches;
      return { ms: +t.toFixed(2), gflops: gf === null ? null : +gf.toFixed(1), dispatches: d ?? null };
    };
    const ratio = v.new[0]?.extra?.ratio;
    return {
      name,
      old: cell(v.old),
      new: cell(v.new),
      ratio: ratio === undefined ? null : +Number(ratio).toFixed(3),
    };
  });
  const fmt = (c: { ms: number; gflops: number | null; dispatches: number | string | null }) =>
    c.gflops !== null
      ? `${c.gflops} GFLOP/s`
      : `${c.ms} ms${c.dispatches ? ` (${c.dispatches} dispatches)` : ""}`;
  console.log("| what | old | new | old / new |\n|---|---|---|---|");
  for (const r of rows) {
    // Interleaved rows: the median of the per-round ratios, which drifts of the machine move least.
    const x = r.ratio !== null
      ? `${r.ratio.toFixed(2)}x (per round)`
      : `${(r.old.ms / r.new.ms).toFixed(1)}x`;
    console.log(`| ${r.name} | ${fmt(r.old)} | ${fmt(r.new)} | ${x} |`);
  }
  const json = JSON.stringify({ date: new Date().toISOString(), trees, rounds, rows }, null, 2);
  if (values.out) await Deno.writeTextFile(values.out, json + "\n");
  console.error(json);
}

if (import.meta.main) await main();
