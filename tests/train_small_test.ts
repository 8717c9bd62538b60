/**
 * End-to-end training of a small conv net (conv-BN-ReLU-pool-upsample-conv) with each solver on
 * a fixed synthetic regression, plus a mid-training checkpoint round trip on the same net. The
 * targets come from a frozen "teacher" of the same architecture with other weights, so a perfect
 * fit exists and a working forward, backward and update must drive the loss far down.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { sharedGpu } from "../kernels/device.ts";
import type { Layer } from "../graph/layer.ts";
import { Net } from "../graph/net.ts";
import { Adam, RMSProp, SGD, type Solver } from "../graph/solver.ts";
import { Convolution } from "../graph/layers/convolution.ts";
import { BatchNorm } from "../graph/layers/batch_norm.ts";
import { MaxPool } from "../graph/layers/pool.ts";
import { Upsample } from "../graph/layers/upsample.ts";
import { EuclideanLoss } from "../graph/layers/euclidean_loss.ts";
import { download } from "../graph/tensor.ts";
import { loadCheckpoint, saveCheckpoint } from "../graph/checkpoint.ts";
import { randomArray } from "./gradcheck.ts";

const X: [number, number, number, number] = [4, 3, 8, 8];
const Y: [number, number, number, number] = [4, 2, 8, 8];

function body(): Layer[] {
  return [
    new Convolution("conv1", {
      bottom: "x",
      top: "c1",
      numOutput: 8,
      kernel: 3,
      pad: 1,
      weightFiller: { type: "msra" },
    }),
    new BatchNorm("bn1", { bottom: "c1", top: "b1", affine: true, relu: true }),
    new MaxPool("pool1", { bottom: "b1", top: "p1", kernel: 2, stride: 2 }),
    new Upsample("up1", { bottom: "p1", top: "u1", factor: 2 }),
    new Convolution("conv2", {
      bottom: "u1",
      top: "y",
      numOutput: Y[1],
      kernel: 3,
      pad: 1,
      weightFiller: { type: "msra" },
    }),
  ];
}

const input = randomArray(X.reduce((a, b) => a * b), 21);
let targetCache: Float32Array | null = null;

/** The teacher's output on the fixed input (batch statistics, as in training). */
async function target(): Promise<Float32Array> {
  if (targetCache) return targetCache;
  const gpu = await sharedGpu();
  const teacher = await Net.build(gpu, { name: "teacher", inputs: { x: X }, layers: body() }, {
    train: false,
    seed: 77,
  });
  teacher.setInput("x", input);
  teacher.forward();
  targetCache = await teacher.read("y");
  teacher.destroy();
  return targetCache;
}

async function student(solver: Solver, seed = 1): Promise<Net> {
  const gpu = await sharedGpu();
  const net = await Net.build(gpu, {
    name: "student",
    inputs: { x: X, t: Y },
    layers: [...body(), new EuclideanLoss("loss", { pred: "y", target: "t", top: "L" })],
  }, { solver, seed });
  net.setInput("x", input);
  net.setInput("t", await target());
  return net;
}

const SOLVERS: { name: string; make: () => Solver }[] = [
  // Caffe's L2 loss sums over pixels (it divides by the batch only), so gradients are large and
  // plain SGD needs a small rate; the adaptive solvers are scale-free.
  { name: "SGD", make: () => new SGD({ baseLr: 1e-4, momentum: 0.9 }) },
  { name: "RMSProp", make: () => new RMSProp({ baseLr: 0.003 }) },
  { name: "Adam", make: () => new Adam({ baseLr: 0.01 }) },
];

for (const { name, make } of SOLVERS) {
  Deno.test(`train small conv net with ${name}: loss falls at least 10x`, async () => {
    const net = await student(make());
    net.step();
    const first = (await net.readScalars()).L[0];
    assert.ok(first > 0.1, `initial loss ${first} is large enough to be meaningful`);
    let last = first;
    const history = [first];
    while (net.iter < 400 && !(last < first / 20)) {
      for (let k = 0; k < 25; k++) net.step();
      last = (await net.readScalars()).L[0];
      history.push(last);
      assert.ok(Number.isFinite(last), `${name}: loss became ${last} at iteration ${net.iter}`);
    }
    assert.ok(
      last <= first / 10,
      `${name}: loss went ${first.toPrecision(4)} -> ${last.toPrecision(4)} in ${net.iter} steps ` +
        `(${history.map((v) => v.toPrecision(3)).join(", ")})`,
    );
    net.destroy();
  });
}

Deno.test("conv net with batch norm: a resume from a mid-training checkpoint is bit-identical", async () => {
  const dir = await Deno.makeTempDir({ prefix: "volpose_train_" });
  try {
    const whole = (net: Net, buffer: GPUBuffer) =>
      download(net.gpu, { buffer, offset: 0, size: net.layout.bytes });
    const full = await student(new RMSProp({ baseLr: 0.003 }));
    for (let i = 0; i < 8; i++) full.step();
    const want = await whole(full, full.layout.data);
    const first = await student(new RMSProp({ baseLr: 0.003 }));
    for (let i = 0; i < 3; i++) first.step();
    const { prefix } = await saveCheckpoint(first, dir);
    const keys = first.layout.entries.map((e) => e.key);
    assert.ok(keys.includes("bn1.running_mean") && keys.includes("bn1.running_var"), keys.join(", "));
    const second = await student(new RMSProp({ baseLr: 0.003 }), 4242);
    await loadCheckpoint(second, prefix, { log: () => {} });
    while (second.iter < 8) second.step();
    assert.deepEqual(await whole(second, second.layout.data), want);
    assert.deepEqual(
      await whole(second, second.solver!.history()[0]),
      await whole(full, full.solver!.history()[0]),
    );
    for (const n of [full, first, second]) n.destroy();
    assert.ok(prefix.startsWith(join(dir, "net_iter_3")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
