import assert from "node:assert/strict";
import { join } from "node:path";
import { decodeImage } from "../io/images.ts";
import { actionOf, readProtocol2, readRangeTable } from "../io/index_ranges.ts";
import { ACTIONS, SUBJECTS, TEST_SUBJECTS } from "../io/joints.ts";
import { readManifest } from "../io/manifest.ts";
import { readSample, resolveImagePath } from "../io/sample_files.ts";
import {
  apportion,
  createSynthContext,
  generateDataset,
  planDataset,
  sampleSpec,
  synthesizeSample,
} from "../io/synth_dataset.ts";
import { loadPoseLibrary } from "../io/synth_poses.ts";

const SMALL = { train: 28, test: 12, seed: 7 };

/** Every file under a root, relative path -> bytes. */
async function snapshot(root: string, dir = ""): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const e of Deno.readDir(join(root, dir))) {
    const rel = join(dir, e.name);
    if (e.isDirectory) { for (const [k, v] of await snapshot(root, rel)) out.set(k, v); }
    else out.set(rel, await Deno.readFile(join(root, rel)));
  }
  return out;
}

let generated: string | null = null;

/** The small dataset, generated once for the tests that read it. */
async function smallDataset(): Promise<string> {
  if (generated) return generated;
  const dir = await Deno.makeTempDir({ prefix: "volpose_synth_" });
  await generateDataset(dir, { ...SMALL, workers: 0 });
  generated = dir;
  return dir;
}

Deno.test("apportion: exact total, proportional, at least one each when possible", () => {
  assert.deepEqual(apportion(10, [1, 1, 2]), [3, 2, 5]);
  const a = apportion(1000, [1, 2, 3, 4]);
  assert.equal(a.reduce((x, y) => x + y, 0), 1000);
  assert.deepEqual(a, [100, 200, 300, 400]);
  const b = apportion(20, Array(15).fill(1).map((_, i) => 1 + 10 * (i === 0 ? 1 : 0)));
  assert.equal(b.reduce((x, y) => x + y, 0), 20);
  assert.ok(b.every((v) => v >= 1));
  assert.equal(apportion(3, [1, 1, 1, 1, 1]).reduce((x, y) => x + y, 0), 3);
});

Deno.test("plan: seed layout (subjects then actions in order), sizes as asked, sub-actions and cameras", () => {
  const plan = planDataset(loadPoseLibrary(), { train: 6000, test: 1000, seed: 1 });
  assert.equal(plan.numSamples, 7000);
  assert.deepEqual(plan.splits, { train: [[0, 5999]], test: [[6000, 6999]] });
  let next = 0;
  for (let s = 0; s < SUBJECTS.length; s++) {
    for (let a = 0; a < ACTIONS.length; a++) {
      const c = plan.cells[s * ACTIONS.length + a];
      assert.equal(c.subject, SUBJECTS[s]);
      assert.equal(c.action, ACTIONS[a]);
      assert.equal(c.start, next);
      assert.ok(c.count > 0);
      next += c.count;
    }
  }
  const cams = new Set<string>();
  const cell = plan.cells[20];
  for (let id = cell.start; id < cell.start + cell.count; id++) {
    const s = sampleSpec(plan, id);
    cams.add(`${s.subactionId}/${s.cameraId}`);
    assert.ok(s.libraryFrame >= s.cell.takes[s.subactionId - 1].start);
  }
  assert.equal(cams.size, 8, "two sub-actions x four cameras");
  assert.throws(() => sampleSpec(plan, 7000), RangeError);
});

