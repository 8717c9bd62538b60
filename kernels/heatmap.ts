/**
 * Ground-truth heatmaps rendered on the GPU from joint coordinates (SEED_SPEC §4.7, §4.8), so a
 * batch ships 48 floats per sample instead of a 16 MB volume. One invocation per output value;
 * every value is written (zeros included) because arena buffers are shared between blobs.
 *
 * Clean placement puts a joint at norm coordinate p on the continuous cell coordinate p*S - 0.5,
 * the inverse of the decoders' cell centres (k + 0.5)/S, and picks the depth bin whose centre
 * (k + 0.5)/D is nearest, clamping out-of-range depth to the first or last bin. `legacy`
 * reproduces the seed: centre trunc(p*S + 0.5) (a +half-cell bias against every decoder, §8.2),
 * the "first matching fine bin, else bin 1" depth rule and truncation toward zero (§8.16).
 * @module
 */
import { type Binding, elementwise, f32, type Recorder, type Region, u32 } from "./kernel.ts";
import { LANES_WG, largestDivisorUpTo, reduceLayout } from "./reduce.ts";

/** The 2D renderers of GenHeatmapAllChannels. */
export type Heatmap2DKind = "baseline" | "cpm" | "plain" | "binary";

/** Default sigma per renderer: cells (baseline), crop pixels (cpm), norm units (plain, binary). */
export const DEFAULT_SIGMA: Readonly<Record<Heatmap2DKind, number>> = {
  baseline: 2,
  cpm: 7,
  plain: 2 / 64,
  binary: 2 / 64,
};

/** WGSL running `body` (written for unit `e`) for units e0 .. e0 + run - 1, or once when run is 1. */
function walkRun(run: number, body: string): string {
  if (run === 1) return `  let e = e0;\n${body}`;
  return `  for (var e = e0; e < e0 + ${u32(run)}; e++) {
${body.split("\n").map((l) => `  ${l}`).join("\n")}
  }`;
}

/** Options of {@linkcode renderHeatmaps2D}. */
export interface Heatmap2DOptions {
  /** Norm 2D joints [B,J,2] (crop px / crop side). */
  coords: Region;
  /** Output [B,J,S,S]. */
  out: Region;
  batch: number;
  /** Joints per sample J. */
  joints: number;
  /** Heatmap side S. */
  size: number;
  kind: Heatmap2DKind;
  /** Gaussian sigma in the renderer's unit (see {@linkcode DEFAULT_SIGMA}). */
  sigma: number;
  /** Crop side in pixels (cpm only; the stride is crop / size). Default 256. */
  crop?: number;
  legacy: boolean;
}

