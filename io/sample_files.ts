/**
 * The seed's per-sample text layout (SEED_SPEC §2.2): one small file per sample in each of nine
 * folders, plus the 224x224 PNG crop. Readers are strict (every count and every token is checked,
 * errors name the file and line); writers reproduce the real files' number formatting byte for
 * byte, so a synthetic dataset is indistinguishable from the original to any reader.
 * @module
 */

import { basename, isAbsolute, join } from "node:path";
import { DataError } from "./errors.ts";

/** Folder names of a dataset root, one file `<id>.txt` per sample in each. */
export const SAMPLE_FOLDERS = {
  bbx: "bbx_all_new",
  centerX: "center_x",
  centerY: "center_y",
  scale: "scale",
  joints2d: "gt_joint_2d_raw_new",
  joints3d: "gt_joint_3d_mono_raw",
  camera: "camera_all",
  imagePath: "image_path_file",
  info: "info_all",
  images: "images",
} as const;

/** Camera parameters as stored in `camera_all/` (only f and c are used by the system). */
export interface Camera {
  /** World->camera rotation, 3x3 row-major. */
  R: number[];
  /** Camera centre in world mm. */
  T: number[];
  /** Focal lengths fx, fy in px. */
  f: [number, number];
  /** Principal point cx, cy in raw-frame px. */
  c: [number, number];
  /** Radial distortion k1 k2 k3 (ignored). */
  k: [number, number, number];
  /** Tangential distortion p1 p2 (ignored). */
  p: [number, number];
}

/** Informational metadata of `info_all/`. */
export interface SampleInfo {
  /** Subject such as "S9" (derived from the video path when the file has no subject line). */
  subject: string;
  /** 1-based action id as stored. */
  actionId: number;
  /** Action name, e.g. "Smoking". */
  actionName: string;
  /** Sub-action (trial) id. */
  subactionId: number;
  /** Camera id. */
  cameraId: number;
  /** Frame number in the video. */
  frameId: number;
  /** Source video path. */
  video: string;
}

/** Everything stored for one sample. */
export interface SampleRecord {
  /** Global sample id. */
  id: number;
  /** Square person box x1 y1 x2 y2 in raw-frame px. */
  bbx: [number, number, number, number];
  /** Person centre x in the 224 crop (always 112). */
  centerX: number;
  /** Person centre y in the 224 crop (always 112). */
  centerY: number;
  /** Person size in px (always 224). */
  scale: number;
  /** 32 joints (u, v) in px of the 224 crop; 64 values. */
  joints2d: Float64Array;
  /** 32 joints (X, Y, Z) in camera-frame mm; 96 values. */
  joints3d: Float64Array;
  /** Camera of this sample. */
  camera: Camera;
  /** Image path exactly as stored (may be a foreign Windows path). */
  imagePath: string;
  /** Informational metadata. */
  info: SampleInfo;
}

// ---------------------------------------------------------------------------------------------
// Number formatting and parsing

/**
 * C's `%W.Pf`: fixed notation right-aligned in `width`. Differs from `toFixed` only on exact
 * decimal ties, which C (glibc) rounds half-to-even and JavaScript rounds away from zero.
 */
export function formatFixed(x: number, width: number, opts: { precision?: number } = {}): string {
  const precision = opts.precision ?? 6;
  if (!Number.isFinite(x)) throw new RangeError(`formatFixed: not a finite number: ${x}`);
  const neg = x < 0 || Object.is(x, -0);
  const a = Math.abs(x);
  let s = a.toFixed(precision);
  if (a < 1e21) {
    const exact = a.toFixed(precision + 24);
    const tail = exact.slice(exact.length - 24);
    if (tail === "5".padEnd(24, "0")) {
      const last = s.charCodeAt(s.length - 1) - 48;
      if (last % 2 === 1) s = exact.slice(0, exact.length - 24); // the even neighbour is below
    }
  }
  return ((neg ? "-" : "") + s).padStart(width);
}

/** Formats a value the way the seed's one-number files do: `112.0`, `224.0`, or more digits when needed. */
export function formatScalar(x: number): string {
  if (!Number.isFinite(x)) throw new RangeError(`formatScalar: not a finite number: ${x}`);
  return Number.isInteger(x) ? x.toFixed(1) : String(x);
}

const NUMBER_RE = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** A token with its 1-based line number. */
interface Token {
  text: string;
  line: number;
}

/**
 * Splits on whitespace and, like C's scanf("%lf"), also where a sign follows a digit: the seed
 * writes "%12.6f" with no separator, so a value of -1000 or less runs into the one before it
 * ("1761.278534-5078.006595"). A sign after an exponent's "e" stays attached.
 */
