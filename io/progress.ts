/**
 * A one-line progress bar on stderr for long work (dataset generation, training, evaluation):
 * count, rate, ETA and a caller-supplied status text, redrawn at most a few times a second.
 * On a non-terminal (CI logs, files) it prints a plain line now and then instead.
 * @module
 */

/** Options for {@linkcode ProgressBar}. */
export interface ProgressOptions {
  /** Label before the bar. */
  label: string;
  /** Total count (0 = unknown). */
  total: number;
  /** Unit of the rate, e.g. "samples/s", "it/s". */
  unit?: string;
  /** Bar width in characters (default 24). */
  width?: number;
  /** Minimum milliseconds between redraws (default 250; 10 s when not a terminal). */
  intervalMs?: number;
  /** Where to write (default stderr). */
  write?: (text: string) => void;
  /** A wall-clock budget in seconds: the ETA never exceeds what is left of it. */
  budgetSec?: number;
  /** Treat the output as a terminal (default: whether stderr is one). */
  tty?: boolean;
}

/** Formats seconds as h:mm:ss or m:ss. */
export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec) || sec < 0) return "--:--";
  const s = Math.round(sec);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const mm = h > 0 ? String(m).padStart(2, "0") : String(m);
  return `${h > 0 ? `${h}:` : ""}${mm}:${String(r).padStart(2, "0")}`;
}

/** A redrawing progress line. */
export class ProgressBar {
  readonly opts: Required<Omit<ProgressOptions, "tty" | "budgetSec">> & { tty: boolean; budgetSec?: number };
  #done = 0;
  #start = performance.now();
  readonly #born = performance.now();
  #last = 0;
  #status = "";
  #rateBase = 0;

  constructor(opts: ProgressOptions) {
    const enc = new TextEncoder();
    let tty = opts.tty;
    if (tty === undefined) {
      try {
        tty = Deno.stderr.isTerminal();
      } catch {
        tty = false;
      }
    }
    this.opts = {
      unit: "it/s",
      width: 24,
      intervalMs: tty ? 250 : 10000,
      write: (t: string) => Deno.stderr.writeSync(enc.encode(t)),
      ...opts,
      tty,
    };
  }

  /** Count so far. */
  get done(): number {
    return this.#done;
  }

  /** Restarts the rate clock from the current count (e.g. after a warm-up or a resume). */
  resetRate(): void {
    this.#start = performance.now();
    this.#rateBase = this.#done;
  }

  /** Sets the count (absolute) and the status text; redraws when due. */
  update(done: number, status?: string): void {
    this.#done = done;
    if (status !== undefined) this.#status = status;
    const now = performance.now();
    if (now - this.#last >= this.opts.intervalMs || done >= this.opts.total && this.opts.total > 0) {
      this.#last = now;
      this.#draw(now);
    }
  }

  /** Items per second since the start (or the last resetRate). */
  rate(now = performance.now()): number {
    const dt = (now - this.#start) / 1000;
    return dt > 0 ? (this.#done - this.#rateBase) / dt : 0;
  }

  #line(now: number): string {
    const { total, width, label, unit } = this.opts;
    const rate = this.rate(now);
    const frac = total > 0 ? Math.min(1, this.#done / total) : 0;
    const fill = Math.round(frac * width);
    const bar = total > 0 ? ` [${"#".repeat(fill)}${".".repeat(width - fill)}]` : "";
    const count = total > 0 ? `${this.#done}/${total}` : `${this.#done}`;
    let etaSec = total > 0 && rate > 0 ? (total - this.#done) / rate : Infinity;
    const budget = this.opts.budgetSec;
    if (budget !== undefined) etaSec = Math.min(etaSec, Math.max(0, budget - (now - this.#born) / 1000));
    const eta = Number.isFinite(etaSec)
      ? ` ETA ${formatDuration(etaSec)}${etaSec < (total - this.#done) / rate ? " (budget)" : ""}`
      : "";
    const status = this.#status ? ` | ${this.#status}` : "";
    // Slow work (the seed network on a CPU) reads better as seconds per item than as 0.00 items/s.
    const per = unit.replace(/\/s$/, "");
    const speed = rate > 0 && rate < 0.1
      ? `${(1 / rate).toFixed(1)} s/${per}`
      : `${rate.toFixed(rate < 10 ? 2 : 1)} ${unit}`;
    return `${label}${bar} ${count} ${speed}${eta}${status}`;
  }

  #draw(now: number): void {
    const line = this.#line(now);
    this.opts.write(this.opts.tty ? `\r\x1b[2K${line}` : `${line}\n`);
  }

  /** Prints a message on its own line without breaking the bar. */
  log(message: string): void {
    if (this.opts.tty) this.opts.write(`\r\x1b[2K${message}\n`);
    else this.opts.write(`${message}\n`);
    if (this.opts.tty) this.#draw(performance.now());
  }

  /** Draws the final state and ends the line. */
  finish(status?: string): void {
    if (status !== undefined) this.#status = status;
    const line = this.#line(performance.now());
    this.opts.write(this.opts.tty ? `\r\x1b[2K${line}\n` : `${line}\n`);
  }
}
