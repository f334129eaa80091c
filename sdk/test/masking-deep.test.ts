// Masking and hiding reach into shadow roots and same-origin frames (happy-dom: real shadow
// roots; a frame is a second window whose `frameElement` is an element of the page). `closest`
// stops at a shadow root or a frame's document: a masked or hidden region's web components and
// frames got out. Marks that show (`data-tandem-unmask`) still do not cross (fail closed).
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { Window } from "happy-dom";
import {
  agentMayTouch, composedClosest, composedParentElement, hiddenFromAgent, inBlockedRegion, inMaskedRegion, MASK, MASK_PLACEHOLDER, maskFormState,
  maskInputValue, maskTextContent, onMaskingFailure, usePolicy,
} from "../src/shared/masking.ts";
import { DEFAULT_POLICY, validatePolicy } from "../src/shared/policy.ts";
import { document } from "./dom.ts";

afterEach(() => {
  usePolicy(DEFAULT_POLICY);
  onMaskingFailure(null);
});

/** `<div ${attrs}><x-host>#shadow-root ${inner}</x-host></div>` in the page; the host, its root. */
function component(outerAttrs: string, inner: string) {
  const outer = document.createElement("div");
  outer.innerHTML = `<div ${outerAttrs}><x-host></x-host></div>`;
  document.body.append(outer);
  const host = outer.querySelector("x-host") as Element;
  const root = host.attachShadow({ mode: "open" });
  root.innerHTML = inner;
  return { host, root };
}

/** A same-origin frame: a document in a window of its own, shown by an `<iframe>` of the page. */
function framed(outerAttrs: string, inner: string) {
  const outer = document.createElement("div");
  outer.innerHTML = `<div ${outerAttrs}><iframe></iframe></div>`;
  document.body.append(outer);
  const frame = outer.querySelector("iframe") as Element;
  const inside = new Window({ url: "https://shop.example/inner.html" });
  Object.defineProperty(inside, "frameElement", { value: frame, configurable: true });
  inside.document.body.innerHTML = inner;
  return { frame, doc: inside.document as unknown as Document };
}

const mutation = (data: Record<string, unknown>) => ({
  type: 3, timestamp: 1, data: { source: 0, adds: [], removes: [], texts: [], attributes: [], ...data },
});

test("composedClosest goes on from shadow hosts, two roots deep; closest stops at the first", () => {
  const { root } = component('class="balance"', "<x-inner></x-inner>");
  const innerHost = root.querySelector("x-inner") as Element;
  innerHost.attachShadow({ mode: "open" }).innerHTML = "<span>7731</span>";
  const span = innerHost.shadowRoot?.querySelector("span") as Element;
  assert.equal(span.closest(".balance"), null);
  assert.equal(composedClosest(span, ".balance")?.className, "balance");
  assert.equal(composedClosest(span, ".nowhere"), null);
});

test("text right in a shadow root belongs to its host", () => {
  const { host, root } = component("", "just text");
  assert.equal(root.firstChild?.parentElement, null);
  assert.equal(composedParentElement(root.firstChild as Node), host);
});

test("a masked region masks the text of the web components in it, right in their roots too", () => {
  usePolicy(validatePolicy({ version: 1, mask: [".balance"] }));
  for (const attrs of ['class="balance"', 'class="rr-mask"']) {
    const { root } = component(attrs, "LOOSE-7731<span>SPAN-7731</span>");
    const loose = root.firstChild as Node;
    const span = root.querySelector("span") as Element;
    const nodes: Record<number, unknown> = { 1: loose, 2: span, 3: span.firstChild };
    const event = mutation({
      adds: [{ parentId: 9, nextId: null, node: { type: 3, id: 1, textContent: "LOOSE-7731" } },
        { parentId: 9, nextId: null, node: { type: 2, id: 2, tagName: "span", attributes: {}, childNodes: [
          { type: 3, id: 3, textContent: "SPAN-7731" }] } }],
      texts: [{ id: 1, value: "LATER-7731" }],
    });
    const json = JSON.stringify(maskFormState(event, (id) => nodes[id] ?? null));
    assert.ok(!json.includes("7731"), `${attrs}: ${json}`);
    assert.ok(json.includes(MASK.repeat(10)), json);
  }
});

