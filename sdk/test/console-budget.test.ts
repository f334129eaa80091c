// The mirror holds at most MAX_MIRROR_NODES nodes of the customer's page (console/budget.ts): a
// hostile page's events may add nodes without end while its own document stays small.
import assert from "node:assert/strict";
import { test } from "node:test";
import { MAX_MIRROR_CHARS, MAX_MIRROR_DEPTH, MAX_MIRROR_NODES, MirrorBudget, NodeCount } from "../src/console/budget.ts";

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
  count.apply(mutation([add(1, el(4))])); // added again, not removed: rrweb leaves the old one in place
  assert.equal(count.size, 4);
  count.apply({ type: 3, timestamp: 1, data: { source: 1, positions: [] } });
  count.apply(null);
  count.apply(mutation([add(1, "garbage"), add(99, el(5))], [remove(1, 12345), "x"]));
  assert.equal(count.size, 5, "under a parent it does not know: counted all the same");
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

test("text, attributes and style rules are counted; what replaces them takes their place", () => {
  const count = new NodeCount();
  const text = (id: number, value: string) => ({ type: 3, id, textContent: value });
  count.apply(snapshot({ ...el(1, [text(2, "hello")]), attributes: { title: "abc" } }));
  assert.equal(count.chars, 5 + "title".length + 3);
  count.apply({ type: 3, timestamp: 1, data: { source: 0, adds: [], removes: [], texts: [{ id: 2, value: "x".repeat(1000) }],
    attributes: [{ id: 1, attributes: { title: "abcdef", style: "color: red" } }] } });
  assert.equal(count.chars, 1000 + 5 + 6 + 5 + 10);
  for (let i = 0; i < 100; i++) {
    count.apply({ type: 3, timestamp: 1, data: { source: 0, adds: [], removes: [], texts: [],
      attributes: [{ id: 1, attributes: { title: "abcdef", style: { transform: [`translate(${i}px)`, ""] } } }] } });
  }
  const animated = count.chars;
  assert.ok(animated < 1000 + 11 + 15 + 40, `an animation changes one property again and again: ${animated}`);
  count.apply({ type: 3, timestamp: 1, data: { source: 0, adds: [], removes: [], texts: [],
    attributes: [{ id: 1, attributes: { title: null, style: "" } }] } });
  assert.equal(count.chars, 1000 + 5, "a whole style replaces its properties; a removed attribute counts nothing");
  count.apply(mutation([], [remove(1, 2)]));
  assert.equal(count.chars, 5, "the text went with its node");
  count.apply({ type: 3, timestamp: 1, data: { source: 8, id: 5, adds: [{ rule: "p{color:red}", index: 0 }] } });
  count.apply({ type: 3, timestamp: 1, data: { source: 15, id: 5, styleIds: [1], styles: [{ styleId: 1, rules: [{ rule: "a{}" }] }] } });
  assert.equal(count.chars, 5 + 12 + 3);
});

test("a page whose nodes carry more characters than the bound is refused", () => {
  const budget = new MirrorBudget(1000, 100);
  assert.ok(budget.admit(snapshot(el(1))));
  assert.ok(budget.admit(mutation([add(1, { ...el(2), attributes: { title: "x".repeat(90) } })])));
  assert.equal(budget.admit(mutation([add(1, { ...el(3), attributes: { title: "x".repeat(20) } })])), false);
});

test("the bounds are far above a large real page", () => {
  assert.ok(MAX_MIRROR_NODES >= 100_000);
  assert.ok(MAX_MIRROR_CHARS >= 16 * 1024 * 1024);
});

test("ids a page repeats inside its own tree end, counted once", () => {
  const count = new NodeCount();
  count.apply(snapshot(el(1, [el(1, [el(2)]), el(2)])));
  count.apply(mutation([add(2, el(1))], [remove(1, 1)]));
  count.apply(mutation([], [remove(0, 1), remove(0, 2)]));
  assert.ok(count.size <= 6, "no more than the nodes it added");
});

