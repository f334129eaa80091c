// The server's practice page (src/tandem/server/static/practice/customer.js) is plain JavaScript
// beside the SDK: it clears the session the SDK saved in this tab before a new practice starts.
// It names the SDK's storage key itself, so the two drifting apart would let a new practice try
// to resume the last one (and fail) with no test noticing.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { browserStore } from "../src/share/ports.ts";

const PRACTICE_PAGE = new URL("../../src/tandem/server/static/practice/customer.js", import.meta.url);

test("the practice page clears the very key the SDK saves its session under", () => {
  const written = new Map<string, string>();
  const store = {
    getItem: (key: string) => written.get(key) ?? null,
    setItem: (key: string, value: string) => void written.set(key, value),
    removeItem: (key: string) => void written.delete(key),
  };
  const had = Object.getOwnPropertyDescriptor(globalThis, "sessionStorage");
  Object.defineProperty(globalThis, "sessionStorage", { value: store, configurable: true });
  try {
    browserStore.save({ sessionId: "s1", resumeToken: "t", routing: "1", secret: null, agent: null, epoch: 0, sitePolicy: null });
  } finally {
    if (had) Object.defineProperty(globalThis, "sessionStorage", had);
    else Reflect.deleteProperty(globalThis, "sessionStorage");
  }
  const keys = [...written.keys()];
  assert.equal(keys.length, 1);
  const page = readFileSync(PRACTICE_PAGE, "utf8");
  const named = /const SDK_SESSION_KEY = "([^"]+)";/.exec(page)?.[1];
  assert.equal(named, keys[0]);
  assert.match(page, /sessionStorage\.removeItem\(SDK_SESSION_KEY\)/);
});
