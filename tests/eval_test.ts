/**
 * `deno task eval` end to end on a tiny generated dataset: a tiny model trained for a few
 * iterations is evaluated in-process, and the report (15-action structure, per-action rows for
 * the actions present, per-joint rows, the mean-pose baseline), the pictures with their HTML
 * index and the per-sample blob dumps are checked; then the flip test on the Protocol-2 list with
 * running statistics, the flip averaging itself, and the errors for bad input.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { sharedGpu } from "../kernels/device.ts";
import { generateDataset } from "../io/synth_dataset.ts";
import { actionOf, readIdList, readRangeTable } from "../io/index_ranges.ts";
import { ACTIONS, FLIP_PERMUTATION, JOINT_LABELS, NUM_JOINTS } from "../io/joints.ts";
import type { EvalReport } from "../io/report.ts";
import { runConfig } from "../run/config.ts";
import { tinyRunConfig } from "./tiny_run.ts";
import { train } from "../run/train.ts";
import { evaluate } from "../run/evaluate.ts";
import { averageFlipped, mirrorImages } from "../run/eval_scorer.ts";

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47];

async function tinyRun(dir: string): Promise<{ runDir: string; data: string }> {
  const data = join(dir, "data");
  await generateDataset(data, { train: 24, test: 12, seed: 5, workers: 0 });
  const cfg = tinyRunConfig(data, { schedule: [2], iters: 3, seed: 2 });
  const runDir = join(dir, "run");
  await train(cfg, { runDir, gpu: await sharedGpu(), progress: false, log: () => {} });
  return { runDir, data };
}

function isFiniteMetrics(v: Record<string, number | null>): boolean {
  return Object.values(v).every((x) => typeof x === "number" && Number.isFinite(x));
}

Deno.test("eval: report, per-action and per-joint rows, baseline, pictures, dumps; flip on Protocol 2", async () => {
  const dir = await Deno.makeTempDir({ prefix: "volpose_eval_" });
  try {
    const gpu = await sharedGpu();
    const { runDir, data } = await tinyRun(dir);
    const out = join(dir, "eval");
    const { report, outDir } = await evaluate({
      run: runDir,
      out,
      batch: 3,
      vis: 2,
      dump: ["pred_3d_int", "err_base_rel", "gt3d"],
      workers: 0,
      gpu,
      progress: false,
      log: () => {},
    });
    assert.equal(outDir, out);
    const json: EvalReport = JSON.parse(await Deno.readTextFile(join(out, "report.json")));
    assert.deepEqual(json.overall, report.overall);
    // Every test sample once (the default 600-sample subset covers the 12 test ids); 12 = 4 batches of 3.
    assert.equal(json.overall.n, 12);
    assert.equal(json.meta.padded, 0);
    assert.equal(json.meta.iter, 3);
    assert.equal(json.meta.d2, 2);
    // The 15 actions in order; rows for exactly the actions of the test ids.
    assert.deepEqual(json.actions.map((a) => a.action), [...ACTIONS]);
    const table = await readRangeTable(join(data, "index_range"));
    const want = new Map<string, number>();
    for (let id = 24; id < 36; id++) {
      const a = actionOf(table, id)!.action;
      want.set(a, (want.get(a) ?? 0) + 1);
    }
    for (const row of json.actions) {
      assert.equal(row.n, want.get(row.action) ?? 0, row.action);
      for (const m of ["argmax", "integral", "baseline"] as const) {
        if (row.n > 0) assert.ok(isFiniteMetrics(row[m]), `${row.action} ${m}`);
        else assert.ok(Object.values(row[m]).every((v) => v === null), `${row.action} ${m} empty`);
      }
    }
    assert.equal(json.actionMean.actions, want.size);
    assert.equal(json.unassigned, 0);
    // Per joint: the 16 labels; the root scores 0 root-relative for every method.
    assert.deepEqual(json.joints.map((j) => j.joint), [...JOINT_LABELS]);
    for (const m of ["argmax", "integral", "baseline"] as const) {
      assert.equal(json.joints[0][m].mpjpe_rel, 0);
      assert.ok(isFiniteMetrics(json.overall[m]), m);
    }
    // The baseline: a real yardstick (a human-sized error, not 0), and with the GT root the
    // seed-style error equals the root-relative one up to the back-projection of the GT.
    const base = json.overall.baseline;
    assert.ok(base.mpjpe_rel! > 20 && base.mpjpe_rel! < 1000, `baseline ${base.mpjpe_rel}`);
    assert.ok(base.pa_mpjpe! <= base.mpjpe_rel! + 1e-3);
    // Per axis: every component of a root-relative error is at most its length, and the three
    // together at least its length over sqrt(3) (so none can be 0 while the error is not).
    for (const m of ["argmax", "integral", "baseline"] as const) {
      const [x, y, z] = json.axes![m], rel = json.overall[m].mpjpe_rel!;
      for (const v of [x, y, z]) assert.ok(v >= 0 && v <= rel + 1e-3, `${m} axis ${v} vs rel ${rel}`);
      assert.ok(
        Math.hypot(x, y, z) >= rel / Math.sqrt(3) - 1e-3 && x + y + z >= rel - 1e-3,
        `${m} axes ${x} ${y} ${z}`,
      );
    }
    // The per-sample file agrees with the aggregate.
    const csv = (await Deno.readTextFile(join(out, "samples.csv"))).trim().split("\n");
    assert.equal(csv.length, 13);
    const col = csv[0].split(",").indexOf("integral_mpjpe_rel");
    const mean = csv.slice(1).reduce((s, l) => s + Number(l.split(",")[col]), 0) / 12;
    assert.ok(
      Math.abs(mean - json.overall.integral.mpjpe_rel!) < 0.01,
      `${mean} vs ${json.overall.integral.mpjpe_rel}`,
    );
    // Markdown: settings, the per-action and per-joint tables with the baseline columns.
    const md = await Deno.readTextFile(join(out, "report.md"));
    assert.match(md, /## Per action/);
    assert.match(md, /## Per joint/);
    assert.match(md, /baseline rel/);
    assert.match(md, /\| integral \| [\d.]+ \| [\d.]+ \| [\d.]+ \|/);
    for (const a of want.keys()) assert.match(md, new RegExp(`\\| ${a} \\| ${want.get(a)} \\|`));
    // Pictures of the first two samples and the index page.
    const ids = csv.slice(1, 3).map((l) => Number(l.split(",")[0]));
    for (const id of ids) {
      for (const kind of ["crop", "heatmap2d", "heatmap3d", "skeleton3d"]) {
        const png = await Deno.readFile(join(out, "vis", `${id}_${kind}.png`));
        assert.deepEqual([...png.subarray(0, 4)], PNG_MAGIC, `${id}_${kind}.png`);
      }
    }
    assert.equal([...Deno.readDirSync(join(out, "vis"))].length, 8);
    const html = await Deno.readTextFile(join(out, "index.html"));
    for (const id of ids) {
      assert.match(html, new RegExp(`sample ${id}\\b`));
      assert.match(html, new RegExp(`src="vis/${id}_skeleton3d.png"`));
    }
    // Dumps: one row of %12.6f values per blob and sample.
    const dumps = [...Deno.readDirSync(join(out, "dump"))].map((d) => d.name);
    assert.equal(dumps.length, 36);
    const row = await Deno.readTextFile(join(out, "dump", `pred_3d_int_${ids[0]}.txt`));
    assert.equal(row.split("\n").length, 2);
    assert.equal(row.trim().split(/\s+/).length, NUM_JOINTS * 3);
    assert.match(row, /^ *-?\d+\.\d{6} /);
    const errRow = (await Deno.readTextFile(join(out, "dump", `err_base_rel_${ids[0]}.txt`))).trim().split(
      /\s+/,
    );
    assert.equal(Number(errRow[0]), 0); // the root, root-relative
    // Where the error lies: the integral prediction with the GT depth keeps each joint's camera ray
    // (X, Y scale with Z), with the GT 2D it takes the GT ray at the predicted Z. Recomputed here
    // from the dumped prediction and GT, the two figures match the report's.
    const allIds = csv.slice(1).map((l) => Number(l.split(",")[0]));
    const load = async (blob: string, id: number) =>
      (await Deno.readTextFile(join(out, "dump", `${blob}_${id}.txt`))).trim().split(/\s+/).map(Number);
    const swapped = { gtDepth: 0, gt2d: 0 };
    for (const id of allIds) {
      const p = await load("pred_3d_int", id), g = await load("gt3d", id);
      for (const part of ["gtDepth", "gt2d"] as const) {
        const q = Array.from({ length: NUM_JOINTS }, (_, j) => {
          const [pz, gz] = [p[3 * j + 2], g[3 * j + 2]];
          return part === "gtDepth"
            ? [p[3 * j] * gz / pz, p[3 * j + 1] * gz / pz, gz]
            : [g[3 * j] * pz / gz, g[3 * j + 1] * pz / gz, pz];
        });
        for (let j = 0; j < NUM_JOINTS; j++) {
          swapped[part] += Math.hypot(
            ...[0, 1, 2].map((c) => q[j][c] - q[0][c] - (g[3 * j + c] - g[c])),
          ) / (NUM_JOINTS * allIds.length);
        }
      }
    }
    for (const part of ["gtDepth", "gt2d"] as const) {
      const got = json.parts![part];
      assert.ok(
        Math.abs(got - swapped[part]) < 0.02 * swapped[part] + 0.05,
        `${part}: ${got} vs ${swapped[part]}`,
      );
    }
    assert.match(md, /Where the error lies: integral root-relative MPJPE [\d.]+ mm; with the GT depth/);

    await assert.rejects(
      evaluate({ run: runDir, out: join(dir, "x"), dump: ["nope"], gpu, progress: false, log: () => {} }),
      /--dump: no blob "nope"; available: .*pred_3d_int/,
    );

    // A legacy switch over the run's own: the seed's depth-decoding bounds change the decoded depth, so the
    // same samples score differently; the report and the default output folder say so.
    const legacy = await evaluate({
      run: runDir,
      legacy: { depthBounds: true },
      workers: 0,
      gpu,
      progress: false,
      log: () => {},
    });
    assert.equal(legacy.outDir, join(runDir, "eval-random-legacy"));
    assert.equal(legacy.report.meta.legacy.depthBounds, true);
    assert.equal(legacy.report.meta.legacy.heatmaps, false);
    assert.equal(legacy.report.overall.n, json.overall.n);
    assert.notEqual(legacy.report.overall.integral.mpjpe_rel, json.overall.integral.mpjpe_rel);

    // Flip test on the Protocol-2 list with running statistics; the last short batch is padded.
    const p2 = await readIdList(join(data, "index_range", "Protocol2", "all_id.txt"));
    const flip = await evaluate({
      run: runDir,
      out: join(dir, "eval_flip"),
      subset: "protocol2",
      flip: true,
      stats: "running",
      batch: 4,
      workers: 0,
      gpu,
      progress: false,
      log: () => {},
    });
    assert.equal(flip.report.overall.n, p2.length);
    assert.equal(flip.report.meta.padded, (4 - (p2.length % 4)) % 4);
    assert.equal(flip.report.meta.flip, true);
    for (const m of ["argmax", "integral", "baseline"] as const) {
      assert.ok(isFiniteMetrics(flip.report.overall[m]), `flip ${m}`);
      assert.ok(flip.report.axes![m].every((v) => Number.isFinite(v) && v > 0), `flip ${m} axes`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("eval: flip averaging un-mirrors x and swaps left and right", () => {
  const J = NUM_JOINTS, B = 2;
  const joints2d = Float32Array.from({ length: B * J * 2 }, (_, i) => 0.1 + 0.8 * ((i * 37) % 101) / 101);
  const depth = Float32Array.from({ length: B * J }, (_, i) => ((i * 13) % 17) / 17);
  // What a perfectly mirror-consistent network would output on the mirrored image.
  const mj = new Float32Array(joints2d.length), md = new Float32Array(depth.length);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < J; j++) {
      const s = b * J + FLIP_PERMUTATION[j], d = b * J + j;
      mj[2 * d] = 1 - joints2d[2 * s];
      mj[2 * d + 1] = joints2d[2 * s + 1];
      md[d] = depth[s];
    }
  }
  const avg = averageFlipped({ joints2d, depth }, { joints2d: mj, depth: md });
  for (let i = 0; i < joints2d.length; i++) {
    assert.ok(Math.abs(avg.joints2d[i] - joints2d[i]) < 1e-6, `xy ${i}`);
  }
  for (let i = 0; i < depth.length; i++) assert.ok(Math.abs(avg.depth[i] - depth[i]) < 1e-6, `z ${i}`);
  // Mirroring the planar image twice is the identity, once reverses every row.
  const img = Float32Array.from({ length: 2 * 3 * 4 * 4 }, (_, i) => i);
  const once = mirrorImages(img, 4);
  assert.deepEqual([...once.subarray(0, 4)], [3, 2, 1, 0]);
  assert.deepEqual([...mirrorImages(once, 4)], [...img]);
});

Deno.test("eval: missing run, checkpoint or blob names the path and what was expected", async () => {
  const dir = await Deno.makeTempDir({ prefix: "volpose_eval_bad_" });
  try {
    await assert.rejects(
      evaluate({ run: join(dir, "nope"), progress: false, log: () => {} }),
      (e: Error) => e.message.includes(join(dir, "nope", "config.json")) && /deno task train/.test(e.message),
    );
    await assert.rejects(
      evaluate({ runsRoot: join(dir, "empty"), progress: false, log: () => {} }),
      /no run found under .*empty.*give --run DIR/,
    );
    const run = join(dir, "run");
    await Deno.mkdir(run);
    const cfg = runConfig("tiny", { data: join(dir, "data") });
    await Deno.writeTextFile(join(run, "config.json"), JSON.stringify(cfg));
    await assert.rejects(
      evaluate({ run, progress: false, log: () => {} }),
      (e: Error) =>
        e.message.includes(join(run, "checkpoints")) && /net_iter_<N>\.safetensors/.test(e.message),
    );
    await assert.rejects(
      evaluate({ run, checkpoint: join(run, "checkpoints", "net_iter_7"), progress: false, log: () => {} }),
      (e: Error) => e.message.includes("net_iter_7.safetensors not found"),
    );
    await Deno.writeTextFile(join(run, "config.json"), "{");
    await assert.rejects(
      evaluate({ run, progress: false, log: () => {} }),
      /config\.json: expected a JSON run/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
