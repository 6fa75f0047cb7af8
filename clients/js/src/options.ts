/** Options and transport types of {@link HubClient}. */

import type { BackoffOptions } from "./backoff.js";
import type { FetchLike } from "./http.js";

/** The subset of the WHATWG `WebSocket` the client uses (the `ws` package fits). */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string; wasClean?: boolean }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A `WebSocket` constructor: the browser's global, or e.g. `ws`'s `WebSocket` in Node. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Supplies the token for each connection attempt (called again on every reconnect). */
export type TokenProvider = () => string | null | undefined | Promise<string | null | undefined>;

/** A way to reach the hub: a WebSocket, or a Server-Sent Events stream (receive only). */
export type TransportName = "websocket" | "sse";

/**
 * Which transport the client uses: `websocket` or `sse` only, or `auto`
 * (WebSocket, falling back to SSE where WebSocket cannot get through).
 */
export type TransportOption = "auto" | TransportName;

/** How a connection ended. */
export interface CloseInfo {
  /** WebSocket close code; 1006 when the connection was lost without a close frame. */
  code: number;
  reason: string;
  /** True when the client will try again. */
  willReconnect: boolean;
}

/** Options of `HubClient`. */
export interface HubClientOptions {
  /**
   * Hub base URL: `http(s)://host:port` or `ws(s)://host:port`, with an optional
   * path prefix. In a browser it may be omitted (same origin) or relative.
   */
  url?: string;
  /** Path of the multi-room endpoint. Default `/ws`. */
  wsPath?: string;
  /**
   * `auto` (default): WebSocket; when it cannot reach the hub's `welcome` (the
   * upgrade is refused, or two attempts in a row fail) the same session over
   * Server-Sent Events (`GET /sse`), and WebSocket again after
   * `websocketRetryMs` on SSE. `websocket` or `sse`: that transport only.
   * On SSE the client receives only: `publish` rejects (use the HTTP API).
   */
  transport?: TransportOption;
  /** `auto` on SSE: how long before WebSocket is tried again (beside the stream). Default 5 minutes. */
  websocketRetryMs?: number;
  /** Path of the SSE endpoint. Default `/sse`. */
  ssePath?: string;
  /**
   * JWT sent as `?token=`; a function is called before every connection attempt. A function
   * is also called shortly before the current token's `exp`, and its token sent over the open
   * socket (`refresh`), so the socket is not closed with 4001 at every expiry. If that
   * refresh is refused, the client reconnects with a new token when the old one expires.
   */
  token?: string | TokenProvider;
  /**
   * How long before `exp` a token from a function is refreshed. Default: a fifth of the
   * token's remaining lifetime, between 1 s and 60 s.
   */
  tokenRefreshLeadMs?: number;
  /** WebSocket implementation; defaults to `globalThis.WebSocket`. Pass `ws`'s in Node 20. */
  WebSocket?: WebSocketConstructor;
  /** fetch implementation for the HTTP history fallback and the SSE transport; defaults to `globalThis.fetch`. */
  fetch?: FetchLike;
  /** Reconnect delays. */
  backoff?: BackoffOptions;
  /** Give up (state `closed`) after this many failed attempts in a row. Default: never. */
  maxReconnectAttempts?: number;
  /**
   * Whether to reconnect after the hub closed the connection. Default: always
   * (including 4009 admin disconnect and 1001 draining).
   */
  shouldReconnect?: (close: { code: number; reason: string }) => boolean;
  /**
   * Interval of app-level pings. Default: the hub's `heartbeat_ms`, else 15 s. On SSE
   * (where the hub writes a keep-alive every heartbeat) a stream silent for this plus
   * `pongTimeoutMs` counts as dead.
   */
  pingIntervalMs?: number;
  /** With no frame at all for this long after a ping, the connection counts as dead. Default 10 s. */
  pongTimeoutMs?: number;
  /** Time allowed from opening the socket to the `welcome` frame. Default 10 s. */
  connectTimeoutMs?: number;
  /** Time allowed for a `publish` reply. Default 10 s. */
  commandTimeoutMs?: number;
  /** Page size of HTTP history requests during a resync. Default: the hub's default. */
  historyPageSize?: number;
  /** Random source for jitter, in [0, 1). For tests. */
  random?: () => number;
}

