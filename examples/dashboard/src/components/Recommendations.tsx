import { useMemo, useState, type ReactNode } from "react";
import { useHubClient, useRoom } from "@realtime-hub/client/react";
import type { AnyEventOf } from "@realtime-hub/client";
import { ROOMS, type Decision, type Feeds } from "../feeds.ts";
import { ResyncNotice } from "./ResyncNotice.tsx";

interface Recommendation {
  id: string;
  title: string;
  detail?: string;
  status: string;
  /** Seq of the latest event about it, for ordering. */
  seq: number;
}

/** Folds the room's events into the current state of each recommendation, newest first. */
export function foldRecommendations(events: readonly AnyEventOf<Feeds>[]): Recommendation[] {
  const byId = new Map<string, Recommendation>();
  for (const event of events) {
    if (event.type === "recommendation_created") {
      const d = event.data as Feeds["recommendation_created"];
      byId.set(d.id, { id: d.id, title: d.title ?? d.id, detail: d.detail, status: "pending", seq: event.seq ?? 0 });
    } else if (event.type === "recommendation_updated") {
      const d = event.data as Feeds["recommendation_updated"];
      const known = byId.get(d.id);
      byId.set(d.id, { ...(known ?? { id: d.id, title: d.id }), status: d.status, seq: event.seq ?? 0 });
    }
  }
  return [...byId.values()].sort((a, b) => b.seq - a.seq);
}

/**
 * Recommendations with approve/reject. A decision is published as a
 * `recommendation_updated` event over the hub's HTTP API; every open dashboard
 * (this one included) then sees it arrive on the socket.
 *
 * Demo only: the hub accepts HTTP publishes from loopback or with an API key. A
 * real deployment sends the decision to its own backend, which publishes.
 */
export function Recommendations(): ReactNode {
  const client = useHubClient<Feeds>();
  const { events, lastResync, error } = useRoom<Feeds>(ROOMS.recommendations, { limit: 200 });
  const items = useMemo(() => foldRecommendations(events), [events]);
  const [pending, setPending] = useState<ReadonlySet<string>>(new Set());
  const [failure, setFailure] = useState<string | null>(null);

  async function decide(id: string, status: Decision) {
    setPending((p) => new Set(p).add(id));
    setFailure(null);
    try {
      await client.api.publish(ROOMS.recommendations, "recommendation_updated", { id, status });
    } catch (e) {
      setFailure(`Could not ${status === "approved" ? "approve" : "reject"} ${id}: ${(e as Error).message}`);
    } finally {
      setPending((p) => {
        const next = new Set(p);
        next.delete(id);
        return next;
      });
    }
  }

  return (
    <section className="feed" aria-labelledby="feed-recommendations-title" data-room={ROOMS.recommendations}>
      <header className="feed__header">
        <h2 id="feed-recommendations-title">Recommendations</h2>
        <span className="feed__count">
          {items.length}
          <span className="sr-only"> recommendations</span>
        </span>
      </header>
      <ResyncNotice resync={lastResync} />
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
      {items.length === 0 ? (
        <p className="feed__empty">No recommendations yet.</p>
      ) : (
        <ul className="feed__list">
          {items.map((r) => (
            <li key={r.id} className="feed__item recommendation" data-id={r.id} data-status={r.status}>
              <div className="recommendation__text">
                <strong>{r.title}</strong>
                {r.detail ? <span className="recommendation__detail">{r.detail}</span> : null}
              </div>
              {r.status === "pending" ? (
                <div className="recommendation__actions" role="group" aria-label={`Decide on ${r.title}`}>
                  <button type="button" disabled={pending.has(r.id)} onClick={() => void decide(r.id, "approved")}>
                    Approve
                  </button>
                  <button
                    type="button"
                    className="secondary"
                    disabled={pending.has(r.id)}
                    onClick={() => void decide(r.id, "rejected")}
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
