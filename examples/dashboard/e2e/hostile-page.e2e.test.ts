/**
 * Cross-site request forgery in a real browser: a page served from another
 * loopback origin (a tiny server on 127.0.0.1:OTHERPORT) is opened in headless
 * Chromium on the hub's host and tries to read the socket list, publish (JSON
 * with CORS, text/plain no-cors fetches, a text/plain form) and disconnect a
 * session, against a hub in its default configuration (no API keys: the
 * write/admin API answers loopback clients, which the browser is).
 *
 * Everything must fail: the page reads no socket list, the subscriber gets no
 * forged event, the session stays connected — and the hub's access log shows
 * that the requests did arrive and were refused, so the browser really sent
 * them (the test is not passing because nothing was tried).
 */

import { readFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HubProcess } from "../../../clients/js/test/support/hub.ts";
import { RawSocket } from "../../../clients/js/test/support/socket.ts";
import { launchBrowser } from "./support/browser.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const PAGE = readFileSync(join(HERE, "support/hostile-page.html"));
const WAIT = 15_000;

let hub: HubProcess;
let attacker: Server;
let attackerUrl: string;
let victim: RawSocket;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
let page: Page;

/** The hub's access log: (method, path, status) of every request it answered. */
function accessLog(): { method: string; path: string; status: number }[] {
  const line = /req=\S+ \S+ ([A-Z]+) (\S+) (\d{3}) /;
  return hub.logs
    .split("\n")
    .map((l) => line.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ method: m[1]!, path: m[2]!, status: Number(m[3]) }));
}

/** Polls `check` every 50 ms until it returns true, for at most WAIT. */
async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + WAIT;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; hub log:\n${hub.logs}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  hub = await HubProcess.start({ env: { RUST_LOG: "warn,realtime_hub::access=debug" } });
  attacker = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(PAGE);
  });
  await new Promise<void>((ok) => attacker.listen(0, "127.0.0.1", ok));
  const address = attacker.address();
  if (!address || typeof address !== "object") throw new Error("attacker server has no port");
  attackerUrl = `http://127.0.0.1:${address.port}`;
  victim = await RawSocket.open(`ws://127.0.0.1:${hub.port}/ws/alerts`);
  await victim.frame("subscribed");
  browser = await launchBrowser();
  page = browser.context.pages()[0] ?? (await browser.context.newPage());
});

afterAll(async () => {
  await browser?.close();
  victim?.close();
  await new Promise<void>((ok) => (attacker ? attacker.close(() => ok()) : ok()));
  await hub?.stop();
});

describe("a page on another origin against the loopback-only hub", () => {
  it("cannot read the socket list, publish, or disconnect a session", async () => {
    const session = String((await victim.frame("welcome")).session);
    const hubUrl = `http://127.0.0.1:${hub.port}`;
    expect(new URL(attackerUrl).origin).not.toBe(new URL(hubUrl).origin);
    await page.goto(`${attackerUrl}/?hub=${encodeURIComponent(hubUrl)}&session=${encodeURIComponent(session)}`, {
      timeout: WAIT,
    });
    await page.waitForFunction(() => (window as unknown as { __attack?: { done: boolean } }).__attack?.done, undefined, {
      timeout: WAIT,
    });
    const { results } = await page.evaluate(
      () => (window as unknown as { __attack: { results: Record<string, string> } }).__attack,
    );

    // Reads with CORS are refused by the browser: the hub sent no CORS grant.
    expect(results.readSockets).toMatch(/^blocked/);
    expect(results.publishJson).toMatch(/^blocked/);
    expect(results.disconnectCors).toMatch(/^blocked/);
    // The no-cors requests and forms went out (the page cannot see the answer).
    expect(results.publishTextPlain).toBe("opaque");
    expect(results.publishBatchTextPlain).toBe("opaque");
    expect(results.disconnect).toBe("opaque");
    expect(results.publishForm).toBe("submitted");
    expect(results.disconnectForm).toBe("submitted");

    // They reached the hub and were refused: three publishes, three disconnects.
    const disconnectPath = `/api/sockets/${session}/disconnect`;
    const posts = () => accessLog().filter((r) => r.method === "POST");
    await until("the page's POSTs in the access log", () => posts().length >= 6);
    const publishes = posts().filter((r) => r.path === "/api/rooms/alerts/events" || r.path === "/api/events");
    const disconnects = posts().filter((r) => r.path === disconnectPath);
    expect(publishes.map((r) => r.status)).toEqual([403, 403, 403]);
    expect(disconnects.map((r) => r.status)).toEqual([403, 403, 403]);
    expect(accessLog().filter((r) => r.path === "/socket-status/sockets" && r.status === 200)).toEqual([]);

    // Nothing forged was delivered: the next event the subscriber sees is this legitimate one, seq 1.
    const ack = await hub.publish("alerts", "legit", { after: "attack" });
    expect(ack.seq).toBe(1);
    await victim.frame("legit");
    expect(victim.frames.items.filter((f) => f.type === "forged")).toEqual([]);
    // And the session is still connected.
    const sockets = await hub.get<{ id: string }[]>("/socket-status/sockets");
    expect(sockets.map((s) => s.id)).toContain(session);
    const stillOpen = await Promise.race([victim.closed.then(() => false), Promise.resolve(true)]);
    expect(stillOpen).toBe(true);
  });
});
