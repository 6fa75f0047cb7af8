/**
 * An HTTP-level proxy in front of the hub, like a corporate proxy or a load
 * balancer that does not pass WebSockets: plain HTTP requests (SSE streams
 * included) are forwarded, and with `refuseUpgrades` every `Upgrade:
 * websocket` is answered 403 and closed. The test can drop the open streams
 * (`dropStreams`), or drop them and refuse everything until `restore` (`cut`).
 * Every request is logged with its path and, for streams, the bytes it carried.
 */

import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect, type Socket } from "node:net";

/** One proxied request. */
export interface ProxiedRequest {
  method: string;
  /** Path with query string. */
  path: string;
  upgrade: boolean;
  /** HTTP status the client got (0 until known). */
  status: number;
  /** Everything the hub's answer carried so far, as text. */
  body: string;
}

export class HttpProxy {
  readonly requests: ProxiedRequest[] = [];
  /** Answer WebSocket upgrades with 403 instead of passing them on. */
  refuseUpgrades = false;
  private cutOff = false;
  private readonly open = new Set<{ res: ServerResponse; upstream: IncomingMessage | null; destroy: () => void }>();

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private readonly target: number,
  ) {}

  static async start(targetPort: number, options: { refuseUpgrades?: boolean } = {}): Promise<HttpProxy> {
    let proxy: HttpProxy | undefined;
    const server = createServer((req, res) => proxy!.forward(req, res));
    server.on("upgrade", (req, socket, head) => proxy!.upgrade(req, socket as Socket, head));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", resolve);
    });
    const address = server.address();
    if (!address || typeof address !== "object") throw new Error("proxy has no port");
    proxy = new HttpProxy(server, address.port, targetPort);
    proxy.refuseUpgrades = options.refuseUpgrades ?? false;
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Requests to `/sse`. */
  get streams(): ProxiedRequest[] {
    return this.requests.filter((r) => r.path.startsWith("/sse"));
  }

  /** Upgrade requests seen. */
  get upgrades(): ProxiedRequest[] {
    return this.requests.filter((r) => r.upgrade);
  }

  /** Kills every response in flight (an SSE stream cut mid-way), without a clean end. */
  dropStreams(): void {
    for (const entry of [...this.open]) entry.destroy();
  }

  /** Drops every stream and refuses every request until {@link restore}. */
  cut(): void {
    this.cutOff = true;
    this.dropStreams();
  }

  restore(): void {
    this.cutOff = false;
  }

  async close(): Promise<void> {
    this.cut();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private forward(req: IncomingMessage, res: ServerResponse): void {
    const logged: ProxiedRequest = { method: req.method ?? "GET", path: req.url ?? "/", upgrade: false, status: 0, body: "" };
    this.requests.push(logged);
    if (this.cutOff) {
      req.socket.destroy();
      return;
    }
    const entry = {
      res,
      upstream: null as IncomingMessage | null,
      destroy: () => {
        this.open.delete(entry);
        entry.upstream?.destroy();
        upstream.destroy();
        res.socket?.destroy();
      },
    };
    this.open.add(entry);
    const upstream = request(
      { host: "127.0.0.1", port: this.target, method: req.method, path: req.url, headers: req.headers },
      (hubRes) => {
        entry.upstream = hubRes;
        logged.status = hubRes.statusCode ?? 502;
        res.writeHead(logged.status, hubRes.headers);
        hubRes.on("data", (chunk: Buffer) => {
          logged.body += chunk.toString();
          res.write(chunk);
        });
        hubRes.on("end", () => {
          this.open.delete(entry);
          res.end();
        });
      },
    );
    upstream.on("error", () => {
      this.open.delete(entry);
      if (!res.headersSent) res.writeHead(502, { "content-type": "application/json" });
      res.end(JSON.stringify({ error: "bad_gateway", message: "hub unreachable" }));
    });
    res.on("close", () => entry.destroy());
    req.pipe(upstream);
  }

  private upgrade(req: IncomingMessage, client: Socket, head: Buffer): void {
    const logged: ProxiedRequest = { method: req.method ?? "GET", path: req.url ?? "/", upgrade: true, status: 0, body: "" };
    this.requests.push(logged);
    if (this.cutOff) {
      client.destroy();
      return;
    }
    if (this.refuseUpgrades) {
      logged.status = 403;
      const body = "WebSocket is not allowed through this proxy";
      client.end(`HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
      return;
    }
    const upstream = connect(this.target, "127.0.0.1");
    upstream.on("connect", () => {
      const lines = [`${req.method} ${req.url} HTTP/${req.httpVersion}`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      upstream.write(`${lines.join("\r\n")}\r\n\r\n`);
      if (head.length > 0) upstream.write(head);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    const teardown = () => {
      client.destroy();
      upstream.destroy();
    };
    for (const socket of [client, upstream]) {
      socket.on("close", teardown);
      socket.on("error", teardown);
    }
  }
}

/** The `id:` lines of a stream's text, in order. */
export function streamIds(body: string): string[] {
  return [...body.matchAll(/^id: ?(.*)$/gm)].map((m) => m[1]!);
}
