// Review of the agent's clicks in same-origin frames (docs/security.md, "Sixth masking review"):
// what held when a malicious agent names a frame's element (../src/share/control.ts). The frame
// element itself marked `data-tandem-no-control`, a frame inside a frame (acted on; refused when
// the outer frame shows a private page), and an element of a document no window shows.
import assert from "node:assert/strict";
import { test } from "node:test";
import { Window } from "happy-dom";
import { record } from "rrweb";
import { document, window } from "./dom.ts";
import { RemoteControl } from "../src/share/control.ts";
import type { Payload } from "../src/shared/payload.ts";

test("an agent's click in a frame marked no-control, in a frame inside a private frame, or in a windowless document is refused; in a frame inside a frame it acts", (t) => {
  const globals = globalThis as unknown as Record<string, unknown>;
  const saved = new Map(["document", "location", "innerWidth", "innerHeight", "addEventListener", "removeEventListener"]
    .map((name) => [name, Object.getOwnPropertyDescriptor(globalThis, name)]));
  Object.assign(globals, {
    document, location: window.location, innerWidth: 1000, innerHeight: 800,
    addEventListener: () => {}, removeEventListener: () => {},
  });
  const windows: Window[] = [];
  /** A same-origin frame element in `parent` showing `url`, with a button of mirror id `id`. */
  const framed = (parent: Document, url: string, id: number, attrs = ""): { frame: HTMLIFrameElement; doc: Document; clicks: () => number } => {
    const holder = parent.createElement("div");
    holder.innerHTML = `<iframe ${attrs}></iframe>`;
    parent.body.append(holder);
    const frame = holder.firstElementChild as HTMLIFrameElement;
    const inside = new Window({ url });
    windows.push(inside);
    Object.defineProperty(inside, "frameElement", { value: frame, configurable: true });
    const doc = inside.document as unknown as Document;
    doc.body.innerHTML = "<button>Go on</button>";
    const button = doc.querySelector("button") as HTMLElement;
    let clicks = 0;
    button.addEventListener("click", () => clicks++);
    record.mirror.add(button as unknown as Node, { type: 2, id, tagName: "button", attributes: {}, childNodes: [] });
    return { frame, doc, clicks: () => clicks };
  };
  const marked = framed(document, "https://shop.example/a.html", 9101, "data-tandem-no-control");
  const outer = framed(document, "https://shop.example/b.html", 9102);
  const inner = framed(outer.doc, "https://shop.example/c.html", 9103);
  const orphan = new window.DOMParser().parseFromString("<button>Orphan</button>", "text/html") as unknown as Document;
  record.mirror.add(orphan.querySelector("button") as unknown as Node, { type: 2, id: 9104, tagName: "button", attributes: {}, childNodes: [] });
  t.after(() => {
    for (const [name, descriptor] of saved) {
      if (descriptor) Object.defineProperty(globalThis, name, descriptor);
      else delete globals[name];
    }
    record.mirror.reset();
    marked.frame.remove();
    outer.frame.remove();
    for (const w of windows) void w.happyDOM.close();
  });
  const replies: Payload[] = [];
  const ui = { point: () => {}, asking: () => null, askControl: () => {}, notifyKey: () => {} };
  const host = { agent: () => "Alice", reply: (p: Payload) => void replies.push(p), changed: () => {}, isPrivate: (url: URL) => url.pathname.startsWith("/private-") };
  const control = new RemoteControl(ui as never, host, true);
  const refusal = () => (replies.pop() as { code?: string } | undefined)?.code ?? null;

  control.handle({ k: "click", id: 9101 });
  assert.equal(refusal(), "protected", "the frame element itself is marked no-control");
  assert.equal(marked.clicks(), 0);
  control.handle({ k: "click", id: 9103 });
  assert.equal(refusal(), null);
  assert.equal(inner.clicks(), 1, "a frame inside a frame: the click reaches its button");
  (windows[1] as unknown as { history: History }).history.pushState({}, "", "/private-wallet");
  control.handle({ k: "click", id: 9103 });
  assert.equal(refusal(), "protected", "the outer frame shows a private page now");
  control.handle({ k: "click", id: 9104 });
  assert.equal(refusal(), "gone", "a document no window shows");
  assert.equal(inner.clicks(), 1);
  control.dispose();
});
