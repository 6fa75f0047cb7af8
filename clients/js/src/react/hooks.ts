import { useEffect, useReducer, useRef, useSyncExternalStore } from "react";
import type { PresenceChange, PresenceInfo, ResyncInfo, StateInfo, SubscribedInfo } from "../events.js";
import type { ResyncReason } from "../cursor.js";
import { HubError } from "../errors.js";
import type { TransportName } from "../options.js";
import { STATUS_ROOM, STATUS_UPDATE, type PresenceUser, type SocketStatus } from "../protocol.js";
import type { AnyEventOf, EventOf, EventSchema, UntypedSchema } from "../schema.js";
import type { ConnectionState } from "../state.js";
import { useHubClient } from "./context.js";

/** The connection state of the provider's client; re-renders on every change. */
export function useConnectionState(): ConnectionState {
  const client = useHubClient();
  return useSyncExternalStore(
    (onChange) => client.on("state", onChange),
    () => client.state,
    () => client.state,
  );
}

/** The transport of the provider's client's session (`websocket`, `sse`), null without one. */
export function useTransport(): TransportName | null {
  const client = useHubClient();
  return useSyncExternalStore(
    (onChange) => client.on("transport", onChange),
    () => client.transport,
    () => client.transport,
  );
}

/** Options of {@link useRoom}. */
export interface UseRoomOptions {
  /** Keep at most this many of the latest events. Default 50. */
  limit?: number;
}

/** What {@link useRoom} returns. */
export interface RoomState<S extends EventSchema = UntypedSchema> {
  /** The latest events, oldest first, at most `limit` of them. */
  events: readonly AnyEventOf<S>[];
  /** The newest event, if any. */
  latest: AnyEventOf<S> | undefined;
  /** The last subscription confirmation (again after each reconnect), or null before the first. */
  subscription: SubscribedInfo | null;
  /** The last resync, or null if none happened. `events` were replaced by it. */
  lastResync: { reason: ResyncReason; epoch: string; source: "history" | "snapshot"; count: number } | null;
  /** The last subscription error (e.g. `unknown_room`), cleared by the next confirmation. */
  error: HubError | null;
}

type RoomAction<S extends EventSchema> =
  | { kind: "reset" }
  | { kind: "event"; event: AnyEventOf<S> }
  | { kind: "resync"; info: ResyncInfo<S> }
  | { kind: "subscribed"; info: SubscribedInfo }
  | { kind: "error"; error: HubError };

function emptyRoom<S extends EventSchema>(): RoomState<S> {
  return { events: [], latest: undefined, subscription: null, lastResync: null, error: null };
}

function roomReducer<S extends EventSchema>(limit: number) {
  return (state: RoomState<S>, action: RoomAction<S>): RoomState<S> => {
    switch (action.kind) {
      case "reset":
        return emptyRoom<S>();
      case "event": {
        const events = [...state.events, action.event];
        if (events.length > limit) events.splice(0, events.length - limit);
        return { ...state, events, latest: action.event };
      }
      case "resync": {
        const events = action.info.events.slice(-limit);
        return {
          ...state,
          events,
          latest: events[events.length - 1],
          lastResync: {
            reason: action.info.reason,
            epoch: action.info.epoch,
            source: action.info.source,
            count: action.info.events.length,
          },
        };
      }
      case "subscribed":
        return { ...state, subscription: action.info, error: null };
      case "error":
        return { ...state, error: action.error };
    }
  };
}

/**
 * Subscribes to `room` while the component is mounted and returns its latest
 * events (bounded by `limit`), in order, gap-free across reconnects. After a
 * resync (hub restarted, history lost) `events` is replaced by the room's history.
 */
export function useRoom<S extends EventSchema = UntypedSchema>(room: string, options: UseRoomOptions = {}): RoomState<S> {
  const client = useHubClient<S>();
  const limit = Math.max(1, options.limit ?? 50);
  const [state, dispatch] = useReducer(roomReducer<S>(limit), undefined, emptyRoom<S>);
  useEffect(() => {
    dispatch({ kind: "reset" });
    const sub = client.subscribe(room, {
      onEvent: (event) => dispatch({ kind: "event", event }),
      onResync: (info) => dispatch({ kind: "resync", info }),
      onSubscribed: (info) => dispatch({ kind: "subscribed", info }),
      onError: (error) => dispatch({ kind: "error", error }),
    });
    return () => sub.unsubscribe();
  }, [client, room]);
  return state;
}

/** Where a {@link useRoomState} view stands. */
export type KeyedRoomStatus =
  /** No state received yet. */
  | "loading"
  /** The state and every event after it: current while the connection is open. */
  | "live"
  /** The connection is not open: `entries` are what was known when it dropped. */
  | "stale"
  /** The subscription failed (see `error`). */
  | "error";

/** What {@link useRoomState} returns. */
export interface KeyedRoomState<S extends EventSchema = UntypedSchema> {
  /** Each live key's latest event, in seq order. */
  entries: ReadonlyMap<string, AnyEventOf<S>>;
  /** The seq the entries are the room's state at (0 before the first state). */
  seq: number;
  status: KeyedRoomStatus;
  /** The last subscription error, cleared by the next state. */
  error: HubError | null;
}

