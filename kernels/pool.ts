/**
 * Max pooling (Caffe geometry: ceil-mode output size, windows clipped to the image, the first
 * maximum in row-major order wins) and nearest-neighbour upsampling, forward and backward.
 *
 * The pooling backward recomputes each window's argmax from the input instead of storing it:
 * that costs no memory, and with the same WGSL function on both sides it picks exactly the
 * element the forward picked. Every gradient is gathered by the element that receives it, so no
 * two invocations write one address and the result is deterministic.
 * @module
 */
import { elementwise, type Recorder, type Region, u32 } from "./kernel.ts";
import { copiesForReading, textureDecl } from "./windows.ts";

/** Geometry of a 2-D pooling over `planes` (N*C) images of H x W. */
export interface PoolGeometry {
  planes: number;
  height: number;
  width: number;
  kernel: [number, number];
  stride: [number, number];
  pad: [number, number];
}

/**
 * Caffe's pooled extent: ceil((size + 2*pad - kernel) / stride) + 1, minus one when padding
 * would make the last window start in the padding.
 */
export function pooledSize(size: number, kernel: number, stride: number, pad: number): number {
  let out = Math.ceil((size + 2 * pad - kernel) / stride) + 1;
  if (pad > 0 && (out - 1) * stride >= size + pad) out--;
  return Math.max(out, 1);
}

function dims(g: PoolGeometry) {
  const PH = pooledSize(g.height, g.kernel[0], g.stride[0], g.pad[0]);
  const PW = pooledSize(g.width, g.kernel[1], g.stride[1], g.pad[1]);
  return { PH, PW };
}

/** WGSL: flat input index of the maximum of window (ph, pw) in the plane starting at `base`. */
function argmaxFn(g: PoolGeometry): string {
  const [KH, KW] = g.kernel, [SH, SW] = g.stride, [padH, padW] = g.pad;
  return `fn window_argmax(base: u32, ph: u32, pw: u32) -> u32 {
  let hs = i32(ph) * ${SH} - ${padH};
  let ws = i32(pw) * ${SW} - ${padW};
  let he = min(hs + ${KH}, ${g.height});
  let we = min(ws + ${KW}, ${g.width});
  let h0 = max(hs, 0);
  let w0 = max(ws, 0);
  var best = base + u32(h0 * ${g.width} + w0);
  var bv = x[best];
  for (var h = h0; h < he; h++) {
    for (var w = w0; w < we; w++) {
      let j = base + u32(h * ${g.width} + w);
      if (x[j] > bv) { bv = x[j]; best = j; }
    }
  }
  return best;
}`;
}

function checkGeometry(g: PoolGeometry): void {
  for (let a = 0; a < 2; a++) {
    if (!(g.kernel[a] >= 1 && g.stride[a] >= 1 && g.pad[a] >= 0 && g.pad[a] < g.kernel[a])) {
      throw new RangeError(
        `max pool: need kernel >= 1, stride >= 1, 0 <= pad < kernel; got kernel ${g.kernel}, stride ${g.stride}, pad ${g.pad}`,
      );
    }
  }
}

/** y[plane, ph, pw] = max over the clipped window. */
export function maxPoolForward(rec: Recorder, o: { x: Region; y: Region; geometry: PoolGeometry }): void {
  const g = o.geometry;
  checkGeometry(g);
  if (pairsFromTexture(rec, g, o.x, o.y, null)) return;
  const { PH, PW } = dims(g);
  const k = elementwise(`maxpool_fwd ${g.kernel.join("x")} s${g.stride.join("x")}`, {
    bindings: [{ name: "x", access: "read" }, { name: "y", access: "read_write" }],
    n: g.planes * PH * PW,
    prelude: argmaxFn(g),
    body: `  let pw = i % ${u32(PW)};
  let ph = (i / ${u32(PW)}) % ${u32(PH)};
  let base = (i / ${u32(PH * PW)}) * ${u32(g.height * g.width)};
  y[i] = x[window_argmax(base, ph, pw)];`,
  });
  rec.dispatch(k.src, [o.x, o.y], k.groups);
}

/**
 * dx (+)= the output gradient routed to each window's first maximum. Non-overlapping windows
 * (stride == kernel, no padding; every input in exactly one window) run one invocation per
 * window that writes its whole window; otherwise each input gathers from the windows covering it.
 */
