import { readFileSync } from "node:fs";

import { describe, expect, it } from "vitest";

import { CloseCode } from "../src/index.js";

/** The hub's own definitions of the wire contract, read so the two sides cannot drift apart. */
const hubProtocol = readFileSync(new URL("../../../src/protocol.rs", import.meta.url), "utf8");

/** The arms `Enum::Name => value` of the Rust function `fn name`, as [Name, value] pairs. */
function rustArms(fn: string, enumName: string): [string, string][] {
  const body = new RegExp(`fn ${fn}\\(self\\)[^{]*\\{([\\s\\S]*?)\\n    \\}`).exec(hubProtocol)?.[1] ?? "";
  return [...body.matchAll(new RegExp(`${enumName}::(\\w+) => ([^,\\n]+),`, "g"))].map((m) => [m[1]!, m[2]!]);
}

describe("close codes", () => {
  it("has every close code the hub sends, under the hub's name", () => {
    const hub = rustArms("code", "CloseCode");
    expect(hub.length).toBeGreaterThanOrEqual(10);
    for (const [name, code] of hub) expect([name, CloseCode[name as keyof typeof CloseCode]]).toEqual([name, Number(code)]);
  });

  it("adds only the code the WebSocket API reports for a lost connection", () => {
    const hub = new Set(rustArms("code", "CloseCode").map(([name]) => name));
    expect(Object.keys(CloseCode).filter((name) => !hub.has(name))).toEqual(["Abnormal"]);
  });
});
