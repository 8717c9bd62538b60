import assert from "node:assert/strict";
import { inPhase, parseCaffeNet, parsePrototxt, PrototxtMessage } from "../io/caffe_prototxt.ts";
import { modelConfig } from "../run/presets.ts";
import { checkSeedStructure, readPrototxtText, seedDepth, seedLayerNames } from "../run/caffe_import.ts";
import { seedPrototxtPath } from "./seed_caffemodel.ts";

Deno.test("prototxt: fields, nested messages, lists, comments, strings, enums, booleans and numbers keep their order and lines", () => {
  const m = parsePrototxt(
    `name: "net" # a comment
layer {
  name: 'a\\t"b"' "c"   # adjacent strings concatenate
  type: "Convolution"
  param { lr_mult: 1 } param: { lr_mult: 2.5e-1 }
  convolution_param < num_output: 0x10 kernel_size: [3, 5]; bias_term: false >
  include { phase: TEST }
  v: -inf w: nan x: 1.5f y: -.5 z: t
}
`,
    "net.prototxt",
  );
  assert.equal(m.string("name"), "net");
  const layer = m.message("layer")!;
  assert.equal(layer.line, 2);
  assert.equal(layer.string("name"), 'a\t"b"c');
  assert.deepEqual(layer.messages("param").map((p) => p.number("lr_mult")), [1, 0.25]);
  const cp = layer.message("convolution_param")!;
  assert.equal(cp.number("num_output"), 16);
  assert.deepEqual(cp.numbers("kernel_size"), [3, 5]);
  assert.equal(cp.bool("bias_term"), false);
  assert.equal(layer.message("include")!.string("phase"), "TEST");
  assert.equal(layer.number("v"), -Infinity);
  assert(Number.isNaN(layer.number("w")!));
  assert.equal(layer.number("x"), 1.5);
  assert.equal(layer.number("y"), -0.5);
  assert.equal(layer.bool("z"), true);
  assert.equal(layer.fields.find((f) => f.name === "type")!.line, 4);
  assert.equal(layer.number("absent", 7), 7);
});

