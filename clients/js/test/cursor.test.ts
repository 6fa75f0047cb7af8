import { describe, expect, it } from "vitest";
import { RoomCursor } from "../src/cursor.js";
import type { RoomEvent, SubscribedFrame } from "../src/protocol.js";

const ROOM = "alerts";

function subscribed(epoch: string, seq: number, recovered: boolean): SubscribedFrame {
  return { type: "subscribed", room: ROOM, epoch, seq, recovered };
}

function ev(seq: number, type = "alert_raised"): RoomEvent {
  return { type, room: ROOM, seq, ts: "2026-01-01T00:00:00.000Z", data: { n: seq } };
}

/** Offers events and returns the seqs that were delivered. */
function deliver(cursor: RoomCursor, seqs: number[]): number[] {
  return seqs.flatMap((seq) => {
    const r = cursor.accept(ev(seq));
    return r.kind === "deliver" ? [r.event.seq!] : [];
  });
}

describe("RoomCursor", () => {
  it("starts with no position, so the first subscribe is fresh", () => {
    const cursor = new RoomCursor();
    expect(cursor.resumePosition()).toEqual({});
    expect(cursor.onSubscribed(subscribed("e1", 5, false), {})).toEqual({ kind: "fresh" });
    expect(cursor.epoch).toBe("e1");
  });

  it("delivers the snapshot after a fresh subscribe and tracks the last seq", () => {
    const cursor = new RoomCursor();
    cursor.onSubscribed(subscribed("e1", 5, false), {});
    expect(deliver(cursor, [3, 4, 5, 6])).toEqual([3, 4, 5, 6]);
    expect(cursor.resumePosition()).toEqual({ since: 6, epoch: "e1" });
  });

  it("resumes from the head when the fresh subscription delivered nothing", () => {
    const cursor = new RoomCursor();
    cursor.onSubscribed(subscribed("e1", 42, false), {});
    expect(cursor.resumePosition()).toEqual({ since: 42, epoch: "e1" });
  });

  it("resumes after the last delivered event when the connection dropped mid-snapshot", () => {
    const cursor = new RoomCursor();
    cursor.onSubscribed(subscribed("e1", 10, false), {});
    deliver(cursor, [7, 8]);
    expect(cursor.resumePosition()).toEqual({ since: 8, epoch: "e1" });
  });

  it("drops duplicates and stale events", () => {
    const cursor = new RoomCursor();
    cursor.onSubscribed(subscribed("e1", 0, false), {});
    expect(deliver(cursor, [1, 2, 2, 1, 3, 3, 4])).toEqual([1, 2, 3, 4]);
  });

  it("on recovered:true keeps the position and drops replayed events it already has", () => {
    const cursor = new RoomCursor();
    cursor.onSubscribed(subscribed("e1", 0, false), {});
    deliver(cursor, [1, 2, 3]);
    const sent = cursor.resumePosition();
    expect(cursor.onSubscribed(subscribed("e1", 6, true), sent)).toEqual({ kind: "resumed", since: 3 });
    expect(deliver(cursor, [3, 4, 5, 6])).toEqual([4, 5, 6]);
  });

  it("passes events without seq (system rooms) straight through", () => {
    const cursor = new RoomCursor();
    const status: RoomEvent = { type: "status_update", room: "$status", data: {} };
    expect(cursor.accept(status)).toEqual({ kind: "deliver", event: status });
    expect(cursor.accept(status)).toEqual({ kind: "deliver", event: status });
  });

  describe("resync", () => {
    function cursorAt(epoch: string, seqs: number[]): RoomCursor {
      const cursor = new RoomCursor();
      cursor.onSubscribed(subscribed(epoch, 0, false), {});
      deliver(cursor, seqs);
      return cursor;
    }

    it("asks for a resync when a resume comes back with a new epoch", () => {
      const cursor = cursorAt("e1", [1, 2, 3]);
      const outcome = cursor.onSubscribed(subscribed("e2", 2, false), cursor.resumePosition());
      expect(outcome).toMatchObject({ kind: "resync", reason: "epoch_changed", epoch: "e2", head: 2 });
      expect(cursor.resyncing).toBe(true);
    });

    it("asks for a resync when the same epoch no longer has the missed events", () => {
      const cursor = cursorAt("e1", [1]);
      const outcome = cursor.onSubscribed(subscribed("e1", 500, false), cursor.resumePosition());
      expect(outcome).toMatchObject({ kind: "resync", reason: "history_gap" });
    });

    it("treats recovered:true with a different epoch as a resync", () => {
      const cursor = cursorAt("e1", [1]);
      const outcome = cursor.onSubscribed(subscribed("e2", 1, true), cursor.resumePosition());
      expect(outcome.kind).toBe("resync");
    });

    it("buffers socket events during the resync and merges them with history, in order, once", () => {
      const cursor = cursorAt("e1", [1, 2, 3, 4, 5]);
      const outcome = cursor.onSubscribed(subscribed("e2", 3, false), cursor.resumePosition());
      if (outcome.kind !== "resync") throw new Error("expected resync");
      // The snapshot and a live event arrive while history is being fetched.
      expect(cursor.accept(ev(2)).kind).toBe("buffered");
      expect(cursor.accept(ev(3)).kind).toBe("buffered");
      expect(cursor.accept(ev(4)).kind).toBe("buffered");
      const history = [ev(1), ev(2), ev(3)].map((e) => ({ ...e, data: { from: "history" } }));
      const events = cursor.completeResync(outcome.generation, history, "e2");
      expect(events?.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
      expect(cursor.resumePosition()).toEqual({ since: 4, epoch: "e2" });
      expect(cursor.resyncing).toBe(false);
      // Live delivery continues without repeating anything.
      expect(deliver(cursor, [3, 4, 5])).toEqual([5]);
    });

    it("resumes from the new head when the new epoch is empty", () => {
      const cursor = cursorAt("e1", [1, 2]);
      const outcome = cursor.onSubscribed(subscribed("e2", 0, false), cursor.resumePosition());
      if (outcome.kind !== "resync") throw new Error("expected resync");
      expect(cursor.completeResync(outcome.generation, [], "e2")).toEqual([]);
      expect(cursor.resumePosition()).toEqual({ since: 0, epoch: "e2" });
      expect(deliver(cursor, [1])).toEqual([1]);
    });

    it("ignores history of another epoch and falls back to the socket snapshot", () => {
      const cursor = cursorAt("e1", [1, 2]);
      const outcome = cursor.onSubscribed(subscribed("e2", 1, false), cursor.resumePosition());
      if (outcome.kind !== "resync") throw new Error("expected resync");
      cursor.accept(ev(1));
      const events = cursor.completeResync(outcome.generation, [ev(1), ev(2), ev(3)], "e3");
      expect(events?.map((e) => e.seq)).toEqual([1]);
    });

    it("uses the snapshot when history could not be fetched", () => {
      const cursor = cursorAt("e1", [1, 2]);
      const outcome = cursor.onSubscribed(subscribed("e2", 2, false), cursor.resumePosition());
      if (outcome.kind !== "resync") throw new Error("expected resync");
      cursor.accept(ev(2));
      cursor.accept(ev(1));
      expect(cursor.completeResync(outcome.generation, null, null)?.map((e) => e.seq)).toEqual([1, 2]);
    });

    it("keeps the old position when the resync is abandoned, so the next subscribe resyncs again", () => {
      const cursor = cursorAt("e1", [1, 2, 3]);
      const before = cursor.resumePosition();
      const first = cursor.onSubscribed(subscribed("e2", 1, false), before);
      if (first.kind !== "resync") throw new Error("expected resync");
      cursor.abandonResync();
      expect(cursor.resumePosition()).toEqual(before);
      expect(cursor.completeResync(first.generation, [ev(1)], "e2")).toBeNull();
      const second = cursor.onSubscribed(subscribed("e2", 1, false), cursor.resumePosition());
      expect(second).toMatchObject({ kind: "resync", reason: "epoch_changed" });
    });

    it("ignores the completion of a superseded resync", () => {
      const cursor = cursorAt("e1", [1]);
      const first = cursor.onSubscribed(subscribed("e2", 1, false), cursor.resumePosition());
      const second = cursor.onSubscribed(subscribed("e2", 1, false), { since: 1, epoch: "e1" });
      if (first.kind !== "resync" || second.kind !== "resync") throw new Error("expected resync");
      expect(cursor.completeResync(first.generation, [ev(1)], "e2")).toBeNull();
      expect(cursor.completeResync(second.generation, [ev(1)], "e2")?.map((e) => e.seq)).toEqual([1]);
    });
  });

  it("treats a subscribed the hub sent on its own as a resync from the current position", () => {
    const cursor = new RoomCursor();
    cursor.onSubscribed(subscribed("e1", 0, false), {}); // sent fresh
    deliver(cursor, [1, 2, 3]);
    const sameEpoch = cursor.onHubResync(subscribed("e1", 500, false));
    expect(sameEpoch).toMatchObject({ kind: "resync", reason: "history_gap", epoch: "e1", head: 500 });
    const newEpoch = cursor.onHubResync(subscribed("e2", 2, false));
    expect(newEpoch).toMatchObject({ kind: "resync", reason: "epoch_changed", epoch: "e2", head: 2 });
    // Held back until the resync completes; the position moves only then.
    expect(cursor.accept(ev(1)).kind).toBe("buffered");
    expect(cursor.resumePosition()).toEqual({ since: 3, epoch: "e1" });
    if (newEpoch.kind !== "resync") throw new Error("expected resync");
    expect(cursor.completeResync(newEpoch.generation, [ev(1), ev(2)], "e2")?.map((e) => e.seq)).toEqual([1, 2]);
    expect(deliver(cursor, [2, 3])).toEqual([3]);
    expect(cursor.resumePosition()).toEqual({ since: 3, epoch: "e2" });
  });

  it("can start from a position the application persisted", () => {
    const cursor = new RoomCursor({ since: 17, epoch: "e9" });
    expect(cursor.resumePosition()).toEqual({ since: 17, epoch: "e9" });
    expect(cursor.onSubscribed(subscribed("e9", 20, true), cursor.resumePosition())).toEqual({
      kind: "resumed",
      since: 17,
    });
    expect(deliver(cursor, [17, 18])).toEqual([18]);
    expect(() => new RoomCursor({ since: -1, epoch: "e" })).toThrow(RangeError);
  });

  it("collects a keyed room's state frames and then moves to its head", () => {
    const cursor = new RoomCursor();
    const outcome = cursor.onSubscribed({ ...subscribed("e1", 40, false), state: 2 }, {});
    expect(outcome).toEqual({ kind: "state", reason: "fresh", epoch: "e1", head: 40, count: 2 });
    expect(cursor.takeState()).toBeNull();
    expect(cursor.accept(ev(12)).kind).toBe("buffered");
    const done = cursor.accept(ev(31));
    if (done.kind !== "state") throw new Error(`expected the state, got ${done.kind}`);
    expect(done.state).toMatchObject({ reason: "fresh", epoch: "e1", seq: 40 });
    expect(done.state.events.map((e) => e.seq)).toEqual([12, 31]);
    expect(cursor.resumePosition()).toEqual({ since: 40, epoch: "e1" });
    // Live events after the head; nothing at or below it again.
    expect(deliver(cursor, [40, 41, 42])).toEqual([41, 42]);
  });

  it("takes a state instead of a resync when a resume could not replay, and an empty one at once", () => {
    const cursor = new RoomCursor({ since: 5, epoch: "e1" });
    const gap = cursor.onSubscribed({ ...subscribed("e1", 90, false), state: 0 }, cursor.resumePosition());
    expect(gap).toMatchObject({ kind: "state", reason: "history_gap", count: 0 });
    expect(cursor.takeState()).toEqual({ reason: "history_gap", epoch: "e1", seq: 90, events: [] });
    const lost = cursor.onHubResync({ ...subscribed("e2", 3, false), state: 1 });
    expect(lost).toMatchObject({ kind: "state", reason: "epoch_changed", head: 3 });
    // A dropped connection mid-state leaves the position where it was.
    cursor.abandonResync();
    expect(cursor.resumePosition()).toEqual({ since: 90, epoch: "e1" });
    // An exact resume of a keyed room replays events, no state.
    expect(cursor.onSubscribed({ ...subscribed("e1", 92, true) }, cursor.resumePosition())).toEqual({
      kind: "resumed",
      since: 90,
    });
    expect(deliver(cursor, [91, 92])).toEqual([91, 92]);
  });
});
