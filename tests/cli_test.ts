/**
 * The command line of every task: its --help lists exactly the options its parser takes, a stray
 * word is refused with a pointer to --help, and `train --resume DIR` continues that run (and
 * refuses options that would change it).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { helpOptionNames, type OptionTable, optionTable, parseCommandLine, UsageError } from "../io/cli.ts";
import { generateDataset } from "../io/synth_dataset.ts";
import { makeSolver, runConfig } from "../run/config.ts";
import type { RMSProp } from "../graph/solver.ts";
import { tinyRunConfig } from "./tiny_run.ts";
import { train } from "../run/train.ts";
import { sharedGpu } from "../kernels/device.ts";
import * as trainTask from "../tasks/train.ts";
import * as evalTask from "../tasks/eval.ts";
import * as synthTask from "../tasks/synth.ts";
import * as inspectTask from "../tasks/inspect.ts";
import * as benchTask from "../tasks/bench.ts";
import * as importTask from "../tasks/import.ts";

const TASKS: Record<string, { OPTIONS: OptionTable; HELP: string }> = {
  train: trainTask,
  eval: evalTask,
  synth: synthTask,
  inspect: inspectTask,
  bench: benchTask,
  import: importTask,
};

/** Runs a task file as `deno task NAME` would, in `cwd`. */
async function task(
  name: string,
  args: string[],
  cwd?: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const path = new URL(`../tasks/${name}.ts`, import.meta.url).pathname;
  const config = new URL("../deno.json", import.meta.url).pathname;
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", config, path, ...args],
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

for (const [name, t] of Object.entries(TASKS)) {
  Deno.test(`cli ${name}: --help lists exactly the options the parser takes`, () => {
    assert.deepEqual(helpOptionNames(t.HELP), Object.keys(t.OPTIONS).sort());
  });
}

Deno.test("cli: the help parser finds two-column entries and ignores options named inside descriptions", () => {
  const help = `Usage: deno task x [--only LIST]
  --alpha N             first      --beta-gamma X   second, unlike --delta
                        see --epsilon in the text
  -h, --help`;
  assert.deepEqual(helpOptionNames(help), ["alpha", "beta-gamma", "help"]);
});

Deno.test("cli: unknown options and stray words are usage errors that name them", () => {
  const opts: OptionTable = { n: { type: "string" }, flag: { type: "boolean" } };
  assert.deepEqual(parseCommandLine("t", ["--n", "3", "--flag"], opts), { n: "3", flag: true });
  assert.throws(
    () => parseCommandLine("t", ["oops"], opts),
    (e) => e instanceof UsageError && /"oops"/.test(e.message),
  );
  assert.throws(() => parseCommandLine("t", ["--n", "1", "a", "b"], opts), /unexpected arguments "a", "b"/);
  assert.throws(
    () => parseCommandLine("t", ["--nope"], opts),
    (e) => e instanceof UsageError && /nope/.test(e.message),
  );
  // An option whose value may be left out takes the next word unless it is another option.
  const withResume = optionTable({ values: "run", optional: "resume" });
  assert.deepEqual(parseCommandLine("t", ["--resume", "runs/b"], withResume), { resume: "runs/b" });
  assert.deepEqual(parseCommandLine("t", ["--resume", "--run", "x"], withResume), { resume: "", run: "x" });
  assert.deepEqual(parseCommandLine("t", ["--resume"], withResume), { resume: "" });
});

for (const name of Object.keys(TASKS)) {
  Deno.test(`cli ${name}: a stray argument is refused with a pointer to --help, before any work starts`, async () => {
    const r = await task(name, ["oops"]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`${name}: unexpected argument "oops"`));
    assert.match(r.stderr, new RegExp(`deno task ${name} --help`));
  });
}

