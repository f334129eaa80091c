// Masking leaks a review found (docs/privacy.md): text typed into a contenteditable box, a
// password revealed before sharing started, and what a masked region's attributes carry.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  MASK, MASK_PLACEHOLDER, forgetSecrets, forgetSent, hiddenFromAgent, isSensitiveField, maskFormState, maskInputValue, maskTextContent, usePolicy, watchPasswordFields,
} from "../src/shared/masking.ts";
import { DEFAULT_POLICY, validatePolicy } from "../src/shared/policy.ts";
import { document, html, window } from "./dom.ts";

// The page's MutationObserver (watchPasswordFields), as a browser has it.
(globalThis as { MutationObserver?: unknown }).MutationObserver ??= window.MutationObserver;

/** The first text node under the element matching `selector` in `root`. */
function textIn(root: Element, selector: string): Text {
  const el = root.matches(selector) ? root : root.querySelector(selector);
  const text = el?.firstChild;
  assert.ok(text && text.nodeType === 3, `no text in ${selector}`);
  return text as Text;
}

const mask = (text: Text) => maskTextContent(text.data, text.parentElement);

test("text in a contenteditable box is hidden like a field's value", () => {
  const box = html('<div contenteditable="true"><p>4111111111111111</p><p>Dear Sir</p></div>');
  assert.equal(mask(textIn(box, "p")), MASK_PLACEHOLDER);
  assert.equal(mask(textIn(box, "p:last-child")), MASK_PLACEHOLDER);
  assert.equal(maskTextContent("  \n", box), "  \n", "whitespace alone tells nothing");
  for (const value of ["", "plaintext-only"]) {
    const other = html(`<div contenteditable="${value}">Dear Sir</div>`);
    assert.equal(mask(textIn(other, "div")), MASK_PLACEHOLDER, value);
  }
  // A contenteditable="false" island, and page text, stay page text.
  assert.equal(mask(textIn(html('<div contenteditable="false">Price list</div>'), "div")), "Price list");
  assert.equal(mask(textIn(html("<div>Price list</div>"), "div")), "Price list");
});

test("an unmasked contenteditable box shows its words but never 7 digits in a row", () => {
  const box = html('<div data-tandem-unmask><div contenteditable="true">Card 4111111 and 12 apples</div></div>');
  assert.equal(mask(textIn(box, "[contenteditable]")), `Card ${MASK.repeat(7)} and 12 apples`);
  // A card typed key by key passes through prefixes that are not Luhn-valid.
  assert.equal(maskTextContent("411111111111111", box.querySelector("[contenteditable]")), MASK.repeat(15));
  // Split over the editor's formatting: each part is short, the run is not.
  const split = html('<div data-tandem-unmask><div contenteditable><b>41111</b><i>11111</i></div></div>');
  assert.equal(mask(textIn(split, "b")), MASK.repeat(5));
  assert.equal(mask(textIn(split, "i")), MASK.repeat(5));
  // Keeping length, where the site asks for it.
  const kept = html('<div data-tandem-mask="length" contenteditable>Dear Sir</div>');
  assert.equal(mask(textIn(kept, "div")), MASK.repeat(8));
});

test("a password field shown as text (a 'show password' toggle) is still a password", async () => {
  const form = html('<form data-tandem-unmask><input id="secret" type="password"><input id="later"></form>');
  document.body.append(form);
  try {
    watchPasswordFields(document);
    const secret = form.querySelector("#secret") as HTMLInputElement;
    const later = form.querySelector("#later") as HTMLInputElement;
    secret.type = "text"; // revealed: rrweb never saw it (no data-rr-is-password)
    assert.equal(secret.hasAttribute("data-rr-is-password"), false);
    assert.equal(isSensitiveField(secret), true, "known before the observer's callback ran");
    assert.equal(maskInputValue("Hunter2", secret), MASK_PLACEHOLDER);
    later.type = "password";
    later.type = "text";
    await new Promise((resolve) => setTimeout(resolve, 0)); // the observer's own delivery
    assert.equal(isSensitiveField(later), true);
    assert.equal(maskInputValue("Hunter2", later), MASK_PLACEHOLDER);
    assert.equal(maskInputValue("jane", html("<input data-tandem-unmask>")), "jane", "other fields stay shown");
  } finally {
    form.remove();
  }
});

