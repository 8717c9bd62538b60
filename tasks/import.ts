/**
 * `deno task import`: turns one of the seed's trained networks (a caffemodel and the prototxt
 * that defines it) into a volpose run folder that `deno task eval --run` evaluates. The work is
 * in run/caffe_import.ts; this file only reads the command line.
 * @module
 */
import {
  int,
  nameList,
  type OptionTable,
  optionTable,
  parseCommandLine,
  runTask,
  str,
  UsageError,
} from "../io/cli.ts";
import { LEGACY_NAMES, legacyFlags } from "../run/config.ts";
import { checkSeedPrototxt, importSeedModel } from "../run/caffe_import.ts";

/** Options of `deno task import`. */
export const OPTIONS: OptionTable = optionTable({
  values: "caffemodel prototxt out d2 iter data legacy",
  flags: "check force",
});

/** The text of `deno task import --help`. */
export const HELP = `volpose import: a volpose run from one of the seed's caffemodels

Usage: deno task import --caffemodel FILE --prototxt FILE --out DIR [options]
       deno task import --prototxt FILE --check

Checks that every learnable layer of the prototxt maps one to one (name, blob shapes, kernel,
stride, pad, group, inputs) onto the seed preset at the prototxt's d2 (conv_5_d{D}), converts the
caffemodel's blobs (BatchNorm statistics divided by their moving-average factor, each Scale into
its BatchNorm's affine weight and bias) and writes DIR/config.json and
DIR/checkpoints/net_iter_<N>.safetensors. Evaluate with: deno task eval --run DIR --data H36M

  --caffemodel FILE   the seed's weights, e.g. net_iter_720929.caffemodel
  --prototxt FILE     the net definition that goes with them, e.g. test_d64_statsfalse.prototxt
                      (may be gzip-compressed)
  --out DIR           run folder to write
  --d2 N              refuse unless the prototxt's d2 is N
  --iter N            iteration of the checkpoint (default: from the file name net_iter_N, else 0)
  --data DIR          dataset root recorded in config.json (default h36m; eval --data overrides it)
  --legacy LIST       legacy switches recorded in config.json (default none): a comma list of
                      ${LEGACY_NAMES.join(", ")}, all
  --check             only check the prototxt against the preset (no --caffemodel or --out)
  --force             overwrite an existing config.json and checkpoint in DIR
  -h, --help
`;

async function main(): Promise<number> {
  const v = parseCommandLine("import", Deno.args, OPTIONS);
  if (v.help) {
    console.log(HELP);
    return 0;
  }
  const prototxt = str(v, "prototxt"), caffemodel = str(v, "caffemodel"), out = str(v, "out");
  if (!prototxt) throw new UsageError("--prototxt FILE is required");
  const d2 = int(v, "d2", 1);
  const legacy = nameList(v, "legacy", [...LEGACY_NAMES, "all"] as const);
  if (v.check) {
    const { d2: D, report } = await checkSeedPrototxt(prototxt, { d2 });
    const c = report.counts;
    console.log(
      `${prototxt}: ${c.convolutions} convolutions, ${c.deconvolutions} deconvolutions, ` +
        `${c.batchNorms} BatchNorm + ${c.scales} Scale layers map one to one onto the seed preset at d2 = ${D}`,
    );
    return 0;
  }
  if (!caffemodel) throw new UsageError("--caffemodel FILE is required");
  if (!out) throw new UsageError("--out DIR is required");
  const t0 = performance.now();
  const r = await importSeedModel({
    caffemodel,
    prototxt,
    out,
    d2,
    iter: int(v, "iter", 0),
    data: str(v, "data"),
    legacy: legacy ? legacyFlags(legacy) : undefined,
    force: v.force === true,
  });
  const c = r.structure.counts, s = r.seconds;
  console.error(
    `prototxt: ${c.convolutions} convolutions, ${c.deconvolutions} deconvolutions, ${c.batchNorms} BatchNorm + ` +
      `${c.scales} Scale layers match the seed preset at d2 = ${r.d2}`,
  );
  for (const name of r.weights.zeroFactor) {
    console.error(
      `note: BatchNorm "${name}" has moving-average factor 0: its running statistics are 0, as in Caffe`,
    );
  }
  console.error(
    `imported ${r.weights.layers} layers, ${(r.weights.values / 1e6).toFixed(2)} M values in ` +
      `${((performance.now() - t0) / 1000).toFixed(1)} s (read ${s.read.toFixed(1)} s, convert ${
        s.convert.toFixed(1)
      } s, write ${s.write.toFixed(1)} s)`,
  );
  console.log(`wrote ${r.config}\nwrote ${r.checkpoint} (iteration ${r.iter})`);
  console.log(`evaluate with: deno task eval --run ${out} --data <dataset root>`);
  return 0;
}

if (import.meta.main) await runTask("import", main);
