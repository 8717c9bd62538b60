import assert from "node:assert/strict";
import { join } from "node:path";
import { DataError } from "../io/errors.ts";
import { decodeCaffeModel, encodeCaffeModel, readCaffeModel, V1_TYPE_NAMES } from "../io/caffe_model.ts";
import { randomArray } from "./gradcheck.ts";

const LAYERS = [
  {
    name: "conv_a",
    type: "Convolution",
    bottoms: ["data"],
    tops: ["conv_a"],
    blobs: [
      { shape: [3, 2, 1, 1], data: randomArray(6, 1) },
      { shape: [3], data: new Float32Array([0.5, -1, 2]) },
    ],
  },
  { name: "relu_a", type: "ReLU", bottoms: ["conv_a"], tops: ["conv_a"], blobs: [] },
  {
    name: "up",
    type: "Deconvolution",
    blobs: [{ shape: [3, 1, 4, 4], data: randomArray(48, 2) }],
  },
];

/** Protobuf wire helpers to build messages by hand, the way another writer may lay them out. */
const varint = (v: number): number[] => {
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
};
const key = (field: number, wire: number) => varint(field * 8 + wire);
const delimited = (field: number, body: number[]) => [...key(field, 2), ...varint(body.length), ...body];
const str = (field: number, s: string) => delimited(field, [...new TextEncoder().encode(s)]);
const f32 = (x: number) => [...new Uint8Array(new Float32Array([x]).buffer)];
const f64 = (x: number) => [...new Uint8Array(new Float64Array([x]).buffer)];

Deno.test("caffemodel: encode/decode round trip keeps names, types, wiring, shapes and values", () => {
  const m = decodeCaffeModel(encodeCaffeModel({ name: "net", layers: LAYERS }));
  assert.equal(m.name, "net");
  assert.equal(m.format, "layer");
  assert.deepEqual(m.layers.map((l) => [l.name, l.type, l.bottoms, l.tops]), [
    ["conv_a", "Convolution", ["data"], ["conv_a"]],
    ["relu_a", "ReLU", ["conv_a"], ["conv_a"]],
    ["up", "Deconvolution", [], []],
  ]);
  LAYERS.forEach((l, i) =>
    l.blobs.forEach((b, j) => {
      assert.deepEqual(m.layers[i].blobs[j].shape, b.shape);
      assert.equal(m.layers[i].blobs[j].legacyShape, false);
      assert.deepEqual(m.layers[i].blobs[j].data, b.data);
    })
  );
});

Deno.test("caffemodel: V1 `layers` with enum types and legacy num/channels/height/width shapes", () => {
  const m = decodeCaffeModel(
    encodeCaffeModel({ name: "old", layers: LAYERS }, { v1: true, legacyShape: true }),
  );
  assert.equal(m.format, "layers");
  assert.deepEqual(m.layers.map((l) => l.type), ["CONVOLUTION", "RELU", "DECONVOLUTION"]);
  assert.deepEqual(m.layers.map((l) => V1_TYPE_NAMES[l.type]), ["Convolution", "ReLU", "Deconvolution"]);
  assert.deepEqual(m.layers[0].bottoms, ["data"]);
  assert.deepEqual(m.layers[0].blobs[1].shape, [1, 1, 1, 3]);
  assert.equal(m.layers[0].blobs[1].legacyShape, true);
  assert.deepEqual(m.layers[0].blobs[1].data, LAYERS[0].blobs[1].data);
  assert.deepEqual(m.layers[2].blobs[0].shape, [3, 1, 4, 4]);
});

