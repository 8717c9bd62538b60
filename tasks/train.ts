/**
 * `deno task train`: the command line of training (run/train.ts does the work).
 *
 * With no arguments it builds (or reuses) the default synthetic dataset and trains the `tiny`
 * preset. `--resume [DIR]` continues a run exactly where its last checkpoint left it.
 * @module
 */
import { join, resolve } from "node:path";
import { describeGpu, openGpu } from "../kernels/device.ts";
import { ensureDefaultDataset } from "../io/dataset_cache.ts";
import {
  choice,
  givenOptions,
  inRange,
  int,
  intList,
  nameList,
  num,
  type OptionTable,
  optionTable,
  parseCommandLine,
  positiveRange,
  runTask,
  str,
  UsageError,
  type Values,
} from "../io/cli.ts";
import { LEGACY_NAMES, legacyFlags, type PolicyChoice, runConfig, type RunOverrides } from "../run/config.ts";
import { PRESETS } from "../run/presets.ts";
import { openRun, RUNS_ROOT } from "../run/run_dir.ts";
import { train } from "../run/train.ts";

/** Options of `deno task train`. */
export const OPTIONS: OptionTable = optionTable({
  values: `
    data run from time-budget preset input features stem stacks link norm groups modules d1
    d2 schedule iters batch solver lr momentum rms-decay weight-decay lr-policy gamma stepsize stepvalues
    power seed flip-prob rotate scale loss-2d loss-3d loss-int int-norm loss-smoothl1 loss-js
    softmax-scale legacy display snapshot eval-every eval-samples workers
  `,
  flags: "bgr rgb skip-bad quiet",
  optional: "resume",
});

/** Options a resumed run takes: they change how it runs now, not what it computes. */
const RESUME_OPTIONS = ["resume", "run", "time-budget", "workers", "quiet"];

/** The text of `deno task train --help`. */
export const HELP = `volpose train: train the coarse-to-fine volumetric pose network

Usage: deno task train [options]

With no options: trains the "tiny" preset on the built-in synthetic dataset (generated on first
use) for ten minutes (its time budget), writing runs/<preset>-<date>/.

Data and run
  --data DIR            dataset root in the seed's layout (default: built-in synthetic data)
  --run DIR             run folder (default: runs/<preset>-<date>)
  --resume [DIR]        continue run DIR (default: the newest under runs/) from its latest
                        checkpoint, exactly as configured; only --time-budget, --workers and
                        --quiet may be given with it
  --from PREFIX         start from a checkpoint's weights (copied by name, rest re-initialised)
  --time-budget S       train at most S seconds, then finish with a checkpoint (default for tiny
                        without --iters: 600, and its decaying rate then ends with the budget
                        on the machine at hand); a resumed run continues the schedule

Model
  --preset NAME         ${Object.keys(PRESETS).join(" | ")} (default tiny)
  --input N             input crop side      --features N    hourglass width f
  --stem A,B            stem channels        --stacks N      hourglass stacks
  --link N              stack link channels  --norm batch|group  normalisation
  --groups N            channel groups of group norm
  --modules N           residual modules per hourglass branch (3 in the seed)
  --d1 N                stage-1 depth (1)    --d2 N          depth of a single-stage run

Schedule and solver
  --schedule 2,4,8      coarse-to-fine depths, trained one after another (weights handed on)
  --iters N[,N...]      iterations per stage (one value applies to every stage)
  --batch N             batch size (default: 3 for seed, 8 for small/tiny)
  --solver rmsprop|sgd|adam   --lr X   --momentum X
  --weight-decay X      L2 decay of the convolution weights (default 0, the seed's)
  --rms-decay X         RMSProp's decay of its running mean square (default 0.99, Caffe's)
  --lr-policy fixed|step|multistep|poly   --gamma X   --stepsize N   --stepvalues N,N   --power X
                        (default: poly, a linear decay to zero, for tiny; fixed otherwise)
  --seed N              seed of initialisation, sampling and augmentation (default 1)
  --flip-prob P         probability of the left-right flip augmentation (default 0.5, the seed's)
  --rotate DEG          largest rotation of the augmentation (default 40, the seed's)
  --scale LO,HI         scale range of the augmentation (default 0.7,1.3, the seed's)
                        (tiny: none of the three by default, i.e. 0, 0 and 1,1)

Losses
  --loss-2d W  --loss-3d W|seed  --loss-int W  --int-norm l1|l2  --loss-smoothl1 W  --loss-js W
  --softmax-scale X     pre-scale of the 3D softmax (default 50, the seed's; tiny: 15)

Seed compatibility (the original's bugs, each only when asked; clean by default)
  --legacy LIST         comma list of: ${LEGACY_NAMES.join(", ")},
                        all (README, "Seed compatibility")
  --bgr | --rgb         input channel order (default bgr, as the seed)

Logging
  --display N  --snapshot N  --eval-every N  --eval-samples N  --workers N  --quiet
  --skip-bad            skip and count samples with bad files instead of stopping
  -h, --help
`;

