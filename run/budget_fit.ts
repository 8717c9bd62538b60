/**
 * Fitting a decaying learning rate to a time budget. A poly rate reaches zero at the schedule's
 * last iteration, but a time budget stops a run wherever the machine's speed puts it: on a slower
 * machine (or a slower hour of a shared one) the run ends with the rate still high, which costs
 * more accuracy than the missing iterations do. So a budgeted run measures its own speed and,
 * at a few points, sets its schedule's end to the iterations that fit the time left, never past
 * the planned count. The rate then decays to zero by the budget's end on any machine; the price is
 * that such a run is not reproducible bit for bit across machines (a run with explicit `--iters`
 * is).
 * @module
 */

/** Iterations timed before the first fit (after the compile-laden first steps). */
export const FIT_PROBE_ITERS = 200;
/** Steps skipped before the speed is timed: the first ones compile every kernel. */
export const FIT_WARMUP_ITERS = 10;
/** Fraction of the time left that the fit plans to use (checkpoints, the last evaluation, jitter). */
export const FIT_MARGIN = 0.97;

/** The iteration target that fits `remainingSec`, given the measured speed and evaluation cost. */
export function fittedIters(o: {
  /** Iterations done. */
  iter: number;
  /** The schedule's planned end: an upper bound. */
  planned: number;
  remainingSec: number;
  /** Training iterations per second, evaluations excluded. */
  itersPerSec: number;
  /** Seconds one held-out evaluation takes (0 if none has run yet or none are scheduled). */
  evalSec: number;
  /** Held-out evaluation every this many iterations (0 = never). */
  evalEvery: number;
}): number {
  if (!(o.itersPerSec > 0)) return o.planned;
  // n iterations more cost n / speed plus one evaluation per evalEvery, plus the final one.
  const perIter = 1 / o.itersPerSec + (o.evalEvery > 0 ? o.evalSec / o.evalEvery : 0);
  const more = Math.floor((FIT_MARGIN * o.remainingSec - o.evalSec) / perIter);
  return Math.min(o.planned, Math.max(o.iter + 1, o.iter + more));
}

/**
 * The measuring side: fed every step and every evaluation, it says when to fit and to what.
 * Fits happen once after {@linkcode FIT_PROBE_ITERS} timed steps and then before every held-out
 * evaluation, each from the speed since the previous fit.
 */
export class BudgetFit {
  readonly planned: number;
  readonly budgetSec: number;
  readonly evalEvery: number;
  #mark: { iter: number; t: number } | null = null;
  #first: number;
  #probed = false;
  #evalSec = 0;

  /** `startIter`: where this session starts (0, or the resume point). */
  constructor(o: { planned: number; budgetSec: number; evalEvery: number; startIter: number }) {
    this.planned = o.planned;
    this.budgetSec = o.budgetSec;
    this.evalEvery = o.evalEvery;
    this.#first = o.startIter + FIT_WARMUP_ITERS;
  }

  /**
   * After step `iter` finished at `elapsedSec` (of the budget): the new end of the schedule when
   * this is a fit point, else null. `evalNext`: a held-out evaluation follows this step.
   */
  afterStep(iter: number, elapsedSec: number, evalNext: boolean): number | null {
    if (iter === this.#first) this.#mark = { iter, t: elapsedSec };
    const m = this.#mark;
    if (!m || iter <= m.iter) return null;
    const due = evalNext || (!this.#probed && iter - m.iter >= FIT_PROBE_ITERS);
    if (!due) return null;
    this.#probed = true;
    const n = fittedIters({
      iter,
      planned: this.planned,
      remainingSec: this.budgetSec - elapsedSec,
      itersPerSec: (iter - m.iter) / Math.max(1e-6, elapsedSec - m.t),
      evalSec: this.#evalSec,
      evalEvery: this.evalEvery,
    });
    this.#mark = { iter, t: elapsedSec };
    return n;
  }

  /** A held-out evaluation took `seconds`; the speed window restarts after it. */
  evaluated(iter: number, seconds: number, elapsedSec: number): void {
    this.#evalSec = seconds;
    if (this.#mark) this.#mark = { iter, t: elapsedSec };
  }
}
