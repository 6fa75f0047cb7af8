/**
 * End to end, keyed state (issue #14, PROTOCOL section 11): the dashboard's
 * recommendations panel in headless Chromium against a durable hub whose
 * `recommendations` room is keyed (key = recommendation id).
 *
 * The test keeps the truth (id -> status) beside every publish and checks, after
 * each step, that the panel shows exactly the live keys with their latest status:
 *
 * 1. 30 recommendations created and 10 approved before the page opens: the page
 *    gets them as the room's state (`subscribed` with `state:30`).
 * 2. The hub restarts (SIGTERM, same port and store): the panel keeps its entries
 *    while the hub is down, never empties, and is live again after the resume
 *    (same epoch, `recovered:true`); approvals, rejections and deletes published
 *    afterwards appear.
 * 3. The connection is cut and more changes than the room's history holds are
 *    published meanwhile: the resume cannot replay them, the hub sends the state
 *    instead, and the panel (deletes included) equals the truth.
 * 4. A short cut with a few changes: resumed from history, equal to the truth.
 */

import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
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
const ROOM = "recommendations";
const EVENTS = `/api/rooms/${ROOM}/events`;
const PANEL = `section[data-room="${ROOM}"]`;
/**
 * Events the room's history keeps: small, so step 3 can publish past it while
 * the page is away (and step 1's 40 events already exceed it: the page can only
 * have got them as the state).
 */
const HISTORY = 10;

interface Frame {
  dir: "sent" | "received";
  data: Record<string, unknown>;
}

interface RoomStateBody {
  room: string;
  epoch: string;
  seq: number;
  events: { type: string; key?: string; seq: number; data: { id: string; status: string } }[];
}

let hub: HubProcess;
let gateway: Gateway;
let browser: Awaited<ReturnType<typeof launchBrowser>>;
let page: Page;
let store: string;
const frames: Frame[] = [];
const consoleErrors: string[] = [];

/** What the panel must show: id -> latest status of every live key. */
const truth = new Map<string, string>();

/** The same durable hub each time: same store, same port after the first start. */
const hubEnv = () => ({
  HUB_SERVER__ALLOWED_ORIGINS: gateway.url,
  HUB_STORAGE__PATH: store,
  HUB_ROOMS__HISTORY: String(HISTORY),
});

const idOf = (n: number) => `rec-${String(n).padStart(2, "0")}`;
const titleOf = (id: string) => `Recommendation ${id}`;

async function create(id: string): Promise<void> {
  await hub.post(EVENTS, { type: "recommendation_created", key: id, data: { id, title: titleOf(id), status: "open" } });
  truth.set(id, "open");
}

async function decide(id: string, status: "approved" | "rejected"): Promise<void> {
  await hub.post(EVENTS, { type: "recommendation_updated", key: id, data: { id, title: titleOf(id), status } });
  truth.set(id, status);
}

async function remove(id: string): Promise<void> {
  await hub.post(EVENTS, { type: "recommendation_deleted", key: id, delete: true });
  truth.delete(id);
}

/** `id=status` of every live key, sorted. */
function expected(): string[] {
  return [...truth].map(([id, status]) => `${id}=${status}`).sort();
}

/** `id=status` of every item the panel shows, sorted. */
function shown(): Promise<string[]> {
  return page.$$eval(`${PANEL} li[data-id]`, (items) =>
    items.map((li) => `${(li as HTMLElement).dataset.id}=${(li as HTMLElement).dataset.status}`).sort(),
  );
}

const panelState = () => page.locator(PANEL).getAttribute("data-state");

/**
 * Waits (bounded) until the panel is in `state` and shows exactly the truth, then
 * asserts it, so a timeout fails with the difference rather than a bare timeout.
 */
