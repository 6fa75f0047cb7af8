/**
 * The Server-Sent Events transport's pieces that have no client state: a
 * parser of the `text/event-stream` format (WHATWG HTML, "server-sent events",
 * the parts a hub stream uses), a reader that feeds it from a `fetch` body,
 * and the `last_event_id` the client builds from its own room positions.
 *
 * The client reads the stream with `fetch` rather than `EventSource`: one code
 * path in browsers and in Node (which has no EventSource), its own backoff
 * instead of EventSource's fixed retry, and a token that can change between
 * reconnects.
 */

import type { ResumePosition } from "./cursor.js";
import { HubError } from "./errors.js";
import { answerError } from "./http.js";
import { CloseCode } from "./protocol.js";

/** One dispatched message. */
export interface SseMessage {
  /** The `data:` lines of the message, joined with `\n`. */
  data: string;
  /** The message's `id:` field, when it had one. */
  id?: string;
  /** The message's `event:` field, when it had one (the hub sends none). */
  event?: string;
}

/** What the parser reports. */
export interface SseParserHandlers {
  onMessage(message: SseMessage): void;
  /** A comment line (`:` then text): the hub's keep-alive, or its closing note. */
  onComment?(text: string): void;
  /** A valid `retry:` field, in milliseconds. */
  onRetry?(ms: number): void;
}

/**
 * Incremental `text/event-stream` parser: feed it text in chunks cut anywhere
 * (inside a line, between `\r` and `\n`); it dispatches each message at the
 * blank line that ends it. A message without data is not dispatched, as in
 * EventSource; `lastEventId` persists across messages, as there.
 */
export class SseParser {
  private buffer = "";
  private data: string[] = [];
  private hasData = false;
  private id: string | undefined;
  private event: string | undefined;
  private started = false;
  /** A chunk ended in `\r`: a `\n` opening the next one belongs to that line end. */
  private pendingCr = false;
  private last = "";

  constructor(private readonly handlers: SseParserHandlers) {}

  /** The last `id:` seen on the stream (empty before any). */
  get lastEventId(): string {
    return this.last;
  }

  /** Parses the next piece of the stream. */
  feed(chunk: string): void {
    let text = chunk;
    if (!this.started && text.length > 0) {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    if (this.pendingCr && text.startsWith("\n")) text = text.slice(1);
    this.pendingCr = false;
    this.buffer += text;
    let start = 0;
    for (let i = 0; i < this.buffer.length; i += 1) {
      const c = this.buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      this.line(this.buffer.slice(start, i));
      if (c === 13) {
        if (i + 1 === this.buffer.length) this.pendingCr = true;
        else if (this.buffer.charCodeAt(i + 1) === 10) i += 1;
      }
      start = i + 1;
    }
    this.buffer = this.buffer.slice(start);
  }

  private line(line: string): void {
    if (line.length === 0) return this.dispatch();
    if (line.startsWith(":")) {
      this.handlers.onComment?.(line.slice(1).replace(/^ /, ""));
      return;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    switch (field) {
      case "data":
        this.data.push(value);
        this.hasData = true;
        return;
      case "id":
        if (!value.includes("\0")) this.id = value;
        return;
      case "event":
        this.event = value;
        return;
      case "retry":
        if (/^\d+$/.test(value)) this.handlers.onRetry?.(Number(value));
        return;
      default:
        return; // unknown fields are ignored
    }
  }

  private dispatch(): void {
    const id = this.id;
    if (id !== undefined) this.last = id;
    const event = this.event;
    this.id = undefined;
    this.event = undefined;
    if (!this.hasData) return;
    const message: SseMessage = { data: this.data.join("\n") };
    this.data = [];
    this.hasData = false;
    if (id !== undefined) message.id = id;
    if (event !== undefined) message.event = event;
    this.handlers.onMessage(message);
  }
}

/**
 * Reads a `fetch` response body to its end, feeding the parser; `onBytes` is
 * told of every chunk (liveness). Resolves when the stream ends or is aborted.
 */
export async function readEventStream(
  body: ReadableStream<Uint8Array>,
  parser: SseParser,
  onBytes: () => void,
): Promise<void> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      onBytes();
      parser.feed(decoder.decode(value, { stream: true }));
    }
    parser.feed(decoder.decode());
  } finally {
    reader.releaseLock();
  }
}

