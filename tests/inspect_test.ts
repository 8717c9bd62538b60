import assert from "node:assert/strict";
import { join } from "node:path";
import { makeTinyDataset } from "./fixtures/tiny_dataset.ts";
import { decodeImage } from "../io/images.ts";

async function inspect(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../tasks/inspect.ts", import.meta.url).pathname, ...args],
    stdout: "piped",
    stderr: "piped",
  });
  const out = await cmd.output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("inspect: JSON of an augmented sample, a PNG with the skeleton, and a clear error for a missing id", async () => {
  const root = await Deno.makeTempDir({ prefix: "volpose_inspect_" });
  try {
    await makeTinyDataset(root, 4);
    const png = join(root, "crop.png");
    const r = await inspect([
      "--data",
      root,
      "--id",
      "2",
      "--augment",
      "--seed",
      "3",
      "--input-size",
      "64",
      "--json",
      "--out",
      png,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.id ?? j.sample?.id, 2);
    const img = await decodeImage(png);
    assert.ok(img.width >= 64 && img.width === img.height, `${img.width}x${img.height}`);
    const bad = await inspect(["--data", root, "--id", "99"]);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /99\.txt/);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
