/**
 * The client against a real hub cluster (docs/CLUSTER.md, docs/PROTOCOL.md
 * section 10): a private `redis-server` and two `realtime-hub` nodes, `a` and `b`,
 * in cluster mode. Each test gets its own Redis and nodes.
 *
 * - A node dies under a client: the load balancer (a TCP proxy here) moves the
 *   client to the other node, where it resumes with `since`+`epoch` and the app
 *   ends up with every event once, in order, without an HTTP resync.
 * - Redis restarts empty under a connected client: the node tells the client with
 *   an unsolicited `subscribed` (new epoch), the client resyncs with
 *   `epoch_changed` and then delivers the new epoch's events.
 */

import { afterEach, describe, expect, it, type TestContext } from "vitest";
import WebSocket from "ws";
import { HubClient, type CloseInfo, type HubClientOptions, type ResyncInfo, type SubscribedInfo } from "../../src/index.js";
import type { HubError } from "../../src/errors.js";
import type { RoomEvent, SocketStatus } from "../../src/protocol.js";
import type { ConnectionState } from "../../src/state.js";
import { HubProcess } from "../support/hub.js";
import { RedisProcess } from "../support/redis.js";
import { TcpProxy } from "../support/tcp-proxy.js";
import { Recorder } from "../support/wait.js";

const clients: HubClient[] = [];
const proxies: TcpProxy[] = [];
const hubs: HubProcess[] = [];
const redises: RedisProcess[] = [];
let roomCounter = 0;

function uniqueRoom(prefix: string): string {
  roomCounter += 1;
  return `${prefix}-${process.pid}-${roomCounter}`;
}

interface Cluster {
  redis: RedisProcess;
  a: HubProcess;
  b: HubProcess;
}

/** A private Redis and two hub nodes `a` and `b` on it, each ready (`/readyz` 200). */
async function startCluster(): Promise<Cluster> {
  const redis = await RedisProcess.start();
  redises.push(redis);
  const node = (id: string) =>
    HubProcess.start({
      readyPath: "/readyz",
      readyTimeoutMs: 10_000,
      env: {
        HUB_CLUSTER__REDIS_URL: redis.url,
        HUB_CLUSTER__NODE_ID: id,
        HUB_CLUSTER__HEARTBEAT_MS: "200",
        HUB_CLUSTER__COMMAND_TIMEOUT_MS: "500",
        HUB_CLUSTER__RECONNECT_MAX_MS: "300",
      },
    });
  const started = await Promise.allSettled([node("a"), node("b")]);
  for (const result of started) if (result.status === "fulfilled") hubs.push(result.value);
  const [a, b] = started;
  if (a!.status === "rejected") throw a!.reason;
  if (b!.status === "rejected") throw b!.reason;
  return { redis, a: a!.value, b: b!.value };
}

/** Every frame the client's sockets sent and received, parsed. */
interface Wire {
  sent: Record<string, unknown>[];
  received: Record<string, unknown>[];
}

/** `ws`'s WebSocket, recording the frames that cross it (the client sees no difference). */
function tappedWebSocket(wire: Wire): HubClientOptions["WebSocket"] {
  class Tapped extends WebSocket {
    constructor(url: string) {
      super(url);
      this.on("message", (data) => wire.received.push(JSON.parse(String(data)) as Record<string, unknown>));
      const send = this.send.bind(this) as (data: string) => void;
      (this as { send: (data: string) => void }).send = (data: string) => {
        wire.sent.push(JSON.parse(data) as Record<string, unknown>);
        send(data);
      };
    }
  }
  return Tapped as unknown as HubClientOptions["WebSocket"];
}

interface Observed {
  client: HubClient;
  wire: Wire;
  /** URLs the client fetched over HTTP (a resync reads history). */
  httpCalls: string[];
  states: Recorder<ConnectionState>;
  closes: Recorder<CloseInfo>;
}

