/**
 * A TCP proxy the test controls, to break the network between a client and the
 * hub on purpose: `cut()` drops every connection and refuses new ones,
 * `blackhole()` keeps connections open but silently stops forwarding (a dead
 * connection neither side is told about), `restore()` goes back to normal.
 * `retarget()` sends new connections to another port (a load balancer moving
 * clients to another node).
 */

import { createServer, connect, type Server, type Socket } from "node:net";

type Mode = "forward" | "cut" | "blackhole";

export class TcpProxy {
  private mode: Mode = "forward";
  private readonly pairs = new Set<[Socket, Socket]>();
  /** Connections accepted so far (refused ones included). */
  accepted = 0;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    private target: number,
  ) {}

  /** Listens on a free loopback port and forwards to `127.0.0.1:targetPort`. */
  static async start(targetPort: number): Promise<TcpProxy> {
    let proxy: TcpProxy | undefined;
    const server = createServer((client) => proxy?.handle(client));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", resolve);
    });
    const address = server.address();
    if (!address || typeof address !== "object") throw new Error("proxy has no port");
    proxy = new TcpProxy(server, address.port, targetPort);
    return proxy;
  }

  /** `http://127.0.0.1:PORT`. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Number of proxied connections currently open. */
  get openConnections(): number {
    return this.pairs.size;
  }

  /** Drops every connection (RST) and refuses new ones until {@link restore}. */
  cut(): void {
    this.mode = "cut";
    for (const [client, upstream] of this.pairs) {
      client.resetAndDestroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  /** Port new connections are forwarded to. */
  get targetPort(): number {
    return this.target;
  }

  /** Forwards new connections to `127.0.0.1:targetPort` from now on; open ones keep their upstream. */
  retarget(targetPort: number): void {
    this.target = targetPort;
  }

  /** Keeps connections open but stops forwarding bytes, in both directions. */
  blackhole(): void {
    this.mode = "blackhole";
  }

  /** Forwards normally again (black-holed connections stay dead). */
  restore(): void {
    this.mode = "forward";
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(client: Socket): void {
    this.accepted += 1;
    if (this.mode === "cut") {
      client.resetAndDestroy();
      return;
    }
    const upstream = connect(this.target, "127.0.0.1");
    const pair: [Socket, Socket] = [client, upstream];
    this.pairs.add(pair);
    let dead = this.mode === "blackhole";
    const forward = (from: Socket, to: Socket) => {
      from.on("data", (chunk) => {
        if (this.mode === "blackhole") dead = true;
        if (!dead) to.write(chunk);
      });
    };
    forward(client, upstream);
    forward(upstream, client);
    const teardown = () => {
      this.pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("close", teardown);
    upstream.on("close", teardown);
    client.on("error", teardown);
    upstream.on("error", teardown);
  }
}
