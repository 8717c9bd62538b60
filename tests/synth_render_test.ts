import assert from "node:assert/strict";
import { join } from "node:path";
import { Rng } from "../io/prng.ts";
import { COMPLETE_MARKER, ensureDefaultDataset } from "../io/dataset_cache.ts";
import { readManifest } from "../io/manifest.ts";
import {
  cropIntrinsics,
  loadCameraRig,
  projectPinhole,
  rawToCrop,
  squareBox,
  subjectCamera,
  worldToCamera,
} from "../io/synth_cameras.ts";
import { applyBody, libraryPose, loadPoseLibrary, placeOnFloor, SUBJECT_BODIES } from "../io/synth_poses.ts";
import { renderSample, type RenderScene } from "../io/synth_render.ts";

const lib = loadPoseLibrary();
const cam = subjectCamera(loadCameraRig(), "S5", 2);

/** A scene of one library frame standing 4.5 m in front of camera 2, at a given yaw. */
function scene(
  yaw: number,
  body = SUBJECT_BODIES.S5,
): { scene: RenderScene; crop: Float64Array; J: Float64Array } {
  const pose = applyBody(libraryPose(lib, 3100), body);
  // The point 4.5 m along the camera's horizontal viewing direction.
  const fwd = [cam.R[6], cam.R[7]], n = Math.hypot(fwd[0], fwd[1]);
  const at = { yaw, x: cam.T[0] + 4500 * fwd[0] / n, y: cam.T[1] + 4500 * fwd[1] / n };
  const J = worldToCamera(cam, placeOnFloor(pose, at));
  const uv = projectPinhole(cam, J);
  const bbx = squareBox(uv, new Rng(1));
  return {
    scene: { joints: J, intrinsics: cropIntrinsics(cam, bbx), camera: cam, floorPoint: [at.x, at.y], body },
    crop: rawToCrop(uv, bbx),
    J,
  };
}

function pixel(rgb: Uint8Array, u: number, v: number): number[] {
  const o = 3 * (Math.round(v) * 224 + Math.round(u));
  return [rgb[o], rgb[o + 1], rgb[o + 2]];
}

Deno.test("the figure is drawn where the labels are, over an unchanged background", () => {
  const { scene: s, crop } = scene(0.5);
  const withFigure = renderSample(s, new Rng(9));
  // Same random stream, figure moved far outside the crop: only the background is left.
  const away = { ...s, joints: Float64Array.from(s.joints, (v, i) => (i % 3 === 0 ? v + 1e5 : v)) };
  const empty = renderSample(away, new Rng(9));
  assert.equal(empty.coverage, 0);
  assert.ok(withFigure.coverage > 0.04 && withFigure.coverage < 0.5, `coverage ${withFigure.coverage}`);
  assert.equal(withFigure.rgb.length, 224 * 224 * 3);
  for (const j of [0, 2, 12, 13, 17, 26]) {
    const a = pixel(withFigure.rgb, crop[2 * j], crop[2 * j + 1]);
    const b = pixel(empty.rgb, crop[2 * j], crop[2 * j + 1]);
    assert.notDeepEqual(a, b, `joint ${j} shows the figure`);
  }
  assert.deepEqual(pixel(withFigure.rgb, 2, 2), pixel(empty.rgb, 2, 2), "corner is background");
});

