import assert from "node:assert/strict";
import { join } from "node:path";
import { DataError } from "../io/errors.ts";
import {
  actionOf,
  countIds,
  formatIdList,
  formatRange,
  LEGACY_SEED_SPLITS,
  parseExcludeList,
  parseRange,
  readProtocol2,
  readRangeFile,
  readRangeTable,
  SEED_NUM_SAMPLES,
  SEED_SPLITS,
  writeProtocol2,
  writeRangeTable,
} from "../io/index_ranges.ts";
import { datasetSplits, type Manifest, readManifest, writeManifest } from "../io/manifest.ts";

const IR = new URL("./fixtures/index_range/", import.meta.url).pathname;

Deno.test("real range files: format, table, subject boundaries, actionOf", async () => {
  const path = join(IR, "S1_Directions_range.txt");
  assert.deepEqual(await readRangeFile(path), [0, 11979]);
  assert.equal(formatRange(0, 11979), Deno.readTextFileSync(path));
  const table = await readRangeTable(IR);
  assert.equal(table.length, 105);
  assert.equal(table[0].start, 0);
  assert.equal(table[table.length - 1].end, SEED_NUM_SAMPLES - 1);
  for (let i = 1; i < table.length; i++) assert.equal(table[i].start, table[i - 1].end + 1);
  assert.deepEqual(actionOf(table, 1559752), {
    subject: "S9",
    action: "Directions",
    start: 1559752,
    end: 1579971,
  });
  assert.equal(actionOf(table, 1559751)?.subject, "S8");
  assert.equal(actionOf(table, 1877420)?.subject, "S11");
  assert.equal(actionOf(table, SEED_NUM_SAMPLES), undefined);
  assert.equal(countIds(SEED_SPLITS.train) + countIds(SEED_SPLITS.test), SEED_NUM_SAMPLES);
  assert.equal(countIds(LEGACY_SEED_SPLITS.test), 548999);
});

Deno.test("real Protocol2 lists read and write back identically", async () => {
  const p2 = await readProtocol2(join(IR, "Protocol2"));
  assert.equal(p2.all.length, 8576);
  assert.equal(p2.byAction.get("Directions")?.length, 499);
  assert.equal(p2.byAction.get("Discussion")?.length, 1004);
  assert.equal(p2.byAction.size, 15);
  const dir = await Deno.makeTempDir();
  try {
    await writeProtocol2(dir, p2.byAction);
    for (const f of ["all_id.txt", "Walking_range.txt", "SittingDown_range.txt"]) {
      assert.equal(Deno.readTextFileSync(join(dir, f)), Deno.readTextFileSync(join(IR, "Protocol2", f)));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assert.equal(formatIdList([1559815]), "     1559815\n");
});

Deno.test("range and exclude files reject malformed input", async () => {
  assert.throws(() => parseRange("5\n", "r.txt"), /r\.txt: expected 2 integers start end, got 1 values/);
  assert.throws(() => parseRange("5 x\n", "r.txt"), /r\.txt:1: expected a number, got "x"/);
  assert.throws(() => parseRange("9 5\n", "r.txt"), DataError);
  assert.throws(() => parseRange("1.5 5\n", "r.txt"), /non-negative integer ids/);
  assert.deepEqual(parseExcludeList("2\n4\n9\n", "e.txt"), [4, 9]);
  assert.throws(
    () => parseExcludeList("3\n4\n9\n", "e.txt"),
    /e\.txt: expected 3 ids after the count, got 2/,
  );
  const dir = await Deno.makeTempDir();
  try {
    await writeRangeTable(dir, [
      { subject: "S9", action: "Walking", start: 0, end: 9 },
      { subject: "S9", action: "Eating", start: 5, end: 20 },
    ]);
    await assert.rejects(readRangeTable(dir), /disjoint/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("manifest: absent -> null and seed splits; round trip; malformed -> DataError", async () => {
  const root = await Deno.makeTempDir();
  try {
    assert.equal(await readManifest(root), null);
    assert.deepEqual(await datasetSplits(root), SEED_SPLITS);
    const m: Manifest = {
      format: "volpose-dataset/1",
      name: "tiny",
      numSamples: 10,
      imageSize: 224,
      splits: { train: [[0, 6]], test: [[7, 9]] },
      indexRangeDir: "index_range",
    };
    await writeManifest(root, m);
    assert.deepEqual(await readManifest(root), m);
    Deno.writeTextFileSync(
      join(root, "volpose_manifest.json"),
      JSON.stringify({ ...m, splits: { train: [[5, 1]] } }),
    );
    await assert.rejects(readManifest(root), /splits\.train\[0\]/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
