import assert from "node:assert/strict";
import { join } from "node:path";
import { checkDatasetRoot } from "../io/manifest.ts";
import { DataError } from "../io/errors.ts";
import { makeTinyDataset } from "./fixtures/tiny_dataset.ts";

Deno.test("checkDatasetRoot names a missing root and missing per-sample folders, and accepts a real layout", async () => {
  const dir = await Deno.makeTempDir({ prefix: "volpose_root_" });
  try {
    await assert.rejects(() => checkDatasetRoot(join(dir, "absent")), (e: Error) => {
      assert.ok(e instanceof DataError);
      assert.match(e.message, /absent: expected a dataset folder .* got no such folder/);
      return true;
    });
    await Deno.mkdir(join(dir, "partial", "bbx_all_new"), { recursive: true });
    await assert.rejects(() => checkDatasetRoot(join(dir, "partial")), /got no center_x\/, center_y\//);
    await makeTinyDataset(join(dir, "ok"), 2);
    await checkDatasetRoot(join(dir, "ok"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
