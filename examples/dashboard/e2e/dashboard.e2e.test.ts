/**
 * End to end: the built dashboard in headless Chromium against the real hub.
 *
 * 1. Events published over HTTP render live; socket status arrives over the
 *    `$status` room (no request to /socket-status).
 * 2. The page's connection is cut, events are published meanwhile, the badge
 *    goes reconnecting -> open and the missed events appear, in order, none lost.
 * 3. Approve on a recommendation publishes a keyed decision that comes back live.
 * 4. The hub restarts (new epoch): the client resyncs through HTTP history.
 */

import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { BrowserContext, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HubProcess } from "../../../clients/js/test/support/hub.ts";
import { launchBrowser } from "./support/browser.ts";
import { startDashboardHub } from "./support/dashboard-hub.ts";
import { Gateway } from "./support/gateway.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const DIST = resolve(HERE, "../dist");
const ARTIFACTS = resolve(HERE, "../test-results");
const WAIT = { timeout: 15_000 };

interface Frame {
  dir: "sent" | "received";
  data: Record<string, unknown>;
}

let hub: HubProcess;
let gateway: Gateway;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
let context: BrowserContext;
let page: Page;
const pageRequests: string[] = [];
const frames: Frame[] = [];

/** The dashboard's origin is the one browser origin allowed on the write API. */
const hubEnv = () => ({ HUB_SERVER__ALLOWED_ORIGINS: gateway.url });
const consoleErrors: string[] = [];

/** Seqs of a feed's items, in display order (newest first). */
function feedSeqs(room: string): Promise<number[]> {
  return page.$$eval(`section[data-room="${room}"] li[data-seq]`, (items) =>
    items.map((li) => Number((li as HTMLElement).dataset.seq)),
  );
}

/** Text of a feed's items, in display order. */
function feedTexts(room: string): Promise<string[]> {
  return page.$$eval(`section[data-room="${room}"] li[data-seq] .feed__body`, (items) =>
    items.map((el) => el.textContent ?? ""),
  );
}

/** Waits until the feed shows exactly `count` items. */
async function waitForFeedCount(room: string, count: number): Promise<void> {
  await page.waitForFunction(
    ([r, n]) => document.querySelectorAll(`section[data-room="${r}"] li[data-seq]`).length === n,
    [room, count] as const,
    WAIT,
  );
}

async function waitForBadge(state: string): Promise<void> {
  await page.locator(`.rh-badge[data-state="${state}"]`).waitFor(WAIT);
}

function framesOf(dir: Frame["dir"], match: Record<string, unknown>): Record<string, unknown>[] {
  return frames
    .filter((f) => f.dir === dir && Object.entries(match).every(([k, v]) => f.data[k] === v))
    .map((f) => f.data);
}

/**
 * Waits until the pushed status shows this page subscribed to the three feeds
 * (the hub sends count changes at most once a second).
 */
async function waitForStatusRooms(): Promise<void> {
  await page.waitForFunction(
    () => {
      const rows = [...document.querySelectorAll(".rh-status--details tbody tr")].map((tr) => tr.textContent);
      return ["alerts1", "hotspots1", "recommendations1"].every((row) => rows.includes(row));
    },
    undefined,
    WAIT,
  );
}

async function screenshot(name: string): Promise<string> {
  const path = join(ARTIFACTS, name);
  await page.screenshot({ path, fullPage: true });
  return path;
}

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  // The gateway first: the hub must list its origin, since the page's demo
  // publish reaches the write API with that Origin.
  gateway = await Gateway.start(DIST, () => hub.port);
  // The dashboard's hub.toml: the recommendations room is keyed.
  hub = await startDashboardHub({ env: hubEnv() });
  browser = await launchBrowser();
  context = browser.context;
  page = context.pages()[0] ?? (await context.newPage());
  page.on("request", (request) => pageRequests.push(request.url()));
  page.on("console", (message) => {
    if (message.type() === "error") consoleErrors.push(message.text());
  });
  page.on("pageerror", (error) => consoleErrors.push(String(error)));
  page.on("websocket", (ws) => {
    const record = (dir: Frame["dir"]) => (event: { payload: string | Buffer }) => {
      try {
        frames.push({ dir, data: JSON.parse(String(event.payload)) as Record<string, unknown> });
      } catch {
        // not JSON: not ours to check
      }
    };
    ws.on("framesent", record("sent"));
    ws.on("framereceived", record("received"));
  });
  // Record every state the connection badge shows, in order.
  await page.addInitScript(() => {
    const seen: string[] = [];
    (window as unknown as { __badgeStates: string[] }).__badgeStates = seen;
    new MutationObserver(() => {
      const state = document.querySelector(".rh-badge")?.getAttribute("data-state");
      if (state && seen[seen.length - 1] !== state) seen.push(state);
    }).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"] });
  });
});

