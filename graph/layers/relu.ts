/**
 * ReLU layer.
 * @module
 */
import { type BackwardContext, type ForwardContext, Layer, numel, type Shape } from "../layer.ts";
import { reluBackward, reluForward } from "../../kernels/activation.ts";

/** y = max(x, 0). */
export class ReLU extends Layer {
  readonly type = "ReLU";

  constructor(name: string, bottom: string, top: string) {
    super(name, [bottom], [top]);
  }

  setup(bottoms: readonly Shape[]): Shape[] {
    this.expectBottoms(bottoms, 1);
    return [bottoms[0]];
  }

  forward(c: ForwardContext): void {
    reluForward(c.rec, { x: c.bottoms[0].region, y: c.tops[0].region, n: numel(c.bottoms[0].shape) });
  }

  override backward(c: BackwardContext): void {
    const dx = c.bottomDiffs[0];
    if (!dx) return;
    reluBackward(c.rec, {
      x: c.bottoms[0].region,
      dy: c.topDiffs[0]!,
      dx,
      n: numel(c.bottoms[0].shape),
      accumulate: c.accumulate[0],
    });
  }
}
