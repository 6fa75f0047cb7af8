/** A minimal typed event emitter with no dependencies. */

/** Map from event name to the payload its listeners receive. */
export type EventMap = object;

/** A listener for one event of an {@link EventMap}. */
export type Listener<T> = (payload: T) => void;

/** Call to remove the listener it was returned for. */
export type Unsubscribe = () => void;

/**
 * Typed emitter. A listener that throws does not stop the others; its error goes
 * to the `onListenerError` callback (by default re-thrown asynchronously so it
 * still surfaces as an uncaught error without breaking the client's own state).
 */
export class Emitter<Events extends EventMap> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  constructor(private readonly onListenerError: (error: unknown) => void = rethrowAsync) {}

  /** Adds a listener; returns a function that removes it. */
  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): Unsubscribe {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener as Listener<never>);
    return () => this.off(event, listener);
  }

  /** Adds a listener that is removed after its first call. */
  once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): Unsubscribe {
    const off = this.on(event, (payload) => {
      off();
      listener(payload);
    });
    return off;
  }

  /** Removes a listener added with {@link on}. */
  off<K extends keyof Events>(event: K, listener: Listener<Events[K]>): void {
    const set = this.listeners.get(event);
    if (!set) return;
    set.delete(listener as Listener<never>);
    if (set.size === 0) this.listeners.delete(event);
  }

  /** Calls every listener of `event` with `payload`, in registration order. */
  emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const listener of [...set]) {
      try {
        (listener as Listener<Events[K]>)(payload);
      } catch (error) {
        this.onListenerError(error);
      }
    }
  }

  /** Number of listeners of `event`. */
  listenerCount(event: keyof Events): number {
    return this.listeners.get(event)?.size ?? 0;
  }

  /** Removes every listener. */
  clear(): void {
    this.listeners.clear();
  }
}

function rethrowAsync(error: unknown): void {
  setTimeout(() => {
    throw error;
  }, 0);
}
