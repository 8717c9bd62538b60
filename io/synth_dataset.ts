/**
 * The synthetic stand-in for Human3.6M: a dataset in exactly the seed's on-disk layout
 * (SEED_SPEC §2) built from real CMU poses, real H36M cameras and rendered person crops.
 *
 * Layout mirrors the seed: ids are contiguous per subject in the order S1, S5, S6, S7, S8, S9,
 * S11, and within a subject per action in the seed's order; within an action come sub-action 1
 * then 2, each split over cameras 1-4. Sizes are apportioned by the real dataset's subject and
 * action sizes. Every sample is a pure function of (plan, seed, id), so any worker can make any
 * sample and the same seed gives byte-identical files.
 * @module
 */

import { ProgressBar } from "./progress.ts";
import { join } from "node:path";
import { Rng } from "./prng.ts";
import { encodePng } from "./images.ts";
import { type IdRange, type RangeEntry, writeProtocol2, writeRangeTable } from "./index_ranges.ts";
import { ACTIONS, SUBJECTS, TEST_SUBJECTS, TRAIN_SUBJECTS } from "./joints.ts";
import { type Manifest, MANIFEST_FORMAT, writeManifest } from "./manifest.ts";
import { SAMPLE_FOLDERS, type SampleRecord, writeSample } from "./sample_files.ts";
import {
  type CameraRig,
  cropIntrinsics,
  loadCameraRig,
  placeSubject,
  projectPinhole,
  rawToCrop,
  squareBox,
  subjectCamera,
  worldToCamera,
} from "./synth_cameras.ts";
import {
  applyBody,
  libraryPose,
  loadPoseLibrary,
  placeOnFloor,
  type PoseLibrary,
  type PoseTake,
  SUBJECT_BODIES,
  takesForSubject,
} from "./synth_poses.ts";
import { renderSample } from "./synth_render.ts";

/** Bumped whenever the generator's output changes, so cached datasets are rebuilt. */
export const SYNTH_VERSION = 2;

/** Size and seed of a synthetic dataset. */
export interface SynthOptions {
  /** Samples of the training subjects S1, S5, S6, S7, S8. */
  train: number;
  /** Samples of the test subjects S9, S11. */
  test: number;
  /** Seed of every random choice (placements, boxes, images). */
  seed: number;
}

/** One (subject, action) block of consecutive ids. */
export interface PlanCell {
  /** Subject, e.g. "S9". */
  subject: string;
  /** Action name (ACTIONS). */
  action: string;
  /** Index of the action in ACTIONS. */
  actionIndex: number;
  /** First id. */
  start: number;
  /** Number of samples (may be 0 for tiny datasets). */
  count: number;
  /** Take of sub-action 1 and of sub-action 2. */
  takes: [PoseTake, PoseTake];
}

/** Where every id goes. */
export interface DatasetPlan {
  /** Options the plan was made from. */
  options: SynthOptions;
  /** Cells in id order. */
  cells: PlanCell[];
  /** Total number of samples. */
  numSamples: number;
  /** Inclusive id ranges: training subjects, then test subjects. */
  splits: { train: IdRange[]; test: IdRange[] };
}

/** Relative sizes of the subjects in the real dataset (their id counts, SEED_SPEC §2.1). */
const SUBJECT_WEIGHTS: Readonly<Record<string, number>> = {
  S1: 248376,
  S5: 396316,
  S6: 249864,
  S7: 406484,
  S8: 258712,
  S9: 317668,
  S11: 231151,
};

/** Relative sizes of the actions (their Protocol-2 counts, SEED_SPEC §2.3), in ACTIONS order. */
const ACTION_WEIGHTS: readonly number[] = [
  499,
  1004,
  614,
  479,
  876,
  427,
  301,
  629,
  520,
  868,
  458,
  592,
  458,
  442,
  409,
];

/**
 * Which CMU activities stand in for each H36M action, best first (same order as ACTIONS). The
 * first available one drives sub-action 1, the next sub-action 2.
 */
