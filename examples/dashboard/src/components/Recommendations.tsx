import { useMemo, useState, type ReactNode } from "react";
import { useHubClient, useRoomState, type KeyedRoomStatus } from "@realtime-hub/client/react";
import type { AnyEventOf } from "@realtime-hub/client";
import { ROOMS, type Decision, type Feeds } from "../feeds.ts";

interface Recommendation {
  id: string;
  title: string;
  detail?: string;
  /** `open`, `approved`, `rejected` (or whatever a publisher sent). */
  status: string;
  /** Seq of the latest event about it. */
  seq: number;
}

/**
 * One recommendation from the latest event of its key: the record is the event's
 * data; a `recommendation_created` without a status is `open`.
 */
export function toRecommendation(id: string, event: AnyEventOf<Feeds>): Recommendation {
  const d = (event.data ?? {}) as Record<string, unknown>;
  const text = (v: unknown) => (typeof v === "string" && v !== "" ? v : undefined);
  const status = text(d.status) ?? (event.type === "recommendation_created" ? "open" : "unknown");
  return { id, title: text(d.title) ?? id, detail: text(d.detail), status, seq: event.seq ?? 0 };
}

/** The live keys, newest change first (the map is in seq order). */
export function recommendationsOf(entries: ReadonlyMap<string, AnyEventOf<Feeds>>): Recommendation[] {
  return [...entries].map(([id, event]) => toRecommendation(id, event)).reverse();
}

const STALE_NOTE: Partial<Record<KeyedRoomStatus, string>> = {
  stale: "Not connected: showing the last known recommendations; they will be brought up to date.",
};

/**
 * Recommendations with approve/reject, from the keyed `recommendations` room
 * (PROTOCOL section 11): `useRoomState` holds the latest event of each
 * recommendation id — created, then updated, removed by a delete — and replaces
 * it with the hub's state after a reconnect or a restart, so the panel shows
 * exactly the live recommendations with their current status.
 *
 * A decision is published as a `recommendation_updated` event with the same key
 * over the hub's HTTP API; every open dashboard (this one included) then sees it
 * arrive on the socket. Demo only: the hub accepts HTTP publishes from loopback or
 * with an API key. A real deployment sends the decision to its own backend, which
 * publishes.
 */
export function Recommendations(): ReactNode {
  const client = useHubClient<Feeds>();
  const { entries, status, error } = useRoomState<Feeds>(ROOMS.recommendations);
  const items = useMemo(() => recommendationsOf(entries), [entries]);
  const [pending, setPending] = useState<ReadonlySet<string>>(new Set());
  const [failure, setFailure] = useState<string | null>(null);

  async function decide(r: Recommendation, decision: Decision) {
    setPending((p) => new Set(p).add(r.id));
    setFailure(null);
    try {
      // The whole record: the room keeps only this latest event of the key.
      const data = { id: r.id, title: r.title, ...(r.detail ? { detail: r.detail } : {}), status: decision };
      await client.api.publish(ROOMS.recommendations, "recommendation_updated", data, { key: r.id });
    } catch (e) {
      setFailure(`Could not ${decision === "approved" ? "approve" : "reject"} ${r.id}: ${(e as Error).message}`);
    } finally {
      setPending((p) => {
        const next = new Set(p);
        next.delete(r.id);
        return next;
      });
    }
  }

  const note = STALE_NOTE[status];
  return (
    <section
      className="feed"
      aria-labelledby="feed-recommendations-title"
      aria-busy={status === "loading"}
      data-room={ROOMS.recommendations}
      data-state={status}
    >
      <header className="feed__header">
        <h2 id="feed-recommendations-title">Recommendations</h2>
        <span className="feed__count">
          {items.length}
          <span className="sr-only"> recommendations</span>
        </span>
      </header>
      {note ? (
        <p className="feed__notice" role="note">
          {note}
        </p>
      ) : null}
      {error ? (
        <p className="feed__error" role="alert">
          Cannot subscribe to recommendations: {error.message}
        </p>
      ) : null}
      {failure ? (
        <p className="feed__error" role="alert">
          {failure}
        </p>
      ) : null}
      {status === "loading" ? (
        <p className="feed__empty">Loading recommendations…</p>
      ) : items.length === 0 ? (
        <p className="feed__empty">No recommendations.</p>
      ) : (
        <ul className="feed__list">
          {items.map((r) => (
            <li key={r.id} className="feed__item recommendation" data-id={r.id} data-status={r.status}>
              <div className="recommendation__text">
                <strong>{r.title}</strong>
                {r.detail ? <span className="recommendation__detail">{r.detail}</span> : null}
              </div>
              {r.status === "open" ? (
                <div className="recommendation__actions" role="group" aria-label={`Decide on ${r.title}`}>
                  <button type="button" disabled={pending.has(r.id)} onClick={() => void decide(r, "approved")}>
                    Approve
                  </button>
                  <button
                    type="button"
                    className="secondary"
                    disabled={pending.has(r.id)}
                    onClick={() => void decide(r, "rejected")}
                  >
                    Reject
                  </button>
                </div>
              ) : (
                <span className={`decision decision--${r.status}`}>{r.status}</span>
              )}
            </li>
          ))}
        </ul>
      )}
    </section>
  );
}