/** Records the 2D target render. */
export function renderHeatmaps2D(rec: Recorder, o: Heatmap2DOptions): void {
  const S = o.size, C = o.crop ?? 256, stride = C / S;
  const inv2s2 = f32(1 / (2 * o.sigma * o.sigma));
  let body: string;
  if (o.kind === "baseline") {
    const centre = o.legacy
      ? "let cx = trunc(px * SF + 0.5);\n  let cy = trunc(py * SF + 0.5);"
      : "let cx = px * SF - 0.5;\n  let cy = py * SF - 0.5;";
    body = `${centre}
  let dx = f32(col) - cx;
  let dy = f32(row) - cy;
  var v = 0.0;
  if (abs(dx) <= ${f32(3 * o.sigma)} && abs(dy) <= ${f32(3 * o.sigma)}) {
    v = exp(-(dx * dx + dy * dy) * ${inv2s2});
  }`;
  } else if (o.kind === "cpm") {
    // CPM's grid starts at stride/2 - 0.5 px (pixel centres at integers); clean uses the
    // decoders' cell centres (k + 0.5) * stride.
    const start = o.legacy ? stride / 2 - 0.5 : stride / 2;
    body = `let dx = ${f32(start)} + f32(col) * ${f32(stride)} - px * ${f32(C)};
  let dy = ${f32(start)} + f32(row) * ${f32(stride)} - py * ${f32(C)};
  let e = (dx * dx + dy * dy) * ${inv2s2};
  let v = select(0.0, min(exp(-e), 1.0), e <= 4.6052);`;
  } else {
    const off = o.legacy ? "" : " + 0.5";
    body = `let dx = (f32(col)${off}) / SF - px;
  let dy = (f32(row)${off}) / SF - py;
  let d2 = dx * dx + dy * dy;
  let v = ${o.kind === "plain" ? `exp(-d2 * ${inv2s2})` : `select(0.0, 1.0, sqrt(d2) < ${f32(o.sigma)})`};`;
  }
  // Four columns per invocation where the side allows, stored as one vec4; with the lanes layout
  // (CPU adapters) an invocation walks a run of `run` such units of one joint's map, loading the
  // joint once (each lane's storage load takes the lane-by-lane path there, see windows.ts). Every
  // value is the same per-cell function of (col, row, joint), so the target is the same bit for bit.
  const V = S % 4 === 0 && o.out.offset % 16 === 0 ? 4 : 1;
  const units = S * S / V;
  const run = reduceLayout(rec) === "lanes" ? largestDivisorUpTo(units, 64) : 1;
  const unit = `  let col = (e % ${u32(S / V)}) * ${u32(V)};
  let row = (e / ${u32(S / V)}) % ${u32(S)};
  out[e] = ${
    V === 4
      ? "vec4<f32>(cell(col, row, px, py), cell(col + 1u, row, px, py), cell(col + 2u, row, px, py), " +
        "cell(col + 3u, row, px, py))"
      : "cell(col, row, px, py)"
  };`;
  const k = elementwise(
    `heatmap2d_${o.kind}${o.legacy ? " legacy" : ""} S${S}${V === 4 ? " v4" : ""}${
      run > 1 ? ` run${run}` : ""
    }`,
    {
      bindings: [
        { name: "joints", access: "read" },
        { name: "out", access: "read_write", type: V === 4 ? "vec4<f32>" : "f32" },
      ],
      n: o.batch * o.joints * units / run,
      wg: run > 1 ? LANES_WG : undefined,
      prelude: `const SF = ${f32(S)};
fn cell(col: u32, row: u32, px: f32, py: f32) -> f32 {
  ${body}
  return v;
}`,
      body: `  let e0 = i * ${u32(run)};
  let bj = e0 / ${u32(units)};
  let px = joints[2u * bj];
  let py = joints[2u * bj + 1u];
${walkRun(run, unit)}`,
    },
  );
  rec.dispatch(k.src, [o.coords, o.out], k.groups);
}

/** The depth extent of a joint's Gaussian in a D-bin volume (§4.8 step 4). */
export interface DepthWindow {
  /** Number of slices written around the centre bin (odd). */
  size: number;
  /** Slices on each side of the centre. */
  half: number;
  /** Depth sigma in bins: size / 6. */
  sigmaZ: number;
}

/**
 * The seed's depth window for `depthBins` bins: size = 2*floor((6*sigma*D/R + 1)/2) + 1 with R
 * the fine resolution (64), so the Gaussian spans the same depth fraction at every D.
 */
export function depthWindow(
  depthBins: number,
  opts: { sigma?: number; fineBins?: number } = {},
): DepthWindow {
  const sigma = opts.sigma ?? 2, R = opts.fineBins ?? 64;
  const size = 2 * Math.floor((6 * sigma * depthBins / R + 1) / 2) + 1;
  return { size, half: Math.floor(size / 2), sigmaZ: size / 6 };
}

/** Options of {@linkcode renderVolume}. */
export interface VolumeOptions {
  /** Norm 2D joints [B,J,2]. */
  coords: Region;
  /** Normalised depth [B,J,k] in [0,1]; the last of each joint's k values is used (as the seed). */
  depth: Region;
  /** Output [B, J*D, S, S], channel j*D + d. */
  out: Region;
  batch: number;
  /** Joints per sample J. */
  joints: number;
  size: number;
  depthBins: number;
  /** Values per joint in `depth` (default 1). */
  depthStride?: number;
  /** xy sigma in cells (default 2). */
  sigma?: number;
  /** The seed's fine depth resolution R (default 64). */
  fineBins?: number;
  /** Clean mode only: centre depth at z*D - 0.5 (sub-bin) instead of the nearest bin. */
  subBinDepth?: boolean;
  legacy: boolean;
}