test("a field named or labelled by id as a password is hidden whatever its type", () => {
  for (const attrs of ['name="password"', 'id="user-passwd"', 'name="confirmPassword"', 'id="pwd"', 'name="passcode"']) {
    assert.equal(maskInputValue("Hunter2", html(`<input type="text" data-tandem-unmask ${attrs}>`)), MASK_PLACEHOLDER, attrs);
  }
  assert.equal(maskInputValue("Jane", html('<input name="passenger" data-tandem-unmask>')), "Jane");
  assert.equal(maskInputValue("Hunter2", html('<input autocomplete="current-password" data-tandem-unmask>')), MASK_PLACEHOLDER);
});

test("a masked region's attributes keep only structure: links their scheme, styles no address", () => {
  usePolicy(validatePolicy({ version: 1, mask: [".pii"] }));
  try {
    const region = html('<div class="pii"><a id="a" href="mailto:jane@example.org">x</a><time id="t" datetime="1984-02-29">x</time>' +
      '<a id="d" href="/patients/diagnosis-hiv-positive/">x</a><a id="p" href="tel:+447700900123">x</a><span id="s" style="background:url(/sig.svg)">x</span></div>');
    const nodes: Record<number, Element> = {};
    const serialized = ["a", "t", "d", "p", "s"].map((id, i) => {
      const el = region.querySelector(`#${id}`) as Element;
      nodes[i + 3] = el;
      const attributes: Record<string, string> = {};
      for (const attr of Array.from(el.attributes)) attributes[attr.name] = attr.value;
      return { type: 2, id: i + 3, tagName: el.localName, attributes, childNodes: [] };
    });
    const event = { type: 2, timestamp: 1, data: { node: { type: 0, id: 1, childNodes: serialized } } };
    maskFormState(event, (id) => nodes[id] ?? null);
    const [mail, time, diagnosis, phone, signed] = serialized.map((node) => node.attributes);
    assert.equal(mail.href, "mailto:");
    assert.equal(phone.href, "tel:");
    assert.equal(diagnosis.href, "#");
    assert.equal(time.datetime, MASK.repeat(10));
    assert.equal(signed.style, "background:none");
    assert.deepEqual([mail.id, time.id], ["a", "t"], "structure stays");
    // An attribute changed later, too.
    const change = { type: 3, timestamp: 1, data: { source: 0, texts: [], adds: [], removes: [], attributes: [{ id: 3, attributes: { href: "mailto:late@example.org", title: "Jane" } }] } };
    maskFormState(change, (id) => nodes[id] ?? null);
    assert.deepEqual(change.data.attributes[0].attributes, { href: "mailto:", title: MASK.repeat(4) });
  } finally {
    usePolicy(DEFAULT_POLICY);
  }
});

test("a text field the page says is a password is hidden; one it says is something else is not", () => {
  const said = [
    '<label for="f">Password</label><input id="f">', '<label>Kennwort <input id="f"></label>',
    '<input id="f" aria-label="PIN">', '<input id="f" placeholder="Contraseña">', '<input id="f" title="Hasło">',
    '<span id="l">Passwort</span><input id="f" aria-labelledby="x l">',
    '<input id="f" aria-describedby="h"><small id="h">Your password has 12 characters</small>',
    '<input id="f"><button aria-controls="other f">Show password</button>', '<input id="f" passwordrules="minlength: 8;">',
  ];
  const notSaid = [
    '<label for="f">Shipping address</label><input id="f">', '<input id="f" placeholder="Passport number">',
    '<input id="f" aria-label="Spinach">', '<input id="f"><button aria-controls="g">Show password</button><input id="g" type="password">',
  ];
  for (const [markup, expected] of [...said.map((m) => [m, true] as const), ...notSaid.map((m) => [m, false] as const)]) {
    const form = html(`<form data-tandem-unmask>${markup}</form>`);
    document.body.append(form);
    try {
      const field = form.querySelector("#f") as Element;
      assert.equal(isSensitiveField(field), expected, markup);
      forgetSecrets(); // a value hidden in an earlier field would be masked here as its copy
      assert.equal(maskInputValue("Hunter2", field) === "Hunter2", !expected, markup);
      // The customer's outline reads every field in one pass (labels and toggles looked up once).
      assert.equal(hiddenFromAgent(document).includes(field), expected, markup);
    } finally {
      form.remove();
    }
  }
});

