// Private pages inside same-origin frames are not recorded (../src/share/frames.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { Window } from "happy-dom";
import { FramePrivacyWatch, RESHOW_MS, withoutPrivateFrames } from "../src/share/frames.ts";
import { document } from "./dom.ts";

const never = () => false;

test("a frame document that cannot be read arrives empty; the page's own nodes go as they are", () => {
  const p = document.createElement("p");
  document.body.append(p);
  const text = document.createTextNode("page text");
  p.append(text);
  const nodes: Record<number, unknown> = { 1: document, 5: p, 6: text };
  const lookup = (id: number) => nodes[id] ?? null;
  const event = {
    type: 3, timestamp: 1,
    data: {
      source: 0, removes: [],
      adds: [
        { parentId: 5, nextId: null, node: { type: 3, id: 6, textContent: "page text" } },
        // A frame's document (id 9 is unknown here: as a frame that is gone): attached empty.
        { parentId: 7, nextId: null, node: { type: 0, id: 9, childNodes: [{ type: 3, id: 10, textContent: "SECRET" }] } },
        { parentId: 9, nextId: null, node: { type: 3, id: 11, textContent: "SECRET" } },
      ],
      texts: [{ id: 6, value: "fine" }, { id: 12, value: "SECRET" }],
      attributes: [{ id: 5, attributes: { class: "x" } }, { id: 13, attributes: { title: "SECRET" } }],
    },
  };
  const kept = withoutPrivateFrames(event, lookup, document, never);
  assert.ok(kept);
  assert.ok(!JSON.stringify(kept).includes("SECRET"), JSON.stringify(kept));
  assert.equal(kept.data.adds.length, 2);
  assert.deepEqual(kept.data.adds[1].node.childNodes, []);
  assert.deepEqual(kept.data.texts, [{ id: 6, value: "fine" }]);
  assert.deepEqual(kept.data.attributes, [{ id: 5, attributes: { class: "x" } }]);
  // An input in a node that cannot be placed is dropped; one on the page goes.
  assert.equal(withoutPrivateFrames({ type: 3, data: { source: 5, id: 42, text: "SECRET" } }, lookup, document, never), null);
  assert.ok(withoutPrivateFrames({ type: 3, data: { source: 5, id: 5, text: "ok" } }, lookup, document, never));
  p.remove();
});

test("a frame's src that names a private page is sent as about:blank", () => {
  const isPrivate = (url: URL) => url.pathname.startsWith("/private-");
  const frame = (id: number, src: string) => ({ type: 2, id, tagName: "iframe", attributes: { src }, childNodes: [] });
  const snapshot = { type: 2, timestamp: 1, data: { node: { type: 0, id: 1, childNodes: [frame(2, "/private-wallet.html"), frame(3, "/help.html")] } } };
  withoutPrivateFrames(snapshot, () => null, document, isPrivate);
  assert.deepEqual(snapshot.data.node.childNodes.map((node) => node.attributes.src), ["about:blank", "/help.html"]);
  const iframe = document.createElement("iframe");
  const change = { type: 3, timestamp: 2, data: { source: 0, adds: [{ parentId: 1, node: frame(4, "/private-x") }], removes: [], texts: [],
    attributes: [{ id: 5, attributes: { src: "/private-diagnosis" } }, { id: 5, attributes: { rr_src: "/private-not-loaded" } }] } };
  const nodes: Record<number, unknown> = { 1: document, 5: iframe };
  withoutPrivateFrames(change, (id) => nodes[id] ?? null, document, isPrivate);
  assert.equal(change.data.adds[0].node.attributes.src, "about:blank");
  assert.equal(change.data.attributes[0].attributes.src, "about:blank");
  assert.equal(change.data.attributes[1].attributes.rr_src, "about:blank", "rrweb's name for a frame it cannot read");
});

test("a frame sent with content that turns private in place is emptied; shown again, recorded afresh", () => {
  const iframe = document.createElement("iframe");
  document.body.append(iframe);
  const inside = new Window({ url: "https://shop.example/help.html" });
  Object.defineProperty(inside, "frameElement", { value: iframe, configurable: true });
  const nodes: Record<number, unknown> = { 7: iframe, 8: inside.document };
  let now = 10_000;
  let reshown = 0;
  const watch = new FramePrivacyWatch(
    (id) => nodes[id] ?? null, document, (url) => url.pathname.startsWith("/private-"), () => reshown++, () => now,
  );
  const attach = (childNodes: unknown[]) => ({
    type: 3, timestamp: 1, data: { source: 0, removes: [], texts: [], attributes: [], adds: [{ parentId: 7, nextId: null, node: { type: 0, id: 8, childNodes } }] },
  });
  watch.sent(attach([{ type: 2, id: 9, tagName: "html", attributes: {}, childNodes: [] }]));
  assert.deepEqual(watch.check(), [], "public: nothing to do");
  inside.history.pushState({}, "", "/private-statement");
  const [emptied, ...more] = watch.check() as { data: { adds: { parentId: number; node: Record<string, unknown> }[] } }[];
  assert.deepEqual(more, []);
  assert.equal(emptied.data.adds[0].parentId, 7);
  assert.deepEqual(emptied.data.adds[0].node.childNodes, []);
  assert.equal(emptied.data.adds[0].node.id, 8);
  // The replayer keeps a document that looks like the one it has: this one must not.
  assert.equal(emptied.data.adds[0].node.compatMode, "CSS1Compat");
  watch.sent(emptied);
  assert.deepEqual(watch.check(), [], "emptied once");
  inside.history.replaceState({}, "", "/help.html");
  assert.deepEqual(watch.check(), []);
  assert.equal(reshown, 1, "shown again: recorded afresh");
  now += RESHOW_MS / 2;
  watch.check();
  assert.equal(reshown, 1, "not more often than RESHOW_MS");
  // Another document in the frame (it loaded a page): that one is rrweb's to attach.
  nodes[8] = new Window({ url: "https://shop.example/private-x" }).document;
  now += RESHOW_MS;
  assert.deepEqual(watch.check(), []);
  assert.equal(reshown, 1);
  iframe.remove();
});