/** Records the 3D volumetric target render. */
export function renderVolume(rec: Recorder, o: VolumeOptions): void {
  const S = o.size, D = o.depthBins, K = o.depthStride ?? 1, R = o.fineBins ?? 64;
  const sigma = o.sigma ?? 2;
  const win = depthWindow(D, { sigma, fineBins: R });
  let centre: string, reach: number;
  if (o.legacy) {
    // Fine bin: first b in 1..R with (b-1)/R <= z <= b/R, which is max(1, ceil(z*R)) inside
    // [0,1] and bin 1 outside it; then the 1-based coarse bin ceil(b*D/R).
    centre = `let cx = trunc(px * SF + 0.5);
  let cy = trunc(py * SF + 0.5);
  var fine = 1u;
  if (z >= 0.0 && z <= 1.0) { fine = u32(max(1.0, ceil(z * ${f32(R)}))); }
  let cz = f32((fine * ${u32(D)} + ${u32(R - 1)}) / ${u32(R)}) - 1.0;`;
    reach = win.half;
  } else {
    const cz = o.subBinDepth ? `z * ${f32(D)} - 0.5` : `floor(z * ${f32(D)})`;
    centre = `let cx = px * SF - 0.5;
  let cy = py * SF - 0.5;
  let cz = clamp(${cz}, 0.0, ${f32(D - 1)});`;
    // A sub-bin centre keeps the same number of slices as the seed's window.
    reach = o.subBinDepth ? win.half + 0.5 : win.half;
  }
  // Four columns per invocation where the side allows: the joint's centre, the row's offset and
  // the slice's Gaussian factor are computed once for all four, and the store is one vec4. Each
  // value keeps the per-element expression, so the target is the same bit for bit.
  const V = S % 4 === 0 && o.out.offset % 16 === 0 ? 4 : 1;
  const bindings: Binding[] = [
    { name: "joints", access: "read" },
    { name: "depth", access: "read" },
    { name: "out", access: "read_write", type: V === 4 ? "vec4<f32>" : "f32" },
  ];
  const r2 = f32(1 / (2 * sigma * sigma)), box = f32(3 * sigma);
  // With the lanes layout (CPU adapters) an invocation walks a run of `run` units of one joint's
  // volume, loading the joint and computing its centre once: there each lane's storage load takes
  // the lane-by-lane path (see windows.ts). Every value keeps its expression.
  const units = D * S * S / V;
  const run = reduceLayout(rec) === "lanes" ? largestDivisorUpTo(units, 64) : 1;
  const cols = Array.from({ length: V }, (_, c) =>
    `  let dx${c} = f32(col + ${u32(c)}) - cx;
  let v${c} = select(0.0, exp(-(dx${c} * dx${c} + dy * dy) * ${r2}) * gz, inside && abs(dx${c}) <= ${box});`)
    .join("\n");
  const cell = `  let col = (e % ${u32(S / V)}) * ${u32(V)};
  let row = (e / ${u32(S / V)}) % ${u32(S)};
  let d = (e / ${u32(S * S / V)}) % ${u32(D)};
  let dy = f32(row) - cy;
  let dz = f32(d) - cz;
  let inside = abs(dy) <= ${box} && abs(dz) <= ${f32(reach)};
  let gz = exp(-dz * dz * ${f32(1 / (2 * win.sigmaZ * win.sigmaZ))});
${cols}
  out[e] = ${V === 4 ? "vec4<f32>(v0, v1, v2, v3)" : "v0"};`;
  const k = elementwise(
    `volume_target D${D} S${S}${o.legacy ? " legacy" : ""}${o.subBinDepth ? " subbin" : ""}${
      V === 4 ? " v4" : ""
    }${run > 1 ? ` run${run}` : ""}`,
    {
      bindings,
      n: o.batch * o.joints * units / run,
      wg: run > 1 ? LANES_WG : undefined,
      prelude: `const SF = ${f32(S)};`,
      body: `  let e0 = i * ${u32(run)};
  let bj = e0 / ${u32(units)};
  let px = joints[2u * bj];
  let py = joints[2u * bj + 1u];
  let z = depth[bj * ${u32(K)} + ${u32(K - 1)}];
  ${centre}
${walkRun(run, cell)}`,
    },
  );
  rec.dispatch(k.src, [o.coords, o.depth, o.out], k.groups);
}
