/**
 * Checkpoints: saving and restoring a net's parameters and its solver state, including the
 * coarse-to-fine stage hand-off, where the next stage copies weights by name and re-initialises the
 * volumetric head whose shape changed, with fresh solver history for it (Caffe leaves resuming a
 * solver state across such a change undefined; SEED_SPEC §6, §8.20).
 *
 * A checkpoint with prefix P is two safetensors files:
 * - `P.safetensors`: every parameter entry (learnable or not, so batch-norm running statistics
 *   travel too) keyed "layer.name", in declaration order. It opens in Python as is.
 * - `P.solverstate.safetensors`: the solver history per learnable parameter, named
 *   "history.K.layer.name" (K = 0 for RMSProp's mean square or SGD's momentum, 0/1 for Adam's
 *   moments), with the iteration, learning rate, solver type and options, and the caller's
 *   `meta` (RNG positions, data cursors) as JSON strings in the metadata.
 *
 * The solver state is a safetensors file rather than JSON plus a blob so that it is one file,
 * renamed into place in one step, and its history is as readable from Python as the weights.
 * Each file is written to a temporary name, flushed and renamed, and both carry the same random
 * checkpoint id: a crash between the two renames leaves a pair whose ids disagree, which loading
 * reports and {@linkcode findLatestCheckpoint} skips.
 *
 * Loading copies tensors by name. A strict load (the default) demands that names and shapes
 * match exactly. A non-strict load copies the tensors whose name and shape match, re-initialises
 * the rest with the net's fillers and seed and zeroes their solver history, ignores tensors the
 * net lacks, and keeps the saved iteration: this is how d4 resumes from d2 although the 3D head
 * `conv_5_d{D}` changes shape, and how a stage starts from a 2D model.
 * @module
 */
import { basename, join } from "node:path";
import { fill } from "./fillers.ts";
import { fmtShape } from "./layer.ts";
import type { Net, ParamEntry } from "./net.ts";
import { learningRate, type Solver } from "./solver.ts";
import { download, upload } from "./tensor.ts";
import {
  type NamedTensor,
  readSafetensors,
  readSafetensorsHeader,
  SafetensorsError,
  writeSafetensors,
} from "./safetensors.ts";

const WEIGHTS_FORMAT = "volpose-weights-1";
const SOLVER_FORMAT = "volpose-solverstate-1";
const WEIGHTS_EXT = ".safetensors";
const SOLVER_EXT = ".solverstate.safetensors";

/** A checkpoint that cannot be loaded as asked; the message names the files and tensors. */
export class CheckpointError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CheckpointError";
  }
}

/** Where a checkpoint was written. */
export interface SavedCheckpoint {
  prefix: string;
  weights: string;
  /** Null when the net has no solver or `solverState` was false. */
  solverState: string | null;
  iter: number;
}

/** Options for {@linkcode saveCheckpoint}. */
export interface SaveOptions {
  /** Caller state to restore on resume (RNG positions, data cursors); must be JSON-serialisable. */
  meta?: Record<string, unknown>;
  /** Write the solver state too (default: when the net has a solver). */
  solverState?: boolean;
  /** File name stem when a directory is given (default "net", giving "net_iter_<N>" as Caffe does). */
  stem?: string;
}

/** Paths of the two files of checkpoint `prefix`. */
export function checkpointPaths(prefix: string): { weights: string; solverState: string } {
  return { weights: prefix + WEIGHTS_EXT, solverState: prefix + SOLVER_EXT };
}

/** Accepts a prefix or either file's path and returns the prefix. */
function toPrefix(path: string): string {
  if (path.endsWith(SOLVER_EXT)) return path.slice(0, -SOLVER_EXT.length);
  if (path.endsWith(WEIGHTS_EXT)) return path.slice(0, -WEIGHTS_EXT.length);
  return path;
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}

/** The solver's settings as plain data: its type, options and public hyper-parameters. */
export function solverConfig(solver: Solver): Record<string, unknown> {
  const out: Record<string, unknown> = { type: solver.type, ...solver.options };
  // Per-solver hyper-parameters (rmsDecay, momentum, beta1, ...) are public numeric fields.
  for (const [k, v] of Object.entries(solver)) {
    if (typeof v === "number" && !(k in out)) out[k] = v;
  }
  return out;
}