function newClient(url: string): Observed {
  const wire: Wire = { sent: [], received: [] };
  const httpCalls: string[] = [];
  const client = new HubClient({
    url,
    WebSocket: tappedWebSocket(wire),
    fetch: (input, init) => {
      httpCalls.push(input);
      return fetch(input, init);
    },
    backoff: { initialDelayMs: 50, maxDelayMs: 300, jitter: 0.5 },
  });
  clients.push(client);
  const states = new Recorder<ConnectionState>();
  client.on("state", (c) => states.push(c.to));
  const closes = new Recorder<CloseInfo>();
  client.on("close", closes.push);
  return { client, wire, httpCalls, states, closes };
}

/**
 * Subscribes to `room` like an application does: `app` is what it shows (live
 * events appended, replaced wholesale on a resync); everything the client
 * reports is recorded too.
 */
function watchApp(client: HubClient, room: string) {
  const app: RoomEvent[] = [];
  const changes = new Recorder<string>();
  const events = new Recorder<RoomEvent>();
  const subscribed = new Recorder<SubscribedInfo>();
  const resyncs = new Recorder<ResyncInfo>();
  const errors = new Recorder<HubError>();
  client.subscribe(room, {
    onEvent: (event) => {
      app.push(event);
      events.push(event);
      changes.push("event");
    },
    onResync: (info) => {
      app.splice(0, app.length, ...info.events);
      resyncs.push(info);
      changes.push("resync");
    },
    onSubscribed: subscribed.push,
    onError: errors.push,
  });
  /** Resolves once the app's view satisfies `predicate`. */
  const until = (what: string, predicate: (view: readonly RoomEvent[]) => boolean, timeoutMs = 5_000) =>
    changes.until(what, () => predicate(app), timeoutMs).then(() => [...app]);
  return { app, until, events, subscribed, resyncs, errors };
}

type Published = { room: string; epoch: string; seq: number };

const seqs = (events: readonly RoomEvent[]) => events.map((e) => e.seq);
const tags = (events: readonly RoomEvent[]) => events.map((e) => (e.data as { tag: string }).tag);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function publishMany(hub: HubProcess, room: string, count: number, tag: string): Promise<Published[]> {
  const results: Published[] = [];
  for (let i = 0; i < count; i += 1) results.push(await hub.publish(room, "alert_raised", { tag, i }));
  return results;
}

/**
 * POSTs one event, repeating while the hub answers 503 (Redis unreachable: the
 * hub refuses rather than accepting what Redis did not apply). Bounded.
 */
