import type { ReactNode } from "react";
import type { SocketStatus } from "../protocol.js";
import { classNames, type Theme } from "./ConnectionStatus.js";
import { useSocketStatus } from "./hooks.js";

/** How much the indicator shows. */
export type SocketStatusVariant = "compact" | "full" | "details";

/** Props of {@link SocketStatusIndicator}. */
export interface SocketStatusIndicatorProps {
  /** `compact`: dot and socket count; `full`: one line summary; `details`: summary plus tables. Default `compact`. */
  variant?: SocketStatusVariant;
  theme?: Theme;
  className?: string;
}

/** Overall health shown by the indicator. */
export type Health = "ok" | "draining" | "unknown";

/** Health of a status report: `unknown` when there is none or it is not live. */
export function healthOf(status: SocketStatus | null, live: boolean): Health {
  if (!status || !live) return "unknown";
  return status.active ? "ok" : "draining";
}

const HEALTH_TEXT: Readonly<Record<Health, string>> = {
  ok: "Hub active",
  draining: "Hub draining",
  unknown: "Hub status unknown",
};

/**
 * The hub's socket status, live from the `$status` room (no polling). `data-health`
 * carries `ok | draining | unknown` for styling and tests.
 */
export function SocketStatusIndicator({
  variant = "compact",
  theme = "auto",
  className,
}: SocketStatusIndicatorProps): ReactNode {
  const { status, live } = useSocketStatus();
  const health = healthOf(status, live);
  const sockets = status?.total_sockets;
  const roomCount = status ? Object.keys(status.rooms).length : undefined;
  const counts = status ? `${plural(status.total_sockets, "socket")}, ${plural(roomCount ?? 0, "room")}` : "";
  const summary = !status ? HEALTH_TEXT.unknown : live ? `${HEALTH_TEXT[health]}: ${counts}` : `Last known: ${counts}`;
  const common = {
    "data-health": health,
    "data-rh-theme": theme,
    "data-variant": variant,
  };

  if (variant === "compact") {
    return (
      <span
        className={classNames("rh-root rh-status rh-status--compact", className)}
        role="status"
        aria-label={summary}
        title={summary}
        {...common}
      >
        <span className="rh-dot" aria-hidden="true" />
        <span className="rh-status__count">{sockets ?? "–"}</span>
      </span>
    );
  }

  const line = (
    <span className="rh-status__line">
      <span className="rh-dot" aria-hidden="true" />
      <span className={live ? "rh-status__summary" : "rh-status__summary rh-status__summary--stale"}>{summary}</span>
    </span>
  );

  if (variant === "full" || !status) {
    return (
      <div className={classNames("rh-root rh-status rh-status--full", className)} role="status" {...common}>
        {line}
      </div>
    );
  }

  return (
    <section
      className={classNames("rh-root rh-status rh-status--details", className)}
      aria-label="Hub socket status"
      {...common}
    >
      <div role="status">{line}</div>
      <div className="rh-status__grid">
        <dl className="rh-status__meta">
          <dt>Node</dt>
          <dd>{status.node}</dd>
          <dt>Uptime</dt>
          <dd>{formatDuration(status.uptime_s)}</dd>
          <dt>Updated</dt>
          <dd>
            <time dateTime={status.timestamp}>{status.timestamp}</time>
          </dd>
        </dl>
        <CountTable caption="Sockets by type" keyHeader="Type" valueHeader="Sockets" counts={status.sockets_by_type} />
        <CountTable caption="Subscribers by room" keyHeader="Room" valueHeader="Subscribers" counts={status.rooms} />
      </div>
    </section>
  );
}

function CountTable(props: {
  caption: string;
  keyHeader: string;
  valueHeader: string;
  counts: Record<string, number>;
}): ReactNode {
  const rows = Object.entries(props.counts).sort(([a], [b]) => a.localeCompare(b));
  return (
    <table className="rh-table">
      <caption>{props.caption}</caption>
      <thead>
        <tr>
          <th scope="col">{props.keyHeader}</th>
          <th scope="col">{props.valueHeader}</th>
        </tr>
      </thead>
      <tbody>
        {rows.length === 0 ? (
          <tr>
            <td colSpan={2}>none</td>
          </tr>
        ) : (
          rows.map(([key, value]) => (
            <tr key={key}>
              <th scope="row">{key}</th>
              <td>{value}</td>
            </tr>
          ))
        )}
      </tbody>
    </table>
  );
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** `3725` -> `1h 2m 5s`. */
export function formatDuration(totalSeconds: number): string {
  const s = Math.max(0, Math.floor(totalSeconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const parts = [h > 0 ? `${h}h` : "", h > 0 || m > 0 ? `${m}m` : "", `${s % 60}s`];
  return parts.filter(Boolean).join(" ");
}
