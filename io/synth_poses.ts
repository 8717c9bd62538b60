/**
 * Poses of the synthetic dataset: real CMU motion-capture frames converted to the 32-joint
 * Human3.6M layout (assets/synth_poses.bin), re-proportioned per subject so that every subject has
 * its own fixed body, and placed in an H36M-style world (mm, z up, floor at z = 0).
 *
 * The asset stores, per frame, the 25 distinct positions of the H36M layout in a floor-anchored
 * local frame: x, y relative to the pelvis and z above the floor under the person.
 * @module
 */

import { NUM_ALL_JOINTS, SUBJECTS, TEST_SUBJECTS } from "./joints.ts";

/** H36M ids stored in the pose asset, in storage order (must match assets/build_synth_assets.ts). */
export const STORED_JOINTS: readonly number[] = [
  0,
  1,
  2,
  3,
  4,
  5,
  6,
  7,
  8,
  9,
  10,
  12,
  13,
  14,
  15,
  17,
  18,
  19,
  21,
  22,
  25,
  26,
  27,
  29,
  30,
];

/**
 * Parent of each of the 32 joints in the tree used to re-proportion bodies. The coincident
 * joints (16 = 24 = 13, 20 = 19, 23 = 22, 28 = 27, 31 = 30) hang off their twin with a
 * zero-length bone, so scaling keeps them coincident as in the real data.
 */
export const SYNTH_PARENTS: readonly number[] = [
  -1,
  0,
  1,
  2,
  3,
  4,
  0,
  6,
  7,
  8,
  9,
  0,
  11,
  12,
  13,
  14,
  13,
  16,
  17,
  18,
  19,
  19,
  19,
  22,
  13,
  24,
  25,
  26,
  27,
  27,
  27,
  30,
]; // deno-fmt-ignore

/** Bone groups whose lengths a body scales together. */
export type BoneGroup =
  | "hip"
  | "thigh"
  | "shin"
  | "foot"
  | "spine"
  | "neck"
  | "head"
  | "clavicle"
  | "upperArm"
  | "forearm"
  | "hand";

/** The group of the bone ending at each joint (the root has none). */
export const BONE_GROUP_OF: readonly (BoneGroup | null)[] = [
  null,
  "hip",
  "thigh",
  "shin",
  "foot",
  "foot",
  "hip",
  "thigh",
  "shin",
  "foot",
  "foot",
  "spine",
  "spine",
  "spine",
  "neck",
  "head",
  "clavicle",
  "clavicle",
  "upperArm",
  "forearm",
  "hand",
  "hand",
  "hand",
  "hand",
  "clavicle",
  "clavicle",
  "upperArm",
  "forearm",
  "hand",
  "hand",
  "hand",
  "hand",
]; // deno-fmt-ignore

/**
 * The CMU skeleton is one ~1.55 m body with a short torso, wide clavicles and short forearms;
 * these factors bring it to Human3.6M-like proportions before a subject's own variation.
 */
const BASE_PROPORTIONS: Readonly<Record<BoneGroup, number>> = {
  hip: 1.45,
  thigh: 1.04,
  shin: 1.06,
  foot: 1.0,
  spine: 1.4,
  neck: 0.85,
  head: 0.9,
  clavicle: 0.7,
  upperArm: 1.0,
  forearm: 1.28,
  hand: 1.3,
};

/** A subject's body: overall size, per-group length factors, girth and clothing. */
export interface SubjectBody {
  /** Subject name, e.g. "S9". */
  subject: string;
  /** Multiplies every bone. */
  stature: number;
  /** Per-group length factors on top of stature. */
  bones: Readonly<Record<BoneGroup, number>>;
  /** Multiplies limb and torso radii when rendering. */
  girth: number;
  /** Clothing and skin colours, RGB 0-255. */
  colors: Readonly<BodyColors>;
  /** Whether the forearms are bare. */
  shortSleeves: boolean;
  /** Whether the shins are bare. */
  shorts: boolean;
}

