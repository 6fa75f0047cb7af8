/**
 * `HubClient`: one reconnecting WebSocket to a hub's multi-room endpoint.
 *
 * - connects with a token, retries with exponential backoff, jitter and a cap;
 * - after every reconnect resubscribes each room with `since` + `epoch`, so no
 *   event still in the hub's history is lost, and drops any duplicate;
 * - when the hub answers `recovered:false` to a resume, or restarts a subscribed
 *   room on its own (an unsolicited `subscribed`, no `ref`), fetches HTTP history
 *   and hands the room's current events to `onResync` handlers;
 * - in a keyed room, hands the state the hub sends on subscribe (and instead
 *   of a resync) to `onState` handlers, without any HTTP call;
 * - sends app-level pings so a dead connection (which a browser may not notice
 *   for minutes) is detected and replaced;
 * - exposes its state (`connecting | open | reconnecting | closed`) as events;
 * - where WebSocket cannot get through, receives the same session over
 *   Server-Sent Events (`transport` option): the same frames, resumed by the
 *   same positions, publishing left to the HTTP API.
 */

import { Backoff } from "./backoff.js";
import { RoomCursor, type ResumePosition, type ResyncReason } from "./cursor.js";
import { Emitter, type Listener, type Unsubscribe } from "./emitter.js";
import { HubError, NotConnectedError, TimeoutError, type ErrorCode } from "./errors.js";
import type { CompletedState } from "./cursor.js";
import type {
  HubClientEvents,
  PresenceChange,
  PresenceInfo,
  ResyncInfo,
  RoomHandlers,
  StateInfo,
  SubscribeOptions,
  SubscribedInfo,
} from "./events.js";
import { readRoomHistory } from "./history.js";
import { HubHttp } from "./http.js";
import type { FetchLike } from "./http.js";
import type { HubClientOptions, TransportName, WebSocketConstructor, WebSocketLike } from "./options.js";
import {
  CloseCode,
  PROTOCOL_VERSION,
  isSystemRoom,
  isValidRoomName,
  parseFrame,
  STATUS_ROOM,
  type Command,
  type ControlFrame,
  type ErrorFrame,
  type Ref,
  type RoomEvent,
  type ServerErrorCode,
  type SubscribedFrame,
  type WelcomeFrame,
} from "./protocol.js";
import type { AnyEventOf, EventSchema, UntypedSchema } from "./schema.js";
import { encodeSseCursor, openEventStream, roomNamedIn } from "./sse.js";
import { ConnectionStateMachine, type ConnectionState } from "./state.js";
import { SubscriptionImpl, type Subscription } from "./subscription.js";
import { resolveHubUrls, type HubUrls } from "./url.js";

type SubscriptionStatus = "pending" | "subscribed" | "failed";

interface RoomEntry<S extends EventSchema> {
  room: string;
  cursor: RoomCursor;
  subs: Set<SubscriptionImpl<S>>;
  status: SubscriptionStatus;
  /** Position sent with the outstanding subscribe. */
  sent: ResumePosition;
  /** Ref of the outstanding subscribe. */
  ref: Ref | null;
  retryTimer: ReturnType<typeof setTimeout> | null;
  retryBackoff: Backoff;
  resyncAbort: AbortController | null;
}

interface PendingPublish {
  resolve: (result: { room: string; seq: number }) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

type PendingRef =
  | { kind: "subscribe"; room: string }
  | { kind: "unsubscribe"; room: string }
  | { kind: "publish"; room: string; pending: PendingPublish }
  | { kind: "ping" }
  | { kind: "refresh" }
  | { kind: "presence"; room: string; pending: PendingPresence };

interface PendingPresence {
  resolve: (info: PresenceInfo) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** Options of {@link HubClient.publish}. */
export interface SocketPublishOptions {
  /** Keyed rooms: the state key this event sets (1-256 bytes). */
  key?: string;
  /** Keyed rooms: remove `key` from the room's state (`data` may then be omitted). */
  delete?: boolean;
}

/** Error codes after which a failed subscribe is retried instead of given up. */
const TRANSIENT_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>(["rate_limited", "unavailable", "internal"]);

/** `window` in a browser: the `online` event there means "retry now, do not wait". */
interface OnlineEvents {
  addEventListener(type: "online", listener: () => void): void;
  removeEventListener(type: "online", listener: () => void): void;
}

/**
 * A reconnecting client for the hub's multi-room WebSocket endpoint.
 *
 * @typeParam S - the application's event schema (event type -> data type).
 */
export class HubClient<S extends EventSchema = UntypedSchema> {
  private readonly emitter = new Emitter<HubClientEvents<S>>();
  private readonly machine: ConnectionStateMachine;
  private readonly backoff: Backoff;
  private readonly urls: HubUrls;
  private readonly rooms = new Map<string, RoomEntry<S>>();
  private readonly refs = new Map<Ref, PendingRef>();
  private http: HubHttp | null = null;

  private socket: WebSocketLike | null = null;
  /** Incremented whenever a socket is abandoned, so its late callbacks are ignored. */
  private socketGeneration = 0;
  private welcome: WelcomeFrame | null = null;
  private nextRef = 1;
  private failedAttempts = 0;

  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private connectTimer: ReturnType<typeof setTimeout> | null = null;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private pongTimer: ReturnType<typeof setTimeout> | null = null;
  private refreshTimer: ReturnType<typeof setTimeout> | null = null;
  /** `exp` (Unix seconds) of the token the open socket runs on, when it could be read. */
  private socketTokenExp: number | null = null;

