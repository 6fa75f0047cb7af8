import { describe, expect, it } from "vitest";
import { HubClient, type HubClientOptions } from "../src/index.js";
import { SseParser, encodeSseCursor, roomNamedIn, type SseMessage } from "../src/sse.js";
import { FakeSse, sseFrame as frame, sseWelcome as welcome } from "./support/fake-sse.js";
import { FakeWebSocket } from "./support/fake-websocket.js";
import { Recorder, eventually } from "./support/wait.js";

function parse(chunks: string[]) {
  const messages: SseMessage[] = [];
  const comments: string[] = [];
  const retries: number[] = [];
  const parser = new SseParser({
    onMessage: (m) => messages.push(m),
    onComment: (c) => comments.push(c),
    onRetry: (ms) => retries.push(ms),
  });
  for (const chunk of chunks) parser.feed(chunk);
  return { messages, comments, retries, parser };
}

/** Every way of cutting `text` in two, and one character at a time. */
function cuts(text: string): string[][] {
  const out: string[][] = [[text], [...text]];
  for (let i = 1; i < text.length; i += 1) out.push([text.slice(0, i), text.slice(i)]);
  return out;
}

describe("SseParser", () => {
  const stream =
    "retry: 2213\n\n" +
    'data: {"type":"welcome"}\n\n' +
    ":\n\n" +
    "id: v1;alerts/e%2F1/41\n" +
    'data: {"type":"alert_raised",\n' +
    'data: "seq":41}\n\n' +
    ": closed 1001 server draining\n";

  it("gives the same messages, ids, comments and retry however the stream is cut", () => {
    for (const chunks of cuts(stream)) {
      const { messages, comments, retries, parser } = parse(chunks);
      expect(messages).toEqual([
        { data: '{"type":"welcome"}' },
        { data: '{"type":"alert_raised",\n"seq":41}', id: "v1;alerts/e%2F1/41" },
      ]);
      expect(comments).toEqual(["", "closed 1001 server draining"]);
      expect(retries).toEqual([2213]);
      expect(parser.lastEventId).toBe("v1;alerts/e%2F1/41");
    }
  });

  it("accepts CRLF and lone CR line ends, also split between chunks", () => {
    for (const text of ["data: a\r\n\r\ndata: b\r\rdata:c\n\n", "data: a\r\n\r\ndata: b\r\r" + "data:c\r\n\r\n"]) {
      for (const chunks of cuts(text)) {
        expect(parse(chunks).messages.map((m) => m.data)).toEqual(["a", "b", "c"]);
      }
    }
  });

  it("strips one leading space only, a BOM at the start, and keeps empty data lines", () => {
    const { messages } = parse(["\uFEFFdata:  two spaces\n\ndata\ndata:\ndata: x\n\n"]);
    expect(messages).toEqual([{ data: " two spaces" }, { data: "\n\nx" }]);
  });

  it("does not dispatch a message without data, nor an unfinished one, and ignores unknown fields and bad retry", () => {
    const { messages, retries, parser } = parse(["id: 7\n\nevent: x\nfoo: bar\nretry: 12ms\n\ndata: half"]);
    expect(messages).toEqual([]);
    expect(retries).toEqual([]);
    expect(parser.lastEventId).toBe("7");
    parser.feed("\n\n");
    expect(messages).toEqual([{ data: "half" }]);
  });

  it("carries the event field when there is one", () => {
    expect(parse(["event: note\ndata: 1\n\n"]).messages).toEqual([{ data: "1", event: "note" }]);
  });
});

describe("encodeSseCursor", () => {
  it("writes the hub's v1 cursor: rooms sorted, epochs escaped, rooms without a position left out", () => {
    const cursor = encodeSseCursor(
      new Map([
        ["hotspots", { since: 7, epoch: "k2x-2" }],
        ["alerts", { since: 41, epoch: "a/b c%" }],
        ["fresh", {}],
        ["$status", {}],
      ]),
    );
    expect(cursor).toBe("v1;alerts/a%2Fb%20c%25/41;hotspots/k2x-2/7");
    expect(encodeSseCursor(new Map([["fresh", {}]]))).toBeNull();
  });
});

describe("roomNamedIn", () => {
  it("finds the room a refusal names", () => {
    expect(roomNamedIn("unknown room `nope`", ["alerts", "nope"])).toBe("nope");
    expect(roomNamedIn("token does not allow room alerts-2", ["alerts", "alerts-2"])).toBe("alerts-2");
    expect(roomNamedIn("rooms is required", ["alerts"])).toBeUndefined();
  });
});

function sseClient(fake: FakeSse, options: Partial<HubClientOptions> = {}): HubClient {
  return new HubClient({
    url: "http://hub.test:8080",
    WebSocket: FakeWebSocket,
    fetch: fake.fetch,
    backoff: { initialDelayMs: 10, maxDelayMs: 50, jitter: 0 },
    ...options,
  });
}

