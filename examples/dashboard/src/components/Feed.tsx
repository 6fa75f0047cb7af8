import type { ReactNode } from "react";
import { useRoom } from "@realtime-hub/client/react";
import type { AnyEventOf } from "@realtime-hub/client";
import { summarize, timeOf, type Feeds } from "../feeds.ts";
import { ResyncNotice } from "./ResyncNotice.tsx";

export interface FeedProps {
  room: string;
  title: string;
  /** Optional custom rendering of one event's body. */
  renderEvent?: (event: AnyEventOf<Feeds>) => ReactNode;
}

/** A live list of a room's latest events, newest first. */
export function Feed({ room, title, renderEvent }: FeedProps): ReactNode {
  const { events, lastResync, error } = useRoom<Feeds>(room, { limit: 50 });
  const titleId = `feed-${room}-title`;
  return (
    <section className="feed" aria-labelledby={titleId} data-room={room}>
      <header className="feed__header">
        <h2 id={titleId}>{title}</h2>
        <span className="feed__count">
          {events.length}
          <span className="sr-only"> events</span>
        </span>
      </header>
      <ResyncNotice resync={lastResync} />
      {error ? (
        <p className="feed__error" role="alert">
          Cannot subscribe to {room}: {error.message}
        </p>
      ) : null}
      {events.length === 0 ? (
        <p className="feed__empty">No events yet.</p>
      ) : (
        <ol className="feed__list">
          {[...events].reverse().map((event) => (
            <li key={event.seq ?? event.ts} className="feed__item" data-seq={event.seq} data-type={event.type}>
              <span className="feed__seq">#{event.seq}</span>
              <span className="feed__body">{renderEvent ? renderEvent(event) : summarize(event.data)}</span>
              <time className="feed__time" dateTime={event.ts}>
                {timeOf(event.ts)}
              </time>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
