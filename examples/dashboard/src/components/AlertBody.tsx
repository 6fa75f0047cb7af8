import type { ReactNode } from "react";
import type { AnyEventOf } from "@realtime-hub/client";
import { summarize, type Feeds } from "../feeds.ts";

/** An alert with its severity as text and colour. */
export function AlertBody({ event }: { event: AnyEventOf<Feeds> }): ReactNode {
  const data = event.data as Feeds["alert_raised"];
  const severity = typeof data.severity === "string" ? data.severity : "info";
  return (
    <>
      <span className={`severity severity--${severity}`}>{severity}</span> {summarize(data)}
    </>
  );
}
