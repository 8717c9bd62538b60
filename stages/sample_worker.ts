/**
 * Web Worker entry of the sample pool: loads, augments and warps samples on request and returns
 * them with their buffers transferred. The augmentation of each sample comes from its sequence
 * number, so which worker handles a sample never changes the result.
 * @module
 */

/// <reference lib="deno.worker" />

import { setPriority } from "node:os";
import { DataError } from "../io/errors.ts";
import { processSample, type SampleOptions } from "./sample.ts";
import { transferList, type WorkerReply, type WorkerRequest } from "./worker_pool.ts";

let config: { root: string; opts: SampleOptions; seed: number } | null = null;

self.onmessage = async (e: MessageEvent<WorkerRequest>) => {
  const msg = e.data;
  if (msg.type === "init") {
    config = { root: msg.root, opts: msg.opts, seed: msg.seed };
    // On Linux, pid 0 is the calling thread: this worker alone, never the kernels' threads.
    // Elsewhere it would be the whole process, so there the priority stays as it is.
    if (msg.nice && Deno.build.os === "linux") {
      try {
        setPriority(0, Math.min(19, Math.max(0, Math.round(msg.nice))));
      } catch {
        // Not permitted or not supported here: the worker keeps the process's priority.
      }
    }
    return;
  }
  const { seq, id } = msg;
  let reply: WorkerReply;
  try {
    if (!config) throw new Error("sample worker used before init");
    const sample = await processSample(config.root, id, { ...config.opts, seed: config.seed, seq });
    reply = { type: "done", seq, sample };
    self.postMessage(reply, transferList(sample));
    return;
  } catch (err) {
    const data = err instanceof DataError;
    reply = {
      type: "error",
      seq,
      error: {
        name: err instanceof Error ? err.name : "Error",
        message: err instanceof Error ? err.message : String(err),
        path: data ? err.path : undefined,
        line: data ? err.line : undefined,
      },
    };
  }
  self.postMessage(reply);
};