function policy(v: Values): PolicyChoice | undefined {
  const type = choice(v, "lr-policy", ["fixed", "step", "multistep", "poly"] as const);
  const gamma = num(v, "gamma");
  switch (type) {
    case undefined:
      return undefined;
    case "fixed":
      return { type };
    case "step":
      return { type, gamma, stepsize: int(v, "stepsize") };
    case "multistep":
      return { type, gamma, stepvalues: intList(v, "stepvalues") };
    case "poly":
      return { type, power: num(v, "power") };
  }
}

/** The run a command line asks for (`data`: the dataset root it resolved to). */
export function overridesFromArgs(v: Values, data: string): { preset: string; overrides: RunOverrides } {
  const stem = intList(v, "stem");
  if (stem && stem.length !== 2) {
    throw new UsageError(`--stem: expected A,B (two channel counts), got "${v.stem}"`);
  }
  const d2 = int(v, "d2");
  const loss3d = str(v, "loss-3d");
  const legacy = nameList(v, "legacy", [...LEGACY_NAMES, "all"]);
  if (v.rgb && v.bgr) throw new UsageError("--rgb and --bgr exclude each other");
  // A decay of 1 would never update the mean square (every step then divides by delta alone).
  const rmsDecay = inRange(v, "rms-decay", 0, 1, "a decay rate");
  if (rmsDecay === 1) {
    throw new UsageError(`--rms-decay: expected a decay rate below 1, got "${v["rms-decay"]}"`);
  }
  const solver = choice(v, "solver", ["rmsprop", "sgd", "adam"] as const);
  if (rmsDecay !== undefined && solver !== undefined && solver !== "rmsprop") {
    throw new UsageError(`--rms-decay applies to --solver rmsprop only, not ${solver}`);
  }
  const overrides: RunOverrides = {
    data,
    model: {
      inputSize: int(v, "input"),
      features: int(v, "features"),
      stem: stem as [number, number] | undefined,
      stacks: int(v, "stacks"),
      modules: int(v, "modules"),
      link: int(v, "link"),
      d1: int(v, "d1"),
      norm: choice(v, "norm", ["batch", "group"] as const),
      groups: int(v, "groups"),
    },
    schedule: intList(v, "schedule") ?? (d2 !== undefined ? [d2] : undefined),
    iters: intList(v, "iters"),
    timeBudgetSec: inRange(v, "time-budget", 0, Infinity, "seconds"),
    batch: int(v, "batch"),
    solver: {
      type: solver,
      baseLr: num(v, "lr"),
      momentum: num(v, "momentum"),
      rmsDecay,
      weightDecay: num(v, "weight-decay"),
      policy: policy(v),
    },
    losses: {
      heatmap2d: num(v, "loss-2d"),
      heatmap3d: loss3d === "seed" ? "seed" : num(v, "loss-3d"),
      integral: num(v, "loss-int"),
      integralNorm: choice(v, "int-norm", ["l1", "l2"] as const),
      smoothL1: num(v, "loss-smoothl1"),
      js: num(v, "loss-js"),
    },
    softmaxScale: num(v, "softmax-scale"),
    legacy: legacy ? legacyFlags(legacy as Parameters<typeof legacyFlags>[0]) : undefined,
    channelOrder: v.rgb ? "rgb" : v.bgr ? "bgr" : undefined,
    seed: int(v, "seed", 0),
    workers: int(v, "workers", 0),
    display: int(v, "display"),
    snapshot: int(v, "snapshot"),
    evalEvery: int(v, "eval-every", 0),
    evalSamples: int(v, "eval-samples"),
    skipBad: v["skip-bad"] === true ? true : undefined,
    augment: {
      flipProb: inRange(v, "flip-prob", 0, 1, "a probability"),
      maxRotateDeg: inRange(v, "rotate", 0, 180, "degrees"),
      scaleRange: positiveRange(v, "scale", "0.7,1.3"),
    },
  };
  return { preset: str(v, "preset") ?? "tiny", overrides };
}

