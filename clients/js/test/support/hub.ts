/**
 * Runs the real `realtime-hub` binary for integration and end-to-end tests.
 *
 * The binary is `$HUB_BIN`, else `target/release/realtime-hub` in the repository.
 * Each hub listens on a free loopback port; its output is kept for failure reports.
 */

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** Repository root (this file is clients/js/test/support/hub.ts). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../../../..");

/** Path of the hub binary, or an error explaining how to provide it. */
export function hubBinary(): string {
  const candidate = process.env.HUB_BIN ?? resolve(REPO_ROOT, "target/release/realtime-hub");
  const path = resolve(REPO_ROOT, candidate);
  if (!existsSync(path)) {
    throw new Error(
      `realtime-hub binary not found at ${path}: build it with \`cargo build --release\` or set HUB_BIN`,
    );
  }
  return path;
}

/** A free TCP port on 127.0.0.1 (bound and released; the OS does not hand it out again at once). */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.unref();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === "object") resolvePort(address.port);
        else reject(new Error("no port"));
      });
    });
  });
}

/** Options of {@link HubProcess.start}. */
export interface HubStartOptions {
  /** Port to bind; a free one by default. Reuse one to restart "the same" hub. */
  port?: number;
  /**
   * Extra `HUB_<SECTION>__<KEY>` variables. Each hub gets a durable store of its own in a
   * fresh temp directory; pass `HUB_STORAGE__PATH` to restart on the same store.
   */
  env?: Record<string, string>;
  /** How long to wait for the ready path. Default 15 s. */
  readyTimeoutMs?: number;
  /** Path that must answer 2xx before `start` resolves. Default `/healthz`; `/readyz` in cluster mode waits for Redis too. */
  readyPath?: string;
}

/** A running hub process. */
export class HubProcess {
  private output = "";
  private exit: Promise<number | null>;
  private exited = false;

  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {
    const append = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-20_000);
    };
    child.stdout?.on("data", append);
    child.stderr?.on("data", append);
    this.exit = new Promise((resolveExit) => {
      child.once("exit", (code, signal) => {
        this.exited = true;
        this.output += `\n[hub exited: code ${code} signal ${signal}]`;
        resolveExit(code);
      });
    });
  }

  /** Starts a hub with dynamic rooms on 127.0.0.1 and waits until /healthz (or `readyPath`) answers. */
  static async start(options: HubStartOptions = {}): Promise<HubProcess> {
    const port = options.port ?? (await freePort());
    const child = spawn(hubBinary(), [], {
      env: {
        ...process.env,
        RUST_LOG: process.env.RUST_LOG ?? "warn",
        HUB_SERVER__BIND: `127.0.0.1:${port}`,
        HUB_SERVER__WORKERS: "1",
        HUB_SERVER__SHUTDOWN_GRACE_S: "2",
        HUB_ROOMS__ALLOW_DYNAMIC: "true",
        HUB_STORAGE__PATH: mkdtempSync(join(tmpdir(), "rthub-js-store-")),
        ...options.env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const hub = new HubProcess(child, port);
    try {
      await hub.waitReady(options.readyTimeoutMs ?? 15_000, options.readyPath ?? "/healthz");
    } catch (error) {
      await hub.stop();
      throw error;
    }
    return hub;
  }

  /** `http://127.0.0.1:PORT`. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The last 20 kB of the hub's stdout and stderr. */
  get logs(): string {
    return this.output;
  }

  /** POST /api/rooms/{room}/events; returns the hub's answer. */
  async publish(room: string, type: string, data: unknown): Promise<{ room: string; epoch: string; seq: number }> {
    return this.post(`/api/rooms/${encodeURIComponent(room)}/events`, { type, data });
  }

  /** POST a JSON body to the hub and return the JSON answer; throws on a non-2xx status. */
  async post<T>(path: string, body?: unknown): Promise<T> {
    const response = await fetch(`${this.url}${path}`, {
      method: "POST",
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(5_000),
    });
    const text = await response.text();
    if (!response.ok) throw new Error(`POST ${path} -> ${response.status}: ${text}`);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** GET a JSON document from the hub. */
  async get<T>(path: string): Promise<T> {
    const response = await fetch(`${this.url}${path}`, { signal: AbortSignal.timeout(5_000) });
    if (!response.ok) throw new Error(`GET ${path} -> ${response.status}: ${await response.text()}`);
    return (await response.json()) as T;
  }

  /** Stops the hub: SIGTERM (graceful drain), SIGKILL after `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.exited) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    await this.exit;
    clearTimeout(timer);
  }

  /** Kills the hub at once (SIGKILL: no drain, like a crash) and waits for it to exit. */
  async kill(): Promise<void> {
    if (this.exited) return;
    this.child.kill("SIGKILL");
    await this.exit;
  }

  private async waitReady(timeoutMs: number, path: string): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastError: unknown;
    while (Date.now() < deadline) {
      if (this.exited) throw new Error(`hub exited before it was ready:\n${this.output}`);
      try {
        const response = await fetch(`${this.url}${path}`, { signal: AbortSignal.timeout(1_000) });
        if (response.ok) return;
        lastError = new Error(`${path} answered ${response.status}: ${await response.text()}`);
      } catch (error) {
        lastError = error;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`hub not ready within ${timeoutMs} ms (${String(lastError)}):\n${this.output}`);
  }
}