test("in one pass over many fields, each is judged by its own labels and toggles, in shadow roots too", () => {
  const form = html(`<form data-tandem-unmask>
    <input id="a" aria-labelledby="la"><span id="la">Street</span>
    <input id="b" aria-labelledby="lb"><span id="lb">Passwort</span>
    <input id="c"><input id="d"><button aria-controls="x	c  y">Show password</button>
    <input id="e"><button aria-controls="e2">Show password</button>
    <label for="g">Kennwort</label><input id="g"><label>PIN <input id="h"></label><label for="i">Street</label><input id="i">
    </form>`);
  const host = document.createElement("div");
  form.append(host);
  const shadow = host.attachShadow({ mode: "open" });
  shadow.innerHTML = '<div data-tandem-unmask><input id="s"><button aria-controls="s">Show password</button>' +
    '<input id="t" aria-describedby="ht"><small id="ht">Your PIN</small><input id="c"></div>';
  document.body.append(form);
  try {
    const outlined = new Set(hiddenFromAgent(document));
    const judged = (field: Element) => [outlined.has(field), isSensitiveField(field)];
    const page = (id: string) => form.querySelector(`#${id}`) as Element;
    const inShadow = (id: string) => shadow.querySelector(`#${id}`) as Element;
    assert.deepEqual(judged(page("a")), [false, false]);
    assert.deepEqual(judged(page("b")), [true, true]);
    assert.deepEqual(judged(page("c")), [true, true], "a toggle naming several fields names each");
    assert.deepEqual(judged(page("d")), [false, false]);
    assert.deepEqual(judged(page("e")), [false, false], "a toggle names ids, not prefixes");
    assert.deepEqual(judged(page("g")), [true, true]);
    assert.deepEqual(judged(page("h")), [true, true]);
    assert.deepEqual(judged(page("i")), [false, false]);
    assert.deepEqual(judged(inShadow("s")), [true, true]);
    assert.deepEqual(judged(inShadow("t")), [true, true]);
    assert.deepEqual(judged(inShadow("c")), [false, false], "the page's toggle does not reach into a shadow root");
  } finally {
    form.remove();
  }
});

test("a frame's srcdoc is never sent: in a snapshot, an added frame or a changed attribute", () => {
  const frame = html('<iframe srcdoc="<input type=password value=Hunter2>"></iframe>');
  const nodes: Record<number, Element> = { 2: frame };
  const node = { type: 2, id: 2, tagName: "iframe", attributes: { srcdoc: "<input type=password value=Hunter2>", width: "40" }, childNodes: [] };
  maskFormState({ type: 2, timestamp: 1, data: { node: { type: 0, id: 1, childNodes: [node] } } }, (id) => nodes[id] ?? null);
  assert.deepEqual(node.attributes, { width: "40" });
  const added = { type: 2, id: 2, tagName: "iframe", attributes: { srcdoc: "<p class=rr-mask>secret</p>" }, childNodes: [] };
  const change = { id: 2, attributes: { srcdoc: "<p class=rr-mask>later</p>" } };
  const mutation = { type: 3, timestamp: 1, data: { source: 0, texts: [], removes: [], adds: [{ parentId: 1, node: added }], attributes: [change] } };
  maskFormState(mutation, (id) => nodes[id] ?? null);
  assert.deepEqual(added.attributes, {});
  assert.deepEqual(change.attributes, {});
  // Also when the element cannot be looked up (masking fails closed around it).
  const unknown = { id: 99, attributes: { srcdoc: "<p>x</p>" } };
  maskFormState({ type: 3, timestamp: 1, data: { source: 0, texts: [], removes: [], adds: [], attributes: [unknown] } }, () => null);
  assert.deepEqual(unknown.attributes, {});
});

