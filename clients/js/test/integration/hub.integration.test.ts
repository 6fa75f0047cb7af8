/**
 * The client against the real `realtime-hub` binary, in Node (with `ws`).
 * Network failures are made with a TCP proxy the test controls.
 */

import { createHmac } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import {
  HubClient,
  HubHttp,
  type HubClientOptions,
  type ResyncInfo,
  type StateInfo,
  type SubscribedInfo,
} from "../../src/index.js";
import type { HubError } from "../../src/errors.js";
import type { RoomEvent, SocketStatus } from "../../src/protocol.js";
import type { ConnectionState } from "../../src/state.js";
import { HubProcess } from "../support/hub.js";
import { TcpProxy } from "../support/tcp-proxy.js";
import { Recorder } from "../support/wait.js";

const clients: HubClient[] = [];
const proxies: TcpProxy[] = [];
const hubs: HubProcess[] = [];
let roomCounter = 0;

/** A room name no other test uses (dynamic rooms are on). */
function uniqueRoom(prefix: string): string {
  roomCounter += 1;
  return `${prefix}-${process.pid}-${roomCounter}`;
}

function newClient(url: string, options: Partial<HubClientOptions> = {}): HubClient {
  const client = new HubClient({
    url,
    WebSocket: WebSocket as unknown as HubClientOptions["WebSocket"],
    backoff: { initialDelayMs: 50, maxDelayMs: 500, jitter: 0.5 },
    ...options,
  });
  clients.push(client);
  return client;
}

/** Records everything a client reports about one room. */
function watchRoom(client: HubClient, room: string) {
  const events = new Recorder<RoomEvent>();
  const subscribed = new Recorder<SubscribedInfo>();
  const resyncs = new Recorder<ResyncInfo>();
  const errors = new Recorder<HubError>();
  const sub = client.subscribe(room, {
    onEvent: events.push,
    onSubscribed: subscribed.push,
    onResync: resyncs.push,
    onError: errors.push,
  });
  return { sub, events, subscribed, resyncs, errors };
}

function watchStates(client: HubClient): Recorder<ConnectionState> {
  const states = new Recorder<ConnectionState>();
  client.on("state", (c) => states.push(c.to));
  return states;
}

