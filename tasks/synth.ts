/**
 * `deno task synth --out DIR [--train N] [--test M] [--seed S] [--workers K] [--force]`
 *
 * Writes a synthetic dataset in the seed's on-disk layout (see io/synth_dataset.ts): per-sample
 * text files, 224x224 PNG crops, index_range/ and volpose_manifest.json.
 * @module
 */

import { int, type OptionTable, optionTable, parseCommandLine, runTask, str, UsageError } from "../io/cli.ts";
import { generateDataset, stderrProgressBar } from "../io/synth_dataset.ts";

/** Options of `deno task synth`. */
export const OPTIONS: OptionTable = optionTable({
  values: "out train test seed workers name",
  flags: "force",
});

/** The text of `deno task synth --help`. */
export const HELP = `usage: deno task synth --out DIR [options]

  --out DIR      dataset root to create (must be empty or absent unless --force)
  --train N      samples of the training subjects S1 S5 S6 S7 S8 (default 6000)
  --test M       samples of the test subjects S9 S11 (default 1000)
  --seed S       seed of every random choice (default 1)
  --workers K    render workers (default: CPU cores, at most 8; 0 = main thread)
  --name NAME    dataset name stored in the manifest
  --force        write into a non-empty folder
  -h, --help     this text
`;

function isEmptyOrMissing(dir: string): boolean {
  try {
    for (const _ of Deno.readDirSync(dir)) return false;
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return true;
    throw e;
  }
}

async function main(): Promise<number> {
  const v = parseCommandLine("synth", Deno.args, OPTIONS);
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const out = str(v, "out");
  if (!out) throw new UsageError("--out DIR is required");
  if (!v.force && !isEmptyOrMissing(out)) {
    throw new UsageError(`${out} is not empty; pick another --out or pass --force`);
  }
  const opts = {
    train: int(v, "train", 0) ?? 6000,
    test: int(v, "test", 0) ?? 1000,
    seed: int(v, "seed", 0) ?? 1,
    workers: int(v, "workers", 0),
    name: str(v, "name"),
  };
  console.error(`synth: ${opts.train} train + ${opts.test} test samples, seed ${opts.seed} -> ${out}`);
  const { manifest, seconds } = await generateDataset(out, {
    ...opts,
    onProgress: stderrProgressBar("synth"),
  });
  console.error(
    `synth: wrote ${manifest.numSamples} samples in ${seconds.toFixed(1)} s ` +
      `(${(manifest.numSamples / seconds).toFixed(1)} samples/s); train ${
        JSON.stringify(manifest.splits.train)
      }, ` +
      `test ${JSON.stringify(manifest.splits.test)}`,
  );
  return 0;
}

if (import.meta.main) await runTask("synth", main);
