/**
 * Where the dashboard finds the hub, first match wins:
 * 1. the `?hub=` query parameter, e.g. `?hub=http://127.0.0.1:8080`;
 * 2. `VITE_HUB_URL` at build time;
 * 3. the page's own origin (the Vite dev server proxies `/ws` and `/api` to the hub).
 */
export function resolveHubUrl(search: string, envUrl: string | undefined, origin: string): string {
  const fromQuery = new URLSearchParams(search).get("hub");
  if (fromQuery) return fromQuery;
  if (envUrl) return envUrl;
  return origin;
}

export const HUB_URL = resolveHubUrl(
  window.location.search,
  import.meta.env.VITE_HUB_URL as string | undefined,
  window.location.origin,
);

/** `?transport=websocket|sse` forces one transport (e.g. to try the SSE fallback by hand); else `auto`. */
export function resolveTransport(search: string): "auto" | "websocket" | "sse" {
  const value = new URLSearchParams(search).get("transport");
  return value === "websocket" || value === "sse" ? value : "auto";
}

export const TRANSPORT = resolveTransport(window.location.search);
