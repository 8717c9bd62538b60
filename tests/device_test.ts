/** Opening the device: the worker threads a CPU adapter is given. */
import assert from "node:assert/strict";
import { cpuWorkerThreads, describeGpu, sharedGpu } from "../kernels/device.ts";

Deno.test("CPU adapter threads: twice the cores up to 32; a user's LP_NUM_THREADS wins", () => {
  assert.equal(cpuWorkerThreads(2), 4);
  assert.equal(cpuWorkerThreads(1), 2);
  assert.equal(cpuWorkerThreads(0), 2, "an unknown core count still gets a pool");
  assert.equal(cpuWorkerThreads(64), 32);
  assert.equal(cpuWorkerThreads(2, "3"), 3);
  assert.equal(cpuWorkerThreads(2, "0"), 0, "0: kernels on the queue thread");
  assert.equal(cpuWorkerThreads(2, "-1"), undefined, "Mesa's own rule for what is not a count");
  assert.equal(cpuWorkerThreads(2, "many"), undefined);
  assert.equal(cpuWorkerThreads(2, ""), undefined);
});

Deno.test("a CPU adapter runs with the thread count that was set before it was created", async () => {
  const gpu = await sharedGpu();
  if (!gpu.isFallback) {
    assert.equal(gpu.cpuThreads, undefined, "GPU adapters report no CPU worker threads");
    return;
  }
  // Set by openGpu when the user had not; a user's value that is not a count leaves Mesa's rule.
  const set = Deno.env.get("LP_NUM_THREADS");
  assert.ok(set !== undefined, "openGpu sets LP_NUM_THREADS for a CPU adapter");
  assert.equal(gpu.cpuThreads, cpuWorkerThreads(1, set));
  if (gpu.cpuThreads) {
    assert.match(describeGpu(gpu), new RegExp(`; ${gpu.cpuThreads} CPU worker threads$`));
  } else if (gpu.cpuThreads === 0) {
    assert.match(describeGpu(gpu), /; kernels on the queue thread \(LP_NUM_THREADS=0\)$/);
  }
});