/** Colours of one outfit. */
export interface BodyColors {
  /** Face, neck and bare limbs. */
  skin: [number, number, number];
  /** Back and top of the head. */
  hair: [number, number, number];
  /** Torso and sleeves. */
  shirt: [number, number, number];
  /** Hips and legs. */
  trousers: [number, number, number];
  /** Feet. */
  shoes: [number, number, number];
  /**
   * The left sleeve and left trouser leg: every outfit is colour-blocked, so the figure's two
   * sides differ and a mirrored image is not a plausible unmirrored one.
   */
  accent: [number, number, number];
}

function body(
  subject: string,
  stature: number,
  f: { leg: number; spine: number; arm: number; clavicle: number; hip: number; head: number },
  girth: number,
  look: { colors: BodyColors; shortSleeves: boolean; shorts: boolean },
): SubjectBody {
  const bones = {} as Record<BoneGroup, number>;
  const groupFactor: Record<BoneGroup, number> = {
    hip: f.hip,
    thigh: f.leg,
    shin: f.leg * 1.01,
    foot: Math.sqrt(f.leg),
    spine: f.spine,
    neck: f.head,
    head: f.head,
    clavicle: f.clavicle,
    upperArm: f.arm,
    forearm: f.arm * 0.99,
    hand: f.arm,
  };
  for (const g of Object.keys(BASE_PROPORTIONS) as BoneGroup[]) {
    bones[g] = BASE_PROPORTIONS[g] * groupFactor[g];
  }
  return { subject, stature, bones, girth, ...look };
}

/**
 * The seven subjects' bodies, fixed (independent of the dataset seed) like the real actors:
 * statures and proportions differ per subject, so the test subjects S9 and S11 have bone lengths
 * that no training subject has.
 */
export const SUBJECT_BODIES: Readonly<Record<string, SubjectBody>> = {
  S1: body("S1", 0.98, { leg: 1.03, spine: 0.96, arm: 0.98, clavicle: 0.94, hip: 1.06, head: 0.97 }, 0.9, {
    colors: {
      skin: [224, 178, 150],
      hair: [70, 45, 30],
      shirt: [40, 40, 46],
      trousers: [70, 90, 140],
      shoes: [200, 200, 205],
      accent: [200, 170, 40],
    },
    shortSleeves: true,
    shorts: true,
  }),
  S5: body("S5", 1.0, { leg: 0.98, spine: 1.02, arm: 1.0, clavicle: 0.97, hip: 1.07, head: 0.98 }, 0.94, {
    colors: {
      skin: [230, 190, 165],
      hair: [150, 110, 60],
      shirt: [170, 40, 50],
      trousers: [35, 35, 40],
      shoes: [60, 50, 45],
      accent: [230, 230, 225],
    },
    shortSleeves: false,
    shorts: false,
  }),
  S6: body("S6", 1.07, { leg: 1.0, spine: 1.04, arm: 1.02, clavicle: 1.08, hip: 1.02, head: 1.03 }, 1.22, {
    colors: {
      skin: [205, 160, 130],
      hair: [30, 25, 22],
      shirt: [215, 215, 210],
      trousers: [110, 100, 80],
      shoes: [35, 30, 30],
      accent: [60, 90, 170],
    },
    shortSleeves: true,
    shorts: false,
  }),
  S7: body("S7", 0.96, { leg: 1.01, spine: 0.98, arm: 0.97, clavicle: 0.95, hip: 1.04, head: 0.96 }, 0.9, {
    colors: {
      skin: [236, 196, 170],
      hair: [110, 70, 40],
      shirt: [60, 120, 80],
      trousers: [45, 55, 85],
      shoes: [230, 230, 230],
      accent: [200, 90, 40],
    },
    shortSleeves: false,
    shorts: false,
  }),
  S8: body("S8", 1.05, { leg: 1.05, spine: 0.98, arm: 1.04, clavicle: 1.04, hip: 0.98, head: 1.0 }, 1.03, {
    colors: {
      skin: [190, 140, 110],
      hair: [25, 20, 18],
      shirt: [60, 100, 170],
      trousers: [150, 140, 120],
      shoes: [90, 60, 40],
      accent: [230, 200, 80],
    },
    shortSleeves: true,
    shorts: false,
  }),
  S9: body("S9", 1.04, { leg: 0.96, spine: 1.06, arm: 1.01, clavicle: 1.06, hip: 1.02, head: 1.04 }, 1.12, {
    colors: {
      skin: [215, 170, 140],
      hair: [45, 35, 30],
      shirt: [200, 150, 60],
      trousers: [40, 45, 60],
      shoes: [25, 25, 25],
      accent: [60, 150, 170],
    },
    shortSleeves: false,
    shorts: false,
  }),
  S11: body("S11", 1.08, { leg: 1.06, spine: 1.01, arm: 1.06, clavicle: 1.01, hip: 0.97, head: 1.01 }, 1.0, {
    colors: {
      skin: [200, 155, 125],
      hair: [60, 40, 25],
      shirt: [120, 60, 130],
      trousers: [90, 95, 100],
      shoes: [150, 40, 40],
      accent: [230, 230, 120],
    },
    shortSleeves: true,
    shorts: false,
  }),
};

