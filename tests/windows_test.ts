import assert from "node:assert/strict";
import { sharedGpu } from "../kernels/device.ts";
import { createRegion, download } from "../graph/tensor.ts";
import { KernelCache, Recorder, u32 } from "../kernels/kernel.ts";
import {
  copiesForReading,
  packImages,
  sliceWindows,
  TEXTURE_WIDTH,
  textureDecl,
  UNIFORM_FLOATS,
  uniformDecl,
  uniformWindow,
} from "../kernels/windows.ts";
import { randomArray, submitRecorded } from "./gradcheck.ts";

/**
 * Packs `images` images of `imageFloats` floats (at the storage alignment into a larger buffer), then
 * reads every one back through textureDecl's readers: the vec4 reader into one output, the scalar
 * reader into another. Both must give back the input exactly.
 */
async function packRoundTrip(images: number, imageFloats: number, slot: number) {
  const gpu = await sharedGpu();
  // A region that starts 16 bytes into its buffer (copies need no more than a texel's alignment).
  const lead = 4;
  const data = randomArray(lead + images * imageFloats, images * 7 + imageFloats);
  const src = createRegion(gpu, data);
  const region = { buffer: src.buffer, offset: src.offset + lead * 4, size: images * imageFloats * 4 };
  const out4 = createRegion(gpu, images * imageFloats), out1 = createRegion(gpu, images * imageFloats);
  const rec = new Recorder(new KernelCache(gpu));
  const views = packImages(rec, region, images, imageFloats, slot);
  assert.ok(views, "packImages refused a 16-byte aligned region of whole vec4s");
  assert.equal(views.length, images);
  const texels = imageFloats / 4;
  // One dispatch per image view (each view is one layer), writing that image's slice of the
  // whole outputs (a slice's offset need not meet the storage binding alignment).
  views.forEach((view, n) => {
    const code = `${textureDecl(0, "t", "at")}
@group(0) @binding(1) var<storage, read_write> o4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> o1: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let i = gid.x;
  if (i >= ${u32(texels)}) { return; }
  let e = ${u32(n * texels)} + i;
  o4[e] = at4(i);
  for (var k = 0u; k < 4u; k++) { o1[e * 4u + k] = at(i * 4u + k); }
}`;
    rec.dispatch({ label: `unpack image ${n}`, code }, [view, out4, out1], [Math.ceil(texels / 64)]);
  });
  await submitRecorded(rec);
  const got4 = await download(gpu, out4), got1 = await download(gpu, out1);
  for (const t of rec.textures.values()) t.destroy();
  for (const r of [src, out4, out1]) r.buffer.destroy();
  return { want: Float32Array.from(data.subarray(lead)), got4, got1, textures: [...rec.textures.keys()] };
}

Deno.test("packImages: images round-trip exactly through the packed texture, one row and several", async () => {
  // One texture row per image; then 2,049 texels an image, which spill into a second row.
  for (const [images, imageFloats, slot] of [[3, 64, 0], [2, (TEXTURE_WIDTH + 1) * 4, 1]]) {
    const r = await packRoundTrip(images, imageFloats, slot);
    assert.deepEqual(r.got4, r.want, `vec4 reader, ${images} x ${imageFloats}`);
    assert.deepEqual(r.got1, r.want, `scalar reader, ${images} x ${imageFloats}`);
    const rows = Math.ceil(imageFloats / 4 / TEXTURE_WIDTH);
    assert.deepEqual(r.textures, [`${TEXTURE_WIDTH}x${rows}x${images}/${slot}`]);
  }
});

Deno.test("packImages: refuses regions it cannot copy or read as vec4", async () => {
  const gpu = await sharedGpu();
  const src = createRegion(gpu, 64);
  const rec = new Recorder(new KernelCache(gpu));
  assert.equal(packImages(rec, src, 2, 30), null, "image of 30 floats");
  // An offset a copy cannot start at (not a whole texel).
  assert.equal(
    packImages(rec, { ...src, offset: src.offset + 4, size: 128 }, 2, 16),
    null,
    "offset of 4 bytes",
  );
  assert.equal(packImages(rec, src, 8, 16), null, "region smaller than the images");
  assert.equal(rec.dispatches.length, 0);
  src.buffer.destroy();
});