Deno.test("prototxt: syntax errors and wrongly typed fields name the file and line", () => {
  const bad: [string, RegExp][] = [
    ['name: "x\nlayer {}', /f\.prototxt:1: expected a closing " /],
    [
      "layer {\n  name: 1\n",
      /f\.prototxt:3: expected a field name or "}" closing the message opened at line 1, got the end of the file/,
    ],
    ['layer {\n  name "x"\n}', /f\.prototxt:2: expected ":" or "\{" after field "name", got the string "x"/],
    ["a: }", /f\.prototxt:1: expected a value .*got "}"/],
    ["a: 1\nb: @", /f\.prototxt:2: expected a field name, a value, or one of/],
  ];
  for (const [text, re] of bad) assert.throws(() => parsePrototxt(text, "f.prototxt"), re);
  const m = parsePrototxt("a: 1\nb { }\n", "f.prototxt");
  assert.throws(() => m.string("a"), /f\.prototxt:1: expected field "a" to be a string, got 1/);
  assert.throws(() => m.number("b"), /f\.prototxt:2: expected field "b" to be a number, got a message/);
  assert.throws(
    () => parseCaffeNet('layer { name: "x" }', "n.prototxt"),
    /n\.prototxt:1: expected layer to have a "type"/,
  );
});

Deno.test("prototxt: include and exclude rules select a layer's phases as Caffe does", () => {
  const net = parseCaffeNet(
    `layer { name: "a" type: "X" include { phase: TRAIN } }
layer { name: "b" type: "X" exclude { phase: TRAIN } }
layer { name: "c" type: "X" }
layers { name: "d" type: CONVOLUTION include { phase: TEST } include { phase: TRAIN } }`,
    "p",
  );
  const phases = (name: string) =>
    (["TRAIN", "TEST"] as const).filter((p) => inPhase(net.layers.find((l) => l.name === name)!, p));
  assert.deepEqual(phases("a"), ["TRAIN"]);
  assert.deepEqual(phases("b"), ["TEST"]);
  assert.deepEqual(phases("c"), ["TRAIN", "TEST"]);
  assert.deepEqual(phases("d"), ["TRAIN", "TEST"]);
  assert.equal(net.layers[3].type, "CONVOLUTION");
  assert(net.layers[0].message instanceof PrototxtMessage);
});

Deno.test("seed names: the hourglass levels, modules and heads get the seed's positional names", () => {
  const names = new Map(seedLayerNames(modelConfig("seed", { d2: 64 })).map((n) => [n.layer, n]));
  assert.equal(names.size, 299 + 8 + 229);
  const expect: [string, string, string?][] = [
    ["conv_1_bn", "bn_1", "scale_1"],
    ["residual_4_skip", "residual_4_branch2_conv"],
    ["hg1_down2_b_conv2", "hourglass1_branch1_res2_branch1_sub2_conv2"],
    [
      "hg2_skip3_proj_bn",
      "hourglass2_branch2_res3_branch1_linear_batch",
      "hourglass2_branch2_res3_branch1_linear_scale",
    ],
    [
      "hg1_post_a_bn3",
      "hourglass1_branch1_res5_branch1_sub1_bn3",
      "hourglass1_branch1_res5_branch1_sub1_scale3",
    ],
    ["hg1_sub_skip1_conv3", "hourglass1_branch1_level4_branch2_res1_branch1_conv3"],
    [
      "hg2_sub_inner_inner_inner_conv1",
      "hourglass2_branch1_level4_branch1_level3_branch1_level2_branch1_level1_branch1_conv1",
    ],
    ["hg1_sub_inner_up", "hourglass1_branch1_level4_branch1_level3_upsampling"],
    ["hg2_up", "hourglass2_upsampling"],
    ["conv_5_d64", "conv_5_d64"],
  ];
  for (const [layer, caffe, scale] of expect) {
    assert.equal(names.get(layer)?.caffe, caffe, layer);
    assert.equal(names.get(layer)?.scale, scale, layer);
  }
});

for (const [file, d2] of [["test_d64_statsfalse", 64], ["test_d16_rand", 16], ["train_d64", 64]] as const) {
  Deno.test(`seed structure: ${file}.prototxt maps 1:1 onto the seed preset at d2 = ${d2}, zero mismatches`, async () => {
    const path = seedPrototxtPath(file);
    const net = parseCaffeNet(await readPrototxtText(path), path);
    assert.equal(net.name, "h36mc2f3dhm");
    assert.equal(seedDepth(net), d2);
    for (const phase of ["TEST", "TRAIN"] as const) {
      const r = checkSeedStructure(net, modelConfig("seed", { d2 }), { phase });
      assert.deepEqual(r.mismatches, [], `${phase}: ${r.mismatches.slice(0, 5).join("\n")}`);
      assert.deepEqual(r.counts, { convolutions: 299, deconvolutions: 8, batchNorms: 229, scales: 229 });
      assert.equal(r.matched, 299 + 8 + 229 + 229);
    }
  });
}

Deno.test("seed structure: a changed prototxt has each difference named with its layer and line", async () => {
  const path = seedPrototxtPath("test_d16_rand");
  const text = await readPrototxtText(path);
  const check = (edit: (t: string) => string, d2 = 16) => {
    const changed = edit(text);
    assert.notEqual(changed, text, "the edit applies");
    return checkSeedStructure(parseCaffeNet(changed, "x.prototxt"), modelConfig("seed", { d2 })).mismatches;
  };
  // The link's concat order.
  let m = check((t) =>
    t.replace(
      ' bottom: "pooling" \n top: "concat_1" \n bottom: "fc_2"',
      ' bottom: "fc_2" \n top: "concat_1" \n bottom: "pooling"',
    )
  );
  assert.equal(m.length, 1);
  assert.match(
    m[0],
    /^x\.prototxt:\d+: Convolution "conv_4" \(preset conv_4\): its input is concat1\(fc_2,maxpool/,
  );
  // A width.
  m = check((t) => t.replace(/(name: "fc_4"[\s\S]*?num_output: )256/, "$1128"));
  assert.match(
    m[0],
    /Convolution "fc_4" \(preset fc_4\): blob 0 \(weights\) \[128, 512, 1, 1\], the preset's fc_4\.weight \[256, 512, 1, 1\]/,
  );
  assert(
    m.some((x) =>
      /"conv_5_d16".*\[256, 128, 1, 1\], the preset's conv_5_d16\.weight \[256, 256, 1, 1\]/.test(x)
    ),
  );
  // A ReLU bypassed.
  m = check((t) => t.replace('bottom: "residual_2_branch1_relu2"', 'bottom: "residual_2_branch1_scale2"'));
  assert.deepEqual(m.length, 1);
  assert.match(
    m[0],
    /"residual_2_branch1_conv2" \(preset residual_2_conv2\): its input is residual_2_bn2 in the prototxt but relu\(residual_2_bn2\) in the preset/,
  );
  // Padding.
  m = check((t) => t.replace(/(name: "residual_3_branch1_conv2"[\s\S]*?pad: )1/, "$10"));
  assert.match(m[0], /"residual_3_branch1_conv2" \(preset residual_3_conv2\): pad 0x0, the preset's 1x1/);
  // A layer renamed: the prototxt's has no counterpart and the preset's is missing.
  m = check((t) => t.replaceAll('"hourglass2_branch1_res5_branch2_conv"', '"hg2_post_skip"'));
  assert(m.some((x) => /Convolution "hg2_post_skip": no counterpart in the preset/.test(x)));
  assert(
    m.some((x) =>
      /no Convolution "hourglass2_branch1_res5_branch2_conv" \(the preset's hg2_post_skip, blobs \[512, 512, 1, 1\], \[512\]\)/
        .test(x)
    ),
  );
  // The same prototxt against the preset at another depth.
  assert.match(check((t) => t + " ", 32).join("\n"), /no Convolution "conv_5_d32"/);
});

Deno.test("seed depth: a head of another depth, or none, is a clear error", async () => {
  const text = await readPrototxtText(seedPrototxtPath("test_d16_rand"));
  assert.throws(
    () => seedDepth(parseCaffeNet(text.replaceAll("conv_5_d16", "conv_5_d48"), "x.prototxt")),
    /x\.prototxt:\d+: conv_5_d48: unknown d2 48; the seed's networks have d2 = 2, 4, 8, 16, 32, 64/,
  );
  assert.throws(
    () => seedDepth(parseCaffeNet('layer { name: "conv_1" type: "Convolution" }', "y.prototxt")),
    /y\.prototxt: no layer conv_5_d\{D\}/,
  );
});
