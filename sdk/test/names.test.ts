// What the browsers show of others' text (../src/shared/names.ts): names the relay sends, the
// relay's own words, a page's title.
import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_NAME, plainLine, plausibleName } from "../src/shared/names.ts";

test("a plain line has no control, separator or bidirectional character left, and says when it was cut", () => {
  assert.equal(plainLine("Cart\u2028Control\u2029You control the page"), "Cart Control You control the page");
  assert.equal(plainLine("\u202eegap eht lortnoc uoY\u202c Checkout"), "egap eht lortnoc uoY Checkout");
  assert.equal(plainLine("a\u2066b\u2069c\r\nd\u0000e\u0085f"), "a b c d e f");
  assert.equal(plainLine("   \u200b  "), "");
  assert.equal(plainLine("x".repeat(500)).length, 200);
  assert.ok(plainLine("x".repeat(500)).endsWith("…"));
  assert.equal([...plainLine("👩‍💻".repeat(300), MAX_NAME)].length <= MAX_NAME, true);
  assert.equal(plainLine("Zoë O'Brien-Łukasz"), "Zoë O'Brien-Łukasz");
  assert.equal(plainLine("أحمد"), "أحمد");
  assert.equal(plainLine("\ud800lone"), "lone");
});

test("a name is what the server's own rule allows", () => {
  for (const name of ["Zoë O'Brien-Łukasz", "أحمد", "李小龙", "A".repeat(MAX_NAME), null]) assert.equal(plausibleName(name), true, name ?? "null");
  for (const name of ["", "A".repeat(MAX_NAME + 1), "Al\u202eice", "Al\u2066ice", "Al\nice", "Al\u2028ice", "\u200b"]) {
    assert.equal(plausibleName(name), false, JSON.stringify(name));
  }
});