const ACTION_MOTIONS: readonly (readonly string[])[] = [
  ["directing_traffic", "basketball_signal", "washwindow"],
  ["basketball_signal", "washwindow", "directing_traffic"],
  ["washwindow", "basketball_signal", "directing_traffic"],
  ["basketball_signal", "walking", "directing_traffic"],
  ["walking", "basketball_signal", "washwindow"],
  ["jumping", "directing_traffic", "basketball_signal"],
  ["basketball", "walking", "washwindow"],
  ["jumping", "soccer"],
  ["soccer", "jumping"],
  ["basketball_signal", "washwindow", "walking"],
  ["directing_traffic", "washwindow", "basketball"],
  ["basketball_signal", "walking", "basketball"],
  ["walking", "running"],
  ["walking", "soccer"],
  ["running", "walking", "basketball"],
];

/** H36M action ids start at 2 (1 is "all"); the seed's info files carry these. */
const FIRST_ACTION_ID = 2;

/**
 * Splits `total` into integer parts proportional to `weights` (largest remainder), giving every
 * part at least one when there are enough to go round.
 */
export function apportion(total: number, weights: readonly number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  const quota = weights.map((w) => total * w / sum);
  const floorMin = total >= weights.length ? 1 : 0;
  const out = quota.map((q) => Math.max(floorMin, Math.floor(q)));
  let have = out.reduce((a, b) => a + b, 0);
  while (have < total) {
    let best = 0;
    for (let i = 1; i < out.length; i++) if (quota[i] - out[i] > quota[best] - out[best]) best = i;
    out[best]++;
    have++;
  }
  while (have > total) {
    let best = -1;
    for (let i = 0; i < out.length; i++) {
      if (out[i] > floorMin && (best < 0 || out[i] - quota[i] > out[best] - quota[best])) best = i;
    }
    out[best]--;
    have--;
  }
  return out;
}

/** The two takes a subject uses for an action (deterministic, independent of the seed). */
function chooseTakes(lib: PoseLibrary, subject: string, actionIndex: number): [PoseTake, PoseTake] {
  const pool = takesForSubject(lib, subject);
  const cats = ACTION_MOTIONS[actionIndex].filter((c) => pool.some((t) => t.category === c));
  const si = SUBJECTS.indexOf(subject);
  const pick = (sub: number): PoseTake => {
    const cat = cats[Math.min(sub, cats.length - 1)];
    const list = cat === undefined ? pool : pool.filter((t) => t.category === cat);
    return list[(3 * si + actionIndex + sub) % list.length];
  };
  return [pick(0), pick(1)];
}

/** Lays out ids: subjects in SUBJECTS order, actions in ACTIONS order, sizes by real proportions. */
export function planDataset(lib: PoseLibrary, opts: SynthOptions): DatasetPlan {
  for (const [k, v] of [["train", opts.train], ["test", opts.test]] as const) {
    if (!Number.isInteger(v) || v < 0) {
      throw new RangeError(`synthetic dataset: --${k} must be an integer >= 0`);
    }
  }
  if (opts.train + opts.test === 0) throw new RangeError("synthetic dataset: no samples requested");
  const countsFor = (subjects: readonly string[], total: number): Map<string, number[]> => {
    const w: number[] = [];
    for (const s of subjects) for (const a of ACTION_WEIGHTS) w.push(SUBJECT_WEIGHTS[s] * a);
    const flat = apportion(total, w);
    return new Map(subjects.map((s, i) => [s, flat.slice(i * ACTIONS.length, (i + 1) * ACTIONS.length)]));
  };
  const counts = new Map([...countsFor(TRAIN_SUBJECTS, opts.train), ...countsFor(TEST_SUBJECTS, opts.test)]);
  const cells: PlanCell[] = [];
  let next = 0;
  for (const subject of SUBJECTS) {
    const c = counts.get(subject)!;
    for (let a = 0; a < ACTIONS.length; a++) {
      cells.push({
        subject,
        action: ACTIONS[a],
        actionIndex: a,
        start: next,
        count: c[a],
        takes: chooseTakes(lib, subject, a),
      });
      next += c[a];
    }
  }
  const split = (subjects: readonly string[]): IdRange[] => {
    const own = cells.filter((c) => subjects.includes(c.subject) && c.count > 0);
    return own.length === 0
      ? []
      : [[own[0].start, own[own.length - 1].start + own[own.length - 1].count - 1]];
  };
  return {
    options: { ...opts },
    cells,
    numSamples: next,
    splits: { train: split(TRAIN_SUBJECTS), test: split(TEST_SUBJECTS) },
  };
}

