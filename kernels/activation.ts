/**
 * ReLU forward and backward.
 * @module
 */
import { elementwise, type Recorder, type Region } from "./kernel.ts";

/** y = max(x, 0) over n elements. */
export function reluForward(rec: Recorder, io: { x: Region; y: Region; n: number }): void {
  const k = elementwise("relu_fwd", {
    bindings: [{ name: "x", access: "read" }, { name: "y", access: "read_write" }],
    n: io.n,
    body: "  y[i] = max(x[i], 0.0);",
  });
  rec.dispatch(k.src, [io.x, io.y], k.groups);
}

/** dx (+)= dy where x > 0. */
export function reluBackward(
  rec: Recorder,
  io: { x: Region; dy: Region; dx: Region; n: number; accumulate: boolean },
): void {
  const k = elementwise(`relu_bwd${io.accumulate ? " acc" : ""}`, {
    bindings: [{ name: "x", access: "read" }, { name: "dy", access: "read" }, {
      name: "dx",
      access: "read_write",
    }],
    n: io.n,
    body: `  let g = select(0.0, dy[i], x[i] > 0.0);
  dx[i] = ${io.accumulate ? "dx[i] + " : ""}g;`,
  });
  rec.dispatch(k.src, [io.x, io.dy, io.dx], k.groups);
}
