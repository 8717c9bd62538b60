import assert from "node:assert/strict";
import { join } from "node:path";
import { sharedGpu } from "../kernels/device.ts";
import { fill } from "../graph/fillers.ts";
import { numel } from "../graph/layer.ts";
import { Net } from "../graph/net.ts";
import { Adam, RMSProp, type Solver } from "../graph/solver.ts";
import { download } from "../graph/tensor.ts";
import { EuclideanLoss } from "../graph/layers/euclidean_loss.ts";
import {
  decodeSafetensors,
  encodeSafetensors,
  type NamedTensor,
  readSafetensors,
  readSafetensorsHeader,
  SafetensorsError,
  writeSafetensors,
} from "../graph/safetensors.ts";
import {
  checkpointPaths,
  findLatestCheckpoint,
  loadCheckpoint,
  type LoadReport,
  saveCheckpoint,
} from "../graph/checkpoint.ts";
import { randomArray } from "./gradcheck.ts";
import { ParamProbe, type ProbeParam } from "./reference/solvers.ts";

// ---------------------------------------------------------------------------------------------
// safetensors

function t(shape: number[], values?: number[]): NamedTensor {
  const data = new Float32Array(values ?? Array.from({ length: numel(shape) }, (_, i) => i * 0.5 - 1));
  return { shape, data };
}