type KeyedAction<S extends EventSchema> =
  | { kind: "reset" }
  | { kind: "disconnected" }
  | { kind: "state"; info: StateInfo<S> }
  | { kind: "event"; event: AnyEventOf<S> }
  | { kind: "subscribed"; info: SubscribedInfo }
  | { kind: "error"; error: HubError };

interface KeyedView<S extends EventSchema> {
  entries: ReadonlyMap<string, AnyEventOf<S>>;
  seq: number;
  /** A state arrived at least once. */
  loaded: boolean;
  /**
   * False while the connection is down, and from a subscription that announced a state
   * until that state arrived: the entries may be behind the hub.
   */
  current: boolean;
  error: HubError | null;
}

function emptyKeyed<S extends EventSchema>(): KeyedView<S> {
  return { entries: new Map(), seq: 0, loaded: false, current: false, error: null };
}

/** The key an event sets or deletes, if it has one. */
function keyOf(event: { key?: unknown }): string | undefined {
  return typeof event.key === "string" ? event.key : undefined;
}

function keyedReducer<S extends EventSchema>(view: KeyedView<S>, action: KeyedAction<S>): KeyedView<S> {
  switch (action.kind) {
    case "reset":
      return emptyKeyed<S>();
    case "disconnected":
      return view.current ? { ...view, current: false } : view;
    case "state": {
      const entries = new Map<string, AnyEventOf<S>>();
      for (const event of action.info.events) {
        const key = keyOf(event);
        if (key !== undefined && event.delete !== true) entries.set(key, event);
      }
      return { entries, seq: action.info.seq, loaded: true, current: true, error: null };
    }
    case "event": {
      const seq = typeof action.event.seq === "number" ? action.event.seq : view.seq;
      const key = keyOf(action.event);
      if (key === undefined) return { ...view, seq };
      const entries = new Map(view.entries);
      // Map order is insertion order: a key's update moves it to the end, as in seq order.
      entries.delete(key);
      if (action.event.delete !== true) entries.set(key, action.event);
      return { ...view, entries, seq };
    }
    case "subscribed":
      return { ...view, current: action.info.outcome !== "state" };
    case "error":
      return { ...view, error: action.error };
  }
}

/**
 * A keyed room's live state (contract section 11) while the component is
 * mounted: each live key's latest event, replaced by the state the hub sends on
 * (re)subscribe and kept by every event after it — a `key` sets, `delete`
 * removes. Stays consistent across reconnects and hub restarts without any
 * HTTP call.
 */
export function useRoomState<S extends EventSchema = UntypedSchema>(room: string): KeyedRoomState<S> {
  const client = useHubClient<S>();
  const [view, dispatch] = useReducer(keyedReducer<S>, undefined, emptyKeyed<S>);
  useEffect(() => {
    dispatch({ kind: "reset" });
    const sub = client.subscribe(room, {
      onState: (info) => dispatch({ kind: "state", info }),
      onEvent: (event) => dispatch({ kind: "event", event }),
      onSubscribed: (info) => dispatch({ kind: "subscribed", info }),
      onError: (error) => dispatch({ kind: "error", error }),
    });
    return () => sub.unsubscribe();
  }, [client, room]);
  const connection = useConnectionState();
  // Until the hub answers the resubscribe, what the map holds is from before the cut.
  useEffect(() => {
    if (connection !== "open") dispatch({ kind: "disconnected" });
  }, [connection]);
  const status: KeyedRoomStatus =
    view.error !== null
      ? "error"
      : !view.loaded
        ? "loading"
        : connection === "open" && view.current
          ? "live"
          : "stale";
  return { entries: view.entries, seq: view.seq, status, error: view.error };
}

/**
 * Calls `handler` for every event of `type` in `room` while mounted. The handler
 * may change between renders without resubscribing. Events replaced by a resync
 * are not replayed to it (use {@link useRoom} for state).
 */
export function useHubEvent<S extends EventSchema = UntypedSchema, K extends keyof S & string = keyof S & string>(
  room: string,
  type: K,
  handler: (event: EventOf<S, K>) => void,
): void {
  const client = useHubClient<S>();
  const latest = useRef(handler);
  useEffect(() => {
    latest.current = handler;
  });
  useEffect(() => {
    const sub = client.subscribe(room);
    sub.on(type, (event) => latest.current(event));
    return () => sub.unsubscribe();
  }, [client, room, type]);
}

/** What {@link useSocketStatus} returns. */
export interface SocketStatusState {
  /** The hub's last reported status, or null before the first report. */
  status: SocketStatus | null;
  /** False while the connection is not open: `status` may be out of date. */
  live: boolean;
}

/**
 * The hub's socket status, pushed through the `$status` room: one report right
 * after subscribing, then one whenever a count changes. It never polls
 * `/socket-status`.
 */
