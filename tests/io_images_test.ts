import assert from "node:assert/strict";
import { join } from "node:path";
import { DataError } from "../io/errors.ts";
import { Image } from "imagescript";
import { decodeImage, decodeImageBytes, decodeImageReference, encodePng } from "../io/images.ts";

const PNG = new URL("./fixtures/toy/images/1000.png", import.meta.url).pathname;

Deno.test("toy PNG decodes to 224x224 RGB; encode/decode round trip is lossless", async () => {
  const img = await decodeImage(PNG, { expectSize: [224, 224] });
  assert.equal(img.width, 224);
  assert.equal(img.rgb.length, 224 * 224 * 3);
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "x.png");
    await Deno.writeFile(path, await encodePng(img.rgb, 224, 224));
    assert.deepEqual((await decodeImage(path)).rgb, img.rgb);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("image errors: wrong size, missing file, undecodable bytes", async () => {
  await assert.rejects(decodeImage(PNG, { expectSize: [256, 256] }), (e: unknown) => {
    assert.ok(e instanceof DataError);
    assert.match(e.message, /1000\.png: expected a 256x256 image, got 224x224/);
    return true;
  });
  await assert.rejects(
    decodeImage("/nonexistent/1.png"),
    /1\.png: expected a PNG or JPEG image, got no file/,
  );
  const dir = await Deno.makeTempDir();
  try {
    const path = join(dir, "bad.png");
    await Deno.writeFile(path, new Uint8Array([1, 2, 3, 4, 5]));
    await assert.rejects(decodeImage(path), DataError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("native PNG path agrees with the WASM decoder: RGB, RGBA, JPEG fallback, filters", async () => {
  const bytes = Deno.readFileSync(PNG);
  const fast = await decodeImageBytes(bytes, "toy");
  assert.deepEqual(fast, await decodeImageReference(bytes));
  // RGBA written by imagescript, with a gradient that exercises every row filter.
  const img = new Image(37, 23);
  for (let y = 1; y <= 23; y++) {
    for (let x = 1; x <= 37; x++) {
      img.setPixelAt(x, y, ((x * 7) << 24 | (y * 11) << 16 | (x * y) << 8 | 255) >>> 0);
    }
  }
  const rgba = await img.encode(3);
  assert.deepEqual(await decodeImageBytes(rgba, "rgba"), await decodeImageReference(rgba));
  const ours = await encodePng(fast.rgb, 224, 224);
  assert.deepEqual((await decodeImageReference(ours)).rgb, fast.rgb);
  const jpeg = await img.encodeJPEG(90);
  const j = await decodeImageBytes(jpeg, "x.jpg", { expectSize: [37, 23] });
  assert.equal(j.rgb.length, 37 * 23 * 3);
  await assert.rejects(decodeImageBytes(bytes.subarray(0, 3000), "cut.png"), DataError);
});