test("a mark that shows does not cross into a component: its fields stay hidden", () => {
  const { root } = component("data-tandem-unmask", '<input value="x">');
  assert.equal(maskInputValue("typed-secret", root.querySelector("input")), MASK_PLACEHOLDER);
});

test("rr-block, rr-ignore and rr-mask on a host hide the values of the fields in its root", () => {
  for (const attrs of ['class="rr-block"', 'class="rr-ignore"', 'class="rr-mask"']) {
    const { root } = component(`${attrs} data-tandem-unmask`, '<div data-tandem-unmask><input></div>');
    assert.equal(maskInputValue("typed-secret", root.querySelector("input")), MASK_PLACEHOLDER, attrs);
  }
});

test("what a hidden component draws later is dropped; the host's placeholder and the rest stay", () => {
  usePolicy(validatePolicy({ version: 1, hide: ["#chat"] }));
  for (const attrs of ['id="chat"', 'class="rr-block"']) {
    const { host, root } = component(attrs, "<p>Hello</p>");
    const hidden = host.parentElement as Element;
    const p = root.querySelector("p") as Element;
    const beside = document.createElement("p");
    document.body.append(beside);
    const nodes: Record<number, unknown> = { 1: hidden, 2: p, 3: p.firstChild, 4: beside, 5: host };
    const event = mutation({
      adds: [
        { parentId: 0, nextId: null, node: { type: 2, id: 1, tagName: "div", attributes: { rr_width: "10px" }, childNodes: [] } },
        { parentId: 5, nextId: null, node: { type: 2, id: 2, tagName: "p", attributes: {}, childNodes: [
          { type: 3, id: 3, textContent: "HIDE-SHADOW-4417" }] } },
        { parentId: 0, nextId: null, node: { type: 2, id: 4, tagName: "p", attributes: {}, childNodes: [] } },
      ],
      texts: [{ id: 3, value: "HIDE-SHADOW-4417" }],
      attributes: [{ id: 2, attributes: { title: "HIDE-SHADOW-4417" } }, { id: 4, attributes: { title: "shown" } }],
    });
    const out = maskFormState(event, (id) => nodes[id] ?? null);
    assert.ok(!JSON.stringify(out).includes("4417"), attrs);
    assert.deepEqual(event.data.adds.map((add: { node: { id: number } }) => add.node.id), [1, 4], attrs);
    assert.deepEqual(event.data.texts, [], attrs);
    assert.deepEqual(event.data.attributes, [{ id: 4, attributes: { title: "shown" } }], attrs);
  }
});

test("an input event from a field in a hidden component shows no value, even unmasked inside", () => {
  usePolicy(validatePolicy({ version: 1, hide: ["#chat"] }));
  const { root } = component('id="chat"', "<div data-tandem-unmask><input></div>");
  const input = { type: 3, timestamp: 1, data: { source: 5, id: 1, text: "typed-secret", isChecked: false } };
  maskFormState(input, () => root.querySelector("input"));
  assert.equal(input.data.text, MASK_PLACEHOLDER);
});

test("the agent may not act inside a component of a no-control, masked or hidden region", () => {
  usePolicy(validatePolicy({ version: 1, mask: [".balance"], hide: ["#chat"] }));
  for (const attrs of ["data-tandem-no-control", 'class="balance"', 'id="chat"', 'class="rr-block"', 'class="rr-mask"']) {
    const { root } = component(attrs, "<button>Pay</button>");
    assert.equal(agentMayTouch(root.querySelector("button") as Element), false, attrs);
  }
  const { root } = component('class="shop"', "<button>Buy</button>");
  assert.equal(agentMayTouch(root.querySelector("button") as Element), true, "a plain component");
});

test("images and text in a masked region's components are not carried", () => {
  usePolicy(validatePolicy({ version: 1, mask: [".balance"] }));
  const masked = component('class="balance"', 'loose<img src="/secret.png">');
  assert.equal(inMaskedRegion(masked.root.querySelector("img")), true);
  assert.equal(inMaskedRegion(masked.root.firstChild), true);
  const shown = component('class="shop"', 'loose<img src="/logo.png">');
  assert.equal(inMaskedRegion(shown.root.querySelector("img")), false);
  assert.equal(inMaskedRegion(shown.root.firstChild), false);
});