export function useSocketStatus(): SocketStatusState {
  const client = useHubClient();
  // `current` is false from a (re)subscription until the hub's first report on it.
  const [{ status, current }, dispatch] = useReducer(
    (prev: { status: SocketStatus | null; current: boolean }, next: SocketStatus | null) =>
      next === null ? { status: prev.status, current: false } : { status: next, current: true },
    { status: null, current: false },
  );
  useEffect(() => {
    const sub = client.subscribe(STATUS_ROOM, {
      onSubscribed: () => dispatch(null),
      onEvent: (event) => {
        if (event.type === STATUS_UPDATE) dispatch(event.data as SocketStatus);
      },
    });
    return () => sub.unsubscribe();
  }, [client]);
  const state = useConnectionState();
  return { status, live: state === "open" && current };
}

/** What {@link usePresence} returns. */
export interface PresenceState {
  /** Users subscribed to the room, sorted by user, each with its session count. */
  users: readonly PresenceUser[];
  /** Subscribed sessions without a token. */
  anonymous: number;
  /** An answer arrived for the current subscription (false again after each resubscribe until the next one). */
  loaded: boolean;
  /** Why the last ask failed (e.g. `bad_request`: not a presence room; `receive_only` on SSE), cleared by the next answer. */
  error: HubError | null;
}

interface PresenceView {
  users: readonly PresenceUser[];
  anonymous: number;
  loaded: boolean;
  error: HubError | null;
  /** Joins and leaves since the outstanding ask, replayed on its answer; null when none is outstanding. */
  since: PresenceChange[] | null;
}

type PresenceAction =
  | { kind: "reset" }
  | { kind: "asking" }
  | { kind: "answer"; info: PresenceInfo }
  | { kind: "change"; change: PresenceChange }
  | { kind: "error"; error: HubError };

function emptyPresence(): PresenceView {
  return { users: [], anonymous: 0, loaded: false, error: null, since: null };
}

/**
 * A join adds a user with one session (a join is its first one), a leave
 * removes it. Both are idempotent and a user's last change is its truth, so
 * replaying the changes seen since an ask on top of its answer is right
 * whichever of them the answer already counted.
 */
function applyPresence(users: readonly PresenceUser[], change: PresenceChange): readonly PresenceUser[] {
  const present = users.some((u) => u.user === change.user);
  if (change.change === "leave") return present ? users.filter((u) => u.user !== change.user) : users;
  if (present) return users;
  return [...users, { user: change.user, sessions: 1 }].sort((a, b) => (a.user < b.user ? -1 : a.user > b.user ? 1 : 0));
}

function presenceReducer(view: PresenceView, action: PresenceAction): PresenceView {
  switch (action.kind) {
    case "reset":
      return emptyPresence();
    case "asking":
      return { ...view, loaded: false, since: [] };
    case "answer": {
      let users: readonly PresenceUser[] = [...action.info.users];
      for (const change of view.since ?? []) users = applyPresence(users, change);
      return { users, anonymous: action.info.anonymous, loaded: true, error: null, since: null };
    }
    case "change":
      return {
        ...view,
        users: applyPresence(view.users, action.change),
        since: view.since === null ? null : [...view.since, action.change],
      };
    case "error":
      return { ...view, error: action.error, since: null };
  }
}

/**
 * Who is in a presence room (contract section 13) while the component is
 * mounted: subscribes to `room`, asks the hub once per (re)subscription
 * (`client.presence`), then keeps the list from `presence_join` /
 * `presence_leave`. Joins and leaves carry only the user: a joining user counts
 * one session, and other users' session counts are those of the last answer.
 * On SSE the ask goes to `GET /api/rooms/{room}/presence`, which only an admin
 * caller may read; elsewhere `error` says so (`receive_only`) and the list is
 * built from joins and leaves alone.
 */
export function usePresence(room: string): PresenceState {
  const client = useHubClient();
  const [view, dispatch] = useReducer(presenceReducer, undefined, emptyPresence);
  useEffect(() => {
    dispatch({ kind: "reset" });
    let active = true;
    let asked = 0;
    const ask = () => {
      const mine = ++asked;
      dispatch({ kind: "asking" });
      client.presence(room).then(
        (info) => {
          if (active && mine === asked) dispatch({ kind: "answer", info });
        },
        (error: unknown) => {
          if (active && mine === asked && error instanceof Error) {
            dispatch({ kind: "error", error: toHubError(error, room) });
          }
        },
      );
    };
    const sub = client.subscribe(room, {
      onSubscribed: ask,
      onPresence: (change) => dispatch({ kind: "change", change }),
      onError: (error) => dispatch({ kind: "error", error }),
    });
    return () => {
      active = false;
      sub.unsubscribe();
    };
  }, [client, room]);
  return { users: view.users, anonymous: view.anonymous, loaded: view.loaded, error: view.error };
}

function toHubError(error: Error, room: string): HubError {
  return error instanceof HubError ? error : new HubError("presence_failed", error.message, { room, cause: error });
}
