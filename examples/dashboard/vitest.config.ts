import { defineConfig } from "vitest/config";

// The end-to-end test drives a built dashboard in headless Chromium; it does not
// need Vite's React pipeline, only Node.
export default defineConfig({
  test: {
    include: ["e2e/**/*.e2e.test.ts"],
    environment: "node",
    testTimeout: 120_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
