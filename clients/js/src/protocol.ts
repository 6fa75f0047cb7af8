/**
 * Wire types of the realtime-hub protocol (v1): the frames the server sends,
 * the commands a client sends, and the HTTP bodies the client reads.
 *
 * These mirror the contract one to one; nothing here has behaviour apart from
 * the small validation helpers at the end.
 */

/** Protocol version this client speaks (`welcome.protocol`). */
export const PROTOCOL_VERSION = 1;

/** A command reference, echoed by the server in the reply to that command. */
export type Ref = string | number;

/** Any JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** First frame of every session. */
export interface WelcomeFrame {
  type: "welcome";
  session: string;
  node: string;
  protocol: number;
  /** Server ping interval in milliseconds. */
  heartbeat_ms: number;
}

/** Reply to `subscribe`; replayed events follow it, then live events. */
export interface SubscribedFrame {
  type: "subscribed";
  room: string;
  /** Identity of the room's history; changes when history is lost (e.g. restart). */
  epoch: string;
  /** Head of the room at subscription time (0 for an empty room). */
  seq: number;
  /** True when the requested `since` was honoured and every missed event follows. */
  recovered: boolean;
  /**
   * Keyed rooms (contract section 11): the room's state follows instead of a
   * snapshot — this many frames, the latest event of each live key, in seq order.
   */
  state?: number;
  /**
   * The subscribe command's ref. Absent when the hub restarted an already
   * subscribed room on its own (cluster: history lost, or the node missed more
   * than history holds); the client then resyncs.
   */
  ref?: Ref;
}

export interface UnsubscribedFrame {
  type: "unsubscribed";
  room: string;
  /** Set when the hub left the room on its own: `forbidden` after a refreshed token no longer allows it. */
  reason?: ServerErrorCode;
  ref?: Ref;
}

/** Answer to `refresh` (contract section 14): the new token's claims apply, the socket ends at `exp`. */
export interface RefreshedFrame {
  type: "refreshed";
  /** Unix seconds. */
  exp: number;
  ref?: Ref;
}

/** One user in a presence room: the token's `sub` and how many of its sessions are subscribed. */
export interface PresenceUser {
  user: string;
  sessions: number;
}

/**
 * Answer to `presence` (contract section 13, a presence room): every user with
 * its session count (sorted by user), and the sessions without a token.
 */
export interface PresenceFrame {
  type: "presence";
  room: string;
  users: PresenceUser[];
  anonymous: number;
  ref?: Ref;
}

/** A user's first session subscribed to a presence room (not per session, never for anonymous ones). */
export interface PresenceJoinFrame {
  type: "presence_join";
  room: string;
  user: string;
}

/** A user's last session left a presence room. */
export interface PresenceLeaveFrame {
  type: "presence_leave";
  room: string;
  user: string;
}

/** Body of `GET /api/rooms/{room}/presence` (admin): the `presence` answer's lists. */
export interface PresenceResponse {
  room: string;
  users: PresenceUser[];
  anonymous: number;
}

export interface PublishedFrame {
  type: "published";
  room: string;
  seq: number;
  ref?: Ref;
}

export interface PongFrame {
  type: "pong";
  ref?: Ref;
}

/**
 * Codes of the hub's `error` frames and HTTP error bodies (`ErrorCode` in the
 * hub's src/protocol.rs); some only ever come over HTTP (`unknown_session`,
 * `forbidden_origin`, `over_capacity`, `not_found`, `method_not_allowed`, `unsupported_media_type`,
 * `request_timeout`). Frames and bodies are not validated: a code a newer hub
 * adds arrives as it is.
 */
export type ServerErrorCode =
  | "bad_request"
  | "unknown_room"
  | "unknown_session"
  | "forbidden"
  | "forbidden_origin"
  | "unauthorized"
  | "rate_limited"
  | "too_large"
  | "publish_disabled"
  | "unavailable"
  | "over_capacity"
  | "limit_exceeded"
  | "not_found"
  | "method_not_allowed"
  | "unsupported_media_type"
  | "request_timeout"
  | "internal";

/** An error reply. It never closes the connection by itself. */
export interface ErrorFrame {
  type: "error";
  code: ServerErrorCode;
  message: string;
  ref?: Ref;
}

/**
 * An event published into a room. `seq` grows by exactly one per event within an
 * `epoch`; system rooms such as `$status` send events without a `seq`.
 */
export interface RoomEvent<TType extends string = string, TData = unknown> {
  type: TType;
  room: string;
  seq?: number;
  /** RFC 3339 UTC timestamp with milliseconds. */
  ts?: string;
  /** Keyed rooms (contract section 11): the state key this event sets, or removes with `delete`. */
  key?: string;
  /** Keyed rooms: the event removed `key` from the room's state. */
  delete?: boolean;
  data: TData;
}

/** A message addressed to a user rather than a room (no room, no seq). */
export interface UserMessage<TType extends string = string, TData = unknown> {
  type: TType;
  user: string;
  ts?: string;
  data: TData;
}

/** The type of the `$status` room's events. */
export const STATUS_UPDATE = "status_update";

/**
 * The hub's own frame types, which a publisher may not use (`RESERVED_TYPES`
 * in the hub's src/protocol.rs). The one list of them: the client's control
 * types are derived from it.
 */
export const RESERVED_TYPES = [
  "welcome",
  "subscribed",
  "unsubscribed",
  "published",
  "pong",
  "error",
  STATUS_UPDATE,
  // v2 (contract sections 13 and 14)
  "presence",
  "presence_join",
  "presence_leave",
  "refreshed",
] as const;

