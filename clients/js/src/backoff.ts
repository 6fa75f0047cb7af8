/**
 * Reconnect delays: exponential growth, capped, with jitter so that many clients
 * dropped at once (a hub restart) do not come back in lockstep.
 */

/** Reconnect delay settings. */
export interface BackoffOptions {
  /** Delay before the first retry, before jitter. Default 500 ms. */
  initialDelayMs?: number;
  /** Upper bound of any delay, before jitter. Default 30 s. */
  maxDelayMs?: number;
  /** Growth factor per failed attempt. Default 2. */
  factor?: number;
  /**
   * Fraction of the delay that is randomised, 0..1. With 0.5 a nominal delay `d`
   * becomes a uniform value in `[d/2, d]`. 0 disables jitter, 1 is "full jitter".
   * Default 0.5.
   */
  jitter?: number;
}

/** Fully resolved backoff settings. */
export type ResolvedBackoffOptions = Required<BackoffOptions>;

export const DEFAULT_BACKOFF: ResolvedBackoffOptions = {
  initialDelayMs: 500,
  maxDelayMs: 30_000,
  factor: 2,
  jitter: 0.5,
};

/** Fills in defaults and validates the settings; throws `RangeError` on nonsense. */
export function resolveBackoff(options: BackoffOptions = {}): ResolvedBackoffOptions {
  const resolved: ResolvedBackoffOptions = { ...DEFAULT_BACKOFF, ...stripUndefined(options) };
  const { initialDelayMs, maxDelayMs, factor, jitter } = resolved;
  if (!(initialDelayMs >= 0) || !Number.isFinite(initialDelayMs)) {
    throw new RangeError(`backoff.initialDelayMs must be a finite number >= 0, got ${initialDelayMs}`);
  }
  if (!(maxDelayMs >= initialDelayMs) || !Number.isFinite(maxDelayMs)) {
    throw new RangeError(`backoff.maxDelayMs must be finite and >= initialDelayMs, got ${maxDelayMs}`);
  }
  if (!(factor >= 1) || !Number.isFinite(factor)) {
    throw new RangeError(`backoff.factor must be a finite number >= 1, got ${factor}`);
  }
  if (!(jitter >= 0 && jitter <= 1)) {
    throw new RangeError(`backoff.jitter must be within [0, 1], got ${jitter}`);
  }
  return resolved;
}

/**
 * Delay before retry number `attempt` (0 for the first retry after a drop).
 *
 * `random` must return a value in `[0, 1)`; it is a parameter so the function is
 * deterministic under test.
 */
export function backoffDelay(
  attempt: number,
  options: ResolvedBackoffOptions,
  random: () => number = Math.random,
): number {
  const exponent = Math.max(0, Math.floor(attempt));
  // Math.pow overflows to Infinity for large exponents, which min() then caps.
  const nominal = Math.min(options.maxDelayMs, options.initialDelayMs * Math.pow(options.factor, exponent));
  const spread = nominal * options.jitter;
  return Math.round(nominal - spread * random());
}

/** Stateful attempt counter around {@link backoffDelay}. */
export class Backoff {
  private attempt = 0;
  private readonly options: ResolvedBackoffOptions;

  constructor(
    options: BackoffOptions = {},
    private readonly random: () => number = Math.random,
  ) {
    this.options = resolveBackoff(options);
  }

  /** Number of delays handed out since the last {@link reset}. */
  get attempts(): number {
    return this.attempt;
  }

  /** Returns the next delay and advances the attempt counter. */
  next(): number {
    const delay = backoffDelay(this.attempt, this.options, this.random);
    this.attempt += 1;
    return delay;
  }

  /** Starts over from the initial delay (call after a successful connection). */
  reset(): void {
    this.attempt = 0;
  }
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