/** What {@link openEventStream} reports, each at most once except `onBytes` and `onMessage`. */
export interface EventStreamCallbacks {
  /** The request failed before any answer (network, abort). */
  onFailed(error: unknown): void;
  /** The hub (or a proxy) answered with an error instead of a stream; `status` is the answer's. */
  onRefused(refusal: HubError): void;
  /** A chunk arrived: the stream is alive. */
  onBytes(): void;
  /** One message's `data`. */
  onMessage(data: string): void;
  /**
   * The stream ended (or broke). The close code is the one the hub named in its
   * closing comment (`: closed 1001 server draining`), else 1006.
   */
  onEnd(close: { code: number; reason: string }): void;
}

/**
 * `GET url` as `text/event-stream` and reads it to its end. Resolves once the
 * answer's head is in (a refusal read, or the stream's reading started).
 */
export async function openEventStream(
  fetchImpl: (input: string, init?: RequestInit) => Promise<Response>,
  url: string,
  signal: AbortSignal,
  callbacks: EventStreamCallbacks,
): Promise<void> {
  let response: Response;
  try {
    response = await fetchImpl(url, { headers: { accept: "text/event-stream" }, signal, cache: "no-store" });
  } catch (error) {
    callbacks.onFailed(error);
    return;
  }
  if (!response.ok || !response.body) {
    callbacks.onRefused(await readRefusal(response));
    return;
  }
  let closed: { code: number; reason: string } | null = null;
  const parser = new SseParser({
    onMessage: (message) => callbacks.onMessage(message.data),
    onComment: (text) => {
      const named = /^closed (\d+) ?(.*)$/.exec(text);
      if (named) closed = { code: Number(named[1]), reason: named[2] ?? "" };
    },
  });
  readEventStream(response.body, parser, callbacks.onBytes).then(
    () => callbacks.onEnd(closed ?? { code: CloseCode.Abnormal, reason: "stream ended" }),
    () => callbacks.onEnd(closed ?? { code: CloseCode.Abnormal, reason: "stream failed" }),
  );
}

async function readRefusal(response: Response): Promise<HubError> {
  if (response.ok) return new HubError("bad_response", `GET /sse answered ${response.status} without a stream`, { status: response.status });
  let body: unknown;
  try {
    body = JSON.parse(await response.text());
  } catch {
    // not the hub's JSON (a proxy's page, or no body)
  }
  return answerError(response.status, body, "GET /sse");
}

/**
 * The `last_event_id` that resumes `rooms` where the client is in each: the
 * hub's `v1;ROOM/EPOCH/SEQ;...` cursor (rooms sorted, the epoch
 * percent-escaped), the same bytes the hub's own `id:` lines carry for the
 * same positions. Built from the client's positions rather than taken from
 * the last `id:` so that it names exactly what the application was handed
 * (a resync still reading history, a room resumed from a WebSocket session or
 * from a persisted position) and so the client knows what each room was asked
 * to resume from. Rooms without a position are left out: the hub subscribes
 * them fresh. Null when no room has a position.
 */
export function encodeSseCursor(positions: ReadonlyMap<string, ResumePosition>): string | null {
  const parts: string[] = [];
  for (const room of [...positions.keys()].sort()) {
    const { since, epoch } = positions.get(room)!;
    if (since === undefined || epoch === undefined || epoch === "") continue;
    parts.push(`${room}/${escapeEpoch(epoch)}/${since}`);
  }
  return parts.length > 0 ? `v1;${parts.join(";")}` : null;
}

function escapeEpoch(epoch: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(epoch)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9_.:-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/**
 * Of `rooms`, the one a refusal's message names (`unknown room \`r\``, `token
 * does not allow room r`), so that one room the hub refuses does not keep the
 * others off the stream.
 */
export function roomNamedIn(message: string, rooms: readonly string[]): string | undefined {
  let best: string | undefined;
  for (const room of rooms) {
    const named = message.includes(`\`${room}\``) || message.endsWith(` ${room}`) || message.includes(` ${room} `);
    if (named && (best === undefined || room.length > best.length)) best = room;
  }
  return best;
}
