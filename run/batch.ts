/**
 * The bridge from the input pipeline to a pose net: every per-sample field of a batch is the net
 * input of the same name.
 * @module
 */
import type { Net } from "../graph/net.ts";
import { SAMPLE_FIELD_NAMES } from "../io/sample_fields.ts";
import type { Batch } from "../stages/pipeline.ts";

/** Uploads a batch into a pose net's inputs. */
export function setBatch(net: Net, b: Batch): void {
  for (const f of SAMPLE_FIELD_NAMES) net.setInput(f, b[f]);
}
