/**
 * Where an evaluation's scored batches go besides the report: one row per sample in
 * `samples.csv`, the seed's per-sample blob dumps, and pictures with an HTML index. Each sink says
 * which blobs it needs from the next batch, takes every scored batch, and writes what it holds
 * once the report is built.
 * @module
 */
import { join } from "node:path";
import { ACTIONS, NUM_JOINTS } from "../io/joints.ts";
import { formatFixed, readSample } from "../io/sample_files.ts";
import {
  type EvalReport,
  formatReportJson,
  formatReportMarkdown,
  formatReportTable,
  meanOverJoints,
  type Method,
  METHODS,
  type Metric,
  METRICS,
} from "../io/report.ts";
import {
  drawCropOverlay,
  drawHeatmapTiles,
  drawSkeleton3d,
  type VisEntry,
  visIndexHtml,
  writeCanvasPng,
} from "../io/vis.ts";
import { HEATMAP_2D, PROB_XY, type SampleScore, type ScoredBatch } from "./eval_scorer.ts";

/** A consumer of scored batches. */
export interface EvalSink {
  /** Blobs it needs from the next batch. */
  wants(): readonly string[];
  /** Takes a scored batch (its real samples are the first `n`). */
  add(s: ScoredBatch): Promise<void>;
  /** Writes what it holds, once the report is built. */
  finish(report: EvalReport): Promise<void>;
  /** Releases its files (also after an error). */
  close(): void;
}

/** Per-method, per-metric means over the 16 joints of one sample. */
export function sampleMeans(s: SampleScore): Record<Method, Record<Metric, number>> {
  const out = {} as Record<Method, Record<Metric, number>>;
  for (const m of METHODS) {
    out[m] = {} as Record<Metric, number>;
    for (const k of METRICS) out[m][k] = meanOverJoints(s.errors[m][k]);
  }
  return out;
}

/** report.json and report.md. */
export function reportSink(outDir: string): EvalSink {
  return {
    wants: () => [],
    add: () => Promise.resolve(),
    async finish(report) {
      await Deno.writeTextFile(join(outDir, "report.json"), formatReportJson(report));
      await Deno.writeTextFile(join(outDir, "report.md"), formatReportMarkdown(report));
    },
    close() {},
  };
}

/** samples.csv: the id, the action and every method's and metric's mean error of each sample. */
export async function csvSink(outDir: string): Promise<EvalSink> {
  const file = await Deno.open(join(outDir, "samples.csv"), { write: true, create: true, truncate: true });
  const enc = new TextEncoder();
  const write = (text: string) => file.write(enc.encode(text));
  await write(["id", "action", ...METHODS.flatMap((m) => METRICS.map((k) => `${m}_${k}`))].join(",") + "\n");
  return {
    wants: () => [],
    async add(s) {
      let rows = "";
      for (let b = 0; b < s.n; b++) {
        const means = sampleMeans(s.sample(b));
        const cells = METHODS.flatMap((m) => METRICS.map((k) => means[m][k].toFixed(3)));
        rows += [s.batch.ids[b], ACTIONS[s.batch.action[b]] ?? "", ...cells].join(",") + "\n";
      }
      await write(rows);
    },
    finish: () => Promise.resolve(),
    close: () => file.close(),
  };
}

/** The seed's OutputBlob text: one row of %12.6f values. */
export function formatBlobRow(values: ArrayLike<number>): string {
  let s = "";
  for (let i = 0; i < values.length; i++) {
    s += formatFixed(Number.isFinite(values[i]) ? values[i] : 0, 12) + " ";
  }
  return s + "\n";
}

/** dump/<blob>_<id>.txt per sample and blob, as the seed's OutputBlob writes them. */
export async function dumpSink(outDir: string, blobs: readonly string[]): Promise<EvalSink> {
  const dir = join(outDir, "dump");
  await Deno.mkdir(dir, { recursive: true });
  return {
    wants: () => blobs,
    async add(s) {
      for (let b = 0; b < s.n; b++) {
        for (const name of blobs) {
          const v = s.blobs[name], w = v.length / s.batch.size;
          await Deno.writeTextFile(
            join(dir, `${name}_${s.batch.ids[b]}.txt`),
            formatBlobRow(v.subarray(b * w, (b + 1) * w)),
          );
        }
      }
    },
    finish: () => Promise.resolve(),
    close() {},
  };
}

/** What a picture of one sample needs. */
interface VisSample {
  id: number;
  action: number;
  image: Float32Array;
  gt2d: Float32Array;
  pred2d: Float32Array;
  gt3d: Float32Array;
  pred3d: Float32Array;
  hm2d: Float32Array | null;
  hm3d: Float32Array;
  errors: Record<Method, Record<Metric, number>>;
}

/** Options of {@linkcode visSink}. */
export interface VisOptions {
  /** Samples to draw (the first ones evaluated). */
  count: number;
  /** Decoder shown. */
  decoder: "max" | "int";
  /** Dataset root (for each sample's camera rotation). */
  root: string;
  /** Network input side. */
  size: number;
  channelOrder: "bgr" | "rgb";
  /** The seed's half-pixel label convention. */
  legacyNorm: boolean;
  /** Whether the net has a stage-1 2D heatmap to draw. */
  has2d: boolean;
}