Deno.test("uniform windows: sliceWindows cuts whole slices that read back exactly", async () => {
  const gpu = await sharedGpu();
  const align = gpu.device.limits.minUniformBufferOffsetAlignment;
  // Slices of 3,072 floats (12,288 bytes, a multiple of 256, so every window and output slice
  // starts at an offset any device can bind): five fit a 64 KiB window.
  const slices = 7, sliceFloats = 3072;
  const data = randomArray(slices * sliceFloats, 11);
  const src = createRegion(gpu, data);
  const rec = new Recorder(new KernelCache(gpu));
  assert.equal(sliceWindows(rec, src, slices, sliceFloats, 1), null, "two windows needed, one allowed");
  const win = sliceWindows(rec, src, slices, sliceFloats, 4);
  assert.ok(win);
  assert.equal(win.perWindow, Math.floor(UNIFORM_FLOATS / sliceFloats));
  assert.deepEqual(win.regions.map((_, w) => win.count(w)), [5, 2]);
  const out = createRegion(gpu, slices * sliceFloats);
  win.regions.forEach((region, w) => {
    const floats = win.count(w) * sliceFloats;
    const code = `${uniformDecl(0, "u", floats, "at")}
@group(0) @binding(1) var<storage, read_write> o: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x < ${u32(floats)}) { o[gid.x] = at(gid.x); }
}`;
    const at = w * win.perWindow * sliceFloats * 4;
    rec.dispatch(
      { label: `window ${floats}`, code },
      [region, { buffer: out.buffer, offset: out.offset + at, size: floats * 4 }],
      [Math.ceil(floats / 64)],
    );
  });
  await submitRecorded(rec);
  assert.deepEqual(await download(gpu, out), data);
  // A window past 64 KiB, or at an offset the device cannot bind, is refused.
  assert.equal(uniformWindow(src, 0, UNIFORM_FLOATS + 4, align), null);
  if (align > 4) assert.equal(uniformWindow(src, 4, 16, align), null);
  src.buffer.destroy();
  out.buffer.destroy();
});

Deno.test("copiesForReading: one view per region in its own slot, or nothing recorded when any region cannot be copied", async () => {
  const gpu = await sharedGpu();
  const a = createRegion(gpu, randomArray(64, 1)), b = createRegion(gpu, randomArray(64, 2));
  const rec = new Recorder(new KernelCache(gpu));
  // b starts 4 bytes in: not a whole texel, so neither region is copied.
  assert.equal(copiesForReading(rec, [a, { ...b, offset: b.offset + 4, size: 128 }], 32), null);
  assert.equal(rec.dispatches.length, 0);
  const views = copiesForReading(rec, [a, b], 32, 3);
  assert.equal(views?.length, 2);
  assert.deepEqual([...rec.textures.keys()], [`${TEXTURE_WIDTH}x1x1/3`, `${TEXTURE_WIDTH}x1x1/4`]);
  assert.ok(rec.dispatches.every((d) => "copy" in d));
  for (const t of rec.textures.values()) t.destroy();
  for (const r of [a, b]) r.buffer.destroy();
});

Deno.test("copyBuffer: moves floats between regions of two buffers; refuses one buffer or a range outside a region", async () => {
  const gpu = await sharedGpu();
  const a = createRegion(gpu, randomArray(12, 1)), b = createRegion(gpu, new Float32Array(12));
  const rec = new Recorder(new KernelCache(gpu));
  rec.owner = "cat";
  rec.copyBuffer("concat_copy", a, 2, b, 5, 4);
  assert.equal(rec.dispatches.length, 1);
  await submitRecorded(rec);
  const out = await download(gpu, b), src = await download(gpu, a);
  assert.deepEqual([...out.slice(5, 9)], [...src.slice(2, 6)]);
  assert.deepEqual([...out.slice(0, 5), ...out.slice(9)], new Array(8).fill(0));
  assert.throws(
    () => rec.copyBuffer("concat_copy", a, 0, a, 6, 4),
    /layer "cat" copy "concat_copy".*different buffers/,
  );
  assert.throws(
    () => rec.copyBuffer("concat_copy", a, 10, b, 0, 4),
    /4 floats from float 10 of a 48-byte region/,
  );
  a.buffer.destroy();
  b.buffer.destroy();
});
