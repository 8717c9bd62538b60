/**
 * The optional dataset manifest `<root>/volpose_manifest.json`. The seed's dataset has none; a
 * synthetic or partial dataset says here how many samples it has and which ids are train/test.
 * Without one the seed's splits apply (index_ranges.ts).
 * @module
 */

import { join } from "node:path";
import { DataError } from "./errors.ts";
import { type IdRange, SEED_SPLITS, type Splits } from "./index_ranges.ts";
import { SAMPLE_FOLDERS } from "./sample_files.ts";

/** File name of the manifest inside a dataset root. */
export const MANIFEST_FILE = "volpose_manifest.json";

/** Format tag of the current manifest version. */
export const MANIFEST_FORMAT = "volpose-dataset/1";

/** Contents of `volpose_manifest.json`. */
export interface Manifest {
  /** Always MANIFEST_FORMAT. */
  format: typeof MANIFEST_FORMAT;
  /** Human-readable dataset name. */
  name: string;
  /** Number of samples (ids 0..numSamples-1 unless the splits say otherwise). */
  numSamples: number;
  /** Side of the stored square crops; always 224. */
  imageSize: 224;
  /** Inclusive id ranges per split. */
  splits: Splits;
  /** Folder of the range files, relative to the root. */
  indexRangeDir: string;
}

function checkRanges(path: string, v: unknown, what: string): IdRange[] {
  if (!Array.isArray(v)) throw new DataError(path, `${what}: an array of [lo, hi] pairs`, { got: typeof v });
  return v.map((r, i) => {
    if (
      !Array.isArray(r) || r.length !== 2 || !Number.isInteger(r[0]) || !Number.isInteger(r[1]) || r[0] < 0 ||
      r[0] > r[1]
    ) {
      throw new DataError(path, `${what}[${i}]: integers [lo, hi] with 0 <= lo <= hi`, {
        got: JSON.stringify(r),
      });
    }
    return [r[0], r[1]] as IdRange;
  });
}

/** Validates a parsed manifest object (`path` names the file in errors). */
export function parseManifest(text: string, path: string): Manifest {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(text);
  } catch (e) {
    throw new DataError(path, "JSON", { got: String(e), cause: e });
  }
  if (typeof o !== "object" || o === null) throw new DataError(path, "a JSON object", { got: String(o) });
  if (o.format !== MANIFEST_FORMAT) {
    throw new DataError(path, `"format": "${MANIFEST_FORMAT}"`, { got: JSON.stringify(o.format) });
  }
  if (typeof o.name !== "string") {
    throw new DataError(path, '"name": a string', { got: JSON.stringify(o.name) });
  }
  if (!Number.isInteger(o.numSamples) || (o.numSamples as number) <= 0) {
    throw new DataError(path, '"numSamples": a positive integer', { got: JSON.stringify(o.numSamples) });
  }
  if (o.imageSize !== 224) {
    throw new DataError(path, '"imageSize": 224', { got: JSON.stringify(o.imageSize) });
  }
  const s = o.splits as Record<string, unknown> | undefined;
  if (typeof s !== "object" || s === null) {
    throw new DataError(path, '"splits": {train, test}', { got: String(s) });
  }
  const splits = {
    train: checkRanges(path, s.train, "splits.train"),
    test: checkRanges(path, s.test, "splits.test"),
  };
  const indexRangeDir = o.indexRangeDir ?? "index_range";
  if (typeof indexRangeDir !== "string") {
    throw new DataError(path, '"indexRangeDir": a string', { got: JSON.stringify(indexRangeDir) });
  }
  return {
    format: MANIFEST_FORMAT,
    name: o.name,
    numSamples: o.numSamples as number,
    imageSize: 224,
    splits,
    indexRangeDir,
  };
}

/** Reads `<root>/volpose_manifest.json`; null when the root has none. Malformed files throw DataError. */
export async function readManifest(root: string): Promise<Manifest | null> {
  const path = join(root, MANIFEST_FILE);
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw new DataError(path, "a readable manifest", { got: String(e), cause: e });
  }
  return parseManifest(text, path);
}

/** Writes `<root>/volpose_manifest.json` (creating the root). */
export async function writeManifest(root: string, m: Manifest): Promise<void> {
  await Deno.mkdir(root, { recursive: true });
  await Deno.writeTextFile(join(root, MANIFEST_FILE), JSON.stringify(m, null, 2) + "\n");
}

/** The splits that apply to a root: its manifest's, else the seed's. */
export async function datasetSplits(root: string): Promise<Splits> {
  return (await readManifest(root))?.splits ?? SEED_SPLITS;
}

/** The range-file folder of a root (manifest's `indexRangeDir`, else `index_range`). */
export async function indexRangeDir(root: string): Promise<string> {
  return join(root, (await readManifest(root))?.indexRangeDir ?? "index_range");
}

/**
 * Checks that `root` looks like a dataset in the seed's layout before any work starts: the folder
 * exists and holds every per-sample folder. Throws a DataError naming what is missing.
 */
export async function checkDatasetRoot(root: string): Promise<void> {
  const isDir = async (p: string) => (await Deno.stat(p).catch(() => null))?.isDirectory ?? false;
  if (!(await isDir(root))) {
    throw new DataError(
      root,
      "a dataset folder in the seed's layout (bbx_all_new/, gt_joint_3d_mono_raw/, ...)",
      {
        got: "no such folder",
      },
    );
  }
  const missing: string[] = [];
  for (const f of Object.values(SAMPLE_FOLDERS)) if (!(await isDir(join(root, f)))) missing.push(`${f}/`);
  if (missing.length) {
    throw new DataError(root, `the per-sample folders of the seed's layout`, {
      got: `no ${missing.join(", ")}`,
    });
  }
}