/** One take of the pose library. */
export interface PoseTake {
  /** Name such as "train/walking_3" (the CMU split and take). */
  name: string;
  /** CMU activity, e.g. "walking". */
  category: string;
  /** "train" or "test" in the CMU release; test takes go to the test subjects. */
  cmuSplit: string;
  /** First frame in the library. */
  start: number;
  /** Number of frames. */
  count: number;
}

/** The pose asset in memory. */
export interface PoseLibrary {
  /** Frames x STORED_JOINTS x 3 values, mm. */
  data: Int16Array;
  /** Number of frames. */
  numFrames: number;
  /** Takes in library order. */
  takes: PoseTake[];
}

const ASSET_DIR = new URL("../assets/", import.meta.url);

/** Loads the pose library from assets/ (synchronous: it is small and loaded once per worker). */
export function loadPoseLibrary(): PoseLibrary {
  const meta = JSON.parse(Deno.readTextFileSync(new URL("synth_poses.json", ASSET_DIR)));
  const bytes = Deno.readFileSync(new URL(meta.file, ASSET_DIR));
  const data = new Int16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
  const expected = meta.numFrames * STORED_JOINTS.length * 3;
  if (data.length !== expected || meta.joints.join() !== STORED_JOINTS.join()) {
    throw new Error(
      `pose asset mismatch: ${data.length} values for ${meta.numFrames} frames, joints ${meta.joints}`,
    );
  }
  return { data, numFrames: meta.numFrames, takes: meta.takes };
}

/**
 * Which takes a subject may use: test subjects get the CMU test takes plus one held-out gesture
 * take, training subjects all other takes, so no motion is shared between the two sides.
 */
export function isTestTake(take: PoseTake): boolean {
  return take.cmuSplit === "test" || take.name === "train/basketball_signal_5";
}

/** The takes available to a subject (see isTestTake). */
export function takesForSubject(lib: PoseLibrary, subject: string): PoseTake[] {
  const test = TEST_SUBJECTS.includes(subject);
  if (!SUBJECTS.includes(subject)) throw new RangeError(`unknown subject ${subject}`);
  return lib.takes.filter((t) => isTestTake(t) === test);
}

