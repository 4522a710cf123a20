/**
 * Work taken one at a time per key, in the order asked: a data folder's runs, uploads and
 * downloads (the Runner), an owner's uploads and deletions (their quota is checked and spent in
 * turn). In this process only; gatekeepers sharing a store serialise in the database as well.
 */
export class Turns {
  private readonly queues = new Map<string, Promise<unknown>>();

  /** Runs `fn` after everything taken earlier on `key` has settled (failed or not). */
  take<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.queues.get(key) ?? Promise.resolve();
    const mine = before.then(fn, fn);
    const tail = mine.catch(() => undefined);
    this.queues.set(key, tail);
    void tail.then(() => {
      if (this.queues.get(key) === tail) this.queues.delete(key);
    });
    return mine;
  }

  /** Runs `fn` now, in `key`'s turn, when nothing is queued or in progress on it; otherwise undefined (and `fn` never runs). */
  tryTake<T>(key: string, fn: () => Promise<T>): Promise<T> | undefined {
    return this.queues.has(key) ? undefined : this.take(key, fn);
  }
}
