/**
 * Run folders: `runs/<name>/` holds `config.json` (the run's configuration), `checkpoints/`
 * (`net_iter_<N>.safetensors` and their solver states), `metrics.jsonl` and `curve.svg`. This
 * finds them, opens their configuration and picks the checkpoint to use.
 * @module
 */
import { join } from "node:path";
import { checkpointPaths, findLatestCheckpoint } from "../graph/checkpoint.ts";
import { readSafetensorsHeader } from "../graph/safetensors.ts";
import { parseRunConfig, type RunConfig } from "./config.ts";

/** The folder `deno task train` writes runs under. */
export const RUNS_ROOT = "runs";

/** Checkpoints of a run, inside its folder. */
export const CHECKPOINT_DIR = "checkpoints";

/** Whether a file or folder exists. */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The run folder under `root` whose config.json is newest, or null when there is none. */
export async function newestRun(root: string = RUNS_ROOT): Promise<string | null> {
  let best: { path: string; mtime: number } | null = null;
  try {
    for await (const d of Deno.readDir(root)) {
      if (!d.isDirectory) continue;
      const p = join(root, d.name);
      const st = await Deno.stat(join(p, "config.json")).catch(() => null);
      if (st?.mtime && (!best || st.mtime.getTime() > best.mtime)) {
        best = { path: p, mtime: st.mtime.getTime() };
      }
    }
  } catch { /* no runs folder yet */ }
  return best?.path ?? null;
}

/** A run folder and its configuration. */
export interface OpenedRun {
  dir: string;
  config: RunConfig;
  /** Path of the configuration file. */
  configPath: string;
}

/**
 * Opens a run folder: `dir` as given, or the newest run under `root` when `dir` is undefined.
 * Errors name the folder and what it lacks.
 */
export async function openRun(dir: string | undefined, root: string = RUNS_ROOT): Promise<OpenedRun> {
  const found = dir ?? await newestRun(root);
  if (!found) {
    throw new Error(`no run found under ${root}/ (expected a folder with config.json); give --run DIR`);
  }
  const configPath = join(found, "config.json");
  if (!(await exists(configPath))) {
    throw new Error(
      `${configPath} not found: ${found} is not a run folder (expected a folder written by deno task train, ` +
        `with config.json and checkpoints/)`,
    );
  }
  return { dir: found, config: parseRunConfig(await Deno.readTextFile(configPath), configPath), configPath };
}

/** A checkpoint to load: its prefix (files `<prefix>.safetensors`, `<prefix>.solverstate.safetensors`) and iteration. */
export interface CheckpointRef {
  prefix: string;
  iter: number;
}

/**
 * The checkpoint to evaluate: the given prefix (or either of its files), checked; else the run's
 * latest complete checkpoint; else its latest weights without a solver state.
 */
export async function resolveCheckpoint(runDir: string, explicit?: string): Promise<CheckpointRef> {
  if (explicit) {
    const prefix = explicit.replace(/\.solverstate\.safetensors$|\.safetensors$/, "");
    const w = checkpointPaths(prefix).weights;
    if (!(await exists(w))) {
      throw new Error(
        `checkpoint ${w} not found: --checkpoint expects a prefix such as ${
          join(runDir, CHECKPOINT_DIR, "net_iter_N")
        } (or either of its files)`,
      );
    }
    const h = await readSafetensorsHeader(w);
    const n = Number(h.metadata.iter);
    return { prefix, iter: Number.isSafeInteger(n) ? n : -1 };
  }
  const dir = join(runDir, CHECKPOINT_DIR);
  const found = await findLatestCheckpoint(dir);
  if (found) return found;
  // Weights without their solver state still evaluate.
  let best: CheckpointRef | null = null;
  try {
    for await (const d of Deno.readDir(dir)) {
      const m = /^(.*_iter_(\d+))\.safetensors$/.exec(d.name);
      if (
        d.isFile && m && !d.name.endsWith(".solverstate.safetensors") && (!best || Number(m[2]) > best.iter)
      ) {
        best = { prefix: join(dir, m[1]), iter: Number(m[2]) };
      }
    }
  } catch { /* no folder: reported below */ }
  if (!best) {
    throw new Error(
      `no checkpoint in ${dir}: expected net_iter_<N>.safetensors written by deno task train (or give --checkpoint PREFIX)`,
    );
  }
  return best;
}

/**
 * The depth d2 of a checkpoint's network, from the metadata its save recorded (the weights file's,
 * else its solver state's); a checkpoint without one is taken to be of the run's last stage.
 */
export async function checkpointDepth(prefix: string, cfg: RunConfig): Promise<number> {
  const paths = checkpointPaths(prefix);
  for (const path of [paths.weights, paths.solverState]) {
    if (!(await exists(path))) continue;
    const text = (await readSafetensorsHeader(path)).metadata.meta;
    if (text === undefined) continue;
    let meta: { d2?: unknown };
    try {
      meta = JSON.parse(text);
    } catch (e) {
      throw new Error(`${path}: metadata "meta" is not JSON (${(e as Error).message})`);
    }
    if (meta.d2 === undefined) continue;
    if (!Number.isInteger(meta.d2) || (meta.d2 as number) < 1) {
      throw new Error(`${path}: metadata d2 is ${JSON.stringify(meta.d2)}, expected an integer >= 1`);
    }
    return meta.d2 as number;
  }
  return cfg.schedule[cfg.schedule.length - 1].d2;
}
