// The replayer's way of applying a live mutation's added nodes at once (../patches/
// rrweb-adds-at-once.js, put into rrweb's bundle by build.mjs), run on rrweb-snapshot's own
// builder (the code the bundle holds) in happy-dom: added nodes as rrweb's recorder orders them
// (a parent's new children last first, each naming the next), the page they must make, and the
// mutations it must leave, untouched, to rrweb's one-by-one path.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { NodeType } from "@rrweb/types";
import { buildNodeWithSN, createCache, createMirror } from "rrweb-snapshot";
import { document } from "./dom.ts";

type Add = { parentId: number; nextId: number | null; previousId?: number; node: Record<string, unknown> };
type AddsAtOnce = (adds: Add[], mirror: ReturnType<typeof createMirror>, doc: Document, cache: unknown,
  afterAppend: (node: Node, id: number) => void) => boolean;

const source = readFileSync(new URL("../patches/rrweb-adds-at-once.js", import.meta.url), "utf8");
const addsAtOnce = new Function("NodeType", "buildNodeWithSN", `${source}\nreturn tandemAddsAtOnce;`)(
  NodeType, buildNodeWithSN) as AddsAtOnce;

const el = (id: number, tagName: string, attributes: Record<string, string> = {}) =>
  ({ type: NodeType.Element, tagName, attributes, childNodes: [], id });
const text = (id: number, textContent: string) => ({ type: NodeType.Text, textContent, id });

/** A mirrored page: a form (1) holding a paragraph (2), and a textarea (3) and an iframe (4). */
function page() {
  const mirror = createMirror();
  const body = document.createElement("div");
  document.body.replaceChildren(body);
  const put = (parent: Element, meta: ReturnType<typeof el>) => {
    const node = document.createElement(meta.tagName);
    for (const [name, value] of Object.entries(meta.attributes)) node.setAttribute(name, value);
    parent.append(node);
    mirror.add(node, meta as Parameters<typeof mirror.add>[1]);
    return node;
  };
  const form = put(body, el(1, "form"));
  put(form, el(2, "p", { id: "last" }));
  put(body, el(3, "textarea"));
  put(body, el(4, "iframe"));
  return { mirror, body, form };
}

test("a mutation's added nodes go in at their places, in order, each built and told once in place", () => {
  const { mirror, form } = page();
  // Before the paragraph: a label (10, its text 11), an input (12), a row (13) holding a hint
  // (14, text 15) and an input (16); after it, at the form's end: an emphasis (17, text 18).
  const adds: Add[] = [
    { parentId: 1, nextId: 2, node: el(13, "div") },
    { parentId: 1, nextId: 13, node: el(12, "input", { name: "b", value: "shown" }) },
    { parentId: 1, nextId: 12, node: el(10, "label") },
    { parentId: 1, nextId: null, node: el(17, "em") },
    { parentId: 10, nextId: null, node: text(11, "Name") },
    { parentId: 13, nextId: null, node: el(16, "input", { name: "c" }) },
    { parentId: 13, nextId: 16, node: el(14, "span") },
    { parentId: 14, nextId: null, node: text(15, "hint") },
    { parentId: 17, nextId: null, node: text(18, "D") },
  ];
  const told: [number, boolean][] = [];
  const taken = addsAtOnce(adds, mirror, document, createCache(), (node, id) => told.push([id, node.isConnected]));
  assert.equal(taken, true);
  assert.equal(form.innerHTML.replaceAll(' autocomplete="off"', ""), // rrweb's, on every input
    '<label>Name</label><input name="b" value="shown"><div><span>hint</span><input name="c"></div><p id="last"></p><em>D</em>');
  for (const { node } of adds) assert.equal(mirror.getId(mirror.getNode(node.id as number)), node.id);
  assert.deepEqual(told, adds.map(({ node }) => [node.id, true]));
});

test("a mutation it cannot apply as rrweb would is left to rrweb, and nothing of it is built", () => {
  const ok = (id: number): Add => ({ parentId: 1, nextId: null, node: el(id, "b") });
  const declined: [string, Add][] = [
    ["text in a textarea", { parentId: 3, nextId: null, node: text(21, "typed") }],
    ["a frame", { parentId: 1, nextId: null, node: el(21, "iframe") }],
    ["into a frame", { parentId: 4, nextId: null, node: el(21, "p") }],
    ["in a shadow root", { parentId: 1, nextId: null, node: { ...el(21, "p"), isShadow: true } }],
    ["a previous sibling named (old recordings)", { parentId: 1, nextId: null, previousId: 2, node: el(21, "p") }],
    ["a next sibling unknown", { parentId: 1, nextId: -1, node: el(21, "p") }],
    ["a next sibling not yet there", { parentId: 1, nextId: 99, node: el(21, "p") }],
    ["a next sibling elsewhere", { parentId: 1, nextId: 3, node: el(21, "p") }],
    ["a parent not there", { parentId: 98, nextId: null, node: el(21, "p") }],
    ["a parent added after it", { parentId: 22, nextId: null, node: el(21, "p") }],
    ["a node already there", { parentId: 1, nextId: null, node: el(2, "p") }],
    ["a document type", { parentId: 1, nextId: null, node: { type: NodeType.DocumentType, name: "html", publicId: "", systemId: "", id: 21 } }],
  ];
  for (const [what, add] of declined) {
    const { mirror, body } = page();
    const before = body.innerHTML;
    const taken = addsAtOnce([ok(20), add, ok(22)], mirror, document, createCache(), () => assert.fail(what));
    assert.equal(taken, false, what);
    assert.equal(body.innerHTML, before, what);
    assert.equal(mirror.getNode(20), null, what);
  }
  // One added node alone: rrweb's own path, as before.
  const { mirror } = page();
  assert.equal(addsAtOnce([ok(20)], mirror, document, createCache(), () => assert.fail("one node")), false);
});