/** What one id stands for. */
export interface SampleSpec {
  /** The (subject, action) block. */
  cell: PlanCell;
  /** 1 or 2. */
  subactionId: number;
  /** 1-4. */
  cameraId: number;
  /** Frame of the pose library. */
  libraryFrame: number;
  /** Frame number in the (notional) source video. */
  frameId: number;
}

/** Finds the cell of an id (binary search). */
function cellOf(plan: DatasetPlan, id: number): PlanCell {
  let lo = 0, hi = plan.cells.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (plan.cells[mid].start <= id) lo = mid;
    else hi = mid - 1;
  }
  const c = plan.cells[lo];
  if (!(id >= 0 && id < plan.numSamples) || id >= c.start + c.count) {
    throw new RangeError(`sample id ${id} is outside the dataset (0..${plan.numSamples - 1})`);
  }
  return c;
}

/**
 * Decodes an id: sub-action halves, camera quarters, then frames spread evenly over the take
 * (each camera offset by a quarter stride, so the four views show different moments).
 */
export function sampleSpec(plan: DatasetPlan, id: number): SampleSpec {
  const cell = cellOf(plan, id);
  let k = id - cell.start;
  const n1 = Math.ceil(cell.count / 2);
  const sub = k < n1 ? 0 : 1;
  const m = sub === 0 ? n1 : cell.count - n1;
  if (sub === 1) k -= n1;
  // Cameras keep their order, but which ones get the extra samples rotates from block to block,
  // so even a tiny dataset (one sample per block) sees all four cameras.
  const first = (cell.actionIndex + SUBJECTS.indexOf(cell.subject) + sub) % 4;
  const perCam = [0, 1, 2, 3].map((c) => Math.floor(m / 4) + ((c - first + 4) % 4 < m % 4 ? 1 : 0));
  let cam = 0;
  while (k >= perCam[cam]) k -= perCam[cam++];
  const take = cell.takes[sub];
  const stride = take.count / perCam[cam];
  // The phase is fixed per (subject, action, sub-action) but differs between them.
  const phase = new Rng(plan.options.seed ^ 0x51ed27, cell.start * 2 + sub).float() * take.count;
  const f = Math.floor(phase + (k + cam / 4) * stride) % take.count;
  return { cell, subactionId: sub + 1, cameraId: cam + 1, libraryFrame: take.start + f, frameId: 4 * f };
}

/** Everything a worker needs to make samples: the plan and the loaded assets. */
export interface SynthContext {
  /** The id layout. */
  plan: DatasetPlan;
  /** Pose asset. */
  poses: PoseLibrary;
  /** Calibration asset. */
  rig: CameraRig;
}

/** Loads the assets and plans a dataset. */
export function createSynthContext(opts: SynthOptions): SynthContext {
  const poses = loadPoseLibrary();
  return { plan: planDataset(poses, opts), poses, rig: loadCameraRig() };
}

/** One generated sample: its files' contents and its image. */
export interface SynthSample {
  /** Annotation record (image path relative to the dataset root). */
  record: SampleRecord;
  /** 224x224x3 RGB bytes. */
  rgb: Uint8Array;
  /** Fraction of the crop covered by the figure. */
  coverage: number;
}

