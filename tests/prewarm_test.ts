import assert from "node:assert/strict";
import { join } from "node:path";
import { sharedGpu } from "../kernels/device.ts";
import { prewarmMarker, startPrewarm, warmKernels } from "../kernels/prewarm.ts";
import { Net } from "../graph/net.ts";
import { RMSProp } from "../graph/solver.ts";
import { Convolution } from "../graph/layers/convolution.ts";
import { BatchNorm } from "../graph/layers/batch_norm.ts";
import { EuclideanLoss } from "../graph/layers/euclidean_loss.ts";

const layers = () => [
  new Convolution("c1", {
    bottom: "x",
    top: "c1",
    numOutput: 8,
    kernel: 3,
    pad: 1,
    weightFiller: { type: "gaussian", std: 0.3 },
  }),
  new BatchNorm("bn1", { bottom: "c1", top: "b1", affine: true, relu: true }),
  new Convolution("c2", {
    bottom: "b1",
    top: "c2",
    numOutput: 4,
    kernel: 1,
    weightFiller: { type: "gaussian", std: 0.3 },
  }),
  new EuclideanLoss("loss", { pred: "c2", target: "t", top: "L" }),
];

/** Runs `fn` with XDG_CACHE_HOME pointing at a fresh folder. */
async function withCacheHome(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "volpose-prewarm-" });
  const old = Deno.env.get("XDG_CACHE_HOME");
  Deno.env.set("XDG_CACHE_HOME", dir);
  try {
    await fn(dir);
  } finally {
    if (old === undefined) Deno.env.delete("XDG_CACHE_HOME");
    else Deno.env.set("XDG_CACHE_HOME", old);
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("prewarm: the worker runs every kernel of a net's programs on its own device, once per machine", async () => {
  const gpu = await sharedGpu();
  if (!gpu.isFallback) return; // a GPU compiles when the pipeline is made; nothing to warm
  await withCacheHome(async (dir) => {
    const build = () =>
      Net.build(gpu, { inputs: { x: [2, 4, 6, 6], t: [2, 4, 6, 6] }, layers: layers() }, {
        solver: new RMSProp({ baseLr: 0.01 }),
        prewarm: true,
      });
    const net = await build();
    assert.ok(net.prewarm, "a first build on this machine starts a worker");
    const r = await net.prewarm.done;
    assert.equal(r.error, undefined);
    assert.ok(r.done >= 10, `the worker ran ${r.done} kernels`);
    // The marker is written once the worker has run them all.
    let marker: string[] = [];
    for (let i = 0; i < 50 && !marker.length; i++) {
      await new Promise((res) => setTimeout(res, 20));
      marker = [...Deno.readDirSync(join(dir, "volpose", "prewarmed"))].map((e) => e.name);
    }
    assert.equal(marker.length, 1);
    assert.match(marker[0], new RegExp(`-${r.done}$`));
    net.destroy();
    const again = await build();
    assert.equal(again.prewarm, null, "the same net again finds the marker and starts none");
    again.step();
    await again.sync();
    again.destroy();
  });
});

Deno.test("prewarm: the kernel list is distinct sources in first-use order with their bindings' sizes", async () => {
  const gpu = await sharedGpu();
  const net = await Net.build(gpu, { inputs: { x: [2, 4, 6, 6], t: [2, 4, 6, 6] }, layers: layers() }, {
    solver: new RMSProp({ baseLr: 0.01 }),
  });
  try {
    const list = warmKernels([net.program("train"), net.program("train"), net.program("infer")]);
    assert.equal(new Set(list.map((k) => `${k.entry}\n${k.code}`)).size, list.length);
    for (const k of list) {
      const bindings = [...k.code.matchAll(/@binding\((\d+)\)/g)].length;
      assert.equal(k.bindings.length, bindings, "one stand-in per binding");
      for (const b of k.bindings) {
        assert.ok(b.kind === "texture" ? b.width > 0 : b.size > 0 && b.size % 4 === 0);
      }
    }
    // Markers differ by adapter and by kernel set.
    assert.notEqual(prewarmMarker("a", list), prewarmMarker("b", list));
    assert.notEqual(prewarmMarker("a", list), prewarmMarker("a", list.slice(1)));
    // A kernel that fails to compile is reported and skipped, not thrown.
    const bad = startPrewarm([{ code: "fn main( {", entry: "main", bindings: [] }, list[0]]);
    const r = await bad.done;
    assert.match(r.error ?? "", /./);
    assert.equal(r.done, 1);
  } finally {
    net.destroy();
  }
});
