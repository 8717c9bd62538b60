/**
 * `deno task import`: turns one of the seed's trained networks (a caffemodel and the prototxt
 * that defines it) into a volpose run folder that `deno task eval --run` evaluates. The work is
 * in run/caffe_import.ts; this file only reads the command line.
 * @module
 */
import { parseArgs } from "node:util";
import { checkSeedPrototxt, importSeedModel, LEGACY_NAMES, legacyFromList } from "../run/caffe_import.ts";

const HELP = `volpose import: a volpose run from one of the seed's caffemodels

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
                      ${LEGACY_NAMES.join(", ")}, all or none
  --check             only check the prototxt against the preset (no --caffemodel or --out)
  --force             overwrite an existing config.json and checkpoint in DIR
  -h, --help
`;

function intArg(v: string | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const x = Number(v);
  if (!Number.isInteger(x) || x < 0) throw new Error(`--${name}: expected an integer >= 0, got "${v}"`);
  return x;
}

/** The command line; parseArgs' own errors (an unknown option, a missing value) point to --help. */
function parseCommandLine(args: string[]) {
  try {
    return parseArgs({
      args,
      options: {
        caffemodel: { type: "string" },
        prototxt: { type: "string" },
        out: { type: "string" },
        d2: { type: "string" },
        iter: { type: "string" },
        data: { type: "string" },
        legacy: { type: "string" },
        check: { type: "boolean" },
        force: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: true,
    });
  } catch (e) {
    throw new Error(`${(e as Error).message} (see --help)`);
  }
}

async function main(): Promise<number> {
  const { values, positionals } = parseCommandLine(Deno.args);
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (positionals.length) {
    throw new Error(`unexpected argument "${positionals[0]}"; every input is an option (see --help)`);
  }
  if (!values.prototxt) throw new Error("--prototxt FILE is required (see --help)");
  const d2 = intArg(values.d2, "d2");
  if (values.check) {
    const { d2: D, report } = await checkSeedPrototxt(values.prototxt, { d2 });
    const c = report.counts;
    console.log(
      `${values.prototxt}: ${c.convolutions} convolutions, ${c.deconvolutions} deconvolutions, ` +
        `${c.batchNorms} BatchNorm + ${c.scales} Scale layers map one to one onto the seed preset at d2 = ${D}`,
    );
    return 0;
  }
  if (!values.caffemodel) throw new Error("--caffemodel FILE is required (see --help)");
  if (!values.out) throw new Error("--out DIR is required (see --help)");
  const t0 = performance.now();
  const r = await importSeedModel({
    caffemodel: values.caffemodel,
    prototxt: values.prototxt,
    out: values.out,
    d2,
    iter: intArg(values.iter, "iter"),
    data: values.data,
    legacy: values.legacy === undefined ? undefined : legacyFromList(values.legacy),
    force: values.force,
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
  console.log(`evaluate with: deno task eval --run ${values.out} --data <dataset root>`);
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    console.error(`import: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
