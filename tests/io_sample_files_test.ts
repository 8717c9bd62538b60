import assert from "node:assert/strict";
import { join } from "node:path";
import { DataError } from "../io/errors.ts";
import {
  formatCamera,
  formatFixed,
  formatInfo,
  formatJoints2d,
  formatJoints3d,
  parseBbx,
  parseCamera,
  parseImagePath,
  parseInfo,
  parseJoints2d,
  parseJoints3d,
  parseScalarFile,
  readSample,
  resolveImagePath,
  type SampleRecord,
  writeSample,
} from "../io/sample_files.ts";

const TOY = new URL("./fixtures/toy/", import.meta.url).pathname;
const toy = (rel: string) => join(TOY, rel);
const text = (rel: string) => Deno.readTextFileSync(toy(rel));

Deno.test("toy bbx, centre and scale files parse", () => {
  assert.deepEqual(parseBbx(text("bbx_all_new/9.txt"), "bbx"), [265, 264, 658, 657]);
  assert.equal(parseScalarFile(text("center_x/18.txt"), "cx"), 112);
  assert.equal(parseScalarFile(text("center_y/13.txt"), "cy"), 112);
  assert.equal(parseScalarFile(text("scale/23.txt"), "s"), 224);
});

Deno.test("toy joint files parse and re-format byte for byte", () => {
  const j2 = text("gt_joint_2d_raw_new/1000.txt");
  const v2 = parseJoints2d(j2, "j2");
  assert.equal(v2.length, 64);
  assert.equal(v2[0], 121.927262);
  assert.equal(formatJoints2d(v2), j2);
  const j3 = text("gt_joint_3d_mono_raw/1000006.txt");
  const v3 = parseJoints3d(j3, "j3");
  assert.equal(v3.length, 96);
  assert.equal(v3[2], 4709.494331);
  assert.equal(formatJoints3d(v3), j3);
});

Deno.test("toy camera parses and re-formats byte for byte", () => {
  const t = text("camera_all/100.txt");
  const cam = parseCamera(t, "cam");
  assert.deepEqual(cam.f, [1145.049405, 1143.781096]);
  assert.deepEqual(cam.c, [512.541505, 515.451487]);
  assert.equal(cam.R.length, 9);
  assert.equal(cam.R[5], -0.982246);
  assert.deepEqual(cam.p, [-0.001424, -0.000976]);
  assert.equal(formatCamera(cam), t);
});

Deno.test("toy info and image path parse; info re-formats byte for byte", () => {
  const t = text("info_all/1000019.txt");
  const info = parseInfo(t, "info");
  assert.equal(info.subject, "S7");
  assert.equal(info.actionId, 11);
  assert.equal(info.actionName, "Smoking");
  assert.equal(info.subactionId, 2);
  assert.equal(info.cameraId, 2);
  assert.equal(info.frameId, 2048);
  assert.equal(formatInfo(info), t);
  assert.equal(parseImagePath(text("image_path_file/20.txt"), "p"), "E:\\frame_images\\frame_images\\20.png");
});

Deno.test("formatFixed matches C %12.6f including half-even ties", () => {
  assert.equal(formatFixed(-0.915362, 12), "   -0.915362");
  assert.equal(formatFixed(-1016.002272, 12), "-1016.002272");
  assert.equal(formatFixed(1 / 128, 12), "    0.007812"); // 0.0078125 exactly: C rounds to even
  assert.equal(formatFixed(3 / 128, 12), "    0.023438"); // 0.0234375: even neighbour is above
  assert.equal(formatFixed(-1 / 128, 12), "   -0.007812");
});

function assertDataError(fn: () => unknown, pathPart: string, msgPart: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof DataError, `expected DataError, got ${e}`);
    assert.ok(e.path.includes(pathPart), `path ${e.path} should name ${pathPart}`);
    assert.match(e.message, msgPart);
    return true;
  });
}

Deno.test("malformed annotation files name file, line and expectation", () => {
  assertDataError(() => parseBbx("1 2 3\n", "b.txt"), "b.txt", /expected 4 numbers.*got 3 values/);
  assertDataError(
    () => parseJoints2d("1 2\n".repeat(33), "j.txt"),
    "j.txt",
    /j\.txt:33: expected 64 numbers/,
  );
  const bad = "1 2\n".repeat(4) + "1 x2\n" + "1 2\n".repeat(27);
  assertDataError(() => parseJoints2d(bad, "j.txt"), "j.txt", /j\.txt:5: expected a number, got "x2"/);
  assertDataError(() => parseScalarFile("nan\n", "s.txt"), "s.txt", /expected a number/);
  const cam = text("camera_all/100.txt").replace("f:", "g:");
  assertDataError(() => parseCamera(cam, "c.txt"), "c.txt", /c\.txt:7: expected the label "f:"/);
  const cam2 = text("camera_all/100.txt").replace(" 1145.049405", "");
  assertDataError(() => parseCamera(cam2, "c.txt"), "c.txt", /expected 2 numbers after "f:"/);
  assertDataError(() => parseInfo("a b\n", "i.txt"), "i.txt", /expected 7 lines/);
  assertDataError(() => parseImagePath("a b\n", "p.txt"), "p.txt", /one whitespace-free/);
});

function toyRecord(id: number): SampleRecord {
  return {
    id,
    bbx: parseBbx(text("bbx_all_new/9.txt"), ""),
    centerX: 112,
    centerY: 112,
    scale: 224,
    joints2d: parseJoints2d(text("gt_joint_2d_raw_new/1000.txt"), ""),
    joints3d: parseJoints3d(text("gt_joint_3d_mono_raw/1000006.txt"), ""),
    camera: parseCamera(text("camera_all/100.txt"), ""),
    imagePath: `E:\\frame_images\\frame_images\\${id}.png`,
    info: parseInfo(text("info_all/1000019.txt"), ""),
  };
}

Deno.test("writeSample -> readSample round trip, image path fallback, missing file", async () => {
  const root = await Deno.makeTempDir();
  try {
    const rec = toyRecord(7);
    const png = Deno.readFileSync(toy("images/1000.png"));
    await writeSample(root, rec, { png });
    const back = await readSample(root, 7);
    assert.deepEqual(back, rec);
    assert.equal(Deno.readTextFileSync(join(root, "camera_all/7.txt")), text("camera_all/100.txt"));
    assert.equal(resolveImagePath(root, back), join(root, "images", "7.png"));
    // A subject the video path cannot tell survives the round trip.
    const rec2 = { ...toyRecord(8), info: { ...rec.info, subject: "S11" } };
    await writeSample(root, rec2);
    assert.equal((await readSample(root, 8)).info.subject, "S11");
    assert.throws(() => resolveImagePath(root, rec2), DataError);
    await Deno.remove(join(root, "scale/7.txt"));
    await assert.rejects(readSample(root, 7), (e: unknown) => {
      assert.ok(e instanceof DataError);
      assert.match(e.message, /scale\/7\.txt: expected a file with 1 number, got no file/);
      return true;
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("numbers written %12.6f without a separator split at the sign, as scanf does", async () => {
  const { parseNumbers } = await import("../io/sample_files.ts");
  const v = parseNumbers(" 1761.278534-5078.006595 1.5e-3\n-2.0+3.0\n", "x.txt", { count: 5 });
  if ([...v].join(",") !== "1761.278534,-5078.006595,0.0015,-2,3") throw new Error(`got ${[...v]}`);
});