test("a hidden field's attributes that repeat its value (or its start) are hidden with it", () => {
  const form = html('<form><input id="e" data-value="x" placeholder="Email"><input id="p" type="password">' +
    '<input id="c" type="checkbox" aria-label="on"><input id="s" data-tandem-unmask data-value="x"></form>');
  const [email, pw, box, shown] = ["#e", "#p", "#c", "#s"].map((s) => form.querySelector(s) as HTMLInputElement);
  email.value = "jane@example.org";
  pw.value = "a-password-longer-than-thirty-characters";
  box.checked = true;
  shown.value = "search words";
  const nodes: Record<number, Element> = { 2: email, 3: pw, 4: box, 5: shown };
  const serialized = { type: 2, id: 2, tagName: "input", attributes: { id: "e", "data-value": "jane@example.org", placeholder: "Email" }, childNodes: [] };
  maskFormState({ type: 2, timestamp: 1, data: { node: { type: 0, id: 1, childNodes: [serialized] } } }, (id) => nodes[id] ?? null);
  assert.deepEqual(serialized.attributes, { id: "e", "data-value": MASK_PLACEHOLDER, placeholder: "Email" });
  const changes = [
    { id: 3, attributes: { "ng-reflect-model": "a-password-longer-than-thirty-" } },
    { id: 4, attributes: { "aria-label": "on" } },
    { id: 5, attributes: { "data-value": "search words" } },
    // Its shape stays, and so does a short word that happens to hold a short value.
    { id: 2, attributes: { size: "jane@example.org", "aria-describedby": "e-hint" } },
  ];
  maskFormState({ type: 3, timestamp: 1, data: { source: 0, texts: [], removes: [], adds: [], attributes: changes } }, (id) => nodes[id] ?? null);
  assert.deepEqual(changes.map((c) => c.attributes), [
    { "ng-reflect-model": MASK_PLACEHOLDER }, { "aria-label": "on" }, { "data-value": "search words" },
    // A shape attribute is not a value copy of the field, but it holds the hidden value, and
    // every string of an event is searched for copies of hidden values (masking-copies.test.ts).
    { size: MASK_PLACEHOLDER, "aria-describedby": "e-hint" },
  ]);
  email.value = "e";
  forgetSent(); // as a new recording: else the placeholder and `e-hint` again are not sent again
  const short = [{ id: 2, attributes: { "aria-describedby": "e-hint", "data-value": "e" } }];
  maskFormState({ type: 3, timestamp: 1, data: { source: 0, texts: [], removes: [], adds: [], attributes: short } }, (id) => nodes[id] ?? null);
  assert.deepEqual(short[0].attributes, { "aria-describedby": "e-hint", "data-value": MASK_PLACEHOLDER });
});

test("a frame's, embed's or object's data: address is never sent; an image's is", () => {
  const page = html('<div><iframe id="f"></iframe><object id="o"></object><img id="i"></div>');
  const [frame, object, image] = ["#f", "#o", "#i"].map((s) => page.querySelector(s) as Element);
  const nodes: Record<number, Element> = { 2: frame, 3: object, 4: image };
  const doc = "data:text/html,<p>secret</p>";
  const pic = "data:image/png;base64,AAAA";
  const children = [
    { type: 2, id: 2, tagName: "iframe", attributes: { rr_src: doc, width: "4" }, childNodes: [] },
    { type: 2, id: 3, tagName: "object", attributes: { data: ` ${doc.toUpperCase()}` }, childNodes: [] },
    { type: 2, id: 4, tagName: "img", attributes: { src: pic }, childNodes: [] },
    { type: 2, id: 5, tagName: "embed", attributes: { src: doc }, childNodes: [] },
  ];
  maskFormState({ type: 2, timestamp: 1, data: { node: { type: 0, id: 1, childNodes: children } } }, (id) => nodes[id] ?? null);
  assert.deepEqual(children.map((c) => c.attributes), [{ width: "4" }, {}, { src: pic }, {}]);
  const changes = [{ id: 2, attributes: { src: doc } }, { id: 4, attributes: { src: pic } }, { id: 99, attributes: { src: doc } }];
  maskFormState({ type: 3, timestamp: 1, data: { source: 0, texts: [], removes: [], adds: [], attributes: changes } }, (id) => nodes[id] ?? null);
  assert.deepEqual(changes.map((c) => c.attributes), [{}, { src: pic }, {}]);
});

test("a comment's text is never sent: in a snapshot, an added comment or a changed one", () => {
  usePolicy(validatePolicy({ version: 1, mask: [".pii"] }));
  try {
    const region = html('<div class="pii"><!-- jane@example.org --><p>x</p></div>');
    const comment = region.firstChild as Node;
    const nodes: Record<number, Node> = { 2: region, 3: comment };
    const serialized = { type: 5, id: 3, textContent: " jane@example.org " };
    const outside = { type: 5, id: 4, textContent: "[if gte mso 9]><o:Author>Jane Doe</o:Author>" };
    maskFormState({ type: 2, timestamp: 1, data: { node: { type: 0, id: 1, childNodes: [serialized, outside] } } }, (id) => nodes[id] ?? null);
    assert.deepEqual([serialized.textContent, outside.textContent], ["", ""]);
    const change = { id: 3, value: " late@example.org " };
    maskFormState({ type: 3, timestamp: 1, data: { source: 0, texts: [change], removes: [], adds: [], attributes: [] } }, (id) => nodes[id] ?? null);
    assert.equal(change.value, "");
  } finally {
    usePolicy(DEFAULT_POLICY);
  }
});