function tokenize(text: string): Token[] {
  const out: Token[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    for (const word of lines[i].split(/[ \t\r\f\v]+/)) {
      if (word === "") continue;
      for (const t of word.split(/(?<=[\d.])(?=[+-])/)) out.push({ text: t, line: i + 1 });
    }
  }
  return out;
}

function toNumber(path: string, tok: Token): number {
  if (!NUMBER_RE.test(tok.text)) {
    throw new DataError(path, "a number", { line: tok.line, got: JSON.stringify(tok.text) });
  }
  return Number(tok.text);
}

/**
 * Parses exactly `count` whitespace-separated numbers (`what` describes them for the error).
 * @throws DataError naming the path, the offending line and what was expected.
 */
export function parseNumbers(
  text: string,
  path: string,
  opts: { count: number; what?: string },
): Float64Array {
  const toks = tokenize(text);
  const what = opts.what ?? `${opts.count} numbers`;
  if (toks.length !== opts.count) {
    const line = toks.length > opts.count ? toks[opts.count].line : undefined;
    throw new DataError(path, what, { line, got: `${toks.length} values` });
  }
  const out = new Float64Array(opts.count);
  for (let i = 0; i < toks.length; i++) out[i] = toNumber(path, toks[i]);
  return out;
}

/** Reads a text file, turning "not found" into a DataError that says what the file should hold. */
export async function readText(path: string, expected: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new DataError(path, `a file with ${expected}`, { got: "no file" });
    }
    throw new DataError(path, `a readable file with ${expected}`, { cause: e, got: String(e) });
  }
}

function samplePath(root: string, folder: string, id: number): string {
  return join(root, folder, `${id}.txt`);
}

// ---------------------------------------------------------------------------------------------
// Per-folder formats

/** Formats `bbx_all_new/`: `x1 y1 x2 y2` (integers as integers, like the seed). */
export function formatBbx(bbx: readonly number[]): string {
  return bbx.map((v) => String(v)).join(" ") + "\n";
}

/** Parses `bbx_all_new/` (4 numbers). */
export function parseBbx(text: string, path: string): [number, number, number, number] {
  const v = parseNumbers(text, path, { count: 4, what: "4 numbers x1 y1 x2 y2" });
  return [v[0], v[1], v[2], v[3]];
}

/** Formats a one-number file (`center_x/`, `center_y/`, `scale/`). */
export function formatScalarFile(x: number): string {
  return formatScalar(x) + "\n";
}

/** Parses a one-number file. */
export function parseScalarFile(text: string, path: string): number {
  return parseNumbers(text, path, { count: 1, what: "1 number" })[0];
}

/** Formats `gt_joint_2d_raw_new/`: 32 lines `%12.6f %12.6f`. */
export function formatJoints2d(j: ArrayLike<number>): string {
  if (j.length !== 64) throw new RangeError(`formatJoints2d: expected 64 values, got ${j.length}`);
  let s = "";
  for (let i = 0; i < 32; i++) s += `${formatFixed(j[2 * i], 12)} ${formatFixed(j[2 * i + 1], 12)}\n`;
  return s;
}

/** Parses `gt_joint_2d_raw_new/` (64 numbers). */
export function parseJoints2d(text: string, path: string): Float64Array {
  return parseNumbers(text, path, { count: 64, what: "64 numbers (32 joints u v)" });
}

/** Formats `gt_joint_3d_mono_raw/`: 32 lines `%12.6f %12.6f %12.6f ` (note the trailing space). */
export function formatJoints3d(j: ArrayLike<number>): string {
  if (j.length !== 96) throw new RangeError(`formatJoints3d: expected 96 values, got ${j.length}`);
  let s = "";
  for (let i = 0; i < 32; i++) {
    s += `${formatFixed(j[3 * i], 12)} ${formatFixed(j[3 * i + 1], 12)} ${formatFixed(j[3 * i + 2], 12)} \n`;
  }
  return s;
}

/** Parses `gt_joint_3d_mono_raw/` (96 numbers). */
export function parseJoints3d(text: string, path: string): Float64Array {
  return parseNumbers(text, path, { count: 96, what: "96 numbers (32 joints X Y Z)" });
}

const CAMERA_BLOCKS: readonly (readonly [keyof Camera, number, number])[] = [
  // label, count, numbers per line
  ["R", 9, 3],
  ["T", 3, 3],
  ["f", 2, 2],
  ["c", 2, 2],
  ["k", 3, 3],
  ["p", 2, 2],
];

