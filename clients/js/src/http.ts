/**
 * The parts of the hub's HTTP API a client uses: history (the resync fallback),
 * status and room listings, and publishing.
 *
 * Publishing over HTTP is a server-side operation: the hub accepts it with an API
 * key or, when no keys are configured, from loopback only. Browsers in real
 * deployments publish through their own backend.
 */

import { HubError } from "./errors.js";
import type {
  HistoryResponse,
  Json,
  PresenceResponse,
  PublishResult,
  RoomInfo,
  ServerErrorCode,
  SocketStatus,
  StateResponse,
} from "./protocol.js";

/** A `fetch` implementation (the global one by default). */
export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** Options of {@link HubHttp}. */
export interface HubHttpOptions {
  /** Base URL of the hub's HTTP API, e.g. `http://localhost:8080`. */
  baseUrl: string;
  /** Bearer key for write/admin endpoints (`auth.api_keys`). */
  apiKey?: string;
  /** Custom fetch; defaults to `globalThis.fetch`. */
  fetch?: FetchLike;
}

/**
 * The error of an answer that is not ok, from its `{"error":CODE,"message":TEXT}`
 * body (`body` parsed, undefined when it was not JSON); `http_error` when the
 * body is not the hub's.
 */
export function answerError(status: number, body: unknown, request: string): HubError {
  const { error, message } = (body ?? {}) as { error?: unknown; message?: unknown };
  return new HubError(
    typeof error === "string" ? (error as ServerErrorCode) : "http_error",
    typeof message === "string" ? message : `${request} answered ${status}`,
    { status },
  );
}

/** Query of {@link HubHttp.history}. */
export interface HistoryQuery {
  /** Only events with a seq above this. */
  since?: number;
  /** At most this many events. */
  limit?: number;
  signal?: AbortSignal;
}

/** Options of {@link HubHttp.publish}. */
export interface PublishOptions {
  /**
   * Sent as `Idempotency-Key` (1–128 visible ASCII characters): retrying with the
   * same key after a lost answer gets the first publish's seq (`duplicate: true`)
   * instead of a second event, on any node of a cluster.
   */
  idempotencyKey?: string;
  /** Keyed rooms (contract section 11): the state key this event sets (1-256 bytes). */
  key?: string;
  /** Keyed rooms: remove `key` from the room's state (`data` may then be `undefined`). */
  delete?: boolean;
  signal?: AbortSignal;
}

/** Thin typed wrapper over the hub's HTTP API. */
export class HubHttp {
  private readonly baseUrl: string;
  private readonly fetchImpl: FetchLike;

  constructor(private readonly options: HubHttpOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, "");
    const fetchImpl = options.fetch ?? (globalThis.fetch as FetchLike | undefined)?.bind(globalThis);
    if (!fetchImpl) throw new TypeError("no fetch implementation available; pass `fetch`");
    this.fetchImpl = fetchImpl;
  }

  /** `GET /api/rooms/{room}/history`: the room's retained events, oldest first. */
  history(room: string, query: HistoryQuery = {}): Promise<HistoryResponse> {
    const params = new URLSearchParams();
    if (query.since !== undefined) params.set("since", String(query.since));
    if (query.limit !== undefined) params.set("limit", String(query.limit));
    const encoded = params.toString();
    const qs = encoded.length > 0 ? `?${encoded}` : "";
    return this.request<HistoryResponse>("GET", `/api/rooms/${encodeURIComponent(room)}/history${qs}`, {
      signal: query.signal,
    });
  }

  /**
   * `GET /api/rooms/{room}/state`: a keyed room's state, the latest event of each
   * live key in seq order, consistent at `seq` (400 `bad_request` for a room that
   * is not keyed).
   */
  state(room: string, signal?: AbortSignal): Promise<StateResponse> {
    return this.request<StateResponse>("GET", `/api/rooms/${encodeURIComponent(room)}/state`, { signal });
  }

  /**
   * `POST /api/rooms/{room}/events`: publishes one event (needs write access);
   * `key`/`delete` address a keyed room's state (409 `limit_exceeded` for a new
   * key past its `max_keys`).
   */
  publish(room: string, type: string, data: Json | unknown, options: PublishOptions = {}): Promise<PublishResult> {
    const keyed = options.key === undefined ? {} : { key: options.key, ...(options.delete ? { delete: true } : {}) };
    return this.request<PublishResult>("POST", `/api/rooms/${encodeURIComponent(room)}/events`, {
      body: { type, data, ...keyed },
      auth: true,
      signal: options.signal,
      idempotencyKey: options.idempotencyKey,
    });
  }

  /**
   * `GET /api/rooms/{room}/presence` (admin, like the socket list): who is
   * subscribed to a presence room. Needs an API key, or (with no keys
   * configured) a loopback caller; 400 for a room without presence.
   */
  presence(room: string, signal?: AbortSignal): Promise<PresenceResponse> {
    return this.request<PresenceResponse>("GET", `/api/rooms/${encodeURIComponent(room)}/presence`, { auth: true, signal });
  }

  /** `GET /socket-status`. Dashboards should prefer the `$status` room instead of polling this. */
  socketStatus(signal?: AbortSignal): Promise<SocketStatus> {
    return this.request<SocketStatus>("GET", "/socket-status", { signal });
  }

  /** `GET /api/rooms`. */
  rooms(signal?: AbortSignal): Promise<RoomInfo[]> {
    return this.request<RoomInfo[]>("GET", "/api/rooms", { signal });
  }

  private async request<T>(
    method: "GET" | "POST",
    path: string,
    init: {
      body?: unknown;
      auth?: boolean;
      signal?: AbortSignal | undefined;
      idempotencyKey?: string | undefined;
    },
  ): Promise<T> {
    const headers: Record<string, string> = { accept: "application/json" };
    if (init.body !== undefined) headers["content-type"] = "application/json";
    if (init.auth && this.options.apiKey) headers.authorization = `Bearer ${this.options.apiKey}`;
    if (init.idempotencyKey !== undefined) headers["idempotency-key"] = init.idempotencyKey;
    const response = await this.fetchImpl(`${this.baseUrl}${path}`, {
      method,
      headers,
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      signal: init.signal,
    });
    const text = await response.text();
    let body: unknown;
    try {
      body = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      body = undefined;
    }
    if (!response.ok) throw answerError(response.status, body, `${method} ${path}`);
    if (body === undefined) {
      throw new HubError("bad_response", `${method} ${path} did not answer JSON`, { status: response.status });
    }
    return body as T;
  }
}