/** Index of a parameter's first float in the flat parameter (and history) buffers. */
function floatOffset(e: ParamEntry): number {
  return e.offset / 4;
}

/** Learnable parameters have solver history (frozen ones too: another build may unfreeze them). */
function hasHistory(e: ParamEntry): boolean {
  return e.decl.learnable;
}

/**
 * Saves `net`'s parameters and solver state. `dirOrPrefix` is either an existing directory (or a
 * path ending in "/"), giving `<dir>/net_iter_<iter>`, or a prefix used as is.
 */
export async function saveCheckpoint(
  net: Net,
  dirOrPrefix: string,
  opts: SaveOptions = {},
): Promise<SavedCheckpoint> {
  const asDir = dirOrPrefix.endsWith("/") || await isDirectory(dirOrPrefix);
  const prefix = asDir ? join(dirOrPrefix, `${opts.stem ?? "net"}_iter_${net.iter}`) : toPrefix(dirOrPrefix);
  const paths = checkpointPaths(prefix);
  const withSolver = opts.solverState ?? net.solver !== null;
  if (withSolver && !net.solver) {
    throw new CheckpointError(`net "${net.name}" has no solver, so ${paths.solverState} cannot be written`);
  }
  const id = crypto.randomUUID();
  const metaJson = JSON.stringify(opts.meta ?? {});
  const { layout } = net;
  const data = await download(net.gpu, { buffer: layout.data, offset: 0, size: layout.bytes });
  const slice = (all: Float32Array, e: ParamEntry) => all.subarray(floatOffset(e), floatOffset(e) + e.count);
  const weights: [string, NamedTensor][] = layout.entries.map((e) => [e.key, {
    shape: e.decl.shape,
    data: slice(data, e),
  }]);
  await writeSafetensors(paths.weights, weights, {
    metadata: {
      format: WEIGHTS_FORMAT,
      net: net.name,
      iter: String(net.iter),
      checkpoint_id: id,
      meta: metaJson,
    },
  });
  if (!withSolver) return { prefix, weights: paths.weights, solverState: null, iter: net.iter };
  const solver = net.solver!;
  const history = await Promise.all(
    solver.history().map((buffer) => download(net.gpu, { buffer, offset: 0, size: layout.bytes })),
  );
  const tensors: [string, NamedTensor][] = [];
  history.forEach((h, k) => {
    for (const e of layout.entries) {
      if (hasHistory(e)) tensors.push([`history.${k}.${e.key}`, { shape: e.decl.shape, data: slice(h, e) }]);
    }
  });
  const policy = solver.options.policy ?? { type: "fixed" as const };
  await writeSafetensors(paths.solverState, tensors, {
    metadata: {
      format: SOLVER_FORMAT,
      iter: String(net.iter),
      lr: String(learningRate(solver.options.baseLr, policy, net.iter)),
      solver: JSON.stringify(solverConfig(solver)),
      history_count: String(history.length),
      weights: basename(paths.weights),
      checkpoint_id: id,
      meta: metaJson,
    },
  });
  return { prefix, weights: paths.weights, solverState: paths.solverState, iter: net.iter };
}

/**
 * Writes the weights file of checkpoint `prefix` from named tensors, without a net: how imported
 * weights (a Caffe model) become a checkpoint. No solver state is written, so the checkpoint
 * evaluates and seeds a new run (`--from`) but cannot be resumed. `metadata` adds string entries
 * (e.g. where the weights came from) next to the usual format, net, iteration and id.
 */
export async function saveWeights(
  prefix: string,
  tensors: Iterable<[string, NamedTensor]>,
  opts: { net: string; iter: number; metadata?: Record<string, string>; meta?: Record<string, unknown> },
): Promise<string> {
  const path = checkpointPaths(toPrefix(prefix)).weights;
  await writeSafetensors(path, tensors, {
    metadata: {
      ...opts.metadata,
      format: WEIGHTS_FORMAT,
      net: opts.net,
      iter: String(opts.iter),
      checkpoint_id: crypto.randomUUID(),
      meta: JSON.stringify(opts.meta ?? {}),
    },
  });
  return path;
}

