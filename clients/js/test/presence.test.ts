import { describe, expect, it } from "vitest";
import { HubClient, type PresenceChange, type RoomEvent } from "../src/index.js";
import { parseFrame } from "../src/protocol.js";
import { FakeSse, sseFrame, sseWelcome } from "./support/fake-sse.js";
import { FakeWebSocket } from "./support/fake-websocket.js";
import { eventually } from "./support/wait.js";

async function openClient(): Promise<{ client: HubClient; socket: FakeWebSocket }> {
  FakeWebSocket.reset();
  const client = new HubClient({ url: "http://hub.test", WebSocket: FakeWebSocket, transport: "websocket" });
  client.connect();
  await eventually("socket", () => FakeWebSocket.instances.length === 1);
  const socket = FakeWebSocket.last;
  socket.accept();
  return { client, socket };
}

describe("presence frames (contract section 13)", () => {
  it("are control frames, not room events", () => {
    for (const type of ["presence", "presence_join", "presence_leave"]) {
      expect(parseFrame(JSON.stringify({ type, room: "ops", user: "alice", users: [], anonymous: 0 })).kind).toBe("control");
    }
    expect(parseFrame(JSON.stringify({ type: "status_update", room: "$status", data: {} })).kind).toBe("event");
  });

  it("reach onPresence and the presence event, never onEvent, and leave the room's order alone", async () => {
    const { client, socket } = await openClient();
    const events: RoomEvent[] = [];
    const changes: PresenceChange[] = [];
    const emitted: PresenceChange[] = [];
    client.on("presence", (c) => emitted.push(c));
    client.subscribe("ops", { onEvent: (e) => events.push(e), onPresence: (c) => changes.push(c) });
    socket.confirm("ops", "e1", 0, false);
    socket.frame({ type: "presence_join", room: "ops", user: "alice" });
    socket.event("ops", 1);
    socket.frame({ type: "presence_leave", room: "ops", user: "alice" });
    socket.event("ops", 2);
    expect(events.map((e) => e.seq)).toEqual([1, 2]);
    expect(changes).toEqual([
      { room: "ops", user: "alice", change: "join" },
      { room: "ops", user: "alice", change: "leave" },
    ]);
    expect(emitted).toEqual(changes);
    expect(client.position("ops")).toEqual({ since: 2, epoch: "e1" });
    client.close();
  });

  it("presence(room) sends the command with a ref and resolves with the answer; an error frame rejects", async () => {
    const { client, socket } = await openClient();
    client.subscribe("ops");
    const answer = client.presence("ops");
    const [command] = socket.commands("presence");
    expect(command).toMatchObject({ op: "presence", room: "ops" });
    socket.frame({ type: "presence", room: "ops", users: [{ user: "alice", sessions: 2 }], anonymous: 1, ref: command!.ref });
    await expect(answer).resolves.toEqual({ users: [{ user: "alice", sessions: 2 }], anonymous: 1 });

    const refused = client.presence("plain");
    const second = socket.commands("presence")[1]!;
    socket.frame({ type: "error", code: "bad_request", message: "plain does not track presence", ref: second.ref });
    await expect(refused).rejects.toMatchObject({ code: "bad_request", room: "plain" });
    client.close();
  });

  it("on SSE asks GET /api/rooms/{room}/presence, and says clearly when that admin endpoint refuses", async () => {
    const fake = new FakeSse();
    const asked: string[] = [];
    let allowed = true;
    const fetch = async (input: string, init?: RequestInit): Promise<Response> => {
      const url = new URL(input);
      if (url.pathname.endsWith("/presence")) {
        asked.push(url.pathname);
        return allowed
          ? new Response(JSON.stringify({ room: "ops", users: [{ user: "bob", sessions: 1 }], anonymous: 0 }), { status: 200 })
          : new Response(JSON.stringify({ error: "forbidden", message: "admin only" }), { status: 403 });
      }
      return fake.fetch(input, init);
    };
    const client = new HubClient({ url: "http://hub.test", transport: "sse", fetch });
    client.subscribe("ops");
    client.connect();
    const stream = await fake.requests.first("stream", () => true);
    stream.write(sseWelcome + sseFrame({ type: "subscribed", room: "ops", epoch: "e1", seq: 0, recovered: false }));
    await eventually("open", () => client.state === "open");
    await expect(client.presence("ops")).resolves.toEqual({ users: [{ user: "bob", sessions: 1 }], anonymous: 0 });
    expect(asked).toEqual(["/api/rooms/ops/presence"]);
    allowed = false;
    const refused = client.presence("ops");
    await expect(refused).rejects.toMatchObject({ code: "receive_only", room: "ops" });
    await expect(refused).rejects.toThrow(/over SSE.*admin-only \(403 forbidden\)/);
    client.close();
  });
});
