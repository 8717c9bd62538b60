/**
 * Generic building blocks for async-iterable stages with bounded buffering: a producer never runs
 * more than a fixed number of items ahead of its consumer (back-pressure), and parallel work is
 * delivered in input order so results never depend on scheduling.
 * @module
 */

/** Outcome of one unit of work: a value, or the error it raised (kept for skip-and-count). */
export type Outcome<I, O> = { ok: true; input: I; value: O } | { ok: false; input: I; error: unknown };

/** A FIFO of bounded capacity between one producer and one consumer. */
export class BoundedQueue<T> {
  #items: T[] = [];
  #cap: number;
  #closed = false;
  #error: unknown = undefined;
  #failed = false;
  #waitPush: (() => void)[] = [];
  #waitPop: (() => void)[] = [];

  /** Creates a queue holding at most `capacity` items. */
  constructor(capacity: number) {
    if (!(capacity >= 1)) throw new RangeError(`BoundedQueue: capacity must be >= 1, got ${capacity}`);
    this.#cap = capacity;
  }

  /** Number of buffered items. */
  get size(): number {
    return this.#items.length;
  }

  /** Adds an item, waiting while the queue is full. Returns false when the queue was closed. */
  async push(item: T): Promise<boolean> {
    while (this.#items.length >= this.#cap && !this.#closed) {
      await new Promise<void>((r) => this.#waitPush.push(r));
    }
    if (this.#closed) return false;
    this.#items.push(item);
    this.#waitPop.shift()?.();
    return true;
  }

  /** Takes the next item, waiting while empty; `done` once closed and drained. Rethrows a failure. */
  async pop(): Promise<IteratorResult<T, undefined>> {
    while (this.#items.length === 0) {
      if (this.#failed) throw this.#error;
      if (this.#closed) return { done: true, value: undefined };
      await new Promise<void>((r) => this.#waitPop.push(r));
    }
    const value = this.#items.shift()!;
    this.#waitPush.shift()?.();
    return { done: false, value };
  }

  /** Ends the stream: pending pops drain the buffer, pushes are refused. */
  close(): void {
    this.#closed = true;
    this.#wakeAll();
  }

  /** Ends the stream with an error, delivered to the consumer after the buffered items. */
  fail(error: unknown): void {
    this.#failed = true;
    this.#error = error;
    this.close();
  }

  #wakeAll(): void {
    for (const r of this.#waitPush.splice(0)) r();
    for (const r of this.#waitPop.splice(0)) r();
  }
}

/**
 * Runs `src` ahead of its consumer by up to `depth` items on a background pump. Breaking out of
 * the consumer stops the pump (and returns the source iterator).
 */
export async function* prefetch<T>(src: AsyncIterable<T>, depth: number): AsyncGenerator<T> {
  const q = new BoundedQueue<T>(depth);
  const it = src[Symbol.asyncIterator]();
  let stopped = false;
  const pump = (async () => {
    try {
      while (!stopped) {
        const r = await it.next();
        if (r.done) break;
        if (!(await q.push(r.value))) break;
      }
      q.close();
    } catch (e) {
      q.fail(e);
    }
  })();
  try {
    while (true) {
      const r = await q.pop();
      if (r.done) return;
      yield r.value;
    }
  } finally {
    stopped = true;
    q.close();
    await it.return?.();
    await pump.catch(() => {});
  }
}

/**
 * Applies `fn` to each input with at most `concurrency` calls in flight and yields the outcomes
 * in input order. Errors are yielded as outcomes, not thrown, so the caller decides.
 */
export async function* orderedMap<I, O>(
  src: Iterable<I> | AsyncIterable<I>,
  fn: (input: I, index: number) => Promise<O>,
  opts: { concurrency: number },
): AsyncGenerator<Outcome<I, O>> {
  const inflight: Promise<Outcome<I, O>>[] = [];
  const it = Symbol.asyncIterator in src
    ? (src as AsyncIterable<I>)[Symbol.asyncIterator]()
    : (src as Iterable<I>)[Symbol.iterator]();
  let index = 0;
  let exhausted = false;
  const start = (input: I) => {
    const i = index++;
    inflight.push(
      fn(input, i).then(
        (value): Outcome<I, O> => ({ ok: true, input, value }),
        (error): Outcome<I, O> => ({ ok: false, input, error }),
      ),
    );
  };
  try {
    while (true) {
      while (!exhausted && inflight.length < opts.concurrency) {
        const r = await it.next();
        if (r.done) exhausted = true;
        else start(r.value);
      }
      if (inflight.length === 0) return;
      yield await inflight.shift()!;
    }
  } finally {
    await it.return?.();
    // Let abandoned work settle so nothing rejects unobserved.
    await Promise.allSettled(inflight);
  }
}
