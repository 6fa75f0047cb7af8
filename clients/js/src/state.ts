/**
 * The connection state machine.
 *
 * ```text
 *            connect()            welcome
 *  closed ─────────────▶ connecting ─────────▶ open
 *    ▲                      │                   │
 *    │ close() / give up    │ failure           │ drop / dead / server close
 *    │                      ▼                   ▼
 *    └──────────────── reconnecting ◀───────────┘
 *                           │ welcome
 *                           └────────────▶ open
 * ```
 *
 * `reconnecting` covers both waiting for the backoff delay and the retry itself,
 * so an application sees one `reconnecting` between two `open`s however many
 * attempts it takes. Any state can go to `closed` through `close()`.
 */

/** Where the client's connection is. */
export type ConnectionState = "connecting" | "open" | "reconnecting" | "closed";

/** Payload of a state change. */
export interface StateChange {
  from: ConnectionState;
  to: ConnectionState;
  /** Human-readable cause, e.g. `"welcome"`, `"close 1006"`, `"ping timeout"`. */
  reason: string;
}

const ALLOWED: Readonly<Record<ConnectionState, readonly ConnectionState[]>> = {
  closed: ["connecting"],
  connecting: ["open", "reconnecting", "closed"],
  open: ["reconnecting", "closed"],
  reconnecting: ["open", "closed"],
};

/** True when the machine allows going from `from` to `to`. */
export function canTransition(from: ConnectionState, to: ConnectionState): boolean {
  return ALLOWED[from].includes(to);
}

/** Thrown on a transition the machine does not allow; always a client bug. */
export class InvalidTransitionError extends Error {
  constructor(
    readonly from: ConnectionState,
    readonly to: ConnectionState,
  ) {
    super(`invalid connection state transition ${from} -> ${to}`);
    this.name = "InvalidTransitionError";
  }
}

/** Holds the current state and reports every change to one callback. */
export class ConnectionStateMachine {
  private current: ConnectionState = "closed";

  constructor(private readonly onChange: (change: StateChange) => void) {}

  /** The current state. */
  get state(): ConnectionState {
    return this.current;
  }

  /**
   * Moves to `to`. Moving to the current state is a no-op and returns false; a
   * transition the machine does not allow throws {@link InvalidTransitionError}.
   */
  transition(to: ConnectionState, reason: string): boolean {
    const from = this.current;
    if (from === to) return false;
    if (!canTransition(from, to)) throw new InvalidTransitionError(from, to);
    this.current = to;
    this.onChange({ from, to, reason });
    return true;
  }
}
