import type { ReactNode } from "react";
import type { ConnectionState } from "../state.js";
import { useConnectionState } from "./hooks.js";

/** Visible labels per state; override to translate. */
export const DEFAULT_CONNECTION_LABELS: Readonly<Record<ConnectionState, string>> = {
  connecting: "Connecting…",
  open: "Live",
  reconnecting: "Reconnecting…",
  closed: "Offline",
};

/** Colour theme of the components: follow the system (`auto`), or force one. */
export type Theme = "auto" | "light" | "dark";

/** Props of {@link ConnectionStatus}. */
export interface ConnectionStatusProps {
  /** Replace some or all labels. */
  labels?: Partial<Record<ConnectionState, string>>;
  theme?: Theme;
  className?: string;
}

/**
 * A badge with the client's connection state. It is a polite live region, so
 * screen readers announce changes; the state is in the text, not only the colour.
 * `data-state` carries the raw state for styling and tests.
 */
export function ConnectionStatus({ labels, theme = "auto", className }: ConnectionStatusProps): ReactNode {
  const state = useConnectionState();
  const label = labels?.[state] ?? DEFAULT_CONNECTION_LABELS[state];
  return (
    <span
      className={classNames("rh-root rh-badge", `rh-badge--${state}`, className)}
      data-state={state}
      data-rh-theme={theme}
      role="status"
      aria-live="polite"
      aria-label={`Connection: ${label}`}
    >
      <span className="rh-dot" aria-hidden="true" />
      <span className="rh-badge__label">{label}</span>
    </span>
  );
}

/** Joins class names, skipping empty ones. */
export function classNames(...names: (string | false | null | undefined)[]): string {
  return names.filter(Boolean).join(" ");
}