/** Formats `camera_all/`: labelled blocks `R:` `T:` `f:` `c:` `k:` `p:`, numbers `%12.6f` without separators. */
export function formatCamera(cam: Camera): string {
  let s = "";
  for (const [label, count, perLine] of CAMERA_BLOCKS) {
    const v = cam[label] as number[];
    if (v.length !== count) {
      throw new RangeError(`formatCamera: ${label} needs ${count} values, got ${v.length}`);
    }
    s += `${label}:\n`;
    for (let i = 0; i < count; i += perLine) {
      s += v.slice(i, i + perLine).map((x) => formatFixed(x, 12)).join("") + "\n";
    }
  }
  return s;
}

/** Parses `camera_all/`: the six labelled blocks in order, with exactly 9, 3, 2, 2, 3, 2 numbers. */
export function parseCamera(text: string, path: string): Camera {
  const toks = tokenize(text);
  const out: Partial<Record<keyof Camera, number[]>> = {};
  let t = 0;
  for (const [label, count] of CAMERA_BLOCKS) {
    const tok = toks[t];
    if (tok === undefined || tok.text !== `${label}:`) {
      throw new DataError(path, `the label "${label}:"`, {
        line: tok?.line,
        got: tok ? JSON.stringify(tok.text) : "end of file",
      });
    }
    t++;
    const vals: number[] = [];
    while (t < toks.length && !toks[t].text.endsWith(":")) vals.push(toNumber(path, toks[t++]));
    if (vals.length !== count) {
      throw new DataError(path, `${count} numbers after "${label}:"`, {
        line: tok.line,
        got: `${vals.length}`,
      });
    }
    out[label] = vals;
  }
  if (t < toks.length) {
    throw new DataError(path, "end of file after the p: block", { line: toks[t].line, got: toks[t].text });
  }
  return {
    R: out.R!,
    T: out.T!,
    f: out.f as [number, number],
    c: out.c as [number, number],
    k: out.k as [number, number, number],
    p: out.p as [number, number],
  };
}

/** Formats `image_path_file/`: the path token as given. */
export function formatImagePath(p: string): string {
  if (p === "" || /\s/.test(p)) {
    throw new RangeError(`formatImagePath: path must be one non-empty token: ${p}`);
  }
  return p + "\n";
}

/** Parses `image_path_file/`: exactly one whitespace-free token. */
export function parseImagePath(text: string, path: string): string {
  const toks = tokenize(text);
  if (toks.length !== 1) {
    throw new DataError(path, "one whitespace-free image path", {
      line: toks[1]?.line,
      got: `${toks.length} tokens`,
    });
  }
  return toks[0].text;
}

const SUBJECT_IN_PATH = /(?:^|[\\/])(S\d+)[\\/]/;

/**
 * Formats `info_all/`: seven lines "label value", label right-aligned in 15 columns and value in
 * 70 after one space. The seed's first label says video_name where the subject is meant (§8.22);
 * we keep that layout, and write a `subject` first line only when the video path cannot tell it.
 */
export function formatInfo(info: SampleInfo): string {
  const fromVideo = SUBJECT_IN_PATH.exec(info.video)?.[1] ?? "";
  const first: [string, string] = info.subject === fromVideo || info.subject === ""
    ? ["video_name", info.video]
    : ["subject", info.subject];
  const rows: [string, string][] = [
    first,
    ["action_id", String(info.actionId)],
    ["action_name", info.actionName],
    ["subaction_id", String(info.subactionId)],
    ["camera_id", String(info.cameraId)],
    ["frame_id", String(info.frameId)],
    ["video_name", info.video],
  ];
  for (const [, v] of rows) {
    if (v === "" || /\s/.test(v)) {
      throw new RangeError(`formatInfo: values must be non-empty single tokens: "${v}"`);
    }
  }
  return rows.map(([k, v]) => `${k.padStart(15)} ${v.padStart(70)}\n`).join("");
}

