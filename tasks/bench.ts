/**
 * `deno task bench`: measures what matters for speed and memory, as JSON on stdout (a summary
 * goes to stderr). Sections: the fixed cost of one dispatch, conv forward/dgrad/wgrad and GEMM
 * GFLOP/s, layer kernels, the volumetric ops at D = 64, the input pipeline with 1 and all workers,
 * the training step rate of the presets it must feed, and the GPU memory of the seed network at
 * batch 3, d2 = 64.
 * @module
 */
import { describeGpu, type Gpu, openGpu } from "../kernels/device.ts";
import { Net } from "../graph/net.ts";
import { poseNetInputs, poseNetLayers } from "../graph/models/pose_net.ts";
import { modelConfig } from "../run/presets.ts";
import { RMSProp } from "../graph/solver.ts";
import { runConfig } from "../run/config.ts";
import { type OptionTable, optionTable, parseCommandLine, runTask, str } from "../io/cli.ts";
import { benchConv, benchGemm } from "../run/bench/conv.ts";
import { benchLayers } from "../run/bench/layers.ts";
import { benchDispatch } from "../run/bench/dispatch.ts";
import { benchVolumetric } from "../run/bench/volumetric.ts";
import {
  benchTrainStep,
  describeFamilies,
  parsePresetSpec,
  specName,
  type TrainStepResult,
  trainTable,
} from "../run/bench/train.ts";
import { benchPipeline } from "../stages/bench_pipeline.ts";
import { ensureDefaultDataset } from "../io/dataset_cache.ts";

const SECTIONS = ["dispatch", "conv", "layers", "volumetric", "pipeline", "train", "memory"] as const;
/** The presets whose training step `train` times by default: the CPU default, its 64-pixel input, small. */
const DEFAULT_PRESETS = "tiny,tiny@64,small";
type Section = typeof SECTIONS[number];

/** Options of `deno task bench`. */
export const OPTIONS: OptionTable = optionTable({ values: "only data out presets", flags: "quick profile" });

/** The text of `deno task bench --help`. */
export const HELP = `volpose bench: speed and memory figures as JSON on stdout

Usage: deno task bench [--only ${SECTIONS.join(",")}] [--quick] [--data DIR] [--out FILE]
                       [--presets tiny,small] [--profile]

  --only LIST     run only these sections (default: all)
  --quick         smaller problems and fewer runs (a smoke test of the bench itself)
  --data DIR      dataset for the pipeline and training sections (default: built-in synthetic)
  --presets LIST  presets whose training step is timed, NAME or NAME@INPUT (default ${DEFAULT_PRESETS})
  --profile       (kept for compatibility: every timed step now reports its kernel families)
  --out FILE      also write the JSON there
  -h, --help      this text
`;

/** Training-step figures of each preset spec ("tiny", "tiny@64", ...) on real data. */
async function benchTrain(
  gpu: Gpu,
  data: string,
  opts: { presets: string; quick: boolean; say: (s: string) => void },
): Promise<TrainStepResult[]> {
  const rows: TrainStepResult[] = [];
  for (const item of opts.presets.split(",")) {
    const spec = parsePresetSpec(item);
    const run = runConfig(spec.preset, { data, model: { inputSize: spec.input } });
    opts.say(`training step, ${specName(spec.preset, spec.input ?? run.model.inputSize)} ...`);
    const r = await benchTrainStep(gpu, run, { quick: opts.quick });
    rows.push(r);
    opts.say(
      `  ${r.msPerStep.toFixed(1)} ms/step (${
        r.samplesPerSec.toFixed(1)
      } samples/s), ${r.dispatchesPerStep} ` +
        `dispatches, JS ${r.encodeMsPerStep.toFixed(2)} ms/step, ${r.cpuCores.toFixed(2)} cores busy; ` +
        describeFamilies(r),
    );
  }
  return rows;
}

/** GPU bytes of the seed network's training program (parameters, activations, gradients, solver). */
async function benchSeedMemory(gpu: Gpu): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const d2 of [64, 2]) {
    const cfg = {
      model: modelConfig("seed", { d2 }),
      batch: 3,
      losses: { heatmap2d: 1, heatmap3d: 0.03, integral: 0, integralNorm: "l1" as const, smoothL1: 0, js: 0 },
      softmaxScale: 50,
      legacy: { heatmaps: false, depthBounds: false, cropAsBbx: false, softmax: false },
    };
    const net = await Net.build(gpu, { inputs: poseNetInputs(cfg), layers: poseNetLayers(cfg) }, {
      solver: new RMSProp({ baseLr: 2.5e-5 }),
    });
    out[`d${d2}`] = {
      batch: 3,
      paramsM: +(net.paramCount() / 1e6).toFixed(3),
      trainGpuMiB: +(net.gpuBytes / 2 ** 20).toFixed(1),
      parameterMiB: +(net.layout.bytes / 2 ** 20).toFixed(1),
      dispatchesPerStep: net.dispatchCount(),
    };
    net.destroy();
  }
  return out;
}