describe("HubClient on SSE (fake hub)", () => {
  it("opens /sse with the rooms, reopens once for several room changes with the positions, and refuses publish", async () => {
    const fake = new FakeSse();
    const client = sseClient(fake, { transport: "sse" });
    const events = new Recorder<number>();
    client.subscribe("alerts", { onEvent: (e) => events.push(e.seq!) });
    const transports = new Recorder<string | null>();
    client.on("transport", (t) => transports.push(t.to));
    client.connect();
    const first = await fake.requests.first("first stream", () => true);
    expect(first.url.pathname).toBe("/sse");
    expect(first.url.searchParams.get("rooms")).toBe("alerts");
    expect(first.url.searchParams.has("last_event_id")).toBe(false);
    first.write(welcome + frame({ type: "subscribed", room: "alerts", epoch: "e1", seq: 3, recovered: false }));
    first.write(`id: v1;alerts/e1/3\n${frame({ type: "alert_raised", room: "alerts", seq: 3, data: {} })}`);
    await events.until("seq 3", (e) => e.includes(3));
    expect(client.transport).toBe("sse");
    expect(transports.items).toEqual(["sse"]);
    await expect(client.publish("alerts", "x", {})).rejects.toMatchObject({ code: "receive_only" });

    // Two rooms in one tick: one new stream, alerts resumed, the new rooms fresh.
    client.subscribe("hotspots");
    client.subscribe("zones");
    const second = await fake.requests.first("second stream", (r) => r !== first);
    expect(second.url.searchParams.get("rooms")).toBe("alerts,hotspots,zones");
    expect(second.url.searchParams.get("last_event_id")).toBe("v1;alerts/e1/3");
    expect(fake.requests.items).toHaveLength(2);
    expect(client.state).toBe("open");
    client.close();
    expect(transports.items).toEqual(["sse", null]);
  });

  it("auto: falls back to SSE after two WebSocket attempts without welcome", async () => {
    FakeWebSocket.reset();
    const fake = new FakeSse();
    const client = sseClient(fake);
    client.subscribe("alerts");
    client.connect();
    await eventually("first socket", () => FakeWebSocket.instances.length === 1);
    FakeWebSocket.last.drop();
    await eventually("second socket", () => FakeWebSocket.instances.length === 2);
    FakeWebSocket.last.drop();
    const stream = await fake.requests.first("the SSE fallback", () => true);
    expect(FakeWebSocket.instances).toHaveLength(2);
    stream.write(welcome);
    await eventually("open", () => client.state === "open");
    expect(client.transport).toBe("sse");
    client.close();
  });

  it("one refused room fails alone; the stream goes on with the others", async () => {
    const fake = new FakeSse();
    const client = sseClient(fake, { transport: "sse" });
    const errors = new Recorder<string>();
    client.subscribe("alerts");
    client.subscribe("nope", { onError: (e) => errors.push(e.code) });
    fake.refuse = { status: 404, body: { error: "unknown_room", message: "unknown room `nope`" } };
    client.connect();
    await errors.first("unknown_room", (c) => c === "unknown_room");
    const retry = await fake.requests.until("second request", (r) => r.length >= 2);
    expect(retry[1]!.url.searchParams.get("rooms")).toBe("alerts");
    client.close();
  });
});

describe("HubClient on SSE: liveness and endings (fake hub)", () => {
  it("replaces a stream that stays silent past heartbeat + pongTimeout, and names $status when no room is subscribed", async () => {
    const fake = new FakeSse();
    const client = sseClient(fake, { transport: "sse", pingIntervalMs: 150, pongTimeoutMs: 100 });
    const closes = new Recorder<string>();
    client.on("close", (c) => closes.push(c.reason));
    client.connect();
    const first = await fake.requests.first("stream", () => true);
    expect(first.url.searchParams.get("rooms")).toBe("$status");
    first.write(welcome);
    await eventually("open", () => client.state === "open");
    // Keep-alive comments hold it open...
    for (let i = 0; i < 4; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      first.write(":\n\n");
    }
    expect(closes.items).toEqual([]);
    // ...silence does not.
    expect(await closes.first("stream silent", () => true, 1_000)).toBe("stream silent");
    await fake.requests.until("a new stream", (r) => r.length >= 2);
    client.close();
  });

  it("takes the close code from the hub's closing comment, and shouldReconnect sees it", async () => {
    const fake = new FakeSse();
    const seen: number[] = [];
    const client = sseClient(fake, {
      transport: "sse",
      shouldReconnect: (c) => {
        seen.push(c.code);
        return false;
      },
    });
    client.connect();
    const stream = await fake.requests.first("stream", () => true);
    stream.write(welcome);
    await eventually("open", () => client.state === "open");
    stream.write(": closed 4009 disconnected by admin\n\n");
    stream.end();
    await eventually("closed", () => client.state === "closed");
    expect(seen).toEqual([4009]);
    expect(client.transport).toBeNull();
  });

  it("auto: an SSE that cannot connect either hands back to WebSocket after two attempts", async () => {
    FakeWebSocket.reset();
    const fake = new FakeSse();
    const client = sseClient(fake);
    client.connect();
    for (const n of [1, 2]) {
      await eventually(`socket ${n}`, () => FakeWebSocket.instances.length === n);
      FakeWebSocket.last.drop();
    }
    for (const n of [1, 2]) {
      const stream = await fake.requests.until(`stream ${n}`, (r) => r.length >= n);
      stream[n - 1]!.end(); // ends before welcome
    }
    await eventually("back on WebSocket", () => FakeWebSocket.instances.length === 3);
    FakeWebSocket.last.accept();
    expect(client.transport).toBe("websocket");
    client.close();
  });
});
