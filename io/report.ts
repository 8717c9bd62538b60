/**
 * Evaluation reports: per-sample per-joint errors (computed on the GPU by the metric layers) are
 * summed here per action and per joint, then turned into one report object that is written as
 * JSON, as Markdown and as a terminal table.
 *
 * Three error definitions are reported for every method (SEED_SPEC §7, §8.5):
 * - `mpjpe`: the seed's figure, absolute camera-frame error against the back-projected GT
 *   (`aug3d`), root depth taken from the GT;
 * - `mpjpe_rel`: the standard root-relative MPJPE against the true GT;
 * - `pa_mpjpe`: MPJPE after similarity Procrustes alignment against the true GT.
 *
 * Per-action figures follow the usual Human3.6M protocol: average within each action, then the
 * unweighted mean of the actions present. "Overall" is the mean over every sample.
 * @module
 */

import { ACTIONS, JOINT_LABELS, NUM_JOINTS } from "./joints.ts";

/** The prediction methods of a report: the two decoders and the mean-pose yardstick. */
export const METHODS = ["argmax", "integral", "baseline"] as const;
/** A prediction method. */
export type Method = typeof METHODS[number];

/** The error definitions of a report. */
export const METRICS = ["mpjpe", "mpjpe_rel", "pa_mpjpe"] as const;
/** An error definition. */
export type Metric = typeof METRICS[number];

/** Short column titles. */
export const METRIC_TITLES: Record<Metric, string> = { mpjpe: "seed", mpjpe_rel: "rel", pa_mpjpe: "PA" };
/** Method titles. */
export const METHOD_TITLES: Record<Method, string> = {
  argmax: "argmax",
  integral: "integral",
  baseline: "mean-pose baseline",
};

/** One value per metric (mm); null when nothing was measured. */
export type MetricValues = Record<Metric, number | null>;

/** Errors of every method over one group of samples. */
export interface ErrorRow {
  /** Samples in the group. */
  n: number;
  /** 3D argmax decoding. */
  argmax: MetricValues;
  /** x50-softmax integral (soft-argmax) decoding. */
  integral: MetricValues;
  /** The mean training pose at the GT root. */
  baseline: MetricValues;
}

/** Per-joint errors of one sample, by method and metric ([J] each, mm). */
export type SampleErrors = Record<Method, Record<Metric, ArrayLike<number>>>;

/** What was evaluated and how; written verbatim into the report. */
export interface EvalMeta {
  /** Run folder. */
  run: string;
  /** Checkpoint prefix. */
  checkpoint: string;
  /** Training iteration of the checkpoint. */
  iter: number;
  /** Dataset root. */
  data: string;
  /** "random", "full" or "protocol2". */
  subset: string;
  /** Seed of the random subset (random only). */
  seed?: number;
  /** Depth bins of the evaluated stage. */
  d2: number;
  /** Samples per forward pass. */
  batch: number;
  /** Batch-norm statistics at test time. */
  stats: "batch" | "running";
  /** Flip test on. */
  flip: boolean;
  /** Samples added to fill the last batch (their results are dropped). */
  padded: number;
  /** Training samples averaged into the baseline pose. */
  baselineSamples: number;
  /** Seconds of the whole evaluation. */
  seconds: number;
  /** ISO time of the report. */
  date: string;
  /** Legacy switches of the run (SEED_SPEC §8). */
  legacy: Record<string, boolean>;
}

