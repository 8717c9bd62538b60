/**
 * Joint sets of the Human3.6M skeleton as the seed uses them (SEED_SPEC §1): the 32 raw joints,
 * the 16 joints the network predicts (root = part 0), the 17-joint c2f order, bones, left/right
 * flip pairs and the visualisation colours.
 * @module
 */

/** Number of joints in every `*_raw*` file. */
export const NUM_ALL_JOINTS = 32;
/** Number of joints the network predicts. */
export const NUM_JOINTS = 16;
/** Part id of the root (pelvis). */
export const ROOT_JOINT = 0;

/** Names of the 32 raw joints (id 31 is an unnamed site). */
export const ALL_JOINT_NAMES: readonly string[] = [
  "Hips",
  "RightUpLeg",
  "RightLeg",
  "RightFoot",
  "RightToeBase",
  "Site_0",
  "LeftUpLeg",
  "LeftLeg",
  "LeftFoot",
  "LeftToeBase",
  "Site_1",
  "Spine",
  "Spine1",
  "Neck",
  "Head",
  "Site_2",
  "LeftShoulder",
  "LeftArm",
  "LeftForeArm",
  "LeftHand",
  "LeftHandThumb",
  "Site_3",
  "L_Wrist_End",
  "Site_4",
  "RightShoulder",
  "RightArm",
  "RightForeArm",
  "RightHand",
  "RightHandThumb",
  "Site_5",
  "R_Wrist_End",
  "Site_6",
]; // deno-fmt-ignore

/** For each of the 16 part ids, its id among the 32 raw joints. */
export const PART_TO_ALL: readonly number[] = [0, 1, 2, 3, 6, 7, 8, 13, 14, 15, 17, 18, 19, 25, 26, 27];

/** Names of the 16 predicted joints, in part order. */
export const JOINT_NAMES: readonly string[] = PART_TO_ALL.map((a) => ALL_JOINT_NAMES[a]);

/** Short readable names for reports, in part order. */
export const JOINT_LABELS: readonly string[] = [
  "pelvis",
  "r_hip",
  "r_knee",
  "r_ankle",
  "l_hip",
  "l_knee",
  "l_ankle",
  "thorax",
  "head",
  "head_top",
  "l_shoulder",
  "l_elbow",
  "l_wrist",
  "r_shoulder",
  "r_elbow",
  "r_wrist",
]; // deno-fmt-ignore

/** 1 where the part is on the body's left side. */
export const IS_LEFT: readonly number[] = [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1, 0, 0, 0];

/** For each raw joint id, its part id, or -1 when it is not one of the 16 (the clean table: §8.15). */
export const ALL_TO_PART: readonly number[] = Array.from(
  { length: NUM_ALL_JOINTS },
  (_, a) => PART_TO_ALL.indexOf(a),
);

/** Left/right pairs in part ids (SEED_SPEC §1.3). */
export const FLIP_PAIRS: readonly (readonly [number, number])[] = [
  [1, 4],
  [2, 5],
  [3, 6],
  [13, 10],
  [14, 11],
  [15, 12],
];

/** For each part id, the part id of its mirror image (itself on the midline). */
export const FLIP_PERMUTATION: readonly number[] = (() => {
  const p = Array.from({ length: NUM_JOINTS }, (_, i) => i);
  for (const [a, b] of FLIP_PAIRS) {
    p[a] = b;
    p[b] = a;
  }
  return p;
})();

/** The 15 drawn bones as (child, parent) part ids (bones_part_h36m mapped through ALL_TO_PART). */
export const BONES: readonly (readonly [number, number])[] = (
  [
    [1, 0],
    [6, 0],
    [2, 1],
    [3, 2],
    [7, 6],
    [8, 7],
    [0, 13],
    [25, 13],
    [26, 25],
    [27, 26],
    [17, 13],
    [18, 17],
    [19, 18],
    [14, 13],
    [15, 14],
  ] as const
).map(([c, p]) => [ALL_TO_PART[c], ALL_TO_PART[p]] as const);

/** Parent of each part in the kinematic tree (root's parent is -1). */
export const PARENTS: readonly number[] = [-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 7, 10, 11, 7, 13, 14];

/** The 17-joint c2f order (visualisation only): part id for each c2f joint, -1 for the synthetic Spine1. */
export const C2F_FROM_PART: readonly number[] = [0, 4, 5, 6, 1, 2, 3, -1, 7, 8, 9, 10, 11, 12, 13, 14, 15];

/** Part id -> c2f id (`index_joint_mine_in_c2f`). */
export const PART_TO_C2F: readonly number[] = [0, 4, 5, 6, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16];

/** c2f bones as (child, parent) c2f ids. */
export const C2F_BONES: readonly (readonly [number, number])[] = [
  [4, 0],
  [1, 0],
  [5, 4],
  [6, 5],
  [2, 1],
  [3, 2],
  [0, 7],
  [7, 8],
  [14, 8],
  [15, 14],
  [16, 15],
  [11, 8],
  [12, 11],
  [13, 12],
  [9, 8],
  [10, 9],
]; // deno-fmt-ignore

