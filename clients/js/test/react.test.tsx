// @vitest-environment happy-dom
import { act, useState, type ReactNode } from "react";
import { createRoot, type Root } from "react-dom/client";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HubClient, type RoomEvent } from "../src/index.js";
import {
  ConnectionStatus,
  HubProvider,
  SocketStatusIndicator,
  useConnectionState,
  useHubClient,
  useHubEvent,
  usePresence,
  useRoom,
  useRoomState,
  type KeyedRoomState,
  type PresenceState,
  type RoomState,
} from "../src/react/index.js";
import { FakeSse, sseFrame, sseWelcome } from "./support/fake-sse.js";
import { FakeWebSocket } from "./support/fake-websocket.js";
import { eventually } from "./support/wait.js";

(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = true;

let container: HTMLElement;
let root: Root;

function newClient(): HubClient {
  return new HubClient({
    url: "http://hub.test",
    WebSocket: FakeWebSocket,
    backoff: { initialDelayMs: 10_000, jitter: 0 },
    fetch: async () =>
      new Response(JSON.stringify({ room: "alerts", epoch: "e2", seq: 2, events: [ev(1), ev(2)] }), { status: 200 }),
  });
}

function ev(seq: number, type = "alert_raised"): RoomEvent {
  return { type, room: "alerts", seq, ts: "2026-01-01T00:00:00.000Z", data: { n: seq } };
}

async function render(ui: ReactNode): Promise<void> {
  await act(async () => root.render(ui));
}

/** Runs hub-side actions inside act() so React flushes the updates they cause. */
async function hub(fn: () => void): Promise<void> {
  await act(async () => fn());
}

async function openSocket(): Promise<FakeWebSocket> {
  await hub(() => {}); // let the client open its socket (token is awaited)
  const socket = FakeWebSocket.last;
  await hub(() => socket.accept());
  return socket;
}

const status = (total: number, active = true) => ({
  active,
  total_sockets: total,
  sockets_by_type: { connect: total },
  rooms: { $status: 1, alerts: total },
  timestamp: "2026-01-01T00:00:00Z",
  ws_endpoints: { connect: "/ws" },
  node: "n1",
  uptime_s: 3725,
});

beforeEach(() => {
  FakeWebSocket.reset();
  container = document.createElement("div");
  document.body.appendChild(container);
  root = createRoot(container);
});

afterEach(async () => {
  await act(async () => root.unmount());
  container.remove();
});

describe("ConnectionStatus / useConnectionState", () => {
  it("shows each state as text in a polite live region", async () => {
    const client = newClient();
    await render(
      <HubProvider client={client}>
        <ConnectionStatus labels={{ closed: "Gone" }} />
      </HubProvider>,
    );
    const badge = () => container.querySelector(".rh-badge")!;
    expect(badge().getAttribute("data-state")).toBe("connecting");
    expect(badge().getAttribute("role")).toBe("status");
    expect(badge().getAttribute("aria-live")).toBe("polite");
    expect(badge().textContent).toBe("Connecting…");
    const socket = await openSocket();
    expect(badge().getAttribute("data-state")).toBe("open");
    expect(badge().getAttribute("aria-label")).toBe("Connection: Live (WebSocket)");
    expect(badge().getAttribute("data-transport")).toBe("websocket");
    expect(badge().querySelector(".rh-badge__transport")?.textContent).toBe("WebSocket");
    await hub(() => socket.drop());
    expect(badge().textContent).toBe("Reconnecting…");
    expect(badge().getAttribute("data-transport")).toBe("none");
    await hub(() => client.close());
    expect(badge().textContent).toBe("Gone");
  });

  it("supports conditional rendering on the state", async () => {
    function Gate(): ReactNode {
      const state = useConnectionState();
      return state === "open" ? <p id="content">data</p> : <p id="wait">waiting</p>;
    }
    await render(
      <HubProvider client={newClient()}>
        <Gate />
      </HubProvider>,
    );
    expect(container.querySelector("#wait")).not.toBeNull();
    await openSocket();
    expect(container.querySelector("#content")?.textContent).toBe("data");
  });
});

describe("useRoom", () => {
  let seen: RoomState | null;
  function Probe({ room, limit }: { room: string; limit?: number }): ReactNode {
    seen = useRoom(room, { limit });
    return null;
  }

  beforeEach(() => {
    seen = null;
  });

  it("keeps only the latest `limit` events, oldest first", async () => {
    await render(
      <HubProvider client={newClient()}>
        <Probe room="alerts" limit={3} />
      </HubProvider>,
    );
    const socket = await openSocket();
    await hub(() => {
      socket.confirm("alerts", "e1", 0, false);
      for (let seq = 1; seq <= 5; seq += 1) socket.event("alerts", seq);
    });
    expect(seen!.events.map((e) => e.seq)).toEqual([3, 4, 5]);
    expect(seen!.latest?.seq).toBe(5);
    expect(seen!.subscription).toMatchObject({ room: "alerts", epoch: "e1", outcome: "fresh" });
  });

  it("replaces its events when the room is resynced", async () => {
    const client = newClient();
    await render(
      <HubProvider client={client}>
        <Probe room="alerts" />
      </HubProvider>,
    );
    const first = await openSocket();
    await hub(() => {
      first.confirm("alerts", "e1", 0, false);
      first.event("alerts", 1);
      first.event("alerts", 2);
      first.event("alerts", 3);
      first.drop();
    });
    await act(async () => {
      client.close();
      client.connect();
    });
    const second = await openSocket();
    await hub(() => second.confirm("alerts", "e2", 2, false));
    await hub(() => {}); // history fetch settles
    expect(seen!.events.map((e) => e.seq)).toEqual([1, 2]);
    expect(seen!.lastResync).toEqual({ reason: "epoch_changed", epoch: "e2", source: "history", count: 2 });
  });

  it("leaves the room on unmount and starts empty for a new room", async () => {
    function Switch(): ReactNode {
      const [room, setRoom] = useState<string | null>("alerts");
      (globalThis as { setRoom?: (r: string | null) => void }).setRoom = setRoom;
      return room ? <Probe room={room} /> : null;
    }
    await render(
      <HubProvider client={newClient()}>
        <Switch />
      </HubProvider>,
    );
    const socket = await openSocket();
    await hub(() => {
      socket.confirm("alerts", "e1", 0, false);
      socket.event("alerts", 1);
    });
    const setRoom = (globalThis as { setRoom?: (r: string | null) => void }).setRoom!;
    await act(async () => setRoom("hotspots"));
    expect(seen!.events).toEqual([]);
    expect(socket.commands("unsubscribe").map((c) => c.room)).toEqual(["alerts"]);
    expect(socket.commands("subscribe").map((c) => c.room)).toEqual(["alerts", "hotspots"]);
  });
});

describe("useRoomState", () => {
  let seen: KeyedRoomState | null;
  function Probe(): ReactNode {
    seen = useRoomState("alerts");
    return null;
  }
  const keyed = (seq: number, key: string, status: string | null) => ({
    type: status === null ? "removed" : "changed",
    room: "alerts",
    seq,
    ts: "t",
    key,
    ...(status === null ? { delete: true } : {}),
    data: status === null ? null : { status },
  });
  const statuses = () => [...seen!.entries].map(([k, e]) => [k, (e.data as { status: string }).status]);

  it("takes the state, applies updates and deletes, and replaces it on a state replay", async () => {
    const client = newClient();
    await render(
      <HubProvider client={client}>
        <Probe />
      </HubProvider>,
    );
    const socket = await openSocket();
    expect(seen!.status).toBe("loading");
    const ref = socket.commands("subscribe")[0]!.ref;
    await hub(() => {
      socket.frame({ type: "subscribed", room: "alerts", epoch: "e1", seq: 5, recovered: false, state: 2, ref });
      socket.frame(keyed(2, "r1", "open"));
      socket.frame(keyed(5, "r2", "open"));
    });
    expect(seen!.status).toBe("live");
    expect(seen!.seq).toBe(5);
    expect(statuses()).toEqual([
      ["r1", "open"],
      ["r2", "open"],
    ]);
    await hub(() => {
      socket.frame(keyed(6, "r1", "approved"));
      socket.frame(keyed(7, "r2", null));
      socket.frame(keyed(8, "r3", "open"));
    });
    expect(statuses()).toEqual([
      ["r1", "approved"],
      ["r3", "open"],
    ]);
    expect(seen!.seq).toBe(8);
    await hub(() => socket.drop());
    expect(seen!.status).toBe("stale");
    await act(async () => {
      client.close();
      client.connect();
    });
    const next = await openSocket();
    // Open again, but the hub has not answered the resubscribe: still behind.
    expect(seen!.status).toBe("stale");
    const ref2 = next.commands("subscribe")[0]!.ref;
    await hub(() => {
      next.frame({ type: "subscribed", room: "alerts", epoch: "e2", seq: 1, recovered: false, state: 1, ref: ref2 });
    });
    expect(seen!.status).toBe("stale"); // its state is on the way
    await hub(() => next.frame(keyed(1, "r9", "open")));
    expect(seen!.status).toBe("live");
    expect(statuses()).toEqual([["r9", "open"]]);
  });
});

describe("useHubEvent", () => {
  it("calls the latest handler for one event type without resubscribing", async () => {
    const calls: string[] = [];
    function Listener({ tag }: { tag: string }): ReactNode {
      useHubEvent("alerts", "alert_raised", (e) => calls.push(`${tag}:${e.seq}`));
      return null;
    }
    const client = newClient();
    await render(
      <HubProvider client={client}>
        <Listener tag="a" />
      </HubProvider>,
    );
    const socket = await openSocket();
    await hub(() => {
      socket.confirm("alerts", "e1", 0, false);
      socket.event("alerts", 1);
      socket.event("alerts", 2, "other_type");
    });
    await render(
      <HubProvider client={client}>
        <Listener tag="b" />
      </HubProvider>,
    );
    await hub(() => socket.event("alerts", 3));
    expect(calls).toEqual(["a:1", "b:3"]);
    expect(socket.commands("subscribe")).toHaveLength(1);
  });
});

describe("SocketStatusIndicator", () => {
  async function mount(variant: "compact" | "full" | "details") {
    const client = newClient();
    await render(
      <HubProvider client={client}>
        <SocketStatusIndicator variant={variant} theme="dark" />
      </HubProvider>,
    );
    return { client, socket: await openSocket() };
  }

  it("compact: unknown until the $status room reports, then the live socket count", async () => {
    const { socket } = await mount("compact");
    const el = () => container.querySelector(".rh-status")!;
    expect(el().getAttribute("data-health")).toBe("unknown");
    expect(el().textContent).toBe("–");
    expect(socket.commands("subscribe")).toEqual([{ op: "subscribe", room: "$status", ref: expect.any(String) }]);
    await hub(() => {
      socket.confirm("$status", "", 0, false);
      socket.frame({ type: "status_update", room: "$status", data: status(7) });
    });
    expect(el().getAttribute("data-health")).toBe("ok");
    expect(el().getAttribute("data-rh-theme")).toBe("dark");
    expect(el().textContent).toBe("7");
    expect(el().getAttribute("aria-label")).toBe("Hub active: 7 sockets, 2 rooms");
    await hub(() => socket.frame({ type: "status_update", room: "$status", data: status(1, false) }));
    expect(el().getAttribute("data-health")).toBe("draining");
    expect(el().getAttribute("aria-label")).toBe("Hub draining: 1 socket, 2 rooms");
    await hub(() => socket.drop());
    expect(el().getAttribute("data-health")).toBe("unknown");
    expect(el().getAttribute("aria-label")).toBe("Last known: 1 socket, 2 rooms");
  });

  it("full: a one-line summary that says when it is only the last known state", async () => {
    const { socket } = await mount("full");
    const el = () => container.querySelector('.rh-status--full[role="status"]')!;
    expect(el().textContent).toBe("Hub status unknown");
    await hub(() => {
      socket.confirm("$status", "", 0, false);
      socket.frame({ type: "status_update", room: "$status", data: status(3) });
    });
    expect(el().textContent).toBe("Hub active: 3 sockets, 2 rooms");
    await hub(() => socket.drop());
    expect(el().textContent).toBe("Last known: 3 sockets, 2 rooms");
  });

  it("details: summary plus captioned tables of sockets and rooms", async () => {
    const { socket } = await mount("details");
    await hub(() => {
      socket.confirm("$status", "", 0, false);
      socket.frame({ type: "status_update", room: "$status", data: status(2) });
    });
    const section = container.querySelector("section.rh-status--details")!;
    expect(section.getAttribute("aria-label")).toBe("Hub socket status");
    expect(section.querySelector('[role="status"]')?.textContent).toContain("Hub active: 2 sockets, 2 rooms");
    const captions = [...section.querySelectorAll("caption")].map((c) => c.textContent);
    expect(captions).toEqual(["Sockets by type", "Subscribers by room"]);
    const rows = [...section.querySelectorAll("tbody tr")].map((tr) => tr.textContent);
    expect(rows).toEqual(["connect2", "$status1", "alerts2"]);
    expect(section.textContent).toContain("1h 2m 5s");
  });
});

describe("HubProvider", () => {
  it("creates, connects and on unmount closes a client from options", async () => {
    let client: HubClient | null = null;
    function Grab(): ReactNode {
      client = useHubClient();
      return null;
    }
    await render(
      <HubProvider options={{ url: "http://hub.test", WebSocket: FakeWebSocket }}>
        <Grab />
      </HubProvider>,
    );
    await openSocket();
    expect(client!.state).toBe("open");
    await act(async () => root.render(null));
    expect(client!.state).toBe("closed");
    expect(FakeWebSocket.last.closedByClient).toEqual({ code: 1000, reason: "client closed" });
  });

  it("useHubClient outside a provider is an error", async () => {
    function Orphan(): ReactNode {
      useHubClient();
      return null;
    }
    const orphanRoot = createRoot(document.createElement("div"));
    await expect(act(async () => orphanRoot.render(<Orphan />))).rejects.toThrow(/inside <HubProvider>/);
  });
});

describe("on the SSE transport", () => {
  it("ConnectionStatus shows SSE and useRoom gets the room's events, resumed after a dropped stream", async () => {
    const fake = new FakeSse();
    const client = new HubClient({
      url: "http://hub.test",
      transport: "sse",
      fetch: fake.fetch,
      backoff: { initialDelayMs: 10, jitter: 0 },
    });
    let seen: RoomState | null = null;
    function Probe(): ReactNode {
      seen = useRoom("alerts");
      return <ConnectionStatus />;
    }
    await render(
      <HubProvider client={client}>
        <Probe />
      </HubProvider>,
    );
    const first = await fake.requests.first("stream", () => true);
    await hub(() => {
      first.write(sseWelcome + sseFrame({ type: "subscribed", room: "alerts", epoch: "e1", seq: 0, recovered: false }));
    });
    await act(() => eventually("welcome handled", () => client.state === "open"));
    const badge = () => container.querySelector(".rh-badge")!;
    expect(badge().getAttribute("data-transport")).toBe("sse");
    expect(badge().querySelector(".rh-badge__transport")?.textContent).toBe("SSE");
    expect(badge().getAttribute("aria-label")).toBe("Connection: Live (SSE)");
    await hub(() => {
      for (const seq of [1, 2]) first.write(sseFrame({ type: "alert_raised", room: "alerts", seq, data: { n: seq } }));
    });
    await act(() => eventually("2 events", () => seen!.events.length === 2));
    await hub(() => first.end());
    const second = await act(() => fake.requests.first("second stream", (r) => r !== first));
    expect(second.url.searchParams.get("last_event_id")).toBe("v1;alerts/e1/2");
    await hub(() => {
      second.write(sseWelcome + sseFrame({ type: "subscribed", room: "alerts", epoch: "e1", seq: 3, recovered: true }));
      second.write(sseFrame({ type: "alert_raised", room: "alerts", seq: 3, data: { n: 3 } }));
    });
    await act(() => eventually("3 events", () => seen!.events.length === 3));
    expect(seen!.events.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(seen!.subscription).toMatchObject({ outcome: "resumed" });
    client.close();
  });
});

describe("usePresence", () => {
  it("asks once per subscription, then follows joins and leaves; after a reconnect it asks again", async () => {
    const client = newClient();
    let seen: PresenceState | null = null;
    function Probe(): ReactNode {
      seen = usePresence("ops");
      return null;
    }
    await render(
      <HubProvider client={client}>
        <Probe />
      </HubProvider>,
    );
    const socket = await openSocket();
    expect(socket.commands("presence")).toHaveLength(0); // not before the subscription is confirmed
    await hub(() => socket.confirm("ops", "e1", 0, false));
    const [ask] = socket.commands("presence");
    expect(ask).toMatchObject({ op: "presence", room: "ops" });
    expect(seen!.loaded).toBe(false);
    await hub(() =>
      socket.frame({ type: "presence", room: "ops", users: [{ user: "alice", sessions: 2 }], anonymous: 1, ref: ask!.ref }),
    );
    expect(seen).toMatchObject({ users: [{ user: "alice", sessions: 2 }], anonymous: 1, loaded: true, error: null });
    await hub(() => socket.frame({ type: "presence_join", room: "ops", user: "bob" }));
    expect(seen!.users).toEqual([
      { user: "alice", sessions: 2 },
      { user: "bob", sessions: 1 },
    ]);
    await hub(() => socket.frame({ type: "presence_leave", room: "ops", user: "alice" }));
    expect(seen!.users).toEqual([{ user: "bob", sessions: 1 }]);

    // Reconnect: a new ask; a join that arrives before its answer is kept even if the answer predates it.
    await hub(() => socket.drop());
    await hub(() => client.reconnectNow());
    const second = FakeWebSocket.last;
    expect(second).not.toBe(socket);
    await hub(() => second.accept());
    await hub(() => second.confirm("ops", "e1", 0, true));
    const [again] = second.commands("presence");
    expect(again).toBeDefined();
    await hub(() => second.frame({ type: "presence_join", room: "ops", user: "carol" }));
    await hub(() =>
      second.frame({ type: "presence", room: "ops", users: [{ user: "bob", sessions: 3 }], anonymous: 0, ref: again!.ref }),
    );
    expect(seen).toMatchObject({
      users: [
        { user: "bob", sessions: 3 },
        { user: "carol", sessions: 1 },
      ],
      anonymous: 0,
      loaded: true,
    });
  });

  it("reports a room without presence as an error", async () => {
    const client = newClient();
    let seen: PresenceState | null = null;
    function Probe(): ReactNode {
      seen = usePresence("alerts");
      return null;
    }
    await render(
      <HubProvider client={client}>
        <Probe />
      </HubProvider>,
    );
    const socket = await openSocket();
    await hub(() => socket.confirm("alerts", "e1", 0, false));
    const [ask] = socket.commands("presence");
    await hub(() => socket.frame({ type: "error", code: "bad_request", message: "no presence", ref: ask!.ref }));
    expect(seen!.error?.code).toBe("bad_request");
    expect(seen!.loaded).toBe(false);
  });
});