Deno.test("small dataset: 2D labels are the 3D file projected through the camera file and the bbx", async () => {
  const root = await smallDataset();
  const m = await readManifest(root);
  assert.ok(m);
  assert.equal(m.numSamples, SMALL.train + SMALL.test);
  assert.deepEqual(m.splits, {
    train: [[0, SMALL.train - 1]],
    test: [[SMALL.train, SMALL.train + SMALL.test - 1]],
  });
  const table = await readRangeTable(join(root, m.indexRangeDir));
  for (let id = 0; id < m.numSamples; id++) {
    const r = await readSample(root, id);
    assert.equal(r.centerX, 112);
    assert.equal(r.centerY, 112);
    assert.equal(r.scale, 224);
    const [x1, y1, x2, y2] = r.bbx;
    assert.equal(x2 - x1, y2 - y1, "square box");
    assert.ok(r.bbx.every(Number.isInteger));
    for (let j = 0; j < 32; j++) {
      const [X, Y, Z] = [r.joints3d[3 * j], r.joints3d[3 * j + 1], r.joints3d[3 * j + 2]];
      assert.ok(Z > 2500 && Z < 7500, `sample ${id} joint ${j} depth ${Z}`);
      const u = ((r.camera.f[0] * X / Z + r.camera.c[0]) - x1) / (x2 - x1) * 224;
      const v = ((r.camera.f[1] * Y / Z + r.camera.c[1]) - y1) / (y2 - y1) * 224;
      assert.ok(
        Math.abs(u - r.joints2d[2 * j]) < 0.5 && Math.abs(v - r.joints2d[2 * j + 1]) < 0.5,
        `${id}/${j}`,
      );
    }
    // The camera file's R and T place the 3D joints consistently in one world: the pelvis is
    // about a metre above the floor (world z up, floor at z = 0).
    const R = r.camera.R, T = r.camera.T;
    const pz = R[2] * r.joints3d[0] + R[5] * r.joints3d[1] + R[8] * r.joints3d[2] + T[2];
    assert.ok(pz > 500 && pz < 1500, `pelvis height ${pz}`);
    const row = actionOf(table, id)!;
    assert.equal(row.subject, r.info.subject);
    assert.equal(row.action, r.info.actionName);
    assert.equal(r.info.actionId, ACTIONS.indexOf(row.action) + 2);
    assert.equal(TEST_SUBJECTS.includes(r.info.subject), id >= SMALL.train);
    assert.equal(resolveImagePath(root, r), join(root, "images", `${id}.png`));
  }
  const p2 = await readProtocol2(join(root, m.indexRangeDir, "Protocol2"));
  assert.ok(p2.all.length > 0 && p2.all.every((id) => id >= SMALL.train));
});

Deno.test("small dataset: images are 224x224 with a figure on a non-blank background", async () => {
  const root = await smallDataset();
  const ctx = createSynthContext(SMALL);
  for (let id = 0; id < SMALL.train + SMALL.test; id += 3) {
    const img = await decodeImage(join(root, "images", `${id}.png`), { expectSize: [224, 224] });
    let sum = 0, sq = 0;
    for (const v of img.rgb) {
      sum += v;
      sq += v * v;
    }
    const n = img.rgb.length, std = Math.sqrt(sq / n - (sum / n) ** 2);
    assert.ok(std > 8, `image ${id} is nearly flat (std ${std.toFixed(1)})`);
    const { coverage, rgb } = synthesizeSample(ctx, id);
    assert.deepEqual(rgb, img.rgb, "the file holds the rendered pixels");
    assert.ok(
      coverage > 0.04 && coverage < 0.5,
      `figure covers ${(100 * coverage).toFixed(1)}% of crop ${id}`,
    );
  }
});

Deno.test("generation is deterministic: same seed and any worker count give identical files", async () => {
  const root = await smallDataset();
  const again = await Deno.makeTempDir({ prefix: "volpose_synth_" });
  const other = await Deno.makeTempDir({ prefix: "volpose_synth_" });
  try {
    await generateDataset(again, { ...SMALL, workers: 1 });
    const a = await snapshot(root), b = await snapshot(again);
    assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
    for (const [k, v] of a) assert.deepEqual(v, b.get(k), k);
    await generateDataset(other, { ...SMALL, seed: SMALL.seed + 1, workers: 0 });
    const c = await snapshot(other);
    assert.notDeepEqual(c.get("gt_joint_3d_mono_raw/5.txt"), a.get("gt_joint_3d_mono_raw/5.txt"));
  } finally {
    await Deno.remove(again, { recursive: true });
    await Deno.remove(other, { recursive: true });
  }
});

Deno.test({
  name: "remove the small dataset",
  fn: async () => {
    if (generated) await Deno.remove(generated, { recursive: true });
    generated = null;
  },
});
