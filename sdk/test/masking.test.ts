import assert from "node:assert/strict";
import { test } from "node:test";
import {
  forgetSecrets, luhnValid, maskCardNumbers, maskInputValue, maskLongDigitRuns, maskTextContent,
  scrubEvent, type MaskableElement, MASK, MASK_PLACEHOLDER,
} from "../src/shared/masking.ts";
import { document } from "./dom.ts";

/** A field element (happy-dom); `unmaskedAncestor` puts it in a `data-tandem-unmask` container. */
function field(tag: string, attrs: Record<string, string> = {}, unmaskedAncestor = false): MaskableElement {
  const el = document.createElement(tag.toLowerCase());
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, value);
  const parent = document.createElement("div");
  if (unmaskedAncestor) parent.setAttribute("data-tandem-unmask", "");
  parent.append(el);
  return el;
}

test("luhn accepts valid card numbers and rejects others", () => {
  assert.equal(luhnValid("4111111111111111"), true);
  assert.equal(luhnValid("4111111111111112"), false);
  assert.equal(luhnValid("4222222222222"), true); // 13 digits
  assert.equal(luhnValid("6011000990139424"), true);
  assert.equal(luhnValid(""), false);
  assert.equal(luhnValid("41111a1111111111"), false);
});

test("card numbers in text are masked with separators kept", () => {
  assert.equal(maskCardNumbers("card 4111 1111 1111 1111 ok"), `card ${"••••"} ${"••••"} ${"••••"} ${"••••"} ok`.replace(/•/g, MASK));
  assert.equal(maskCardNumbers("4111-1111-1111-1111"), "••••-••••-••••-••••".replace(/•/g, MASK));
  assert.equal(maskCardNumbers("x4111111111111111y"), `x${MASK.repeat(16)}y`);
});

test("non-Luhn digit runs in text are left alone", () => {
  assert.equal(maskCardNumbers("order 4111111111111112"), "order 4111111111111112");
  assert.equal(maskCardNumbers("call 555 0100 or 555 0199"), "call 555 0100 or 555 0199");
  assert.equal(maskCardNumbers(""), "");
});

test("a card number inside a longer digit run is still masked", () => {
  const glued = maskCardNumbers("99" + "4111111111111111" + "7777");
  assert.ok(!glued.includes("4111111111111111"));
  const grouped = maskCardNumbers("ref 2024 4111 1111 1111 1111");
  assert.ok(grouped.startsWith("ref 2024 "), grouped);
  assert.ok(!grouped.includes("4111"));
});

test("19-digit cards are masked; 20 unrelated digits are not masked as a whole", () => {
  assert.equal(luhnValid("6304000000000000000"), true);
  assert.equal(maskCardNumbers("6304000000000000000"), MASK.repeat(19));
});

test("masking a long digit string stays fast", () => {
  const digits = "1234567890".repeat(5000);
  // CPU time, not wall time: the work done, however busy the machine is with other processes.
  const before = process.cpuUsage();
  maskCardNumbers(digits);
  const used = process.cpuUsage(before);
  const ms = (used.user + used.system) / 1000;
  assert.ok(ms < 2000, `${ms} ms of CPU`);
});

test("inputs are masked by default as a fixed-width placeholder that hides the length", () => {
  assert.equal(maskInputValue("Jane", field("INPUT")), MASK_PLACEHOLDER);
  assert.equal(maskInputValue("émoji 😀", field("INPUT")), MASK_PLACEHOLDER);
  assert.equal(maskInputValue("a much longer value than eight", field("INPUT")), MASK_PLACEHOLDER);
  assert.equal(maskInputValue("", field("INPUT")), "", "an empty field shows empty");
});

test('data-tandem-mask="length" keeps a hidden value\'s length, on the field or an ancestor', () => {
  assert.equal(maskInputValue("Jane", field("INPUT", { "data-tandem-mask": "length" })), MASK.repeat(4));
  assert.equal(maskInputValue("émoji 😀", field("INPUT", { "data-tandem-mask": "length" })), MASK.repeat(7));
  const form = document.createElement("form");
  form.setAttribute("data-tandem-mask", "length");
  const input = document.createElement("input");
  form.append(input);
  assert.equal(maskInputValue("secret", input), MASK.repeat(6));
  // It never shows a value, only its length.
  assert.equal(maskInputValue("secret", field("INPUT", { "data-tandem-mask": "length", type: "password" })), MASK.repeat(6));
});