/** Parses `info_all/`: seven "label value" lines in the seed's order. */
export function parseInfo(text: string, path: string): SampleInfo {
  const lines = text.split("\n").map((l, i) => ({ l: l.trim(), line: i + 1 })).filter((x) => x.l !== "");
  const labels = [
    "video_name|subject",
    "action_id",
    "action_name",
    "subaction_id",
    "camera_id",
    "frame_id",
    "video_name",
  ];
  if (lines.length !== 7) {
    throw new DataError(path, "7 lines 'label value'", { got: `${lines.length} lines` });
  }
  const vals: string[] = [];
  for (let i = 0; i < 7; i++) {
    const parts = lines[i].l.split(/\s+/);
    if (parts.length !== 2 || !labels[i].split("|").includes(parts[0])) {
      throw new DataError(path, `"${labels[i].replace("|", " or ")} <value>"`, {
        line: lines[i].line,
        got: JSON.stringify(lines[i].l),
      });
    }
    vals.push(parts[1]);
  }
  const int = (i: number): number => {
    if (!/^[+-]?\d+$/.test(vals[i])) {
      throw new DataError(path, `an integer ${labels[i]}`, {
        line: lines[i].line,
        got: JSON.stringify(vals[i]),
      });
    }
    return Number(vals[i]);
  };
  const video = vals[6];
  const subject = lines[0].l.startsWith("subject") ? vals[0] : SUBJECT_IN_PATH.exec(video)?.[1] ?? "";
  return {
    subject,
    actionId: int(1),
    actionName: vals[2],
    subactionId: int(3),
    cameraId: int(4),
    frameId: int(5),
    video,
  };
}

// ---------------------------------------------------------------------------------------------
// Whole samples

/** Reads one folder's file for a sample and parses it. */
async function readPart<T>(
  root: string,
  folder: string,
  id: number,
  expected: string,
  parse: (text: string, path: string) => T,
): Promise<T> {
  const path = samplePath(root, folder, id);
  return parse(await readText(path, expected), path);
}

/** Reads every annotation file of sample `id` under a dataset root (not the image; see resolveImagePath). */
export async function readSample(root: string, id: number): Promise<SampleRecord> {
  const F = SAMPLE_FOLDERS;
  const [bbx, centerX, centerY, scale, joints2d, joints3d, camera, imagePath, info] = await Promise.all([
    readPart(root, F.bbx, id, "4 numbers", parseBbx),
    readPart(root, F.centerX, id, "1 number", parseScalarFile),
    readPart(root, F.centerY, id, "1 number", parseScalarFile),
    readPart(root, F.scale, id, "1 number", parseScalarFile),
    readPart(root, F.joints2d, id, "64 numbers", parseJoints2d),
    readPart(root, F.joints3d, id, "96 numbers", parseJoints3d),
    readPart(root, F.camera, id, "camera blocks", parseCamera),
    readPart(root, F.imagePath, id, "an image path", parseImagePath),
    readPart(root, F.info, id, "7 info lines", parseInfo),
  ]);
  return { id, bbx, centerX, centerY, scale, joints2d, joints3d, camera, imagePath, info };
}

/**
 * Writes all files of one sample, creating folders as needed. With `png`, also writes
 * `images/<id>.png`; `image_path_file` always holds `rec.imagePath` exactly as given.
 */
export async function writeSample(
  root: string,
  rec: SampleRecord,
  opts: { png?: Uint8Array } = {},
): Promise<void> {
  const F = SAMPLE_FOLDERS;
  const files: [string, string][] = [
    [F.bbx, formatBbx(rec.bbx)],
    [F.centerX, formatScalarFile(rec.centerX)],
    [F.centerY, formatScalarFile(rec.centerY)],
    [F.scale, formatScalarFile(rec.scale)],
    [F.joints2d, formatJoints2d(rec.joints2d)],
    [F.joints3d, formatJoints3d(rec.joints3d)],
    [F.camera, formatCamera(rec.camera)],
    [F.imagePath, formatImagePath(rec.imagePath)],
    [F.info, formatInfo(rec.info)],
  ];
  await Promise.all(files.map(async ([folder, text]) => {
    await Deno.mkdir(join(root, folder), { recursive: true });
    await Deno.writeTextFile(samplePath(root, folder, rec.id), text);
  }));
  if (opts.png) {
    await Deno.mkdir(join(root, F.images), { recursive: true });
    await Deno.writeFile(join(root, F.images, `${rec.id}.png`), opts.png);
  }
}

function existsFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * The image file of a sample. The stored path is used when it exists (relative paths are taken
 * from the root); real datasets store foreign Windows paths (`E:\frame_images\20.png`), so
 * otherwise `<root>/images/<basename>` is used. Throws DataError when neither exists.
 */
export function resolveImagePath(root: string, rec: Pick<SampleRecord, "id" | "imagePath">): string {
  const stored = rec.imagePath;
  const direct = isAbsolute(stored) ? stored : join(root, stored);
  if (!stored.includes("\\") && existsFile(direct)) return direct;
  const base = basename(stored.replaceAll("\\", "/"));
  const fallback = join(root, SAMPLE_FOLDERS.images, base);
  if (existsFile(fallback)) return fallback;
  throw new DataError(fallback, `the image of sample ${rec.id} (stored path ${stored})`, { got: "no file" });
}
