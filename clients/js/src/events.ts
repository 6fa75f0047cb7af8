/** What a {@link HubClient} reports: client events and per-room handlers. */

import type { ResyncReason, StateReason } from "./cursor.js";
import type { HubError } from "./errors.js";
import type { PresenceUser, UserMessage, WelcomeFrame } from "./protocol.js";
import type { AnyEventOf, EventSchema, UntypedSchema } from "./schema.js";
import type { StateChange } from "./state.js";
import type { CloseInfo, TransportName } from "./options.js";

/** Payload of the `subscribed` event. */
export interface SubscribedInfo {
  room: string;
  epoch: string;
  /** Room head when the subscription was made. */
  seq: number;
  recovered: boolean;
  /** Keyed rooms: the number of state frames that follow (then `onState`). */
  state?: number;
  /** What the client made of it: a fresh start, a gap-free resume, a resync, or a keyed room's state. */
  outcome: "fresh" | "resumed" | "resync" | "state";
}

/**
 * A keyed room's state (contract section 11): the latest event of each live
 * key at `seq`. It replaces whatever the application held for the room; every
 * event after `seq` follows through `onEvent`.
 */
export interface StateInfo<S extends EventSchema = UntypedSchema> {
  room: string;
  epoch: string;
  /** The room's head: the state is the one at this seq. */
  seq: number;
  /** The latest event of each live key, in seq order. */
  events: AnyEventOf<S>[];
  /** `fresh` for a first subscription; else why a resume could not replay what was missed. */
  reason: StateReason;
}

/** Payload of a resync: the room's events now, replacing what the application held. */
export interface ResyncInfo<S extends EventSchema = UntypedSchema> {
  room: string;
  reason: ResyncReason;
  epoch: string;
  /** The room's retained events, oldest first, without duplicates. */
  events: AnyEventOf<S>[];
  /** `history` when HTTP history was read; `snapshot` when it failed and only the socket's snapshot is known. */
  source: "history" | "snapshot";
}

/** A user joined (first session) or left (last session) a presence room. */
export interface PresenceChange {
  room: string;
  user: string;
  change: "join" | "leave";
}

/** Who is in a presence room: users (by `sub`) with their session counts, and anonymous sessions. */
export interface PresenceInfo {
  users: PresenceUser[];
  anonymous: number;
}

/** Events emitted by `HubClient.on`. */
export interface HubClientEvents<S extends EventSchema = UntypedSchema> {
  /** The connection state changed. */
  state: StateChange;
  /** The transport in use changed (null: no session). */
  transport: { from: TransportName | null; to: TransportName | null };
  /** A session was established (the hub's `welcome`). */
  open: WelcomeFrame;
  /** The connection ended. */
  close: CloseInfo;
  /** A reconnect attempt was scheduled. */
  reconnect: { attempt: number; delayMs: number };
  /** A room subscription was confirmed. */
  subscribed: SubscribedInfo;
  /** A room event, in seq order, duplicates removed (all rooms). */
  event: AnyEventOf<S>;
  /** A room was resynced after lost events. */
  resync: ResyncInfo<S>;
  /** A keyed room's state arrived (first subscription, or a resume that could not replay). */
  roomState: StateInfo<S>;
  /** Presence rooms: a user's first session joined, or its last one left. */
  presence: PresenceChange;
  /** A message addressed to the user (`POST /api/users/{user}/events`). */
  message: UserMessage;
  /** An error frame, a failed subscription or a failed resync. */
  error: HubError;
}

/** Handlers for one subscription. */
export interface RoomHandlers<S extends EventSchema = UntypedSchema> {
  /** Every event of the room, in order. */
  onEvent?: (event: AnyEventOf<S>) => void;
  /** The room's events after lost events were recovered from history; replace your state with them. */
  onResync?: (info: ResyncInfo<S>) => void;
  /**
   * Keyed rooms: the room's state (latest event per key); replace your map with
   * it, then apply each later event (`key` sets, `delete` removes). The state's
   * frames are not passed to `onEvent`.
   */
  onState?: (info: StateInfo<S>) => void;
  /** The hub confirmed the subscription (again after each reconnect). */
  onSubscribed?: (info: SubscribedInfo) => void;
  /** Presence rooms: a user joined (its first session) or left (its last one). Not a room event. */
  onPresence?: (change: PresenceChange) => void;
  /** The subscription failed (e.g. `unknown_room`, `forbidden`). */
  onError?: (error: HubError) => void;
}

/** Options of `HubClient.subscribe`. */
export interface SubscribeOptions {
  /** Resume from a position the application kept (see `HubClient.position`). */
  since?: number;
  epoch?: string;
}