test("data-tandem-unmask shows a value, on the field or an ancestor", () => {
  assert.equal(maskInputValue("tent", field("INPUT", { "data-tandem-unmask": "" })), "tent");
  assert.equal(maskInputValue("tent", field("INPUT", {}, true)), "tent");
});

test("sensitive fields are never unmasked", () => {
  const unmask = { "data-tandem-unmask": "" };
  const cases: Record<string, string>[] = [
    { type: "password" }, { type: "PASSWORD" }, { type: "hidden" }, { autocomplete: "cc-number" },
    { autocomplete: "billing cc-csc" }, { autocomplete: "one-time-code" }, { autocomplete: "new-password" },
    { "data-rr-is-password": "" },
  ];
  for (const attrs of cases) {
    assert.equal(maskInputValue("secret", field("INPUT", { ...unmask, ...attrs })), MASK_PLACEHOLDER, JSON.stringify(attrs));
  }
});

test("card numbers and partial card numbers in unmasked inputs are masked", () => {
  const unmasked = field("INPUT", { "data-tandem-unmask": "" });
  assert.equal(maskInputValue("4242 4242 4242 4242", unmasked), "•••• •••• •••• ••••".replace(/•/g, MASK));
  // A card typed key by key: its 15-digit prefix is not Luhn-valid but must not show either.
  assert.equal(maskInputValue("424242424242424", unmasked), MASK.repeat(15));
  assert.equal(maskInputValue("4242 424", unmasked), `${MASK.repeat(4)} ${MASK.repeat(3)}`);
  // The runs masked above are remembered (a page's preview of them is masked): "424242" is part
  // of them. Typed afresh, six digits show.
  assert.equal(maskInputValue("424242", unmasked), MASK.repeat(6));
  forgetSecrets();
  assert.equal(maskInputValue("424242", unmasked), "424242");
  assert.equal(maskLongDigitRuns("qty 2, zip 90210"), "qty 2, zip 90210");
});

test("textarea text follows input rules", () => {
  assert.equal(maskTextContent("my notes, longer", field("TEXTAREA")), MASK_PLACEHOLDER);
  assert.equal(maskTextContent("my notes", field("TEXTAREA", { "data-tandem-unmask": "" })), "my notes");
  assert.equal(maskTextContent("Hello", field("P")), "Hello");
});

test("scrub masks card numbers in every string of an event, leaving numbers alone", () => {
  const event = {
    type: 3,
    timestamp: 1764000000000,
    data: { attributes: [{ id: 4, attributes: { title: "4111 1111 1111 1111", href: "/x?c=4111111111111111" } }],
      texts: ["fine", ["4111111111111111"]] },
  };
  const scrubbed = scrubEvent(event);
  const text = JSON.stringify(scrubbed);
  assert.ok(!text.includes("4111"));
  assert.equal(scrubbed.timestamp, 1764000000000);
  assert.equal(scrubbed.data.texts[0], "fine");
});

test("scrub reaches strings nested deeper than any fixed limit", () => {
  type Tree = { childNodes: Tree[]; text?: string };
  const leaf: Tree = { childNodes: [], text: "4111 1111 1111 1111" };
  let tree = leaf;
  for (let i = 0; i < 20_000; i++) tree = { childNodes: [tree] };
  scrubEvent(tree);
  assert.equal(leaf.text, "•••• •••• •••• ••••".replace(/•/g, MASK));
});

import { maskFormState } from "../src/shared/masking.ts";

function snapshotOf(...fields: object[]) {
  return { type: 2, timestamp: 1, data: { node: { type: 0, id: 1, childNodes: [{ type: 2, id: 2, tagName: "form", attributes: {}, childNodes: fields }] } } };
}

