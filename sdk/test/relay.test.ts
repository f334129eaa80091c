import assert from "node:assert/strict";
import { test } from "node:test";

import { relayFrom } from "../src/console/relay.ts";

const PAGE = { origin: "https://console.bank.example", protocol: "https:", host: "console.bank.example" };

test("without the meta tag the console talks to its own origin", () => {
  assert.deepEqual(relayFrom(null, PAGE), {
    base: "", credentials: "same-origin", socket: "wss://console.bank.example/ws/agent",
  });
  assert.deepEqual(relayFrom(null, { origin: "http://127.0.0.1:8000", protocol: "http:", host: "127.0.0.1:8000" }), {
    base: "", credentials: "same-origin", socket: "ws://127.0.0.1:8000/ws/agent",
  });
});

test("a relay on another origin gets absolute URLs and credentialed fetches", () => {
  assert.deepEqual(relayFrom("https://tandem.bank.example", PAGE), {
    base: "https://tandem.bank.example", credentials: "include", socket: "wss://tandem.bank.example/ws/agent",
  });
  assert.deepEqual(relayFrom("http://127.0.0.1:9000/", PAGE), {
    base: "http://127.0.0.1:9000", credentials: "include", socket: "ws://127.0.0.1:9000/ws/agent",
  });
});

test("a relay naming the page's own origin is the same origin", () => {
  assert.equal(relayFrom("https://console.bank.example", PAGE).credentials, "same-origin");
});

test("a relay that is not an origin is refused", () => {
  for (const bad of ["tandem.bank.example", "https://tandem.bank.example/api", "ftp://x.example", "https://t.example/?a"]) {
    assert.throws(() => relayFrom(bad, PAGE), /tandem-relay/, bad);
  }
});
