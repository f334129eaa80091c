// DOM clobbering (issue 14, item 12): a page whose form controls are named after the properties
// masking reads (`<form><input name="tagName">`, rrweb's own test page) must still be captured,
// with every secret masked. Pages are generated (fast-check), snapshotted by rrweb's serializer
// with Tandem's masking options, then passed through maskFormState and scrubEvent as the SDK does.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import fc from "fast-check";
import { Mirror, snapshot } from "rrweb-snapshot";
import {
  maskFormState, forgetSecrets, maskInputValue, maskTextContent, onMaskingFailure, recordMaskingOptions, scrubEvent, usePolicy,
} from "../src/shared/masking.ts";
import { DEFAULT_POLICY, validatePolicy } from "../src/shared/policy.ts";
import { clobberForms, html, window } from "./dom.ts";

afterEach(() => {
  usePolicy(DEFAULT_POLICY);
  onMaskingFailure(null);
});

/**
 * Names that shadow what masking (and rrweb) read on a form. Not here, but in the browser test
 * (tests/e2e/test_masking.py): `getAttribute` and `classList` (happy-dom's own getters call `this.getAttribute`,
 * which a browser's do not; likewise its selector matching reads `this.classList`), `nodeType` (rrweb's serializer then skips the form) and the tree
 * links `parentElement`, `parentNode`, `childNodes` (rrweb reads them through pristine prototypes
 * in a browser, but through the node under happy-dom, and loops).
 */
const CLOBBERING = [
  "tagName", "nodeName", "localName", "attributes", "type", "value", "hasAttribute", "form", "id",
  "closest", "matches", "textContent",
];

/** Secrets: each would be visible in the capture if masking failed open. */
const secret = fc.stringMatching(/^[a-z]{4}[0-9]{4}$/).map((s) => `S3CR${s}`);

interface Control {
  kind: "input" | "password" | "textarea" | "select" | "checkbox";
  name: string;
  value: string;
}

const control = fc.record({
  kind: fc.constantFrom<Control["kind"]>("input", "password", "textarea", "select", "checkbox"),
  name: fc.constantFrom(...CLOBBERING),
  value: secret,
// A select named `attributes` makes rrweb's own serializer throw (`form.attributes` is then the
// select's options): the SDK blocks such forms (recordMaskingOptions), shown in the browser test.
}).filter((c) => !(c.kind === "select" && c.name === "attributes"));

const page = fc.record({
  controls: fc.array(control, { minLength: 1, maxLength: 6 }),
  maskedText: secret,
  rrMaskedText: secret,
  maskClass: fc.constantFrom("private", "balance"),
  directText: fc.boolean(),
});

function controlHtml({ kind, name, value }: Control): string {
  if (kind === "textarea") return `<textarea name="${name}">${value}</textarea>`;
  // A hidden select: its option labels read as the placeholder, and none is marked chosen.
  if (kind === "select") return `<select name="${name}"><option>one</option><option selected>two</option></select>`;
  if (kind === "checkbox") return `<input type="checkbox" name="${name}" value="${value}" checked>`;
  return `<input type="${kind === "password" ? "password" : "text"}" name="${name}" value="${value}">`;
}

type Page = typeof page extends fc.Arbitrary<infer T> ? T : never;

function build(p: Page): Document {
  const doc = new window.DOMParser().parseFromString("<!doctype html><html><body></body></html>", "text/html") as unknown as Document;
  doc.body.innerHTML =
    `<h1>Checkout</h1><form id="f" class="${p.directText ? p.maskClass : ""}">` +
    `${p.directText ? p.maskedText : ""}${p.controls.map(controlHtml).join("")}` +
    `<p class="${p.maskClass}">${p.maskedText}</p><span class="rr-mask">${p.rrMaskedText}</span></form>`;
  clobberForms(doc);
  return doc;
}

/** What the SDK sends of `doc`: rrweb's serializer, then the SDK's own passes. */
function capture(doc: Document): { json: string; node: unknown } {
  const mirror = new Mirror();
  const options = recordMaskingOptions();
  const node = snapshot(doc, { ...options, maskAllInputs: options.maskInputOptions, mirror } as Parameters<typeof snapshot>[1]);
  const event = maskFormState({ type: 2, timestamp: 1, data: { node, initialOffset: { top: 0, left: 0 } } }, (id) => mirror.getNode(id));
  assert.ok(event, "the snapshot event was dropped");
  return { json: JSON.stringify(scrubEvent(event)), node };
}