/** A complete evaluation report. */
export interface EvalReport {
  /** Format tag. */
  format: "volpose-eval/1";
  /** What was evaluated and how. */
  meta: EvalMeta;
  /** Mean over every sample. */
  overall: ErrorRow;
  /** Unweighted mean of the per-action means (actions with samples only); n counts their samples. */
  actionMean: ErrorRow & { actions: number };
  /** The 15 Human3.6M actions in order; actions without samples have n = 0 and null values. */
  actions: (ErrorRow & { action: string })[];
  /** Samples whose id maps to no action (no range files). */
  unassigned: number;
  /** Per joint, over every sample (the root scores 0 in the root-relative metrics by definition). */
  joints: (Omit<ErrorRow, "n"> & { joint: string })[];
  /**
   * Root-relative mean absolute error per camera axis [x, y, z] (mm; x right, y down, z depth) over
   * every sample and joint, by method: whether the error lies in the image plane or in depth.
   * Absent when the samples came without per-axis errors.
   */
  axes?: Record<Method, [number, number, number]>;
  /**
   * Where the integral prediction's error lies: its root-relative MPJPE (mm, over every sample)
   * with the GT depth in place of the predicted depth (what remains is the image-plane part) and
   * with the GT 2D joints in place of the predicted ones (what remains is the depth part). Absent
   * when the samples came without them.
   */
  parts?: { gtDepth: number; gt2d: number };
}

function emptyValues(): MetricValues {
  return { mpjpe: null, mpjpe_rel: null, pa_mpjpe: null };
}

/** Mean over the joints of one sample's errors. */
export function meanOverJoints(e: ArrayLike<number>): number {
  let s = 0;
  for (let j = 0; j < e.length; j++) s += e[j];
  return e.length ? s / e.length : NaN;
}

/**
 * Sums per-sample per-joint errors by action and joint. Feed it with {@linkcode add} as batches
 * come back from the GPU and call {@linkcode build} at the end.
 */
export class ErrorAccumulator {
  /** Joints per sample. */
  readonly joints: number;
  /** Action names, indexed by a sample's action number. */
  readonly actions: readonly string[];
  /** [method][metric] -> Float64Array((actions + 1) * J): per action (last = unassigned) and joint. */
  readonly #sums: Record<Method, Record<Metric, Float64Array>>;
  readonly #counts: Float64Array;
  /** [method] -> summed per-axis errors (x, y, z) and how many joints they cover. */
  readonly #axes = Object.fromEntries(METHODS.map((m) => [m, new Float64Array(3)])) as Record<
    Method,
    Float64Array
  >;
  #axisJoints = 0;
  /** Summed per-joint errors of the integral prediction with GT depth / GT 2D, and their joints. */
  readonly #parts = { gtDepth: 0, gt2d: 0 };
  #partJoints = 0;

  /** An empty accumulator (16 joints and the 15 Human3.6M actions by default). */
  constructor(opts: { joints?: number; actions?: readonly string[] } = {}) {
    this.joints = opts.joints ?? NUM_JOINTS;
    this.actions = opts.actions ?? ACTIONS;
    const n = (this.actions.length + 1) * this.joints;
    const make = () =>
      Object.fromEntries(METRICS.map((k) => [k, new Float64Array(n)])) as Record<Metric, Float64Array>;
    this.#sums = { argmax: make(), integral: make(), baseline: make() };
    this.#counts = new Float64Array(this.actions.length + 1);
  }

  /** Samples added so far. */
  get samples(): number {
    return this.#counts.reduce((a, b) => a + b, 0);
  }

