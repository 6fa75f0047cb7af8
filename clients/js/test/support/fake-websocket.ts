import type { WebSocketLike } from "../../src/index.js";

/**
 * An in-memory WebSocket: the test plays the hub. Every instance is recorded in
 * `FakeWebSocket.instances`; `sent` holds the parsed commands the client sent.
 */
export class FakeWebSocket implements WebSocketLike {
  static instances: FakeWebSocket[] = [];

  static reset(): void {
    FakeWebSocket.instances = [];
  }

  /** The most recently created socket. */
  static get last(): FakeWebSocket {
    const socket = FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
    if (!socket) throw new Error("no socket was created");
    return socket;
  }

  readyState = 0;
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string; wasClean?: boolean }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  readonly sent: Record<string, unknown>[] = [];
  closedByClient: { code?: number; reason?: string } | null = null;

  constructor(readonly url: string) {
    FakeWebSocket.instances.push(this);
  }

  send(data: string): void {
    if (this.readyState !== 1) throw new Error("socket not open");
    this.sent.push(JSON.parse(data) as Record<string, unknown>);
  }

  close(code?: number, reason?: string): void {
    this.closedByClient = { code, reason };
    this.readyState = 3;
  }

  // --- hub side ---

  /** Opens the socket and sends `welcome`. */
  accept(heartbeatMs = 15_000, session = `s${FakeWebSocket.instances.length}`): void {
    this.readyState = 1;
    this.onopen?.({});
    this.frame({ type: "welcome", session, node: "test", protocol: 1, heartbeat_ms: heartbeatMs });
  }

  frame(value: unknown): void {
    this.onmessage?.({ data: JSON.stringify(value) });
  }

  raw(data: unknown): void {
    this.onmessage?.({ data });
  }

  /** The hub (or the network) closes the connection. */
  drop(code = 1006, reason = ""): void {
    this.readyState = 3;
    this.onclose?.({ code, reason, wasClean: code !== 1006 });
  }

  /** Commands sent with `op`. */
  commands(op: string): Record<string, unknown>[] {
    return this.sent.filter((c) => c.op === op);
  }

  /** Answers the last subscribe for `room` with `subscribed`. */
  confirm(room: string, epoch: string, seq: number, recovered: boolean): void {
    const cmd = [...this.commands("subscribe")].reverse().find((c) => c.room === room);
    if (!cmd) throw new Error(`no subscribe for ${room}`);
    this.frame({ type: "subscribed", room, epoch, seq, recovered, ref: cmd.ref });
  }

  event(room: string, seq: number, type = "alert_raised", data: unknown = { n: seq }): void {
    this.frame({ type, room, seq, ts: "2026-01-01T00:00:00.000Z", data });
  }
}
