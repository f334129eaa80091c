// What rrweb records beside the page's nodes about hidden content (src/share/hidden-events.ts):
// the filter by itself, with a mirror of made-up nodes (the browser tests run it on real pages:
// tests/e2e/test_hidden_events.py).
import assert from "node:assert/strict";
import { test } from "node:test";
import { HiddenRegionEvents, MAX_WITHHELD_SHEET_CHANGES } from "../src/share/hidden-events.ts";

/** Ids 1-9 are shown content, 10-19 hidden; anything else is unknown to the mirror. */
const node = (id: number) => (id >= 1 && id < 20 ? { id, hidden: id >= 10 } : null);
const hidden = (n: unknown) => n === null || (n as { hidden: boolean }).hidden;
const filter = () => new HiddenRegionEvents(node, hidden);
const incremental = (data: Record<string, unknown>) => ({ type: 3, data, timestamp: 1 });

test("clicks, focus, typing, scrolling and media on hidden or unknown nodes are not told", () => {
  const f = filter();
  for (const source of [2, 3, 5, 7]) {
    assert.deepEqual(f.filter(incremental({ source, id: 11, x: 3, y: 4 })), [], `source ${source}`);
    assert.deepEqual(f.filter(incremental({ source, id: -1 })), [], `source ${source}, unknown node`);
    const shown = incremental({ source, id: 2, x: 3, y: 4 });
    assert.deepEqual(f.filter(shown), [shown], `source ${source}, shown`);
  }
  const resize = incremental({ source: 4, width: 300, height: 200 });
  assert.deepEqual(f.filter(resize), [resize], "an event that names no node goes");
});

test("a pointer's positions over hidden content are dropped, the rest of its path goes", () => {
  const f = filter();
  for (const source of [1, 6, 12]) {
    const move = incremental({ source, positions: [{ x: 1, y: 1, id: 2 }, { x: 5, y: 5, id: 12 }, { x: 6, y: 6, id: -1 }] });
    assert.deepEqual(f.filter(move), [move]);
    assert.deepEqual((move.data.positions as { id: number }[]).map((p) => p.id), [2]);
    assert.deepEqual(f.filter(incremental({ source, positions: [{ x: 5, y: 5, id: 12 }] })), []);
  }
});

test("a selection inside hidden content is not told; clearing one is", () => {
  const f = filter();
  assert.deepEqual(f.filter(incremental({ source: 14, ranges: [{ start: 12, startOffset: 0, end: 2, endOffset: 1 }] })), []);
  const cleared = incremental({ source: 14, ranges: [] });
  assert.deepEqual(f.filter(cleared), [cleared]);
  const shown = incremental({ source: 14, ranges: [{ start: 2, startOffset: 0, end: 3, endOffset: 1 }] });
  assert.deepEqual(f.filter(shown), [shown]);
});

test("rules and declarations of a hidden <style> are not told, a shown one's are", () => {
  const f = filter();
  for (const source of [8, 13]) {
    assert.deepEqual(f.filter(incremental({ source, id: 13, adds: [{ rule: 'p::after{content:"x"}', index: 0 }] })), []);
    const shown = incremental({ source, id: 3, adds: [{ rule: "p{}", index: 0 }] });
    assert.deepEqual(f.filter(shown), [shown]);
  }
});

test("removals inside hidden content are not told", () => {
  const f = filter();
  const removal = incremental({ source: 0, adds: [], texts: [], attributes: [], removes: [{ parentId: 11, id: 40 }, { parentId: 2, id: 41 }] });
  assert.deepEqual(f.filter(removal), [removal]);
  assert.deepEqual(removal.data.removes, [{ parentId: 2, id: 41 }]);
});

test("a sheet hidden content adopts is kept back, and goes with its changes once shown content adopts it", () => {
  const f = filter();
  const style = { styleId: 1, rules: [{ rule: "p{color:red}", index: 0 }] };
  assert.deepEqual(f.filter(incremental({ source: 15, id: 11, styleIds: [1], styles: [style] })), []);
  const change = { source: 8, styleId: 1, adds: [{ rule: "b{}", index: 1 }] };
  assert.deepEqual(f.filter(incremental(change)), [], "its changes are kept back too");
  const shown = incremental({ source: 15, id: 2, styleIds: [1] });
  const out = f.filter(shown);
  assert.equal(out.length, 2);
  assert.deepEqual((out[0] as typeof shown).data.styles, [style], "the adoption carries the rules");
  assert.deepEqual((out[1] as { data: unknown }).data, change, "then the change made meanwhile");
  const later = incremental({ source: 8, styleId: 1, removes: [{ index: 0 }] });
  assert.deepEqual(f.filter(later), [later], "shown now: its changes go");
});

test("a sheet whose kept-back changes overflow is never sent", () => {
  const f = filter();
  f.filter(incremental({ source: 15, id: 11, styleIds: [1], styles: [{ styleId: 1, rules: [] }] }));
  for (let i = 0; i <= MAX_WITHHELD_SHEET_CHANGES; i++) f.filter(incremental({ source: 13, styleId: 1, index: [0], set: {} }));
  const shown = incremental({ source: 15, id: 2, styleIds: [1, 2] });
  assert.deepEqual(f.filter(shown), [shown]);
  assert.deepEqual(shown.data.styleIds, [2]);
  assert.equal(shown.data.styles, undefined);
});

test("a full snapshot starts style ids afresh", () => {
  const f = filter();
  f.filter(incremental({ source: 15, id: 11, styleIds: [1], styles: [{ styleId: 1, rules: [] }] }));
  f.filter({ type: 2, data: { node: {} }, timestamp: 2 });
  const change = incremental({ source: 8, styleId: 1, adds: [] });
  assert.deepEqual(f.filter(change), [change]);
});
