/**
 * The floors import downward only: tasks -> run -> graph | stages -> kernels | io. Every relative
 * import of every source file is checked against that table, and no task imports another task.
 */
import assert from "node:assert/strict";
import { dirname, join, relative } from "node:path";

const ROOT = new URL("..", import.meta.url).pathname;

/** What each floor may import, besides itself. */
const MAY_IMPORT: Record<string, string[]> = {
  kernels: [],
  io: [],
  graph: ["kernels", "io"],
  stages: ["io"],
  run: ["graph", "stages", "kernels", "io"],
  tasks: ["run", "graph", "stages", "kernels", "io"],
};

function* sources(dir: string): Generator<string> {
  for (const e of Deno.readDirSync(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) yield* sources(p);
    else if (e.name.endsWith(".ts")) yield p;
  }
}

Deno.test("layering: every floor imports only the floors below it; tasks import no other task", () => {
  const wrong: string[] = [];
  for (const floor of Object.keys(MAY_IMPORT)) {
    for (const file of sources(join(ROOT, floor))) {
      const text = Deno.readTextFileSync(file);
      for (const m of text.matchAll(/^(?:import|export)[^"']*from\s+["'](\.[^"']+)["']/gm)) {
        const target = relative(ROOT, join(dirname(file), m[1]));
        const to = target.split("/")[0];
        const from = relative(ROOT, file);
        const allowed = to === floor
          ? !(floor === "tasks" && dirname(target) === "tasks")
          : MAY_IMPORT[floor].includes(to);
        if (!allowed) wrong.push(`${from} imports ${target}`);
      }
    }
  }
  assert.deepEqual(wrong, []);
});
