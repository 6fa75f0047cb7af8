import react from "@vitejs/plugin-react";
import { fileURLToPath } from "node:url";
import { defineConfig, searchForWorkspaceRoot } from "vite";

const clientSrc = fileURLToPath(new URL("../../clients/js/src", import.meta.url));

/** Where `npm run dev` forwards hub traffic (same-origin for the browser). */
const hubTarget = process.env.HUB_PROXY_TARGET ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  resolve: {
    // The example uses the client straight from its sources in this repository;
    // an application would `npm install @realtime-hub/client` instead.
    alias: [
      { find: /^@realtime-hub\/client\/react$/, replacement: `${clientSrc}/react/index.ts` },
      { find: /^@realtime-hub\/client\/styles\.css$/, replacement: `${clientSrc}/react/styles.css` },
      { find: /^@realtime-hub\/client$/, replacement: `${clientSrc}/index.ts` },
    ],
    // One React for the app and the client's hooks.
    dedupe: ["react", "react-dom"],
  },
  server: {
    // Allow serving the client's sources, which live outside this package.
    fs: { allow: [searchForWorkspaceRoot(process.cwd()), clientSrc] },
    proxy: {
      "/ws": { target: hubTarget, ws: true, changeOrigin: true },
      // The SSE fallback (where WebSocket does not get through).
      "/sse": { target: hubTarget, changeOrigin: true },
      "/api": { target: hubTarget, changeOrigin: true },
    },
  },
  build: {
    sourcemap: true,
  },
});
