// Code boxes a web component puts straight in its shadow root (no wrapper element: each box's
// `parentElement` is null), and answers kept per tree that depend on what lies outside it (a
// component's host, its label or legend): ../src/shared/masking.ts, isSplitNumberBox.
import assert from "node:assert/strict";
import { test } from "node:test";
import { forgetSecrets, maskCopies, maskFormState, maskInputValue } from "../src/shared/masking.ts";
import { boxes, part } from "./box-rows.ts";
import { document, html, window } from "./dom.ts";

(globalThis as { MutationObserver?: unknown }).MutationObserver ??= window.MutationObserver;

const delivered = () => new Promise((resolve) => setTimeout(resolve, 0));

/** A host in a form the site shows, its shadow root holding `markup` straight; its boxes. */
function component(t: { after: (fn: () => void) => void }, outer: string, markup: string): HTMLInputElement[] {
  const form = html(`<form data-tandem-unmask>${outer}</form>`);
  document.body.append(form);
  t.after(() => form.remove());
  const root = (form.querySelector("#host") as HTMLElement).attachShadow({ mode: "open" });
  root.innerHTML = markup;
  return Array.from(root.querySelectorAll("input")) as HTMLInputElement[];
}

test("one-character boxes straight in a shadow root are a code's pieces: no character shown", (t) => {
  const all = component(t, '<otp-row id="host"></otp-row>', boxes(6, () => 'maxlength="1" data-tandem-unmask'));
  t.after(forgetSecrets);
  for (const box of all) assert.doesNotMatch(maskInputValue("7", box), /7/);
  assert.doesNotMatch(maskInputValue("K", all[0]), /K/, "a code of letters too");
});

test("two boxes straight in a shadow root, the host labelled a code's, are its pieces", (t) => {
  const all = component(t, '<pin-pad id="host" aria-label="Enter your PIN"></pin-pad>',
    boxes(2, () => 'maxlength="2" data-tandem-unmask'));
  t.after(forgetSecrets);
  assert.doesNotMatch(maskInputValue("42", all[0]), /4|2/);
});

test("the code typed in boxes straight in a shadow root is found where the page joins it", (t) => {
  const all = component(t, '<otp-row id="host"></otp-row>', boxes(6, () => 'maxlength="1" data-tandem-unmask'));
  t.after(forgetSecrets);
  "482913".split("").forEach((digit, i) => {
    all[i].value = digit;
    maskInputValue(digit, all[i]);
  });
  maskFormState({ type: 3, timestamp: 1, data: { source: 5, id: 1, text: "3", isChecked: false } }, (id) => (id === 1 ? all[5] : null));
  assert.doesNotMatch(maskCopies("Code entered: 482913"), /482913/);
});

test("a date's row straight in a shadow root stays shown, as in a wrapper", (t) => {
  const all = component(t, '<date-row id="host"></date-row>',
    boxes(8, (n) => `maxlength="1" data-tandem-unmask autocomplete="bday-${part(n)}"`));
  t.after(forgetSecrets);
  assert.equal(maskInputValue("7", all[0]), "7");
});

test("boxes in a component whose host's label becomes a code's later are its pieces from then on", async (t) => {
  // The answer for the boxes is kept per tree (their shadow root) until that tree changes; the
  // host's label lies in the page around it: a change there was not seen, the boxes stayed shown.
  const all = component(t, '<code-boxes id="host"><label id="say">Amount</label></code-boxes>',
    `<div>${boxes(2, () => 'maxlength="2" data-tandem-unmask')}</div>`);
  t.after(forgetSecrets);
  assert.equal(maskInputValue("42", all[0]), "42", "two short boxes under 'Amount': shown");
  assert.equal(maskInputValue("42", all[0]), "42", "kept");
  const say = document.getElementById("say") as HTMLElement;
  (say.firstChild as Text).data = "PIN"; // in the same task
  assert.doesNotMatch(maskInputValue("42", all[0]), /4|2/);
  await delivered();
  assert.doesNotMatch(maskInputValue("42", all[1]), /4|2/, "and after the change is delivered");
});

test("boxes straight in a shadow root whose host is named a code's later are its pieces", async (t) => {
  const all = component(t, '<pin-pad id="host" aria-label="Quantity"></pin-pad>', boxes(2, () => 'maxlength="2" data-tandem-unmask'));
  t.after(forgetSecrets);
  assert.equal(maskInputValue("42", all[0]), "42");
  await delivered();
  (document.getElementById("host") as HTMLElement).setAttribute("aria-label", "Enter your PIN");
  await delivered();
  assert.doesNotMatch(maskInputValue("42", all[0]), /4|2/);
});

/** A row of `count` hosts in a form the site shows, each a component whose shadow root holds
 * one box straight (`attrs(n)`); the boxes. */
function boxPerComponent(
  t: { after: (fn: () => void) => void }, count: number, attrs: (n: number) => string, tag = "otp-digit", wrap = (box: string) => box,
): HTMLInputElement[] {
  const form = html(`<form data-tandem-unmask><div class="row">${`<${tag}></${tag}>`.repeat(count)}</div></form>`);
  document.body.append(form);
  t.after(() => form.remove());
  return Array.from(form.querySelectorAll(tag)).map((host, i) => {
    const root = (host as HTMLElement).attachShadow({ mode: "open" });
    root.innerHTML = wrap(`<input ${attrs(i + 1)}>`);
    return root.querySelector("input") as HTMLInputElement;
  });
}

