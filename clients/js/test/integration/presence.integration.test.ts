/**
 * Presence (contract section 13) against the real hub: every room a presence
 * room (`rooms.presence = true`), JWT auth on so each session has a user.
 * Joins and leaves once per user, the `presence` answer with session counts,
 * presence frames never mixed into a room's events, on WebSocket and on SSE.
 */

import { createHmac } from "node:crypto";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { HubClient, type HubClientOptions, type PresenceChange, type RoomEvent } from "../../src/index.js";
import { HubProcess } from "../support/hub.js";
import { Recorder } from "../support/wait.js";

const SECRET = "js-test-secret-that-is-32-bytes-long";
const clients: HubClient[] = [];
let hub: HubProcess;
let roomCounter = 0;

function uniqueRoom(prefix: string): string {
  roomCounter += 1;
  return `${prefix}-${process.pid}-${roomCounter}`;
}

function hs256(claims: Record<string, unknown>): string {
  const part = (value: unknown) => Buffer.from(JSON.stringify(value)).toString("base64url");
  const unsigned = `${part({ alg: "HS256", typ: "JWT" })}.${part(claims)}`;
  return `${unsigned}.${createHmac("sha256", SECRET).update(unsigned).digest("base64url")}`;
}

function clientFor(user: string, options: Partial<HubClientOptions> = {}): HubClient {
  const client = new HubClient({
    url: hub.url,
    WebSocket: WebSocket as unknown as HubClientOptions["WebSocket"],
    backoff: { initialDelayMs: 50, maxDelayMs: 500 },
    token: () => hs256({ sub: user, exp: Math.floor(Date.now() / 1000) + 600 }),
    transport: "websocket",
    ...options,
  });
  clients.push(client);
  return client;
}

/** Connects `client` subscribed to `room` and waits for the subscription. */
async function join(client: HubClient, room: string, changes?: Recorder<PresenceChange>, events?: Recorder<RoomEvent>) {
  const subscribed = new Recorder<unknown>();
  const sub = client.subscribe(room, { onSubscribed: subscribed.push, onPresence: changes?.push, onEvent: events?.push });
  client.connect();
  await subscribed.first("subscribed", () => true);
  return sub;
}

const changeOf = (c: PresenceChange) => `${c.change} ${c.user}`;

beforeAll(async () => {
  hub = await HubProcess.start({ env: { HUB_AUTH__JWT_SECRET: SECRET, HUB_ROOMS__PRESENCE: "true" } });
});

afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

afterAll(async () => {
  await hub.stop();
});

describe("presence against a running hub", () => {
  it("joins and leaves once per user, counts sessions, and keeps presence frames out of the room's events", async () => {
    const room = uniqueRoom("ops");
    const watcher = clientFor("watcher");
    const changes = new Recorder<PresenceChange>();
    const events = new Recorder<RoomEvent>();
    await join(watcher, room, changes, events);
    await changes.first("the watcher's own join", (c) => changeOf(c) === "join watcher");
    expect(await watcher.presence(room)).toEqual({ users: [{ user: "watcher", sessions: 1 }], anonymous: 0 });

    const alice1 = clientFor("alice");
    const alice2 = clientFor("alice");
    await join(alice1, room);
    await changes.first("alice joins", (c) => changeOf(c) === "join alice");
    await join(alice2, room);
    const bob = clientFor("bob", { transport: "sse" });
    await join(bob, room);
    await changes.first("bob joins", (c) => changeOf(c) === "join bob");
    // One join for alice however many sessions; the answer counts them.
    expect(changes.items.map(changeOf)).toEqual(["join watcher", "join alice", "join bob"]);
    expect(await watcher.presence(room)).toEqual({
      users: [
        { user: "alice", sessions: 2 },
        { user: "bob", sessions: 1 },
        { user: "watcher", sessions: 1 },
      ],
      anonymous: 0,
    });

    await hub.publish(room, "alert_raised", { n: 1 });
    alice1.close();
    await hub.publish(room, "alert_raised", { n: 2 });
    alice2.close();
    await changes.first("alice leaves with her last session", (c) => changeOf(c) === "leave alice");
    await hub.publish(room, "alert_raised", { n: 3 });
    const seen = await events.until("3 events", (e) => e.length >= 3);
    expect(seen.map((e) => [e.type, e.seq])).toEqual([
      ["alert_raised", 1],
      ["alert_raised", 2],
      ["alert_raised", 3],
    ]);
    expect(changes.items.map(changeOf)).toEqual(["join watcher", "join alice", "join bob", "leave alice"]);
    expect(watcher.position(room)).toMatchObject({ since: 3 });
  });

  it("on SSE the frames arrive too, and presence() is answered by the HTTP endpoint (loopback, no API keys)", async () => {
    const room = uniqueRoom("ops-sse");
    const viewer = clientFor("viewer", { transport: "sse" });
    const changes = new Recorder<PresenceChange>();
    const events = new Recorder<RoomEvent>();
    await join(viewer, room, changes, events);
    expect(viewer.transport).toBe("sse");
    const carol = clientFor("carol");
    await join(carol, room);
    await changes.first("carol joins", (c) => changeOf(c) === "join carol");
    expect(await viewer.presence(room)).toEqual({
      users: [
        { user: "carol", sessions: 1 },
        { user: "viewer", sessions: 1 },
      ],
      anonymous: 0,
    });
    carol.close();
    await changes.first("carol leaves", (c) => changeOf(c) === "leave carol");
    await hub.publish(room, "alert_raised", { n: 1 });
    expect((await events.until("1 event", (e) => e.length >= 1)).map((e) => e.seq)).toEqual([1]);
  });

  it("refuses presence() for a room the client is not in", async () => {
    const client = clientFor("dave");
    await join(client, uniqueRoom("mine"));
    await expect(client.presence(uniqueRoom("other"))).rejects.toMatchObject({ code: "forbidden" });
  });
});

describe("presence without auth", () => {
  it("counts sessions without a token as anonymous, with no join or leave for them", async () => {
    const open = await HubProcess.start({ env: { HUB_ROOMS__PRESENCE: "true" } });
    try {
      const room = uniqueRoom("anon");
      const make = () => {
        const client = new HubClient({ url: open.url, WebSocket: WebSocket as unknown as HubClientOptions["WebSocket"], transport: "websocket" });
        clients.push(client);
        return client;
      };
      const first = make();
      const changes = new Recorder<PresenceChange>();
      const events = new Recorder<RoomEvent>();
      await join(first, room, changes, events);
      const second = make();
      await join(second, room);
      expect(await first.presence(room)).toEqual({ users: [], anonymous: 2 });
      second.close();
      // Once the hub has let the second session go, a room event: had a leave been sent, it would come before it.
      const deadline = Date.now() + 5_000;
      while ((await open.get<{ room: string; subscribers: number }[]>("/api/rooms")).find((r) => r.room === room)?.subscribers !== 1) {
        if (Date.now() > deadline) throw new Error("the hub still counts the closed session after 5 s");
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await open.publish(room, "alert_raised", { n: 1 });
      await events.until("the event", (e) => e.length >= 1);
      expect(changes.items).toEqual([]);
      await expect(first.presence(room)).resolves.toEqual({ users: [], anonymous: 1 });
    } finally {
      await open.stop();
    }
  });
});
