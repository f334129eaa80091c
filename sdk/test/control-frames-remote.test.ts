// The customer's side of the agent's actions inside a same-origin frame (../src/share/control.ts):
// the command names the frame's element by its rrweb id; the element is of the frame's realm (no
// `instanceof Element` of the page's). It is acted on while its frame is shown in the page and
// shows a shared page; refused when the frame turned private, when the frame is gone, and when
// the element is hidden from the agent.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Window } from "happy-dom";
import { record } from "rrweb";
import { document, window } from "./dom.ts";
import { RemoteControl } from "../src/share/control.ts";
import { agentMayTouch } from "../src/shared/masking.ts";
import type { Payload } from "../src/shared/payload.ts";

test("an agent's click on an element of a same-origin frame reaches it; a private or removed frame's, or a password's, is refused", (t) => {
  // The page's globals control.ts reads (a browser's window), for this test only.
  const globals = globalThis as unknown as Record<string, unknown>;
  const saved = new Map(["document", "location", "innerWidth", "innerHeight", "addEventListener", "removeEventListener", "Element"]
    .map((name) => [name, Object.getOwnPropertyDescriptor(globalThis, name)]));
  Object.assign(globals, {
    document, location: window.location, innerWidth: 1000, innerHeight: 800,
    addEventListener: () => {}, removeEventListener: () => {},
  });
  const iframe = document.createElement("iframe");
  document.body.append(iframe);
  const inside = new Window({ url: "https://shop.example/help.html" });
  Object.defineProperty(inside, "frameElement", { value: iframe, configurable: true });
  const doc = inside.document as unknown as Document;
  doc.body.innerHTML = '<button id="plus">Add one</button><input id="secret" type="password">';
  const plus = doc.getElementById("plus") as HTMLElement;
  let clicks = 0;
  plus.addEventListener("click", () => clicks++);
  record.mirror.add(plus as unknown as Node, { type: 2, id: 9001, tagName: "button", attributes: {}, childNodes: [] });
  record.mirror.add(doc.getElementById("secret") as unknown as Node, { type: 2, id: 9002, tagName: "input", attributes: {}, childNodes: [] });
  // The frame's elements are of another realm: no `instanceof` the page's Element (happy-dom's
  // windows share one set of classes). Masking reads elements through the page's prototypes'
  // getters, found once (../src/shared/dom.ts; in a browser they read a frame's elements too).
  assert.equal(agentMayTouch(plus), true);
  globals.Element = class OtherRealmElement {};
  t.after(() => {
    for (const [name, descriptor] of saved) {
      if (descriptor) Object.defineProperty(globalThis, name, descriptor);
      else delete globals[name];
    }
    record.mirror.reset();
    iframe.remove();
    void inside.happyDOM.close();
  });
  const replies: Payload[] = [];
  const ui = { point: () => {}, asking: () => null, askControl: () => {}, notifyKey: () => {} };
  const host = { agent: () => "Alice", reply: (p: Payload) => void replies.push(p), changed: () => {}, isPrivate: (url: URL) => url.pathname.startsWith("/private-") };
  const control = new RemoteControl(ui as never, host, true);
  const refusal = () => (replies.pop() as { code?: string } | undefined)?.code ?? null;

  control.handle({ k: "click", id: 9001 });
  assert.equal(clicks, 1, "the frame's button got the click");
  assert.equal(refusal(), null);
  control.handle({ k: "click", id: 9002 });
  assert.equal(refusal(), "protected", "a password field in the frame");
  inside.history.pushState({}, "", "/private-statement");
  control.handle({ k: "click", id: 9001 });
  assert.equal(refusal(), "protected", "the frame shows a private page now");
  inside.history.pushState({}, "", "/help.html");
  iframe.remove();
  control.handle({ k: "click", id: 9001 });
  assert.equal(refusal(), "gone", "the frame left the page");
  assert.equal(clicks, 1);
  control.dispose();
});
