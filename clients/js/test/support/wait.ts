/** Bounded waits for tests: resolve when a condition holds, fail with a clear message when it does not. */

/**
 * Re-checks `condition` whenever `subscribe` reports a change (and once at
 * start); resolves with its first truthy value, rejects after `timeoutMs`.
 */
export function waitFor<T>(
  what: string,
  condition: () => T | undefined | null | false,
  subscribe: (onChange: () => void) => () => void,
  timeoutMs = 5_000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    let done = false;
    let unsubscribe: () => void = () => {};
    const finish = (fn: () => void) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      unsubscribe();
      fn();
    };
    const check = () => {
      try {
        const value = condition();
        if (value) finish(() => resolve(value));
      } catch (error) {
        finish(() => reject(error));
      }
    };
    const timer = setTimeout(() => finish(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`))), timeoutMs);
    unsubscribe = subscribe(check);
    check();
  });
}

/** A growing list that tests can wait on. */
export class Recorder<T> {
  readonly items: T[] = [];
  private readonly watchers = new Set<() => void>();

  push = (item: T): void => {
    this.items.push(item);
    for (const watcher of [...this.watchers]) watcher();
  };

  /** Resolves once `predicate(items)` holds. */
  until(what: string, predicate: (items: T[]) => boolean, timeoutMs = 5_000): Promise<T[]> {
    return waitFor(
      what,
      () => (predicate(this.items) ? this.items : undefined),
      (onChange) => {
        this.watchers.add(onChange);
        return () => this.watchers.delete(onChange);
      },
      timeoutMs,
    );
  }

  /** Resolves with the first item (already recorded or future) matching `predicate`. */
  async first(what: string, predicate: (item: T) => boolean, timeoutMs = 5_000): Promise<T> {
    await this.until(what, (items) => items.some(predicate), timeoutMs);
    return this.items.find(predicate)!;
  }
}

/**
 * Polls `condition` every few milliseconds until it holds, for state that
 * reports no change (a proxy's log, a stream read in the background);
 * rejects after `timeoutMs`.
 */
export async function eventually(what: string, condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
