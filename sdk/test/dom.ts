// A real DOM for node tests (happy-dom): masking reads pages through the DOM's prototypes
// (../src/shared/dom.ts), so fakes would no longer be read at all. Importing this installs the
// interface objects masking uses as globals, once.
import { Window } from "happy-dom";

export const window = new Window({ url: "https://shop.example/" });
export const document = window.document as unknown as Document;

// The DOM's interface objects (masking's prototypes; rrweb's serializer uses `instanceof`).
const globals = globalThis as unknown as Record<string, unknown>;
const INTERFACE = /^(HTML\w*Element|SVG\w*Element|Node|Element|Document|DocumentFragment|Text|Comment|CharacterData|ShadowRoot)$/;
for (const name of Object.getOwnPropertyNames(window)) {
  if (INTERFACE.test(name)) globals[name] ??= (window as unknown as Record<string, unknown>)[name];
}

// Browsers define one `textContent` getter (and `firstChild`, `nodeValue`...), on Node.prototype;
// happy-dom overrides them per subclass and its Node.prototype getter answers null. Make
// Node.prototype's dispatch as a browser's does.
for (const property of ["textContent", "firstChild", "lastChild", "nextSibling", "previousSibling", "parentNode", "nodeValue"]) {
  const nodeProto = window.Node.prototype;
  const own = Object.getOwnPropertyDescriptor(nodeProto, property) as PropertyDescriptor;
  Object.defineProperty(nodeProto, property, {
    configurable: true,
    set: own.set,
    get(this: object) {
      for (let p = Object.getPrototypeOf(this); p && p !== nodeProto; p = Object.getPrototypeOf(p)) {
        const getter = Object.getOwnPropertyDescriptor(p, property)?.get;
        if (getter) return getter.call(this);
      }
      return own.get?.call(this);
    },
  });
}

// A browser's global object has `frameElement` (an own getter; ../src/shared/dom.ts reads frames'
// windows with it): happy-dom's window has none, and its documents are shown in no frame.
Object.defineProperty(globalThis, "frameElement", {
  configurable: true,
  get(this: unknown) {
    return this === globalThis ? null : ((this as { frameElement?: unknown } | null)?.frameElement ?? null);
  },
});

// A browser's `assignedSlot` (the slot an element is shown in, in its parent's open shadow root):
// happy-dom has none. By name, as a shadow root's slots are assigned by default.
if (!("assignedSlot" in window.Element.prototype)) {
  Object.defineProperty(window.Element.prototype, "assignedSlot", {
    configurable: true,
    get(this: Element) {
      const root = this.parentElement?.shadowRoot;
      if (!root) return null;
      const name = this.getAttribute("slot") ?? "";
      return Array.from(root.querySelectorAll("slot")).find((slot) => (slot.getAttribute("name") ?? "") === name) ?? null;
    },
  });
}

/** The first element of `markup`, in a fresh detached container (tests do not share a page). */
export function html(markup: string): Element {
  const container = document.createElement("div");
  container.innerHTML = markup;
  return container.firstElementChild as Element;
}

/**
 * What a browser does that happy-dom does not: a form's named controls shadow the form's own
 * properties (HTML's [LegacyOverrideBuiltIns] on HTMLFormElement), so `form.tagName` is the
 * `<input name="tagName">`. Applied to every form under `root`.
 */
export function clobberForms(root: ParentNode): void {
  for (const form of Array.from(root.querySelectorAll("form"))) {
    for (const control of Array.from(form.querySelectorAll("[name], [id]"))) {
      for (const key of [control.getAttribute("name"), control.getAttribute("id")]) {
        if (key) Object.defineProperty(form, key, { value: control, configurable: true });
      }
    }
  }
}
