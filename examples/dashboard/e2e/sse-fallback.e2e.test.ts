/**
 * End to end, the SSE fallback (issue #16): the built dashboard in headless
 * Chromium, loaded through a gateway that answers every WebSocket upgrade 403
 * (a proxy that does not pass WebSockets) and forwards plain HTTP, `/sse`
 * included.
 *
 * 1. The client falls back to SSE by itself: the badge is open and says SSE,
 *    the hotspots and alerts feeds and the keyed recommendations panel are live.
 * 2. The stream is killed mid-way (the gateway resets its connection) while
 *    events keep being published, and again with the network down for a while:
 *    the client reopens `/sse` with its position (`last_event_id`) and every
 *    feed ends exactly equal to what was published, in order, none twice.
 */

import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HubProcess } from "../../../clients/js/test/support/hub.ts";
import { launchBrowser } from "./support/browser.ts";
import { startDashboardHub } from "./support/dashboard-hub.ts";
import { Gateway } from "./support/gateway.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const DIST = resolve(HERE, "../dist");
const ARTIFACTS = resolve(HERE, "../test-results");
const WAIT = { timeout: 15_000 };

let hub: HubProcess;
let gateway: Gateway;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
let page: Page;
const consoleErrors: string[] = [];
const pageSockets: string[] = [];

function feedSeqs(room: string): Promise<number[]> {
  return page.$$eval(`section[data-room="${room}"] li[data-seq]`, (items) =>
    items.map((li) => Number((li as HTMLElement).dataset.seq)),
  );
}

function feedTexts(room: string): Promise<string[]> {
  return page.$$eval(`section[data-room="${room}"] li[data-seq] .feed__body`, (items) =>
    items.map((el) => el.textContent ?? ""),
  );
}

async function waitForFeedCount(room: string, count: number): Promise<void> {
  await page.waitForFunction(
    ([r, n]) => document.querySelectorAll(`section[data-room="${r}"] li[data-seq]`).length === n,
    [room, count] as const,
    WAIT,
  );
}

/** The badge open over SSE. */
async function waitForLiveOverSse(): Promise<void> {
  await page.locator('.rh-badge[data-state="open"][data-transport="sse"]').waitFor(WAIT);
}

const streams = () => gateway.requests.filter((r) => r.path.startsWith("/sse"));
const cursorOf = (path: string) => new URL(path, "http://x").searchParams.get("last_event_id");

async function publishAlert(n: number, message: string) {
  return hub.publish("alerts", "alert_raised", { id: `a${n}`, severity: "info", message });
}

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  gateway = await Gateway.start(DIST, () => hub.port);
  gateway.refuseUpgrades = true;
  hub = await startDashboardHub({ env: { HUB_SERVER__ALLOWED_ORIGINS: gateway.url } });
  browser = await launchBrowser();
  page = browser.context.pages()[0] ?? (await browser.context.newPage());
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => consoleErrors.push(String(error)));
  page.on("websocket", (ws) => pageSockets.push(ws.url()));
});

afterAll(async () => {
  await browser?.close();
  await gateway?.close();
  await hub?.stop();
});