  /** The transport the next attempt uses; `auto` moves it between the two. */
  private mode: TransportName = "websocket";
  /** The transport of the session in use, null while there is none. */
  private inUse: TransportName | null = null;
  /** Attempts in a row on `mode` that ended before `welcome`. */
  private attemptFailures = 0;
  /** The last WebSocket attempt got an HTTP answer instead of an upgrade (seen where the implementation tells, e.g. `ws`). */
  private handshakeRefused = false;
  /** SSE reached `welcome` since the last WebSocket session: one failed WebSocket try is then enough to go back. */
  private sseWorked = false;
  /** When the client last moved onto SSE (ms), for the WebSocket retry. */
  private sseSince = 0;
  /** Aborts the SSE request in flight or being read. */
  private stream: AbortController | null = null;
  /** No byte for this long on an open stream: it counts as dead. */
  private streamTimer: ReturnType<typeof setTimeout> | null = null;
  /** Coalesces room changes on SSE into one reopen. */
  private reopenTimer: ReturnType<typeof setTimeout> | null = null;
  /** While on SSE in `auto`: when to try WebSocket again, and the socket of that try. */
  private probeTimer: ReturnType<typeof setTimeout> | null = null;
  private probe: WebSocketLike | null = null;
  private readonly onOnline = () => this.reconnectNow();

  constructor(private readonly options: HubClientOptions = {}) {
    this.urls = resolveHubUrls(options.url, options.wsPath);
    this.backoff = new Backoff(options.backoff, options.random);
    this.machine = new ConnectionStateMachine((change) => this.emitter.emit("state", change));
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.machine.state;
  }

  /** The current session's `welcome`, or null while not open. */
  get session(): WelcomeFrame | null {
    return this.welcome;
  }

  /**
   * The transport of the current session: `websocket`, `sse` (the fallback, or
   * `transport: "sse"`), or null while not connected. Changes are emitted as
   * `transport` events.
   */
  get transport(): TransportName | null {
    return this.inUse;
  }

  /** The hub's WebSocket and HTTP addresses. */
  get endpoints(): HubUrls {
    return { ...this.urls };
  }

  /** HTTP API client for the same hub (history, status, rooms, publish). */
  get api(): HubHttp {
    this.http ??= new HubHttp({ baseUrl: this.urls.httpBase, fetch: this.options.fetch });
    return this.http;
  }

  /** Adds a listener for a client event; returns a function that removes it. */
  on<K extends keyof HubClientEvents<S>>(event: K, listener: Listener<HubClientEvents<S>[K]>): Unsubscribe {
    return this.emitter.on(event, listener);
  }

  /** Removes a listener added with {@link on}. */
  off<K extends keyof HubClientEvents<S>>(event: K, listener: Listener<HubClientEvents<S>[K]>): void {
    this.emitter.off(event, listener);
  }

  /**
   * Starts connecting (no-op unless `closed`). Subscriptions made before or after
   * are (re)sent every time a session opens.
   */
  connect(): this {
    if (this.machine.state !== "closed") return this;
    this.failedAttempts = 0;
    this.attemptFailures = 0;
    this.sseWorked = false;
    this.mode = this.options.transport === "sse" ? "sse" : "websocket";
    this.backoff.reset();
    this.machine.transition("connecting", "connect()");
    onlineEvents()?.addEventListener("online", this.onOnline);
    void this.openConnection("connect");
    return this;
  }

  /**
   * While `reconnecting` and waiting out a backoff delay, tries again at once.
   * Called automatically when a browser reports it is back `online`.
   */
  reconnectNow(): void {
    if (this.machine.state !== "reconnecting" || this.reconnectTimer === null) return;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
    void this.openConnection("connect");
  }

  /**
   * Closes the connection and stops reconnecting (state `closed`). Subscriptions
   * are kept: a later {@link connect} resumes them where they were.
   */
  close(code: number = CloseCode.Normal, reason = "client closed"): void {
    if (this.machine.state === "closed") return;
    const socket = this.socket;
    this.teardown(new NotConnectedError("client closed"));
    this.setTransport(null);
    this.enterClosed("close()");
    if (socket) safeClose(socket, code, reason);
    this.emitter.emit("close", { code, reason, willReconnect: false });
  }

