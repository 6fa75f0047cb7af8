/** Errors the client reports. */

/** An `error` frame from the hub, or a client-side failure tied to a room or command. */
export class HubError extends Error {
  constructor(
    /** The hub's error code (`unknown_room`, `forbidden`, ...) or a client code. */
    readonly code: string,
    message: string,
    /** The room the error concerns, when known. */
    readonly room?: string,
    /** The `ref` of the command that failed, when known. */
    readonly ref?: string | number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "HubError";
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
