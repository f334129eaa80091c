import assert from "node:assert/strict";
import { test } from "node:test";
import { HiddenOutlines, SEARCH_COST_FACTOR } from "../src/share/outlines.ts";

/** An element as the overlay reads it: only whether it is still in the page. */
function el(): Element & { isConnected: boolean } {
  return { isConnected: true } as Element & { isConnected: boolean };
}

test("a cheap search runs at every tick, as before", () => {
  let now = 0;
  let searches = 0;
  const a = el();
  const outlines = new HiddenOutlines(() => (searches++, now += 1, [a]), () => now);
  for (let tick = 0; tick < 5; tick++) {
    assert.deepEqual(outlines.current(), [a]);
    now += 250;
  }
  assert.equal(searches, 5);
});

test("a costly search runs again only after ten times its cost; between, found elements stay and removed ones go", () => {
  let now = 0;
  let searches = 0;
  const a = el();
  const b = el();
  let page = [a, b];
  const outlines = new HiddenOutlines(() => (searches++, now += 130, [...page]), () => now);
  assert.deepEqual(outlines.current(), [a, b]); // ends at 130: the next search from 1430
  const c = el();
  page = [a, b, c]; // a field that became hidden
  b.isConnected = false; // a field taken out of the page
  page = [a, c];
  now += 250;
  assert.deepEqual(outlines.current(), [a], "removed: its outline goes at once; the new one waits");
  assert.equal(searches, 1);
  now = 130 + SEARCH_COST_FACTOR * 130 - 1;
  outlines.current();
  assert.equal(searches, 1);
  now += 1;
  assert.deepEqual(outlines.current(), [a, c], "the new field is outlined at the next search");
  assert.equal(searches, 2);
});

test("reset makes the next call search at once", () => {
  let now = 0;
  let searches = 0;
  const outlines = new HiddenOutlines(() => (searches++, now += 500, []), () => now);
  outlines.current();
  outlines.reset();
  outlines.current();
  assert.equal(searches, 2);
});
