/**
 * Resume bookkeeping for one room: where the client is in the room's history,
 * which events are duplicates, and when the client has to resync.
 *
 * Pure logic with no I/O, so every rule of contract section 5 is unit-testable:
 *
 * - a room's events carry `seq` growing by one within an `epoch`;
 * - after a reconnect the client subscribes with `since` (the last seq it holds)
 *   and `epoch`; `recovered:true` means every missed event follows;
 * - `recovered:false` for a client that had a position means it lost events
 *   (history gone or a new epoch) and must resync from HTTP history;
 * - an unsolicited `subscribed` (no `ref`) for a subscribed room means the same,
 *   measured from the current position;
 * - in a keyed room (contract section 11) a `subscribed` with `state: N` that is
 *   not an exact resume is followed by the room's state, N frames: it replaces
 *   what the client held, and no HTTP resync is needed.
 */

import type { RoomEvent, SubscribedFrame } from "./protocol.js";

/** Where to resume a room from; both fields are absent for a fresh subscription. */
export interface ResumePosition {
  since?: number;
  epoch?: string;
}

/** Why a room has to be resynced. */
export type ResyncReason =
  /** The hub lost the room's history (e.g. restarted, or Redis lost it): a new epoch. */
  | "epoch_changed"
  /**
   * Same epoch, but the events after the client's position are no longer in
   * history (or, in a cluster, the hub's node missed more than history holds).
   */
  | "history_gap";

/** What a `subscribed` frame means for this room. */
export type SubscribedOutcome =
  /** First subscription: a snapshot follows and is delivered as ordinary events. */
  | { kind: "fresh" }
  /** Every missed event follows in order. */
  | { kind: "resumed"; since: number }
  /** Events were lost: fetch history, then call {@link RoomCursor.completeResync}. */
  | { kind: "resync"; reason: ResyncReason; epoch: string; head: number; generation: number }
  /**
   * A keyed room's state follows (`count` frames), collected by
   * {@link RoomCursor.accept}; `reason` is `fresh` for a first subscription.
   */
  | { kind: "state"; reason: StateReason; epoch: string; head: number; count: number };

/** Why a keyed room's state was sent: a first subscription, or what a resume could not replay. */
export type StateReason = "fresh" | ResyncReason;

/** A keyed room's whole state at `seq`: replaces what the client held for the room. */
export interface CompletedState {
  reason: StateReason;
  epoch: string;
  /** The room's head: the state is the one at this seq. */
  seq: number;
  /** The latest event of each live key, in seq order. */
  events: RoomEvent[];
}

/** Outcome of offering an incoming event to the cursor. */
export type AcceptResult =
  | { kind: "deliver"; event: RoomEvent }
  /** Already delivered (seq at or below the position). */
  | { kind: "duplicate" }
  /** Held back until the resync in progress completes. */
  | { kind: "buffered" }
  /** The last frame of a keyed room's state: the state is complete. */
  | { kind: "state"; state: CompletedState };

interface PendingResync {
  epoch: string;
  head: number;
  generation: number;
  buffer: RoomEvent[];
}

interface PendingState {
  reason: StateReason;
  epoch: string;
  head: number;
  left: number;
  events: RoomEvent[];
}

/**
 * Tracks one room's position. The position only moves when events are delivered
 * or a resync completes, so a connection lost halfway through a resync leaves the
 * old position in place and the next subscription asks again (and resyncs again).
 */
export class RoomCursor {
  private epochValue: string | undefined;
  /** Seq of the last event delivered in `epochValue`; 0 before the first one. */
  private lastSeq = 0;
  /** Head reported by the last fresh subscription; the resume point until an event arrives. */
  private floor = 0;
  private pending: PendingResync | null = null;
  private pendingState: PendingState | null = null;
  private generation = 0;

  /**
   * @param initial position to resume from on the first subscription, e.g. one an
   *   application persisted; omit for a fresh subscription.
   */
  constructor(initial: ResumePosition = {}) {
    if (initial.epoch !== undefined && initial.since !== undefined) {
      if (!Number.isInteger(initial.since) || initial.since < 0) {
        throw new RangeError(`since must be a non-negative integer, got ${initial.since}`);
      }
      this.epochValue = initial.epoch;
      this.lastSeq = initial.since;
    }
  }

  /** The epoch the client's events belong to, once known. */
  get epoch(): string | undefined {
    return this.epochValue;
  }

  /** The seq the client would resume after. */
  get seq(): number {
    return this.lastSeq > 0 ? this.lastSeq : this.floor;
  }

  /** True while a resync is waiting for history (or a keyed room's state frames). */
  get resyncing(): boolean {
    return this.pending !== null || this.pendingState !== null;
  }

  /** The `since`/`epoch` to put in the next `subscribe` command. */
  resumePosition(): ResumePosition {
    if (this.epochValue === undefined) return {};
    return { since: this.seq, epoch: this.epochValue };
  }

