import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { HubClient, type HubClientOptions, type ResyncInfo, type StateInfo } from "../src/index.js";
import type { HubError } from "../src/errors.js";
import type { RoomEvent } from "../src/protocol.js";
import type { ConnectionState } from "../src/state.js";
import { FakeWebSocket } from "./support/fake-websocket.js";

type Feeds = {
  alert_raised: { n: number };
  hotspot_detected: { zone: string };
};

function makeClient(options: Partial<HubClientOptions> = {}): HubClient<Feeds> {
  return new HubClient<Feeds>({
    url: "http://hub.test:8080",
    WebSocket: FakeWebSocket,
    backoff: { initialDelayMs: 100, maxDelayMs: 1_000, jitter: 0 },
    fetch: () => Promise.reject(new Error("unexpected fetch")),
    ...options,
  });
}

/** Lets pending promises (token provider, fetch) settle without moving the clock. */
const flush = () => vi.advanceTimersByTimeAsync(0);

function recordStates(client: HubClient<Feeds>): ConnectionState[] {
  const states: ConnectionState[] = [];
  client.on("state", (c) => states.push(c.to));
  return states;
}

function jsonResponse(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });
}

function historyEvent(seq: number): RoomEvent {
  return { type: "alert_raised", room: "alerts", seq, ts: "2026-01-01T00:00:00.000Z", data: { n: seq } };
}

beforeEach(() => {
  FakeWebSocket.reset();
  vi.useFakeTimers();
});

afterEach(() => {
  vi.useRealTimers();
});

