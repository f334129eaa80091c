// Tandem's own UI is out of the agent's reach: remote control refuses any node inside it, however
// deep in shadow roots, and the recorder blocks its host. Fake DOM trees with shadow roots (node
// has no DOM), shaped like ../src/share/ui.ts builds them.
import assert from "node:assert/strict";
import { test } from "node:test";
import { agentMayTouch, insideTandemUi, recordMaskingOptions, TANDEM_UI_ATTRIBUTE } from "../src/shared/masking.ts";

/** A document or a shadow root: the root of a tree; a shadow root has a host. */
class FakeRoot {
  constructor(readonly host: FakeElement | null = null) {}
  getRootNode(): FakeRoot {
    return this;
  }
}

/** Matches `tag`, `[attribute]` and lists of them, enough for what control asks. */
class FakeElement {
  readonly tagName: string;
  constructor(
    tag: string, readonly parent: FakeElement | FakeRoot, private readonly attrs: Record<string, string> = {},
  ) {
    this.tagName = tag.toUpperCase();
  }
  get parentElement(): FakeElement | null {
    return this.parent instanceof FakeElement ? this.parent : null;
  }
  getAttribute(name: string): string | null {
    return this.attrs[name] ?? null;
  }
  hasAttribute(name: string): boolean {
    return name in this.attrs;
  }
  private matches(selector: string): boolean {
    return selector.split(",").map((s) => s.trim()).some((one) =>
      one.startsWith("[") ? this.hasAttribute(one.slice(1, -1)) : one.toUpperCase() === this.tagName);
  }
  /** Like the DOM's: ancestors in the same tree only, never past a shadow root. */
  closest(selector: string): FakeElement | null {
    for (let el: FakeElement | null = this; el; el = el.parentElement) if (el.matches(selector)) return el;
    return null;
  }
  getRootNode(): FakeRoot {
    let node: FakeElement | FakeRoot = this;
    while (node instanceof FakeElement) node = node.parent;
    return node;
  }
}

/** A text node: no `closest`, only a parent element. */
class FakeText {
  constructor(readonly parentElement: FakeElement) {}
  getRootNode(): FakeRoot {
    return this.parentElement.getRootNode();
  }
}

const ui = { [TANDEM_UI_ATTRIBUTE]: "" };

function page() {
  const document = new FakeRoot();
  const body = new FakeElement("body", document);
  const outerHost = new FakeElement("div", body, ui);
  const outerRoot = new FakeRoot(outerHost);
  const innerHost = new FakeElement("div", outerRoot, ui);
  const innerRoot = new FakeRoot(innerHost);
  const container = new FakeElement("div", innerRoot, ui);
  const banner = new FakeElement("div", container);
  const stop = new FakeElement("button", banner);
  return { document, body, outerHost, innerHost, innerRoot, container, banner, stop };
}

const touch = (el: FakeElement) => agentMayTouch(el as unknown as Element);

test("a button of Tandem's UI, two shadow roots deep, is refused to remote control", () => {
  const { stop, outerHost, innerHost, container } = page();
  for (const el of [stop, container, innerHost, outerHost]) {
    assert.equal(insideTandemUi(el), true);
    assert.equal(touch(el), false);
  }
});

test("the UI is recognised across shadow roots even where the marks are only outside", () => {
  // The old check (`closest`) stopped at the shadow root: a button with no marked ancestor in its
  // own tree passed, although its host is Tandem's.
  const { innerRoot } = page();
  const bare = new FakeElement("div", innerRoot);
  const stop = new FakeElement("button", bare);
  assert.equal(stop.closest(`[${TANDEM_UI_ATTRIBUTE}]`), null);
  assert.equal(insideTandemUi(stop), true);
  assert.equal(touch(stop), false);
  assert.equal(insideTandemUi(new FakeText(stop)), true);
});

test("the page's own buttons, in its own shadow components too, stay within reach", () => {
  const { body } = page();
  const buy = new FakeElement("button", body);
  const widgetHost = new FakeElement("my-widget", body);
  const inWidget = new FakeElement("button", new FakeRoot(widgetHost));
  // agentMayTouch, for real nodes only (it reads them through the DOM's prototypes), lets them
  // through: ./masking-deep.test.ts.
  for (const el of [buy, inWidget]) assert.equal(insideTandemUi(el), false);
  assert.equal(insideTandemUi(new FakeText(buy)), false);
});

test("the recorder blocks the UI's host", () => {
  const selectors = recordMaskingOptions().blockSelector.split(",").map((s) => s.trim());
  assert.ok(selectors.includes(`[${TANDEM_UI_ATTRIBUTE}]`));
});