/** Makes sample `id`: pose, placement, box, labels and image. Pure in (context, id). */
export function synthesizeSample(ctx: SynthContext, id: number): SynthSample {
  const spec = sampleSpec(ctx.plan, id);
  const { subject, action, actionIndex } = spec.cell;
  const rng = new Rng(ctx.plan.options.seed, id);
  const body = SUBJECT_BODIES[subject];
  const pose = applyBody(libraryPose(ctx.poses, spec.libraryFrame), body);
  const camera = subjectCamera(ctx.rig, subject, spec.cameraId);
  const frame = ctx.rig.cameras[spec.cameraId - 1];
  const margin = 8;
  const inFrame = (uv: Float64Array) => {
    for (let i = 0; i < uv.length; i += 2) {
      if (
        uv[i] < margin || uv[i] > frame.width - margin || uv[i + 1] < margin ||
        uv[i + 1] > frame.height - margin
      ) {
        return false;
      }
    }
    return true;
  };
  const place = placeSubject(camera, pose[2], rng, {
    fits: (p) => inFrame(projectPinhole(camera, worldToCamera(camera, placeOnFloor(pose, p)))),
  });
  const joints3d = worldToCamera(camera, placeOnFloor(pose, place));
  const uvRaw = projectPinhole(camera, joints3d);
  const bbx = squareBox(uvRaw, rng);
  const joints2d = rawToCrop(uvRaw, bbx);
  const { rgb, coverage } = renderSample({
    joints: joints3d,
    intrinsics: cropIntrinsics(camera, bbx),
    camera,
    floorPoint: [place.x, place.y],
    body,
  }, rng);
  const sub = spec.subactionId === 1 ? "" : `_${spec.subactionId}`;
  const record: SampleRecord = {
    id,
    bbx,
    centerX: 112,
    centerY: 112,
    scale: 224,
    joints2d,
    joints3d,
    camera,
    imagePath: `${SAMPLE_FOLDERS.images}/${id}.png`,
    info: {
      subject,
      actionId: actionIndex + FIRST_ACTION_ID,
      actionName: action,
      subactionId: spec.subactionId,
      cameraId: spec.cameraId,
      frameId: spec.frameId,
      video: `synth/${subject}/${action}${sub}.${frame.name}.mp4`,
    },
  };
  return { record, rgb, coverage };
}

/** Makes and writes ids [lo, hi) under `root`, overlapping file writes with the next render. */
export async function writeSynthRange(
  ctx: SynthContext,
  root: string,
  range: { lo: number; hi: number; onSample?: () => void },
): Promise<void> {
  let pending: Promise<void>[] = [];
  for (let id = range.lo; id < range.hi; id++) {
    const s = synthesizeSample(ctx, id);
    const png = await encodePng(s.rgb, 224, 224);
    pending.push(writeSample(root, s.record, { png }).then(range.onSample));
    if (pending.length >= 8) {
      await Promise.all(pending);
      pending = [];
    }
  }
  await Promise.all(pending);
}

/** Protocol-2-style lists: in each test (subject, action) every 64th id from start+63, at least one per block. */
export function protocol2Lists(plan: DatasetPlan, stride = 64): Map<string, number[]> {
  const by = new Map<string, number[]>();
  for (const c of plan.cells) {
    if (!TEST_SUBJECTS.includes(c.subject) || c.count === 0) continue;
    const ids = by.get(c.action) ?? [];
    const end = c.start + c.count - 1;
    // Short synthetic blocks would get none at start+63, so they contribute their middle id.
    for (let id = c.start + Math.min(stride - 1, (c.count - 1) >> 1); id <= end; id += stride) ids.push(id);
    by.set(c.action, ids);
  }
  return by;
}

/** Progress of a generation run. */
export interface SynthProgress {
  /** Samples written so far. */
  done: number;
  /** Samples to write. */
  total: number;
  /** Seconds since the samples started. */
  elapsed: number;
}

/** Options of generateDataset. */
export interface GenerateOptions extends SynthOptions {
  /** Worker count; 0 renders on the calling thread. Default: the number of CPU cores (max 8). */
  workers?: number;
  /** Dataset name in the manifest. */
  name?: string;
  /** Called after every written sample (throttle on the caller side if needed). */
  onProgress?: (p: SynthProgress) => void;
}

/** Summary of a finished generation. */
export interface GenerateResult {
  /** The manifest that was written. */
  manifest: Manifest;
  /** Seconds spent on the samples. */
  seconds: number;
}

/** Message a generator worker receives. */
export type SynthWorkerRequest =
  | { kind: "init"; root: string; options: SynthOptions }
  | { kind: "range"; lo: number; hi: number };

