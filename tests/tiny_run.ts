/** The smallest real run the training and evaluation tests share: the tiny preset at a fraction of its width. */
import { type RunConfig, runConfig, type RunOverrides } from "../run/config.ts";

/** A tiny-preset run config at 32 px and 8 channels, batch 2, logging every iteration, no periodic eval. */
export function tinyRunConfig(data: string, over: Omit<RunOverrides, "data"> = {}): RunConfig {
  return runConfig("tiny", {
    data,
    model: { inputSize: 32, features: 8, stem: [8, 8], link: 8 },
    batch: 2,
    display: 1,
    snapshot: 100,
    evalEvery: 0,
    workers: 0,
    ...over,
  });
}
