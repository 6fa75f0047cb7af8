import type { ReactNode } from "react";
import type { RoomState } from "@realtime-hub/client/react";

const REASONS = {
  epoch_changed: "the hub restarted and its history changed",
  history_gap: "some events were no longer in the hub's history",
} as const;

/** Tells the user a feed was rebuilt from history instead of resumed. */
export function ResyncNotice({ resync }: { resync: RoomState["lastResync"] }): ReactNode {
  if (!resync) return null;
  return (
    <p className="feed__notice" role="note" data-resync={resync.reason} data-source={resync.source}>
      Reloaded {resync.count} event{resync.count === 1 ? "" : "s"} from {resync.source === "history" ? "history" : "the live snapshot"}:{" "}
      {REASONS[resync.reason]}.
    </p>
  );
}