  /**
   * Interprets a `subscribed` frame. `sent` is the position that went out in the
   * `subscribe` command it answers.
   */
  onSubscribed(frame: SubscribedFrame, sent: ResumePosition): SubscribedOutcome {
    const hadPosition = sent.epoch !== undefined && sent.since !== undefined;
    const exact = hadPosition && frame.recovered && frame.epoch === sent.epoch;
    this.pendingState = null;
    if (!exact && typeof frame.state === "number") {
      this.pending = null;
      const reason: StateReason = !hadPosition ? "fresh" : frame.epoch === sent.epoch ? "history_gap" : "epoch_changed";
      this.pendingState = { reason, epoch: frame.epoch, head: frame.seq, left: frame.state, events: [] };
      return { kind: "state", reason, epoch: frame.epoch, head: frame.seq, count: frame.state };
    }
    if (exact) {
      this.pending = null;
      // Normalise the position to exactly what the server resumes after.
      this.lastSeq = sent.since!;
      this.floor = sent.since!;
      return { kind: "resumed", since: sent.since! };
    }
    if (!hadPosition) {
      this.pending = null;
      this.epochValue = frame.epoch;
      this.lastSeq = 0;
      this.floor = frame.seq;
      return { kind: "fresh" };
    }
    this.generation += 1;
    this.pending = { epoch: frame.epoch, head: frame.seq, generation: this.generation, buffer: [] };
    return {
      kind: "resync",
      reason: frame.epoch === sent.epoch ? "history_gap" : "epoch_changed",
      epoch: frame.epoch,
      head: frame.seq,
      generation: this.generation,
    };
  }

  /**
   * Interprets a `subscribed` frame the hub sent on its own (no `ref`) for a room
   * that is already subscribed: the hub restarted the room (in a cluster, its
   * history was lost or the node missed more than history holds) and a snapshot
   * follows. Judged against the current position, not the one sent with the
   * original subscribe: a new epoch is `epoch_changed`, the same epoch
   * `history_gap`. With no position yet it is a fresh start.
   */
  onHubResync(frame: SubscribedFrame): SubscribedOutcome {
    return this.onSubscribed({ ...frame, recovered: false }, this.resumePosition());
  }

  /**
   * A keyed room's state once all its frames arrived (at once for an empty
   * state): the position moves to its head. Null while frames are missing.
   */
  takeState(): CompletedState | null {
    const pending = this.pendingState;
    if (!pending || pending.left > 0) return null;
    this.pendingState = null;
    this.epochValue = pending.epoch;
    this.lastSeq = pending.head;
    this.floor = pending.head;
    return { reason: pending.reason, epoch: pending.epoch, seq: pending.head, events: pending.events };
  }

  /** Decides what to do with an event of this room that arrived on the socket. */
  accept(event: RoomEvent): AcceptResult {
    if (typeof event.seq !== "number") return { kind: "deliver", event };
    if (this.pendingState) {
      this.pendingState.events.push(event);
      this.pendingState.left -= 1;
      const state = this.takeState();
      return state ? { kind: "state", state } : { kind: "buffered" };
    }
    if (this.pending) {
      this.pending.buffer.push(event);
      return { kind: "buffered" };
    }
    // After a fresh subscription lastSeq is 0 and the snapshot (seq <= floor) is
    // delivered; from the first event on, anything at or below it is a repeat.
    if (this.lastSeq > 0 && event.seq <= this.lastSeq) return { kind: "duplicate" };
    this.lastSeq = event.seq;
    return { kind: "deliver", event };
  }

  /**
   * Finishes the resync started by `onSubscribed` with `generation`. `history` is
   * what HTTP history returned for `historyEpoch`, or null when it could not be
   * fetched (then only the snapshot the socket sent is used).
   *
   * Returns the room's events, oldest first and without duplicates, that replace
   * whatever the application held; or null when this resync was superseded (a
   * newer subscription or a dropped connection) and must be ignored.
   */
  completeResync(
    generation: number,
    history: readonly RoomEvent[] | null,
    historyEpoch: string | null,
  ): RoomEvent[] | null {
    const pending = this.pending;
    if (!pending || pending.generation !== generation) return null;
    this.pending = null;
    const bySeq = new Map<number, RoomEvent>();
    if (history && historyEpoch === pending.epoch) {
      for (const event of history) if (typeof event.seq === "number") bySeq.set(event.seq, event);
    }
    for (const event of pending.buffer) if (typeof event.seq === "number") bySeq.set(event.seq, event);
    const events = [...bySeq.values()].sort((a, b) => a.seq! - b.seq!);
    this.epochValue = pending.epoch;
    this.floor = pending.head;
    this.lastSeq = events.length > 0 ? events[events.length - 1]!.seq! : 0;
    return events;
  }

  /**
   * Forgets an unfinished resync, e.g. because the connection dropped. The
   * position stays where it was, so the next subscription resyncs again.
   */
  abandonResync(): void {
    this.pending = null;
    this.pendingState = null;
  }
}