Deno.test("cli train: option values are checked and named", () => {
  const parse = (args: string[]) =>
    trainTask.overridesFromArgs(parseCommandLine("train", args, trainTask.OPTIONS), "/data");
  const ok = parse(["--preset", "small", "--flip-prob", "0.25", "--rotate", "15", "--scale", "0.9,1.1"]);
  assert.equal(ok.preset, "small");
  assert.deepEqual(ok.overrides.augment, { flipProb: 0.25, maxRotateDeg: 15, scaleRange: [0.9, 1.1] });
  const cfg = runConfig(ok.preset, ok.overrides);
  assert.deepEqual([cfg.flipProb, cfg.maxRotateDeg, cfg.scaleRange, cfg.batch], [0.25, 15, [0.9, 1.1], 8]);
  const rms = runConfig("tiny", parse(["--rms-decay", "0.9"]).overrides).solver;
  assert.equal(rms.rmsDecay, 0.9);
  assert.equal((makeSolver(rms) as RMSProp).rmsDecay, 0.9);
  for (
    const [args, msg] of [
      [["--flip-prob", "1.5"], /--flip-prob: expected a probability/],
      [["--flip-prob", "x"], /--flip-prob: expected a number/],
      [["--rotate=-5"], /--rotate: expected degrees/],
      [["--scale", "1.3,0.7"], /--scale: expected LO,HI/],
      [["--scale", "1"], /--scale: expected LO,HI/],
      [["--batch", "2.5"], /--batch: expected an integer >= 1, got "2.5"/],
      [["--stem", "8"], /--stem: expected A,B/],
      [["--legacy", "heatmaps,nope"], /--legacy: unknown "nope"/],
      [["--norm", "layer"], /--norm: expected batch or group/],
      [["--rms-decay", "1.5"], /--rms-decay: expected a decay rate in \[0, 1\], got "1.5"/],
      [["--rms-decay", "1"], /--rms-decay: expected a decay rate below 1, got "1"/],
      [["--solver", "sgd", "--rms-decay", "0.9"], /--rms-decay applies to --solver rmsprop only, not sgd/],
    ] as const
  ) {
    assert.throws(() => parse([...args]), (e) => e instanceof UsageError && msg.test(e.message));
  }
  const legacy = runConfig("tiny", parse(["--legacy", "heatmaps,softmax"]).overrides).legacy;
  assert.deepEqual(Object.entries(legacy).filter(([, on]) => on).map(([k]) => k), ["heatmaps", "softmax"]);
});

Deno.test("cli train: --resume DIR continues that run, not the newest; options that would change it are refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "volpose_cli_resume_" });
  try {
    const data = join(dir, "data");
    await generateDataset(data, { train: 8, test: 4, seed: 6, workers: 0 });
    const quiet = { gpu: await sharedGpu(), progress: false, log: () => {} };
    const base = tinyRunConfig(data, { schedule: [2], iters: 2 });
    // Run b stops at iteration 2 of the 3 its config asks for; run a is newer and finished.
    const b = join(dir, "runs", "b"), a = join(dir, "runs", "a");
    await train(base, { runDir: b, ...quiet });
    await Deno.writeTextFile(
      join(b, "config.json"),
      JSON.stringify({ ...base, schedule: [{ d2: 2, iters: 3 }] }, null, 2),
    );
    await train(base, { runDir: a, ...quiet });
    const aMetrics = await Deno.readTextFile(join(a, "metrics.jsonl"));

    const r = await task("train", ["--resume", "runs/b", "--quiet"], dir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /resuming runs\/b/);
    assert.ok((await Deno.stat(join(b, "checkpoints", "net_iter_3.safetensors"))).isFile);
    assert.equal(await Deno.readTextFile(join(a, "metrics.jsonl")), aMetrics, "run a was not touched");

    // Options that would change the run are named and refused; --run DIR names the same run.
    const refused = await task("train", ["--resume", "--run", "runs/b", "--batch", "4", "--lr", "1"], dir);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /continues runs\/b .*would change the run: --batch, --lr/s);
    const clash = await task("train", ["--resume", "runs/a", "--run", "runs/b"], dir);
    assert.equal(clash.code, 2);
    assert.match(clash.stderr, /--resume runs\/a and --run runs\/b name different runs/);
    // A folder without a run config is named, with what it lacks.
    const notRun = await task("train", ["--resume", "data"], dir);
    assert.equal(notRun.code, 1);
    assert.match(notRun.stderr, /data\/config\.json not found: data is not a run folder/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
