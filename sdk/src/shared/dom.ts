/**
 * Reads of the customer's page through the DOM's own prototypes, never through the node itself.
 *
 * A page's content can shadow any property of some elements: `<form><input name="tagName">`
 * makes `form.tagName` that input (DOM clobbering: forms and `document` expose their named
 * children as properties that override the built-in ones), and a page's script can define own
 * properties on any element. Masking that read `el.tagName` threw on such a form and the first
 * snapshot never left (issue 14). Calling the prototype's getter or method with the node as
 * `this` reads what the browser holds, whatever the element's own properties say.
 *
 * Every function throws a TypeError for something that is not a DOM node of the kind asked:
 * callers (./masking.ts) catch it and fail closed.
 */

type Method = (...args: unknown[]) => unknown;

/** The realm's interface objects; read when called (node tests install a DOM after import). */
function proto(
  name: "Node" | "Element" | "Document" | "DocumentFragment" | "ShadowRoot" | "HTMLInputElement" | "HTMLTextAreaElement" |
    "HTMLSelectElement" | "HTMLLabelElement" | "CSSStyleDeclaration",
): object {
  const ctor = (globalThis as unknown as Record<string, { prototype: object } | undefined>)[name];
  if (!ctor) throw new TypeError(`no DOM here (${name})`);
  return ctor.prototype;
}

type InterfaceName = Parameters<typeof proto>[0];

/** The getter of `property` on the first of `interfaces` that defines it (browsers put
 * `textContent` on Node; some DOM implementations override it on Element). */
function getter(interfaces: InterfaceName | InterfaceName[], property: string): (self: unknown) => unknown {
  const names = Array.isArray(interfaces) ? interfaces : [interfaces];
  // Found on first use, then kept: a snapshot reads these for every node, and a getter the
  // page's script swaps in later is not the browser's.
  let found: (() => unknown) | undefined;
  return (self) => {
    if (!found) {
      for (const name of names) {
        const descriptor = Object.getOwnPropertyDescriptor(proto(name), property);
        if (descriptor?.get) {
          found = descriptor.get;
          break;
        }
      }
    }
    if (!found) throw new TypeError(`${names.join("/")}.${property} has no getter`);
    return found.call(self);
  };
}

function method(interfaceName: InterfaceName, name: string): (self: unknown, ...args: unknown[]) => unknown {
  let found: Method | undefined; // as for getters: found on first use, then kept
  return (self, ...args) => {
    if (!found) {
      const fn = Object.getOwnPropertyDescriptor(proto(interfaceName), name)?.value as Method | undefined;
      if (typeof fn !== "function") throw new TypeError(`${interfaceName}.${name} is not a method`);
      found = fn;
    }
    return found.apply(self, args);
  };
}

const nodeTypeGetter = getter("Node", "nodeType");
const parentElementGetter = getter("Node", "parentElement");
const textContentGetter = getter("Node", "textContent");
const firstChildGetter = getter("Node", "firstChild");
const nextSiblingGetter = getter("Node", "nextSibling");
const parentNodeGetter = getter("Node", "parentNode");
const lastChildGetter = getter("Node", "lastChild");
const previousSiblingGetter = getter("Node", "previousSibling");
const nodeValueGetter = getter("Node", "nodeValue");
const getRootNodeMethod = method("Node", "getRootNode");
const compareDocumentPositionMethod = method("Node", "compareDocumentPosition");
const localNameGetter = getter("Element", "localName");
const getAttributeMethod = method("Element", "getAttribute");
const hasAttributeMethod = method("Element", "hasAttribute");
const closestMethod = method("Element", "closest");
const matchesMethod = method("Element", "matches");
const elementQuery = method("Element", "querySelector");
const hostGetter = getter("ShadowRoot", "host");
const shadowRootGetter = getter("Element", "shadowRoot");

export const ELEMENT_NODE = 1;
export const TEXT_NODE = 3;
export const CDATA_SECTION_NODE = 4;
export const COMMENT_NODE = 8;
export const DOCUMENT_NODE = 9;
export const DOCUMENT_FRAGMENT_NODE = 11;

/** The node's type (1 element, 3 text...), or null for anything that is not a DOM node. */
export function nodeTypeOf(node: unknown): number | null {
  if (node === null || typeof node !== "object") return null;
  try {
    return nodeTypeGetter(node) as number;
  } catch {
    return null;
  }
}

/** `node` when it is an element, else null (a text node, a fake, nothing). */
export function asElement(node: unknown): Element | null {
  return nodeTypeOf(node) === ELEMENT_NODE ? (node as Element) : null;
}

