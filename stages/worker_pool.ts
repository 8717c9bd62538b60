/**
 * A fixed pool of sample workers (stages/sample_worker.ts). Requests go to the least busy worker;
 * replies carry transferred buffers, and worker-side DataErrors come back as DataErrors.
 * @module
 */

import { DataError } from "../io/errors.ts";
import { SAMPLE_FIELD_NAMES } from "../io/sample_fields.ts";
import type { ProcessedSample, SampleOptions } from "./sample.ts";

/** Messages to a worker. */
export type WorkerRequest =
  | { type: "init"; root: string; opts: SampleOptions; seed: number; nice?: number }
  | { type: "task"; seq: number; id: number };

/** Messages from a worker. */
export type WorkerReply =
  | { type: "done"; seq: number; sample: ProcessedSample }
  | {
    type: "error";
    seq: number;
    error: { name: string; message: string; path?: string; line?: number };
  };

/** The buffers of a sample, for a zero-copy postMessage. */
export function transferList(s: ProcessedSample): ArrayBuffer[] {
  return SAMPLE_FIELD_NAMES.map((f) => s[f].buffer as ArrayBuffer);
}

function rebuildError(e: { name: string; message: string; path?: string; line?: number }): Error {
  if (e.name === "DataError" && e.path !== undefined) {
    const err = new DataError(e.path, "", { line: e.line });
    err.message = e.message;
    return err;
  }
  const err = new Error(e.message);
  err.name = e.name;
  return err;
}

interface Slot {
  worker: Worker;
  busy: number;
}

/** A pool of `size` workers processing samples of one dataset with fixed options. */
export class WorkerPool {
  #slots: Slot[] = [];
  #pending = new Map<
    number,
    { resolve: (s: ProcessedSample) => void; reject: (e: Error) => void; slot: Slot }
  >();
  #closed = false;

  /**
   * Starts `size` workers configured with the dataset root, sample options and seed; `nice`
   * (0-19) lowers their threads' scheduling priority.
   */
  constructor(size: number, init: { root: string; opts: SampleOptions; seed: number; nice?: number }) {
    if (!(size >= 1)) throw new RangeError(`WorkerPool: size must be >= 1, got ${size}`);
    const url = new URL("./sample_worker.ts", import.meta.url).href;
    for (let i = 0; i < size; i++) {
      const worker = new Worker(url, { type: "module" });
      const slot: Slot = { worker, busy: 0 };
      worker.onmessage = (e: MessageEvent<WorkerReply>) => this.#onReply(e.data);
      worker.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        this.#failAll(new Error(`sample worker crashed: ${e.message}`));
      };
      const msg: WorkerRequest = { type: "init", ...init };
      worker.postMessage(msg);
      this.#slots.push(slot);
    }
  }

  /** Processes sample `id` at sequence number `seq` on the least busy worker. */
  run(seq: number, id: number): Promise<ProcessedSample> {
    if (this.#closed) return Promise.reject(new Error("WorkerPool: closed"));
    const slot = this.#slots.reduce((a, b) => (b.busy < a.busy ? b : a));
    slot.busy++;
    return new Promise((resolve, reject) => {
      this.#pending.set(seq, { resolve, reject, slot });
      const msg: WorkerRequest = { type: "task", seq, id };
      slot.worker.postMessage(msg);
    });
  }

  #onReply(r: WorkerReply): void {
    const p = this.#pending.get(r.seq);
    if (!p) return;
    this.#pending.delete(r.seq);
    p.slot.busy--;
    if (r.type === "done") p.resolve(r.sample);
    else p.reject(rebuildError(r.error));
  }

  #failAll(err: Error): void {
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  /** Terminates every worker; outstanding requests are rejected. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const s of this.#slots) s.worker.terminate();
    this.#failAll(new Error("WorkerPool: closed"));
  }
}
