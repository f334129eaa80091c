// The mirror holds at most MAX_MIRROR_NODES nodes of the customer's page (console/budget.ts): a
// hostile page's events may add nodes without end while its own document stays small.
import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_MIRROR_NODES, MirrorBudget, sizeOf } from "../src/console/budget.ts";

const el = (id: number, childNodes: unknown[] = []) => ({ type: 2, id, tagName: "b", attributes: {}, childNodes });
const snapshot = (node: unknown) => ({ type: 2, timestamp: 1, data: { node, initialOffset: { top: 0, left: 0 } } });
const mutation = (adds: unknown[], removes: unknown[] = []) =>
  ({ type: 3, timestamp: 1, data: { source: 0, texts: [], attributes: [], adds, removes } });
const add = (node: unknown) => ({ parentId: 1, nextId: null, node });

/** A chain of `depth` nested elements (built and counted without recursion). */
function chain(depth: number): unknown {
  let node = el(depth);
  for (let id = depth - 1; id >= 1; id--) node = el(id, [node]);
  return node;
}

test("a snapshot's and a mutation's nodes are counted at any depth", () => {
  assert.deepEqual(sizeOf(snapshot(el(1, [el(2), el(3, [el(4)])]))), { snapshot: 4 });
  assert.deepEqual(sizeOf(snapshot(chain(200_000))), { snapshot: 200_000 });
  assert.deepEqual(sizeOf(mutation([add(el(5, [el(6)])), add(el(7))], [{ parentId: 1, id: 2 }])), { added: 3, removed: 1 });
  assert.equal(sizeOf({ type: 3, timestamp: 1, data: { source: 1, positions: [] } }), null);
  assert.equal(sizeOf(null), null);
});

test("mutations past the bound are refused; a snapshot that fits starts afresh", () => {
  const budget = new MirrorBudget(() => 0, 10);
  assert.ok(budget.admit(snapshot(el(1, [el(2), el(3)]))));
  const many = (from: number, count: number) => Array.from({ length: count }, (_, i) => add(el(from + i)));
  assert.ok(budget.admit(mutation(many(10, 7)))); // 3 + 7 = 10
  // The replayer holds what the events said: the count passes the bound with the next node.
  const full = new MirrorBudget(() => 10, 10);
  full.admit(snapshot(el(1, [el(2), el(3)])));
  full.admit(mutation(many(10, 7)));
  assert.equal(full.admit(mutation(many(20, 1))), false);
  assert.ok(full.admit(snapshot(el(1))), "a new page that fits");
  assert.equal(new MirrorBudget(() => 0, 10).admit(snapshot(chain(11))), false, "a page too large from the start");
});

test("a removed subtree counts once in the events: the replayer's own count puts it right", () => {
  let held = 0;
  const budget = new MirrorBudget(() => held, 10);
  budget.admit(snapshot(el(1, [chain(8)]))); // 9 nodes
  held = 1; // the chain was removed: one removal in the event, eight nodes gone in the mirror
  budget.admit(mutation([], [{ parentId: 1, id: 1 }]));
  assert.ok(budget.admit(mutation([add(chain(5))])), "9 - 1 + 5 passes the kept count, not the mirror's 1 + 5");
  held = 6;
  assert.equal(budget.admit(mutation([add(chain(5))])), false, "6 + 5");
});

test("the bound is far above a large real page", () => {
  assert.ok(MAX_MIRROR_NODES >= 100_000);
});