/** Options for {@linkcode loadCheckpoint}. */
export interface LoadOptions {
  /** Demand identical tensor names and shapes (default true). False: copy what matches, re-initialise the rest. */
  strict?: boolean;
  /** Restore the solver history and iteration (default: when the net has a solver). */
  solverState?: boolean;
  /**
   * Receives the human-readable report. Default: printed to stderr when the load was not an exact
   * match (something re-initialised, ignored or reset), silent otherwise.
   */
  log?: (text: string) => void;
}

/** A parameter that was not copied from the checkpoint. */
export interface Reinitialised {
  key: string;
  /** "missing": not in the checkpoint; "shape": present with another shape. */
  reason: "missing" | "shape";
  netShape: readonly number[];
  fileShape?: readonly number[];
}

/** What a load did, tensor by tensor. */
export interface LoadReport {
  prefix: string;
  /** The net's iteration after loading (restored from the solver state when loaded). */
  iter: number;
  /** Parameters copied from the checkpoint. */
  copied: string[];
  /** Parameters re-initialised with their fillers (and their solver history zeroed). */
  reinitialised: Reinitialised[];
  /** Checkpoint tensors the net has no parameter for. */
  ignored: { key: string; shape: readonly number[] }[];
  /** Copied parameters whose solver history was zeroed (history absent, or another solver type). */
  historyReset: string[];
  /** Whether the solver history and iteration were restored. */
  solverStateLoaded: boolean;
  /** Settings saved with the solver state that differ from the net's solver (the net's win). */
  solverChanges: string[];
  /** The `meta` passed to {@linkcode saveCheckpoint} ({} when no solver state was read). */
  meta: Record<string, unknown>;
}