async function main(): Promise<number> {
  const values = parseCommandLine("bench", Deno.args, OPTIONS);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const only = (str(values, "only") ?? SECTIONS.join(",")).split(",").map((s) => s.trim()) as Section[];
  for (const s of only) {
    if (!SECTIONS.includes(s)) {
      throw new Error(`--only: unknown section "${s}"; expected ${SECTIONS.join(", ")}`);
    }
  }
  const quick = values.quick === true;
  const gpu = await openGpu();
  console.error(describeGpu(gpu));
  const result: Record<string, unknown> = {
    date: new Date().toISOString(),
    adapter: gpu.adapterName,
    backend: gpu.backend,
    cpuFallback: gpu.isFallback,
    cores: navigator.hardwareConcurrency,
  };
  const say = (s: string) => console.error(`bench: ${s}`);
  let data: string | null = null;
  const dataset = async () => data ??= str(values, "data") ?? await ensureDefaultDataset({ log: say });

  if (only.includes("dispatch")) {
    const d = await benchDispatch(gpu, { runs: quick ? 3 : 5, perRun: quick ? 200 : 1000 });
    result.dispatch = d;
    say(
      `dispatch: ${d.oneGroupUs.toFixed(1)} us each (1 workgroup), ${d.manyGroupsUs.toFixed(1)} us ` +
        `(64 workgroups of 64)${d.lpNumThreads === null ? "" : `, LP_NUM_THREADS=${d.lpNumThreads}`}`,
    );
  }
  if (only.includes("conv")) {
    say("conv and GEMM ...");
    const conv = await benchConv({ gpu, quick });
    const gemm = await benchGemm({ gpu, quick });
    result.conv = conv;
    result.gemm = gemm;
    // The tiny preset's typical layer, 3x3 32 -> 32 on 8x16x16: both kernel families, side by side.
    const small = [8, 32, 16, 16, 32] as const;
    result.smallConv = {
      gemm: await benchConv({ gpu, quick, problem: small, path: "gemm" }),
      direct: await benchConv({ gpu, quick, problem: small, path: "direct" }),
    };
    for (const [name, r] of Object.entries(result.smallConv as Record<string, typeof conv>)) {
      say(
        `conv ${r.problem} (${name}): forward ${r.forward.gflops.toFixed(1)}, dgrad ${
          r.dgrad.gflops.toFixed(1)
        }, wgrad ${r.wgrad.gflops.toFixed(1)} GFLOP/s`,
      );
    }
    say(
      `conv ${conv.problem}: forward ${conv.forward.gflops.toFixed(1)}, dgrad ${
        conv.dgrad.gflops.toFixed(1)
      }, ` +
        `wgrad ${conv.wgrad.gflops.toFixed(1)} GFLOP/s; GEMM ${gemm.problem}: ${
          gemm.gemm.gflops.toFixed(1)
        } GFLOP/s`,
    );
  }
  if (only.includes("layers")) {
    say("layers ...");
    const l = await benchLayers({ gpu, runs: quick ? 3 : 7 });
    result.layers = l;
    say(
      `BN+ReLU ${l.bnReluForwardMs.toFixed(2)}/${l.bnReluBackwardMs.toFixed(2)} ms fwd/bwd on ${
        l.shape.join("x")
      }`,
    );
  }
  if (only.includes("volumetric")) {
    say("volumetric ops at D = 64 ...");
    const v = await benchVolumetric({ gpu, runs: quick ? 3 : 9 });
    result.volumetric = v;
    say(
      `per sample: target ${v.perSample.renderMs.toFixed(1)} ms, softmax x50 + soft-argmax forward ` +
        `${v.perSample.forwardMs.toFixed(1)} ms, backward ${v.perSample.backwardMs.toFixed(1)} ms`,
    );
  }
  if (only.includes("pipeline")) {
    const root = await dataset();
    const rows = [];
    for (const inputSize of quick ? [64] : [64, 256]) {
      for (const workers of [1, navigator.hardwareConcurrency]) {
        say(`input pipeline: ${workers} worker(s), input ${inputSize} ...`);
        const p = await benchPipeline(root, { workers, inputSize, batchSize: 8, batches: quick ? 4 : 20 });
        rows.push(p);
        say(`  ${p.samplesPerSec.toFixed(1)} samples/s`);
      }
    }
    result.pipeline = rows;
  }
  if (only.includes("train")) {
    const root = await dataset();
    const presets = str(values, "presets") ?? (quick ? "tiny" : DEFAULT_PRESETS);
    const train = await benchTrain(gpu, root, { presets, quick, say });
    result.train = train;
    console.error(`\n${trainTable(train)}\n`);
  }
  if (only.includes("memory")) {
    say("seed network memory at batch 3 ...");
    result.seedMemory = await benchSeedMemory(gpu);
    say(`  ${JSON.stringify(result.seedMemory)}`);
  }
  const json = JSON.stringify(result, null, 2);
  console.log(json);
  const out = str(values, "out");
  if (out) await Deno.writeTextFile(out, json + "\n");
  return 0;
}

if (import.meta.main) await runTask("bench", main);
