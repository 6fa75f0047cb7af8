/** A fake hub behind `fetch` for the SSE transport: the test writes each stream's text. */

import { Recorder } from "./wait.js";

/** A fake hub behind `fetch`: each GET /sse gets a stream the test writes to. */
export class FakeSse {
  readonly requests = new Recorder<{ url: URL; write: (text: string) => void; end: () => void }>();
  refuse: { status: number; body: unknown } | null = null;

  fetch = async (input: string, init?: RequestInit): Promise<Response> => {
    const url = new URL(input);
    if (this.refuse) {
      const { status, body } = this.refuse;
      this.refuse = null;
      this.requests.push({ url, write: () => {}, end: () => {} });
      return new Response(JSON.stringify(body), { status });
    }
    let controller!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({ start: (c) => void (controller = c) });
    init?.signal?.addEventListener("abort", () => {
      try {
        controller.error(new Error("aborted"));
      } catch {
        // already closed
      }
    });
    const encoder = new TextEncoder();
    this.requests.push({
      url,
      write: (text) => controller.enqueue(encoder.encode(text)),
      end: () => controller.close(),
    });
    return new Response(body, { status: 200, headers: { "content-type": "text/event-stream" } });
  };
}

export function sseFrame(value: unknown): string {
  return `data: ${JSON.stringify(value)}\n\n`;
}
export const sseWelcome = sseFrame({ type: "welcome", session: "s1", node: "n", protocol: 1, heartbeat_ms: 15_000 });