/** Control frames (everything that is not an event or a user message). */
export type ControlFrame =
  | WelcomeFrame
  | SubscribedFrame
  | UnsubscribedFrame
  | PublishedFrame
  | PongFrame
  | RefreshedFrame
  | PresenceFrame
  | PresenceJoinFrame
  | PresenceLeaveFrame
  | ErrorFrame;

/** Client to server commands. */
export type Command =
  | { op: "subscribe"; room: string; since?: number; epoch?: string; ref?: Ref }
  | { op: "unsubscribe"; room: string; ref?: Ref }
  | { op: "publish"; room: string; type: string; data?: unknown; key?: string; delete?: boolean; ref?: Ref }
  | { op: "ping"; ref?: Ref }
  | { op: "refresh"; token: string; ref?: Ref }
  | { op: "presence"; room: string; ref?: Ref };

/** Body of `GET /socket-status`, also the `data` of `$status` `status_update` events. */
export interface SocketStatus {
  /** False while the hub drains. */
  active: boolean;
  total_sockets: number;
  sockets_by_type: Record<string, number>;
  /** Subscriber count per room. */
  rooms: Record<string, number>;
  timestamp: string;
  ws_endpoints: Record<string, string>;
  node: string;
  uptime_s: number;
  /** Present in a cluster: each node's own counts. */
  nodes?: Record<string, Partial<SocketStatus>>;
}

/** Body of `GET /api/rooms/{room}/history`. */
export interface HistoryResponse {
  room: string;
  epoch: string;
  seq: number;
  events: RoomEvent[];
}

/**
 * Body of `GET /api/rooms/{room}/state` (keyed rooms): the latest event of each
 * live key, in seq order, consistent at `seq`.
 */
export type StateResponse = HistoryResponse;

/** Body of a successful `POST /api/rooms/{room}/events`. */
export interface PublishResult {
  room: string;
  epoch: string;
  seq: number;
  delivered: number;
  /** True when a publish with the same idempotency key had landed before: this is its seq. */
  duplicate?: boolean;
}

/** One row of `GET /api/rooms`. */
export interface RoomInfo {
  room: string;
  subscribers: number;
  epoch: string;
  seq: number;
  history: number;
}

/**
 * Close codes (contract section 8), named as the hub names them (`CloseCode` in
 * the hub's src/protocol.rs), so a code means one thing on both sides.
 */
export const CloseCode = {
  Normal: 1000,
  /** The hub is draining: reconnect, to another node where there is one. */
  Draining: 1001,
  ProtocolError: 1002,
  /** A text frame that is not valid UTF-8. */
  InvalidPayload: 1007,
  /** Repeated rate-limit abuse. */
  Policy: 1008,
  TooBig: 1009,
  Internal: 1011,
  TokenExpired: 4001,
  SlowConsumer: 4008,
  AdminDisconnect: 4009,
  /**
   * Never sent by the hub: what the WebSocket API reports for a connection lost
   * without a close frame, and what the client reports for a drop it detects
   * itself (ping timeout, silent stream, failed attempt).
   */
  Abnormal: 1006,
} as const;

/** The system room that carries `status_update` events. */
export const STATUS_ROOM = "$status";

const ROOM_NAME = /^[a-z0-9][a-z0-9_.:-]{0,63}$/;
const SYSTEM_ROOM = /^\$[a-z0-9][a-z0-9_.:-]{0,63}$/;

/** True for a valid user room name (`^[a-z0-9][a-z0-9_.:-]{0,63}$`). */
export function isValidRoomName(room: string): boolean {
  return ROOM_NAME.test(room);
}

/** True for a system room name such as `$status`. */
export function isSystemRoom(room: string): boolean {
  return SYSTEM_ROOM.test(room);
}

/**
 * Frames that are not room events even though some carry a `room`: every
 * reserved type except `status_update`, which is the `$status` room's event.
 * Presence frames have a room but no seq and are not in history: delivered as
 * room events they would reach `onEvent` and break the room's order.
 *
 * The type guard makes the compiler check that every {@link ControlFrame} is
 * of a reserved type.
 */
const CONTROL_TYPES: ReadonlySet<string> = new Set(
  RESERVED_TYPES.filter((type): type is ControlFrame["type"] => type !== STATUS_UPDATE),
);

/** Parsed server frame, tagged by what the client has to do with it. */
export type IncomingFrame =
  | { kind: "control"; frame: ControlFrame }
  | { kind: "event"; frame: RoomEvent }
  | { kind: "user"; frame: UserMessage }
  | { kind: "invalid"; reason: string };

/**
 * Parses one text frame from the server. Never throws: a frame that is not valid
 * JSON or has no `type` comes back as `{kind: "invalid"}`.
 */
export function parseFrame(text: string): IncomingFrame {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { kind: "invalid", reason: "frame is not valid JSON" };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { kind: "invalid", reason: "frame is not a JSON object" };
  }
  const obj = value as Record<string, unknown>;
  if (typeof obj.type !== "string") {
    return { kind: "invalid", reason: "frame has no string `type`" };
  }
  if (CONTROL_TYPES.has(obj.type)) {
    return { kind: "control", frame: obj as unknown as ControlFrame };
  }
  if (typeof obj.room === "string") {
    if (obj.seq !== undefined && typeof obj.seq !== "number") {
      return { kind: "invalid", reason: "event `seq` is not a number" };
    }
    return { kind: "event", frame: obj as unknown as RoomEvent };
  }
  if (typeof obj.user === "string") {
    return { kind: "user", frame: obj as unknown as UserMessage };
  }
  return { kind: "invalid", reason: `frame of type ${obj.type} has neither room nor user` };
}