test("a cleared field's default value attribute is masked in snapshots", () => {
  const els: Record<number, MaskableElement> = {
    3: field("INPUT", { value: "default-secret" }), 4: field("INPUT", { "data-tandem-unmask": "", value: "shown" }),
    5: field("INPUT", { value: "default-secret" }),
  };
  (els[5] as HTMLInputElement).value = ""; // the customer cleared it
  const event = snapshotOf(
    { type: 2, id: 3, tagName: "input", attributes: { value: "default-secret" }, childNodes: [] },
    { type: 2, id: 4, tagName: "input", attributes: { value: "shown" }, childNodes: [] },
    { type: 2, id: 5, tagName: "input", attributes: { value: "default-secret" }, childNodes: [] },
  );
  maskFormState(event, (id) => els[id] ?? null);
  const [masked, shown, emptied] = event.data.node.childNodes[0].childNodes as { attributes: Record<string, unknown> }[];
  assert.equal(masked.attributes.value, MASK_PLACEHOLDER);
  assert.equal(shown.attributes.value, "shown");
  assert.equal(emptied.attributes.value, "");
});

test("button labels stay; unknown nodes (an option too) are fully masked", () => {
  const event = snapshotOf(
    { type: 2, id: 5, tagName: "input", attributes: { type: "submit", value: "Place order" }, childNodes: [] },
    { type: 2, id: 6, tagName: "option", attributes: { value: "b" }, childNodes: [] },
    { type: 2, id: 7, tagName: "input", attributes: { value: "abc" }, childNodes: [] },
  );
  maskFormState(event, () => null);
  const [submit, option, unknown] = event.data.node.childNodes[0].childNodes as { attributes: Record<string, unknown> }[];
  assert.equal(submit.attributes.value, "Place order");
  assert.equal(option.attributes.value, MASK_PLACEHOLDER, "an option of an unknown select: fail closed");
  assert.equal(unknown.attributes.value, MASK_PLACEHOLDER);
});

test("checkbox and option choices are hidden unless unmasked", () => {
  const els: Record<number, MaskableElement> = {
    3: field("INPUT", { type: "checkbox" }),
    4: field("INPUT", { type: "checkbox", "data-tandem-unmask": "" }),
    5: field("OPTION", {}),
  };
  const event = snapshotOf(
    { type: 2, id: 3, tagName: "input", attributes: { type: "checkbox", checked: true }, childNodes: [] },
    { type: 2, id: 4, tagName: "input", attributes: { type: "checkbox", checked: true }, childNodes: [] },
    { type: 2, id: 5, tagName: "option", attributes: { selected: true }, childNodes: [] },
  );
  maskFormState(event, (id) => els[id] ?? null);
  const [hidden, shown, option] = event.data.node.childNodes[0].childNodes as { attributes: Record<string, unknown> }[];
  assert.equal("checked" in hidden.attributes, false);
  assert.equal(shown.attributes.checked, true);
  assert.equal("selected" in option.attributes, false);

  // A hidden box's input event would tell that it changed (each change is one): none goes.
  const input = { type: 3, timestamp: 1, data: { source: 5, id: 3, text: "on", isChecked: true } };
  assert.equal(maskFormState(input, (id) => els[id] ?? null), null);

  const mutation = {
    type: 3, timestamp: 1,
    data: { source: 0, texts: [], removes: [], adds: [{ parentId: 2, nextId: null, node: { type: 2, id: 8, tagName: "input", attributes: { value: "late" }, childNodes: [] } }],
      attributes: [{ id: 3, attributes: { checked: "" } }, { id: 4, attributes: { checked: "" } }, { id: 5, attributes: { selected: "", class: "x" } }] },
  };
  maskFormState(mutation, (id) => els[id] ?? null);
  assert.equal(mutation.data.adds[0].node.attributes.value, MASK_PLACEHOLDER);
  // The hidden box's change, emptied, goes no more.
  assert.deepEqual(mutation.data.attributes.map((a) => a.attributes), [{ checked: "" }, { class: "x" }]);
});
