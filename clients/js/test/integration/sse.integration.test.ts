/**
 * The SSE transport against the real hub over real TCP: `transport: "sse"`,
 * exact resumes after a dropped stream and after room changes, keyed state,
 * token functions, and `auto` falling back when a proxy refuses WebSocket
 * upgrades, then going back to WebSocket once they pass again.
 */

import { createHmac } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { HubClient, HubHttp, type HubClientOptions, type StateInfo, type SubscribedInfo } from "../../src/index.js";
import type { RoomEvent, SocketStatus } from "../../src/protocol.js";
import type { ConnectionState } from "../../src/state.js";
import { HubProcess } from "../support/hub.js";
import { HttpProxy, streamIds } from "../support/http-proxy.js";
import { Recorder, eventually } from "../support/wait.js";

const clients: HubClient[] = [];
const proxies: HttpProxy[] = [];
const hubs: HubProcess[] = [];
let roomCounter = 0;

function uniqueRoom(prefix: string): string {
  roomCounter += 1;
  return `${prefix}-${process.pid}-${roomCounter}`;
}

function newClient(url: string, options: Partial<HubClientOptions> = {}): HubClient {
  const client = new HubClient({
    url,
    WebSocket: WebSocket as unknown as HubClientOptions["WebSocket"],
    backoff: { initialDelayMs: 50, maxDelayMs: 500, jitter: 0.5 },
    transport: "sse",
    ...options,
  });
  clients.push(client);
  return client;
}

async function proxyTo(hub: HubProcess, refuseUpgrades = false): Promise<HttpProxy> {
  const proxy = await HttpProxy.start(hub.port, { refuseUpgrades });
  proxies.push(proxy);
  return proxy;
}

function watchRoom(client: HubClient, room: string) {
  const events = new Recorder<RoomEvent>();
  const subscribed = new Recorder<SubscribedInfo>();
  const sub = client.subscribe(room, { onEvent: events.push, onSubscribed: subscribed.push });
  return { sub, events, subscribed };
}

function watchStates(client: HubClient): Recorder<ConnectionState> {
  const states = new Recorder<ConnectionState>();
  client.on("state", (c) => states.push(c.to));
  return states;
}

const seqs = (events: readonly RoomEvent[]) => events.map((e) => e.seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const lastEventId = (path: string) => new URL(path, "http://x").searchParams.get("last_event_id");
const roomsOf = (path: string) => new URL(path, "http://x").searchParams.get("rooms");

async function publishMany(hub: HubProcess, room: string, count: number, tag: string) {
  for (let i = 0; i < count; i += 1) await hub.publish(room, "alert_raised", { tag, i });
}

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const proxy of proxies.splice(0)) await proxy.close();
});

afterAll(async () => {
  for (const hub of hubs.splice(0)) await hub.stop();
});

