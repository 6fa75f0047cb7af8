import { readFileSync } from "node:fs";

import { describe, expect, it } from "vitest";

import { CloseCode, RESERVED_TYPES, STATUS_UPDATE } from "../src/index.js";
import { parseFrame, type ServerErrorCode } from "../src/protocol.js";

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

describe("reserved types", () => {
  it("are the hub's list", () => {
    // The list names the hub's string constants (`frame_type::WELCOME`, `STATUS_UPDATE`).
    const consts = new Map([...hubProtocol.matchAll(/pub const (\w+): &str = ("[a-z_$]+");/g)].map((m) => [m[1]!, JSON.parse(m[2]!) as string]));
    const list = /pub const RESERVED_TYPES: \[&str; \d+\] = \[([\s\S]*?)\];/.exec(hubProtocol)?.[1] ?? "";
    const hub = [...list.matchAll(/^\s*(?:frame_type::)?(\w+),/gm)].map((m) => consts.get(m[1]!));
    expect(hub.length).toBeGreaterThanOrEqual(11);
    expect([...RESERVED_TYPES].sort()).toEqual(hub.sort());
  });

  it("are all control frames except the $status room's event", () => {
    for (const type of RESERVED_TYPES) {
      const kind = parseFrame(JSON.stringify({ type, room: "$status", data: {} })).kind;
      expect([type, kind]).toEqual([type, type === STATUS_UPDATE ? "event" : "control"]);
    }
  });
});

describe("error codes", () => {
  it("are the hub's codes, every one", () => {
    // The compiler holds this object to exactly the ServerErrorCode union.
    const codes: Record<ServerErrorCode, true> = {
      bad_request: true,
      unknown_room: true,
      unknown_session: true,
      forbidden: true,
      forbidden_origin: true,
      unauthorized: true,
      rate_limited: true,
      too_large: true,
      publish_disabled: true,
      unavailable: true,
      over_capacity: true,
      limit_exceeded: true,
      not_found: true,
      method_not_allowed: true,
      unsupported_media_type: true,
      request_timeout: true,
      internal: true,
    };
    const hub = rustArms("as_str", "ErrorCode").map(([, code]) => JSON.parse(code) as string);
    expect(Object.keys(codes).sort()).toEqual(hub.sort());
  });
});
