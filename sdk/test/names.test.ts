// What the browsers show of others' text (../src/shared/names.ts): names the relay sends, the
// relay's own words, a page's title.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import fc from "fast-check";
import { MAX_MARKS, MAX_NAME, plainLine, plausibleName, REPLACEMENT } from "../src/shared/names.ts";

test("a plain line has no control, separator or bidirectional character left, and says when it was cut", () => {
  assert.equal(plainLine("Cart\u2028Control\u2029You control the page"), "Cart Control You control the page");
  assert.equal(plainLine("\u202eegap eht lortnoc uoY\u202c Checkout"), "\ufffdegap eht lortnoc uoY\ufffd Checkout");
  assert.equal(plainLine("a\u2066b\u2069c\r\nd\u0000e\u0085f"), "a\ufffdb\ufffdc d e f");
  assert.equal(plainLine("   \u200b  "), "\ufffd");
  assert.equal(plainLine("  \r\n \u2028 "), "");
  assert.equal(plainLine("x".repeat(500)).length, 200);
  assert.ok(plainLine("x".repeat(500)).endsWith("…"));
  assert.equal([...plainLine("👩‍💻".repeat(300), MAX_NAME)].length <= MAX_NAME, true);
  assert.equal(plainLine("Zoë O'Brien-Łukasz"), "Zoë O'Brien-Łukasz");
  assert.equal(plainLine("أحمد"), "أحمد");
  assert.equal(plainLine("\ud800lone"), "\ufffdlone");
});

test("a name is what the server's own rule allows", () => {
  for (const name of ["Zoë O'Brien-Łukasz", "أحمد", "李小龙", "A".repeat(MAX_NAME), null]) assert.equal(plausibleName(name), true, name ?? "null");
  for (const name of ["", "A".repeat(MAX_NAME + 1), "Al\u202eice", "Al\u2066ice", "Al\nice", "Al\u2028ice", "\u200b"]) {
    assert.equal(plausibleName(name), false, JSON.stringify(name));
  }
});

// Characters that draw nothing (or reorder what is around them): each made one agent's, site's or
// organisation's name look like another's in the console, the widget and the audit views.
const INVISIBLE = [
  "\u200e", "\u200f", "\u061c", "\u2066", "\u2067", "\u2068", "\u2069", "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
  "\u180e", "\u200b", "\u200c", "\u200d", "\u2060", "\u2061", "\u2062", "\u2063", "\u2064", "\ufeff",
  "\u{e0001}", "\u{e0041}", "\u{e007f}", "\u3164", "\u115f", "\u00ad",
];

test("a name with an invisible character is no name, and is shown with the character visible", () => {
  for (const c of INVISIBLE) {
    const hex = c.codePointAt(0)?.toString(16);
    assert.equal(plausibleName(`Ann${c}Smith`), false, hex);
    assert.equal(plausibleName(`Ann Smith${c}`), false, hex);
    assert.equal(plainLine(`Ann${c}Smith`, MAX_NAME), `Ann${REPLACEMENT}Smith`, hex);
    assert.equal(plainLine(`Ann Smith${c}`, MAX_NAME), `Ann Smith${REPLACEMENT}`, hex);
  }
});

test("a variation selector or mark on nothing, and marks stacked deep, are no name and are not drawn so", () => {
  for (const name of ["\ufe0fAnn", "Ann \u0301Smith", "\u{e0100}Ann"]) {
    assert.equal(plausibleName(name), false, name);
    assert.ok(plainLine(name).includes(REPLACEMENT), name);
  }
  const zalgo = `A${"\u0301\u0300\u0302".repeat(30)}`;
  assert.equal(plausibleName(zalgo), false);
  assert.equal(plausibleName(`A${"\u0301".repeat(MAX_MARKS)}`), true);
  assert.equal([...plainLine(zalgo)].length, 1 + MAX_MARKS);
  assert.equal([...plainLine(`x${"\u0301".repeat(5000)} done`)].length, 1 + MAX_MARKS + 5);
});

test("names of every script, joiners in their place, pass as they are", () => {
  for (const name of [
    "Nguy\u1ec5n V\u0103n A", "Nguye\u0302\u0303n",
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645", // Persian, a non-joiner in place
    "\u0915\u094d\u200d\u0937", // Devanagari, a joiner after a virama
    "\u{1f469}\u200d\u{1f4bb} Ada", "\u{1f469}\u{1f3fd}\u200d\u{1f4bb} Ada", "\u{1f3f3}\ufe0f\u200d\u{1f308} Ada",
  ]) {
    assert.equal(plausibleName(name), true, name);
    assert.equal(plainLine(name, MAX_NAME), name, name);
  }
});

test("the browsers' name rule is the server's (the same cases as tests/test_names.py)", () => {
  // A name plainLine makes of anything passes the rule, as tandem.names.shown_name's does.
  const samples = ["", " ", "\u200e", "a\u200d", "\u200db", "a\u200cb", "\u0301", "x\u0301\u0301\u0301\u0301\u0301", "\ud800", "\u{e0041}", "A\u2028B"];
  for (const a of samples) for (const b of samples) {
    const line = plainLine(`Ann${a}${b}Smith${a}`, MAX_NAME);
    assert.equal(plausibleName(line), true, JSON.stringify([a, b, line]));
  }
});

test("whatever the text, its plain line (short enough not to be cut) is a name the rule takes", () => {
  // The characters the rule turns on, mixed: joiners beside what the first pass replaced or
  // trimmed (a virama on nothing, a trailing space) were left out of their place.
  const parts = [..."aAé \u200c\u200d\u0301\ufe0f\u094d\u0915\u0645\u06cc\u{1f469}\u{1f3fd}\u200e\u3164\n\u2028\u00a0\u{e0041}", "\ud800", "\u0300"];
  fc.assert(fc.property(fc.array(fc.constantFrom(...parts), { maxLength: 90 }), (chosen) => {
    const line = plainLine(chosen.join(""), MAX_NAME);
    return line === "" || plausibleName(line);
  }), { numRuns: 5000 });
});

// The table tests/test_names.py reads too: names of every script a bank's agents have (they pass
// as they are), and names with each character that draws nothing (refused, and shown with a
// U+FFFD where it was), so that the browsers and the server agree.
interface NameVector { why: string; name: string; is_a_name: boolean; shown: string }
const VECTORS: NameVector[] = JSON.parse(
  readFileSync(new URL("../../tests/fixtures/name_vectors.json", import.meta.url), "utf8"),
);

test("the browsers and the server agree on the shared names", () => {
  assert.ok(VECTORS.length > 50);
  for (const { why, name, is_a_name, shown } of VECTORS) {
    assert.equal(plausibleName(name), is_a_name, why);
    assert.equal(plainLine(name, MAX_NAME), shown, why);
    assert.equal(plausibleName(shown), true, why);
  }
});
