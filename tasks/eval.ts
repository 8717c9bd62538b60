/**
 * `deno task eval`: the command line of evaluation (run/evaluate.ts does the work).
 * @module
 */
import { join } from "node:path";
import {
  choice,
  int,
  nameList,
  type OptionTable,
  optionTable,
  parseCommandLine,
  runTask,
  str,
  UsageError,
} from "../io/cli.ts";
import { formatReportJson, formatReportTable } from "../io/report.ts";
import { LEGACY_NAMES, legacyFlags } from "../run/config.ts";
import { DEFAULT_EVAL_SUBSET, evaluate } from "../run/evaluate.ts";
import { exists } from "../run/run_dir.ts";

/** Options of `deno task eval`. */
export const OPTIONS: OptionTable = optionTable({
  values: `
    run checkpoint data out samples seed protocol batch stats legacy vis vis-decoder dump
    baseline-samples workers
  `,
  flags: "full flip json quiet",
});

/** The text of `deno task eval --help`. */
export const HELP = `volpose eval: evaluate a trained run on the test split

Usage: deno task eval [options]

Run and data
  --run DIR            run folder (config.json + checkpoints/); default: the newest under runs/
  --checkpoint PREFIX  checkpoint to load (default: the run's latest), e.g. DIR/checkpoints/net_iter_500
  --data DIR           dataset root (default: the run's)
  --out DIR            output folder (default: <run>/eval-<subset>)

Samples
  --samples N          size of the seeded random test subset (default ${DEFAULT_EVAL_SUBSET}); training's
                       held-out monitor scores its first ones
  --seed N             seed of that subset (default 1)
  --full               every test id in order instead
  --protocol 2         the Protocol-2 id list (index_range/Protocol2/all_id.txt) instead

Network
  --batch N            samples per pass (default 3, as the seed; batch-norm statistics are per batch)
  --stats batch|running  batch-norm statistics at test time (default batch, as the seed)
  --flip               flip test: average with the un-mirrored prediction on the mirrored image
  --legacy LIST        the seed's bug families to switch on besides the run's own: comma list of
                       ${LEGACY_NAMES.join(", ")}, all

Outputs (always: report.json, report.md, samples.csv)
  --vis N              pictures of the first N samples in <out>/vis/ and <out>/index.html
  --vis-decoder max|int  decoder shown in the pictures (default int)
  --dump BLOB,...      write <out>/dump/<blob>_<id>.txt per sample (the seed's OutputBlob rows)
  --baseline-samples N training samples averaged into the mean-pose baseline (default 2000)
  --json               print the report JSON on stdout (everything else on stderr)
  --workers N          input pipeline workers (default: all cores)
  --quiet              no progress bar
  -h, --help
`;

async function main(): Promise<number> {
  const v = parseCommandLine("eval", Deno.args, OPTIONS);
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const protocol = str(v, "protocol");
  if (protocol !== undefined && protocol !== "2") {
    throw new UsageError(`--protocol: only 2 is supported, got "${protocol}"`);
  }
  if (v.full && protocol) throw new UsageError("--full and --protocol 2 exclude each other");
  const legacy = nameList(v, "legacy", [...LEGACY_NAMES, "all"] as const);
  const { report, outDir } = await evaluate({
    run: str(v, "run"),
    checkpoint: str(v, "checkpoint"),
    data: str(v, "data"),
    out: str(v, "out"),
    subset: v.full ? "full" : protocol ? "protocol2" : "random",
    samples: int(v, "samples"),
    seed: int(v, "seed", 0),
    batch: int(v, "batch"),
    stats: choice(v, "stats", ["batch", "running"] as const),
    flip: v.flip === true,
    prewarm: true,
    // Only switches on: the run's own switches stay as trained.
    legacy: legacy
      ? Object.fromEntries(Object.entries(legacyFlags(legacy)).filter(([, on]) => on))
      : undefined,
    vis: int(v, "vis", 0),
    visDecoder: choice(v, "vis-decoder", ["max", "int"] as const),
    dump: str(v, "dump")?.split(",").map((s) => s.trim()).filter(Boolean),
    baselineSamples: int(v, "baseline-samples"),
    workers: int(v, "workers", 0),
    progress: !v.quiet,
  });
  const table = formatReportTable(report);
  if (v.json) {
    console.error(table);
    console.log(formatReportJson(report).trimEnd());
  } else console.log(table);
  const html = await exists(join(outDir, "index.html"));
  console.error(
    `\nwrote report.json, report.md, samples.csv${html ? ", index.html, vis/" : ""} to ${outDir}`,
  );
  return 0;
}

if (import.meta.main) await runTask("eval", main);