  /**
   * Adds one sample; `action` indexes `actions`, anything else counts as unassigned. `axes` holds
   * each method's [J, 3] root-relative per-axis errors, `parts` the integral prediction's [J]
   * root-relative errors with the GT depth and with the GT 2D; give each for every sample or for none.
   */
  add(
    action: number,
    errors: SampleErrors,
    axes?: Record<Method, ArrayLike<number>>,
    parts?: { gtDepth: ArrayLike<number>; gt2d: ArrayLike<number> },
  ): void {
    const a = action >= 0 && action < this.actions.length ? action : this.actions.length;
    const J = this.joints;
    for (const m of METHODS) {
      for (const k of METRICS) {
        const src = errors[m][k], dst = this.#sums[m][k];
        if (src.length !== J) {
          throw new RangeError(`ErrorAccumulator: ${m} ${k} has ${src.length} joints, expected ${J}`);
        }
        for (let j = 0; j < J; j++) dst[a * J + j] += src[j];
      }
    }
    if (axes) {
      for (const m of METHODS) {
        if (axes[m].length !== 3 * J) {
          throw new RangeError(`ErrorAccumulator: ${m} axes has ${axes[m].length} values, expected ${3 * J}`);
        }
        for (let i = 0; i < 3 * J; i++) this.#axes[m][i % 3] += axes[m][i];
      }
      this.#axisJoints += J;
    }
    if (parts) {
      for (const k of ["gtDepth", "gt2d"] as const) {
        if (parts[k].length !== J) {
          throw new RangeError(`ErrorAccumulator: parts ${k} has ${parts[k].length} joints, expected ${J}`);
        }
        for (let j = 0; j < J; j++) this.#parts[k] += parts[k][j];
      }
      this.#partJoints += J;
    }
    this.#counts[a]++;
  }

  /** Mean error of each method and metric over the given action slots and joints. */
  #row(slots: number[], joints?: number[]): ErrorRow {
    const J = this.joints;
    const js = joints ?? Array.from({ length: J }, (_, j) => j);
    const n = slots.reduce((s, a) => s + this.#counts[a], 0);
    const row: ErrorRow = { n, argmax: emptyValues(), integral: emptyValues(), baseline: emptyValues() };
    if (n === 0) return row;
    for (const m of METHODS) {
      for (const k of METRICS) {
        let s = 0;
        for (const a of slots) for (const j of js) s += this.#sums[m][k][a * J + j];
        row[m][k] = s / (n * js.length);
      }
    }
    return row;
  }

  /** Mean errors over every sample added so far. */
  overall(): ErrorRow {
    return this.#row(Array.from({ length: this.actions.length + 1 }, (_, a) => a));
  }