async function expectPanel(state: "live" | "stale" = "live"): Promise<void> {
  const want = expected();
  await page
    .waitForFunction(
      ([selector, s, w]) => {
        const panel = document.querySelector(selector);
        if (panel?.getAttribute("data-state") !== s) return false;
        const got = [...panel.querySelectorAll("li[data-id]")]
          .map((li) => `${(li as HTMLElement).dataset.id}=${(li as HTMLElement).dataset.status}`)
          .sort();
        return got.join(",") === w;
      },
      [PANEL, state, want.join(",")] as const,
      WAIT,
    )
    .catch(() => undefined);
  expect(await shown()).toEqual(want);
  expect(await panelState()).toBe(state);
  // The count and the per-item rendering agree with the statuses.
  expect(await page.locator(`${PANEL} .feed__count`).textContent()).toBe(`${truth.size} recommendations`);
  const open = [...truth.values()].filter((s) => s === "open").length;
  expect(await page.locator(`${PANEL} li[data-status="open"] button`, { hasText: "Approve" }).count()).toBe(open);
  expect(await page.locator(`${PANEL} li .decision`).count()).toBe(truth.size - open);
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
 * Waits (bounded) until a recorded frame matches, for what the DOM cannot show:
 * after a resume with nothing missed the panel is already right (and `live` once
 * the socket is open) before the hub's `subscribed` answer arrives.
 */
async function waitForFrame(dir: Frame["dir"], match: Record<string, unknown>, after = 0): Promise<void> {
  await expect
    .poll(() => frames.slice(after).some((f) => f.dir === dir && Object.entries(match).every(([k, v]) => f.data[k] === v)), {
      timeout: WAIT.timeout,
      message: `a ${dir} frame ${JSON.stringify(match)}`,
    })
    .toBe(true);
}

/** Every item count the panel showed since the last call (the current one first). */
function countsSinceLast(): Promise<number[]> {
  return page.evaluate(() => {
    const w = window as unknown as { __recCounts: number[] };
    const seen = w.__recCounts.splice(0);
    const now = document.querySelectorAll('section[data-room="recommendations"] li[data-id]').length;
    w.__recCounts.push(now);
    return seen;
  });
}

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  store = mkdtempSync(join(tmpdir(), "rh-e2e-keyed-store-"));
  gateway = await Gateway.start(DIST, () => hub.port);
  hub = await startDashboardHub({ env: hubEnv() });
  browser = await launchBrowser();
  page = browser.context.pages()[0] ?? (await browser.context.newPage());
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
  // Record every item count the panel renders, so a blink (emptied, then
  // refilled) during a reconnect cannot go unnoticed.
  await page.addInitScript(() => {
    const seen: number[] = [];
    (window as unknown as { __recCounts: number[] }).__recCounts = seen;
    new MutationObserver(() => {
      const count = document.querySelectorAll('section[data-room="recommendations"] li[data-id]').length;
      if (seen[seen.length - 1] !== count) seen.push(count);
    }).observe(document, { subtree: true, childList: true });
  });
});

afterAll(async () => {
  await browser?.close();
  await gateway?.close();
  await hub?.stop();
  if (store) rmSync(store, { recursive: true, force: true });
});

