/**
 * Rebuilds the synthetic generator's assets from the raw inputs (the CMU pose array, its index
 * and the Human3.6M calibration JSON). Only needed when the assets change; the generated files are
 * committed, so nothing reads the raw inputs at run time.
 *
 *   deno run -R -W assets/build_synth_assets.ts /path/to/data
 *
 * Poses are stored as H36M joints (the 25 distinct positions of the 32-joint layout) in a
 * floor-anchored local frame: x, y relative to the pelvis, z above the local floor, z up, mm.
 * @module
 */

import { join } from "node:path";

const OUT_DIR = new URL(".", import.meta.url).pathname;

/** H36M ids stored in the asset; the others are duplicates or derived when a pose is expanded. */
const STORED_IDS = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 17, 18, 19, 21, 22, 25, 26, 27, 29, 30];

/** Index of the CMU joints by their role (see the pose index's joint_names_38). */
const CMU = {
  lhip: 2,
  lknee: 3,
  lankle: 4,
  ltoe: 5,
  ltoetip: 6,
  rhip: 8,
  rknee: 9,
  rankle: 10,
  rtoe: 11,
  rtoetip: 12,
  lowerback: 13,
  upperback: 14,
  lowerneck: 16,
  upperneck: 17,
  head: 18,
  headsite: 19,
  lshoulder: 21,
  lelbow: 22,
  lwrist: 23,
  lfingers: 26,
  lthumbtip: 28,
  rshoulder: 30,
  relbow: 31,
  rwrist: 32,
  rfingers: 35,
  rthumbtip: 37,
} as const; // deno-fmt-ignore

/** Half-width (frames) of the window over which the lowest foot point defines the local floor. */
const FLOOR_WINDOW = 20;
/** The foot joints sit inside the foot: the sole is this far below the lowest of them (mm). */
const SOLE_BELOW_JOINT = 45;

type Vec = [number, number, number];

function readNpyInt16(path: string): { shape: number[]; data: Int16Array } {
  const bytes = Deno.readFileSync(path);
  const magic = String.fromCharCode(...bytes.subarray(1, 6));
  if (bytes[0] !== 0x93 || magic !== "NUMPY") throw new Error(`${path}: not an .npy file`);
  const headerLen = bytes[8] | (bytes[9] << 8);
  const header = new TextDecoder().decode(bytes.subarray(10, 10 + headerLen));
  if (!header.includes("'<i2'") || header.includes("'fortran_order': True")) {
    throw new Error(`${path}: expected little-endian int16 C-order data, header ${header}`);
  }
  const shape = /'shape': \(([^)]*)\)/.exec(header)![1].split(",").filter((s) => s.trim()).map(Number);
  const start = 10 + headerLen;
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Int16Array(bytes.buffer.slice(bytes.byteOffset + start, bytes.byteOffset + start + 2 * n));
  return { shape, data };
}

function lerp(a: Vec, b: Vec, t: number): Vec {
  return [a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t, a[2] + (b[2] - a[2]) * t];
}

/** The 32-joint H36M positions (duplicates left undefined) of one CMU frame, in CMU world mm. */
function toH36m(j: (k: number) => Vec): Map<number, Vec> {
  const m = new Map<number, Vec>();
  // The CMU root sits ~100 mm above the hip joints; the hip midpoint is the H36M-like pelvis.
  m.set(0, lerp(j(CMU.lhip), j(CMU.rhip), 0.5));
  m.set(1, j(CMU.rhip));
  m.set(2, j(CMU.rknee));
  m.set(3, j(CMU.rankle));
  m.set(4, j(CMU.rtoe));
  m.set(5, j(CMU.rtoetip));
  m.set(6, j(CMU.lhip));
  m.set(7, j(CMU.lknee));
  m.set(8, j(CMU.lankle));
  m.set(9, j(CMU.ltoe));
  m.set(10, j(CMU.ltoetip));
  // H36M's Spine1 lies about halfway up the back; the CMU back joints bracket that height.
  m.set(12, lerp(j(CMU.lowerback), j(CMU.upperback), 0.6));
  m.set(13, j(CMU.lowerneck));
  // H36M's "Head" is near the nose, between the CMU upper neck and head joints; its site is the crown.
  m.set(14, lerp(j(CMU.upperneck), j(CMU.head), 0.5));
  m.set(15, j(CMU.headsite));
  m.set(17, j(CMU.lshoulder));
  m.set(18, j(CMU.lelbow));
  m.set(19, j(CMU.lwrist));
  m.set(21, j(CMU.lthumbtip));
  m.set(22, j(CMU.lfingers));
  m.set(25, j(CMU.rshoulder));
  m.set(26, j(CMU.relbow));
  m.set(27, j(CMU.rwrist));
  m.set(29, j(CMU.rthumbtip));
  m.set(30, j(CMU.rfingers));
  return m;
}