/** Message a generator worker sends. */
export type SynthWorkerReply =
  | { kind: "ready" }
  | { kind: "progress"; n: number }
  | { kind: "done" }
  | { kind: "error"; message: string };

async function runWorkers(
  root: string,
  opts: SynthOptions,
  total: number,
  workers: number,
  onSample: () => void,
): Promise<void> {
  const chunk = Math.max(4, Math.min(64, Math.ceil(total / (workers * 16))));
  let next = 0;
  const pool: Worker[] = [];
  try {
    await Promise.all(Array.from({ length: workers }, () =>
      new Promise<void>((resolve, reject) => {
        const w = new Worker(new URL("./synth_worker.ts", import.meta.url).href, { type: "module" });
        pool.push(w);
        const feed = () => {
          if (next >= total) return resolve();
          const lo = next;
          next = Math.min(total, next + chunk);
          w.postMessage({ kind: "range", lo, hi: next } satisfies SynthWorkerRequest);
        };
        w.onmessage = (e: MessageEvent<SynthWorkerReply>) => {
          const m = e.data;
          if (m.kind === "progress") { for (let i = 0; i < m.n; i++) onSample(); }
          else if (m.kind === "ready" || m.kind === "done") feed();
          else reject(new Error(`synthetic data worker: ${m.message}`));
        };
        w.onerror = (e) => {
          e.preventDefault();
          reject(new Error(`synthetic data worker failed: ${e.message}`));
        };
        w.postMessage({ kind: "init", root, options: opts } satisfies SynthWorkerRequest);
      })));
  } finally {
    for (const w of pool) w.terminate();
  }
}

/**
 * Generates a whole dataset under `root`: index ranges and Protocol-2 lists first, then every
 * sample (in workers), and the manifest last, so a root with a manifest is complete.
 */
export async function generateDataset(root: string, opts: GenerateOptions): Promise<GenerateResult> {
  const ctx = createSynthContext(opts);
  const { plan } = ctx;
  const options: SynthOptions = { train: opts.train, test: opts.test, seed: opts.seed };
  for (const f of Object.values(SAMPLE_FOLDERS)) await Deno.mkdir(join(root, f), { recursive: true });
  const rangeDir = join(root, "index_range");
  const rows: RangeEntry[] = plan.cells.filter((c) => c.count > 0).map((c) => ({
    subject: c.subject,
    action: c.action,
    start: c.start,
    end: c.start + c.count - 1,
  }));
  await writeRangeTable(rangeDir, rows);
  const p2 = protocol2Lists(plan);
  if (p2.size > 0) await writeProtocol2(join(rangeDir, "Protocol2"), p2);

  const t0 = performance.now();
  let done = 0;
  const onSample = () => {
    done++;
    opts.onProgress?.({ done, total: plan.numSamples, elapsed: (performance.now() - t0) / 1000 });
  };
  const workers = Math.max(
    0,
    Math.min(opts.workers ?? Math.min(8, navigator.hardwareConcurrency || 1), plan.numSamples),
  );
  if (workers === 0) await writeSynthRange(ctx, root, { lo: 0, hi: plan.numSamples, onSample });
  else await runWorkers(root, options, plan.numSamples, workers, onSample);
  const seconds = (performance.now() - t0) / 1000;

  const manifest: Manifest = {
    format: MANIFEST_FORMAT,
    name: opts.name ?? `volpose-synth-v${SYNTH_VERSION}-train${opts.train}-test${opts.test}-seed${opts.seed}`,
    numSamples: plan.numSamples,
    imageSize: 224,
    splits: plan.splits,
    indexRangeDir: "index_range",
  };
  await writeManifest(root, manifest);
  return { manifest, seconds };
}

/** Formats seconds as 1h02m, 3m05s or 42s. */
/** A progress callback drawing the shared progress bar on stderr. */
export function stderrProgressBar(label = "synth"): (p: SynthProgress) => void {
  let bar: ProgressBar | null = null;
  return (p) => {
    bar ??= new ProgressBar({ label, total: p.total, unit: "samples/s" });
    bar.update(p.done);
    if (p.done >= p.total) bar.finish();
  };
}
