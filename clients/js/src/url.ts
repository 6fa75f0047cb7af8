/** Derives the WebSocket and HTTP addresses of a hub from one base URL. */

/** The two addresses a client needs. */
export interface HubUrls {
  /** Base of the HTTP API, without a trailing slash, e.g. `http://localhost:8080`. */
  httpBase: string;
  /** The multi-room WebSocket endpoint, e.g. `ws://localhost:8080/ws`. */
  wsUrl: string;
}

/**
 * Resolves `url` (http, https, ws or wss; a path prefix is kept, for hubs behind a
 * reverse proxy) into the HTTP base and the WebSocket endpoint at `wsPath`.
 *
 * A relative or missing `url` is resolved against `location` when running in a
 * browser; elsewhere it is an error.
 */
export function resolveHubUrls(url: string | undefined, wsPath = "/ws"): HubUrls {
  const base = globalLocationHref();
  let parsed: URL;
  try {
    parsed = base === undefined ? new URL(url ?? "") : new URL(url ?? "/", base);
  } catch {
    throw new TypeError(
      url === undefined
        ? "HubClient needs a `url` outside the browser (e.g. http://localhost:8080)"
        : `invalid hub url: ${url}`,
    );
  }
  const secure = parsed.protocol === "https:" || parsed.protocol === "wss:";
  if (!["http:", "https:", "ws:", "wss:"].includes(parsed.protocol)) {
    throw new TypeError(`hub url must use http, https, ws or wss: ${url}`);
  }
  const prefix = parsed.pathname.replace(/\/+$/, "");
  const path = wsPath.startsWith("/") ? wsPath : `/${wsPath}`;
  return {
    httpBase: `${secure ? "https" : "http"}://${parsed.host}${prefix}`,
    wsUrl: `${secure ? "wss" : "ws"}://${parsed.host}${prefix}${path}`,
  };
}

function globalLocationHref(): string | undefined {
  const location = (globalThis as { location?: { href?: unknown } }).location;
  return typeof location?.href === "string" ? location.href : undefined;
}
