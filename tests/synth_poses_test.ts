import assert from "node:assert/strict";
import { join } from "node:path";
import { Rng } from "../io/prng.ts";
import { ACTIONS, SUBJECTS, TEST_SUBJECTS, TRAIN_SUBJECTS } from "../io/joints.ts";
import { formatCamera, parseCamera } from "../io/sample_files.ts";
import {
  loadCameraRig,
  placeSubject,
  projectPinhole,
  rawToCrop,
  squareBox,
  subjectCamera,
  worldToCamera,
} from "../io/synth_cameras.ts";
import { planDataset } from "../io/synth_dataset.ts";
import {
  applyBody,
  boneLengths,
  libraryPose,
  loadPoseLibrary,
  placeOnFloor,
  SUBJECT_BODIES,
  takesForSubject,
} from "../io/synth_poses.ts";

const lib = loadPoseLibrary();
const rig = loadCameraRig();

function joint(p: Float64Array, j: number): number[] {
  return [p[3 * j], p[3 * j + 1], p[3 * j + 2]];
}

function dist(a: number[], b: number[]): number {
  return Math.hypot(a[0] - b[0], a[1] - b[1], a[2] - b[2]);
}

Deno.test("pose library: all CMU frames, takes cover it, and train/test subjects share no take", () => {
  assert.equal(lib.numFrames, 10097);
  assert.equal(lib.takes.reduce((n, t) => n + t.count, 0), lib.numFrames);
  const train = new Set(TRAIN_SUBJECTS.flatMap((s) => takesForSubject(lib, s).map((t) => t.name)));
  const test = new Set(TEST_SUBJECTS.flatMap((s) => takesForSubject(lib, s).map((t) => t.name)));
  assert.ok(train.size > 20 && test.size >= 6, `${train.size} train takes, ${test.size} test takes`);
  for (const name of test) assert.ok(!train.has(name), `take ${name} is used by both sides`);
  // The plan only ever picks takes from the subject's own side.
  const plan = planDataset(lib, { train: 750, test: 300, seed: 3 });
  for (const c of plan.cells) {
    for (const t of c.takes) assert.equal(test.has(t.name), TEST_SUBJECTS.includes(c.subject), c.subject);
  }
  assert.equal(plan.cells.length, SUBJECTS.length * ACTIONS.length);
});

Deno.test("expanded poses keep the H36M coincident joints and a hip-midpoint pelvis", () => {
  for (const f of [0, 1234, 5000, 10096]) {
    const p = libraryPose(lib, f);
    for (const [a, b] of [[13, 16], [13, 24], [19, 20], [22, 23], [27, 28], [30, 31]]) {
      assert.equal(dist(joint(p, a), joint(p, b)), 0, `joints ${a} and ${b} of frame ${f}`);
    }
    assert.ok(dist(joint(p, 0), joint(p, 11)) < 1, "Spine sits on the pelvis");
    const mid = [0, 1, 2].map((k) => (p[3 + k] + p[18 + k]) / 2);
    assert.ok(dist(joint(p, 0), mid) < 1.5, "pelvis is the midpoint of the hips");
    // The head top is above the pelvis, which is above the ankles (z up).
    assert.ok(p[3 * 15 + 2] > p[2] && p[2] > p[3 * 3 + 2]);
  }
});

Deno.test("subject bodies: rigid per subject, and test subjects' bones differ from every training subject's", () => {
  const lengths = (s: string, f: number) => boneLengths(applyBody(libraryPose(lib, f), SUBJECT_BODIES[s]));
  const a = lengths("S9", 300), b = lengths("S9", 7000);
  for (const j of [2, 3, 7, 8, 18, 19, 26, 27]) assert.ok(Math.abs(a[j] - b[j]) < 3, `bone ${j} is rigid`);
  for (const t of TEST_SUBJECTS) {
    for (const s of TRAIN_SUBJECTS) {
      const lt = lengths(t, 300), ls = lengths(s, 300);
      let maxRel = 0;
      for (let j = 1; j < 32; j++) if (ls[j] > 20) maxRel = Math.max(maxRel, Math.abs(lt[j] / ls[j] - 1));
      assert.ok(maxRel > 0.03, `${t} vs ${s}: bones differ by at most ${(100 * maxRel).toFixed(1)}%`);
    }
  }
  // Thigh + shin lengths are in a human range (mm).
  for (const s of SUBJECTS) {
    const l = lengths(s, 300);
    assert.ok(l[2] + l[3] > 750 && l[2] + l[3] < 1050, `${s} leg ${l[2] + l[3]}`);
  }
});

