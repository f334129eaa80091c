// The agent's clicks inside a same-origin frame (../src/share/control.ts): the frame's document
// is another realm, whose elements are no `instanceof Element` of the page's. A click on a link's
// text there is still checked against the link (the walk up from the clicked element stopped at
// once, and the link's address went unread).
import assert from "node:assert/strict";
import { test } from "node:test";
import { document } from "./dom.ts";
import { clickTargets } from "../src/share/control.ts";

test("a click on a link's text in a frame's document (another realm) is checked against the link", (t) => {
  document.body.innerHTML = '<a href="https://elsewhere.example/pay"><b id="text">Pay</b></a>' +
    '<form action="/checkout"><button id="go"><span id="label">Go</span></button></form>';
  const text = document.getElementById("text") as Element;
  const label = document.getElementById("label") as Element;
  // happy-dom's windows share one set of classes: the page's `Element` made another realm's, so
  // that the document's elements are no `instanceof` it, as a frame's are in a browser.
  const globals = globalThis as unknown as Record<string, unknown>;
  const own = globals.Element;
  globals.Element = class OtherRealmElement {};
  t.after(() => {
    globals.Element = own;
    document.body.innerHTML = "";
  });
  assert.equal(text instanceof Element, false);
  assert.deepEqual(clickTargets(text, document.URL).map(String), ["https://elsewhere.example/pay"]);
  assert.deepEqual(clickTargets(label, document.URL).map((url) => url.pathname), ["/checkout"]);
});