Deno.test("caffemodel: unknown fields, groups, diffs, doubles and unpacked floats are read or skipped", () => {
  const shape = (...dims: number[]) => delimited(7, delimited(1, dims.flatMap(varint)));
  const blob = [
    ...key(99, 0),
    ...varint(12345), // unknown varint
    ...shape(2, 2),
    ...delimited(6, [...f32(9), ...f32(9), ...f32(9), ...f32(9)]), // diff, skipped
    ...key(5, 5),
    ...f32(1.5), // data, one float per tag (unpacked) ...
    ...key(5, 5),
    ...f32(-2),
    ...delimited(5, [...f32(3), ...f32(4)]), // ... and packed, in order
  ];
  const doubles = [...shape(2), ...delimited(8, [...f64(0.25), ...f64(1e-3)])]; // double_data
  const layer = [
    ...str(1, "c"),
    ...str(2, "Convolution"),
    ...delimited(6, [...key(1, 5), ...f32(1)]), // param { lr_mult: 1 }
    ...key(10, 0),
    ...varint(1), // phase: TEST
    ...key(40, 3),
    ...key(1, 0),
    ...varint(7),
    ...key(40, 4), // a group
    ...key(41, 1),
    ...f64(3), // fixed64
    ...delimited(7, blob),
    ...delimited(7, doubles),
  ];
  const net = [
    ...str(1, "hand"),
    ...str(3, "input"), // NetParameter.input
    ...key(4, 0),
    ...varint(1), // input_dim
    ...key(101, 5),
    ...f32(0), // unknown fixed32
    ...delimited(100, layer),
  ];
  const m = decodeCaffeModel(new Uint8Array(net));
  assert.equal(m.name, "hand");
  assert.equal(m.layers.length, 1);
  assert.equal(m.layers[0].name, "c");
  assert.deepEqual(m.layers[0].blobs[0].shape, [2, 2]);
  assert.deepEqual([...m.layers[0].blobs[0].data], [1.5, -2, 3, 4]);
  assert.deepEqual([...m.layers[0].blobs[1].data], [0.25, Math.fround(1e-3)]);
});

Deno.test("caffemodel: truncated files, other files and inconsistent blobs are errors naming the file and layer", async () => {
  const bytes = encodeCaffeModel({ name: "net", layers: LAYERS });
  // Cut inside the first layer's weights, inside its bias, inside the second layer's name.
  const cut = (n: number) => () => decodeCaffeModel(bytes.subarray(0, n), { source: "m.caffemodel" });
  assert.throws(
    cut(40),
    (e) =>
      e instanceof DataError && /^m\.caffemodel: expected .*truncated file\?\) .*layer #0/.test(e.message),
  );
  const layer1 = bytes.indexOf(new TextEncoder().encode("relu_a")[0], 60);
  assert.throws(cut(layer1 + 2), /m\.caffemodel: expected .*truncated file\?/);
  assert.throws(
    cut(0),
    /m\.caffemodel: expected a caffemodel \(a NetParameter with layers\), got 0 bytes without any layer/,
  );
  // A PNG, a text prototxt, random bytes.
  const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13]);
  assert.throws(
    () => decodeCaffeModel(png, { source: "x.png" }),
    /x\.png: expected .*(not a caffemodel|not protobuf)/,
  );
  const text = new TextEncoder().encode('name: "h36mc2f3dhm"\nlayer {\n name: "conv_1"\n}\n');
  assert.throws(() => decodeCaffeModel(text, { source: "t.prototxt" }), /t\.prototxt: expected /);
  const noise = randomArray(64, 5);
  assert.throws(
    () => decodeCaffeModel(new Uint8Array(noise.buffer), { source: "r.bin" }),
    /r\.bin: expected /,
  );
  // A blob whose values disagree with its shape.
  const blob = [
    ...delimited(7, delimited(1, [...varint(2), ...varint(3)])),
    ...delimited(5, [...f32(1), ...f32(2)]),
  ];
  const net = [...delimited(100, [...str(1, "conv_x"), ...str(2, "Convolution"), ...delimited(7, blob)])];
  assert.throws(
    () => decodeCaffeModel(new Uint8Array(net), { source: "b.caffemodel" }),
    /b\.caffemodel: expected blob #0: shape \[2, 3\] holds 6 values but the blob has 2 at byte \d+ in layer #0 "conv_x"/,
  );
  // Both the current and the V1 layer fields.
  const both = [...delimited(100, str(1, "a")), ...delimited(2, str(4, "b"))];
  assert.throws(() => decodeCaffeModel(new Uint8Array(both), { source: "v.caffemodel" }), /got both/);
  // A file that is not there.
  const dir = await Deno.makeTempDir();
  await assert.rejects(
    () => readCaffeModel(join(dir, "none.caffemodel")),
    /none\.caffemodel: expected a readable caffemodel file/,
  );
  await Deno.remove(dir, { recursive: true });
});