test("one-character boxes each in its own component's shadow root are a code's pieces", (t) => {
  // A component per digit (`<otp-digit>` six times): each box is alone in its tree, so its row
  // was never read (the look for the row stopped at the shadow root), and each digit was shown.
  const all = boxPerComponent(t, 6, () => 'maxlength="1" data-tandem-unmask');
  t.after(forgetSecrets);
  for (const [i, box] of all.entries()) assert.doesNotMatch(maskInputValue(String(i + 2), box), /\d/);
  // And the code is looked for where the page joins it (the row is the boxes' group).
  "482913".split("").forEach((digit, i) => {
    all[i].value = digit;
    maskInputValue(digit, all[i]);
  });
  maskFormState({ type: 3, timestamp: 1, data: { source: 5, id: 1, text: "3", isChecked: false } }, (id) => (id === 1 ? all[5] : null));
  assert.doesNotMatch(maskCopies("Code entered: 482913"), /482913/);
});

test("a component per box added later: its row is read again, not the answer kept alone", async (t) => {
  // The first component renders before the others (a framework's rendering in turns): a box
  // alone is no piece, but that answer must not outlive the row's other boxes.
  const all = boxPerComponent(t, 6, () => 'maxlength="1" data-tandem-unmask');
  t.after(forgetSecrets);
  const rest = all.slice(1).map((box) => box.getRootNode() as ShadowRoot);
  for (const root of rest) root.replaceChildren();
  assert.equal(maskInputValue("5", all[0]), "5", "alone: shown");
  for (const root of rest) root.innerHTML = '<input maxlength="1" data-tandem-unmask>';
  await delivered();
  assert.doesNotMatch(maskInputValue("5", all[0]), /5/);
});

test("a date's parts each in its own component's shadow root stay shown", (t) => {
  const all = boxPerComponent(t, 8, (n) => `maxlength="1" data-tandem-unmask autocomplete="bday-${part(n)}"`, "date-digit");
  t.after(forgetSecrets);
  assert.equal(maskInputValue("7", all[0]), "7");
  assert.equal(maskInputValue("1", all[7]), "1");
});

test("boxes each in a wrapper of a component of its own are a code's pieces; such dates stay shown", (t) => {
  // The component draws its box in a wrapper of its own (`<div class="box">`), beside its style.
  const wrap = (box: string) => `<style>.box { display: inline-block }</style><div class="box">${box}</div>`;
  const all = boxPerComponent(t, 6, () => 'maxlength="1" data-tandem-unmask', "otp-digit", wrap);
  t.after(forgetSecrets);
  for (const [i, box] of all.entries()) assert.doesNotMatch(maskInputValue(String(i + 2), box), /\d/);
  forgetSecrets(); // the digits typed above are looked for as copies
  const dates = boxPerComponent(t, 8, (n) => `maxlength="1" data-tandem-unmask autocomplete="bday-${part(n)}"`, "date-digit", wrap);
  assert.equal(maskInputValue("7", dates[0]), "7");
});

test("boxes each two or three wrappers deep in a component of its own are a code's pieces; such dates stay shown", (t) => {
  // The seventh review's left item: a component drawing its box in a wrapper inside a wrapper
  // (`<div class="field"><div class="box"><input></div></div>`) was not read as a row: each
  // digit was shown in a form the site shows.
  for (const wrap of [
    (box: string) => `<style>.box { display: inline-block }</style><div class="field"><div class="box">${box}</div></div>`,
    (box: string) => `<div class="a"><div class="b"><label class="c">${box}</label></div></div>`,
  ]) {
    const all = boxPerComponent(t, 6, () => 'maxlength="1" data-tandem-unmask', "otp-digit", wrap);
    t.after(forgetSecrets);
    for (const [i, box] of all.entries()) assert.doesNotMatch(maskInputValue(String(i + 2), box), /\d/);
    forgetSecrets(); // the digits typed above are looked for as copies
    const dates = boxPerComponent(t, 8, (n) => `maxlength="1" data-tandem-unmask autocomplete="bday-${part(n)}"`, "date-digit", wrap);
    assert.equal(maskInputValue("7", dates[0]), "7");
    assert.equal(maskInputValue("1", dates[7]), "1");
    forgetSecrets();
  }
});

test("a component drawing a whole form in one wrapper keeps its fields shown, one box alone too", (t) => {
  // Not a box per component: a card drawing a form (several fields) in a wrapper inside a wrapper.
  const form = html('<form data-tandem-unmask><div class="row"><x-form></x-form><p>Note</p></div></form>');
  document.body.append(form);
  t.after(() => form.remove());
  t.after(forgetSecrets);
  const root = (form.querySelector("x-form") as HTMLElement).attachShadow({ mode: "open" });
  root.innerHTML = '<div class="card"><div class="inner"><input id="a" data-tandem-unmask><input id="b" maxlength="2" data-tandem-unmask></div></div>';
  assert.equal(maskInputValue("Jane", root.querySelector("#a") as Element), "Jane");
  assert.equal(maskInputValue("NY", root.querySelector("#b") as Element), "NY");
  const single = html('<form data-tandem-unmask><x-one></x-one></form>');
  document.body.append(single);
  t.after(() => single.remove());
  const one = (single.querySelector("x-one") as HTMLElement).attachShadow({ mode: "open" });
  one.innerHTML = '<div><div><input maxlength="1" data-tandem-unmask></div></div>';
  assert.equal(maskInputValue("B", one.querySelector("input") as Element), "B", "a middle initial alone");
});
