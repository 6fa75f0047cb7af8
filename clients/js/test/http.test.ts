import { describe, expect, it } from "vitest";

import { HubError, HubHttp, type FetchLike } from "../src/index.js";

/** A fetch that records each request and answers with `answer`. */
function recordingFetch(answer: { status: number; body: unknown }) {
  const calls: { url: string; init: RequestInit | undefined }[] = [];
  const fetch: FetchLike = async (url, init) => {
    calls.push({ url, init });
    return new Response(JSON.stringify(answer.body), {
      status: answer.status,
      headers: { "content-type": "application/json" },
    });
  };
  return { fetch, calls };
}

describe("HubHttp.publish", () => {
  it("sends the idempotency key as a header and reports a duplicate", async () => {
    const { fetch, calls } = recordingFetch({
      status: 200,
      body: { room: "alerts", epoch: "e1", seq: 4, delivered: 0, duplicate: true },
    });
    const http = new HubHttp({ baseUrl: "http://hub:8080/", apiKey: "k".repeat(12), fetch });
    const result = await http.publish("alerts", "alert_raised", { a: 1 }, { idempotencyKey: "job-7" });
    expect(result).toEqual({ room: "alerts", epoch: "e1", seq: 4, delivered: 0, duplicate: true });
    expect(calls).toHaveLength(1);
    expect(calls[0]!.url).toBe("http://hub:8080/api/rooms/alerts/events");
    const headers = calls[0]!.init!.headers as Record<string, string>;
    expect(headers["idempotency-key"]).toBe("job-7");
    expect(headers.authorization).toBe(`Bearer ${"k".repeat(12)}`);
    expect(JSON.parse(calls[0]!.init!.body as string)).toEqual({ type: "alert_raised", data: { a: 1 } });
  });

  it("sends no idempotency header without a key, and surfaces the hub's error", async () => {
    const { fetch, calls } = recordingFetch({
      status: 400,
      body: { error: "bad_request", message: "an idempotency key is visible ASCII, without spaces" },
    });
    const http = new HubHttp({ baseUrl: "http://hub:8080", fetch });
    const failed = http.publish("alerts", "alert_raised", null);
    await expect(failed).rejects.toBeInstanceOf(HubError);
    await expect(failed).rejects.toMatchObject({ status: 400, code: "bad_request" });
    const headers = calls[0]!.init!.headers as Record<string, string>;
    expect(headers).not.toHaveProperty("idempotency-key");
  });

  it("reports an answer without the hub's body as http_error, with its status", async () => {
    const fetch: FetchLike = async () => new Response("<html>bad gateway</html>", { status: 502 });
    const http = new HubHttp({ baseUrl: "http://hub:8080", fetch });
    await expect(http.publish("alerts", "alert_raised", null)).rejects.toMatchObject({
      name: "HubError",
      status: 502,
      code: "http_error",
      message: "POST /api/rooms/alerts/events answered 502",
    });
  });
});
