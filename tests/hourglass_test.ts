import assert, { strictEqual as assertEquals, throws } from "node:assert";
import type { Shape } from "../graph/layer.ts";
import { hourglassLayers } from "../graph/models/hourglass.ts";
import { modelConfig } from "../run/presets.ts";

/** Learnable parameters and layer names of a model, from the layers' own shape setup (no GPU). */
function structure(model: ReturnType<typeof modelConfig>): { params: number; names: Set<string> } {
  const { layers } = hourglassLayers(model);
  const shapes = new Map<string, Shape>([["image", [1, 3, model.inputSize, model.inputSize]]]);
  let params = 0;
  for (const l of layers) {
    const tops = l.setup(l.bottoms.map((b) => shapes.get(b)!), {
      param: (d) => {
        if (d.learnable) params += d.shape.reduce((a, b) => a * b, 1);
        return 0;
      },
      state: () => 0,
      workspace: () => {},
    });
    l.tops.forEach((t, i) => shapes.set(t, tops[i]));
  }
  return { params, names: new Set(layers.map((l) => l.name)) };
}

Deno.test("hourglass: the seed preset has the published size; modules default to the seed's three", () => {
  const seed = structure(modelConfig("seed"));
  // 40.48 M learnable tensors (the frozen bilinear upsampling included), as the training step reports it.
  assert(Math.abs(seed.params / 1e6 - 40.48) < 0.01, `seed preset: ${seed.params} parameters`);
  const explicit = structure(modelConfig("seed", { modules: 3 }));
  assertEquals(explicit.params, seed.params);
  for (const n of ["hg1_skip3_out", "hg1_down3_out", "hg2_sub_skip3_out", "hg2_sub_inner_down3_out"]) {
    assert(seed.names.has(n), `seed network lacks ${n}`);
  }
});

Deno.test("hourglass: fewer modules per branch keep the names, levels and output widths", () => {
  // At input 64 the tiny hourglass recurses twice (16 -> 8 -> 4), so the sub-level names exist.
  const three = structure(modelConfig("tiny", { modules: 3, inputSize: 64 }));
  const one = structure(modelConfig("tiny", { modules: 1, inputSize: 64 }));
  assert(one.params < three.params, `${one.params} >= ${three.params}`);
  // The last module of each branch still widens the skip path to 2f; heads and link are unchanged.
  for (const n of ["hg1_skip1_out", "hg1_down1_out", "hg1_sub_skip1_out", "conv_5_d16", "link", "conv_2_n"]) {
    assert(one.names.has(n), `modules 1 lacks ${n}`);
  }
  assert(!one.names.has("hg1_skip2_out"));
  throws(() => structure(modelConfig("tiny", { modules: 0 })), /modules must be an integer/);
});