/** Formats a load report as a few lines (counts, then each non-copied tensor). */
export function formatLoadReport(r: LoadReport): string {
  const lines = [
    `checkpoint ${r.prefix}: copied ${r.copied.length}, re-initialised ${r.reinitialised.length}, ` +
    `ignored ${r.ignored.length}; iteration ${r.iter}` +
    (r.solverStateLoaded ? "; solver state restored" : "; solver state not loaded"),
  ];
  for (const x of r.reinitialised) {
    lines.push(
      x.reason === "shape"
        ? `  re-initialised ${x.key}: checkpoint ${fmtShape(x.fileShape!)}, net ${fmtShape(x.netShape)}`
        : `  re-initialised ${x.key} (${fmtShape(x.netShape)}): not in the checkpoint`,
    );
  }
  for (const x of r.ignored) lines.push(`  ignored ${x.key} (${fmtShape(x.shape)}): not in the net`);
  for (const k of r.historyReset) lines.push(`  solver history zeroed for ${k}`);
  for (const c of r.solverChanges) lines.push(`  solver setting changed: ${c}`);
  return lines.join("\n");
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

function parseJson(src: string, what: string, text: string | undefined): Record<string, unknown> {
  if (text === undefined) throw new CheckpointError(`${src}: metadata "${what}" is missing`);
  try {
    const v = JSON.parse(text);
    if (v === null || typeof v !== "object" || Array.isArray(v)) throw new Error("not an object");
    return v as Record<string, unknown>;
  } catch (e) {
    throw new CheckpointError(`${src}: metadata "${what}" is not a JSON object (${(e as Error).message})`);
  }
}

function parseIter(src: string, text: string | undefined): number {
  const n = Number(text);
  if (text === undefined || !Number.isSafeInteger(n) || n < 0) {
    throw new CheckpointError(
      `${src}: metadata "iter" is ${JSON.stringify(text)}, expected a non-negative integer`,
    );
  }
  return n;
}

/**
 * Loads checkpoint `prefix` (or either of its files) into `net`. See the module notes for strict
 * and non-strict loads. Returns what was copied, re-initialised and ignored.
 */
export async function loadCheckpoint(net: Net, prefix: string, opts: LoadOptions = {}): Promise<LoadReport> {
  prefix = toPrefix(prefix);
  const paths = checkpointPaths(prefix);
  const strict = opts.strict ?? true;
  const withSolver = opts.solverState ?? net.solver !== null;
  if (withSolver && !net.solver) {
    throw new CheckpointError(
      `net "${net.name}" has no solver; load ${paths.weights} with solverState: false`,
    );
  }
  const weights = await readSafetensors(paths.weights);
  let state: Awaited<ReturnType<typeof readSafetensors>> | null = null;
  if (withSolver) {
    try {
      state = await readSafetensors(paths.solverState);
    } catch (e) {
      if (e instanceof SafetensorsError && !(await exists(paths.solverState))) {
        throw new CheckpointError(
          `${paths.solverState} does not exist; load the weights alone with solverState: false`,
        );
      }
      throw e;
    }
    if (state.metadata.format !== SOLVER_FORMAT) {
      throw new CheckpointError(
        `${paths.solverState}: metadata format is ${
          JSON.stringify(state.metadata.format)
        }, expected "${SOLVER_FORMAT}"`,
      );
    }
    if (state.metadata.checkpoint_id !== weights.metadata.checkpoint_id) {
      throw new CheckpointError(
        `${paths.solverState} belongs to another save than ${paths.weights} (checkpoint ids differ; ` +
          `was a save interrupted?)`,
      );
    }
  }

  // Match parameters by name and shape.
  const { layout } = net;
  const report: LoadReport = {
    prefix,
    iter: net.iter,
    copied: [],
    reinitialised: [],
    ignored: [],
    historyReset: [],
    solverStateLoaded: false,
    solverChanges: [],
    meta: {},
  };
  const netKeys = new Set(layout.entries.map((e) => e.key));
  for (const e of layout.entries) {
    const t = weights.tensors.get(e.key);
    if (!t) report.reinitialised.push({ key: e.key, reason: "missing", netShape: e.decl.shape });
    else if (!sameShape(t.shape, e.decl.shape)) {
      report.reinitialised.push({ key: e.key, reason: "shape", netShape: e.decl.shape, fileShape: t.shape });
    } else report.copied.push(e.key);
  }
  for (const [key, t] of weights.tensors) if (!netKeys.has(key)) report.ignored.push({ key, shape: t.shape });
  if (strict && (report.reinitialised.length || report.ignored.length)) {
    const lines = [
      ...report.reinitialised.map((x) =>
        x.reason === "shape"
          ? `  ${x.key}: checkpoint ${fmtShape(x.fileShape!)}, net ${fmtShape(x.netShape)}`
          : `  ${x.key} (${fmtShape(x.netShape)}): in the net, not in the checkpoint`
      ),
      ...report.ignored.map((x) => `  ${x.key} (${fmtShape(x.shape)}): in the checkpoint, not in the net`),
    ];
    throw new CheckpointError(
      `${paths.weights} does not match net "${net.name}" (strict load; pass strict: false to copy what matches ` +
        `and re-initialise the rest):\n${lines.join("\n")}`,
    );
  }

  // Solver history: per history buffer, copied parameters take the saved history when present.
  let histories: Float32Array[] | null = null;
  if (state) {
    const solver = net.solver!;
    const saved = parseJson(paths.solverState, "solver", state.metadata.solver);
    const current = solverConfig(solver);
    for (const k of new Set([...Object.keys(saved), ...Object.keys(current)])) {
      const a = JSON.stringify(saved[k]), b = JSON.stringify(current[k]);
      if (a !== b) report.solverChanges.push(`${k}: checkpoint ${a ?? "unset"}, now ${b ?? "unset"}`);
    }
    const sameType = saved.type === solver.type &&
      Number(state.metadata.history_count) === solver.history().length;
    if (!sameType && strict) {
      throw new CheckpointError(
        `${paths.solverState} holds ${saved.type} state (${state.metadata.history_count} history buffers) but the ` +
          `net's solver is ${solver.type} (${solver.history().length}); pass strict: false to start its history at zero`,
      );
    }
    histories = solver.history().map(() => new Float32Array(layout.bytes / 4));
    const missingHistory: string[] = [];
    for (const key of report.copied) {
      const e = net.param(key);
      if (!hasHistory(e)) continue;
      for (const [k, h] of histories.entries()) {
        const t = sameType ? state.tensors.get(`history.${k}.${key}`) : undefined;
        if (t && !sameShape(t.shape, e.decl.shape)) {
          throw new CheckpointError(
            `${paths.solverState}: tensor "history.${k}.${key}" has shape ${fmtShape(t.shape)} but ` +
              `${paths.weights} has ${fmtShape(e.decl.shape)} for "${key}"`,
          );
        }
        if (t) h.set(t.data, floatOffset(e));
        else if (!report.historyReset.includes(key)) {
          report.historyReset.push(key);
          if (sameType) missingHistory.push(`history.${k}.${key}`);
        }
      }
    }
    if (strict && missingHistory.length) {
      throw new CheckpointError(
        `${paths.solverState} lacks solver history for: ${missingHistory.join(", ")}`,
      );
    }
    report.meta = parseJson(paths.solverState, "meta", state.metadata.meta);
    report.iter = parseIter(paths.solverState, state.metadata.iter);
    report.solverStateLoaded = true;
  } else if (net.solver && report.reinitialised.length) {
    // Weights only: keep the history as it is, except that re-initialised parameters start afresh.
    histories = await Promise.all(
      net.solver.history().map((buffer) => download(net.gpu, { buffer, offset: 0, size: layout.bytes })),
    );
    for (const x of report.reinitialised) {
      const e = net.param(x.key);
      for (const h of histories) h.fill(0, floatOffset(e), floatOffset(e) + e.count);
    }
  }

  // Everything is validated; now write. Parameters are assembled on the CPU and uploaded at once.
  const data = new Float32Array(layout.bytes / 4);
  for (const e of layout.entries) {
    const t = weights.tensors.get(e.key);
    const values = t && sameShape(t.shape, e.decl.shape)
      ? t.data
      : fill(e.decl.filler, e.decl.shape, { seed: net.seed, key: e.key });
    data.set(values, floatOffset(e));
  }
  upload(net.gpu, { buffer: layout.data, offset: 0, size: layout.bytes }, data);
  if (histories) {
    net.solver!.history().forEach((buffer, k) =>
      upload(net.gpu, { buffer, offset: 0, size: layout.bytes }, histories![k])
    );
  }
  net.iter = report.iter;
  await net.sync();
  const exact = !report.reinitialised.length && !report.ignored.length && !report.historyReset.length;
  if (opts.log) opts.log(formatLoadReport(report));
  else if (!exact) console.error(formatLoadReport(report));
  return report;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** A complete checkpoint found on disk. */
export interface FoundCheckpoint {
  prefix: string;
  iter: number;
}

/**
 * The complete checkpoint (weights and solver state from the same save) with the highest
 * iteration in `dir`, or null. Incomplete or unreadable pairs are skipped, so a crash during a
 * save falls back to the previous checkpoint.
 */
export async function findLatestCheckpoint(dir: string): Promise<FoundCheckpoint | null> {
  let best: FoundCheckpoint | null = null;
  let names: string[];
  try {
    names = [];
    for await (const d of Deno.readDir(dir)) if (d.isFile && d.name.endsWith(SOLVER_EXT)) names.push(d.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  names.sort();
  for (const name of names) {
    const prefix = join(dir, name.slice(0, -SOLVER_EXT.length));
    const paths = checkpointPaths(prefix);
    try {
      const [s, w] = await Promise.all([
        readSafetensorsHeader(paths.solverState),
        readSafetensorsHeader(paths.weights),
      ]);
      if (s.metadata.format !== SOLVER_FORMAT || s.metadata.checkpoint_id !== w.metadata.checkpoint_id) {
        continue;
      }
      const iter = parseIter(paths.solverState, s.metadata.iter);
      if (!best || iter > best.iter) best = { prefix, iter };
    } catch {
      continue;
    }
  }
  return best;
}
