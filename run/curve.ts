/**
 * The training curve a run folder shows while it trains (`curve.svg`): losses on a log scale,
 * the training-batch errors and the held-out errors against iterations.
 * @module
 */
import { linePlotSvg, type Series } from "../io/plot.ts";
import type { RunConfig } from "./config.ts";

/** Writes the training curve: losses (log scale) and held-out errors. */
export async function writeCurve(
  path: string,
  history: Record<string, number | string>[],
  cfg: RunConfig,
): Promise<void> {
  const series = (type: string, key: string, name = key): Series => ({
    name,
    points: history.filter((r) => r.type === type && typeof r[key] === "number").map((
      r,
    ) => [r.iter as number, r[key] as number]),
  });
  const lossKeys = ["loss_2dhm", "loss_3dhm", "loss_int_2d", "loss_int_depth"].filter((k) =>
    history.some((r) => typeof r[k] === "number")
  );
  const svg = linePlotSvg([
    { title: "training losses", series: lossKeys.map((k) => series("train", k)), logY: true },
    {
      title: "MPJPE on training batches (mm)",
      series: [
        series("train", "mpjpe_rel_int", "root-rel, integral"),
        series("train", "mpjpe_rel_max", "root-rel, argmax"),
      ],
    },
    {
      title: `held-out MPJPE (mm), ${cfg.evalSamples} test samples`,
      series: [
        series("eval", "mpjpe_rel_int", "root-rel, integral"),
        series("eval", "mpjpe_rel_max", "root-rel, argmax"),
        series("eval", "pa_mpjpe_int", "PA, integral"),
      ],
    },
  ], { title: `volpose ${cfg.preset}: ${cfg.schedule.map((s) => `d${s.d2}`).join(" -> ")}` });
  await Deno.writeTextFile(path, svg);
}
