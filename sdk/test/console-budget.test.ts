// The mirror holds at most MAX_MIRROR_NODES nodes of the customer's page (console/budget.ts): a
// hostile page's events may add nodes without end while its own document stays small.
import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_MIRROR_NODES, MirrorBudget, NodeCount } from "../src/console/budget.ts";

const el = (id: number, childNodes: unknown[] = []) => ({ type: 2, id, tagName: "b", attributes: {}, childNodes });
const snapshot = (node: unknown) => ({ type: 2, timestamp: 1, data: { node, initialOffset: { top: 0, left: 0 } } });
const mutation = (adds: unknown[], removes: unknown[] = []) =>
  ({ type: 3, timestamp: 1, data: { source: 0, texts: [], attributes: [], adds, removes } });
const add = (parentId: number, node: unknown) => ({ parentId, nextId: null, node });
const remove = (parentId: number, id: number) => ({ parentId, id });

/** A chain of `count` nested elements from `first` (built and counted without recursion). */
function chain(first: number, count: number): unknown {
  let node = el(first + count - 1);
  for (let id = first + count - 2; id >= first; id--) node = el(id, [node]);
  return node;
}

test("a snapshot's and a mutation's nodes are counted at any depth; removals take subtrees", () => {
  const count = new NodeCount();
  count.apply(snapshot(el(1, [el(2), el(3, [el(4)])])));
  assert.equal(count.size, 4);
  count.apply(mutation([add(2, chain(10, 200_000))]));
  assert.equal(count.size, 200_004);
  count.apply(mutation([], [remove(1, 2)]));
  assert.equal(count.size, 3, "the chain went with its parent");
  count.apply(mutation([add(1, el(4))])); // moved: counted once
  assert.equal(count.size, 3);
  count.apply({ type: 3, timestamp: 1, data: { source: 1, positions: [] } });
  count.apply(null);
  count.apply(mutation([add(1, "garbage"), add(99, el(5))], [remove(1, 12345), "x"]));
  assert.equal(count.size, 4, "under a parent it does not know: counted all the same");
  count.apply(snapshot(el(1)));
  assert.equal(count.size, 1, "a new page replaces the old");
});

test("mutations past the bound are refused; a snapshot that fits starts afresh", () => {
  const budget = new MirrorBudget(10);
  assert.ok(budget.admit(snapshot(el(1, [el(2), el(3)]))));
  assert.ok(budget.admit(mutation([add(1, chain(10, 7))]))); // 3 + 7 = 10
  assert.equal(budget.admit(mutation([add(1, el(30))])), false);
  assert.ok(budget.admit(snapshot(el(1))), "a new page that fits");
  assert.equal(new MirrorBudget(10).admit(snapshot(chain(1, 11))), false, "a page too large from the start");
});

test("a page that keeps replacing its content stays within the bound", () => {
  const budget = new MirrorBudget(100);
  budget.admit(snapshot(el(1)));
  for (let round = 0; round < 1000; round++) {
    const first = 10 + round * 50;
    const removes = round ? [remove(1, first - 50)] : [];
    assert.ok(budget.admit(mutation([add(1, chain(first, 50))], removes)), `round ${round}`);
  }
});

test("the bound is far above a large real page", () => {
  assert.ok(MAX_MIRROR_NODES >= 100_000);
});
