/**
 * `deno task synth --out DIR [--train N] [--test M] [--seed S] [--workers K] [--force]`
 *
 * Writes a synthetic dataset in the seed's on-disk layout (see io/synth_dataset.ts): per-sample
 * text files, 224x224 PNG crops, index_range/ and volpose_manifest.json.
 * @module
 */

import { parseArgs } from "node:util";
import { generateDataset, stderrProgressBar } from "../io/synth_dataset.ts";

const USAGE = `usage: deno task synth --out DIR [options]

  --out DIR      dataset root to create (must be empty or absent unless --force)
  --train N      samples of the training subjects S1 S5 S6 S7 S8 (default 6000)
  --test M       samples of the test subjects S9 S11 (default 1000)
  --seed S       seed of every random choice (default 1)
  --workers K    render workers (default: CPU cores, at most 8; 0 = main thread)
  --name NAME    dataset name stored in the manifest
  --force        write into a non-empty folder
`;

function intArg(name: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) {
    console.error(`--${name}: expected a non-negative integer, got ${JSON.stringify(v)}\n\n${USAGE}`);
    Deno.exit(2);
  }
  return n;
}

function isEmptyOrMissing(dir: string): boolean {
  try {
    for (const _ of Deno.readDirSync(dir)) return false;
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return true;
    throw e;
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      out: { type: "string" },
      train: { type: "string" },
      test: { type: "string" },
      seed: { type: "string" },
      workers: { type: "string" },
      name: { type: "string" },
      force: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (!values.out) {
    console.error(`--out is required\n\n${USAGE}`);
    Deno.exit(2);
  }
  if (!values.force && !isEmptyOrMissing(values.out)) {
    console.error(`${values.out} is not empty; pick another --out or pass --force`);
    Deno.exit(2);
  }
  const opts = {
    train: intArg("train", values.train, 6000),
    test: intArg("test", values.test, 1000),
    seed: intArg("seed", values.seed, 1),
    workers: values.workers === undefined ? undefined : intArg("workers", values.workers, 0),
    name: values.name,
  };
  console.error(`synth: ${opts.train} train + ${opts.test} test samples, seed ${opts.seed} -> ${values.out}`);
  const { manifest, seconds } = await generateDataset(values.out, {
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
}

if (import.meta.main) await main();