Deno.test("self-occlusion by depth: the face shows from the front, the hair from behind", () => {
  const body = {
    ...SUBJECT_BODIES.S5,
    colors: {
      ...SUBJECT_BODIES.S5.colors,
      skin: [230, 40, 40],
      hair: [40, 230, 40],
    } as typeof SUBJECT_BODIES.S5.colors,
  };
  let fronts = 0;
  for (const yaw of [0, Math.PI]) {
    const { scene: s, crop, J } = scene(yaw, body);
    const p = (k: number) => [J[3 * k], J[3 * k + 1], J[3 * k + 2]];
    // left x up points where the body faces; facing the camera means negative camera z.
    const left = [0, 1, 2].map((k) => p(17)[k] - p(25)[k]), up = [0, 1, 2].map((k) => p(13)[k] - p(0)[k]);
    const frontZ = left[0] * up[1] - left[1] * up[0];
    const facing = frontZ < 0;
    fronts += facing ? 1 : 0;
    const u = crop[28] + 0.35 * (crop[30] - crop[28]), v = crop[29] + 0.35 * (crop[31] - crop[29]);
    const [r, g] = pixel(renderSample(s, new Rng(3)).rgb, u, v);
    assert.equal(r > g, facing, `yaw ${yaw}: head pixel r=${r} g=${g}, facing camera: ${facing}`);
  }
  assert.equal(fronts, 1, "one of the two yaws faces the camera");
});

Deno.test("default dataset: generated once into VOLPOSE_CACHE, reused, redone without its marker", async () => {
  const cache = await Deno.makeTempDir({ prefix: "volpose_cache_" });
  const before = Deno.env.get("VOLPOSE_CACHE");
  Deno.env.set("VOLPOSE_CACHE", cache);
  try {
    const logs: string[] = [];
    const opts = {
      train: 10,
      test: 5,
      seed: 2,
      workers: 0,
      progress: false,
      log: (m: string) => logs.push(m),
    };
    const dir = await ensureDefaultDataset(opts);
    assert.ok(dir.startsWith(cache));
    assert.match(logs.join("\n"), /generating the default synthetic dataset/);
    assert.equal((await readManifest(dir))?.numSamples, 15);
    logs.length = 0;
    assert.equal(await ensureDefaultDataset(opts), dir);
    assert.equal(logs.length, 0, "a complete dataset is reused silently");
    await Deno.remove(join(dir, COMPLETE_MARKER));
    await Deno.remove(join(dir, "images", "3.png"));
    assert.equal(await ensureDefaultDataset(opts), dir);
    assert.ok(logs.length > 0, "an incomplete dataset is generated again");
    await Deno.stat(join(dir, "images", "3.png"));
    const leftovers = [...Deno.readDirSync(cache)].map((e) => e.name);
    assert.deepEqual(leftovers, [dir.split("/").pop()]);
  } finally {
    if (before === undefined) Deno.env.delete("VOLPOSE_CACHE");
    else Deno.env.set("VOLPOSE_CACHE", before);
    await Deno.remove(cache, { recursive: true });
  }
});

Deno.test("colour-blocked outfits: the left sleeve and trouser leg wear the accent, the right ones do not", () => {
  const body = {
    ...SUBJECT_BODIES.S5,
    shortSleeves: false,
    shorts: false,
    colors: {
      ...SUBJECT_BODIES.S5.colors,
      shirt: [230, 30, 30],
      trousers: [30, 30, 230],
      accent: [30, 230, 30],
    } as typeof SUBJECT_BODIES.S5.colors,
  };
  for (const yaw of [0, Math.PI]) {
    const { scene: s, crop } = scene(yaw, body);
    const rgb = renderSample(s, new Rng(3)).rgb;
    const at = (a: number, b: number) =>
      pixel(
        rgb,
        crop[2 * a] + 0.6 * (crop[2 * b] - crop[2 * a]),
        crop[2 * a + 1] + 0.6 * (crop[2 * b + 1] - crop[2 * a + 1]),
      );
    // [from, to, expected dominant channel]: left upper arm 17->18 and thigh 6->7, right 25->26 and 1->2.
    for (const [a, b, ch] of [[17, 18, 1], [6, 7, 1], [25, 26, 0], [1, 2, 2]]) {
      const px = at(a, b);
      const top = px.indexOf(Math.max(...px));
      assert.equal(top, ch, `yaw ${yaw}, bone ${a}->${b}: pixel ${px}`);
    }
  }
});
