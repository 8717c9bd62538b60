/**
 * Pose metrics (SEED_SPEC §7, §8.5), forward only. Both layers take `pred` and `gt` as
 * [B, J, 3] joints in mm and measure one or more of:
 *
 * - `mpjpe`: absolute camera-frame MPJPE, mean_nj |P_nj - G_nj|, as the seed computes it. For
 *   seed parity pass the back-projected prediction (DepthDecode -> GenPredMono3D, legacy flags as
 *   wanted) and `aug3d` as `gt`; the clean counterpart passes the same prediction built with
 *   `cropToBbx` and the true `gt3d`. The GT root depth enters the prediction, so this is not a
 *   standard metric (§8.5).
 * - `mpjpeRel`: standard root-relative MPJPE: each pose's root joint (default ROOT_JOINT) is
 *   subtracted before comparing; pass the back-projected prediction and the true `gt3d`. The root
 *   joint itself scores 0 and is included in the means (J joints).
 * - `paMpjpe`: MPJPE after per-sample similarity Procrustes alignment of the prediction onto the
 *   GT (rotation with the reflection fixed, isotropic scale, translation); same pair as
 *   `mpjpeRel`.
 *
 * {@linkcode PoseMetrics} reduces to scalar tops (accumulated on the GPU, averaged by
 * `net.readScalars()` over the passes since the last read): a [1] mean per metric and a [J]
 * per-joint mean per metric. {@linkcode PoseErrors} outputs the raw [B, J] errors so evaluation
 * can aggregate per action or per subject.
 * @module
 */
import { ROOT_JOINT } from "../../io/joints.ts";
import {
  meanError,
  perJointMean,
  poseAxisErrors,
  poseErrors,
  type PoseMetricKind,
} from "../../kernels/metrics.ts";
import { partialCount } from "../../kernels/reduce.ts";
import { type ForwardContext, Layer, type SetupContext, type Shape, ShapeError } from "../layer.ts";

const KINDS: readonly PoseMetricKind[] = ["mpjpe", "mpjpeRel", "paMpjpe"];

function checkPair(layer: Layer, bottoms: readonly Shape[], root: number): [number, number] {
  const s = bottoms[0];
  if (bottoms.length !== 2) throw new ShapeError(layer.name, "number of inputs", "2", String(bottoms.length));
  if (s.length !== 3 || s[2] !== 3) throw new ShapeError(layer.name, "pred", "B x J x 3", s.join("x"));
  if (bottoms[1].length !== 3 || bottoms[1].some((d, i) => d !== s[i])) {
    throw new ShapeError(layer.name, "gt (must match pred)", s.join("x"), bottoms[1].join("x"));
  }
  if (!Number.isInteger(root) || root < 0 || root >= s[1]) {
    throw new ShapeError(layer.name, "root joint", `an index below ${s[1]}`, String(root));
  }
  return [s[0], s[1]];
}

/** Tops of {@linkcode PoseMetrics}; give at least one. */
export interface PoseMetricTops {
  /** [1] absolute MPJPE. */
  mpjpe?: string;
  /** [1] root-relative MPJPE. */
  mpjpeRel?: string;
  /** [1] PA-MPJPE. */
  paMpjpe?: string;
  /** [J] per-joint absolute MPJPE. */
  mpjpeJoints?: string;
  /** [J] per-joint root-relative MPJPE. */
  mpjpeRelJoints?: string;
  /** [J] per-joint PA-MPJPE. */
  paMpjpeJoints?: string;
}

/** Options of {@linkcode PoseMetrics}. */
export interface PoseMetricsOptions {
  pred: string;
  gt: string;
  tops: PoseMetricTops;
  /** Root joint for `mpjpeRel` (default ROOT_JOINT). */
  root?: number;
}

interface Output {
  kind: PoseMetricKind;
  perJoint: boolean;
}

/** Scalar pose metrics: means and per-joint means of MPJPE, root-relative MPJPE and PA-MPJPE. */
export class PoseMetrics extends Layer {
  readonly type = "PoseMetrics";
  override readonly scalarTops = true;
  readonly root: number;
  readonly #outputs: Output[];
  readonly #kinds: PoseMetricKind[];

