import type { ReactNode } from "react";
import type { TransportName } from "../options.js";
import type { ConnectionState } from "../state.js";
import { useConnectionState, useTransport } from "./hooks.js";

/** Visible labels per state; override to translate. */
export const DEFAULT_CONNECTION_LABELS: Readonly<Record<ConnectionState, string>> = {
  connecting: "Connecting…",
  open: "Live",
  reconnecting: "Reconnecting…",
  closed: "Offline",
};

/** Visible names of the transports; override to translate. */
export const DEFAULT_TRANSPORT_LABELS: Readonly<Record<TransportName, string>> = {
  websocket: "WebSocket",
  sse: "SSE",
};

/** Colour theme of the components: follow the system (`auto`), or force one. */
export type Theme = "auto" | "light" | "dark";

/** Props of {@link ConnectionStatus}. */
export interface ConnectionStatusProps {
  /** Replace some or all labels. */
  labels?: Partial<Record<ConnectionState, string>>;
  /** Replace the transport names. */
  transportLabels?: Partial<Record<TransportName, string>>;
  /** Show the transport in use (`WebSocket`, `SSE`) beside the state. Default true. */
  showTransport?: boolean;
  theme?: Theme;
  className?: string;
}

/**
 * A badge with the client's connection state. It is a polite live region, so
 * screen readers announce changes; the state is in the text, not only the colour.
 * `data-state` carries the raw state for styling and tests, `data-transport`
 * the transport in use (`websocket`, `sse`, or `none` without a session).
 */
export function ConnectionStatus({
  labels,
  transportLabels,
  showTransport = true,
  theme = "auto",
  className,
}: ConnectionStatusProps): ReactNode {
  const state = useConnectionState();
  const transport = useTransport();
  const label = labels?.[state] ?? DEFAULT_CONNECTION_LABELS[state];
  const via = transport && showTransport ? (transportLabels?.[transport] ?? DEFAULT_TRANSPORT_LABELS[transport]) : null;
  return (
    <span
      className={classNames("rh-root rh-badge", `rh-badge--${state}`, className)}
      data-state={state}
      data-transport={transport ?? "none"}
      data-rh-theme={theme}
      role="status"
      aria-live="polite"
      aria-label={via ? `Connection: ${label} (${via})` : `Connection: ${label}`}
    >
      <span className="rh-dot" aria-hidden="true" />
      <span className="rh-badge__label">{label}</span>
      {via ? <span className="rh-badge__transport">{via}</span> : null}
    </span>
  );
}

/** Joins class names, skipping empty ones. */
export function classNames(...names: (string | false | null | undefined)[]): string {
  return names.filter(Boolean).join(" ");
}
