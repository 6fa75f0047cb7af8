import type { ReactNode } from "react";
import { ConnectionStatus, SocketStatusIndicator, useConnectionState } from "@realtime-hub/client/react";
import { AlertBody } from "./components/AlertBody.tsx";
import { Feed } from "./components/Feed.tsx";
import { Recommendations } from "./components/Recommendations.tsx";
import { ROOMS } from "./feeds.ts";

const BANNER: Record<string, string> = {
  connecting: "Connecting to the hub…",
  reconnecting: "Connection lost. Reconnecting; feeds show the last known events and will catch up.",
  closed: "Disconnected from the hub.",
};

/** The dashboard: connection badge and hub status in the header, three live feeds below. */
export function App({ hubUrl }: { hubUrl: string }): ReactNode {
  const state = useConnectionState();
  return (
    <div className="app">
      <header className="app__header">
        <h1>realtime-hub</h1>
        <div className="app__indicators">
          <SocketStatusIndicator variant="compact" />
          <ConnectionStatus />
        </div>
      </header>
      {state !== "open" ? (
        <div className="banner" data-state={state} role="status">
          {BANNER[state]}
        </div>
      ) : null}
      <main className="grid">
        <Feed room={ROOMS.hotspots} title="Hotspots" />
        <Feed room={ROOMS.alerts} title="Alerts" renderEvent={(event) => <AlertBody event={event} />} />
        <Recommendations />
      </main>
      <aside className="app__details">
        <SocketStatusIndicator variant="details" />
      </aside>
      <footer className="app__footer">
        Hub: <code>{hubUrl}</code>
      </footer>
    </div>
  );
}