describe("recommendations panel on a keyed room", () => {
  it("opens on 30 recommendations published before it, 10 of them approved", async () => {
    for (let n = 1; n <= 30; n += 1) await create(idOf(n));
    for (let n = 1; n <= 10; n += 1) await decide(idOf(n), "approved");
    const state = await hub.get<RoomStateBody>(`/api/rooms/${ROOM}/state`);
    expect(state.seq).toBe(40);
    expect(state.events).toHaveLength(30);

    await page.goto(`${gateway.url}/?hub=${encodeURIComponent(gateway.url)}`, WAIT);
    await waitForBadge("open");
    await expectPanel("live");
    expect([...truth.values()].filter((s) => s === "approved")).toHaveLength(10);
    expect([...truth.values()].filter((s) => s === "open")).toHaveLength(20);
    expect(await page.locator(`${PANEL} li[data-id="rec-03"] .decision`).textContent()).toBe("approved");
    expect(await page.locator(`${PANEL} li[data-id="rec-23"] strong`).textContent()).toBe("Recommendation rec-23");

    // It came as the room's state: 30 entries at seq 40, not as replayed history.
    await waitForFrame("received", { type: "subscribed", room: ROOM });
    expect(framesOf("received", { type: "subscribed", room: ROOM, recovered: false, seq: 40, state: 30 })).toHaveLength(1);
    expect(await countsSinceLast()).toContain(30);
    await page.locator(PANEL).screenshot({ path: join(ARTIFACTS, "recommendations-keyed.png") });
  });

  it("stays right across a hub restart on the same store, then shows new changes", async () => {
    const before = await hub.get<RoomStateBody>(`/api/rooms/${ROOM}/state`);
    const port = hub.port;
    const framesBefore = frames.length;

    await hub.stop(); // SIGTERM: a clean stop; the page's socket drops with it.
    await waitForBadge("reconnecting");
    // Down: the panel keeps what it knew and says it is not current.
    await expectPanel("stale");
    await page.locator(`${PANEL} .feed__notice`).waitFor(WAIT);

    hub = await startDashboardHub({ port, env: hubEnv() });
    await waitForBadge("open");
    await expectPanel("live");
    // The durable store kept epoch, seq and state; the page resumed at its seq.
    const after = await hub.get<RoomStateBody>(`/api/rooms/${ROOM}/state`);
    expect(after).toEqual(before);
    // (At least once: a reconnect that reached the hub while it drained would subscribe again.)
    await waitForFrame("received", { type: "subscribed", room: ROOM }, framesBefore);
    const resubscribes = frames.slice(framesBefore).filter((f) => f.data.op === "subscribe" && f.data.room === ROOM);
    expect(resubscribes.length).toBeGreaterThanOrEqual(1);
    expect(resubscribes.every((f) => f.data.since === 40 && f.data.epoch === before.epoch)).toBe(true);
    const answers = frames.slice(framesBefore).filter((f) => f.data.type === "subscribed" && f.data.room === ROOM);
    expect(answers.length).toBeGreaterThanOrEqual(1);
    expect(answers.every((f) => f.data.recovered === true && f.data.epoch === before.epoch)).toBe(true);
    // It never went blank or lost an item on the way.
    expect(await countsSinceLast()).toEqual([30]);

    await decide(idOf(11), "approved");
    await decide(idOf(12), "approved");
    await decide(idOf(13), "rejected");
    await decide(idOf(14), "rejected");
    await remove(idOf(1)); // an approved one
    await remove(idOf(15)); // an open one
    await expectPanel("live");
    expect(truth.size).toBe(28);
    expect(await page.locator(`${PANEL} li[data-id="rec-01"]`).count()).toBe(0);
  });

  it("equals the truth after a cut during which more changed than history holds", async () => {
    const seqBefore = (await hub.get<RoomStateBody>(`/api/rooms/${ROOM}/state`)).seq;
    gateway.cut();
    await waitForBadge("reconnecting");

    await decide(idOf(16), "rejected");
    await decide(idOf(17), "approved");
    await remove(idOf(2));
    await remove(idOf(18)); // open
    await remove(idOf(13)); // rejected after the restart
    await create(idOf(31));
    await create(idOf(32));
    await decide(idOf(31), "approved");
    await remove(idOf(32)); // created and gone while the page was away
    await create(idOf(33));
    // Churn on one key: only its last status counts.
    for (const status of ["approved", "rejected", "approved", "rejected"] as const) await decide(idOf(19), status);
    const missed = 14;
    expect(missed).toBeGreaterThan(HISTORY);

    // Still cut: nothing arrived, the panel shows what it had, as stale.
    expect(await panelState()).toBe("stale");
    expect(await page.locator(`${PANEL} li[data-id="rec-02"]`).count()).toBe(1);

    gateway.restore();
    await waitForBadge("open");
    await expectPanel("live");
    expect(await page.locator(`${PANEL} li[data-id="rec-32"]`).count()).toBe(0);

    // The resume was out of history: the hub answered with the state, not a replay.
    const state = await hub.get<RoomStateBody>(`/api/rooms/${ROOM}/state`);
    expect(state.seq).toBe(seqBefore + missed);
    expect(state.events.map((e) => `${e.key}=${e.data.status}`).sort()).toEqual(expected());
    await waitForFrame("received", { type: "subscribed", room: ROOM, seq: state.seq });
    expect(framesOf("sent", { op: "subscribe", room: ROOM, since: seqBefore })).toHaveLength(1);
    expect(
      framesOf("received", { type: "subscribed", room: ROOM, recovered: false, seq: state.seq, state: truth.size }),
    ).toHaveLength(1);
  });

  it("equals the truth after a short cut resumed from history", async () => {
    const seqBefore = (await hub.get<RoomStateBody>(`/api/rooms/${ROOM}/state`)).seq;
    gateway.cut();
    await waitForBadge("reconnecting");
    await decide(idOf(20), "approved");
    await remove(idOf(3));
    await create(idOf(34));
    gateway.restore();
    await waitForBadge("open");
    await expectPanel("live");
    await waitForFrame("received", { type: "subscribed", room: ROOM, seq: seqBefore + 3 });
    expect(framesOf("received", { type: "subscribed", room: ROOM, recovered: true, seq: seqBefore + 3 })).toHaveLength(1);

    // And the panel's own Approve still works on the keyed room.
    const item = page.locator(`${PANEL} li[data-id="rec-34"]`);
    await item.getByRole("button", { name: "Approve" }).click();
    truth.set("rec-34", "approved");
    await expectPanel("live");
    const state = await hub.get<RoomStateBody>(`/api/rooms/${ROOM}/state`);
    expect(state.events.at(-1)).toMatchObject({
      type: "recommendation_updated",
      key: "rec-34",
      data: { id: "rec-34", title: "Recommendation rec-34", status: "approved" },
    });
    await page.locator(PANEL).screenshot({ path: join(ARTIFACTS, "recommendations-keyed-after.png") });
  });

  it("logged no errors", () => {
    // Connection failures while cut or restarting are expected console noise.
    const unexpected = consoleErrors.filter((e) => !/WebSocket connection to .* failed/.test(e));
    expect(unexpected).toEqual([]);
  });
});