afterAll(async () => {
  await browser?.close();
  await gateway?.close();
  await hub?.stop();
});

describe("dashboard in Chromium", () => {
  it("renders events published over HTTP and shows socket status pushed over the socket", async () => {
    await page.goto(`${gateway.url}/?hub=${encodeURIComponent(gateway.url)}`, WAIT);
    await waitForBadge("open");
    // The $status room feeds the indicator: healthy and counting this page's socket.
    const indicator = page.locator('.rh-status--compact[data-health="ok"]');
    await indicator.waitFor(WAIT);
    expect(Number(await indicator.locator(".rh-status__count").textContent())).toBeGreaterThanOrEqual(1);

    await hub.publish("hotspots", "hotspot_detected", { id: "h1", area: "Harbour gate" });
    await hub.publish("alerts", "alert_raised", { id: "a1", severity: "warning", message: "Queue over 20 min" });
    await waitForFeedCount("hotspots", 1);
    await waitForFeedCount("alerts", 1);
    expect(await feedTexts("hotspots")).toEqual(["Harbour gate"]);
    expect(await feedTexts("alerts")).toEqual(["warning Queue over 20 min"]);
    expect(framesOf("received", { type: "status_update", room: "$status" }).length).toBeGreaterThanOrEqual(1);
    await waitForStatusRooms();
    await screenshot("dashboard-live.png");
  });

  it("survives a cut: reconnecting -> open, and every event published meanwhile appears in order", async () => {
    gateway.cut();
    await waitForBadge("reconnecting");
    await page.locator('.banner[data-state="reconnecting"]').waitFor(WAIT);

    const missed = [];
    for (let i = 1; i <= 4; i += 1) {
      missed.push(await hub.publish("alerts", "alert_raised", { id: `m${i}`, severity: "info", message: `missed ${i}` }));
    }
    await hub.publish("hotspots", "hotspot_detected", { id: "h2", area: "Depot 4" });
    // Still down: nothing can have arrived yet.
    expect(await page.locator(".rh-badge").getAttribute("data-state")).toBe("reconnecting");
    expect(await feedSeqs("alerts")).toEqual([1]);

    gateway.restore();
    await waitForBadge("open");
    await waitForFeedCount("alerts", 5);
    await waitForFeedCount("hotspots", 2);

    // Newest first, gap-free, no duplicates, the right content.
    expect(await feedSeqs("alerts")).toEqual([5, 4, 3, 2, 1]);
    expect(missed.map((r) => r.seq)).toEqual([2, 3, 4, 5]);
    expect(await feedTexts("alerts")).toEqual([
      "info missed 4",
      "info missed 3",
      "info missed 2",
      "info missed 1",
      "warning Queue over 20 min",
    ]);
    expect(await feedSeqs("hotspots")).toEqual([2, 1]);

    // It resumed (since + epoch, recovered:true) rather than starting over.
    const epoch = missed[0]!.epoch;
    expect(framesOf("sent", { op: "subscribe", room: "alerts", since: 1, epoch })).toHaveLength(1);
    expect(framesOf("received", { type: "subscribed", room: "alerts", recovered: true })).toHaveLength(1);
    const states = await page.evaluate(() => (window as unknown as { __badgeStates: string[] }).__badgeStates);
    expect(states.slice(-2)).toEqual(["reconnecting", "open"]);
    expect(await page.locator(".banner").count()).toBe(0);
  });

  it("approves a recommendation through a demo publish and shows the decision coming back", async () => {
    const record = { id: "rec-1", title: "Open overflow lot B", detail: "Harbour gate queue" };
    // Keyed publish: the key is the recommendation id.
    await hub.post("/api/rooms/recommendations/events", {
      type: "recommendation_created",
      key: "rec-1",
      data: { ...record, status: "open" },
    });
    const item = page.locator('section[data-room="recommendations"] li[data-id="rec-1"]');
    await item.and(page.locator('[data-status="open"]')).waitFor(WAIT);
    await item.getByRole("button", { name: "Approve" }).click();
    await page.locator('li[data-id="rec-1"][data-status="approved"]').waitFor(WAIT);
    expect(await item.locator(".decision").textContent()).toBe("approved");
    expect(await page.locator('section[data-room="recommendations"] li[data-id]').count()).toBe(1);
    expect(
      gateway.requests.some((r) => r.method === "POST" && r.path === "/api/rooms/recommendations/events"),
    ).toBe(true);
    type Events = { events: { type: string; key?: string; data: unknown }[] };
    const history = await hub.get<Events>("/api/rooms/recommendations/history");
    // The page's decision went out keyed too, with the whole record (the state
    // keeps only the latest event of the key).
    expect(history.events.map((e) => [e.type, e.key, e.data])).toEqual([
      ["recommendation_created", "rec-1", { ...record, status: "open" }],
      ["recommendation_updated", "rec-1", { ...record, status: "approved" }],
    ]);
    const state = await hub.get<Events>("/api/rooms/recommendations/state");
    expect(state.events.map((e) => [e.type, e.key, e.data])).toEqual([
      ["recommendation_updated", "rec-1", { ...record, status: "approved" }],
    ]);
    // (No waitForStatusRooms() here: after the cut above, the hub does not push
    // the room-count change that follows the reconnect; the Node integration test
    // "keeps a reconnected client's $status view up to date" covers that.)
    await screenshot("dashboard-approved.png");
    // The same page in dark mode (the components follow prefers-color-scheme).
    await page.emulateMedia({ colorScheme: "dark" });
    const badgeColor = await page.locator(".rh-badge").evaluate((el) => getComputedStyle(el).backgroundColor);
    expect(badgeColor).toBe("rgb(21, 27, 35)");
    await screenshot("dashboard-dark.png");
    await page.emulateMedia({ colorScheme: "light" });
    expect(await page.locator(".rh-badge").evaluate((el) => getComputedStyle(el).backgroundColor)).toBe(
      "rgb(255, 255, 255)",
    );
  });

  it("resyncs through the HTTP history fallback after the hub restarts with a new epoch", async () => {
    const oldEpoch = (await hub.get<{ epoch: string }>("/api/rooms/hotspots/history")).epoch;
    const historyRequestsBefore = pageRequests.filter((u) => u.includes("/history")).length;

    gateway.cut();
    await waitForBadge("reconnecting");
    await hub.stop();
    hub = await startDashboardHub({ port: hub.port, env: hubEnv() });
    const fresh = [
      await hub.publish("hotspots", "hotspot_detected", { id: "n1", area: "New epoch north" }),
      await hub.publish("hotspots", "hotspot_detected", { id: "n2", area: "New epoch south" }),
    ];
    expect(fresh[0]!.epoch).not.toBe(oldEpoch);
    gateway.restore();

    await waitForBadge("open");
    await page.locator('section[data-room="hotspots"] .feed__notice[data-resync="epoch_changed"][data-source="history"]').waitFor(WAIT);
    await waitForFeedCount("hotspots", 2);
    expect(await feedSeqs("hotspots")).toEqual([2, 1]);
    expect(await feedTexts("hotspots")).toEqual(["New epoch south", "New epoch north"]);

    // The client tried to resume the old epoch, was refused, and read history over HTTP.
    expect(
      framesOf("sent", { op: "subscribe", room: "hotspots", epoch: oldEpoch }).some((f) => f.since === 2),
    ).toBe(true);
    expect(framesOf("received", { type: "subscribed", room: "hotspots", recovered: false, epoch: fresh[0]!.epoch })).toHaveLength(1);
    const historyRequests = pageRequests.filter((u) => new URL(u).pathname === "/api/rooms/hotspots/history");
    expect(historyRequests.length).toBeGreaterThanOrEqual(1);
    expect(pageRequests.filter((u) => u.includes("/history")).length).toBeGreaterThan(historyRequestsBefore);

    // Live events continue after the resync.
    await hub.publish("hotspots", "hotspot_detected", { id: "n3", area: "After resync" });
    await waitForFeedCount("hotspots", 3);
    expect(await feedSeqs("hotspots")).toEqual([3, 2, 1]);

    // The status indicator follows the new hub by push alone: its room table
    // catches up with this page's three feed subscriptions.
    await waitForStatusRooms();
    const shot = await screenshot("dashboard-after-restart.png");
    console.log(`screenshot: ${shot}`);
  });

  it("never asked /socket-status over HTTP and logged no errors", () => {
    const statusRequests = pageRequests.filter((u) => new URL(u).pathname.startsWith("/socket-status"));
    expect(statusRequests).toEqual([]);
    expect(gateway.requests.filter((r) => r.path.startsWith("/socket-status"))).toEqual([]);
    // The page did open its socket through the gateway.
    expect(gateway.requests.some((r) => r.upgrade && r.path.startsWith("/ws"))).toBe(true);
    // Connection failures while cut are expected console noise; anything else is a bug.
    const unexpected = consoleErrors.filter((e) => !/WebSocket connection to .* failed/.test(e));
    expect(unexpected).toEqual([]);
  });
});