  /** The report of everything added so far. */
  build(meta: EvalMeta): EvalReport {
    const A = this.actions.length;
    const allSlots = Array.from({ length: A + 1 }, (_, a) => a);
    const actions = this.actions.map((action, a) => ({ action, ...this.#row([a]) }));
    const present = actions.filter((r) => r.n > 0);
    const actionMean: ErrorRow & { actions: number } = {
      actions: present.length,
      n: present.reduce((s, r) => s + r.n, 0),
      argmax: emptyValues(),
      integral: emptyValues(),
      baseline: emptyValues(),
    };
    if (present.length) {
      for (const m of METHODS) {
        for (const k of METRICS) {
          actionMean[m][k] = present.reduce((s, r) => s + r[m][k]!, 0) / present.length;
        }
      }
    }
    const joints = Array.from({ length: this.joints }, (_, j) => {
      const { n: _n, ...rest } = this.#row(allSlots, [j]);
      return { joint: JOINT_LABELS[j] ?? `joint_${j}`, ...rest };
    });
    return {
      format: "volpose-eval/1",
      meta,
      overall: this.#row(allSlots),
      actionMean,
      actions,
      unassigned: this.#counts[A],
      joints,
      ...(this.#axisJoints > 0
        ? {
          axes: Object.fromEntries(
            METHODS.map((m) => [m, Array.from(this.#axes[m], (v) => v / this.#axisJoints)]),
          ) as Record<Method, [number, number, number]>,
        }
        : {}),
      ...(this.#partJoints > 0
        ? {
          parts: {
            gtDepth: this.#parts.gtDepth / this.#partJoints,
            gt2d: this.#parts.gt2d / this.#partJoints,
          },
        }
        : {}),
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Formatting

function fmt(v: number | null, width: number): string {
  return (v === null || !Number.isFinite(v) ? "-" : v.toFixed(1)).padStart(width);
}

interface TableRow {
  label: string;
  n?: number;
  values: Omit<ErrorRow, "n">;
}

const COL = 7;

function groupHeader(labelWidth: number, withN: boolean): string[] {
  const lead = " ".repeat(labelWidth + (withN ? 7 : 0));
  const span = METRICS.length * COL;
  const titles = METHODS.map((m) => {
    const t = METHOD_TITLES[m] === "mean-pose baseline" ? "baseline" : METHOD_TITLES[m];
    return ` ${t.padStart(Math.floor((span + t.length) / 2)).padEnd(span)}`;
  }).join(" |");
  const cols = METHODS.map(() => " " + METRICS.map((k) => METRIC_TITLES[k].padStart(COL)).join("")).join(
    " |",
  );
  return [`${lead}${titles}`, `${"".padEnd(labelWidth)}${withN ? "n".padStart(7) : ""}${cols}`];
}

function textRow(r: TableRow, labelWidth: number, withN: boolean): string {
  const cells = METHODS.map((m) => " " + METRICS.map((k) => fmt(r.values[m][k], COL)).join("")).join(" |");
  return `${r.label.padEnd(labelWidth)}${withN ? String(r.n ?? "").padStart(7) : ""}${cells}`;
}

function actionRows(rep: EvalReport): TableRow[] {
  const rows: TableRow[] = rep.actions.map((a) => ({ label: a.action, n: a.n, values: a }));
  rows.push({
    label: `mean of ${rep.actionMean.actions} actions`,
    n: rep.actionMean.n,
    values: rep.actionMean,
  });
  if (rep.unassigned > 0) rows.push({ label: "(no action)", n: rep.unassigned, values: emptyRowValues() });
  rows.push({ label: "overall", n: rep.overall.n, values: rep.overall });
  return rows;
}

function emptyRowValues(): Omit<ErrorRow, "n"> {
  return { argmax: emptyValues(), integral: emptyValues(), baseline: emptyValues() };
}

function statsWords(meta: EvalMeta): string {
  return meta.stats === "batch" ? "batch-norm statistics of each batch" : "running batch-norm statistics";
}

/** One line describing what was evaluated. */
export function describeEval(meta: EvalMeta): string {
  const subset = meta.subset === "random" ? `random subset (seed ${meta.seed})` : meta.subset;
  return `checkpoint ${meta.checkpoint} (iteration ${meta.iter}, d2 ${meta.d2}); ${subset}; ` +
    `batch ${meta.batch}, ${statsWords(meta)}${meta.flip ? ", flip test" : ""}`;
}

/** The report as fixed-width text tables (per action with mean and overall, then per joint). */
export function formatReportTable(rep: EvalReport): string {
  const W = 22;
  const lines = [
    describeEval(rep.meta),
    `MPJPE in mm. seed: absolute, vs back-projected GT (the seed's figure); rel: root-relative; ` +
    `PA: after Procrustes alignment.`,
    "",
    ...groupHeader(W, true),
  ];
  const rows = actionRows(rep);
  rows.forEach((r, i) => {
    if (i === rep.actions.length) lines.push("-".repeat(lines[lines.length - 1].length));
    lines.push(textRow(r, W, true));
  });
  lines.push("", ...groupHeader(W, true));
  for (const j of rep.joints) lines.push(textRow({ label: j.joint, n: rep.overall.n, values: j }, W, true));
  if (rep.axes) {
    lines.push(
      "",
      `root-relative error per axis (mean |difference|, mm)${"x".padStart(9)}${"y".padStart(7)}${
        "z".padStart(7)
      }`,
    );
    for (const m of METHODS) {
      lines.push(`  ${m.padEnd(W + 29)}${rep.axes[m].map((v) => fmt(v, 7)).join("")}`);
    }
  }
  if (rep.parts) lines.push("", partsSentence(rep));
  return lines.join("\n");
}

/** Where the integral prediction's error lies, in one sentence (terminal and Markdown). */
function partsSentence(rep: EvalReport): string {
  const p = rep.parts!, all = rep.overall.integral.mpjpe_rel;
  return `integral root-relative MPJPE ${fmt(all, 0).trim()} mm; with the GT depth (the predicted 2D kept) ` +
    `${fmt(p.gtDepth, 0).trim()} mm, with the GT 2D (the predicted depth kept) ${fmt(p.gt2d, 0).trim()} mm`;
}

function mdTable(rows: TableRow[], first: string): string {
  const head = [first, "n", ...METHODS.flatMap((m) => METRICS.map((k) => `${m} ${METRIC_TITLES[k]}`))];
  const out = [`| ${head.join(" | ")} |`, `|${head.map((_, i) => (i === 0 ? "---" : "---:")).join("|")}|`];
  for (const r of rows) {
    const cells = METHODS.flatMap((m) => METRICS.map((k) => fmt(r.values[m][k], 0)));
    out.push(`| ${[r.label, String(r.n ?? ""), ...cells].join(" | ")} |`);
  }
  return out.join("\n");
}

/** The report as Markdown: settings, a headline table, per-action and per-joint tables. */
export function formatReportMarkdown(rep: EvalReport): string {
  const m = rep.meta;
  const o = rep.overall, am = rep.actionMean;
  const headline = (k: Metric) =>
    `| ${METRIC_TITLES[k]} | ${fmt(o.argmax[k], 0)} | ${fmt(o.integral[k], 0)} | ${fmt(o.baseline[k], 0)} | ${
      fmt(am.argmax[k], 0)
    } | ${fmt(am.integral[k], 0)} |`;
  return [
    `# Evaluation report`,
    "",
    `- run: \`${m.run}\``,
    `- checkpoint: \`${m.checkpoint}\` (iteration ${m.iter}, d2 = ${m.d2})`,
    `- data: \`${m.data}\`, subset: ${m.subset}${m.subset === "random" ? ` (seed ${m.seed})` : ""}, ` +
    `${o.n} samples${m.padded ? ` (+${m.padded} padding, dropped)` : ""}`,
    `- batch ${m.batch}, ${statsWords(m)}, flip test ${m.flip ? "on" : "off"}`,
    `- legacy switches: ${
      Object.entries(m.legacy).filter(([, v]) => v).map(([k]) => k).join(", ") || "none"
    }`,
    `- baseline: the mean root-relative training pose (${m.baselineSamples} training samples) placed at ` +
    `each sample's GT root`,
    `- ${m.date}, ${m.seconds.toFixed(1)} s`,
    "",
    "MPJPE in mm. *seed*: absolute camera-frame error against the back-projected GT, as the seed " +
    "computes it; *rel*: root-relative against the true GT; *PA*: after Procrustes alignment.",
    "",
    "## Summary",
    "",
    "| metric | argmax | integral | baseline | argmax (mean of actions) | integral (mean of actions) |",
    "|---|---:|---:|---:|---:|---:|",
    ...METRICS.map(headline),
    "",
    ...(rep.axes
      ? [
        "Root-relative error per camera axis (mean absolute difference, mm; x right, y down, z depth):",
        "",
        "| method | x | y | z |",
        "|---|---:|---:|---:|",
        ...METHODS.map((k) => `| ${k} | ${rep.axes![k].map((v) => fmt(v, 0)).join(" | ")} |`),
        "",
      ]
      : []),
    ...(rep.parts ? [`Where the error lies: ${partsSentence(rep)}.`, ""] : []),
    "## Per action",
    "",
    mdTable(actionRows(rep), "action"),
    "",
    "## Per joint",
    "",
    mdTable(rep.joints.map((j) => ({ label: j.joint, n: o.n, values: j })), "joint"),
    "",
  ].join("\n");
}

/** The report as JSON text (NaN never appears: missing values are null). */
export function formatReportJson(rep: EvalReport): string {
  return JSON.stringify(rep, (_k, v) => (typeof v === "number" && !Number.isFinite(v) ? null : v), 2) + "\n";
}
