import assert from "node:assert/strict";
import { join } from "node:path";
import { sharedGpu } from "../kernels/device.ts";
import type { Shape } from "../graph/layer.ts";
import { Net } from "../graph/net.ts";
import { loadCheckpoint, saveWeights } from "../graph/checkpoint.ts";
import { readSafetensors, readSafetensorsHeader } from "../graph/safetensors.ts";
import type { NamedTensor } from "../graph/safetensors.ts";
import { type HourglassConfig, hourglassLayers } from "../graph/models/hourglass.ts";
import { modelConfig } from "../run/presets.ts";
import { CLEAN, poseNetInputs, poseNetLayers } from "../graph/models/pose_net.ts";
import { Rng } from "../io/prng.ts";
import {
  type CaffeModelLayerInput,
  decodeCaffeModel,
  encodeCaffeModel,
  readCaffeModel,
} from "../io/caffe_model.ts";
import { parseRunConfig } from "../run/config.ts";
import { convertSeedWeights, hourglassParams, seedCaffeLayers } from "../run/caffe_import.ts";
import { legacyFlags } from "../run/config.ts";
import { randomSeedTensors, seedPrototxtPath } from "./seed_caffemodel.ts";
import { assertClose } from "./gradcheck.ts";

/** A small network of the seed's structure: two stacks, one hourglass sub-level, one module per branch. */
const SMALL: HourglassConfig = modelConfig("tiny", {
  inputSize: 64,
  features: 8,
  stem: [4, 8],
  link: 8,
  modules: 1,
  d2: 2,
});

/** Known values for every parameter: distinct per tensor, positive variances, BN factors S = 3 (not a power of two). */
function knownTensors(cfg: HourglassConfig, seed = 7): Map<string, NamedTensor> {
  const rng = new Rng(seed);
  const out = new Map<string, NamedTensor>();
  for (const { key, shape } of hourglassParams(cfg)) {
    const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
    if (key.endsWith(".moving_scale")) data.fill(3);
    else if (key.endsWith(".running_var")) rng.fillUniform(data, 0.5, 1.5);
    else if (key.endsWith(".running_mean")) rng.fillUniform(data, -0.3, 0.3);
    else if (key.endsWith("_bn.weight") || /_bn\d\.weight$/.test(key)) rng.fillUniform(data, 0.8, 1.2);
    else rng.fillUniform(data, -0.3, 0.3);
    out.set(key, { shape, data });
  }
  return out;
}

function model(layers: CaffeModelLayerInput[], opts: { legacyShape?: boolean } = {}) {
  return decodeCaffeModel(encodeCaffeModel({ name: "small", layers }, opts), { source: "small.caffemodel" });
}