describe("dashboard behind a gateway that refuses WebSocket", () => {
  it("falls back to SSE: the badge says SSE and every feed is live", async () => {
    await hub.publish("hotspots", "hotspot_detected", { id: "h1", area: "Harbour gate" });
    await hub.post("/api/rooms/recommendations/events", {
      type: "recommendation_created",
      key: "rec-1",
      data: { id: "rec-1", title: "Open overflow lot B", detail: "Harbour gate queue", status: "open" },
    });
    await page.goto(`${gateway.url}/?hub=${encodeURIComponent(gateway.url)}`, WAIT);
    await waitForLiveOverSse();
    expect(await page.locator(".rh-badge .rh-badge__transport").textContent()).toBe("SSE");
    // It did try WebSocket first, and every upgrade was refused.
    const upgrades = gateway.requests.filter((r) => r.upgrade);
    expect(upgrades.length).toBeGreaterThanOrEqual(1);
    expect(pageSockets.length).toBeGreaterThanOrEqual(1);
    expect(gateway.openTunnels).toBe(0);
    expect(streams().length).toBeGreaterThanOrEqual(1);

    // Snapshot and state arrived over the stream.
    await waitForFeedCount("hotspots", 1);
    await page.locator('section[data-room="recommendations"] li[data-id="rec-1"][data-status="open"]').waitFor(WAIT);
    // Live events, all three panels.
    await publishAlert(1, "Queue over 20 min");
    await hub.publish("hotspots", "hotspot_detected", { id: "h2", area: "Depot 4" });
    await hub.post("/api/rooms/recommendations/events", {
      type: "recommendation_updated",
      key: "rec-1",
      data: { id: "rec-1", title: "Open overflow lot B", detail: "Harbour gate queue", status: "approved" },
    });
    await waitForFeedCount("alerts", 1);
    await waitForFeedCount("hotspots", 2);
    await page.locator('li[data-id="rec-1"][data-status="approved"]').waitFor(WAIT);
    expect(await feedTexts("hotspots")).toEqual(["Depot 4", "Harbour gate"]);
    expect(gateway.openStreams).toBe(1);
    await page.screenshot({ path: join(ARTIFACTS, "dashboard-sse.png"), fullPage: true });
  });

  it("a killed stream resumes from its position: nothing missing, nothing twice", async () => {
    const before = streams().length;
    gateway.dropStreams();
    for (let i = 2; i <= 4; i += 1) await publishAlert(i, `during drop ${i}`);
    await waitForFeedCount("alerts", 4);
    await waitForLiveOverSse();
    expect(await feedSeqs("alerts")).toEqual([4, 3, 2, 1]);
    const reopened = streams().slice(before);
    expect(reopened.length).toBeGreaterThanOrEqual(1);
    // The reopen named the client's position in every room (an opaque cursor for the hub).
    const cursor = cursorOf(reopened[0]!.path) ?? "";
    expect(cursor).toMatch(/^v1;/);
    for (const room of ["alerts", "hotspots", "recommendations"]) expect(cursor).toContain(`;${room}/`);

    // Down for a while this time: the page cannot reach the hub while events are published.
    gateway.cut();
    await page.locator('.rh-badge[data-state="reconnecting"]').waitFor(WAIT);
    for (let i = 5; i <= 8; i += 1) await publishAlert(i, `while down ${i}`);
    await hub.publish("hotspots", "hotspot_detected", { id: "h3", area: "North ramp" });
    await hub.post("/api/rooms/recommendations/events", { type: "recommendation_deleted", key: "rec-1", delete: true });
    expect(await feedSeqs("alerts")).toEqual([4, 3, 2, 1]);
    gateway.restore();
    await waitForLiveOverSse();
    await waitForFeedCount("alerts", 8);
    await waitForFeedCount("hotspots", 3);
    await page.locator('section[data-room="recommendations"] li[data-id="rec-1"]').waitFor({ state: "detached", ...WAIT });
    expect(await feedSeqs("alerts")).toEqual([8, 7, 6, 5, 4, 3, 2, 1]);
    expect(await feedTexts("alerts")).toEqual([
      "info while down 8",
      "info while down 7",
      "info while down 6",
      "info while down 5",
      "info during drop 4",
      "info during drop 3",
      "info during drop 2",
      "info Queue over 20 min",
    ]);
    expect(await feedSeqs("hotspots")).toEqual([3, 2, 1]);
    // Resumed, not reloaded: no feed needed the HTTP history fallback.
    expect(await page.locator(".feed__notice").count()).toBe(0);
    expect(gateway.requests.some((r) => r.path.includes("/history"))).toBe(false);
    expect(gateway.openStreams).toBe(1);
  });

  it("logged no errors but the refused upgrades and the cut", () => {
    const unexpected = consoleErrors.filter(
      (e) => !/WebSocket connection to .* failed/.test(e) && !/net::ERR_|Failed to load resource/.test(e),
    );
    expect(unexpected).toEqual([]);
  });
});
