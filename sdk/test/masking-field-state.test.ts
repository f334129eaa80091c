// What a page writes on a hidden field or its wrapper about the value (docs/privacy.md): its
// validation and card-brand classes, aria-invalid, data-* would tell the agent what the value is.
import assert from "node:assert/strict";
import { test } from "node:test";
import { MASK_PLACEHOLDER, maskFormState } from "../src/shared/masking.ts";
import { document, html } from "./dom.ts";

function mounted(): { form: Element; nodes: Record<number, Element> } {
  const form = html('<form><div id="w" class="field"><label>Card <input id="card" autocomplete="cc-number"></label></div>' +
    '<div id="p" class="field"><input id="pin" type="password"></div>' +
    '<div id="s" class="field"><input id="q" data-tandem-unmask></div>' +
    '<div id="both" class="row"><input id="a"><input id="b"></div></form>');
  document.body.append(form);
  const ids = ["#w", "#card", "#p", "#pin", "#s", "#q", "#both"];
  const nodes: Record<number, Element> = {};
  ids.forEach((selector, i) => (nodes[i + 2] = form.querySelector(selector) as Element));
  return { form, nodes };
}

const mutation = (attributes: { id: number; attributes: Record<string, unknown> }[]) =>
  ({ type: 3, timestamp: 1, data: { source: 0, texts: [], removes: [], adds: [], attributes } });

test("a hidden field's and its wrapper's state classes, aria-invalid and data-* are not sent", (t) => {
  const { form, nodes } = mounted();
  t.after(() => form.remove());
  const changes = [
    { id: 2, attributes: { class: "field is-invalid card-visa has-value", "data-brand": "visa" } },
    { id: 3, attributes: { class: "input ng-valid ng-dirty brand-amex", "aria-invalid": "false", "data-tandem-mask": "length" } },
    { id: 4, attributes: { class: "field success" } },
    { id: 5, attributes: { class: "input strength-weak", "data-valid": "false", "data-rr-is-password": "true" } },
  ];
  maskFormState(mutation(changes), (id) => nodes[id] ?? null);
  assert.deepEqual(changes.map((c) => c.attributes), [
    { class: "field", "data-brand": MASK_PLACEHOLDER },
    { class: "input", "data-tandem-mask": "length" },
    { class: "field" },
    { class: "input", "data-valid": MASK_PLACEHOLDER, "data-rr-is-password": "true" },
  ]);
  // In a snapshot too.
  const serialized = { type: 2, id: 3, tagName: "input", attributes: { class: "input is-valid card-mastercard", "aria-invalid": "false" }, childNodes: [] };
  maskFormState({ type: 2, timestamp: 1, data: { node: { type: 0, id: 1, childNodes: [serialized] } } }, (id) => nodes[id] ?? null);
  assert.deepEqual(serialized.attributes, { class: "input" });
});

test("a field the site shows, and an element around several fields, keep their classes", (t) => {
  const { form, nodes } = mounted();
  t.after(() => form.remove());
  const changes = [
    { id: 6, attributes: { class: "field is-invalid" } },
    { id: 7, attributes: { class: "input is-invalid", "aria-invalid": "true", "data-state": "error" } },
    { id: 8, attributes: { class: "row has-error" } },
  ];
  maskFormState(mutation(changes), (id) => nodes[id] ?? null);
  assert.deepEqual(changes.map((c) => c.attributes), [
    { class: "field is-invalid" }, { class: "input is-invalid", "aria-invalid": "true", "data-state": "error" }, { class: "row has-error" },
  ]);
});

test("a page's own PIN widget (a value role the page labels PIN) sends no aria value, a shown one does", (t) => {
  const form = html('<form><div id="pin" role="spinbutton" aria-label="PIN"></div>' +
    '<div id="qty" role="spinbutton" aria-label="Quantity"></div></form>');
  document.body.append(form);
  t.after(() => form.remove());
  const nodes: Record<number, Element> = { 2: form.querySelector("#pin") as Element, 3: form.querySelector("#qty") as Element };
  const changes = [
    { id: 2, attributes: { "aria-valuenow": "4729", "aria-valuetext": "4729", "data-entered": "4729" } },
    { id: 3, attributes: { "aria-valuenow": "3", "aria-valuetext": "3 items" } },
  ];
  maskFormState(mutation(changes), (id) => nodes[id] ?? null);
  assert.deepEqual(changes.map((c) => c.attributes), [
    { "data-entered": MASK_PLACEHOLDER },
    { "aria-valuenow": "3", "aria-valuetext": "3 items" },
  ]);
});