Deno.test("caffe import: BatchNorm statistics are divided by the moving-average factor, as Caffe reads them", () => {
  const tensors = knownTensors(SMALL);
  const layers = seedCaffeLayers(SMALL, tensors);
  const bn = (name: string) => layers.find((l) => l.name === name)!;
  // Exact numbers: S = 4 and sums that are multiples of it.
  bn("bn_1").blobs = [
    { shape: [4], data: new Float32Array([4, -8, 2, 0]) },
    { shape: [4], data: new Float32Array([8, 4, 1, 12]) },
    { shape: [1], data: new Float32Array([4]) },
  ];
  // S = 0: Caffe's forward reads zero statistics.
  const zero = "residual_2_branch1_bn1";
  bn(zero).blobs[2].data = new Float32Array([0]);
  const w = convertSeedWeights(model(layers), SMALL);
  const t = (k: string) => w.tensors.get(k)!.data;
  assert.deepEqual([...t("conv_1_bn.running_mean")], [1, -2, 0.5, 0]);
  assert.deepEqual([...t("conv_1_bn.running_var")], [2, 1, 0.25, 3]);
  assert.deepEqual([...t("conv_1_bn.moving_scale")], [4, 4, 4, 4]);
  assert.deepEqual(w.zeroFactor, [zero]);
  assert(t("residual_2_bn1.running_mean").every((v) => v === 0));
  assert(t("residual_2_bn1.running_var").every((v) => v === 0));
  // S = 3: the sums times the float 1/3 (Caffe's scale_factor), within an ulp or two of the originals.
  const sums = bn("residual_1_branch1_bn2").blobs[0].data;
  assert.deepEqual(t("residual_1_bn2.running_mean"), sums.map((v) => v * Math.fround(1 / 3)));
  assertClose(t("residual_1_bn2.running_mean"), tensors.get("residual_1_bn2.running_mean")!.data, {
    atol: 0,
    rtol: 3e-7,
  });
  assertClose(t("residual_1_bn2.running_var"), tensors.get("residual_1_bn2.running_var")!.data, {
    atol: 0,
    rtol: 3e-7,
  });
  // Scale is the BN's affine; convolutions and deconvolutions are copied bit for bit.
  for (
    const k of ["conv_1_bn.weight", "conv_1_bn.bias", "hg2_sub_up.weight", "conv_4.weight", "conv_5_d2.bias"]
  ) {
    assert.deepEqual(t(k), tensors.get(k)!.data, k);
  }
  // A negative factor is refused.
  bn(zero).blobs[2].data = new Float32Array([-1]);
  assert.throws(
    () => convertSeedWeights(model(layers), SMALL),
    /layer "residual_2_branch1_bn1" has moving-average factor -1/,
  );
});