test("a masked region masks the same-origin frame in it: text, values, images, control", () => {
  usePolicy(validatePolicy({ version: 1, mask: [".statement"] }));
  const { doc } = framed('class="statement"', '<p>IFRAME-5520</p><img src="/s.png"><button>Go</button>');
  const p = doc.querySelector("p") as Element;
  assert.equal(maskTextContent("IFRAME-5520", p), MASK.repeat(11));
  assert.equal(inMaskedRegion(doc.querySelector("img")), true);
  assert.equal(agentMayTouch(doc.querySelector("button") as Element), false);
  const shown = framed('class="shop"', "<p>Hello</p>");
  assert.equal(maskTextContent("Hello", shown.doc.querySelector("p")), "Hello");
});

test("a frame's document in a hidden region is dropped when it arrives", () => {
  usePolicy(validatePolicy({ version: 1, hide: ["#chat"] }));
  const { host, root } = component('id="chat"', "<iframe></iframe>");
  assert.ok(host);
  const frame = root.querySelector("iframe") as Element;
  const inside = new Window({ url: "https://shop.example/inner.html" });
  Object.defineProperty(inside, "frameElement", { value: frame, configurable: true });
  const event = mutation({ adds: [{ parentId: 7, nextId: null, node: { type: 0, id: 8, childNodes: [] } }] });
  maskFormState(event, () => inside.document);
  assert.deepEqual(event.data.adds, []);
});

test("the customer's outlines reach the hidden fields and regions inside web components", () => {
  usePolicy(validatePolicy({ version: 1, mask: [".balance"] }));
  const { host, root } = component("", '<input id="typed"><div class="balance">1</div><x-deeper></x-deeper>');
  const deeper = root.querySelector("x-deeper") as Element;
  deeper.attachShadow({ mode: "open" }).innerHTML = '<input id="deep">';
  const ui = document.createElement("div");
  ui.setAttribute("data-tandem-ui", "");
  ui.attachShadow({ mode: "open" }).innerHTML = '<input id="own">';
  const page = host.parentElement?.parentElement as Element;
  page.append(ui);
  const outlined = hiddenFromAgent(page).map((el) => el.id || el.className);
  assert.deepEqual(outlined.sort(), ["balance", "deep", "typed"]);
});

test("a node whose ancestry cannot be read counts as masked and hidden (fails closed)", () => {
  const failures: unknown[] = [];
  onMaskingFailure((error) => failures.push(error));
  const fragment = document.createDocumentFragment(); // no shadow root: no host to go on from
  fragment.append(document.createElement("p"));
  const p = fragment.firstChild as Element;
  assert.equal(inMaskedRegion(p), true);
  assert.equal(agentMayTouch(p), false);
  const event = mutation({ adds: [{ parentId: 1, nextId: null, node: { type: 2, id: 2, tagName: "b", attributes: {}, childNodes: [] } }] });
  maskFormState(event, () => p.appendChild(document.createElement("b")));
  assert.deepEqual(event.data.adds, []);
  assert.ok(failures.length >= 1);
});

test("inBlockedRegion: a hidden region, what its components and frames hold, and unknown nodes", () => {
  usePolicy(validatePolicy({ version: 1, hide: ["#chat"] }));
  const { host, root } = component('id="chat"', "<p>Hello</p>");
  const p = root.querySelector("p") as Element;
  assert.equal(inBlockedRegion(host), true, "the placeholder itself");
  assert.equal(inBlockedRegion(p), true, "inside its component");
  assert.equal(inBlockedRegion(p.firstChild), true, "a text inside");
  assert.equal(inBlockedRegion(null), true, "unknown to the mirror: never serialised");
  const { doc } = framed('class="rr-block"', "<button>In frame</button>");
  assert.equal(inBlockedRegion(doc), true, "a frame's document goes by its frame");
  assert.equal(inBlockedRegion(doc.querySelector("button")), true, "inside a frame of a blocked region");
  const shown = component("", "<p>Shown</p>");
  assert.equal(inBlockedRegion(shown.root.querySelector("p")), false);
  assert.equal(inBlockedRegion(document), false, "the page's own document");
  assert.equal(inBlockedRegion(document.body), false);
  const { doc: shownFrame } = framed("", "<button>In frame</button>");
  assert.equal(inBlockedRegion(shownFrame.querySelector("button")), false);
});