async function publishWhenUp(hub: HubProcess, room: string, data: unknown, timeoutMs = 8_000): Promise<Published> {
  const deadline = Date.now() + timeoutMs;
  let last = "";
  while (Date.now() < deadline) {
    const response = await fetch(`${hub.url}/api/rooms/${encodeURIComponent(room)}/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ type: "alert_raised", data }),
      signal: AbortSignal.timeout(3_000),
    });
    const text = await response.text();
    if (response.ok) return JSON.parse(text) as Published;
    if (response.status !== 503) throw new Error(`publish answered ${response.status}: ${text}`);
    last = text;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`publish still answered 503 after ${timeoutMs} ms: ${last}`);
}

/** Polls GET `path` until it answers `status`. Bounded. */
async function waitForStatus(hub: HubProcess, path: string, status: number, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 0;
  while (Date.now() < deadline) {
    const response = await fetch(`${hub.url}${path}`, { signal: AbortSignal.timeout(1_000) });
    await response.text();
    last = response.status;
    if (last === status) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`GET ${path} still answered ${last}, not ${status}, after ${timeoutMs} ms`);
}

afterEach(async (context: TestContext) => {
  if (context.task.result?.state === "fail") {
    for (const hub of hubs) console.error(`--- hub on port ${hub.port} ---\n${hub.logs}`);
    for (const redis of redises) console.error(`--- redis on port ${redis.port} ---\n${redis.logs.slice(-3_000)}`);
  }
  for (const client of clients.splice(0)) client.close();
  for (const proxy of proxies.splice(0)) await proxy.close();
  await Promise.all(hubs.splice(0).map((hub) => hub.kill()));
  await Promise.all(redises.splice(0).map((redis) => redis.stop()));
});

describe("a two-node cluster on a private Redis", () => {
  it("moves a client off a dead node: it resumes on the other node with since+epoch, every event once, no HTTP resync", async () => {
    const { a, b } = await startCluster();
    const room = uniqueRoom("failover");
    // The "load balancer": sends the client to node a until told otherwise.
    const lb = await TcpProxy.start(a.port);
    proxies.push(lb);
    const { client, wire, httpCalls, states, closes } = newClient(lb.url);
    const w = watchApp(client, room);
    client.connect();

    const first = await w.subscribed.first("subscribed on node a", () => true);
    expect(first).toMatchObject({ room, recovered: false, outcome: "fresh" });
    expect(client.session?.node).toBe("a");
    const epoch = first.epoch;

    // Published over HTTP on node b, delivered to the client on node a.
    const before = await publishMany(b, room, 3, "before");
    expect(before.map((r) => [r.epoch, r.seq])).toEqual([
      [epoch, 1],
      [epoch, 2],
      [epoch, 3],
    ]);
    await w.until("3 events through node a", (view) => view.length >= 3);

    // Node a dies. Until its health check fails, the load balancer still sends
    // the client there (refused), while node b keeps taking publishes.
    await a.kill();
    const lost = await closes.first("the connection to node a to drop", () => true);
    expect(lost.willReconnect).toBe(true);
    const during = await publishMany(b, room, 4, "during");
    expect(during.map((r) => [r.epoch, r.seq])).toEqual([4, 5, 6, 7].map((seq) => [epoch, seq]));
    expect(client.state).toBe("reconnecting");
    expect(client.position(room)).toEqual({ since: 3, epoch });

    // The load balancer moves the client to node b.
    lb.retarget(b.port);
    const subscribed = await w.subscribed.until("resubscribed on node b", (s) => s.length >= 2, 5_000);
    expect(subscribed[1]).toMatchObject({ room, epoch, seq: 7, recovered: true, outcome: "resumed" });
    expect(client.session?.node).toBe("b");
    const resume = wire.sent.filter((c) => c.op === "subscribe" && c.room === room).at(-1);
    expect(resume).toMatchObject({ since: 3, epoch });
    const answer = wire.received.filter((f) => f.type === "subscribed" && f.room === room).at(-1);
    expect(answer).toMatchObject({ ref: resume!.ref, epoch, seq: 7, recovered: true });

    await publishMany(b, room, 1, "after");
    const view = await w.until("8 events", (v) => v.length >= 8);
    expect(seqs(view)).toEqual(range(1, 8));
    expect(tags(view)).toEqual(["before", "before", "before", "during", "during", "during", "during", "after"]);
    // Nothing extra trickles in.
    await publishMany(b, room, 1, "last");
    expect(seqs(await w.until("9 events", (v) => v.length >= 9))).toEqual(range(1, 9));

    expect(w.resyncs.items).toEqual([]);
    expect(httpCalls).toEqual([]);
    expect(w.errors.items).toEqual([]);
    expect(states.items).toEqual(["connecting", "open", "reconnecting", "open"]);

    // Node a stops refreshing its record: it leaves node b's cluster-wide status
    // within 3 heartbeats (600 ms).
    const deadline = Date.now() + 3_000;
    let status = await b.get<SocketStatus & { nodes?: Record<string, unknown> }>("/socket-status");
    while (status.nodes && "a" in status.nodes && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      status = await b.get("/socket-status");
    }
    expect(Object.keys(status.nodes ?? {})).toEqual(["b"]);
  });

  it("resyncs with epoch_changed when Redis restarts empty under a connected client, then delivers the new epoch", async () => {
    const { redis, a, b } = await startCluster();
    // `room` gets publishes as soon as Redis is back (they race the node's own
    // recovery); `quiet` gets none until its resync was reported.
    const room = uniqueRoom("redis-restart");
    const quiet = uniqueRoom("redis-restart-quiet");
    const { client, wire, states } = newClient(a.url);
    const w = watchApp(client, room);
    const q = watchApp(client, quiet);
    client.connect();
    const first = await w.subscribed.first("subscribed on node a", () => true);
    expect(first.outcome).toBe("fresh");
    await q.subscribed.first("quiet room subscribed on node a", () => true);
    const session = client.session!.session;

    const old = await publishMany(b, room, 3, "old");
    const oldEpoch = old[0]!.epoch;
    expect(oldEpoch).toBe(first.epoch);
    expect(seqs(await w.until("3 events of the old epoch", (v) => v.length >= 3))).toEqual([1, 2, 3]);
    const quietOld = await publishMany(b, quiet, 2, "old");
    await q.until("2 events of the quiet room's old epoch", (v) => v.length >= 2);

    // Redis crashes: publishes are refused (never accepted and lost), the node
    // turns unready, the client's socket stays open.
    await redis.kill();
    const refused = await fetch(`${b.url}/api/rooms/${encodeURIComponent(room)}/events`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ type: "alert_raised", data: { tag: "refused" } }),
      signal: AbortSignal.timeout(3_000),
    });
    expect(refused.status).toBe(503);
    await waitForStatus(a, "/readyz", 503);
    expect(client.state).toBe("open");

    // It comes back empty.
    await redis.startAgain();
    const fresh: Published[] = [];
    for (let i = 0; i < 3; i += 1) fresh.push(await publishWhenUp(b, room, { tag: "new", i }));
    const newEpoch = fresh[0]!.epoch;
    expect(newEpoch).not.toBe(oldEpoch);
    expect(fresh.every((r) => r.epoch === newEpoch)).toBe(true);
    const head = fresh.at(-1)!.seq;
    expect(fresh.map((r) => r.seq)).toEqual(range(head - 2, head));

    // The hub said so without being asked: a `subscribed` with no ref.
    const resync = await w.resyncs.first("a resync to the new epoch", (r) => r.epoch === newEpoch, 8_000);
    expect(resync).toMatchObject({ room, reason: "epoch_changed", epoch: newEpoch });
    const pushed = wire.received.filter((f) => f.type === "subscribed" && f.room === room && f.epoch === newEpoch);
    expect(pushed.length).toBeGreaterThanOrEqual(1);
    expect(pushed[0]).not.toHaveProperty("ref");
    expect(pushed[0]).toMatchObject({ recovered: false });
    expect(w.subscribed.items.at(-1)).toMatchObject({ room, epoch: newEpoch, recovered: false, outcome: "resync" });
    expect(w.resyncs.items.every((r) => r.reason === "epoch_changed")).toBe(true);

    // The app holds exactly the new epoch's events (from the resync and/or live).
    const view = await w.until(`the new epoch up to seq ${head}`, (v) => v.at(-1)?.seq === head && tags(v).every((t) => t === "new"));
    expect(seqs(view)).toEqual(range(1, head));
    expect(client.position(room)).toEqual({ since: head, epoch: newEpoch });

    // Live events of the new epoch keep coming through onEvent.
    const next = await publishWhenUp(b, room, { tag: "new", i: 3 });
    expect(next).toMatchObject({ epoch: newEpoch, seq: head + 1 });
    const live = await w.events.first("the live event after the resync", (e) => e.seq === head + 1);
    expect(live.data).toEqual({ tag: "new", i: 3 });
    expect(seqs(w.app)).toEqual(range(1, head + 1));

    // The quiet room is restarted by the node itself (no publish needed): an
    // empty resync first, then its new epoch's events arrive live.
    const quietResync = await q.resyncs.first("the quiet room's resync", () => true, 8_000);
    expect(quietResync).toMatchObject({ room: quiet, reason: "epoch_changed", events: [] });
    expect(quietResync.epoch).not.toBe(quietOld[0]!.epoch);
    expect(q.app).toEqual([]);
    const quietNew = await publishMany(b, quiet, 2, "new");
    expect(quietNew.map((r) => [r.epoch, r.seq])).toEqual([
      [quietResync.epoch, 1],
      [quietResync.epoch, 2],
    ]);
    const quietView = await q.until("the quiet room's new events", (v) => v.length >= 2);
    expect(seqs(quietView)).toEqual([1, 2]);
    expect(tags(quietView)).toEqual(["new", "new"]);
    expect(q.resyncs.items).toHaveLength(1);

    // Only the first subscribes went out: the client never re-asked, never reconnected.
    expect(wire.sent.filter((c) => c.op === "subscribe").map((c) => c.room)).toEqual([room, quiet]);
    expect(states.items).toEqual(["connecting", "open"]);
    expect(client.session?.session).toBe(session);
    expect(w.errors.items).toEqual([]);
    expect(q.errors.items).toEqual([]);
  });
});
