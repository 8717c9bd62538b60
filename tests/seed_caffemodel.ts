/**
 * The seed's files for tests: its real prototxts (gzipped in tests/fixtures/seed_prototxt/, MIT,
 * see the LICENSE there) and caffemodels of its network with random weights under its layer
 * names, of the published models' size and layout, to exercise and time `deno task import` where
 * the real models cannot be downloaded. As a script it writes one:
 *
 *   deno run -A tests/seed_caffemodel.ts OUT.caffemodel [D2 (default 64)]
 * @module
 */
import { fileURLToPath } from "node:url";
import { modelConfig } from "../run/presets.ts";
import { Rng } from "../io/prng.ts";
import type { NamedTensor } from "../graph/safetensors.ts";
import { encodeCaffeModel } from "../io/caffe_model.ts";
import { hourglassParams, seedCaffeLayers } from "../run/caffe_import.ts";

/** Path of one of the seed's prototxts in the test fixtures, e.g. "test_d64_statsfalse". */
export function seedPrototxtPath(name: string): string {
  return fileURLToPath(new URL(`./fixtures/seed_prototxt/${name}.prototxt.gz`, import.meta.url));
}

/** Random parameters of the seed network: weights ~ N(0, 0.01), positive variances, factor S as after long training. */
export function randomSeedTensors(d2: number, seed = 1): Map<string, NamedTensor> {
  const rng = new Rng(seed);
  const out = new Map<string, NamedTensor>();
  for (const { key, shape } of hourglassParams(modelConfig("seed", { d2 }))) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (key.endsWith(".moving_scale")) data.fill(999.5);
    else if (key.endsWith(".running_var")) rng.fillUniform(data, 0.5, 2);
    else rng.fillNormal(data, 0, 0.01);
    out.set(key, { shape, data });
  }
  return out;
}

if (import.meta.main) {
  const [path, d2Arg] = Deno.args;
  if (!path) {
    console.error("usage: deno run -A tests/seed_caffemodel.ts OUT.caffemodel [D2]");
    Deno.exit(2);
  }
  const d2 = Number(d2Arg ?? 64);
  const t0 = performance.now();
  const layers = seedCaffeLayers(modelConfig("seed", { d2 }), randomSeedTensors(d2));
  const bytes = encodeCaffeModel({ name: "h36mc2f3dhm", layers });
  await Deno.writeFile(path, bytes);
  console.error(
    `wrote ${path}: ${layers.length} layers, ${(bytes.length / 2 ** 20).toFixed(1)} MiB in ${
      ((performance.now() - t0) / 1000).toFixed(1)
    } s`,
  );
}
