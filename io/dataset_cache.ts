/**
 * The default dataset: when a task is given no --data, it trains on a synthetic dataset that is
 * generated on first use into a cache folder ($VOLPOSE_CACHE, else `<project>/.cache/`) and reused
 * afterwards. A dataset counts as present only when its completion marker exists: generation
 * happens in a temporary folder that is renamed into place after the marker is written, so an
 * interrupted run (or two runs at once) never leaves a half-written dataset behind.
 * @module
 */

import { join } from "node:path";
import { generateDataset, stderrProgressBar, SYNTH_VERSION, type SynthOptions } from "./synth_dataset.ts";

/** Size and seed of the default dataset (about a minute or two to generate on 2 CPU cores). */
export const DEFAULT_SYNTH_OPTIONS: Readonly<SynthOptions> = { train: 6000, test: 1000, seed: 1 };

/** Name of the completion marker inside a cached dataset. */
export const COMPLETE_MARKER = ".volpose_complete.json";

/** Temporary folders older than this are leftovers of killed runs and get removed. */
const STALE_TMP_MS = 6 * 3600 * 1000;

/** The cache folder: $VOLPOSE_CACHE, else `.cache/` in the project root. */
export function cacheRoot(): string {
  const env = Deno.env.get("VOLPOSE_CACHE");
  if (env) return env;
  return join(new URL("..", import.meta.url).pathname, ".cache");
}

/** Folder name of a synthetic dataset with these options (changes with the generator version). */
export function synthDatasetName(opts: SynthOptions): string {
  return `synth-v${SYNTH_VERSION}-train${opts.train}-test${opts.test}-seed${opts.seed}`;
}

interface Marker {
  version: number;
  options: SynthOptions;
  numSamples: number;
  seconds: number;
  created: string;
}

function readMarker(dir: string): Marker | null {
  try {
    return JSON.parse(Deno.readTextFileSync(join(dir, COMPLETE_MARKER)));
  } catch {
    return null;
  }
}

function isComplete(dir: string, opts: SynthOptions): boolean {
  const m = readMarker(dir);
  return m !== null && m.version === SYNTH_VERSION && m.options?.train === opts.train &&
    m.options?.test === opts.test && m.options?.seed === opts.seed;
}

async function removeStaleTemps(root: string, name: string): Promise<void> {
  try {
    for await (const e of Deno.readDir(root)) {
      if (!e.isDirectory || !e.name.startsWith(`${name}.tmp-`)) continue;
      const p = join(root, e.name);
      const age = Date.now() - ((await Deno.stat(p)).mtime?.getTime() ?? 0);
      if (age > STALE_TMP_MS) await Deno.remove(p, { recursive: true });
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

/** Options of ensureDefaultDataset. */
export interface EnsureDatasetOptions extends Partial<SynthOptions> {
  /** Where messages go (default: stderr). */
  log?: (message: string) => void;
  /** Draw a progress bar on stderr while generating (default true). */
  progress?: boolean;
  /** Generator workers (default: CPU cores, at most 8). */
  workers?: number;
}

/**
 * Returns the path of the default synthetic dataset, generating it first when the cache does not
 * hold a complete copy (and saying so through `log`).
 */
export async function ensureDefaultDataset(opts: EnsureDatasetOptions = {}): Promise<string> {
  const log = opts.log ?? ((m: string) => console.error(m));
  const synth: SynthOptions = {
    train: opts.train ?? DEFAULT_SYNTH_OPTIONS.train,
    test: opts.test ?? DEFAULT_SYNTH_OPTIONS.test,
    seed: opts.seed ?? DEFAULT_SYNTH_OPTIONS.seed,
  };
  const root = cacheRoot();
  const name = synthDatasetName(synth);
  const dir = join(root, name);
  if (isComplete(dir, synth)) return dir;

  await Deno.mkdir(root, { recursive: true });
  await removeStaleTemps(root, name);
  log(
    `No dataset given: generating the default synthetic dataset (${synth.train} train + ${synth.test} test ` +
      `samples, seed ${synth.seed}) into ${dir}. This happens once; later runs reuse it.`,
  );
  const tmp = `${dir}.tmp-${Deno.pid}`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  const { manifest, seconds } = await generateDataset(tmp, {
    ...synth,
    workers: opts.workers,
    name,
    onProgress: opts.progress === false ? undefined : stderrProgressBar("synth"),
  });
  const marker: Marker = {
    version: SYNTH_VERSION,
    options: synth,
    numSamples: manifest.numSamples,
    seconds,
    created: new Date().toISOString(),
  };
  await Deno.writeTextFile(join(tmp, COMPLETE_MARKER), JSON.stringify(marker, null, 2) + "\n");
  // Another process may have finished the same dataset meanwhile; then ours is redundant.
  if (isComplete(dir, synth)) {
    await Deno.remove(tmp, { recursive: true });
  } else {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.rename(tmp, dir);
  }
  log(`Generated ${manifest.numSamples} samples in ${seconds.toFixed(0)} s: ${dir}`);
  return dir;
}