/** A file assembled by hand the way other writers may lay it out (unpadded header, any order). */
function handMade(header: Record<string, unknown>, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

Deno.test("safetensors: round trip keeps order, shapes (scalar, empty) and metadata; header is 8-aligned", () => {
  const tensors: [string, NamedTensor][] = [
    ["conv_1.weight", t([2, 3, 1, 1])],
    ["bn.running_mean", t([], [3.25])],
    ["empty", t([0, 4], [])],
    ["a.bias", t([5])],
  ];
  const bytes = encodeSafetensors(tensors, { metadata: { iter: "7", note: "ü" } });
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assert.equal(n % 8, 0);
  assert.equal(String.fromCharCode(bytes[8]), "{");
  const back = decodeSafetensors(bytes);
  assert.deepEqual([...back.tensors.keys()], tensors.map(([k]) => k));
  for (const [k, v] of tensors) {
    assert.deepEqual(back.tensors.get(k)!.shape, v.shape);
    assert.deepEqual(back.tensors.get(k)!.data, v.data);
  }
  assert.deepEqual(back.metadata, { iter: "7", note: "ü" });
});

Deno.test("safetensors: reads files from other writers (unpadded header, shuffled offsets, F64/F16/BF16)", () => {
  const data = new Uint8Array(8 + 4 + 2 * 3 + 2 * 2);
  const v = new DataView(data.buffer);
  v.setFloat64(0, -2.5, true); // "d" at [0, 8)
  v.setFloat32(8, 1.75, true); // "f" at [8, 12)
  [0x3c00, 0xc000, 0x0001].forEach((h, i) => v.setUint16(12 + 2 * i, h, true)); // "h": 1, -2, 2^-24
  [0x3f80, 0x4049].forEach((h, i) => v.setUint16(18 + 2 * i, h, true)); // "b": 1, 3.140625
  const bytes = handMade({
    h: { dtype: "F16", shape: [3], data_offsets: [12, 18] },
    b: { dtype: "BF16", shape: [2, 1], data_offsets: [18, 22] },
    __metadata__: { format: "pt" },
    f: { dtype: "F32", shape: [], data_offsets: [8, 12] },
    d: { dtype: "F64", shape: [1, 1], data_offsets: [0, 8] },
  }, data);
  const f = decodeSafetensors(bytes, { source: "x.safetensors" });
  assert.deepEqual([...f.tensors.get("d")!.data], [-2.5]);
  assert.deepEqual([...f.tensors.get("f")!.data], [1.75]);
  assert.deepEqual([...f.tensors.get("h")!.data], [1, -2, Math.fround(2 ** -24)]);
  assert.deepEqual([...f.tensors.get("b")!.data], [1, 3.140625]);
  assert.deepEqual(f.tensors.get("b")!.shape, [2, 1]);
  assert.deepEqual(f.metadata, { format: "pt" });
});

Deno.test("safetensors: malformed files fail with the file and tensor named", () => {
  const src = { source: "bad.safetensors" };
  const four = new Uint8Array(16);
  const cases: [Uint8Array, RegExp][] = [
    [new Uint8Array(3), /bad\.safetensors: file is 3 bytes/],
    [
      (() => {
        const b = new Uint8Array(16);
        new DataView(b.buffer).setBigUint64(0, 1n << 40n, true);
        return b;
      })(),
      /header length \d+ is not in/,
    ],
    [handMade({ w: { dtype: "F32", shape: [4], data_offsets: [0, 16] } }, four.subarray(0, 12)), /truncated/],
    [handMade({ w: { dtype: "F32", shape: [2], data_offsets: [0, 8] } }, four), /8 trailing bytes/],
    [
      handMade({
        a: { dtype: "F32", shape: [1], data_offsets: [0, 4] },
        w: { dtype: "F32", shape: [2], data_offsets: [8, 16] },
      }, four),
      /tensor "w": data_offsets start at 8, leaving a hole after byte 4/,
    ],
    [
      handMade({
        a: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        w: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
      }, four.subarray(0, 12)),
      /tensor "w": data_offsets \[4, 12\] overlap/,
    ],
    [
      handMade({ w: { dtype: "F32", shape: [2, 3], data_offsets: [0, 16] } }, four),
      /bad\.safetensors: tensor "w": data_offsets \[0, 16\] span 16 bytes but shape \[2, 3\] of F32 needs 24/,
    ],
    [handMade({ idx: { dtype: "I64", shape: [2], data_offsets: [0, 16] } }, four), /tensor "idx": dtype I64/],
    [
      handMade({ w: { dtype: "F32", shape: [-1], data_offsets: [0, 0] } }, new Uint8Array()),
      /tensor "w": shape/,
    ],
    [handMade({ __metadata__: { iter: 7 } }, new Uint8Array()), /__metadata__ value "iter" is number/],
    [
      (() => {
        const b = handMade({ x: 1 }, new Uint8Array());
        b[9] = 0x7b; // '{{' is not JSON
        return b;
      })(),
      /header is not valid JSON/,
    ],
  ];
  for (const [bytes, re] of cases) {
    assert.throws(
      () => decodeSafetensors(bytes, src),
      (e: Error) => e instanceof SafetensorsError && re.test(e.message),
    );
  }
  assert.throws(
    () => encodeSafetensors([["w", { shape: [2, 2], data: new Float32Array(3) }]]),
    /tensor "w": shape/,
  );
});

Deno.test("safetensors files: header-only read; atomic write leaves the old file when it fails", async () => {
  const dir = await Deno.makeTempDir({ prefix: "volpose_st_" });
  try {
    const path = join(dir, "w.safetensors");
    await writeSafetensors(path, [["w", t([3, 2])]], { metadata: { a: "1" } });
    const h = await readSafetensorsHeader(path);
    assert.deepEqual(h.tensors.get("w"), { dtype: "F32", shape: [3, 2], dataOffsets: [0, 24] });
    assert.equal(h.metadata.a, "1");
    // A directory where the file should go makes the rename fail; nothing may be left behind.
    const blocked = join(dir, "blocked.safetensors");
    await Deno.mkdir(join(blocked, "x"), { recursive: true });
    await assert.rejects(() => writeSafetensors(blocked, [["w", t([1])]]));
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names.sort(), ["blocked.safetensors", "w.safetensors"]);
    assert.deepEqual((await readSafetensors(path)).tensors.get("w")!.data, t([3, 2]).data);
    await assert.rejects(
      () => readSafetensors(join(dir, "none.safetensors")),
      /none\.safetensors: cannot read/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------------------------
// checkpoints

const BASE: ProbeParam[] = [
  { name: "a", shape: [4, 5] },
  { name: "b", shape: [7], lrMult: 2, decayMult: 0 },
  { name: "run", shape: [20], learnable: false, filler: { type: "constant", value: 0 } },
];

/** A probe net with an L2 loss on every learnable parameter, targets as inputs "t_<name>". */
async function probeNet(specs: ProbeParam[], solver: Solver | null, seed = 5): Promise<Net> {
  const gpu = await sharedGpu();
  const learn = specs.filter((s) => s.learnable !== false);
  return await Net.build(gpu, {
    name: "probe",
    inputs: Object.fromEntries(learn.map((s) => [`t_${s.name}`, [1, numel(s.shape)]])),
    layers: [
      new ParamProbe("p", specs),
      ...learn.map((s) =>
        new EuclideanLoss(`l_${s.name}`, { pred: `p_${s.name}`, target: `t_${s.name}`, top: `L_${s.name}` })
      ),
    ],
  }, solver ? { solver, seed } : { train: false, seed });
}

/** Steps `from` to `to` with targets that depend only on the iteration (a seeded data stream). */
function train(net: Net, specs: ProbeParam[], to: number): void {
  while (net.iter < to) {
    specs.forEach((s, k) => {
      if (s.learnable !== false) {
        net.setInput(`t_${s.name}`, randomArray(numel(s.shape), 1000 * net.iter + k));
      }
    });
    net.step();
  }
}

async function snapshot(net: Net): Promise<{ params: Float32Array; history: Float32Array[] }> {
  const whole = (buffer: GPUBuffer) => download(net.gpu, { buffer, offset: 0, size: net.layout.bytes });
  return {
    params: await whole(net.layout.data),
    history: await Promise.all(net.solver!.history().map(whole)),
  };
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "volpose_ckpt_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const quiet = { log: () => {} };

Deno.test("checkpoint: save then strict load restores parameters, running stats, history, iteration and meta exactly", async () => {
  await withTempDir(async (dir) => {
    const a = await probeNet(BASE, new RMSProp({ baseLr: 0.01 }));
    train(a, BASE, 3);
    const saved = await saveCheckpoint(a, dir, { meta: { rng: { data: [1, 2, 3, 4] }, epoch: 0 } });
    assert.equal(saved.prefix, join(dir, "net_iter_3"));
    const before = await snapshot(a);
    const b = await probeNet(BASE, new RMSProp({ baseLr: 0.01 }), 99);
    let printed = "";
    const r = await loadCheckpoint(b, saved.prefix, { log: (s) => (printed = s) });
    assert.deepEqual(await snapshot(b), before);
    assert.equal(b.iter, 3);
    assert.deepEqual(r.meta, { rng: { data: [1, 2, 3, 4] }, epoch: 0 });
    assert.deepEqual(r.copied, ["p.a", "p.b", "p.run"]);
    assert.deepEqual([r.reinitialised, r.ignored, r.historyReset, r.solverChanges], [[], [], [], []]);
    assert.match(printed, /copied 3, re-initialised 0, ignored 0; iteration 3; solver state restored/);
    // The weights file is plain safetensors keyed "layer.name", BN-style running stats included.
    const w = await readSafetensors(saved.weights);
    assert.deepEqual(w.tensors.get("p.a")!.shape, [4, 5]);
    assert.deepEqual(w.tensors.get("p.run")!.data, await a.readParam("p.run"));
    const s = await readSafetensors(saved.solverState!);
    assert.deepEqual([...s.tensors.keys()], ["history.0.p.a", "history.0.p.b"]);
    assert.equal(JSON.parse(s.metadata.solver).type, "RMSProp");
    // A weights file path works as the prefix too.
    await loadCheckpoint(b, saved.weights, quiet);
    a.destroy();
    b.destroy();
  });
});

for (
  const make of [() => new RMSProp({ baseLr: 0.02, weightDecay: 0.01 }), () => new Adam({ baseLr: 0.02 })]
) {
  Deno.test(`checkpoint: ${make().type} resumed at step 3 of 7 ends bit-identical to the uninterrupted run`, async () => {
    await withTempDir(async (dir) => {
      const full = await probeNet(BASE, make());
      train(full, BASE, 7);
      const want = await snapshot(full);
      const first = await probeNet(BASE, make());
      train(first, BASE, 3);
      const { prefix } = await saveCheckpoint(first, join(dir, "run"));
      first.destroy();
      const second = await probeNet(BASE, make(), 12345); // another init seed: everything must come from the file
      await loadCheckpoint(second, prefix, quiet);
      train(second, BASE, 7);
      const got = await snapshot(second);
      assert.deepEqual(got.params, want.params);
      assert.deepEqual(got.history, want.history);
      full.destroy();
      second.destroy();
    });
  });
}

Deno.test("checkpoint hand-off: a head that changed shape is re-initialised with zero history, the rest copied, iteration kept", async () => {
  await withTempDir(async (dir) => {
    const oldSpecs: ProbeParam[] = [...BASE, { name: "head", shape: [4, 3] }, { name: "gone", shape: [2] }];
    const newSpecs: ProbeParam[] = [...BASE, { name: "head", shape: [8, 3] }, { name: "fresh", shape: [3] }];
    const a = await probeNet(oldSpecs, new RMSProp({ baseLr: 0.01 }));
    train(a, oldSpecs, 4);
    const { prefix } = await saveCheckpoint(a, dir);
    const before = await snapshot(a);
    const b = await probeNet(
      newSpecs,
      new RMSProp({ baseLr: 0.01, policy: { type: "multistep", gamma: 0.2, stepvalues: [6] } }),
    );
    train(b, newSpecs, 2); // b's own state must be replaced, not mixed in
    await assert.rejects(
      () => loadCheckpoint(b, prefix, quiet),
      (e: Error) =>
        /net_iter_4\.safetensors does not match net "probe"/.test(e.message) &&
        /p\.head: checkpoint 4x3, net 8x3/.test(e.message) &&
        /p\.fresh \(3\): in the net, not in the checkpoint/.test(e.message) &&
        /p\.gone \(2\): in the checkpoint, not in the net/.test(e.message),
    );
    let printed = "";
    const r: LoadReport = await loadCheckpoint(b, prefix, { strict: false, log: (s) => (printed = s) });
    assert.deepEqual(r.copied, ["p.a", "p.b", "p.run"]);
    assert.deepEqual(r.reinitialised.map((x) => [x.key, x.reason]), [["p.head", "shape"], [
      "p.fresh",
      "missing",
    ]]);
    assert.deepEqual(r.ignored.map((x) => x.key), ["p.gone"]);
    assert.equal(r.iter, 4);
    assert.equal(b.iter, 4);
    assert.match(printed, /re-initialised p\.head: checkpoint 4x3, net 8x3/);
    assert.match(printed, /solver setting changed: policy/);
    for (const key of ["p.a", "p.b", "p.run"]) {
      assert.deepEqual(await b.readParam(key), await a.readParam(key));
    }
    for (const key of ["p.head", "p.fresh"]) {
      const e = b.param(key);
      assert.deepEqual(await b.readParam(key), fill(e.decl.filler, e.decl.shape, { seed: b.seed, key }));
    }
    const after = await snapshot(b);
    const range = (net: Net, key: string) => {
      const e = net.param(key);
      return [e.offset / 4, e.offset / 4 + e.count] as const;
    };
    for (const key of ["p.head", "p.fresh"]) {
      assert.ok(after.history[0].subarray(...range(b, key)).every((v) => v === 0), `${key} history is zero`);
    }
    for (const key of ["p.a", "p.b"]) {
      assert.deepEqual(
        after.history[0].subarray(...range(b, key)),
        before.history[0].subarray(...range(a, key)),
      );
    }
    train(b, newSpecs, 6); // and it trains on from there
    a.destroy();
    b.destroy();
  });
});

Deno.test("checkpoint: another solver type is refused strictly, or starts its history at zero", async () => {
  await withTempDir(async (dir) => {
    const a = await probeNet(BASE, new RMSProp({ baseLr: 0.01 }));
    train(a, BASE, 2);
    const { prefix } = await saveCheckpoint(a, dir);
    const b = await probeNet(BASE, new Adam({ baseLr: 0.01 }));
    train(b, BASE, 1);
    await assert.rejects(
      () => loadCheckpoint(b, prefix, quiet),
      /holds RMSProp state .* net's solver is Adam/,
    );
    const r = await loadCheckpoint(b, prefix, { strict: false, log: () => {} });
    assert.deepEqual(r.historyReset, ["p.a", "p.b"]);
    assert.equal(b.iter, 2);
    for (const h of (await snapshot(b)).history) assert.ok(h.every((v) => v === 0));
    a.destroy();
    b.destroy();
  });
});

Deno.test("checkpoint: weights only into an inference net; weights from another writer; solver state needs a solver", async () => {
  await withTempDir(async (dir) => {
    const a = await probeNet(BASE, new RMSProp({ baseLr: 0.01 }));
    train(a, BASE, 2);
    const { prefix } = await saveCheckpoint(a, dir);
    const infer = await probeNet(BASE, null);
    await assert.rejects(() => loadCheckpoint(infer, prefix, { solverState: true }), /has no solver/);
    const r = await loadCheckpoint(infer, prefix, quiet);
    assert.equal(r.solverStateLoaded, false);
    assert.equal(infer.iter, 0);
    assert.deepEqual(await infer.readParam("p.a"), await a.readParam("p.a"));
    // A model exported elsewhere (half precision, no solver state, extra tensors): copy what matches.
    const half = new Uint8Array(2 * 7);
    for (let i = 0; i < 7; i++) new DataView(half.buffer).setUint16(2 * i, 0x3800, true); // 0.5
    const ext = join(dir, "exported.safetensors");
    await Deno.writeFile(ext, handMade({ "p.b": { dtype: "F16", shape: [7], data_offsets: [0, 14] } }, half));
    const r2 = await loadCheckpoint(infer, ext, { strict: false, log: () => {} });
    assert.deepEqual(r2.copied, ["p.b"]);
    assert.deepEqual([...await infer.readParam("p.b")], new Array(7).fill(0.5));
    await assert.rejects(
      () => loadCheckpoint(a, ext, quiet),
      /exported\.solverstate\.safetensors does not exist/,
    );
    a.destroy();
    infer.destroy();
  });
});

Deno.test("findLatestCheckpoint: highest complete save wins; an interrupted save is detected and skipped", async () => {
  await withTempDir(async (dir) => {
    assert.equal(await findLatestCheckpoint(join(dir, "missing")), null);
    assert.equal(await findLatestCheckpoint(dir), null);
    const net = await probeNet(BASE, new RMSProp({ baseLr: 0.01 }));
    train(net, BASE, 2);
    await saveCheckpoint(net, dir);
    train(net, BASE, 10);
    await saveCheckpoint(net, dir);
    assert.deepEqual(await findLatestCheckpoint(dir), { prefix: join(dir, "net_iter_10"), iter: 10 });
    // A crash between the two renames of a re-save: new weights next to the old solver state.
    train(net, BASE, 11);
    const other = await saveCheckpoint(net, join(dir, "elsewhere", "x"));
    const p10 = checkpointPaths(join(dir, "net_iter_10"));
    await Deno.copyFile(other.weights, p10.weights);
    await assert.rejects(() => loadCheckpoint(net, p10.weights, quiet), /belongs to another save/);
    // Weights without solver state (saveCheckpoint with solverState false) are not resumable either.
    await saveCheckpoint(net, join(dir, "net_iter_12"), { solverState: false });
    assert.deepEqual(await findLatestCheckpoint(dir), { prefix: join(dir, "net_iter_2"), iter: 2 });
    net.destroy();
  });
});