  /**
   * Resolves once the state is `state`, or rejects after `timeoutMs`.
   */
  waitFor(state: ConnectionState, timeoutMs = 10_000): Promise<void> {
    if (this.machine.state === state) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new TimeoutError(`state ${state} not reached within ${timeoutMs} ms (now ${this.state})`));
      }, timeoutMs);
      const off = this.emitter.on("state", (change) => {
        if (change.to !== state) return;
        clearTimeout(timer);
        off();
        resolve();
      });
    });
  }

  /**
   * Subscribes to `room` (a room name or a system room like `$status`). Several
   * subscriptions to one room share one hub subscription.
   *
   * @throws TypeError for an invalid room name.
   */
  subscribe(room: string, handlers: RoomHandlers<S> = {}, options: SubscribeOptions = {}): Subscription<S> {
    if (!isValidRoomName(room) && !isSystemRoom(room)) {
      throw new TypeError(`invalid room name: ${JSON.stringify(room)}`);
    }
    let entry = this.rooms.get(room);
    if (!entry) {
      entry = {
        room,
        cursor: new RoomCursor(options),
        subs: new Set(),
        status: "pending",
        sent: {},
        ref: null,
        retryTimer: null,
        retryBackoff: new Backoff(this.options.backoff, this.options.random),
        resyncAbort: null,
      };
      this.rooms.set(room, entry);
      if (this.mode === "sse") this.roomsChanged();
      else if (this.machine.state === "open") this.sendSubscribe(entry);
    }
    const sub = new SubscriptionImpl<S>(room, handlers, (s) => this.removeSubscription(s));
    entry.subs.add(sub);
    return sub;
  }

  /** Rooms with at least one subscription. */
  subscribedRooms(): string[] {
    return [...this.rooms.keys()];
  }

  /**
   * The position the client would resume `room` from (`since` + `epoch`), e.g. to
   * persist it and pass it to {@link subscribe} later.
   */
  position(room: string): ResumePosition {
    return this.rooms.get(room)?.cursor.resumePosition() ?? {};
  }

  /**
   * Publishes over the socket (only into rooms with `client_publish` and when the
   * token allows it). Resolves with the event's seq. In a keyed room, `key` (and
   * `delete`) address the room's state; a new key past its `max_keys` rejects
   * with `limit_exceeded`.
   */
  publish<K extends keyof S & string>(
    room: string,
    type: K,
    data: S[K] | undefined,
    options: SocketPublishOptions = {},
  ): Promise<{ room: string; seq: number }> {
    if (this.inUse === "sse") return Promise.reject(receiveOnly("publish", room));
    if (this.machine.state !== "open" || !this.socket) return Promise.reject(new NotConnectedError());
    const ref = this.takeRef("pub");
    return new Promise((resolve, reject) => {
      const timeoutMs = this.options.commandTimeoutMs ?? 10_000;
      const timer = setTimeout(() => {
        this.refs.delete(ref);
        reject(new TimeoutError(`publish to ${room} not acknowledged within ${timeoutMs} ms`));
      }, timeoutMs);
      this.refs.set(ref, { kind: "publish", room, pending: { resolve, reject, timer } });
      const keyed = options.key === undefined ? {} : { key: options.key, ...(options.delete ? { delete: true } : {}) };
      this.send({ op: "publish", room, type, data, ...keyed, ref });
    });
  }

  /**
   * Who is in a presence room (contract section 13) the client is subscribed to:
   * every user (the token's `sub`) with its number of sessions, and the sessions
   * without a token. Rejects with `forbidden` when not subscribed, `bad_request`
   * for a room without presence.
   *
   * On SSE, which cannot send the `presence` command, it asks
   * `GET /api/rooms/{room}/presence` instead. That endpoint is the hub's admin
   * API (an API key, or loopback when the hub has none), which a browser is
   * normally not given: then it rejects with `receive_only`, saying so.
   */
  presence(room: string): Promise<PresenceInfo> {
    if (this.inUse === "sse") return this.presenceOverHttp(room);
    if (this.machine.state !== "open" || !this.socket) return Promise.reject(new NotConnectedError());
    const ref = this.takeRef("presence");
    return new Promise((resolve, reject) => {
      const timeoutMs = this.options.commandTimeoutMs ?? 10_000;
      const timer = setTimeout(() => {
        this.refs.delete(ref);
        reject(new TimeoutError(`presence of ${room} not answered within ${timeoutMs} ms`));
      }, timeoutMs);
      this.refs.set(ref, { kind: "presence", room, pending: { resolve, reject, timer } });
      this.send({ op: "presence", room, ref });
    });
  }

  private async presenceOverHttp(room: string): Promise<PresenceInfo> {
    try {
      const body = await this.api.presence(room);
      return { users: body.users, anonymous: body.anonymous };
    } catch (error) {
      if (!(error instanceof HubError)) throw error;
      if (error.status === 401 || error.status === 403) {
        throw new HubError(
          "receive_only",
          `cannot ask the presence of ${room} over SSE: the stream cannot send the presence command, ` +
            `and GET /api/rooms/${room}/presence is admin-only (${error.status} ${error.code})`,
          { room, cause: error },
        );
      }
      throw new HubError(error.code, error.message, { room, status: error.status, cause: error });
    }
  }

  // --- connection lifecycle -------------------------------------------------

  /**
   * One connection attempt on the current transport. `connect` (a first
   * connect or a reconnect) offers the hub every room again, failed ones
   * included (a new session may carry a new token); `reopen` (an SSE stream
   * replaced for new rooms or a new token) leaves out rooms the hub refused.
   */
  private async openConnection(kind: "connect" | "reopen"): Promise<void> {
    const generation = ++this.socketGeneration;
    let token: string | null | undefined;
    try {
      token = typeof this.options.token === "function" ? await this.options.token() : this.options.token;
    } catch (error) {
      if (generation !== this.socketGeneration) return;
      this.emitter.emit("error", new HubError("token_error", "token provider failed", { cause: error }));
      this.handleDrop({ code: CloseCode.Abnormal, reason: "token provider failed" });
      return;
    }
    if (generation !== this.socketGeneration) return;
    this.socketTokenExp = token ? tokenExp(token) : null;
    const connectTimeoutMs = this.options.connectTimeoutMs ?? 10_000;
    this.connectTimer = setTimeout(() => {
      if (generation === this.socketGeneration) this.handleDrop({ code: CloseCode.Abnormal, reason: "connect timeout" });
    }, connectTimeoutMs);
    if (this.mode === "sse") void this.openStream(generation, token, kind);
    else this.openWebSocket(generation, token);
  }

  private openWebSocket(generation: number, token: string | null | undefined): void {
    const Ctor = this.webSocketConstructor();
    if (!Ctor) return;
    const url = token ? `${this.urls.wsUrl}?token=${encodeURIComponent(token)}` : this.urls.wsUrl;
    let socket: WebSocketLike;
    try {
      socket = new Ctor(url);
    } catch (error) {
      this.emitter.emit("error", new HubError("connect_failed", `cannot open ${this.urls.wsUrl}`, { cause: error }));
      this.handleDrop({ code: CloseCode.Abnormal, reason: "cannot open socket" });
      return;
    }
    this.attachWebSocket(socket, generation);
  }

  private webSocketConstructor(): WebSocketConstructor | undefined {
    const Ctor = this.options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Ctor) {
      this.emitter.emit(
        "error",
        new HubError("no_websocket", "no WebSocket implementation: pass the `WebSocket` option (e.g. from the `ws` package)"),
      );
      this.teardown(new NotConnectedError("no WebSocket implementation"));
      this.enterClosed("no WebSocket implementation");
    }
    return Ctor;
  }

  private attachWebSocket(socket: WebSocketLike, generation: number): void {
    this.socket = socket;
    const current = () => generation === this.socketGeneration;
    socket.onmessage = (event) => {
      if (current()) this.onFrame(event.data);
    };
    socket.onclose = (event) => {
      if (current()) this.handleDrop({ code: event.code, reason: event.reason });
    };
    socket.onerror = (event) => {
      // A close event follows every error; it drives the reconnect. Where the
      // implementation says the handshake got an HTTP answer (ws: "Unexpected
      // server response: 403"), the upgrade was refused: a reason to use SSE.
      if (current() && this.welcome === null && handshakeRefusal(event)) this.handshakeRefused = true;
    };
  }

  /** Opens `GET /sse` with the rooms and their positions, and reads it until it ends. */
  private async openStream(generation: number, token: string | null | undefined, kind: "connect" | "reopen"): Promise<void> {
    const fetchImpl: FetchLike | undefined = this.options.fetch ?? (globalThis.fetch as FetchLike | undefined)?.bind(globalThis);
    if (!fetchImpl) {
      this.emitter.emit("error", new HubError("no_fetch", "no fetch implementation for the SSE transport: pass the `fetch` option"));
      this.teardown(new NotConnectedError("no fetch implementation"));
      this.enterClosed("no fetch implementation");
      return;
    }
    const current = () => generation === this.socketGeneration;
    const entries = [...this.rooms.values()].filter((e) => kind === "connect" || e.status !== "failed");
    const positions = new Map<string, ResumePosition>();
    for (const entry of entries) {
      const position = isSystemRoom(entry.room) ? {} : entry.cursor.resumePosition();
      entry.sent = position;
      entry.status = "pending";
      entry.ref = null;
      positions.set(entry.room, position);
    }
    const rooms = entries.map((e) => e.room);
    const params = new URLSearchParams();
    // A stream needs a room; with none yet, `$status` carries the session (its frames are ignored).
    params.set("rooms", rooms.length > 0 ? rooms.join(",") : STATUS_ROOM);
    if (token) params.set("token", token);
    const cursor = encodeSseCursor(positions);
    if (cursor !== null) params.set("last_event_id", cursor);
    const abort = new AbortController();
    this.stream = abort;
    const path = this.options.ssePath ?? "/sse";
    const url = `${this.urls.httpBase}${path.startsWith("/") ? path : `/${path}`}?${params.toString()}`;

    await openEventStream(fetchImpl, url, abort.signal, {
      onFailed: (error) => {
        if (!current()) return;
        this.emitter.emit("error", new HubError("connect_failed", `cannot open ${this.urls.httpBase}${path}`, { cause: error }));
        this.handleDrop({ code: CloseCode.Abnormal, reason: "cannot open stream" });
      },
      onRefused: (refusal) => {
        if (current()) this.onStreamRefused(refusal, rooms);
      },
      onBytes: () => {
        if (current()) this.streamAlive();
      },
      onMessage: (data) => {
        if (current()) this.onFrame(data);
      },
      onEnd: (close) => {
        if (current()) this.handleDrop(close);
      },
    });
  }

  /**
   * The hub refused the stream. One room refused (`unknown_room`, `forbidden`:
   * a stream is admitted as a whole) fails alone, as its subscribe would on a
   * socket, and the stream reopens without it; anything else is a failed attempt.
   */
  private onStreamRefused(refusal: HubError, rooms: readonly string[]): void {
    const named = refusal.code === "unknown_room" || refusal.code === "forbidden" ? roomNamedIn(refusal.message, rooms) : undefined;
    const entry = named === undefined ? undefined : this.rooms.get(named);
    if (entry) {
      this.onSubscribeFailed(entry, new HubError(refusal.code, refusal.message, { room: entry.room, status: refusal.status }));
      entry.status = "failed";
      if (entry.retryTimer !== null) clearTimeout(entry.retryTimer);
      entry.retryTimer = null;
      this.restartStream();
      return;
    }
    this.emitter.emit("error", refusal);
    this.handleDrop({ code: CloseCode.Abnormal, reason: `stream refused: ${refusal.status} ${refusal.code}` });
  }

  /** Bytes arrived on the stream: it is alive (the hub writes a comment every heartbeat). */
  private streamAlive(): void {
    if (this.welcome === null) return;
    if (this.streamTimer !== null) clearTimeout(this.streamTimer);
    const heartbeatMs = this.welcome.heartbeat_ms > 0 ? this.welcome.heartbeat_ms : 15_000;
    const timeoutMs = (this.options.pingIntervalMs ?? heartbeatMs) + (this.options.pongTimeoutMs ?? 10_000);
    this.streamTimer = setTimeout(() => {
      this.streamTimer = null;
      this.handleDrop({ code: CloseCode.Abnormal, reason: "stream silent" });
    }, timeoutMs);
  }

  /** On SSE, rooms changed: replace the stream once this tick's changes are all in. */
  private roomsChanged(): void {
    // Waiting out a backoff delay: the next attempt reads the rooms anyway.
    if (this.stream === null || this.reopenTimer !== null) return;
    this.reopenTimer = setTimeout(() => {
      this.reopenTimer = null;
      if (this.stream !== null && this.mode === "sse") this.restartStream();
    }, 0);
  }

  /**
   * Replaces the SSE stream without leaving `open`: every room resumes from
   * where the client is in it, rooms added since start fresh.
   */
  private restartStream(): void {
    this.teardown(new NotConnectedError("stream replaced"));
    void this.openConnection("reopen");
  }

  /** The connection is gone (or must be given up): clean up and maybe schedule a retry. */
  private handleDrop(close: { code: number; reason: string }): void {
    const state = this.machine.state;
    if (state === "closed") return;
    const socket = this.socket;
    const reachedWelcome = this.welcome !== null;
    this.teardown(new NotConnectedError(`connection lost (${close.code} ${close.reason})`.trim()));
    if (socket) safeClose(socket, 4000, "abandoned");
    this.setTransport(null);

    if (!reachedWelcome) {
      this.attemptFailures += 1;
      this.maybeSwitchTransport();
    }
    const wasOpen = state === "open";
    if (!wasOpen) this.failedAttempts += 1;
    const allowed = this.options.shouldReconnect?.(close) ?? true;
    const max = this.options.maxReconnectAttempts ?? Infinity;
    const willReconnect = allowed && this.failedAttempts < max;
    this.emitter.emit("close", { ...close, willReconnect });
    if (!willReconnect) {
      this.enterClosed(allowed ? "too many failed attempts" : `close ${close.code}`);
      return;
    }
    this.machine.transition("reconnecting", close.reason || `close ${close.code}`);
    const delayMs = this.backoff.next();
    this.emitter.emit("reconnect", { attempt: this.backoff.attempts, delayMs });
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      void this.openConnection("connect");
    }, delayMs);
  }

  /**
   * `auto`: WebSocket that cannot reach `welcome` (its upgrade refused, or two
   * attempts in a row; one when SSE worked before) gives way to SSE; SSE that
   * cannot either (two attempts) gives way to WebSocket again.
   */
  private maybeSwitchTransport(): void {
    if ((this.options.transport ?? "auto") !== "auto") return;
    const limit = this.mode === "websocket" && (this.handshakeRefused || this.sseWorked) ? 1 : 2;
    if (this.attemptFailures < limit) return;
    this.mode = this.mode === "websocket" ? "sse" : "websocket";
    this.attemptFailures = 0;
    this.handshakeRefused = false;
  }

  private setTransport(to: TransportName | null): void {
    const from = this.inUse;
    if (from === to) return;
    this.inUse = to;
    if (to === "sse") this.sseSince = Date.now();
    this.emitter.emit("transport", { from, to });
  }

  private enterClosed(reason: string): void {
    onlineEvents()?.removeEventListener("online", this.onOnline);
    this.machine.transition("closed", reason);
  }

  /** Stops timers, forgets the socket or stream and fails everything waiting on it. */
  private teardown(reason: Error): void {
    this.socketGeneration += 1;
    if (this.socket) {
      // No-ops rather than null: some implementations (ws) throw on an 'error'
      // event nobody listens to, e.g. when closing a socket still connecting.
      this.socket.onmessage = noop;
      this.socket.onclose = noop;
      this.socket.onerror = noop;
      this.socket.onopen = noop;
    }
    this.socket = null;
    this.stream?.abort();
    this.stream = null;
    if (this.probe) {
      const probe = this.probe;
      this.probe = null;
      probe.onmessage = probe.onclose = probe.onerror = noop;
      safeClose(probe, CloseCode.Normal, "not needed");
    }
    this.welcome = null;
    for (const timer of [this.reconnectTimer, this.connectTimer, this.pongTimer, this.refreshTimer, this.streamTimer, this.reopenTimer, this.probeTimer]) {
      if (timer !== null) clearTimeout(timer);
    }
    this.refreshTimer = this.streamTimer = this.reopenTimer = this.probeTimer = null;
    if (this.pingTimer !== null) clearInterval(this.pingTimer);
    this.reconnectTimer = this.connectTimer = this.pongTimer = this.pingTimer = null;
    for (const pending of this.refs.values()) {
      if (pending.kind === "publish" || pending.kind === "presence") {
        clearTimeout(pending.pending.timer);
        pending.pending.reject(reason);
      }
    }
    this.refs.clear();
    for (const entry of this.rooms.values()) {
      if (entry.retryTimer !== null) clearTimeout(entry.retryTimer);
      entry.retryTimer = null;
      entry.resyncAbort?.abort();
      entry.resyncAbort = null;
      entry.cursor.abandonResync();
      if (entry.status === "subscribed") entry.status = "pending";
      entry.ref = null;
    }
  }

  private onWelcome(frame: WelcomeFrame): void {
    if (this.connectTimer !== null) clearTimeout(this.connectTimer);
    this.connectTimer = null;
    if (frame.protocol !== PROTOCOL_VERSION) {
      this.emitter.emit("error", new HubError("protocol_mismatch", `hub speaks protocol ${frame.protocol}, client ${PROTOCOL_VERSION}`));
    }
    this.welcome = frame;
    this.failedAttempts = 0;
    this.attemptFailures = 0;
    this.backoff.reset();
    this.setTransport(this.mode);
    this.machine.transition("open", "welcome");
    this.emitter.emit("open", frame);
    this.scheduleRefresh(this.socketTokenExp);
    if (this.mode === "sse") {
      // The rooms were named in the request; their `subscribed` frames follow.
      this.sseWorked = true;
      this.streamAlive();
      this.scheduleProbe();
      return;
    }
    this.sseWorked = false;
    this.startPing(frame.heartbeat_ms);
    // Failed rooms are retried too: a new session may carry a new token.
    for (const entry of this.rooms.values()) this.sendSubscribe(entry);
  }

  // --- back to WebSocket ---------------------------------------------------------

  /** `auto` on SSE: try WebSocket again once `websocketRetryMs` have passed on SSE. */
  private scheduleProbe(): void {
    if ((this.options.transport ?? "auto") !== "auto" || this.inUse !== "sse") return;
    const retryMs = this.options.websocketRetryMs ?? 300_000;
    const generation = this.socketGeneration;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = null;
      if (generation === this.socketGeneration) void this.probeWebSocket(generation);
    }, Math.max(0, this.sseSince + retryMs - Date.now()));
  }

  /**
   * Opens a WebSocket beside the stream. If it reaches `welcome`, the stream is
   * dropped and every room subscribed on the socket from where the client is
   * (nothing lost, nothing twice: no frame of the stream is handled after the
   * switch); if not, the stream goes on and the next try is `websocketRetryMs` later.
   */
  private async probeWebSocket(generation: number): Promise<void> {
    let token: string | null | undefined;
    try {
      token = typeof this.options.token === "function" ? await this.options.token() : this.options.token;
    } catch {
      token = undefined;
    }
    const Ctor = this.options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (generation !== this.socketGeneration || !Ctor) return;
    const retryLater = () => {
      if (this.probe !== socket) return;
      this.probe = null;
      clearTimeout(timer);
      socket.onmessage = socket.onclose = socket.onerror = noop;
      safeClose(socket, CloseCode.Normal, "not needed");
      this.sseSince = Date.now();
      if (generation === this.socketGeneration) this.scheduleProbe();
    };
    let socket: WebSocketLike;
    try {
      socket = new Ctor(token ? `${this.urls.wsUrl}?token=${encodeURIComponent(token)}` : this.urls.wsUrl);
    } catch {
      this.sseSince = Date.now();
      this.scheduleProbe();
      return;
    }
    this.probe = socket;
    const timer = setTimeout(retryLater, this.options.connectTimeoutMs ?? 10_000);
    socket.onclose = retryLater;
    socket.onerror = noop;
    socket.onmessage = (event) => {
      const parsed = typeof event.data === "string" ? parseFrame(event.data) : null;
      if (parsed?.kind !== "control" || parsed.frame.type !== "welcome" || generation !== this.socketGeneration) {
        retryLater();
        return;
      }
      clearTimeout(timer);
      this.probe = null;
      this.teardown(new NotConnectedError("moved to websocket"));
      this.mode = "websocket";
      this.socketTokenExp = token ? tokenExp(token) : null;
      this.attachWebSocket(socket, ++this.socketGeneration);
      this.onWelcome(parsed.frame);
    };
  }

  // --- token refresh -------------------------------------------------------------

  /**
   * With a token function, asks it for a new token shortly before `exp` and sends that
   * over the socket (contract section 14) instead of waiting to be closed with 4001.
   * On SSE, which cannot send commands, the stream is reopened with the new token instead.
   */
  private scheduleRefresh(exp: number | null): void {
    if (this.refreshTimer !== null) clearTimeout(this.refreshTimer);
    this.refreshTimer = null;
    if (typeof this.options.token !== "function" || exp === null) return;
    const leftMs = exp * 1000 - Date.now();
    const leadMs = this.options.tokenRefreshLeadMs ?? Math.min(60_000, Math.max(1_000, leftMs / 5));
    const generation = this.socketGeneration;
    this.refreshTimer = setTimeout(() => {
      this.refreshTimer = null;
      if (generation !== this.socketGeneration) return;
      // A stream cannot send `refresh`: a new stream with a new token, from where the client is.
      if (this.inUse === "sse") this.restartStream();
      else void this.refreshToken(generation);
    }, Math.max(0, leftMs - leadMs));
  }

  private async refreshToken(generation: number): Promise<void> {
    const provider = this.options.token;
    if (typeof provider !== "function") return;
    let token: string | null | undefined;
    try {
      token = await provider();
    } catch (error) {
      // The socket keeps its token; at its exp the hub closes it and the reconnect asks again.
      this.emitter.emit("error", new HubError("token_error", "token provider failed", { cause: error }));
      return;
    }
    if (!token || generation !== this.socketGeneration || this.machine.state !== "open") return;
    this.send({ op: "refresh", token, ref: this.takeRef("refresh", { kind: "refresh" }) });
  }

  /** The hub left a room on its own (a refreshed token no longer allows it). */
  private onRoomRevoked(room: string, reason: ServerErrorCode): void {
    const entry = this.rooms.get(room);
    if (!entry) return;
    entry.status = "failed";
    entry.ref = null;
    const error = new HubError(reason, `the hub left ${room}: ${reason}`, { room });
    this.emitter.emit("error", error);
    for (const sub of entry.subs) sub.deliverError(error);
  }

  // --- liveness ----------------------------------------------------------------

  private startPing(heartbeatMs: number | undefined): void {
    const interval = this.options.pingIntervalMs ?? (heartbeatMs && heartbeatMs > 0 ? heartbeatMs : 15_000);
    const pongTimeoutMs = this.options.pongTimeoutMs ?? 10_000;
    this.pingTimer = setInterval(() => {
      if (this.pongTimer !== null) return; // still waiting for a sign of life
      this.send({ op: "ping", ref: this.takeRef("ping", { kind: "ping" }) });
      this.pongTimer = setTimeout(() => {
        this.pongTimer = null;
        this.handleDrop({ code: CloseCode.Abnormal, reason: "ping timeout" });
      }, pongTimeoutMs);
    }, interval);
  }

  /** Any frame proves the connection is alive. */
  private sawTraffic(): void {
    if (this.pongTimer !== null) {
      clearTimeout(this.pongTimer);
      this.pongTimer = null;
    }
  }

  // --- frames ------------------------------------------------------------------

  private onFrame(data: unknown): void {
    this.sawTraffic();
    if (typeof data !== "string") {
      this.emitter.emit("error", new HubError("bad_frame", "hub sent a non-text frame"));
      return;
    }
    const parsed = parseFrame(data);
    switch (parsed.kind) {
      case "control":
        this.onControl(parsed.frame);
        return;
      case "event":
        this.onRoomEvent(parsed.frame);
        return;
      case "user":
        this.emitter.emit("message", parsed.frame);
        return;
      case "invalid":
        this.emitter.emit("error", new HubError("bad_frame", parsed.reason));
        return;
    }
  }

  private onControl(frame: ControlFrame): void {
    switch (frame.type) {
      case "welcome":
        if (this.welcome === null) this.onWelcome(frame);
        return;
      case "subscribed":
        this.onSubscribed(frame);
        return;
      case "unsubscribed":
        if (frame.ref !== undefined) this.refs.delete(frame.ref);
        else if (frame.reason !== undefined) this.onRoomRevoked(frame.room, frame.reason);
        return;
      case "pong":
        if (frame.ref !== undefined) this.refs.delete(frame.ref);
        return;
      case "refreshed":
        if (frame.ref !== undefined && this.refs.get(frame.ref)?.kind === "refresh") {
          this.refs.delete(frame.ref);
          this.socketTokenExp = frame.exp;
          this.scheduleRefresh(frame.exp);
        }
        return;
      case "published": {
        const pending = frame.ref !== undefined ? this.refs.get(frame.ref) : undefined;
        if (pending?.kind !== "publish") return;
        this.refs.delete(frame.ref!);
        clearTimeout(pending.pending.timer);
        pending.pending.resolve({ room: frame.room, seq: frame.seq });
        return;
      }
      case "presence": {
        const pending = frame.ref !== undefined ? this.refs.get(frame.ref) : undefined;
        if (pending?.kind !== "presence") return;
        this.refs.delete(frame.ref!);
        clearTimeout(pending.pending.timer);
        pending.pending.resolve({ users: frame.users, anonymous: frame.anonymous });
        return;
      }
      case "presence_join":
      case "presence_leave":
        this.onPresenceChange({ room: frame.room, user: frame.user, change: frame.type === "presence_join" ? "join" : "leave" });
        return;
      case "error":
        this.onErrorFrame(frame);
        return;
    }
  }

  private onPresenceChange(change: PresenceChange): void {
    const entry = this.rooms.get(change.room);
    if (!entry) return;
    this.emitter.emit("presence", change);
    for (const sub of entry.subs) sub.deliverPresence(change);
  }

  private onSubscribed(frame: SubscribedFrame): void {
    const entry = this.rooms.get(frame.room);
    if (!entry) return; // unsubscribed meanwhile
    // No ref for a room already subscribed: the hub restarted the room on its own
    // (in a cluster, its history was lost or this node missed more than history
    // holds). Judged against where the client is now, not the original subscribe.
    const unsolicited = frame.ref === undefined && entry.status === "subscribed" && !isSystemRoom(entry.room);
    if (frame.ref !== undefined) {
      if (entry.ref !== null && frame.ref !== entry.ref) return; // answer to an older subscribe
      this.refs.delete(frame.ref);
    }
    entry.ref = null;
    entry.status = "subscribed";
    entry.retryBackoff.reset();
    if (unsolicited) {
      // A resync still reading history is superseded by this one.
      entry.resyncAbort?.abort();
      entry.resyncAbort = null;
    }
    const outcome = unsolicited ? entry.cursor.onHubResync(frame) : entry.cursor.onSubscribed(frame, entry.sent);
    const info: SubscribedInfo = {
      room: frame.room,
      epoch: frame.epoch,
      seq: frame.seq,
      recovered: frame.recovered,
      ...(typeof frame.state === "number" ? { state: frame.state } : {}),
      outcome: outcome.kind,
    };
    this.emitter.emit("subscribed", info);
    for (const sub of entry.subs) sub.deliverSubscribed(info);
    if (outcome.kind === "resync") void this.resync(entry, outcome.reason, outcome.epoch, outcome.generation);
    if (outcome.kind === "state") {
      const empty = entry.cursor.takeState();
      if (empty) this.deliverState(entry, empty);
    }
  }

  private onRoomEvent(event: RoomEvent): void {
    const entry = this.rooms.get(event.room);
    if (!entry) return;
    const result = entry.cursor.accept(event);
    if (result.kind === "state") return this.deliverState(entry, result.state);
    if (result.kind !== "deliver") return;
    const typed = result.event as AnyEventOf<S>;
    this.emitter.emit("event", typed);
    for (const sub of entry.subs) sub.deliverEvent(typed);
  }

  /** A keyed room's complete state, to the room's `onState` handlers. */
  private deliverState(entry: RoomEntry<S>, state: CompletedState): void {
    const info: StateInfo<S> = {
      room: entry.room,
      epoch: state.epoch,
      seq: state.seq,
      events: state.events as AnyEventOf<S>[],
      reason: state.reason,
    };
    this.emitter.emit("roomState", info);
    for (const sub of entry.subs) sub.deliverState(info);
  }

  private onErrorFrame(frame: ErrorFrame): void {
    const pending = frame.ref !== undefined ? this.refs.get(frame.ref) : undefined;
    if (frame.ref !== undefined) this.refs.delete(frame.ref);
    const room = pending && "room" in pending ? pending.room : undefined;
    const error = new HubError(frame.code, frame.message, { room, ref: frame.ref });
    if (pending?.kind === "publish" || pending?.kind === "presence") {
      clearTimeout(pending.pending.timer);
      pending.pending.reject(error);
      return;
    }
    if (pending?.kind === "subscribe") {
      const entry = this.rooms.get(pending.room);
      if (entry && entry.ref === frame.ref) this.onSubscribeFailed(entry, error);
      return;
    }
    this.emitter.emit("error", error);
  }

  private onSubscribeFailed(entry: RoomEntry<S>, error: HubError): void {
    entry.ref = null;
    if (TRANSIENT_CODES.has(error.code)) {
      entry.status = "pending";
      const delay = entry.retryBackoff.next();
      entry.retryTimer = setTimeout(() => {
        entry.retryTimer = null;
        if (this.machine.state === "open" && this.rooms.get(entry.room) === entry) this.sendSubscribe(entry);
      }, delay);
    } else {
      entry.status = "failed";
    }
    this.emitter.emit("error", error);
    for (const sub of entry.subs) sub.deliverError(error);
  }

  // --- resync ------------------------------------------------------------------

  /**
   * The hub could not replay what the client missed: read the room's history over
   * HTTP (all pages), merge it with what the socket sent meanwhile, and hand the
   * result to the room's `onResync` handlers.
   */
  private async resync(entry: RoomEntry<S>, reason: ResyncReason, epoch: string, generation: number): Promise<void> {
    const abort = new AbortController();
    entry.resyncAbort = abort;
    let history: RoomEvent[] | null = null;
    let historyEpoch: string | null = null;
    try {
      const read = await readRoomHistory(this.api, entry.room, {
        pageSize: this.options.historyPageSize,
        signal: abort.signal,
      });
      history = read.events;
      historyEpoch = read.epoch;
    } catch (error) {
      if (abort.signal.aborted) return;
      // The read's own `epoch_changed` is passed on; a failed request is the cause of a `resync_failed`.
      const wrapped =
        error instanceof HubError && error.code === "epoch_changed"
          ? error
          : new HubError("resync_failed", `history of ${entry.room} unavailable`, { room: entry.room, cause: error });
      this.emitter.emit("error", wrapped);
    } finally {
      if (entry.resyncAbort === abort) entry.resyncAbort = null;
    }
    if (abort.signal.aborted) return;
    const events = entry.cursor.completeResync(generation, history, historyEpoch);
    if (events === null) return;
    const info: ResyncInfo<S> = {
      room: entry.room,
      reason,
      epoch,
      events: events as AnyEventOf<S>[],
      source: history !== null && historyEpoch === epoch ? "history" : "snapshot",
    };
    this.emitter.emit("resync", info);
    for (const sub of entry.subs) sub.deliverResync(info);
  }

  // --- commands ----------------------------------------------------------------

  private sendSubscribe(entry: RoomEntry<S>): void {
    const position = isSystemRoom(entry.room) ? {} : entry.cursor.resumePosition();
    const ref = this.takeRef("sub", { kind: "subscribe", room: entry.room });
    entry.sent = position;
    entry.ref = ref;
    entry.status = "pending";
    this.send({ op: "subscribe", room: entry.room, ...position, ref });
  }

  private removeSubscription(sub: SubscriptionImpl<S>): void {
    const entry = this.rooms.get(sub.room);
    if (!entry || !entry.subs.delete(sub) || entry.subs.size > 0) return;
    this.rooms.delete(entry.room);
    if (entry.retryTimer !== null) clearTimeout(entry.retryTimer);
    entry.resyncAbort?.abort();
    entry.cursor.abandonResync();
    if (this.mode === "sse") this.roomsChanged();
    else if (this.machine.state === "open" && entry.status !== "failed") {
      this.send({ op: "unsubscribe", room: entry.room, ref: this.takeRef("unsub", { kind: "unsubscribe", room: entry.room }) });
    }
  }

  private takeRef(prefix: string, pending?: PendingRef): string {
    const ref = `${prefix}:${this.nextRef++}`;
    if (pending) this.refs.set(ref, pending);
    return ref;
  }

  private send(command: Command): void {
    try {
      this.socket?.send(JSON.stringify(command));
    } catch (error) {
      // A send on a socket that is closing throws in some implementations; the
      // close event that follows drives the reconnect.
      this.emitter.emit("error", new HubError("send_failed", `could not send ${command.op}`, { ref: command.ref, cause: error }));
    }
  }
}

