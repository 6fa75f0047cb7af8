/** Errors the client reports: one class, whether the hub or the client found the failure. */

import type { Ref, ServerErrorCode } from "./protocol.js";

/** Codes of failures the client finds itself; the hub never sends them. */
export type ClientErrorCode =
  | "not_connected"
  | "timeout"
  | "connect_failed"
  | "token_error"
  | "no_websocket"
  | "no_fetch"
  | "protocol_mismatch"
  | "bad_frame"
  | "send_failed"
  | "receive_only"
  | "epoch_changed"
  | "resync_failed"
  | "presence_failed"
  // An HTTP error answer without the hub's `{"error":CODE}` body (a proxy's page, no body).
  | "http_error"
  // A successful HTTP answer that is not JSON.
  | "bad_response";

/** Every code a {@link HubError} carries: the hub's, then the client's own. */
export type ErrorCode = ServerErrorCode | ClientErrorCode;

/** What a {@link HubError} may say besides its code and message. */
export interface HubErrorDetails {
  /** The room the error concerns. */
  room?: string;
  /** The `ref` of the command that failed. */
  ref?: Ref;
  /** The HTTP status, for an answer of the hub's HTTP API (or of a proxy before it). */
  status?: number;
  cause?: unknown;
}

/** A failure reported by the hub (an `error` frame, an HTTP error answer) or found by the client. */
export class HubError extends Error {
  readonly room?: string;
  readonly ref?: Ref;
  readonly status?: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    details: HubErrorDetails = {},
  ) {
    // Error reads only `cause` from `details`, and sets it only when `details` has one.
    super(message, details);
    this.name = "HubError";
    this.room = details.room;
    this.ref = details.ref;
    this.status = details.status;
  }
}

/** A command needed an open connection and there was none (or it dropped before the reply). */
export class NotConnectedError extends HubError {
  constructor(message = "not connected to the hub") {
    super("not_connected", message);
    this.name = "NotConnectedError";
  }
}

/** A command got no reply in time. */
export class TimeoutError extends HubError {
  constructor(message: string) {
    super("timeout", message);
    this.name = "TimeoutError";
  }
}
