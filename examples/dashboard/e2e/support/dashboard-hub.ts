/**
 * The hub the dashboard's end-to-end tests run: the real binary with the
 * dashboard's own configuration, `examples/dashboard/hub.toml` (the three feeds,
 * `recommendations` keyed), plus the test's `HUB_*` variables on top.
 *
 * A keyed flag for one room can only be set in a TOML file (`HUB_ROOMS__KEYED`
 * would make every room keyed, and the feeds are not), and `HubProcess` from the
 * client's test support runs `$HUB_BIN` with no arguments. So `$HUB_BIN` points,
 * for the duration of a start, at a two-line script that execs the real binary
 * with `--config hub.toml` (exec: the hub is the child, SIGTERM and SIGKILL reach
 * it directly).
 */

import { chmodSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { HubProcess, hubBinary, type HubStartOptions } from "../../../../clients/js/test/support/hub.ts";

export const HUB_CONFIG = resolve(dirname(fileURLToPath(import.meta.url)), "../../hub.toml");

let wrapper: string | undefined;

const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

function wrapperScript(): string {
  if (wrapper === undefined) {
    const path = join(mkdtempSync(join(tmpdir(), "rh-e2e-hub-")), "realtime-hub");
    writeFileSync(path, `#!/bin/sh\nexec ${quote(hubBinary())} --config ${quote(HUB_CONFIG)} "$@"\n`);
    chmodSync(path, 0o755);
    wrapper = path;
  }
  return wrapper;
}

/** `HubProcess.start(options)` with the dashboard's hub.toml. */
export async function startDashboardHub(options: HubStartOptions = {}): Promise<HubProcess> {
  const script = wrapperScript();
  const previous = process.env.HUB_BIN;
  process.env.HUB_BIN = script;
  try {
    return await HubProcess.start(options);
  } finally {
    if (previous === undefined) delete process.env.HUB_BIN;
    else process.env.HUB_BIN = previous;
  }
}
