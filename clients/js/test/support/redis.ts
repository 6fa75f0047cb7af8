/**
 * A private `redis-server` for cluster integration tests: its own loopback port,
 * no persistence (`--save '' --appendonly no`), a temporary working directory,
 * killed and removed by {@link RedisProcess.stop}. It never touches a Redis the
 * machine already runs (e.g. the shared one on 6379).
 *
 * The binary is `$REDIS_SERVER`, else `/usr/bin/redis-server`, else `redis-server`
 * on the PATH.
 */

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "./hub.js";

function redisBinary(): string {
  if (process.env.REDIS_SERVER) return process.env.REDIS_SERVER;
  return existsSync("/usr/bin/redis-server") ? "/usr/bin/redis-server" : "redis-server";
}

/** Sends `PING` and resolves true on `+PONG`, false on anything else (refused, timeout, error reply). */
function ping(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    let answer = "";
    const done = (ok: boolean) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    socket.once("connect", () => socket.write("PING\r\n"));
    socket.on("data", (chunk) => {
      answer += chunk.toString();
      if (answer.includes("\r\n")) done(answer.startsWith("+PONG"));
    });
    socket.once("error", () => done(false));
    socket.once("close", () => done(false));
  });
}

/** A running private Redis. */
export class RedisProcess {
  private child: ChildProcess | null = null;
  private exit: Promise<void> = Promise.resolve();
  private output = "";
  private dir: string | null;

  private constructor(readonly port: number) {
    this.dir = mkdtempSync(join(tmpdir(), "hub-test-redis-"));
  }

  /** Starts a Redis with no persistence on a free loopback port (or `port`) and waits for PING. */
  static async start(port?: number): Promise<RedisProcess> {
    const redis = new RedisProcess(port ?? (await freePort()));
    try {
      await redis.spawn();
    } catch (error) {
      await redis.stop();
      throw error;
    }
    return redis;
  }

  /** `redis://127.0.0.1:PORT/`. */
  get url(): string {
    return `redis://127.0.0.1:${this.port}/`;
  }

  /** The last 20 kB of the server's output (it logs to stdout). */
  get logs(): string {
    return this.output;
  }

  /** True while the server process runs. */
  get running(): boolean {
    return this.child !== null;
  }

  /**
   * Kills the server (SIGKILL: no shutdown save, like a crash) and starts a new,
   * **empty** one on the same port.
   */
  async restartEmpty(): Promise<void> {
    await this.kill();
    await this.spawn();
  }

  /** Starts a new, **empty** server on the same port after {@link kill} (no-op while running). */
  async startAgain(): Promise<void> {
    if (this.child) return;
    await this.spawn();
  }

  /** Kills the server with SIGKILL and waits for it to exit. */
  async kill(): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill("SIGKILL");
    await this.exit;
  }

  /** Kills the server and removes its working directory. Safe to call twice. */
  async stop(): Promise<void> {
    await this.kill();
    if (this.dir) {
      rmSync(this.dir, { recursive: true, force: true });
      this.dir = null;
    }
  }

  private async spawn(timeoutMs = 5_000): Promise<void> {
    if (!this.dir) throw new Error("redis already stopped");
    const child = spawn(
      redisBinary(),
      [
        "--port", String(this.port),
        "--bind", "127.0.0.1",
        "--save", "",
        "--appendonly", "no",
        "--dir", this.dir,
        "--daemonize", "no",
        "--protected-mode", "yes",
        "--logfile", "",
      ],
      { stdio: ["ignore", "pipe", "pipe"], cwd: this.dir },
    );
    this.child = child;
    const append = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-20_000);
    };
    child.stdout?.on("data", append);
    child.stderr?.on("data", append);
    this.exit = new Promise((resolveExit) => {
      child.once("exit", (code, signal) => {
        if (this.child === child) this.child = null;
        this.output += `\n[redis exited: code ${code} signal ${signal}]\n`;
        resolveExit();
      });
    });
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.child !== child) throw new Error(`redis-server exited before it answered PING:\n${this.output}`);
      if (await ping(this.port)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`redis-server on port ${this.port} did not answer PING within ${timeoutMs} ms:\n${this.output}`);
  }
}