Deno.test("caffe import: a missing layer, a wrong shape, a wrong blob count or an extra layer is named with the expected shapes", () => {
  const layers = seedCaffeLayers(SMALL, knownTensors(SMALL));
  const without = layers.filter((l) => l.name !== "hourglass1_branch1_level2_branch1_level1_branch1_conv2");
  assert.throws(
    () => convertSeedWeights(model(without), SMALL, { source: "m.caffemodel" }),
    /m\.caffemodel does not hold the seed network at d2 = 2:\n {2}no layer "hourglass1_branch1_level2_branch1_level1_branch1_conv2" \(Convolution with weights \[8, 8, 3, 3\], bias \[8\]; the preset's hg1_sub_inner_conv2\)/,
  );
  const wrong = layers.map((l) =>
    l.name === "conv_4"
      ? { ...l, blobs: [{ shape: [8, 12, 1, 1], data: new Float32Array(96) }, l.blobs[1]] }
      : l
  );
  assert.throws(
    () => convertSeedWeights(model(wrong), SMALL),
    /layer "conv_4" blob 0 \(weights\) has shape \[8, 12, 1, 1\], expected \[8, 16, 1, 1\] \(the preset's conv_4\.weight\)/,
  );
  const noBias = layers.map((l) => l.name === "conv_1" ? { ...l, blobs: [l.blobs[0]] } : l);
  assert.throws(
    () => convertSeedWeights(model(noBias), SMALL),
    /layer "conv_1" has 1 blobs \(\[4, 3, 7, 7\]\), expected 2: weights \[4, 3, 7, 7\], bias \[4\]/,
  );
  const extra = [...layers, {
    name: "conv_5_d4",
    type: "Convolution",
    blobs: [{ shape: [2], data: new Float32Array(2) }],
  }];
  assert.throws(
    () => convertSeedWeights(model(extra), SMALL),
    /layer "conv_5_d4" \(Convolution, 1 blobs\) has no counterpart in the preset at d2 = 2/,
  );
  const mistyped = layers.map((l) => l.name === "hourglass2_upsampling" ? { ...l, type: "Convolution" } : l);
  assert.throws(
    () => convertSeedWeights(model(mistyped), SMALL),
    /layer "hourglass2_upsampling" is a Convolution, expected a Deconvolution/,
  );
  // Legacy 4-D blob shapes (a bias as 1x1x1xC) are what old Caffe wrote, and read as Caffe reads them.
  const legacy = convertSeedWeights(model(layers, { legacyShape: true }), SMALL);
  assert.deepEqual(legacy.tensors.get("conv_1.bias")!.shape, [4]);
});

Deno.test("caffe import: the converted checkpoint holds exactly the parameters of the pose net eval builds", () => {
  const cfg = modelConfig("seed", { d2: 16 });
  const net = {
    model: cfg,
    batch: 3,
    losses: { heatmap2d: 1, heatmap3d: 0.03, integral: 0, integralNorm: "l1" as const, smoothL1: 0, js: 0 },
    softmaxScale: 50,
    legacy: CLEAN,
    perSampleErrors: true,
  };
  const shapes = new Map<string, Shape>(Object.entries(poseNetInputs(net)));
  const declared: string[] = [];
  for (const l of poseNetLayers(net)) {
    const tops = l.setup(l.bottoms.map((b) => shapes.get(b)!), {
      param: (d) => declared.push(`${l.name}.${d.name} ${d.shape.join("x")}`) - 1,
      state: () => 0,
      workspace: () => {},
    });
    l.tops.forEach((t, i) => shapes.set(t, tops[i]));
  }
  assert.deepEqual(hourglassParams(cfg).map((p) => `${p.key} ${p.shape.join("x")}`), declared);
});

Deno.test("caffe import: a caffemodel of known values round-trips into a checkpoint whose forward output matches the weights loaded directly", async () => {
  const gpu = await sharedGpu();
  const tensors = knownTensors(SMALL, 11);
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "small.caffemodel");
    await Deno.writeFile(file, encodeCaffeModel({ name: "small", layers: seedCaffeLayers(SMALL, tensors) }));
    const converted = convertSeedWeights(await readCaffeModel(file), SMALL, { source: file });
    const prefix = join(dir, "net_iter_5");
    await saveWeights(prefix, converted.tensors, { net: "small", iter: 5 });

    const { blobs } = hourglassLayers(SMALL);
    const B = 2, S = SMALL.inputSize;
    const image = new Rng(3).fillUniform(new Float32Array(B * 3 * S * S), -0.5, 0.5);
    const outputs = async (load: (net: Net) => Promise<void>, globalStats: boolean) => {
      const net = await Net.build(gpu, {
        name: "small",
        inputs: { image: [B, 3, S, S] },
        layers: hourglassLayers(SMALL).layers,
      }, {
        train: false,
        globalStats,
        keep: blobs.heatmaps,
      });
      await load(net);
      net.setInput("image", image);
      net.forward();
      return await Promise.all(blobs.heatmaps.map((h) => net.read(h)));
    };
    const fromCheckpoint = async (net: Net) => {
      const r = await loadCheckpoint(net, prefix, { log: () => {} });
      assert.equal(r.copied.length, tensors.size);
      assert.equal(r.iter, net.iter);
    };
    const direct = async (net: Net) => {
      for (const [key, t] of tensors) net.writeParam(key, t.data);
      await net.sync();
    };
    // Running statistics (so the converted BN statistics take part), then the seed's batch statistics.
    for (const globalStats of [true, false]) {
      const a = await outputs(fromCheckpoint, globalStats), b = await outputs(direct, globalStats);
      a.forEach((x, i) => {
        assert(x.some((v) => v !== 0), "a non-trivial output");
        assertClose(x, b[i], {
          atol: 1e-6,
          rtol: 1e-5,
          what: `${blobs.heatmaps[i]} (globalStats ${globalStats})`,
        });
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function importCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../tasks/import.ts", import.meta.url).pathname, ...args],
    stdout: "piped",
    stderr: "piped",
  });
  const r = await cmd.output();
  const dec = new TextDecoder();
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr) };
}

Deno.test("deno task import: a seed-sized d16 caffemodel becomes a run folder; bad input is a clear error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const prototxt = seedPrototxtPath("test_d16_rand");
    const tensors = randomSeedTensors(16, 5);
    const bytes = encodeCaffeModel({
      name: "h36mc2f3dhm",
      layers: seedCaffeLayers(modelConfig("seed", { d2: 16 }), tensors),
    });
    const file = join(dir, "net_iter_560000.caffemodel");
    await Deno.writeFile(file, bytes);
    const out = join(dir, "run");
    const ok = await importCli([
      "--caffemodel",
      file,
      "--prototxt",
      prototxt,
      "--out",
      out,
      "--legacy",
      "depth-bounds,heatmaps",
    ]);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(
      ok.stderr,
      /299 convolutions, 8 deconvolutions, 229 BatchNorm \+ 229 Scale layers match the seed preset at d2 = 16/,
    );
    const cfg = parseRunConfig(await Deno.readTextFile(join(out, "config.json")), "config.json");
    assert.equal(cfg.preset, "seed");
    assert.equal(cfg.model.d2, 16);
    assert.equal(cfg.batch, 3);
    assert.deepEqual(cfg.legacy, legacyFlags(["heatmaps", "depth-bounds"]));
    const weights = join(out, "checkpoints", "net_iter_560000.safetensors");
    const header = await readSafetensorsHeader(weights);
    assert.equal(header.metadata.iter, "560000");
    assert.equal(header.tensors.size, tensors.size);
    const saved = await readSafetensors(weights);
    for (
      const k of [
        "conv_1.weight",
        "hg2_sub_inner_inner_up.weight",
        "conv_5_d16.weight",
        "hg1_post_proj_bn.bias",
      ]
    ) {
      assert.deepEqual(saved.tensors.get(k)!.data, tensors.get(k)!.data, k);
    }
    assertClose(
      saved.tensors.get("hg1_skip2_a_bn1.running_var")!.data,
      tensors.get("hg1_skip2_a_bn1.running_var")!.data,
      {
        atol: 0,
        rtol: 3e-7,
      },
    );

    // The same run again needs --force.
    const again = await importCli(["--caffemodel", file, "--prototxt", prototxt, "--out", out]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /config\.json exists; pick another --out or pass --force/);
    // A truncated file, a file that is no caffemodel, the d16 model against the d64 net, an unknown d2, a positional.
    const cut = join(dir, "cut.caffemodel");
    await Deno.writeFile(cut, bytes.subarray(0, 5_000_000));
    const bad: [string[], RegExp][] = [
      [
        ["--caffemodel", cut, "--prototxt", prototxt, "--out", join(dir, "a")],
        /cut\.caffemodel: expected the layer's \d+ bytes, got \d+ before the end of the file \(truncated file\?\) at byte \d+ in layer #\d+ "hourglass1_/,
      ],
      [
        ["--caffemodel", prototxt, "--prototxt", prototxt, "--out", join(dir, "b")],
        /test_d16_rand\.prototxt\.gz: expected /,
      ],
      [
        [
          "--caffemodel",
          file,
          "--prototxt",
          seedPrototxtPath("test_d64_statsfalse"),
          "--out",
          join(dir, "c"),
        ],
        /does not hold the seed network at d2 = 64:\n {2}no layer "conv_5_d64" \(Convolution with weights \[1024, 256, 1, 1\], bias \[1024\]; the preset's conv_5_d64\)/,
      ],
      [
        ["--caffemodel", file, "--prototxt", prototxt, "--out", join(dir, "d"), "--d2", "32"],
        /--d2 32, but .* defines conv_5_d16/,
      ],
      [
        ["--caffemodel", file, "--prototxt", file, "--out", join(dir, "e")],
        /expected a text prototxt, got binary data/,
      ],
    ];
    for (const [args, re] of bad) {
      const r = await importCli(args);
      assert.equal(r.code, 1, args.join(" "));
      assert.match(r.stderr, re);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
