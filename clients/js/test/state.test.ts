import { describe, expect, it } from "vitest";
import {
  ConnectionStateMachine,
  InvalidTransitionError,
  canTransition,
  type ConnectionState,
  type StateChange,
} from "../src/state.js";

const STATES: ConnectionState[] = ["connecting", "open", "reconnecting", "closed"];

describe("connection state machine", () => {
  it("allows exactly the documented transitions", () => {
    const allowed = STATES.flatMap((from) => STATES.filter((to) => canTransition(from, to)).map((to) => `${from}->${to}`));
    expect(allowed.sort()).toEqual(
      [
        "closed->connecting",
        "connecting->open",
        "connecting->reconnecting",
        "connecting->closed",
        "open->reconnecting",
        "open->closed",
        "reconnecting->open",
        "reconnecting->closed",
      ].sort(),
    );
  });

  it("starts closed and reports each change with its reason", () => {
    const changes: StateChange[] = [];
    const machine = new ConnectionStateMachine((c) => changes.push(c));
    expect(machine.state).toBe("closed");
    machine.transition("connecting", "connect()");
    machine.transition("open", "welcome");
    machine.transition("reconnecting", "close 1006");
    machine.transition("open", "welcome");
    machine.transition("closed", "close()");
    expect(changes.map((c) => `${c.from}->${c.to}:${c.reason}`)).toEqual([
      "closed->connecting:connect()",
      "connecting->open:welcome",
      "open->reconnecting:close 1006",
      "reconnecting->open:welcome",
      "open->closed:close()",
    ]);
  });

  it("treats a transition to the current state as a silent no-op", () => {
    const changes: StateChange[] = [];
    const machine = new ConnectionStateMachine((c) => changes.push(c));
    machine.transition("connecting", "connect()");
    machine.transition("reconnecting", "failed");
    expect(machine.transition("reconnecting", "failed again")).toBe(false);
    expect(changes).toHaveLength(2);
  });

  it("refuses an invalid transition and keeps its state", () => {
    const machine = new ConnectionStateMachine(() => {});
    expect(() => machine.transition("open", "welcome")).toThrow(InvalidTransitionError);
    expect(machine.state).toBe("closed");
    machine.transition("connecting", "connect()");
    machine.transition("open", "welcome");
    expect(() => machine.transition("connecting", "?")).toThrow(/open -> connecting/);
    expect(machine.state).toBe("open");
  });
});
