/** A bare WebSocket to the hub (with `ws`), for tests that need a plain subscriber rather than the client. */

import WebSocket from "ws";
import { Recorder } from "./wait.js";

/** One received JSON frame. */
export type Frame = Record<string, unknown>;

/** A socket that records every JSON frame it receives and how it closed. */
export class RawSocket {
  readonly frames = new Recorder<Frame>();
  /** Resolves with the close code and reason once the socket is closed. */
  readonly closed: Promise<{ code: number; reason: string }>;

  private constructor(private readonly ws: WebSocket) {
    ws.on("message", (data) => {
      try {
        this.frames.push(JSON.parse(String(data)) as Frame);
      } catch {
        // not JSON: not a hub frame
      }
    });
    this.closed = new Promise((resolve) => {
      ws.once("close", (code, reason) => resolve({ code, reason: reason.toString() }));
    });
  }

  /** Opens `url` (e.g. `ws://127.0.0.1:PORT/ws/alerts`); rejects if it does not open within `timeoutMs`. */
  static async open(url: string, timeoutMs = 5_000): Promise<RawSocket> {
    const ws = new WebSocket(url);
    const socket = new RawSocket(ws);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${url} did not open within ${timeoutMs} ms`)), timeoutMs);
      ws.once("open", () => {
        clearTimeout(timer);
        resolve();
      });
      ws.once("error", (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
    return socket;
  }

  /** The first recorded (or future) frame of `type`. */
  frame(type: string, timeoutMs = 5_000): Promise<Frame> {
    return this.frames.first(`a ${type} frame`, (f) => f.type === type, timeoutMs);
  }

  close(): void {
    this.ws.close();
  }
}