/** The element's tag in lower case (`localName`, as the browser holds it). */
export function localNameOf(el: Element): string {
  return String(localNameGetter(el)).toLowerCase();
}

export function attributeOf(el: Element, name: string): string | null {
  return getAttributeMethod(el, name) as string | null;
}

export function hasAttributeOn(el: Element, name: string): boolean {
  return hasAttributeMethod(el, name) === true;
}

/** `Element.matches`: whether the element itself matches `selector`. */
export function matchesOf(el: Element, selector: string): boolean {
  return matchesMethod(el, selector) === true;
}

/** `Element.closest`: the nearest inclusive ancestor matching `selector`, in the same tree. */
export function closestOf(el: Element, selector: string): Element | null {
  return closestMethod(el, selector) as Element | null;
}

/** `Element.querySelector`: the first descendant of `el` matching `selector`, in the same tree. */
export function firstInside(el: Element, selector: string): Element | null {
  return elementQuery(el, selector) as Element | null;
}

export function parentElementOf(node: Node): Element | null {
  return parentElementGetter(node) as Element | null;
}

/** The tree's links, read through Node's prototype (a page's `<form>` cannot shadow them). */
export function firstChildOf(node: Node): Node | null {
  return firstChildGetter(node) as Node | null;
}
export function lastChildOf(node: Node): Node | null {
  return lastChildGetter(node) as Node | null;
}
export function nextSiblingOf(node: Node): Node | null {
  return nextSiblingGetter(node) as Node | null;
}
export function previousSiblingOf(node: Node): Node | null {
  return previousSiblingGetter(node) as Node | null;
}
export function parentNodeOf(node: Node): Node | null {
  return parentNodeGetter(node) as Node | null;
}
/** A text node's text (its `data`), or "". */
export function nodeValueOf(node: Node): string {
  return String(nodeValueGetter(node) ?? "");
}

/** Whether `a` comes before `b` in their document (Node.DOCUMENT_POSITION_FOLLOWING). */
export function precedesNode(a: Node, b: Node): boolean {
  return ((compareDocumentPositionMethod(a, b) as number) & 4) !== 0;
}

export function textContentOf(node: Node): string | null {
  return textContentGetter(node) as string | null;
}

/**
 * `node`'s textContent when it has at most `limit` characters, else null, reading no further
 * than the first `limit + 1` characters: the text of a large part of the page (a list of 1,500
 * rows) is not built for each of its text nodes. Text and CDATA descendants in tree order, as
 * textContent has them.
 */
export function textContentUpTo(node: Node, limit: number): string | null {
  const type = nodeTypeGetter(node);
  if (type === TEXT_NODE || type === CDATA_SECTION_NODE) {
    const text = String(nodeValueGetter(node) ?? "");
    return text.length <= limit ? text : null;
  }
  let text = "";
  let current = firstChildGetter(node) as Node | null;
  while (current) {
    const kind = nodeTypeGetter(current);
    if (kind === TEXT_NODE || kind === CDATA_SECTION_NODE) {
      text += String(nodeValueGetter(current) ?? "");
      if (text.length > limit) return null;
    }
    const child = kind === ELEMENT_NODE ? (firstChildGetter(current) as Node | null) : null;
    if (child) {
      current = child;
      continue;
    }
    // Next in tree order: the next sibling of the nearest inclusive ancestor below `node` that has one.
    while (current && current !== node) {
      const next = nextSiblingGetter(current) as Node | null;
      if (next) {
        current = next;
        break;
      }
      const parent = parentNodeGetter(current) as Node | null;
      current = parent === node ? null : parent;
    }
  }
  return text;
}

export function rootNodeOf(node: Node): Node {
  return getRootNodeMethod(node) as Node;
}

/** The element's open shadow root, or null. */
export function shadowRootOf(el: Element): ShadowRoot | null {
  return shadowRootGetter(el) as ShadowRoot | null;
}

let assignedSlotGetter: ((this: Node) => unknown) | null | undefined;

/** The slot of an open shadow root that `node` (an element or a text) is drawn in, or null (not
 * slotted, a closed root's slot, a DOM without slots). */
export function assignedSlotOf(node: Node): Element | null {
  if (assignedSlotGetter === undefined) {
    const descriptor = Object.getOwnPropertyDescriptor(proto("Element"), "assignedSlot");
    assignedSlotGetter = (descriptor?.get as ((this: Node) => unknown) | undefined) ?? null;
  }
  if (!assignedSlotGetter) return null;
  const slot = assignedSlotGetter.call(node);
  return nodeTypeOf(slot) === ELEMENT_NODE ? (slot as Element) : null;
}