export function maxPoolBackward(
  rec: Recorder,
  o: { x: Region; dy: Region; dx: Region; geometry: PoolGeometry; accumulate: boolean },
): void {
  const g = o.geometry;
  checkGeometry(g);
  if (pairsFromTexture(rec, g, o.x, o.dx, { dy: o.dy, accumulate: o.accumulate })) return;
  const { PH, PW } = dims(g);
  const [KH, KW] = g.kernel, [SH, SW] = g.stride, [PadH, PadW] = g.pad;
  const acc = o.accumulate ? "dx[j] + " : "";
  const tiled = SH === KH && SW === KW && PadH === 0 && PadW === 0;
  const bindings = [{ name: "x", access: "read" as const }, { name: "dy", access: "read" as const }, {
    name: "dx",
    access: "read_write" as const,
  }];
  const k = tiled
    ? elementwise(`maxpool_bwd tiled ${KH}x${KW}${o.accumulate ? " acc" : ""}`, {
      bindings,
      n: g.planes * PH * PW,
      prelude: argmaxFn(g),
      body: `  let pw = i % ${u32(PW)};
  let ph = (i / ${u32(PW)}) % ${u32(PH)};
  let base = (i / ${u32(PH * PW)}) * ${u32(g.height * g.width)};
  let best = window_argmax(base, ph, pw);
  let g = dy[i];
  let he = min((ph + 1u) * ${u32(KH)}, ${u32(g.height)});
  let we = min((pw + 1u) * ${u32(KW)}, ${u32(g.width)});
  for (var h = ph * ${u32(KH)}; h < he; h++) {
    for (var w = pw * ${u32(KW)}; w < we; w++) {
      let j = base + h * ${u32(g.width)} + w;
      dx[j] = ${acc}select(0.0, g, j == best);
    }
  }`,
    })
    : elementwise(`maxpool_bwd gather ${KH}x${KW} s${SH}x${SW}${o.accumulate ? " acc" : ""}`, {
      bindings,
      n: g.planes * g.height * g.width,
      prelude: argmaxFn(g),
      body: `  let w = i32(i % ${u32(g.width)}) + ${PadW};
  let h = i32((i / ${u32(g.width)}) % ${u32(g.height)}) + ${PadH};
  let plane = i / ${u32(g.height * g.width)};
  let base = plane * ${u32(g.height * g.width)};
  let ph0 = select((h - ${KH}) / ${SH} + 1, 0, h < ${KH});
  let pw0 = select((w - ${KW}) / ${SW} + 1, 0, w < ${KW});
  let ph1 = min(h / ${SH} + 1, ${PH});
  let pw1 = min(w / ${SW} + 1, ${PW});
  var s = 0.0;
  for (var ph = ph0; ph < ph1; ph++) {
    for (var pw = pw0; pw < pw1; pw++) {
      if (window_argmax(base, u32(ph), u32(pw)) == i) {
        s += dy[(plane * ${u32(PH)} + u32(ph)) * ${u32(PW)} + u32(pw)];
      }
    }
  }
  let j = i;
  dx[j] = ${acc}s;`,
    });
  rec.dispatch(k.src, [o.x, o.dy, o.dx], k.groups);
}

/**
 * The 2x2/2 pooling of images whose sides are even and whose rows are whole vec4s, on a CPU
 * adapter: x is copied into a texture (a storage load there takes a lane-by-lane path, see
 * windows.ts) and each invocation takes two neighbouring windows from two texels, one per input
 * row. Forward (`bwd` null): writes both maxima to `out` (y). Backward: writes the two rows of dx
 * as vec4s, dy at each window's first maximum and zeros elsewhere. The maxima are picked in the
 * order and with the comparison of `window_argmax` (row-major, a later value wins only when
 * greater), so ties and results are those of the general kernels. False, with nothing recorded,
 * when the shapes or regions do not allow it.
 */