Deno.test("re-proportioned bodies keep their feet on the floor", () => {
  const frame = lib.takes.find((t) => t.name === "train/basketball_signal_1")!.start + 10;
  for (const s of SUBJECTS) {
    const p = placeOnFloor(applyBody(libraryPose(lib, frame), SUBJECT_BODIES[s]), {
      yaw: 1,
      x: 300,
      y: -200,
    });
    const lowest = Math.min(...[3, 4, 5, 8, 9, 10].map((j) => p[3 * j + 2]));
    assert.ok(lowest > 30 && lowest < 70, `${s}: lowest foot joint ${lowest} mm above the floor`);
    assert.ok(Math.abs((p[0] - 300) ** 2 + (p[1] + 200) ** 2) < 1, "pelvis above the placement point");
  }
});

Deno.test("cameras: the seed's T is the camera centre, matching the real camera_all file", () => {
  const toy = parseCamera(
    Deno.readTextFileSync(join(new URL("./fixtures/toy/camera_all/", import.meta.url).pathname, "100.txt")),
    "toy camera",
  );
  const cam = subjectCamera(rig, "S1", 1);
  for (let k = 0; k < 9; k++) assert.ok(Math.abs(cam.R[k] - toy.R[k]) < 1e-6);
  for (let k = 0; k < 3; k++) assert.ok(Math.abs(cam.T[k] - toy.T[k]) < 1e-5, `T[${k}]`);
  for (let k = 0; k < 2; k++) {
    assert.ok(Math.abs(cam.f[k] - toy.f[k]) < 1e-5 && Math.abs(cam.c[k] - toy.c[k]) < 1e-5);
    assert.ok(Math.abs(cam.p[k] - toy.p[k]) < 1e-5);
  }
  for (let k = 0; k < 3; k++) assert.ok(Math.abs(cam.k[k] - toy.k[k]) < 1e-5);
  // The camera centre maps to the camera origin.
  const o = worldToCamera(cam, cam.T);
  assert.ok(Math.hypot(o[0], o[1], o[2]) < 1e-9);
});

Deno.test("placement: 3.5-6.5 m from the camera, in the frame, box fills ~80-90% of the crop", () => {
  const rng = new Rng(5);
  const pose = applyBody(libraryPose(lib, 4000), SUBJECT_BODIES.S11);
  for (let c = 1; c <= 4; c++) {
    const cam = subjectCamera(rig, "S11", c);
    for (let k = 0; k < 20; k++) {
      const place = placeSubject(cam, pose[2], rng);
      const X = worldToCamera(cam, placeOnFloor(pose, place));
      const d = Math.hypot(X[0], X[1], X[2]);
      assert.ok(d > 3400 && d < 6600, `pelvis ${d} mm from camera ${c}`);
      const uv = projectPinhole(cam, X);
      const bbx = squareBox(uv, rng);
      assert.equal(bbx[2] - bbx[0], bbx[3] - bbx[1], "square box");
      const crop = rawToCrop(uv, bbx);
      const vs = Array.from({ length: 32 }, (_, j) => crop[2 * j + 1]);
      const extent = Math.max(...vs) - Math.min(...vs);
      assert.ok(extent > 100 && extent < 224, `person spans ${extent} px of the crop`);
    }
  }
});

Deno.test("camera_all files of every subject and camera read back as written", () => {
  for (const s of SUBJECTS) {
    for (let c = 1; c <= 4; c++) {
      const cam = subjectCamera(rig, s, c);
      const back = parseCamera(formatCamera(cam), `${s} camera ${c}`);
      for (const key of ["R", "T", "f", "c", "k", "p"] as const) {
        const a = cam[key] as number[], b = back[key] as number[];
        for (let i = 0; i < a.length; i++) {
          assert.ok(Math.abs(a[i] - b[i]) < 1e-6, `${s} camera ${c} ${key}[${i}]`);
        }
      }
    }
  }
});