/** A shadow root's host. Throws for anything else (a plain DocumentFragment too). */
export function hostOf(root: Node): Element {
  const host = hostGetter(root);
  if (nodeTypeOf(host) !== ELEMENT_NODE) throw new TypeError("a fragment without a host");
  return host as Element;
}

/**
 * `document.defaultView`, read through the first prototype up Document.prototype's chain that
 * has it (browsers: Document.prototype itself): a document's named elements shadow its own
 * properties (`<img name="defaultView">` makes `document.defaultView` that image).
 */
let defaultViewGetter: ((this: unknown) => unknown) | undefined;
/** `window.frameElement`, this realm's own getter (an own property of the global object in
 * browsers), taken once: it also reads the windows of same-origin frames. */
let frameElementGetter: ((this: unknown) => unknown) | undefined;

/**
 * The frame (`<iframe>`, `<frame>`, `<object>`) that shows `doc`, or null for this realm's own
 * document (and a top-level one). Throws when it cannot tell, a document without a window (a
 * removed frame's) included: callers fail closed.
 */
export function frameElementOf(doc: Node): Element | null {
  if (!defaultViewGetter) {
    for (let p: object | null = proto("Document"); p && !defaultViewGetter; p = Object.getPrototypeOf(p) as object | null) {
      defaultViewGetter = Object.getOwnPropertyDescriptor(p, "defaultView")?.get;
    }
    if (!defaultViewGetter) throw new TypeError("Document.defaultView has no getter");
  }
  const view = defaultViewGetter.call(doc);
  if (view === globalThis) return null;
  if (view === null || typeof view !== "object") throw new TypeError("a document without a window");
  frameElementGetter ??= Object.getOwnPropertyDescriptor(globalThis, "frameElement")?.get;
  if (!frameElementGetter) throw new TypeError("window.frameElement has no getter");
  const frame = frameElementGetter.call(view);
  if (frame === null) return null;
  if (nodeTypeOf(frame) !== ELEMENT_NODE) throw new TypeError("frameElement is not an element");
  return frame as Element;
}

/** This realm's `getComputedStyle`, taken on first use (it reads elements of same-origin frames
 * too), and the style declaration's own `getPropertyValue`. */
let computedStyleOf: ((el: Element) => unknown) | undefined;
const getPropertyValueMethod = method("CSSStyleDeclaration", "getPropertyValue");

/**
 * Whether the page draws a field's characters as discs or squares (`-webkit-text-security`, from
 * its `style` or a style sheet): a PIN or a password a page keeps out of a password field (to get
 * a number pad, or no password manager's offer) says so this way. An element with no computed
 * style (a DOM without styles) says nothing. Throws when the style cannot be read (callers fail
 * closed).
 */
export function drawnAsDots(el: Element): boolean {
  if (!computedStyleOf) {
    const fn = (globalThis as unknown as { getComputedStyle?: (el: Element) => unknown }).getComputedStyle;
    if (typeof fn !== "function" || !("CSSStyleDeclaration" in globalThis)) return false;
    computedStyleOf = (element) => fn.call(globalThis, element);
  }
  const style = computedStyleOf(el);
  if (style === null || typeof style !== "object") return false;
  const value = String(getPropertyValueMethod(style, "-webkit-text-security") ?? "").trim().toLowerCase();
  return value !== "" && value !== "none";
}

/** The live value of a form field (input, textarea, select), or null for other elements. */
export function liveValueOf(el: Element): string | null {
  const tag = localNameOf(el);
  const name = tag === "input" ? "HTMLInputElement" : tag === "textarea" ? "HTMLTextAreaElement"
    : tag === "select" ? "HTMLSelectElement" : null;
  return name ? String(getter(name, "value")(el)) : null;
}

const inputLabelsGetter = getter("HTMLInputElement", "labels");
const textAreaLabelsGetter = getter("HTMLTextAreaElement", "labels");

/** The `<label>`s of an input or a textarea (its `labels`); none for other elements. */
export function labelsOf(el: Element): Element[] {
  const tag = localNameOf(el);
  const labels = tag === "input" ? inputLabelsGetter(el) : tag === "textarea" ? textAreaLabelsGetter(el) : null;
  return labels ? Array.from(labels as ArrayLike<Element>) : [];
}

const labelControlGetter = getter("HTMLLabelElement", "control");

/** The field a `<label>` labels (its `control`: by `for`, else its first labelable descendant). */
export function labelControlOf(label: Element): Element | null {
  return localNameOf(label) === "label" ? ((labelControlGetter(label) as Element | null) ?? null) : null;
}