  constructor(name: string, o: PoseMetricsOptions) {
    const outputs: (Output & { top: string })[] = [];
    for (const kind of KINDS) {
      const mean = o.tops[kind], joints = o.tops[`${kind}Joints`];
      if (mean) outputs.push({ kind, perJoint: false, top: mean });
      if (joints) outputs.push({ kind, perJoint: true, top: joints });
    }
    if (!outputs.length) throw new ShapeError(name, "tops", "at least one metric", "none");
    super(name, [o.pred, o.gt], outputs.map((x) => x.top));
    this.root = o.root ?? ROOT_JOINT;
    this.#outputs = outputs.map(({ kind, perJoint }) => ({ kind, perJoint }));
    this.#kinds = KINDS.filter((k) => outputs.some((x) => x.kind === k));
  }

  override propagates(): boolean {
    return false;
  }

  setup(bottoms: readonly Shape[], ctx: SetupContext): Shape[] {
    const [B, J] = checkPair(this, bottoms, this.root);
    ctx.state("partials", partialCount(B * J));
    for (const k of this.#kinds) ctx.state(`errors ${k}`, B * J);
    return this.#outputs.map((o) => (o.perJoint ? [J] : [1]));
  }

  forward(c: ForwardContext): void {
    const [B, J] = c.bottoms[0].shape;
    const errors = new Map<PoseMetricKind, number>();
    this.#kinds.forEach((kind, k) => {
      errors.set(kind, k + 1);
      poseErrors(c.rec, {
        pred: c.bottoms[0].region,
        gt: c.bottoms[1].region,
        out: c.states[k + 1],
        batch: B,
        joints: J,
        kind,
        root: this.root,
      });
    });
    this.#outputs.forEach((o, t) => {
      const e = c.states[errors.get(o.kind)!];
      const out = c.tops[t].region;
      if (o.perJoint) perJointMean(c.rec, { errors: e, out, batch: B, joints: J });
      else meanError(c.rec, { errors: e, out, partials: c.states[0], count: B * J });
    });
  }
}

/** Options of {@linkcode PoseErrors}. */
export interface PoseErrorsOptions {
  pred: string;
  gt: string;
  /**
   * [B, J] outputs, one per wanted metric, and `relAxes`: [B, J, 3] root-relative errors per
   * camera axis (absolute differences); give at least one.
   */
  tops: { mpjpe?: string; mpjpeRel?: string; paMpjpe?: string; relAxes?: string };
  root?: number;
}

/** Per-sample per-joint errors [B, J] (mm) of each requested metric, for per-action aggregation. */
export class PoseErrors extends Layer {
  readonly type = "PoseErrors";
  readonly root: number;
  readonly #kinds: PoseMetricKind[];
  readonly #axes: boolean;

  constructor(name: string, o: PoseErrorsOptions) {
    const kinds = KINDS.filter((k) => o.tops[k]);
    const axes = o.tops.relAxes !== undefined;
    if (!kinds.length && !axes) throw new ShapeError(name, "tops", "at least one metric", "none");
    super(name, [o.pred, o.gt], [...kinds.map((k) => o.tops[k]!), ...(axes ? [o.tops.relAxes!] : [])]);
    this.root = o.root ?? ROOT_JOINT;
    this.#kinds = kinds;
    this.#axes = axes;
  }

  override propagates(): boolean {
    return false;
  }

  setup(bottoms: readonly Shape[]): Shape[] {
    const [B, J] = checkPair(this, bottoms, this.root);
    return [...this.#kinds.map(() => [B, J]), ...(this.#axes ? [[B, J, 3]] : [])];
  }

  forward(c: ForwardContext): void {
    const [B, J] = c.bottoms[0].shape;
    const io = { pred: c.bottoms[0].region, gt: c.bottoms[1].region, batch: B, joints: J, root: this.root };
    this.#kinds.forEach((kind, t) => poseErrors(c.rec, { ...io, out: c.tops[t].region, kind }));
    if (this.#axes) poseAxisErrors(c.rec, { ...io, out: c.tops[this.#kinds.length].region });
  }
}
