// Issue 15, item 3: a masked value must not tell its length, and a masked <select> must show a
// neutral placeholder, never a wrong option (nor the chosen one). The page is snapshotted by
// rrweb's own serializer with Tandem's masking options and passed through the SDK's passes, as
// the SDK does before encrypting; the browser test (tests/e2e/test_masking.py) checks the
// agent's replayed DOM.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { Mirror, snapshot } from "rrweb-snapshot";
import {
  MASK, MASK_PLACEHOLDER, maskFormState, recordMaskingOptions, scrubEvent, usePolicy,
} from "../src/shared/masking.ts";
import { DEFAULT_POLICY } from "../src/shared/policy.ts";
import { window } from "./dom.ts";

afterEach(() => usePolicy(DEFAULT_POLICY));

function page(body: string): Document {
  const doc = new window.DOMParser().parseFromString("<!doctype html><html><body></body></html>", "text/html") as unknown as Document;
  doc.body.innerHTML = body;
  return doc;
}

/** What the SDK sends of `doc` (its first snapshot), as JSON. */
function capture(doc: Document): string {
  const mirror = new Mirror();
  const options = recordMaskingOptions();
  const node = snapshot(doc, { ...options, maskAllInputs: options.maskInputOptions, mirror } as Parameters<typeof snapshot>[1]);
  const event = maskFormState({ type: 2, timestamp: 1, data: { node, initialOffset: { top: 0, left: 0 } } }, (id) => mirror.getNode(id));
  assert.ok(event);
  return JSON.stringify(scrubEvent(event));
}

const COUNTRIES =
  '<option value="GB">United Kingdom</option><option value="US">United States</option><option value="FR">France</option>';

test("a masked select sends no chosen option and no option label or value, only placeholders", () => {
  const doc = page(`<label for="country">Country</label><select id="country">${COUNTRIES}</select>`);
  (doc.getElementById("country") as HTMLSelectElement).value = "US";
  const json = capture(doc);
  for (const leak of ["United States", "United Kingdom", "France", '"US"', '"GB"', '"selected"']) {
    assert.ok(!json.includes(leak), `${leak} reached the agent: ${json}`);
  }
  assert.ok(json.includes(MASK_PLACEHOLDER), "the options read as the placeholder");
  assert.ok(json.includes("Country"), "the page's own label is still shown");
});

test("an unmasked select keeps its options and its choice", () => {
  const doc = page(`<select id="size" data-tandem-unmask><option>Small</option><option>Large</option></select>`);
  (doc.getElementById("size") as HTMLSelectElement).value = "Large";
  const json = capture(doc);
  assert.ok(json.includes("Small") && json.includes("Large"), json);
  assert.ok(json.includes('"value":"Large"'), json);
});

test("masked values of any length send the same placeholder: the length never leaves", () => {
  const sent = ["Al", "Bartholomew Featherstonehaugh-Smythe"].map((value) => {
    const doc = page(`<input id="name" value="x"><textarea id="notes"></textarea>`);
    (doc.getElementById("name") as HTMLInputElement).value = value;
    (doc.getElementById("notes") as HTMLTextAreaElement).value = value;
    const json = capture(doc);
    assert.ok(!json.includes(value), json);
    assert.ok(json.includes(`"value":"${MASK_PLACEHOLDER}"`), json);
    return json.replace(/"(rootId|id)":\d+/g, "");
  });
  assert.equal(sent[0], sent[1], "a 2- and a 36-character value look the same");
});

test('data-tandem-mask="length" keeps the length, never the value', () => {
  const doc = page(`<div data-tandem-mask="length"><input id="code"></div>`);
  (doc.getElementById("code") as HTMLInputElement).value = "ABCDEFGHIJKL";
  const json = capture(doc);
  assert.ok(!json.includes("ABCDEFGHIJKL"), json);
  assert.ok(json.includes(`"value":"${MASK.repeat(12)}"`), json);
});

test("a masked select's option changed later (mutation) sends placeholders, not the label", () => {
  const doc = page(`<select id="country">${COUNTRIES}</select>`);
  const mirror = new Mirror();
  const options = recordMaskingOptions();
  snapshot(doc, { ...options, maskAllInputs: options.maskInputOptions, mirror } as Parameters<typeof snapshot>[1]);
  const option = doc.querySelector("option") as HTMLOptionElement;
  const text = option.firstChild as Text;
  const optionId = mirror.getId(option);
  const textId = mirror.getId(text);
  const mutation = {
    type: 3, timestamp: 2,
    data: { source: 0, adds: [], removes: [], texts: [{ id: textId, value: "Germany" }],
      attributes: [{ id: optionId, attributes: { value: "DE", selected: "", label: "Germany" } }] },
  };
  const json = JSON.stringify(maskFormState(mutation, (id) => mirror.getNode(id)));
  assert.ok(!json.includes("Germany") && !json.includes('"DE"') && !json.includes("selected"), json);
  const input = { type: 3, timestamp: 3, data: { source: 5, id: mirror.getId(doc.querySelector("select")), text: "US", isChecked: false } };
  assert.equal((maskFormState(input, (id) => mirror.getNode(id)) as typeof input).data.text, MASK_PLACEHOLDER);
});