/** RGB colour of a predicted joint: midline blue, right limbs green, left limbs red (the seed's BGR, converted). */
export const JOINT_COLORS: readonly (readonly [number, number, number])[] = Array.from(
  { length: NUM_JOINTS },
  (_, j): readonly [number, number, number] => [0, 7, 8, 9].includes(j) ? [0, 0, 255] : IS_LEFT[j] ? [255, 0, 0] : [0, 255, 0],
);

/** RGB colour of a predicted bone, indexed like BONES (SEED_SPEC §1.6, BGR converted). */
export const BONE_COLORS: readonly (readonly [number, number, number])[] = BONES.map((_, b) =>
  [0, 1, 6, 13, 14].includes(b)
    ? [0, 0, 255] as const
    : [2, 3, 7, 8, 9].includes(b)
    ? [0, 255, 0] as const
    : [255, 0, 0] as const
);

/** RGB of ground-truth joints (BGR (143,62,255)). */
export const GT_JOINT_COLOR: readonly [number, number, number] = [255, 62, 143];
/** RGB of ground-truth bones (BGR (0,0,236)). */
export const GT_BONE_COLOR: readonly [number, number, number] = [236, 0, 0];

/** Selects the 16 parts from 32 raw joints; `dim` is 2 or 3 values per joint. */
export function selectParts(all: ArrayLike<number>, dim: 2 | 3): Float64Array {
  if (all.length !== NUM_ALL_JOINTS * dim) {
    throw new RangeError(
      `selectParts: expected ${NUM_ALL_JOINTS * dim} values (32 joints x ${dim}), got ${all.length}`,
    );
  }
  const out = new Float64Array(NUM_JOINTS * dim);
  for (let j = 0; j < NUM_JOINTS; j++) {
    for (let k = 0; k < dim; k++) out[j * dim + k] = all[PART_TO_ALL[j] * dim + k];
  }
  return out;
}

/**
 * Scatters 16 parts back to 32 raw joints; joints that are not parts get `fill`
 * (the seed fills 0.5 in 2D and 400 in 3D).
 */
export function expandParts(
  parts: ArrayLike<number>,
  dim: 2 | 3,
  fill = dim === 2 ? 0.5 : 400,
): Float64Array {
  if (parts.length !== NUM_JOINTS * dim) {
    throw new RangeError(
      `expandParts: expected ${NUM_JOINTS * dim} values (16 joints x ${dim}), got ${parts.length}`,
    );
  }
  const out = new Float64Array(NUM_ALL_JOINTS * dim).fill(fill);
  for (let j = 0; j < NUM_JOINTS; j++) {
    for (let k = 0; k < dim; k++) out[PART_TO_ALL[j] * dim + k] = parts[j * dim + k];
  }
  return out;
}

/** Converts 16 parts to the 17-joint c2f order, with Spine1 as the thorax-pelvis midpoint. */
export function partsToC2f(parts: ArrayLike<number>, dim: 2 | 3): Float64Array {
  const out = new Float64Array(17 * dim);
  for (let c = 0; c < 17; c++) {
    const p = C2F_FROM_PART[c];
    for (let k = 0; k < dim; k++) {
      out[c * dim + k] = p >= 0 ? parts[p * dim + k] : 0.5 * (parts[7 * dim + k] + parts[0 * dim + k]);
    }
  }
  return out;
}

/** Mirrors joint labels left<->right in place: permutes rows by FLIP_PERMUTATION (values unchanged). */
export function swapLeftRight<T extends Float32Array | Float64Array>(joints: T, dim: number): T {
  const copy = joints.slice() as T;
  for (let j = 0; j < NUM_JOINTS; j++) {
    const s = FLIP_PERMUTATION[j];
    for (let k = 0; k < dim; k++) joints[j * dim + k] = copy[s * dim + k];
  }
  return joints;
}

/** The 15 Human3.6M actions, in the seed's (alphabetical) order. */
export const ACTIONS: readonly string[] = [
  "Directions",
  "Discussion",
  "Eating",
  "Greeting",
  "Phoning",
  "Posing",
  "Purchases",
  "Sitting",
  "SittingDown",
  "Smoking",
  "TakingPhoto",
  "Waiting",
  "Walking",
  "WalkingDog",
  "WalkingTogether",
]; // deno-fmt-ignore

/** The 7 subjects with 3D ground truth, in id order. */
export const SUBJECTS: readonly string[] = ["S1", "S5", "S6", "S7", "S8", "S9", "S11"];
/** Training subjects of the standard protocols. */
export const TRAIN_SUBJECTS: readonly string[] = ["S1", "S5", "S6", "S7", "S8"];
/** Test subjects of the standard protocols. */
export const TEST_SUBJECTS: readonly string[] = ["S9", "S11"];