describe("transport sse against a running hub", () => {
  let hub: HubProcess;

  beforeAll(async () => {
    hub = await HubProcess.start();
    hubs.push(hub);
  });

  it("receives welcome, subscribed, the snapshot and live events, counted as an sse session", async () => {
    const room = uniqueRoom("sse-live");
    await publishMany(hub, room, 2, "before");
    const client = newClient(hub.url);
    const transports = new Recorder<string | null>();
    client.on("transport", (t) => transports.push(t.to));
    const w = watchRoom(client, room);
    client.connect();
    await client.waitFor("open");
    expect(client.session?.protocol).toBe(1);
    expect(client.transport).toBe("sse");
    expect(transports.items).toEqual(["sse"]);
    expect(await w.subscribed.first("subscribed", () => true)).toMatchObject({ room, seq: 2, recovered: false, outcome: "fresh" });
    await publishMany(hub, room, 2, "after");
    const events = await w.events.until("4 events", (e) => e.length >= 4);
    expect(seqs(events)).toEqual([1, 2, 3, 4]);
    expect(events.map((e) => (e.data as { tag: string }).tag)).toEqual(["before", "before", "after", "after"]);
    const status = await hub.get<SocketStatus>("/socket-status");
    expect(status.sockets_by_type.sse).toBeGreaterThanOrEqual(1);
    await expect(client.publish(room, "alert_raised", {})).rejects.toMatchObject({ code: "receive_only" });
  });

  it("resumes exactly after the stream is dropped: nothing missing, nothing twice, the hub's own cursor", async () => {
    const room = uniqueRoom("sse-drop");
    const proxy = await proxyTo(hub);
    const client = newClient(proxy.url);
    const states = watchStates(client);
    const w = watchRoom(client, room);
    client.connect();
    await w.subscribed.first("subscribed", () => true);
    await publishMany(hub, room, 3, "up");
    await w.events.until("3 events", (e) => e.length >= 3);

    proxy.cut();
    await states.until("reconnecting", (s) => s.includes("reconnecting"));
    await publishMany(hub, room, 4, "down");
    proxy.restore();
    const again = await w.subscribed.until("resubscribed", (s) => s.length >= 2, 5_000);
    expect(again[1]).toMatchObject({ recovered: true, outcome: "resumed", seq: 7 });
    await publishMany(hub, room, 1, "after");
    const events = await w.events.until("8 events", (e) => e.length >= 8);
    expect(seqs(events)).toEqual(range(1, 8));
    expect(events.map((e) => (e.data as { tag: string }).tag)).toEqual([..."uuu"].map(() => "up").concat(["down", "down", "down", "down", "after"]));

    // The client resumed from the very cursor the hub's last id: line named.
    const [first, second] = proxy.streams.filter((r) => r.status === 200);
    const ids = streamIds(first!.body);
    expect(ids.length).toBe(3);
    expect(lastEventId(second!.path)).toBe(ids.at(-1));
    // One more drop, this time without a pause: reconnects by itself and still exact.
    proxy.dropStreams();
    await w.subscribed.until("third subscribed", (s) => s.length >= 3, 5_000);
    await publishMany(hub, room, 1, "last");
    const all = await w.events.until("9 events", (e) => e.length >= 9);
    expect(seqs(all)).toEqual(range(1, 9));
  });

  it("a room change reopens the stream from the cursor: old rooms resume exactly, new rooms start fresh", async () => {
    const a = uniqueRoom("sse-a");
    const b = uniqueRoom("sse-b");
    const proxy = await proxyTo(hub);
    await publishMany(hub, b, 2, "b-before");
    const client = newClient(proxy.url);
    const states = watchStates(client);
    const wa = watchRoom(client, a);
    client.connect();
    await wa.subscribed.first("a subscribed", () => true);
    await publishMany(hub, a, 2, "a");
    await wa.events.until("2 events in a", (e) => e.length >= 2);

    const wb = watchRoom(client, b);
    const c = watchRoom(client, uniqueRoom("sse-c")); // same tick: one reopen for both
    expect(await wb.subscribed.first("b subscribed", () => true)).toMatchObject({ outcome: "fresh", seq: 2 });
    await c.subscribed.first("c subscribed", () => true);
    expect(wa.subscribed.items.at(-1)).toMatchObject({ recovered: true, outcome: "resumed", seq: 2 });
    const streams = proxy.streams;
    expect(streams).toHaveLength(2);
    expect(roomsOf(streams[1]!.path)?.split(",")).toEqual([a, b, c.sub.room]);
    expect(lastEventId(streams[1]!.path)).toBe(streamIds(streams[0]!.body).at(-1));
    expect(states.items).toEqual(["connecting", "open"]);

    await publishMany(hub, a, 1, "a");
    await publishMany(hub, b, 1, "b");
    expect(seqs(await wa.events.until("3 in a", (e) => e.length >= 3))).toEqual([1, 2, 3]);
    expect(seqs(await wb.events.until("3 in b", (e) => e.length >= 3))).toEqual([1, 2, 3]);

    // Leaving a room: the next stream names only the others, and a keeps going.
    wb.sub.unsubscribe();
    await eventually("3 streams", () => proxy.streams.length >= 3);
    expect(roomsOf(proxy.streams[2]!.path)?.split(",")).toEqual([a, c.sub.room]);
    await wa.subscribed.until("a resumed again", (s) => s.length >= 3);
    await publishMany(hub, a, 1, "a");
    expect(seqs(await wa.events.until("4 in a", (e) => e.length >= 4))).toEqual([1, 2, 3, 4]);
    expect(wb.events.items).toHaveLength(3);
  });

  it("a keyed room's state and its live changes arrive as on a socket", async () => {
    const keyedHub = await HubProcess.start({ env: { HUB_ROOMS__KEYED: "true" } });
    hubs.push(keyedHub);
    const room = uniqueRoom("sse-board");
    const api = new HubHttp({ baseUrl: keyedHub.url });
    for (let i = 0; i < 5; i += 1) await api.publish(room, "rec", { i }, { key: `k${i}` });
    await api.publish(room, "rec", { i: 0, v: 2 }, { key: "k0" });
    const proxy = await proxyTo(keyedHub);
    const client = newClient(proxy.url);
    const states = new Recorder<StateInfo>();
    const events = new Recorder<RoomEvent>();
    client.subscribe(room, { onState: states.push, onEvent: events.push });
    client.connect();
    const state = await states.first("state", () => true);
    expect(state).toMatchObject({ seq: 6, reason: "fresh" });
    expect(state.events.map((e) => e.key)).toEqual(["k1", "k2", "k3", "k4", "k0"]);
    proxy.dropStreams();
    await api.publish(room, "rec", null, { key: "k1", delete: true });
    const live = await events.first("the delete", () => true, 5_000);
    expect(live).toMatchObject({ key: "k1", delete: true, seq: 7 });
    expect(states.items).toHaveLength(1); // resumed: no second state
    await keyedHub.stop();
  });
});

