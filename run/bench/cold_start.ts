/**
 * Time to the first steps on a machine whose shader cache does not yet hold a net's kernels, with
 * and without the prewarm worker (kernels/prewarm.ts). Each run is a child process with an empty
 * Mesa shader cache and prewarm-marker folder of its own:
 *
 *   deno run -A run/bench/cold_start.ts [--preset tiny] [--input 32] [--rounds 1] [--out FILE]
 *
 * Prints one JSON line per run (build, first three steps, first inference pass, in seconds) and
 * the medians. Only meaningful on a CPU adapter (llvmpipe compiles a kernel when it first runs).
 * @module
 */
import { parseArgs } from "node:util";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { median } from "./stats.ts";
import { PRESETS } from "../presets.ts";

const HERE = fileURLToPath(import.meta.url);
const ROOT = join(dirname(HERE), "..", "..");

const USAGE = `usage: deno run -A run/bench/cold_start.ts [options]
  --preset NAME   preset whose training net is built (default tiny)
  --input N       input size (default: the preset's)
  --rounds N      runs of each mode, alternating (default 1)
  --data DIR      dataset for the one real batch (default: the built-in synthetic one)
  --out FILE      also write the JSON there
  -h, --help      this text`;

interface ColdRun {
  prewarm: boolean;
  build: number;
  steps: number[];
  infer: number;
  total: number;
}

async function child(preset: string, input: number | undefined, data: string | undefined, prewarm: boolean) {
  const { openGpu } = await import("../../kernels/device.ts");
  const { Net } = await import("../../graph/net.ts");
  const { poseNetInputs, poseNetLayers } = await import("../../graph/models/pose_net.ts");
  const { makeSolver, runConfig, stageNetConfig, TRAIN_MONITOR_EVERY } = await import("../config.ts");
  const { setBatch } = await import("../batch.ts");
  const { oneBatch } = await import("./train.ts");
  const { ensureDefaultDataset } = await import("../../io/dataset_cache.ts");
  const gpu = await openGpu();
  const run = runConfig(preset, { data: data ?? await ensureDefaultDataset(), model: { inputSize: input } });
  const cfg = stageNetConfig(run, run.schedule[0].d2);
  const batch = await oneBatch(run.data, cfg.model.inputSize, cfg.batch);
  const t0 = performance.now();
  const net = await Net.build(gpu, { inputs: poseNetInputs(cfg), layers: poseNetLayers(cfg) }, {
    solver: makeSolver(run.solver),
    monitorEvery: TRAIN_MONITOR_EVERY,
    prewarm,
  });
  const build = (performance.now() - t0) / 1000;
  setBatch(net, batch);
  const steps: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    net.step();
    await net.sync();
    steps.push((performance.now() - t) / 1000);
  }
  const t = performance.now();
  net.forward();
  await net.readScalars();
  const infer = (performance.now() - t) / 1000;
  const out: ColdRun = { prewarm, build, steps, infer, total: (performance.now() - t0) / 1000 };
  net.destroy();
  console.log(JSON.stringify(out));
}

if (import.meta.main) {
  const { values: v } = parseArgs({
    args: Deno.args,
    options: {
      preset: { type: "string", default: "tiny" },
      input: { type: "string" },
      rounds: { type: "string", default: "1" },
      data: { type: "string" },
      out: { type: "string" },
      child: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (v.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const input = v.input ? Number(v.input) : undefined;
  if (input !== undefined && !(Number.isInteger(input) && input > 0)) {
    console.error(`cold_start: --input: expected a positive integer (the crop side), got "${v.input}"`);
    Deno.exit(2);
  }
  if (!(v.preset! in PRESETS)) {
    console.error(
      `cold_start: --preset: unknown "${v.preset}"; expected one of ${Object.keys(PRESETS).join(", ")}`,
    );
    Deno.exit(2);
  }
  if (v.child) {
    await child(v.preset!, input, v.data, v.child === "prewarm");
  } else {
    const rounds = Number(v.rounds);
    if (!Number.isInteger(rounds) || rounds < 1) {
      console.error(`cold_start: --rounds: expected a positive integer, got "${v.rounds}"`);
      Deno.exit(2);
    }
    const runs: ColdRun[] = [];
    for (let r = 0; r < rounds; r++) {
      for (const mode of ["plain", "prewarm"]) {
        const tmp = await Deno.makeTempDir({ prefix: "volpose-cold-" });
        const env = { MESA_SHADER_CACHE_DIR: join(tmp, "mesa"), XDG_CACHE_HOME: join(tmp, "cache") };
        const args = [
          "run",
          "-A",
          "--config",
          join(ROOT, "deno.json"),
          HERE,
          "--child",
          mode,
          "--preset",
          v.preset!,
        ];
        if (v.input) args.push("--input", v.input);
        if (v.data) args.push("--data", v.data);
        const res = await new Deno.Command(Deno.execPath(), { args, env, stdout: "piped", stderr: "inherit" })
          .output();
        await Deno.remove(tmp, { recursive: true });
        const line = new TextDecoder().decode(res.stdout).trim().split("\n").pop() ?? "";
        if (!res.success) {
          throw new Error(
            `cold-start child (${mode}) failed with exit code ${res.code}: ${line || "see its error above"}`,
          );
        }
        const row = JSON.parse(line) as ColdRun;
        console.log(JSON.stringify(row));
        runs.push(row);
      }
    }
    const med = (p: boolean, f: (r: ColdRun) => number) => median(runs.filter((r) => r.prewarm === p).map(f));
    const summary = Object.fromEntries([false, true].map((p) => [p ? "prewarm" : "plain", {
      build: med(p, (r) => r.build),
      firstStep: med(p, (r) => r.steps[0]),
      firstInfer: med(p, (r) => r.infer),
      total: med(p, (r) => r.total),
    }]));
    console.log(JSON.stringify({ preset: v.preset, input, rounds, summary }));
    if (v.out) await Deno.writeTextFile(v.out, JSON.stringify({ runs, summary }, null, 2) + "\n");
  }
}