/** `name` of the first prototype up `interfaceName`'s chain that has it (browsers: the interface
 * itself; some DOM implementations put ParentNode's methods further up). */
function inheritedMethod(interfaceName: InterfaceName, name: string): (self: unknown, ...args: unknown[]) => unknown {
  let found: Method | undefined;
  return (self, ...args) => {
    for (let p: object | null = found ? null : proto(interfaceName); p && !found; p = Object.getPrototypeOf(p) as object | null) {
      const fn = Object.getOwnPropertyDescriptor(p, name)?.value as Method | undefined;
      if (typeof fn === "function") found = fn;
    }
    if (!found) throw new TypeError(`${interfaceName}.${name} is not a method`);
    return found.apply(self, args);
  };
}

const documentQueryAll = inheritedMethod("Document", "querySelectorAll");
const fragmentQueryAll = inheritedMethod("DocumentFragment", "querySelectorAll");

/** `querySelectorAll` on a document or a shadow root (a node's root); none for anything else. */
export function queryAllIn(root: Node, selector: string): Element[] {
  const type = nodeTypeOf(root);
  const found = type === DOCUMENT_NODE ? documentQueryAll(root, selector)
    : type === DOCUMENT_FRAGMENT_NODE ? fragmentQueryAll(root, selector) : null;
  return found ? Array.from(found as ArrayLike<Element>) : [];
}

const documentById = inheritedMethod("Document", "getElementById");
const fragmentById = inheritedMethod("DocumentFragment", "getElementById");

/** The first element of id `id` in a document or a shadow root (`getElementById`: the same one
 * as the first of `queryAllIn(root, '[id="…"]')`, from the tree's id map instead of a walk); null
 * for anything else. */
export function elementByIdIn(root: Node, id: string): Element | null {
  const type = nodeTypeOf(root);
  const found = type === DOCUMENT_NODE ? documentById(root, id) : type === DOCUMENT_FRAGMENT_NODE ? fragmentById(root, id) : null;
  return found ? (found as Element) : null;
}

const isConnectedGetter = getter("Node", "isConnected");

/** Whether a node is in a document (its `isConnected`). */
export function isConnectedNode(node: Node): boolean {
  return isConnectedGetter(node) === true;
}

const firstElementChildGetter = getter("Element", "firstElementChild");
const nextElementSiblingGetter = getter("Element", "nextElementSibling");

/** The first `limit` child elements of an element (its `children`, read one by one). */
export function childElementsOf(el: Element, limit: number): Element[] {
  const out: Element[] = [];
  for (let child = firstElementChildGetter(el) as Element | null; child && out.length < limit; child = nextElementSiblingGetter(child) as Element | null) {
    out.push(child);
  }
  return out;
}

const boundingRectMethod = method("Element", "getBoundingClientRect");

/** An element's `getBoundingClientRect()` (its border box in its viewport, CSS pixels). */
export function boundingBoxOf(el: Element): DOMRect {
  return boundingRectMethod(el) as DOMRect;
}

/**
 * The shadow root `node` sits straight in (a web component that puts its elements right in its
 * root, with no wrapper: their `parentElement` is null), else null.
 */
export function shadowParentOf(node: Node): ShadowRoot | null {
  const parent = parentNodeGetter(node) as Node | null;
  if (parent === null || nodeTypeOf(parent) !== DOCUMENT_FRAGMENT_NODE) return null;
  return nodeTypeOf(hostGetter(parent)) === ELEMENT_NODE ? (parent as ShadowRoot) : null;
}

let fragmentFirstElementChild: ((this: Node) => unknown) | undefined;

/** The first `limit` child elements of an element or a shadow root (read one by one). */
export function childElementsIn(parent: Element | ShadowRoot, limit: number): Element[] {
  if (nodeTypeOf(parent) === ELEMENT_NODE) return childElementsOf(parent as Element, limit);
  if (!fragmentFirstElementChild) {
    for (let p: object | null = proto("DocumentFragment"); p && !fragmentFirstElementChild; p = Object.getPrototypeOf(p) as object | null) {
      fragmentFirstElementChild = Object.getOwnPropertyDescriptor(p, "firstElementChild")?.get as ((this: Node) => unknown) | undefined;
    }
    if (!fragmentFirstElementChild) throw new TypeError("DocumentFragment.firstElementChild has no getter");
  }
  const out: Element[] = [];
  for (let child = fragmentFirstElementChild.call(parent) as Element | null; child && out.length < limit; child = nextElementSiblingGetter(child) as Element | null) {
    out.push(child);
  }
  return out;
}