async function main(): Promise<number> {
  const v = parseCommandLine("train", Deno.args, OPTIONS);
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const resuming = v.resume !== undefined;
  let opened;
  if (resuming) {
    const asked = str(v, "resume") || undefined;
    if (asked && v.run !== undefined && resolve(asked) !== resolve(str(v, "run")!)) {
      throw new UsageError(`--resume ${asked} and --run ${v.run} name different runs`);
    }
    const refused = givenOptions(v).filter((k) => !RESUME_OPTIONS.includes(k));
    opened = await openRun(asked ?? str(v, "run"), RUNS_ROOT);
    if (refused.length > 0) {
      throw new UsageError(
        `--resume continues ${opened.dir} exactly as ${opened.configPath} configures it; these options would ` +
          `change the run: ${refused.map((k) => `--${k}`).join(", ")}. Start a new run from one of its ` +
          `checkpoints instead (--run NEW --from ${join(opened.dir, "checkpoints", "net_iter_N")})`,
      );
    }
  }
  const gpu = await openGpu();
  console.error(describeGpu(gpu));
  let cfg, runDir;
  if (opened) {
    cfg = opened.config;
    const workers = int(v, "workers", 0);
    if (workers !== undefined) cfg.workers = workers;
    runDir = opened.dir;
    console.error(`resuming ${runDir}`);
  } else {
    const data = str(v, "data") ?? await ensureDefaultDataset({ log: (l) => console.error(l) });
    const asked = overridesFromArgs(v, resolve(data));
    cfg = runConfig(asked.preset, asked.overrides);
    const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
    runDir = str(v, "run") ?? join(RUNS_ROOT, `${cfg.preset}-${stamp}`);
  }
  const schedule = cfg.schedule.map((s) => `d${s.d2} x ${s.iters}`).join(", ") +
    (cfg.fitBudget ? " at most (it ends with the time budget)" : "");
  console.error(
    `run ${runDir}: preset ${cfg.preset} (input ${cfg.model.inputSize}, f ${cfg.model.features}, ` +
      `${cfg.model.stacks} stacks), schedule ${schedule}, ` +
      `batch ${cfg.batch}, ${cfg.solver.type} lr ${cfg.solver.baseLr} (${cfg.solver.policy.type}); data ${cfg.data}`,
  );
  const r = await train(cfg, {
    runDir,
    resume: resuming,
    from: str(v, "from"),
    gpu,
    progress: !v.quiet,
    maxSeconds: resuming ? num(v, "time-budget") : undefined,
    prewarm: true,
  });
  console.error(
    r.interrupted
      ? `stopped at iteration ${r.iter}; resume with: deno task train --resume ${runDir}`
      : `finished at iteration ${r.iter}${r.budgetReached ? " (time budget)" : ""}; evaluate with: ` +
        `deno task eval --run ${runDir}`,
  );
  return r.interrupted ? 130 : 0;
}

if (import.meta.main) await runTask("train", main);
