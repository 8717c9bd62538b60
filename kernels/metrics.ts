/**
 * Pose error metrics on [B, J, 3] joints in mm (SEED_SPEC §7, §8.5): per-sample per-joint
 * Euclidean errors in three frames, and their reductions.
 *
 * - "mpjpe": absolute camera frame, no alignment (the seed's error(mm)_3d_s2_*).
 * - "mpjpeRel": root-relative; each pose has its own root joint subtracted.
 * - "paMpjpe": after a per-sample similarity Procrustes alignment of the prediction onto the GT
 *   (rotation without reflection, isotropic scale, translation).
 *
 * The alignment runs one invocation per sample. The 3x3 cross-covariance M = Yᵀ X (Y prediction,
 * X GT, both centred and scaled to unit Frobenius norm) is decomposed by one-sided (Hestenes)
 * Jacobi: column rotations make M V orthogonal, so M V = U Σ without ever forming Mᵀ M, which
 * would square the condition number in f32. With V and U made proper rotations (the third left
 * vector is u1 × u2, so the third singular value may come out negative), R = U Vᵀ is the best
 * rotation, its trace term tr = Σ uᵢ · M vᵢ, and the scale is tr |X| / |Y| (Umeyama/Kabsch).
 * @module
 */
import { declare, elementwise, f32, type Recorder, type Region, u32 } from "./kernel.ts";
import { recordSum } from "./reduce.ts";

/** Which frame a pose error is measured in. */
export type PoseMetricKind = "mpjpe" | "mpjpeRel" | "paMpjpe";

/**
 * Records root-relative errors per camera axis: out[B, J, 3] = |(P_j - P_root) - (G_j - G_root)|
 * component by component (x right, y down, z depth), which tells whether a pose error lies in
 * the image plane or in depth.
 */
export function poseAxisErrors(
  rec: Recorder,
  io: { pred: Region; gt: Region; out: Region; batch: number; joints: number; root: number },
): void {
  const J = u32(io.joints);
  const k = elementwise("pose_errors relAxes", {
    bindings: [{ name: "p", access: "read" }, { name: "g", access: "read" }, {
      name: "out",
      access: "read_write",
    }],
    n: io.batch * io.joints,
    body: `  let r = (i / ${J}) * ${J} + ${u32(io.root)};
  for (var c = 0u; c < 3u; c++) {
    out[i * 3u + c] = abs((p[i * 3u + c] - p[r * 3u + c]) - (g[i * 3u + c] - g[r * 3u + c]));
  }`,
  });
  rec.dispatch(k.src, [io.pred, io.gt, io.out], k.groups);
}

/** Options of {@linkcode poseErrors}. */
export interface PoseErrorsIo {
  /** [B, J, 3] predicted joints. */
  pred: Region;
  /** [B, J, 3] reference joints. */
  gt: Region;
  /** [B, J] errors in the units of the inputs. */
  out: Region;
  batch: number;
  joints: number;
  kind: PoseMetricKind;
  /** Root joint for "mpjpeRel". */
  root: number;
}

/** Records per-sample per-joint errors of one kind. */
export function poseErrors(rec: Recorder, io: PoseErrorsIo): void {
  if (io.kind === "paMpjpe") {
    procrustesErrors(rec, io);
    return;
  }
  const J = io.joints;
  const rel = io.kind === "mpjpeRel";
  const k = elementwise(`pose_errors ${io.kind}`, {
    bindings: [{ name: "p", access: "read" }, { name: "g", access: "read" }, {
      name: "out",
      access: "read_write",
    }],
    n: io.batch * J,
    prelude: `fn at(buf: u32, k: u32) -> vec3f {
  if (buf == 0u) { return vec3f(p[k * 3u], p[k * 3u + 1u], p[k * 3u + 2u]); }
  return vec3f(g[k * 3u], g[k * 3u + 1u], g[k * 3u + 2u]);
}`,
    body: rel
      ? `  let r = (i / ${u32(J)}) * ${u32(J)} + ${u32(io.root)};
  out[i] = length((at(0u, i) - at(0u, r)) - (at(1u, i) - at(1u, r)));`
      : `  out[i] = length(at(0u, i) - at(1u, i));`,
  });
  rec.dispatch(k.src, [io.pred, io.gt, io.out], k.groups);
}

const PA_WG = 64;

