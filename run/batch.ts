/**
 * The bridge from the input pipeline to a pose net: which batch fields the net takes as inputs.
 * @module
 */
import type { Net } from "../graph/net.ts";
import type { Batch } from "../stages/pipeline.ts";

/** Batch fields uploaded as net inputs, by net input name. */
export const BATCH_INPUTS = [
  "image",
  "joints2d",
  "depth",
  "gt3d",
  "aug3d",
  "camera",
  "cropToBbx",
  "bbx",
] as const;

/** Uploads a batch into a pose net's inputs. */
export function setBatch(net: Net, b: Batch): void {
  for (const k of BATCH_INPUTS) net.setInput(k, b[k]);
}