const seqs = (events: readonly RoomEvent[]) => events.map((e) => e.seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function publishMany(hub: HubProcess, room: string, count: number, tag: string) {
  const results = [];
  for (let i = 0; i < count; i += 1) results.push(await hub.publish(room, "alert_raised", { tag, i }));
  return results;
}

afterEach(async () => {
  for (const client of clients.splice(0)) client.close();
  for (const proxy of proxies.splice(0)) await proxy.close();
});

afterAll(async () => {
  for (const hub of hubs.splice(0)) await hub.stop();
});

describe("against a running hub", () => {
  let hub: HubProcess;

  beforeAll(async () => {
    hub = await HubProcess.start();
    hubs.push(hub);
  });

  it("connects, replays the snapshot of a fresh subscription, then delivers live events in order", async () => {
    const room = uniqueRoom("live");
    const before = await publishMany(hub, room, 3, "before");
    expect(before.map((r) => r.seq)).toEqual([1, 2, 3]);

    const client = newClient(hub.url);
    const states = watchStates(client);
    const w = watchRoom(client, room);
    client.connect();
    await client.waitFor("open");
    expect(client.session?.protocol).toBe(1);
    const info = await w.subscribed.first("subscribed", () => true);
    expect(info).toMatchObject({ room, seq: 3, recovered: false, outcome: "fresh" });
    expect(info.epoch).toBe(before[0]!.epoch);

    await publishMany(hub, room, 2, "after");
    const events = await w.events.until("5 events", (e) => e.length >= 5);
    expect(seqs(events)).toEqual([1, 2, 3, 4, 5]);
    expect(events.map((e) => (e.data as { tag: string }).tag)).toEqual(["before", "before", "before", "after", "after"]);
    expect(events[0]).toMatchObject({ type: "alert_raised", room });
    expect(events[0]!.ts).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(states.items).toEqual(["connecting", "open"]);
  });

  it("resumes with since+epoch after a cut and loses nothing published meanwhile", async () => {
    const room = uniqueRoom("cut");
    const proxy = await TcpProxy.start(hub.port);
    proxies.push(proxy);
    const client = newClient(proxy.url);
    const states = watchStates(client);
    const w = watchRoom(client, room);
    client.connect();
    await w.subscribed.first("first subscribed", () => true);
    await publishMany(hub, room, 2, "up");
    await w.events.until("2 events", (e) => e.length >= 2);

    proxy.cut();
    await states.until("reconnecting", (s) => s.includes("reconnecting"));
    await publishMany(hub, room, 4, "down");
    expect(client.state).toBe("reconnecting");
    expect(client.position(room)).toMatchObject({ since: 2 });

    proxy.restore();
    const resumed = await w.subscribed.until("second subscribed", (s) => s.length >= 2);
    expect(resumed[1]).toMatchObject({ recovered: true, outcome: "resumed", seq: 6 });
    await publishMany(hub, room, 1, "after");
    const events = await w.events.until("7 events", (e) => e.length >= 7);
    expect(seqs(events)).toEqual(range(1, 7));
    expect(events.map((e) => (e.data as { tag: string }).tag)).toEqual(["up", "up", "down", "down", "down", "down", "after"]);
    expect(w.resyncs.items).toHaveLength(0);
    expect(states.items.slice(-2)).toEqual(["reconnecting", "open"]);
  });

  it("detects a dead connection with app-level pings and replaces it", async () => {
    const room = uniqueRoom("dead");
    const proxy = await TcpProxy.start(hub.port);
    proxies.push(proxy);
    const client = newClient(proxy.url, { pingIntervalMs: 200, pongTimeoutMs: 300 });
    const states = watchStates(client);
    const closes = new Recorder<string>();
    client.on("close", (c) => closes.push(c.reason));
    const w = watchRoom(client, room);
    client.connect();
    await w.subscribed.first("subscribed", () => true);

    proxy.blackhole();
    await closes.first("ping timeout", (r) => r === "ping timeout", 3_000);
    expect(client.state).toBe("reconnecting");
    await publishMany(hub, room, 2, "while dead");
    proxy.restore();
    await states.until("open again", (s) => s.filter((x) => x === "open").length >= 2, 5_000);
    const events = await w.events.until("2 events", (e) => e.length >= 2);
    expect(seqs(events)).toEqual([1, 2]);
  });

  it("reconnects and resumes after an admin disconnect (close 4009)", async () => {
    const room = uniqueRoom("admin");
    const client = newClient(hub.url);
    const closes = new Recorder<number>();
    client.on("close", (c) => closes.push(c.code));
    const w = watchRoom(client, room);
    client.connect();
    await w.subscribed.first("subscribed", () => true);
    await publishMany(hub, room, 1, "a");
    await w.events.until("1 event", (e) => e.length >= 1);

    const session = client.session!.session;
    await hub.post(`/api/sockets/${encodeURIComponent(session)}/disconnect`);
    expect(await closes.first("close", () => true)).toBe(4009);
    await publishMany(hub, room, 2, "b");
    await w.subscribed.until("resubscribed", (s) => s.length >= 2);
    expect(w.subscribed.items[1]).toMatchObject({ outcome: "resumed", recovered: true });
    const events = await w.events.until("3 events", (e) => e.length >= 3);
    expect(seqs(events)).toEqual([1, 2, 3]);
    expect(client.session!.session).not.toBe(session);
  });

  it("receives $status updates over the socket when counts change", async () => {
    const client = newClient(hub.url);
    const statuses = new Recorder<SocketStatus>();
    client.subscribe("$status", {
      onEvent: (e) => {
        if (e.type === "status_update") statuses.push(e.data as SocketStatus);
      },
    });
    client.connect();
    const first = await statuses.first("first status", () => true);
    expect(first.active).toBe(true);
    expect(first.total_sockets).toBeGreaterThanOrEqual(1);
    expect(first.rooms).toHaveProperty("$status");

    const room = uniqueRoom("counted");
    const other = newClient(hub.url);
    other.subscribe(room);
    other.connect();
    const seen = await statuses.first(
      "status with the second client's room",
      (s) => (s.rooms[room] ?? 0) >= 1 && s.total_sockets >= first.total_sockets + 1,
      4_000,
    );
    expect(typeof seen.timestamp).toBe("string");
  });

  it("keeps a reconnected client's $status view up to date with the counts (no polling needed)", async () => {
    // Contract section 6: `$status` sends the current status right after
    // `subscribed`, then an update whenever a count changes. After a reconnect the
    // client's first report is taken before its other rooms are resubscribed, so
    // the hub must push the change that follows, even though the counts are back
    // to what it last broadcast before the connection dropped.
    const room = uniqueRoom("status-resume");
    const proxy = await TcpProxy.start(hub.port);
    proxies.push(proxy);
    const client = newClient(proxy.url);
    const statuses = new Recorder<SocketStatus>();
    client.subscribe("$status", {
      onEvent: (e) => {
        if (e.type === "status_update") statuses.push(e.data as SocketStatus);
      },
    });
    const w = watchRoom(client, room);
    client.connect();
    await statuses.first("status counting the room", (s) => s.rooms[room] === 1, 4_000);
    await w.subscribed.first("subscribed", () => true);

    proxy.cut();
    proxy.restore();
    await w.subscribed.until("resubscribed", (s) => s.length >= 2, 5_000);
    const http = await hub.get<SocketStatus>("/socket-status");
    expect(http.rooms[room]).toBe(1);
    // The pushed view must converge to what /socket-status says (updates come at
    // most once a second; allow a few).
    await statuses.until(
      `the latest pushed status to count 1 subscriber in ${room}, as /socket-status does`,
      (items) => items.at(-1)?.rooms[room] === 1,
      4_000,
    );
  });

  it("reports an error frame for a socket publish into a room without client_publish", async () => {
    const room = uniqueRoom("nopub");
    const client = newClient(hub.url);
    client.connect();
    await client.waitFor("open");
    await expect(client.publish(room, "x_happened", { a: 1 })).rejects.toMatchObject({ code: "publish_disabled" });
    expect(client.state).toBe("open");
  });

  it("reads HTTP history like the resync does", async () => {
    const room = uniqueRoom("hist");
    const published = await publishMany(hub, room, 3, "h");
    const client = newClient(hub.url);
    const history = await client.api.history(room, { since: 1 });
    expect(history).toMatchObject({ room, epoch: published[0]!.epoch, seq: 3 });
    expect(seqs(history.events)).toEqual([2, 3]);
  });
});

describe("when the hub goes away", () => {
  it("sees 1001 when the hub drains on SIGTERM and reconnects to its replacement", async () => {
    const room = uniqueRoom("drain");
    const first = await HubProcess.start();
    hubs.push(first);
    const client = newClient(first.url);
    const closes = new Recorder<number>();
    client.on("close", (c) => closes.push(c.code));
    const states = watchStates(client);
    const w = watchRoom(client, room);
    client.connect();
    await w.subscribed.first("subscribed", () => true);

    await first.stop();
    expect(await closes.first("close", () => true)).toBe(1001);
    expect(client.state).toBe("reconnecting");
    const second = await HubProcess.start({ port: first.port });
    hubs.push(second);
    await states.until("open again", (s) => s.filter((x) => x === "open").length >= 2, 10_000);
    // New process, new epoch: the resume is refused and the (empty) history read.
    const resync = await w.resyncs.first("resync", () => true);
    expect(resync).toMatchObject({ reason: "epoch_changed", events: [] });
    await second.publish(room, "alert_raised", { tag: "after drain" });
    const events = await w.events.until("event from the new hub", (e) => e.length >= 1);
    expect(seqs(events)).toEqual([1]);
  });

  it("resyncs through HTTP history after a hub restart (new epoch)", async () => {
    const room = uniqueRoom("restart");
    let hub = await HubProcess.start();
    hubs.push(hub);
    const proxy = await TcpProxy.start(hub.port);
    proxies.push(proxy);
    const client = newClient(proxy.url);
    const states = watchStates(client);
    const w = watchRoom(client, room);
    client.connect();
    await w.subscribed.first("subscribed", () => true);
    const old = await publishMany(hub, room, 3, "old epoch");
    await w.events.until("3 events", (e) => e.length >= 3);

    // Hold the client off while the hub restarts and gets new events.
    proxy.cut();
    await states.until("reconnecting", (s) => s.includes("reconnecting"));
    await hub.stop();
    hub = await HubProcess.start({ port: hub.port });
    hubs.push(hub);
    const fresh = await publishMany(hub, room, 2, "new epoch");
    expect(fresh[0]!.epoch).not.toBe(old[0]!.epoch);
    proxy.restore();

    const resync = await w.resyncs.first("resync", () => true, 10_000);
    expect(resync).toMatchObject({ room, reason: "epoch_changed", epoch: fresh[0]!.epoch, source: "history" });
    expect(seqs(resync.events)).toEqual([1, 2]);
    expect(resync.events.map((e) => (e.data as { tag: string }).tag)).toEqual(["new epoch", "new epoch"]);
    expect(w.subscribed.items.at(-1)).toMatchObject({ recovered: false, outcome: "resync" });
    expect(client.position(room)).toEqual({ since: 2, epoch: fresh[0]!.epoch });

    await publishMany(hub, room, 1, "after");
    const events = await w.events.until("live event after resync", (e) => e.length >= 4);
    expect(events.slice(3).map((e) => [e.seq, (e.data as { tag: string }).tag])).toEqual([[3, "after"]]);
  });

  it("resyncs with reason history_gap when the missed events fell out of history", async () => {
    const room = uniqueRoom("gap");
    const hub = await HubProcess.start({ env: { HUB_ROOMS__HISTORY: "5", HUB_ROOMS__SNAPSHOT: "2" } });
    hubs.push(hub);
    const proxy = await TcpProxy.start(hub.port);
    proxies.push(proxy);
    const client = newClient(proxy.url);
    const states = watchStates(client);
    const w = watchRoom(client, room);
    client.connect();
    await w.subscribed.first("subscribed", () => true);
    await publishMany(hub, room, 1, "seen");
    await w.events.until("1 event", (e) => e.length >= 1);

    proxy.cut();
    await states.until("reconnecting", (s) => s.includes("reconnecting"));
    await publishMany(hub, room, 9, "missed");
    proxy.restore();

    const resync = await w.resyncs.first("resync", () => true, 10_000);
    expect(resync.reason).toBe("history_gap");
    expect(resync.source).toBe("history");
    // Only the last 5 events (history = 5) still exist: seq 6..10.
    expect(seqs(resync.events)).toEqual(range(6, 10));
    await hub.stop();
  });
});

describe("keyed rooms (contract section 11)", () => {
  it("joins with the state, keeps it from live events, and gets a state again after missing more than history", async () => {
    const room = uniqueRoom("board");
    const hub = await HubProcess.start({ env: { HUB_ROOMS__KEYED: "true", HUB_ROOMS__HISTORY: "5" } });
    hubs.push(hub);
    const api = new HubHttp({ baseUrl: hub.url });
    const truth = new Map<string, unknown>();
    const put = async (key: string, status: string | null) => {
      const result = await api.publish(room, "recommendation", status === null ? undefined : { status }, {
        key,
        delete: status === null,
      });
      if (status === null) truth.delete(key);
      else truth.set(key, { status });
      return result;
    };
    for (let i = 0; i < 30; i += 1) await put(`rec-${i}`, "open");
    for (let i = 0; i < 10; i += 1) await put(`rec-${i}`, "approved");

    const proxy = await TcpProxy.start(hub.port);
    proxies.push(proxy);
    const client = newClient(proxy.url);
    const states = watchStates(client);
    const got = new Recorder<StateInfo>();
    const events = new Recorder<RoomEvent>();
    const board = new Map<string, unknown>();
    client.subscribe(room, {
      onState: (info) => {
        board.clear();
        for (const e of info.events) board.set(e.key!, e.data);
        got.push(info);
      },
      onEvent: (e) => {
        if (e.key === undefined) return;
        if (e.delete) board.delete(e.key);
        else board.set(e.key, e.data);
        events.push(e);
      },
    });
    client.connect();
    const first = await got.first("state on join", () => true);
    expect(first).toMatchObject({ room, seq: 40, reason: "fresh" });
    expect(first.events).toHaveLength(30);
    expect(board).toEqual(truth);

    await put("rec-29", null);
    await events.until("the delete, live", (e) => e.length >= 1);
    expect(board).toEqual(truth);

    // Cut, miss more than the 5 events history holds, come back: a state, no HTTP resync.
    proxy.cut();
    await states.until("reconnecting", (s) => s.includes("reconnecting"));
    for (let i = 10; i < 20; i += 1) await put(`rec-${i}`, "rejected");
    proxy.restore();
    const again = await got.first("state after the gap", (s) => s.reason !== "fresh", 10_000);
    expect(again).toMatchObject({ reason: "history_gap", seq: 51 });
    expect(board).toEqual(truth);
    const state = await api.state(room);
    expect(state.seq).toBe(51);
    expect(state.events.map((e) => e.key)).toEqual(again.events.map((e) => e.key));
    await hub.stop();
  });
});

/** An HS256 JWT for `claims`, signed with `secret`. */
function hs256(claims: Record<string, unknown>, secret: string): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const unsigned = `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}`;
  return `${unsigned}.${createHmac("sha256", secret).update(unsigned).digest("base64url")}`;
}