function noop(): void {}

/** A `receive_only` error: what the socket can do and a stream cannot. */
function receiveOnly(what: string, room: string): HubError {
  return new HubError(
    "receive_only",
    `cannot ${what} in ${room} over SSE: the SSE transport only receives; use the HTTP API (client.api) instead`,
    { room },
  );
}

/** True when a WebSocket error event says the handshake got an HTTP answer (ws: "Unexpected server response: 403"). */
function handshakeRefusal(event: unknown): boolean {
  const message = (event as { message?: unknown } | null)?.message;
  return typeof message === "string" && /unexpected server response/i.test(message);
}

function onlineEvents(): OnlineEvents | undefined {
  const g = globalThis as Partial<OnlineEvents> & { navigator?: unknown };
  // Only browsers (which have both) fire `online`; Node's globalThis has neither.
  return typeof g.addEventListener === "function" && typeof g.removeEventListener === "function" && g.navigator
    ? (g as OnlineEvents)
    : undefined;
}

function safeClose(socket: WebSocketLike, code: number, reason: string): void {
  try {
    socket.close(code, reason);
  } catch {
    // Already closed or closing.
  }
}

/** The `exp` claim (Unix seconds) of a JWT, read without verifying it; null if unreadable. */
function tokenExp(token: string): number | null {
  const payload = token.split(".")[1];
  if (!payload) return null;
  try {
    const base64 = payload.replace(/-/g, "+").replace(/_/g, "/");
    const json = JSON.parse(atob(base64.padEnd(base64.length + ((4 - (base64.length % 4)) % 4), "="))) as { exp?: unknown };
    return typeof json.exp === "number" && Number.isFinite(json.exp) ? json.exp : null;
  } catch {
    return null;
  }
}