test("a form with a control named tagName is captured, its value masked", () => {
  const form = html('<form><input name="tagName" value="S3CRabcd1234"><p>Hello</p></form>');
  clobberForms(form.parentNode as ParentNode);
  assert.notEqual(typeof (form as unknown as { tagName: unknown }).tagName, "string", "the form is clobbered");
  // rrweb calls maskTextFn with the form for its direct text: `el.tagName.toUpperCase` threw here.
  assert.equal(maskTextContent("Hello", form), "Hello");
  assert.equal(maskInputValue("S3CRabcd1234", form.querySelector("input")), "\u2022".repeat(8));
});

test("generated pages with clobbering names: the capture appears and no secret leaks", () => {
  fc.assert(
    fc.property(page, (p) => {
      usePolicy(validatePolicy({ version: 1, mask: [".private", ".balance"] }));
      const { json, node } = capture(build(p));
      assert.ok(node, "no snapshot");
      assert.ok(json.includes('"tagName":"form"'), "the form is in the capture");
      assert.ok(json.includes("Checkout"), "unmasked page text is in the capture");
      assert.ok(!json.includes('"selected"'), "a chosen option is hidden");
      const values = p.controls.filter((c) => c.kind !== "select").map((c) => c.value);
      for (const s of [p.maskedText, p.rrMaskedText, ...values]) {
        assert.ok(!json.includes(s), `secret ${s} leaked in ${json}`);
      }
    }),
    { numRuns: 100 },
  );
});

test("an element masking cannot read is masked whole and reported", () => {
  const failures: unknown[] = [];
  onMaskingFailure((error) => failures.push(error));
  // Not a DOM node at all: every read through the prototypes throws.
  const alien = { tagName: "P" } as unknown as Element;
  assert.equal(maskTextContent("card 4111 1111 1111 1111 Jane", alien), "\u2022\u2022\u2022\u2022 " + "\u2022".repeat(4).concat(" ").repeat(4) + "\u2022".repeat(4));
  assert.equal(maskInputValue("Jane", alien), "\u2022".repeat(8), "the fixed-width placeholder");
  assert.equal(failures.length, 2);
});

test("a node whose lookup throws has its words and choices hidden, the rest still sent", () => {
  const failures: unknown[] = [];
  onMaskingFailure((error) => failures.push(error));
  const event = {
    type: 2, timestamp: 1,
    data: { node: { type: 0, id: 1, childNodes: [
      { type: 2, id: 2, tagName: "input", attributes: { value: "S3CRabcd1234", checked: true, title: "S3CRtitle", class: "x" }, childNodes: [] },
      { type: 3, id: 3, textContent: "S3CRtext" },
    ] } },
  };
  const out = maskFormState(event, () => {
    throw new TypeError("hostile");
  });
  assert.ok(out);
  const json = JSON.stringify(out);
  assert.ok(!json.includes("S3CR"), json);
  assert.ok(json.includes('"class":"x"'));
  assert.ok(failures.length >= 2);
});

test("rrweb's privacy classes: rr-mask masks text, rr-ignore and rr-block hide values", () => {
  const page = html(
    '<div><span class="rr-mask">Jane Doe</span><div class="rr-ignore"><input data-tandem-unmask value="a"></div>' +
    '<div class="rr-block"><input data-tandem-unmask value="b"></div><input data-tandem-unmask value="c"></div>',
  );
  assert.equal(maskTextContent("Jane Doe", page.querySelector(".rr-mask")), "\u2022\u2022\u2022\u2022 \u2022\u2022\u2022");
  const [ignored, blocked, shown] = Array.from(page.querySelectorAll("input"));
  assert.equal(maskInputValue("tent", ignored), "\u2022".repeat(8));
  assert.equal(maskInputValue("tent", blocked), "\u2022".repeat(8));
  forgetSecrets(); // "tent" hidden in the fields above would be masked as their copy
  assert.equal(maskInputValue("tent", shown), "tent");
  assert.ok(recordMaskingOptions().blockSelector.split(", ").includes(".rr-block"));
});



test("a form joined by a clobbering control's form attribute is an empty box, the control's own form too", () => {
  // The control sits in one form but joins the other by `form="b"`: it is the listed element
  // (and shadows the properties) of the form it names. rrweb's `:has()` rule sees only the form
  // around it; the form it joins is blocked by the SDK's own pass.
  const doc = new window.DOMParser().parseFromString("<!doctype html><html><body></body></html>", "text/html") as unknown as Document;
  doc.body.innerHTML =
    '<form id="a"><input form="b" name="childNodes"></form>' +
    '<form id="b" class="pay"><p id="inside">S3CRjoin1234</p></form><p>S3CRafter000</p>';
  const { json } = capture(doc);
  assert.ok(!json.includes("S3CRjoin1234"), "the joined form's content was sent");
  assert.ok(json.includes("S3CRafter000"), "the page around the forms is sent");
  assert.match(json, /"class":"pay","rr_width":"[\d.]+px","rr_height":"[\d.]+px"/);
});
