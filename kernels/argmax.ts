/**
 * Argmax decoders (no backward), SEED_SPEC §4.11: ArgmaxHM on 2D maps and the 3D argmax of
 * ChaGenJointFrXYZHeatmap on joint cubes. Each group (one joint's map or cube) yields the cell
 * centre of its first maximum in row-major order, or the grid centre when nothing exceeds 1e-6.
 *
 * The default decoder reduces one group per workgroup (max value, lowest index on ties). The
 * seed's rule is a sequential scan that moves only when a value beats the running maximum
 * (starting at 0) by more than 1e-6; it differs from "first maximum" only among values within
 * 1e-6 of each other, and `legacy` runs that scan literally, one invocation per group.
 * @module
 */
import { type Binding, declare, elementwise, f32, type Recorder, type Region, u32, WG } from "./kernel.ts";
import { cellCoord, type CellGrid, type CoordOutput } from "./integral.ts";
import { type GroupLayout, LANES_WG, type ReduceLayout, reduceLayout, workgroupFold } from "./reduce.ts";
import { copiesForReading, textureDecl } from "./windows.ts";

/** Options of {@linkcode argmaxDecode}. */
export interface ArgmaxOptions extends GroupLayout {
  grid: CellGrid;
  x: Region;
  outputs: readonly CoordOutput[];
  /** The seed's sequential scan (exact near-tie behaviour, one invocation per group). */
  legacy: boolean;
  /** Reduction layout of the default decoder (default: the adapter's, see {@linkcode ReduceLayout}). */
  layout?: ReduceLayout;
}

function writes(o: ArgmaxOptions, group: string): string {
  const b = o.grid.bounds;
  const centre = [b.x, b.y, b.z].map(([lb, ub]) => f32(lb + (ub - lb) * 0.5));
  return o.outputs.map((out, k) =>
    out.axes.map((a, m) =>
      `  out${k}[${group} * ${u32(out.axes.length)} + ${u32(m)}] = select(${centre[a]}, ${
        cellCoord(o.grid, { axis: a, index: "best" })
      }, found);`
    ).join("\n")
  ).join("\n");
}

/** Records the decoder: per group, (x, y[, z]) of the first maximum into the outputs. */
export function argmaxDecode(rec: Recorder, o: ArgmaxOptions): void {
  const outs: Binding[] = o.outputs.map((_, k) => ({ name: `out${k}`, access: "read_write" }));
  const regions = [o.x, ...o.outputs.map((x) => x.region)];
  const N = o.groupSize;
  const tag = `${o.grid.depth}x${o.grid.height}x${o.grid.width} -> ${
    o.outputs.map((x) => x.axes.join("")).join(",")
  }`;
  if (o.legacy) {
    const k = elementwise(`argmax_scan ${tag}`, {
      bindings: [{ name: "x", access: "read" }, ...outs],
      n: o.groups,
      body: `  var runmax = 0.0;
  var best = 0u;
  var found = false;
  for (var k = 0u; k < ${u32(N)}; k++) {
    let v = x[i * ${u32(N)} + k];
    if (v - runmax > 1e-6) {
      runmax = v;
      best = k;
      found = true;
    }
  }
${writes(o, "i")}`,
    });
    rec.dispatch(k.src, regions, k.groups);
    return;
  }
  if (reduceLayout(rec, o.layout) === "lanes") {
    // One invocation per group: the first strictly larger value wins, so ties keep the lowest index.
    // On a CPU adapter x comes from a texture copy, four values a texel in the same order (a
    // storage load there takes a lane-by-lane path, see windows.ts).
    const views = rec.kernels.gpu.isFallback && N % 4 === 0
      ? copiesForReading(rec, [o.x], o.groups * N)
      : null;
    if (views) {
      const k = elementwise(`argmax ${tag} lanes tex`, {
        bindings: outs,
        n: o.groups,
        wg: LANES_WG,
        prelude: textureDecl(outs.length, "tx", "x_"),
        body: `  var v = -3.0e38;
  var best = 0u;
  for (var t = 0u; t < ${u32(N / 4)}; t++) {
    let q = x_4(i * ${u32(N / 4)} + t);
${
          ["x", "y", "z", "w"].map((e, j) =>
            `    if (q.${e} > v) {
      v = q.${e};
      best = 4u * t + ${u32(j)};
    }`
          ).join("\n")
        }
  }
  let found = v > 1e-6;
${writes(o, "i")}`,
      });
      rec.dispatch(k.src, [...o.outputs.map((x) => x.region), views[0]], k.groups);
      return;
    }
    const k = elementwise(`argmax ${tag} lanes`, {
      bindings: [{ name: "x", access: "read" }, ...outs],
      n: o.groups,
      wg: LANES_WG,
      body: `  var v = -3.0e38;
  var best = 0u;
  for (var k = 0u; k < ${u32(N)}; k++) {
    let xv = x[i * ${u32(N)} + k];
    if (xv > v) {
      v = xv;
      best = k;
    }
  }
  let found = v > 1e-6;
${writes(o, "i")}`,
    });
    rec.dispatch(k.src, regions, k.groups);
    return;
  }
  const gx = Math.min(o.groups, 65535), gy = Math.ceil(o.groups / 65535);
  const code = `${declare([{ name: "x", access: "read" }, ...outs])}
struct Best { v: f32, i: u32 }
// The larger value wins; on a tie, the lower index.
fn better(a: Best, b: Best) -> Best {
  if (b.v > a.v || (b.v == a.v && b.i < a.i)) { return b; }
  return a;
}
${workgroupFold({ name: "best_of", type: "Best", combine: "better(a, b)" })}
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3u, @builtin(workgroup_id) wid: vec3u,
        @builtin(num_workgroups) nwg: vec3u) {
  let g = wid.x + wid.y * nwg.x;
  if (g >= ${u32(o.groups)}) { return; }
  var v = -3.0e38;
  var idx = 0xffffffffu;
  for (var k = lid.x; k < ${u32(N)}; k += ${WG}u) {
    let xv = x[g * ${u32(N)} + k];
    if (xv > v) {
      v = xv;
      idx = k;
    }
  }
  let top = best_of(Best(v, idx), lid.x);
  if (lid.x == 0u) {
    let found = top.v > 1e-6;
    let best = top.i;
${writes(o, "g")}
  }
}`;
  rec.dispatch({ label: `argmax ${tag}`, code }, regions, [gx, gy]);
}
