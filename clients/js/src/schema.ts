/**
 * Typing of room events: an application describes its event types once as a
 * schema (event type -> data type) and every handler gets a precisely typed event.
 *
 * ```ts
 * interface Feeds {
 *   hotspot_detected: { id: string; score: number };
 *   alert_raised: { id: string; severity: "low" | "high"; text: string };
 * }
 * const client = new HubClient<Feeds>({ url });
 * client.subscribe("alerts").on("alert_raised", (e) => e.data.severity);
 * ```
 */

import type { RoomEvent } from "./protocol.js";

/**
 * Event type -> data type. Any object type works, interfaces included (which,
 * unlike type literals, would not satisfy `Record<string, unknown>`).
 */
export type EventSchema = object;

/** The schema used when an application declares none: any type, unknown data. */
export type UntypedSchema = Record<string, unknown>;

/** The event of one type in `S`. */
export type EventOf<S extends EventSchema, K extends keyof S> = RoomEvent<K & string, S[K]>;

/** Any event of `S`, discriminated by `type`. */
export type AnyEventOf<S extends EventSchema> = { [K in keyof S]: EventOf<S, K> }[keyof S];