/** An HS256 JWT for `claims`, signed with `secret`. */
function hs256(claims: Record<string, unknown>, secret: string): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const unsigned = `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}`;
  return `${unsigned}.${createHmac("sha256", secret).update(unsigned).digest("base64url")}`;
}

describe("tokens on SSE", () => {
  it("a token function is asked for each stream, which is replaced before exp; nothing is lost", async () => {
    const secret = "js-test-secret-that-is-32-bytes-long";
    const hub = await HubProcess.start({ env: { HUB_AUTH__JWT_SECRET: secret } });
    hubs.push(hub);
    const room = uniqueRoom("sse-token");
    let issued = 0;
    const client = newClient(hub.url, {
      token: () => {
        issued += 1;
        return hs256({ sub: "dashboard", exp: Math.floor(Date.now() / 1000) + 3 }, secret);
      },
    });
    const states = watchStates(client);
    const closes = new Recorder<number>();
    client.on("close", (c) => closes.push(c.code));
    const w = watchRoom(client, room);
    client.connect();
    await w.subscribed.first("subscribed", () => true);
    let sent = 0;
    const started = Date.now();
    while (Date.now() - started < 7_000) {
      await hub.publish(room, "alert_raised", { i: sent });
      sent += 1;
      await w.events.until(`${sent} events`, (e) => e.length >= sent);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    expect(seqs(w.events.items)).toEqual(range(1, sent));
    expect(issued).toBeGreaterThanOrEqual(3);
    expect(closes.items).toEqual([]);
    expect(states.items).toEqual(["connecting", "open"]);
    expect(w.subscribed.items.slice(1).every((s) => s.outcome === "resumed")).toBe(true);
    await hub.stop();
  }, 20_000);
});

describe("auto behind a proxy that refuses WebSocket upgrades", () => {
  let hub: HubProcess;

  beforeAll(async () => {
    hub = await HubProcess.start();
    hubs.push(hub);
  });

  it("falls back to SSE, receives, and goes back to WebSocket once upgrades pass, losing nothing", async () => {
    const room = uniqueRoom("auto");
    const proxy = await proxyTo(hub, true);
    const client = newClient(proxy.url, { transport: "auto", websocketRetryMs: 1_000 });
    const transports = new Recorder<string | null>();
    client.on("transport", (t) => transports.push(t.to));
    const states = watchStates(client);
    const w = watchRoom(client, room);
    client.connect();
    await transports.first("sse", (t) => t === "sse", 5_000);
    // `ws` reports the 403 answer to the handshake: one refused upgrade is enough to move.
    expect(proxy.upgrades).toHaveLength(1);
    expect(proxy.upgrades.every((u) => u.status === 403)).toBe(true);
    await w.subscribed.first("subscribed", () => true);
    await publishMany(hub, room, 2, "on sse");
    await w.events.until("2 events", (e) => e.length >= 2);

    // The retry after websocketRetryMs fails while upgrades are refused: SSE goes on.
    const refusedBefore = proxy.upgrades.length;
    await eventually("a WebSocket retry", () => proxy.upgrades.length > refusedBefore, 4_000);
    expect(client.transport).toBe("sse");
    await publishMany(hub, room, 1, "still sse");
    await w.events.until("3 events", (e) => e.length >= 3);

    proxy.refuseUpgrades = false;
    await transports.first("websocket", (t) => t === "websocket", 5_000);
    await publishMany(hub, room, 2, "on ws");
    const events = await w.events.until("5 events", (e) => e.length >= 5);
    expect(seqs(events)).toEqual(range(1, 5));
    expect(w.subscribed.items.at(-1)).toMatchObject({ recovered: true, outcome: "resumed" });
    // The switch happened beside the open stream: no reconnecting in between.
    expect(states.items).toEqual(["connecting", "reconnecting", "open"]);
    expect(transports.items).toEqual(["sse", "websocket"]);
  });
});
