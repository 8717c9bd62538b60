/**
 * Worker of the synthetic data generator: loads the assets once, then renders, encodes and
 * writes the id ranges it is sent (see generateDataset in synth_dataset.ts).
 * @module
 */

import {
  createSynthContext,
  type SynthContext,
  type SynthWorkerReply,
  type SynthWorkerRequest,
  writeSynthRange,
} from "./synth_dataset.ts";

let ctx: SynthContext | null = null;
let root = "";

function reply(m: SynthWorkerReply): void {
  self.postMessage(m);
}

self.onmessage = async (e: MessageEvent<SynthWorkerRequest>) => {
  const m = e.data;
  try {
    if (m.kind === "init") {
      ctx = createSynthContext(m.options);
      root = m.root;
      reply({ kind: "ready" });
      return;
    }
    if (!ctx) throw new Error("range before init");
    // Progress goes out in small batches: one message per sample would cost more than it says.
    let n = 0;
    await writeSynthRange(ctx, root, {
      lo: m.lo,
      hi: m.hi,
      onSample: () => {
        if (++n === 4) {
          reply({ kind: "progress", n });
          n = 0;
        }
      },
    });
    if (n > 0) reply({ kind: "progress", n });
    reply({ kind: "done" });
  } catch (err) {
    reply({ kind: "error", message: err instanceof Error ? err.stack ?? err.message : String(err) });
  }
};
