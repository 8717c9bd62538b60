import { ReLU } from "../graph/layers/relu.ts";
import { assertClose, gradcheck, probe, randomArray } from "./gradcheck.ts";
import { reluBackwardRef, reluRef } from "./reference/activation.ts";

Deno.test("relu: GPU forward and backward match the CPU twin (exact)", async () => {
  const shape = [2, 3, 5, 7];
  const x = randomArray(2 * 3 * 5 * 7, 1);
  const p = await probe(new ReLU("relu", "x", "y"), [shape]);
  p.set([x]);
  const [y] = await p.forward();
  assertClose(y, reluRef(x), { atol: 0, rtol: 0, what: "relu forward" });
  const g = await p.backward();
  assertClose(g.bottoms[0], reluBackwardRef(x, p.r[0]), { atol: 0, rtol: 0, what: "relu backward" });
  p.net.destroy();
});

Deno.test("relu: finite-difference gradient check", async () => {
  // Keep inputs away from the kink at 0, where finite differences are meaningless.
  const x = randomArray(60, 2).map((v) => (Math.abs(v) < 0.1 ? v + 0.3 * Math.sign(v || 1) : v));
  const p = await probe(new ReLU("relu", "x", "y"), [[60]]);
  await gradcheck(p, [x]);
  p.net.destroy();
});
