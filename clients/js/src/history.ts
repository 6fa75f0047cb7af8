/** Reading a room's whole retained history over HTTP, page by page. */

import { HubError } from "./errors.js";
import type { HubHttp } from "./http.js";
import type { RoomEvent } from "./protocol.js";

/** A room's history as one consistent read. */
export interface RoomHistory {
  epoch: string;
  /** Retained events, oldest first. */
  events: RoomEvent[];
}

/** Options of {@link readRoomHistory}. */
export interface ReadHistoryOptions {
  /** `limit` per request; the hub's default when omitted. */
  pageSize?: number;
  /** Stop after this many requests (a safety net against a misbehaving server). Default 50. */
  maxPages?: number;
  signal?: AbortSignal;
}

/**
 * Reads `GET /api/rooms/{room}/history` from the start, following pages until
 * the room's head, and checks that every page belongs to the same epoch.
 *
 * @throws HubError `epoch_changed` when the epoch changed between pages, or
 *   the hub's error (with its HTTP `status`) when a request failed; a fetch
 *   error when none got an answer.
 */
export async function readRoomHistory(api: HubHttp, room: string, options: ReadHistoryOptions = {}): Promise<RoomHistory> {
  const maxPages = options.maxPages ?? 50;
  const events: RoomEvent[] = [];
  let epoch: string | null = null;
  let since = 0;
  for (let page = 0; page < maxPages; page += 1) {
    const response = await api.history(room, { since, limit: options.pageSize, signal: options.signal });
    if (epoch !== null && response.epoch !== epoch) {
      throw new HubError("epoch_changed", `epoch of ${room} changed while reading its history`, { room });
    }
    epoch = response.epoch;
    events.push(...response.events);
    const last = response.events[response.events.length - 1]?.seq;
    if (last === undefined || last >= response.seq) break;
    since = last;
  }
  return { epoch: epoch ?? "", events };
}