function main(dataDir: string): void {
  const { shape, data } = readNpyInt16(join(dataDir, "cmu_mocap_38j_int16mm.npy"));
  const [numFrames, numJoints] = shape;
  const index = JSON.parse(Deno.readTextFileSync(join(dataDir, "cmu_mocap_38j_index.json")));
  const sequences: { split: string; action: string; take: number; start: number; count: number }[] =
    index.sequences;
  const S = STORED_IDS.length;
  const out = new Int16Array(numFrames * S * 3);
  const takes = [];
  for (const seq of sequences) {
    const frames: Map<number, Vec>[] = [];
    const lowestFoot: number[] = [];
    for (let f = seq.start; f < seq.start + seq.count; f++) {
      const j = (k: number): Vec => {
        const o = (f * numJoints + k) * 3;
        return [data[o], data[o + 1], data[o + 2]];
      };
      const h = toH36m(j);
      frames.push(h);
      lowestFoot.push(Math.min(...[3, 4, 5, 8, 9, 10].map((k) => h.get(k)![2])));
    }
    for (let i = 0; i < frames.length; i++) {
      // Takes drift in height and include jumps: the floor under a frame is the lowest foot
      // point over a window around it (a jump is shorter than the window), not one take-wide value.
      let floor = Infinity;
      for (let k = Math.max(0, i - FLOOR_WINDOW); k <= Math.min(frames.length - 1, i + FLOOR_WINDOW); k++) {
        floor = Math.min(floor, lowestFoot[k]);
      }
      floor -= SOLE_BELOW_JOINT;
      const pelvis = frames[i].get(0)!;
      const o = (seq.start + i) * S * 3;
      for (let s = 0; s < S; s++) {
        const p = frames[i].get(STORED_IDS[s])!;
        out[o + 3 * s] = Math.round(p[0] - pelvis[0]);
        out[o + 3 * s + 1] = Math.round(p[1] - pelvis[1]);
        out[o + 3 * s + 2] = Math.round(p[2] - floor);
      }
    }
    takes.push({
      name: `${seq.split}/${seq.action}_${seq.take}`,
      category: seq.action,
      cmuSplit: seq.split,
      start: seq.start,
      count: seq.count,
    });
  }
  Deno.writeFileSync(join(OUT_DIR, "synth_poses.bin"), new Uint8Array(out.buffer));
  const meta = {
    format: "volpose-synth-poses/1",
    source: "CMU Graphics Lab Motion Capture Database (mocap.cs.cmu.edu), see assets/README.md",
    file: "synth_poses.bin",
    dtype: "int16 little-endian",
    numFrames,
    joints: STORED_IDS,
    frame: "x, y relative to the pelvis, z above the local floor, z up, mm; every 4th frame of 120 Hz",
    takes,
  };
  Deno.writeTextFileSync(join(OUT_DIR, "synth_poses.json"), JSON.stringify(meta, null, 2) + "\n");

  const cams = JSON.parse(Deno.readTextFileSync(join(dataDir, "h36m_camera_parameters.json")));
  const names = Object.keys(cams.intrinsics).sort();
  // Frame sizes of the four H36M cameras (two record 1000x1002).
  const heights: Record<string, number> = {
    "54138969": 1002,
    "55011271": 1000,
    "58860488": 1000,
    "60457274": 1002,
  };
  const cameras = names.map((name, i) => {
    const K = cams.intrinsics[name].calibration_matrix;
    const d = cams.intrinsics[name].distortion; // k1 k2 p1 p2 k3
    return {
      id: i + 1,
      name,
      width: 1000,
      height: heights[name],
      f: [K[0][0], K[1][1]],
      c: [K[0][2], K[1][2]],
      k: [d[0], d[1], d[4]],
      p: [d[2], d[3]],
    };
  });
  const subjects: Record<string, { R: number[]; T: number[] }[]> = {};
  for (const s of ["S1", "S5", "S6", "S7", "S8", "S9", "S11"]) {
    subjects[s] = names.map((name) => {
      const e = cams.extrinsics[s][name];
      const R: number[] = e.R.flat();
      const t: number[] = e.t.flat();
      // The seed stores the camera centre C = -R^T t rather than the translation t.
      const T = [0, 1, 2].map((c) => -(R[c] * t[0] + R[3 + c] * t[1] + R[6 + c] * t[2]));
      return { R, T };
    });
  }
  const camMeta = {
    format: "volpose-h36m-cameras/1",
    source: "Human3.6M calibration (published metadata), see assets/README.md",
    note: "R maps world to camera (row-major); T is the camera centre in world mm; world z is up",
    cameras,
    subjects,
  };
  Deno.writeTextFileSync(join(OUT_DIR, "h36m_cameras.json"), JSON.stringify(camMeta, null, 2) + "\n");
  console.log(`wrote ${numFrames} frames x ${S} joints, ${takes.length} takes, ${cameras.length} cameras`);
}

if (import.meta.main) {
  if (Deno.args.length !== 1) {
    console.error("usage: deno run -R -W assets/build_synth_assets.ts <data dir>");
    Deno.exit(2);
  }
  main(Deno.args[0]);
}