describe("token refresh over the open socket (contract section 14)", () => {
  const secret = "js-test-secret-that-is-32-bytes-long";
  let hub: HubProcess;

  beforeAll(async () => {
    hub = await HubProcess.start({ env: { HUB_AUTH__JWT_SECRET: secret } });
    hubs.push(hub);
  });

  it("a client with 5-second tokens stays on one socket for 30 s and keeps receiving", async () => {
    const room = uniqueRoom("refresh");
    let issued = 0;
    const client = newClient(hub.url, {
      token: () => {
        issued += 1;
        return hs256({ sub: "dashboard", exp: Math.floor(Date.now() / 1000) + 5 }, secret);
      },
    });
    const states = watchStates(client);
    const closes = new Recorder<number>();
    client.on("close", (c) => closes.push(c.code));
    const w = watchRoom(client, room);
    client.connect();
    await w.subscribed.first("subscribed", () => true);
    const started = Date.now();
    let sent = 0;
    while (Date.now() - started < 30_000) {
      await hub.publish(room, "alert_raised", { i: sent });
      sent += 1;
      await w.events.until(`${sent} events`, (e) => e.length >= sent);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect(closes.items).toEqual([]);
    expect(states.items).toEqual(["connecting", "open"]);
    expect(seqs(w.events.items)).toEqual(range(1, sent));
    // One token to connect, then one refresh every few seconds.
    expect(issued).toBeGreaterThanOrEqual(6);
  }, 45_000);

  it("a refused refresh falls back to reconnecting at exp, and nothing is lost", async () => {
    const room = uniqueRoom("refresh-refused");
    let issued = 0;
    const client = newClient(hub.url, {
      token: () => {
        issued += 1;
        // Every second token is for another user: its refresh is refused.
        const sub = issued % 2 === 0 ? "intruder" : "dashboard";
        return hs256({ sub, exp: Math.floor(Date.now() / 1000) + 3 }, secret);
      },
    });
    const closes = new Recorder<number>();
    client.on("close", (c) => closes.push(c.code));
    const errors = new Recorder<string>();
    client.on("error", (e) => errors.push(e.code));
    const w = watchRoom(client, room);
    client.connect();
    await w.subscribed.first("subscribed", () => true);
    await errors.until("refresh refused", (e) => e.includes("unauthorized"));
    await hub.publish(room, "alert_raised", { i: 0 });
    await closes.until("4001 at the old exp", (c) => c.includes(4001));
    await hub.publish(room, "alert_raised", { i: 1 });
    const resumed = await w.subscribed.until("resubscribed", (s) => s.length >= 2);
    expect(resumed[1]).toMatchObject({ recovered: true });
    const events = await w.events.until("2 events", (e) => e.length >= 2);
    expect(seqs(events)).toEqual([1, 2]);
  }, 20_000);
});
