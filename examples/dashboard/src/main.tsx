import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { HubProvider } from "@realtime-hub/client/react";
import "@realtime-hub/client/styles.css";
import { App } from "./App.tsx";
import { HUB_URL, TRANSPORT } from "./config.ts";
import "./app.css";

const root = document.getElementById("root");
if (!root) throw new Error("#root missing from index.html");

createRoot(root).render(
  <StrictMode>
    <HubProvider options={{ url: HUB_URL, transport: TRANSPORT }}>
      <App hubUrl={HUB_URL} />
    </HubProvider>
  </StrictMode>,
);