test("a page nested deeper than Chromium's renderer survives is refused, whole or a node at a time", () => {
  // Deep enough (5 000) crashed the agent's tab in Chromium, however rrweb inserted it.
  const page = () => snapshot(el(1, [el(2)])); // the root (0) and a child (1)
  const whole = new MirrorBudget();
  assert.ok(whole.admit(page()));
  assert.ok(whole.admit(mutation([add(2, chain(10, MAX_MIRROR_DEPTH - 1))])), "as deep as the bound");
  const deeper = new MirrorBudget();
  assert.ok(deeper.admit(page()));
  assert.equal(deeper.admit(mutation([add(2, chain(10, MAX_MIRROR_DEPTH))])), false, "one deeper, in one mutation");
  const byOne = new MirrorBudget();
  assert.ok(byOne.admit(page()));
  let refused = -1;
  for (let i = 0; i < MAX_MIRROR_DEPTH + 5 && refused < 0; i++) {
    if (!byOne.admit(mutation([add(i ? 9 + i : 2, el(10 + i))]))) refused = i;
  }
  assert.equal(refused, MAX_MIRROR_DEPTH - 1, "one node at a time: refused at the same depth");
  assert.equal(new MirrorBudget().admit(snapshot(chain(1, MAX_MIRROR_DEPTH + 2))), false, "a page too deep from the start");
  assert.ok(byOne.admit(page()), "its next page that fits shows");
});

test("nodes moved without their removal, or removed from a parent not theirs, stay counted: rrweb leaves them in the page", () => {
  // Each round adds 20 nodes under a node (10), then names 10 again elsewhere without removing
  // it (rrweb builds a new 10 and leaves the old one, children and all), or "removes" each node
  // from a parent that is not its own or that does not exist (rrweb's removeChild fails, or it
  // does nothing): the page grows by 20 a round, the budget forgot them all before.
  const rounds = (kind: "added again" | "parent unknown" | "parent not its own") => {
    const budget = new MirrorBudget(100);
    assert.ok(budget.admit(snapshot(el(1, [el(2), el(3)]))));
    let id = 100;
    for (let round = 0; round < 10; round++) {
      const kids = Array.from({ length: 20 }, () => id++);
      const adds = [add(2, el(10)), ...kids.map((kid) => add(10, el(kid)))];
      if (!budget.admit(mutation(adds))) return round;
      const next = kind === "added again" ? mutation([add(3, el(10))])
        : mutation([], kids.map((kid) => remove(kind === "parent unknown" ? 99_999 : 3, kid)));
      if (!budget.admit(next)) return round;
    }
    return -1;
  };
  // 3, then 21 a round (a new 10 and its 20): past 100 by the fifth round (before: never); each
  // round names 10 again while it holds nodes, which are looked through again (see the next test).
  for (const kind of ["added again", "parent unknown", "parent not its own"] as const) {
    const refused = rounds(kind);
    assert.ok(refused >= 0 && refused <= 4, `${kind}: refused at ${refused}`);
  }
});

test("a deep subtree moved (added again without its removal) under another deep one counts as deep as it is then", () => {
  // Two chains of 600 (each within the bound); the second's top named again under the first's end:
  // rrweb moves it there, children and all (1 200 deep).
  const budget = new MirrorBudget();
  assert.ok(budget.admit(snapshot(el(1, [el(2), el(3)]))));
  assert.ok(budget.admit(mutation([add(2, chain(10, 600)), add(3, chain(1000, 600))])));
  assert.equal(budget.admit(mutation([add(609, el(1000))])), false);
  // Moving the same subtree about again and again is work the page makes the console do: bounded.
  const busy = new MirrorBudget(5_000);
  assert.ok(busy.admit(snapshot(el(1, [el(2), el(3)]))));
  assert.ok(busy.admit(mutation([add(2, { ...el(10), childNodes: Array.from({ length: 1000 }, (_v, i) => el(100 + i)) })])));
  let refused = -1;
  for (let i = 0; i < 20 && refused < 0; i++) if (!busy.admit(mutation([add(i % 2 ? 2 : 3, el(10))]))) refused = i;
  assert.ok(refused >= 0 && refused < 6, `refused at ${refused}`);
});