/** The blobs a picture sink reads (decoded prediction, depth-summed volume, 2D heatmap). */
export function visBlobs(o: { decoder: "max" | "int"; has2d: boolean }): string[] {
  return [PROB_XY, `pred_2d_${o.decoder}`, `pred_3d_${o.decoder}`, ...(o.has2d ? [HEATMAP_2D] : [])];
}

/**
 * vis/<id>_{crop,heatmap2d,heatmap3d,skeleton3d}.png for the first samples and index.html with
 * the report's summary table.
 */
export function visSink(outDir: string, o: VisOptions): EvalSink {
  const samples: VisSample[] = [];
  const J = NUM_JOINTS, S = o.size, side = S / 4;
  return {
    wants: () => (samples.length < o.count ? visBlobs(o) : []),
    add(s) {
      for (let b = 0; b < s.n && samples.length < o.count; b++) {
        const sl = (a: Float32Array, w: number) => a.slice(b * w, (b + 1) * w);
        samples.push({
          id: s.batch.ids[b],
          action: s.batch.action[b],
          image: sl(s.batch.image, 3 * S * S),
          gt2d: sl(s.batch.joints2d, J * 2),
          pred2d: sl(s.blobs[`pred_2d_${o.decoder}`], J * 2),
          gt3d: sl(s.batch.gt3d, J * 3),
          pred3d: sl(s.blobs[`pred_3d_${o.decoder}`], J * 3),
          hm2d: o.has2d ? sl(s.blobs[HEATMAP_2D], J * side * side) : null,
          hm3d: sl(s.blobs[PROB_XY], J * side * side),
          errors: sampleMeans(s.sample(b)),
        });
      }
      return Promise.resolve();
    },
    finish: (report) => samples.length ? writeVis(outDir, samples, report, o) : Promise.resolve(),
    close() {},
  };
}

async function writeVis(
  outDir: string,
  samples: VisSample[],
  report: EvalReport,
  o: VisOptions,
): Promise<void> {
  const dir = join(outDir, "vis");
  await Deno.mkdir(dir, { recursive: true });
  const decName = o.decoder === "max" ? "argmax" : "integral";
  const entries: VisEntry[] = [];
  for (const s of samples) {
    const action = ACTIONS[s.action] ?? "unknown action";
    const e = s.errors[decName];
    const caption = `${decName}: rel ${e.mpjpe_rel.toFixed(0)} mm, pa ${e.pa_mpjpe.toFixed(0)} mm`;
    const images: { title: string; src: string }[] = [];
    const put = async (name: string, title: string, c: Parameters<typeof writeCanvasPng>[1]) => {
      await writeCanvasPng(join(dir, `${s.id}_${name}.png`), c);
      images.push({ title, src: `vis/${s.id}_${name}.png` });
    };
    await put(
      "crop",
      `input crop, ${decName} prediction and GT`,
      drawCropOverlay({
        image: s.image,
        size: o.size,
        channelOrder: o.channelOrder,
        pred: s.pred2d,
        gt: s.gt2d,
        legacy: o.legacyNorm,
        caption: `${s.id} ${action.toLowerCase()}`,
      }),
    );
    const tiles = {
      side: o.size / 4,
      image: s.image,
      size: o.size,
      channelOrder: o.channelOrder,
      gt: s.gt2d,
      legacy: o.legacyNorm,
    };
    if (s.hm2d) {
      await put(
        "heatmap2d",
        "stage-1 2D heatmaps (GT ringed)",
        drawHeatmapTiles({ ...tiles, maps: s.hm2d, title: `stage-1 2d heatmaps, sample ${s.id}` }),
      );
    }
    await put(
      "heatmap3d",
      "3D heatmaps summed over depth",
      drawHeatmapTiles({ ...tiles, maps: s.hm3d, title: `softmax volume summed over depth, sample ${s.id}` }),
    );
    let rotation: number[] | undefined;
    try {
      rotation = (await readSample(o.root, s.id)).camera.R;
    } catch { /* no camera file: the camera's own axes are used */ }
    await put(
      "skeleton3d",
      "3D, root-aligned (front, side)",
      drawSkeleton3d({ pred: s.pred3d, gt: s.gt3d, rotation, caption }),
    );
    const errors: Record<string, Record<string, number>> = {};
    for (const m of METHODS) {
      errors[m] = {};
      for (const k of METRICS) {
        errors[m][k === "mpjpe" ? "seed" : k === "mpjpe_rel" ? "rel" : "PA"] = s.errors[m][k];
      }
    }
    entries.push({ id: s.id, action, images, errors });
  }
  const html = visIndexHtml({
    title: `volpose evaluation: ${report.meta.checkpoint}`,
    summary: formatReportTable(report),
    entries,
  });
  await Deno.writeTextFile(join(outDir, "index.html"), html);
}