/** Expands one library frame to the 32-joint layout (96 values, local frame, mm). */
export function libraryPose(lib: PoseLibrary, frame: number): Float64Array {
  if (!(frame >= 0 && frame < lib.numFrames)) throw new RangeError(`pose frame ${frame} out of range`);
  const out = new Float64Array(NUM_ALL_JOINTS * 3);
  const S = STORED_JOINTS.length;
  for (let s = 0; s < S; s++) {
    const o = (frame * S + s) * 3;
    const j = STORED_JOINTS[s];
    out[3 * j] = lib.data[o];
    out[3 * j + 1] = lib.data[o + 1];
    out[3 * j + 2] = lib.data[o + 2];
  }
  for (const [dup, src] of [[16, 13], [24, 13], [20, 19], [23, 22], [28, 27], [31, 30]]) {
    for (let k = 0; k < 3; k++) out[3 * dup + k] = out[3 * src + k];
  }
  // H36M's Spine sits a fraction of a millimetre from the pelvis (0 ~ 11 in the real files).
  for (let k = 0; k < 3; k++) out[33 + k] = out[k] + 0.001 * (out[36 + k] - out[k]);
  return out;
}

/** Indices of the foot joints (ankles, toe bases, toe tips) whose lowest point meets the floor. */
const FOOT_JOINTS = [3, 4, 5, 8, 9, 10];

function lowestFoot(p: Float64Array): number {
  let m = Infinity;
  for (const j of FOOT_JOINTS) m = Math.min(m, p[3 * j + 2]);
  return m;
}

/**
 * Re-proportions a local-frame pose to a subject's body: every bone keeps its direction and gets
 * its group's length factor times the stature; then the body is lifted or lowered so its lowest
 * foot point keeps the clearance above the floor it had (standing feet stay on the floor, jumps
 * stay in the air).
 */
export function applyBody(pose: Float64Array, b: SubjectBody): Float64Array {
  const out = new Float64Array(pose.length);
  // Parents precede children in SYNTH_PARENTS, so one pass rebuilds the chain.
  for (let j = 0; j < NUM_ALL_JOINTS; j++) {
    const p = SYNTH_PARENTS[j];
    if (p < 0) {
      for (let k = 0; k < 3; k++) out[k] = pose[k];
      continue;
    }
    const s = b.stature * b.bones[BONE_GROUP_OF[j]!];
    for (let k = 0; k < 3; k++) out[3 * j + k] = out[3 * p + k] + s * (pose[3 * j + k] - pose[3 * p + k]);
  }
  const lift = lowestFoot(pose) - lowestFoot(out);
  for (let j = 0; j < NUM_ALL_JOINTS; j++) out[3 * j + 2] += lift;
  return out;
}

/** Placement of a local-frame pose on the world floor. */
export interface FloorPlacement {
  /** Rotation about the vertical axis, radians. */
  yaw: number;
  /** World x of the point under the pelvis, mm. */
  x: number;
  /** World y of the point under the pelvis, mm. */
  y: number;
}

/** Rotates a local-frame pose about z and moves it to a floor point (world mm, z up). */
export function placeOnFloor(pose: Float64Array, at: FloorPlacement): Float64Array {
  const c = Math.cos(at.yaw), s = Math.sin(at.yaw);
  const out = new Float64Array(pose.length);
  for (let j = 0; j < pose.length / 3; j++) {
    const x = pose[3 * j], y = pose[3 * j + 1];
    out[3 * j] = c * x - s * y + at.x;
    out[3 * j + 1] = s * x + c * y + at.y;
    out[3 * j + 2] = pose[3 * j + 2];
  }
  return out;
}

/** Length of the bone ending at each joint (0 for the root and the zero-length twins), mm. */
export function boneLengths(pose: ArrayLike<number>): Float64Array {
  const out = new Float64Array(NUM_ALL_JOINTS);
  for (let j = 1; j < NUM_ALL_JOINTS; j++) {
    const p = SYNTH_PARENTS[j];
    out[j] = Math.hypot(
      pose[3 * j] - pose[3 * p],
      pose[3 * j + 1] - pose[3 * p + 1],
      pose[3 * j + 2] - pose[3 * p + 2],
    );
  }
  return out;
}
