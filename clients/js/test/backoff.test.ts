import { describe, expect, it } from "vitest";
import { Backoff, backoffDelay, resolveBackoff } from "../src/backoff.js";

describe("backoffDelay", () => {
  const noJitter = resolveBackoff({ initialDelayMs: 100, maxDelayMs: 1_000, factor: 2, jitter: 0 });

  it("grows exponentially from the initial delay", () => {
    expect([0, 1, 2, 3].map((n) => backoffDelay(n, noJitter))).toEqual([100, 200, 400, 800]);
  });

  it("never exceeds the cap, even for huge attempt numbers", () => {
    expect(backoffDelay(4, noJitter)).toBe(1_000);
    expect(backoffDelay(10, noJitter)).toBe(1_000);
    expect(backoffDelay(5_000, noJitter)).toBe(1_000);
  });

  it("jitter spreads the delay over [nominal * (1 - jitter), nominal]", () => {
    const opts = resolveBackoff({ initialDelayMs: 1_000, maxDelayMs: 60_000, factor: 2, jitter: 0.5 });
    expect(backoffDelay(1, opts, () => 0)).toBe(2_000);
    expect(backoffDelay(1, opts, () => 0.5)).toBe(1_500);
    expect(backoffDelay(1, opts, () => 0.999_999)).toBe(1_000);
  });

  it("produces different delays for different clients (no lockstep)", () => {
    const opts = resolveBackoff({ initialDelayMs: 1_000, jitter: 0.5 });
    const delays = new Set(Array.from({ length: 50 }, () => backoffDelay(3, opts)));
    expect(delays.size).toBeGreaterThan(10);
    for (const d of delays) {
      expect(d).toBeGreaterThanOrEqual(4_000);
      expect(d).toBeLessThanOrEqual(8_000);
    }
  });

  it("full jitter can go down to zero but not below", () => {
    const opts = resolveBackoff({ initialDelayMs: 100, jitter: 1 });
    expect(backoffDelay(0, opts, () => 0.999_999)).toBe(0);
  });
});

describe("resolveBackoff", () => {
  it("fills defaults and ignores undefined fields", () => {
    expect(resolveBackoff({ initialDelayMs: undefined })).toEqual({
      initialDelayMs: 500,
      maxDelayMs: 30_000,
      factor: 2,
      jitter: 0.5,
    });
  });

  it.each([
    [{ initialDelayMs: -1 }],
    [{ initialDelayMs: Number.NaN }],
    [{ initialDelayMs: 100, maxDelayMs: 50 }],
    [{ factor: 0.5 }],
    [{ jitter: 1.5 }],
    [{ jitter: -0.1 }],
  ])("rejects %j", (options) => {
    expect(() => resolveBackoff(options)).toThrow(RangeError);
  });
});

describe("Backoff", () => {
  it("counts attempts and starts over after reset", () => {
    const backoff = new Backoff({ initialDelayMs: 10, maxDelayMs: 50, jitter: 0 });
    expect([backoff.next(), backoff.next(), backoff.next(), backoff.next()]).toEqual([10, 20, 40, 50]);
    expect(backoff.attempts).toBe(4);
    backoff.reset();
    expect(backoff.attempts).toBe(0);
    expect(backoff.next()).toBe(10);
  });
});