function pairsFromTexture(
  rec: Recorder,
  g: PoolGeometry,
  x: Region,
  out: Region,
  bwd: { dy: Region; accumulate: boolean } | null,
): boolean {
  const tiled = g.kernel.every((k) => k === 2) && g.stride.every((s) => s === 2) &&
    g.pad.every((p) => p === 0);
  if (!rec.kernels.gpu.isFallback || !tiled || g.height % 2 !== 0 || g.width % 4 !== 0) return false;
  if (bwd && out.offset % 16 !== 0) return false;
  const views = copiesForReading(rec, [x], g.planes * g.height * g.width);
  if (!views) return false;
  const W = g.width, PH = g.height / 2, PW = W / 2, Q = W / 4;
  // Window maxima in window_argmax's order: (0,0), (0,1), (1,0), (1,1); k is the winner's index.
  // The left window is texels' components x, y; the right one z, w.
  const pick = (side: "l" | "r") => {
    const [u, v] = side === "l" ? ["x", "y"] : ["z", "w"];
    const m = `m${side}`, k = `k${side}`;
    return `  var ${m} = a.${u};
  var ${k} = 0u;
  if (a.${v} > ${m}) { ${m} = a.${v}; ${k} = 1u; }
  if (b.${u} > ${m}) { ${m} = b.${u}; ${k} = 2u; }
  if (b.${v} > ${m}) { ${m} = b.${v}; ${k} = 3u; }`;
  };
  const head = `  let q = i % ${u32(Q)};
  let ph = (i / ${u32(Q)}) % ${u32(PH)};
  let plane = i / ${u32(Q * PH)};
  let t = (plane * ${u32(g.height * W)} + ph * ${u32(2 * W)}) / 4u + q;
  let a = x_4(t);
  let b = x_4(t + ${u32(Q)});
${pick("l")}
${pick("r")}
  let o = (plane * ${u32(PH)} + ph) * ${u32(PW)} + 2u * q;`;
  const n = g.planes * PH * Q;
  if (!bwd) {
    const k = elementwise(`maxpool_fwd 2x2 s2x2 pairs tex`, {
      bindings: [{ name: "y", access: "read_write" }],
      n,
      prelude: textureDecl(1, "xt", "x_"),
      body: `${head}
  y[o] = ml;
  y[o + 1u] = mr;`,
    });
    rec.dispatch(k.src, [out, views[0]], k.groups);
    return true;
  }
  const acc = (at: string) => (bwd.accumulate ? `dx4[${at}] + ` : "");
  const row = (first: number) =>
    `vec4<f32>(select(0.0, gl, kl == ${first}u), select(0.0, gl, kl == ${first + 1}u), ` +
    `select(0.0, gr, kr == ${first}u), select(0.0, gr, kr == ${first + 1}u))`;
  const k = elementwise(`maxpool_bwd 2x2 pairs tex${bwd.accumulate ? " acc" : ""}`, {
    bindings: [{ name: "dy", access: "read" }, { name: "dx4", access: "read_write", type: "vec4<f32>" }],
    n,
    prelude: textureDecl(2, "xt", "x_"),
    body: `${head}
  let gl = dy[o];
  let gr = dy[o + 1u];
  dx4[t] = ${acc("t")}${row(0)};
  dx4[t + ${u32(Q)}] = ${acc(`t + ${u32(Q)}`)}${row(2)};`,
  });
  rec.dispatch(k.src, [bwd.dy, out, views[0]], k.groups);
  return true;
}

/** Shape of a nearest-neighbour upsampling of `planes` images of H x W by an integer factor. */
export interface UpsampleGeometry {
  planes: number;
  height: number;
  width: number;
  factor: number;
}

/** y[plane, h, w] = x[plane, h / f, w / f]. */
export function upsampleNearestForward(
  rec: Recorder,
  o: { x: Region; y: Region; geometry: UpsampleGeometry },
): void {
  const { planes, height: H, width: W, factor: f } = o.geometry;
  const k = elementwise(`upsample_nearest_fwd x${f}`, {
    bindings: [{ name: "x", access: "read" }, { name: "y", access: "read_write" }],
    n: planes * H * W * f * f,
    body: `  let w = i % ${u32(W * f)};
  let h = (i / ${u32(W * f)}) % ${u32(H * f)};
  let plane = i / ${u32(H * W * f * f)};
  y[i] = x[(plane * ${u32(H)} + h / ${u32(f)}) * ${u32(W)} + w / ${u32(f)}];`,
  });
  rec.dispatch(k.src, [o.x, o.y], k.groups);
}

/** dx[plane, h, w] (+)= sum of dy over the f x f block it was copied to. */
export function upsampleNearestBackward(
  rec: Recorder,
  o: { dy: Region; dx: Region; geometry: UpsampleGeometry; accumulate: boolean },
): void {
  const { planes, height: H, width: W, factor: f } = o.geometry;
  const k = elementwise(`upsample_nearest_bwd x${f}${o.accumulate ? " acc" : ""}`, {
    bindings: [{ name: "dy", access: "read" }, { name: "dx", access: "read_write" }],
    n: planes * H * W,
    body: `  let w = i % ${u32(W)};
  let h = (i / ${u32(W)}) % ${u32(H)};
  let plane = i / ${u32(H * W)};
  var s = 0.0;
  for (var a = 0u; a < ${u32(f)}; a++) {
    let row = ((plane * ${u32(H)} + h) * ${u32(f)} + a) * ${u32(W * f)} + w * ${u32(f)};
    for (var b = 0u; b < ${u32(f)}; b++) { s += dy[row + b]; }
  }
  dx[i] = ${o.accumulate ? "dx[i] + " : ""}s;`,
  });
  rec.dispatch(k.src, [o.dy, o.dx], k.groups);
}