describe("HubClient connection", () => {
  it("goes connecting -> open on welcome and derives the ws url", async () => {
    const client = makeClient();
    const states = recordStates(client);
    client.connect();
    await flush();
    expect(FakeWebSocket.last.url).toBe("ws://hub.test:8080/ws");
    expect(client.state).toBe("connecting");
    FakeWebSocket.last.accept();
    expect(client.state).toBe("open");
    expect(client.session?.session).toBe("s1");
    expect(states).toEqual(["connecting", "open"]);
  });

  it("asks the token provider before every attempt and sends the token", async () => {
    let n = 0;
    const client = makeClient({ token: async () => `tok ${++n}` });
    client.connect();
    await flush();
    expect(FakeWebSocket.last.url).toBe("ws://hub.test:8080/ws?token=tok%201");
    FakeWebSocket.last.drop();
    await vi.advanceTimersByTimeAsync(100);
    expect(FakeWebSocket.last.url).toBe("ws://hub.test:8080/ws?token=tok%202");
  });

  it("reconnects with exponential backoff while attempts fail, then resets after success", async () => {
    // WebSocket only: `auto` would move to SSE after two failed attempts (tested below).
    const client = makeClient({ transport: "websocket" });
    const delays: number[] = [];
    client.on("reconnect", (r) => delays.push(r.delayMs));
    const states = recordStates(client);
    client.connect();
    await flush();
    FakeWebSocket.last.drop();
    expect(client.state).toBe("reconnecting");
    for (const wait of [100, 200, 400]) {
      expect(FakeWebSocket.instances).toHaveLength(delays.length);
      await vi.advanceTimersByTimeAsync(wait - 1);
      expect(FakeWebSocket.instances).toHaveLength(delays.length); // not yet
      await vi.advanceTimersByTimeAsync(1);
      expect(FakeWebSocket.instances).toHaveLength(delays.length + 1);
      if (wait < 400) FakeWebSocket.last.drop();
    }
    expect(delays).toEqual([100, 200, 400]);
    FakeWebSocket.last.accept();
    expect(states).toEqual(["connecting", "reconnecting", "open"]);
    FakeWebSocket.last.drop();
    expect(delays[delays.length - 1]).toBe(100);
  });

  it("gives up after maxReconnectAttempts failed attempts in a row", async () => {
    const client = makeClient({ maxReconnectAttempts: 2 });
    const closes: boolean[] = [];
    client.on("close", (c) => closes.push(c.willReconnect));
    client.connect();
    await flush();
    FakeWebSocket.last.drop();
    await vi.advanceTimersByTimeAsync(100);
    FakeWebSocket.last.drop();
    expect(client.state).toBe("closed");
    expect(closes).toEqual([true, false]);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it("respects shouldReconnect", async () => {
    const client = makeClient({ shouldReconnect: (c) => c.code !== 4009 });
    client.connect();
    await flush();
    FakeWebSocket.last.accept();
    FakeWebSocket.last.drop(4009, "disconnected by an admin");
    expect(client.state).toBe("closed");
  });

  it("close() stops everything and connect() starts again", async () => {
    const client = makeClient();
    client.connect();
    await flush();
    FakeWebSocket.last.accept();
    client.close();
    expect(client.state).toBe("closed");
    expect(FakeWebSocket.last.closedByClient).toEqual({ code: 1000, reason: "client closed" });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    client.connect();
    await flush();
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it("abandons an attempt that gets no welcome in time", async () => {
    const client = makeClient({ connectTimeoutMs: 500 });
    client.connect();
    await flush();
    await vi.advanceTimersByTimeAsync(500);
    expect(client.state).toBe("reconnecting");
    expect(FakeWebSocket.instances[0]!.closedByClient).not.toBeNull();
    await vi.advanceTimersByTimeAsync(100);
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it("retries at once when the browser reports it is back online", async () => {
    const target = new EventTarget();
    const g = globalThis as unknown as Record<string, unknown>;
    const saved = { add: g.addEventListener, remove: g.removeEventListener, nav: g.navigator };
    g.addEventListener = target.addEventListener.bind(target);
    g.removeEventListener = target.removeEventListener.bind(target);
    Object.defineProperty(globalThis, "navigator", { value: { onLine: true }, configurable: true });
    try {
      const client = makeClient({ backoff: { initialDelayMs: 60_000, maxDelayMs: 60_000, jitter: 0 } });
      client.connect();
      await flush();
      FakeWebSocket.last.drop();
      expect(FakeWebSocket.instances).toHaveLength(1);
      target.dispatchEvent(new Event("online"));
      await flush();
      expect(FakeWebSocket.instances).toHaveLength(2);
      // Only while waiting: a second event during the attempt does nothing.
      target.dispatchEvent(new Event("online"));
      await flush();
      expect(FakeWebSocket.instances).toHaveLength(2);
      client.close();
      FakeWebSocket.last.accept();
      target.dispatchEvent(new Event("online"));
      await flush();
      expect(FakeWebSocket.instances).toHaveLength(2);
    } finally {
      g.addEventListener = saved.add;
      g.removeEventListener = saved.remove;
      Object.defineProperty(globalThis, "navigator", { value: saved.nav, configurable: true });
    }
  });

  it("waitFor resolves on the state and rejects on timeout", async () => {
    const client = makeClient();
    client.connect();
    await flush();
    const open = client.waitFor("open", 1_000);
    FakeWebSocket.last.accept();
    await expect(open).resolves.toBeUndefined();
    const never = client.waitFor("closed", 1_000);
    const assertion = expect(never).rejects.toThrow(/closed not reached/);
    await vi.advanceTimersByTimeAsync(1_000);
    await assertion;
  });
});

describe("HubClient app-level ping", () => {
  it("pings at the hub's heartbeat interval and treats silence as a dead connection", async () => {
    const client = makeClient({ pongTimeoutMs: 300 });
    client.connect();
    await flush();
    const socket = FakeWebSocket.last;
    socket.accept(1_000);
    await vi.advanceTimersByTimeAsync(1_000);
    const pings = socket.commands("ping");
    expect(pings).toHaveLength(1);
    socket.frame({ type: "pong", ref: pings[0]!.ref });
    await vi.advanceTimersByTimeAsync(1_000);
    expect(socket.commands("ping")).toHaveLength(2);
    expect(client.state).toBe("open");
    // No answer, nothing else: dead.
    await vi.advanceTimersByTimeAsync(300);
    expect(client.state).toBe("reconnecting");
    expect(socket.closedByClient).not.toBeNull();
    // Late frames from the abandoned socket are ignored.
    socket.event("alerts", 1);
    socket.drop();
    expect(client.state).toBe("reconnecting");
  });

  it("counts any frame as a sign of life", async () => {
    const client = makeClient({ pingIntervalMs: 1_000, pongTimeoutMs: 300 });
    client.connect();
    await flush();
    FakeWebSocket.last.accept();
    await vi.advanceTimersByTimeAsync(1_000);
    FakeWebSocket.last.frame({ type: "error", code: "bad_request", message: "x" });
    await vi.advanceTimersByTimeAsync(600);
    expect(client.state).toBe("open");
  });
});

describe("HubClient subscriptions", () => {
  it("subscribes on open, resubscribes after a reconnect with since and epoch, and drops duplicates", async () => {
    const client = makeClient();
    const seen: number[] = [];
    client.subscribe("alerts", { onEvent: (e) => seen.push(e.seq!) });
    client.connect();
    await flush();
    const first = FakeWebSocket.last;
    first.accept();
    expect(first.commands("subscribe")).toEqual([{ op: "subscribe", room: "alerts", ref: expect.any(String) }]);
    first.confirm("alerts", "e1", 2, false);
    first.event("alerts", 1);
    first.event("alerts", 2);
    first.event("alerts", 3);
    first.drop();
    await vi.advanceTimersByTimeAsync(100);
    const second = FakeWebSocket.last;
    second.accept();
    expect(second.commands("subscribe")).toEqual([
      { op: "subscribe", room: "alerts", since: 3, epoch: "e1", ref: expect.any(String) },
    ]);
    second.confirm("alerts", "e1", 5, true);
    second.event("alerts", 3); // a repeat must not reach the application
    second.event("alerts", 4);
    second.event("alerts", 5);
    expect(seen).toEqual([1, 2, 3, 4, 5]);
    expect(client.position("alerts")).toEqual({ since: 5, epoch: "e1" });
  });

  it("sends a subscribe immediately when already open, and one unsubscribe after the last handle goes", async () => {
    const client = makeClient();
    client.connect();
    await flush();
    const socket = FakeWebSocket.last;
    socket.accept();
    const a = client.subscribe("hotspots");
    const b = client.subscribe("hotspots");
    expect(socket.commands("subscribe")).toHaveLength(1);
    a.unsubscribe();
    expect(socket.commands("unsubscribe")).toHaveLength(0);
    b.unsubscribe();
    b.unsubscribe();
    expect(socket.commands("unsubscribe")).toEqual([{ op: "unsubscribe", room: "hotspots", ref: expect.any(String) }]);
    expect(client.subscribedRooms()).toEqual([]);
  });

  it("routes typed handlers by event type", async () => {
    const client = makeClient();
    const zones: string[] = [];
    const sub = client.subscribe("hotspots");
    sub.on("hotspot_detected", (e) => zones.push(e.data.zone));
    client.connect();
    await flush();
    FakeWebSocket.last.accept();
    FakeWebSocket.last.confirm("hotspots", "e1", 0, false);
    FakeWebSocket.last.frame({ type: "hotspot_detected", room: "hotspots", seq: 1, data: { zone: "A" } });
    FakeWebSocket.last.frame({ type: "other", room: "hotspots", seq: 2, data: {} });
    FakeWebSocket.last.frame({ type: "hotspot_detected", room: "hotspots", seq: 3, data: { zone: "B" } });
    expect(zones).toEqual(["A", "B"]);
  });

  it("does not resend since/epoch for system rooms and passes their events through", async () => {
    const client = makeClient();
    const counts: unknown[] = [];
    client.subscribe("$status", { onEvent: (e) => counts.push((e.data as unknown as { total_sockets: number }).total_sockets) });
    client.connect();
    await flush();
    FakeWebSocket.last.accept();
    FakeWebSocket.last.confirm("$status", "status", 0, false);
    FakeWebSocket.last.frame({ type: "status_update", room: "$status", data: { total_sockets: 1 } });
    FakeWebSocket.last.frame({ type: "status_update", room: "$status", data: { total_sockets: 2 } });
    FakeWebSocket.last.drop();
    await vi.advanceTimersByTimeAsync(100);
    FakeWebSocket.last.accept();
    expect(FakeWebSocket.last.commands("subscribe")).toEqual([{ op: "subscribe", room: "$status", ref: expect.any(String) }]);
    expect(counts).toEqual([1, 2]);
  });

  it("reports a permanent subscribe error to the subscription and retries a transient one", async () => {
    const client = makeClient();
    const errors: string[] = [];
    client.subscribe("nope", { onError: (e) => errors.push(e.code) });
    client.subscribe("busy", { onError: (e) => errors.push(e.code) });
    client.connect();
    await flush();
    const socket = FakeWebSocket.last;
    socket.accept();
    const [nope, busy] = socket.commands("subscribe");
    socket.frame({ type: "error", code: "unknown_room", message: "no such room", ref: nope!.ref });
    socket.frame({ type: "error", code: "rate_limited", message: "slow down", ref: busy!.ref });
    expect(errors).toEqual(["unknown_room", "rate_limited"]);
    await vi.advanceTimersByTimeAsync(100);
    expect(socket.commands("subscribe").map((c) => c.room)).toEqual(["nope", "busy", "busy"]);
  });

  it("rejects invalid room names", () => {
    const client = makeClient();
    expect(() => client.subscribe("Bad Room")).toThrow(TypeError);
    expect(() => client.subscribe("")).toThrow(TypeError);
    expect(() => client.subscribe("a".repeat(65))).toThrow(TypeError);
    expect(() => client.subscribe("ok.room:1-x_y")).not.toThrow();
  });

  it("surfaces malformed frames as errors without dropping the connection", async () => {
    const client = makeClient();
    const errors: HubError[] = [];
    client.on("error", (e) => errors.push(e));
    client.connect();
    await flush();
    FakeWebSocket.last.accept();
    FakeWebSocket.last.raw("{not json");
    FakeWebSocket.last.raw(new Uint8Array([1, 2]));
    expect(errors.map((e) => e.code)).toEqual(["bad_frame", "bad_frame"]);
    expect(client.state).toBe("open");
  });
});

describe("HubClient resync through HTTP history", () => {
  async function connectedWithHistory(fetchImpl: HubClientOptions["fetch"]) {
    const client = makeClient({ fetch: fetchImpl });
    const seen: number[] = [];
    const resyncs: ResyncInfo<Feeds>[] = [];
    client.subscribe("alerts", {
      onEvent: (e) => seen.push(e.seq!),
      onResync: (info) => resyncs.push(info),
    });
    client.connect();
    await flush();
    FakeWebSocket.last.accept();
    FakeWebSocket.last.confirm("alerts", "old", 0, false);
    FakeWebSocket.last.event("alerts", 1);
    FakeWebSocket.last.event("alerts", 2);
    FakeWebSocket.last.drop();
    await vi.advanceTimersByTimeAsync(100);
    FakeWebSocket.last.accept();
    return { client, seen, resyncs, socket: FakeWebSocket.last };
  }

  it("reads history (all pages) after recovered:false and replaces the room's events", async () => {
    const urls: string[] = [];
    const pages: Record<string, RoomEvent[]> = { "0": [1, 2].map(historyEvent), "2": [3].map(historyEvent) };
    const fetchImpl = vi.fn(async (url: string) => {
      urls.push(url);
      const since = new URL(url).searchParams.get("since")!;
      return jsonResponse({ room: "alerts", epoch: "new", seq: 3, events: pages[since] ?? [] });
    });
    const { seen, resyncs, socket } = await connectedWithHistory(fetchImpl);
    socket.confirm("alerts", "new", 2, false);
    socket.event("alerts", 1); // snapshot, buffered during the resync
    socket.event("alerts", 2);
    await flush();
    expect(urls).toEqual([
      "http://hub.test:8080/api/rooms/alerts/history?since=0",
      "http://hub.test:8080/api/rooms/alerts/history?since=2",
    ]);
    expect(resyncs).toHaveLength(1);
    expect(resyncs[0]).toMatchObject({ room: "alerts", reason: "epoch_changed", epoch: "new", source: "history" });
    expect(resyncs[0]!.events.map((e) => e.seq)).toEqual([1, 2, 3]);
    // Events replaced by the resync are not also replayed as live events.
    expect(seen).toEqual([1, 2]);
    socket.event("alerts", 3);
    socket.event("alerts", 4);
    expect(seen).toEqual([1, 2, 4]);
  });

  it("falls back to the socket snapshot and reports an error when history fails", async () => {
    const fetchImpl = vi.fn(async () => jsonResponse({ error: "unavailable", message: "down" }, 503));
    const { client, resyncs, socket } = await connectedWithHistory(fetchImpl);
    const errors: HubError[] = [];
    client.on("error", (e) => errors.push(e));
    socket.confirm("alerts", "new", 1, false);
    socket.event("alerts", 1);
    await flush();
    expect(errors.map((e) => [e.code, e.room, (e.cause as { code?: string }).code])).toEqual([
      ["resync_failed", "alerts", "unavailable"],
    ]);
    expect(resyncs).toHaveLength(1);
    expect(resyncs[0]!.source).toBe("snapshot");
    expect(resyncs[0]!.events.map((e) => e.seq)).toEqual([1]);
  });

  it("abandons a resync when the connection drops and resyncs again on the next session", async () => {
    let release: (r: Response) => void = () => {};
    const fetchImpl = vi.fn(
      () =>
        new Promise<Response>((resolve) => {
          release = resolve;
        }),
    );
    const { resyncs, socket } = await connectedWithHistory(fetchImpl);
    socket.confirm("alerts", "new", 0, false);
    await flush();
    socket.drop();
    release(jsonResponse({ room: "alerts", epoch: "new", seq: 0, events: [] }));
    await flush();
    expect(resyncs).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(100);
    FakeWebSocket.last.accept();
    // Still resuming from the old epoch: the hub must say recovered:false again.
    expect(FakeWebSocket.last.commands("subscribe")[0]).toMatchObject({ since: 2, epoch: "old" });
  });
});

describe("HubClient resync started by the hub (unsolicited subscribed)", () => {
  it("resyncs from the current position when the hub restarts a subscribed room with a new epoch", async () => {
    const urls: string[] = [];
    const fetchImpl = vi.fn(async (url: string) => {
      urls.push(url);
      return jsonResponse({
        room: "alerts",
        epoch: "e2",
        seq: 2,
        events: [1, 2].map(historyEvent),
      });
    });
    const client = makeClient({ fetch: fetchImpl });
    const seen: Array<[string | undefined, number]> = [];
    const resyncs: ResyncInfo<Feeds>[] = [];
    const outcomes: string[] = [];
    client.on("subscribed", (info) => outcomes.push(info.outcome));
    client.subscribe("alerts", {
      onEvent: (e) => seen.push([client.position("alerts").epoch, e.seq!]),
      onResync: (info) => resyncs.push(info),
    });
    client.connect();
    await flush();
    const socket = FakeWebSocket.last;
    socket.accept();
    // Fresh subscription (no since/epoch sent), then three live events.
    expect(socket.commands("subscribe")).toEqual([{ op: "subscribe", room: "alerts", ref: expect.any(String) }]);
    socket.confirm("alerts", "e1", 0, false);
    socket.event("alerts", 1);
    socket.event("alerts", 2);
    socket.event("alerts", 3);
    expect(client.position("alerts")).toEqual({ since: 3, epoch: "e1" });

    // The hub lost the room (e.g. Redis restarted empty): subscribed with no ref,
    // a new epoch and its head, then the snapshot, then live events.
    socket.frame({ type: "subscribed", room: "alerts", epoch: "e2", seq: 2, recovered: false });
    socket.event("alerts", 1); // snapshot, held back during the resync
    socket.event("alerts", 2);
    await flush();

    expect(outcomes).toEqual(["fresh", "resync"]);
    expect(urls).toEqual(["http://hub.test:8080/api/rooms/alerts/history?since=0"]);
    expect(resyncs).toHaveLength(1);
    expect(resyncs[0]).toMatchObject({ room: "alerts", reason: "epoch_changed", epoch: "e2", source: "history" });
    expect(resyncs[0]!.events.map((e) => e.seq)).toEqual([1, 2]);
    expect(client.position("alerts")).toEqual({ since: 2, epoch: "e2" });

    // Live events of the new epoch are delivered after the resync, not dropped as
    // "duplicates" of the old epoch's seqs.
    socket.event("alerts", 3);
    socket.event("alerts", 4);
    expect(seen).toEqual([
      ["e1", 1],
      ["e1", 2],
      ["e1", 3],
      ["e2", 3],
      ["e2", 4],
    ]);
    expect(client.position("alerts")).toEqual({ since: 4, epoch: "e2" });
    // No new subscribe was sent: the hub keeps the socket subscribed.
    expect(socket.commands("subscribe")).toHaveLength(1);
  });

  it("reports history_gap when the epoch is unchanged, judged against the current position", async () => {
    const fetchImpl = vi.fn(async () =>
      jsonResponse({ room: "alerts", epoch: "e1", seq: 300, events: [299, 300].map(historyEvent) }),
    );
    const client = makeClient({ fetch: fetchImpl });
    const resyncs: ResyncInfo<Feeds>[] = [];
    client.subscribe("alerts", { onResync: (info) => resyncs.push(info) });
    client.connect();
    await flush();
    const first = FakeWebSocket.last;
    first.accept();
    first.confirm("alerts", "e0", 0, false);
    first.drop();
    await vi.advanceTimersByTimeAsync(100);
    const socket = FakeWebSocket.last;
    socket.accept();
    // Resumed, sent with epoch e0 — then a new epoch e1 was seen on this socket.
    socket.confirm("alerts", "e0", 0, true);
    socket.frame({ type: "subscribed", room: "alerts", epoch: "e1", seq: 0, recovered: false });
    await flush();
    expect(resyncs.map((r) => r.reason)).toEqual(["epoch_changed"]);
    expect(client.position("alerts")).toEqual({ since: 300, epoch: "e1" });
    // Same epoch as the current position (e1), not as the one sent (e0).
    socket.frame({ type: "subscribed", room: "alerts", epoch: "e1", seq: 500, recovered: false });
    await flush();
    expect(resyncs.map((r) => r.reason)).toEqual(["epoch_changed", "history_gap"]);
  });
});

describe("HubClient publish", () => {
  it("resolves with the seq, rejects on an error reply, and rejects when the connection drops", async () => {
    const client = makeClient();
    await expect(client.publish("alerts", "alert_raised", { n: 1 })).rejects.toThrow(/not connected/);
    client.connect();
    await flush();
    const socket = FakeWebSocket.last;
    socket.accept();
    const ok = client.publish("alerts", "alert_raised", { n: 1 });
    const cmd = socket.commands("publish")[0]!;
    expect(cmd).toMatchObject({ room: "alerts", type: "alert_raised", data: { n: 1 } });
    socket.frame({ type: "published", room: "alerts", seq: 7, ref: cmd.ref });
    await expect(ok).resolves.toEqual({ room: "alerts", seq: 7 });

    const refused = client.publish("alerts", "alert_raised", { n: 2 });
    socket.frame({ type: "error", code: "publish_disabled", message: "no", ref: socket.commands("publish")[1]!.ref });
    await expect(refused).rejects.toMatchObject({ code: "publish_disabled", room: "alerts" });

    const lost = client.publish("alerts", "alert_raised", { n: 3 });
    socket.drop();
    await expect(lost).rejects.toMatchObject({ code: "not_connected" });
  });
});

describe("HubClient keyed rooms", () => {
  function keyed(seq: number, key: string, del = false): RoomEvent {
    return { type: "alert_raised", room: "alerts", seq, ts: "t", key, ...(del ? { delete: true } : {}), data: { n: seq } };
  }

  it("hands the state to onState, live events to onEvent, and a failed resume a state with no HTTP call", async () => {
    const client = makeClient(); // its fetch fails the test if called
    const states: StateInfo<Feeds>[] = [];
    const seen: number[] = [];
    client.subscribe("alerts", { onState: (s) => states.push(s), onEvent: (e) => seen.push(e.seq!) });
    client.connect();
    await flush();
    const socket = FakeWebSocket.last;
    socket.accept();
    const ref = socket.commands("subscribe")[0]!.ref;
    socket.frame({ type: "subscribed", room: "alerts", epoch: "e1", seq: 9, recovered: false, state: 2, ref });
    socket.frame(keyed(4, "a"));
    expect(states).toHaveLength(0);
    socket.frame(keyed(9, "b"));
    expect(states).toHaveLength(1);
    expect(states[0]).toMatchObject({ room: "alerts", epoch: "e1", seq: 9, reason: "fresh" });
    expect(states[0]!.events.map((e) => e.key)).toEqual(["a", "b"]);
    socket.frame(keyed(10, "a", true));
    expect(seen).toEqual([10]);

    socket.drop();
    await vi.advanceTimersByTimeAsync(100);
    const next = FakeWebSocket.last;
    next.accept();
    expect(next.commands("subscribe")[0]).toMatchObject({ since: 10, epoch: "e1" });
    const ref2 = next.commands("subscribe")[0]!.ref;
    next.frame({ type: "subscribed", room: "alerts", epoch: "e2", seq: 3, recovered: false, state: 1, ref: ref2 });
    next.frame(keyed(3, "c"));
    await flush();
    expect(states.map((s) => [s.reason, s.epoch, s.seq])).toEqual([
      ["fresh", "e1", 9],
      ["epoch_changed", "e2", 3],
    ]);
    expect(seen).toEqual([10]);
    expect(client.position("alerts")).toEqual({ since: 3, epoch: "e2" });
  });

  it("publishes with a key and delete over the socket", async () => {
    const client = makeClient();
    client.connect();
    await flush();
    FakeWebSocket.last.accept();
    void client.publish("alerts", "alert_raised", { n: 1 }, { key: "k 1" });
    void client.publish("alerts", "alert_raised", undefined, { key: "k 1", delete: true });
    const sent = FakeWebSocket.last.commands("publish").map(({ ref: _ref, ...rest }) => rest);
    expect(sent).toEqual([
      { op: "publish", room: "alerts", type: "alert_raised", data: { n: 1 }, key: "k 1" },
      { op: "publish", room: "alerts", type: "alert_raised", key: "k 1", delete: true },
    ]);
  });
});
