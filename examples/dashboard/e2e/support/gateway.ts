/**
 * What the browser talks to in the end-to-end test: one origin that serves the
 * built dashboard and forwards the hub's paths (HTTP and WebSocket upgrades) to
 * the hub, like the Vite dev server's proxy or a production reverse proxy.
 *
 * The test controls it: `cut()` drops every open WebSocket and SSE stream and
 * refuses hub traffic until `restore()`; `dropStreams()` kills the open SSE
 * streams only; with `refuseUpgrades` it answers every WebSocket upgrade 403, as
 * proxies that do not pass WebSockets do. Every request is logged, so the test
 * can prove what the page did (and did not) ask for.
 */

import { createReadStream, existsSync, statSync } from "node:fs";
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";
import { extname, join, normalize, resolve } from "node:path";

const HUB_PATHS = [/^\/ws(\/|$|\?)/, /^\/sse(\/|$|\?)/, /^\/api\//, /^\/socket-status/, /^\/healthz/, /^\/readyz/, /^\/metrics/];

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".map": "application/json",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
};

/** One logged request: method and path (with query). */
export interface LoggedRequest {
  method: string;
  path: string;
  upgrade: boolean;
}

export class Gateway {
  readonly requests: LoggedRequest[] = [];
  /** Answer WebSocket upgrades 403 instead of passing them to the hub. */
  refuseUpgrades = false;
  private cutOff = false;
  private readonly tunnels = new Set<[Socket, Socket]>();
  /** Forwarded HTTP requests still answering (SSE streams, mostly): how to kill each. */
  private readonly inFlight = new Set<() => void>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly staticDir: string,
    private readonly hubPort: () => number,
  ) {}

  /** Serves `staticDir` and forwards hub paths to `127.0.0.1:hubPort()`. */
  static async start(staticDir: string, hubPort: () => number): Promise<Gateway> {
    if (!existsSync(join(staticDir, "index.html"))) {
      throw new Error(`${staticDir}/index.html missing: build the dashboard first (npm run build)`);
    }
    let gateway: Gateway | undefined;
    const server = createServer((req, res) => gateway!.onRequest(req, res));
    server.on("upgrade", (req, socket, head) => gateway!.onUpgrade(req, socket as Socket, head));
    await new Promise<void>((ok, fail) => {
      server.once("error", fail);
      server.listen(0, "127.0.0.1", ok);
    });
    const address = server.address();
    if (!address || typeof address !== "object") throw new Error("gateway has no port");
    gateway = new Gateway(server, address.port, resolve(staticDir), hubPort);
    return gateway;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Open WebSocket tunnels to the hub. */
  get openTunnels(): number {
    return this.tunnels.size;
  }

  /** Open SSE streams (forwarded `/sse` requests still answering). */
  get openStreams(): number {
    return this.inFlight.size;
  }

  /** Drops every WebSocket and SSE stream and refuses hub traffic (the page's network to the hub is down). */
  cut(): void {
    this.cutOff = true;
    for (const [client, upstream] of this.tunnels) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    this.tunnels.clear();
    this.dropStreams();
  }

  /** Kills the connections of the HTTP requests still being answered (SSE streams), mid-stream. */
  dropStreams(): void {
    for (const kill of [...this.inFlight]) kill();
  }

  restore(): void {
    this.cutOff = false;
  }

  async close(): Promise<void> {
    this.cut();
    this.server.closeAllConnections();
    await new Promise<void>((ok) => this.server.close(() => ok()));
  }

  private isHubPath(path: string): boolean {
    return HUB_PATHS.some((re) => re.test(path));
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const path = req.url ?? "/";
    this.requests.push({ method: req.method ?? "GET", path, upgrade: false });
    if (this.isHubPath(path)) {
      this.forward(req, res);
      return;
    }
    this.serveStatic(path, res);
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    if (this.cutOff) {
      req.socket.destroy();
      return;
    }
    const streaming = /^\/sse(\/|$|\?)/.test(req.url ?? "");
    const kill = () => {
      this.inFlight.delete(kill);
      upstream.destroy();
      req.socket.resetAndDestroy();
    };
    const upstream = request(
      { host: "127.0.0.1", port: this.hubPort(), method: req.method, path: req.url, headers: req.headers },
      (hubRes) => {
        res.writeHead(hubRes.statusCode ?? 502, hubRes.headers);
        hubRes.pipe(res);
        hubRes.on("end", () => this.inFlight.delete(kill));
      },
    );
    if (streaming) {
      this.inFlight.add(kill);
      res.on("close", () => this.inFlight.delete(kill));
    }
    upstream.on("error", () => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "bad_gateway", message: "hub unreachable" }));
    });
    req.pipe(upstream);
  }

  private onUpgrade(req: IncomingMessage, client: Socket, head: Buffer): void {
    const path = req.url ?? "/";
    this.requests.push({ method: req.method ?? "GET", path, upgrade: true });
    if (this.cutOff || !this.isHubPath(path)) {
      client.destroy();
      return;
    }
    if (this.refuseUpgrades) {
      const body = JSON.stringify({ error: "forbidden", message: "WebSocket is not allowed through this gateway" });
      client.end(
        `HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
      );
      return;
    }
    const upstream = connect(this.hubPort(), "127.0.0.1");
    const tunnel: [Socket, Socket] = [client, upstream];
    this.tunnels.add(tunnel);
    upstream.on("connect", () => {
      const lines = [`${req.method} ${path} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join("\r\n")}\r\n\r\n`);
      if (head.length > 0) upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    const teardown = () => {
      this.tunnels.delete(tunnel);
      client.destroy();
      upstream.destroy();
    };
    for (const socket of tunnel) {
      socket.on("close", teardown);
      socket.on("error", teardown);
    }
  }

  private serveStatic(rawPath: string, res: ServerResponse): void {
    const pathname = decodeURIComponent(new URL(rawPath, "http://x").pathname);
    let file = normalize(join(this.staticDir, pathname));
    if (!file.startsWith(this.staticDir)) {
      res.writeHead(403).end();
      return;
    }
    if (!existsSync(file) || statSync(file).isDirectory()) file = join(this.staticDir, "index.html");
    res.writeHead(200, {
      "content-type": CONTENT_TYPES[extname(file)] ?? "application/octet-stream",
      "cache-control": "no-store",
    });
    createReadStream(file).pipe(res);
  }
}