/** Records PA-MPJPE per-joint errors, one invocation per sample. */
function procrustesErrors(rec: Recorder, io: PoseErrorsIo): void {
  const J = u32(io.joints);
  const code = `${
    declare([{ name: "pred", access: "read" }, { name: "gt", access: "read" }, {
      name: "out",
      access: "read_write",
    }])
  }

// One Hestenes step on columns (p, q) of W = M V and of V: rotate so that W's columns become orthogonal.
fn jacobi(wp: ptr<function, vec3f>, wq: ptr<function, vec3f>, vp: ptr<function, vec3f>, vq: ptr<function, vec3f>) {
  let alpha = dot(*wp, *wp);
  let beta = dot(*wq, *wq);
  let gamma = dot(*wp, *wq);
  // Below f32 resolution the columns are as orthogonal as they will get (and zeta^2 could overflow).
  if (abs(gamma) <= 1e-7 * sqrt(alpha * beta)) { return; }
  let zeta = (beta - alpha) / (2.0 * gamma);
  let t = select(1.0, -1.0, zeta < 0.0) / (abs(zeta) + sqrt(1.0 + zeta * zeta));
  let c = inverseSqrt(1.0 + t * t);
  let s = c * t;
  let a = *wp;
  let b = *wq;
  *wp = c * a - s * b;
  *wq = s * a + c * b;
  let va = *vp;
  let vb = *vq;
  *vp = c * va - s * vb;
  *vq = s * va + c * vb;
}

fn swap(a: ptr<function, vec3f>, b: ptr<function, vec3f>) {
  let t = *a;
  *a = *b;
  *b = t;
}

@compute @workgroup_size(${PA_WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  let n = gid.x;
  if (n >= ${u32(io.batch)}) { return; }
  var P: array<vec3f, ${J}>;
  var G: array<vec3f, ${J}>;
  var mp = vec3f(0.0);
  var mg = vec3f(0.0);
  for (var j = 0u; j < ${J}; j++) {
    let o = (n * ${J} + j) * 3u;
    P[j] = vec3f(pred[o], pred[o + 1u], pred[o + 2u]);
    G[j] = vec3f(gt[o], gt[o + 1u], gt[o + 2u]);
    mp += P[j];
    mg += G[j];
  }
  mp /= ${f32(io.joints)};
  mg /= ${f32(io.joints)};
  var sp = 0.0;
  var sg = 0.0;
  for (var j = 0u; j < ${J}; j++) {
    P[j] -= mp;
    G[j] -= mg;
    sp += dot(P[j], P[j]);
    sg += dot(G[j], G[j]);
  }
  let np = sqrt(sp);
  let ng = sqrt(sg);
  let ip = select(0.0, 1.0 / np, np > 0.0);
  let ig = select(0.0, 1.0 / ng, ng > 0.0);
  // Columns of M = Y^T X: column c is sum_j y_j x_j[c] (unit-norm y and x keep M of order 1).
  var w0 = vec3f(0.0);
  var w1 = vec3f(0.0);
  var w2 = vec3f(0.0);
  for (var j = 0u; j < ${J}; j++) {
    let y = P[j] * ip;
    let x = G[j] * ig;
    w0 += y * x.x;
    w1 += y * x.y;
    w2 += y * x.z;
  }
  var v0 = vec3f(1.0, 0.0, 0.0);
  var v1 = vec3f(0.0, 1.0, 0.0);
  var v2 = vec3f(0.0, 0.0, 1.0);
  // Cyclic sweeps converge quadratically; 3x3 needs about four, ten leaves a wide margin.
  for (var sweep = 0u; sweep < 10u; sweep++) {
    jacobi(&w0, &w1, &v0, &v1);
    jacobi(&w0, &w2, &v0, &v2);
    jacobi(&w1, &w2, &v1, &v2);
  }
  if (dot(w0, w0) < dot(w1, w1)) { swap(&w0, &w1); swap(&v0, &v1); }
  if (dot(w0, w0) < dot(w2, w2)) { swap(&w0, &w2); swap(&v0, &v2); }
  if (dot(w1, w1) < dot(w2, w2)) { swap(&w1, &w2); swap(&v1, &v2); }
  // Reflection fix: make V proper, then U = [u0, u1, u0 x u1] is proper too and the smallest
  // singular value takes whatever sign makes M = U diag(s0, s1, s2') V^T hold.
  if (dot(v0, cross(v1, v2)) < 0.0) {
    v2 = -v2;
    w2 = -w2;
  }
  let l0 = length(w0);
  var u0 = vec3f(1.0, 0.0, 0.0);
  if (l0 > 0.0) { u0 = w0 / l0; }
  var u1 = w1 - dot(u0, w1) * u0;
  let l1 = length(u1);
  if (l1 > 1e-12) {
    u1 /= l1;
  } else {
    // Collinear poses: any direction orthogonal to u0 is optimal.
    u1 = normalize(cross(u0, select(vec3f(1.0, 0.0, 0.0), vec3f(0.0, 1.0, 0.0), abs(u0.x) > 0.9)));
  }
  let u2 = cross(u0, u1);
  let tr = dot(u0, w0) + dot(u1, w1) + dot(u2, w2);
  let scale = select(0.0, tr * ng / np, np > 0.0);
  for (var j = 0u; j < ${J}; j++) {
    // y R with R = sum_i u_i v_i^T acting on row vectors.
    let y = P[j];
    let aligned = scale * (dot(y, u0) * v0 + dot(y, u1) * v1 + dot(y, u2) * v2);
    out[n * ${J} + j] = length(aligned - G[j]);
  }
}`;
  rec.dispatch({ label: "pose_errors paMpjpe", code }, [io.pred, io.gt, io.out], [
    Math.ceil(io.batch / PA_WG),
  ]);
}

/** out[j] = mean over the batch of errors[n, j] (summed in sample order: deterministic). */
export function perJointMean(
  rec: Recorder,
  io: { errors: Region; out: Region; batch: number; joints: number },
): void {
  const J = u32(io.joints);
  const k = elementwise("per_joint_mean", {
    bindings: [{ name: "e", access: "read" }, { name: "out", access: "read_write" }],
    n: io.joints,
    body: `  var acc = 0.0;
  for (var n = 0u; n < ${u32(io.batch)}; n++) { acc += e[n * ${J} + i]; }
  out[i] = acc / ${f32(io.batch)};`,
  });
  rec.dispatch(k.src, [io.errors, io.out], k.groups);
}

/** out[0] = mean of all B * J errors. */
export function meanError(
  rec: Recorder,
  io: { errors: Region; out: Region; partials: Region; count: number },
): void {
  recordSum(rec, {
    label: "mean_error",
    n: io.count,
    inputs: [{ name: "e", access: "read", region: io.errors }],
    term: "e[i]",
    partials: io.partials,
    out: io.out,
    scale: 1 / io.count,
  });
}
