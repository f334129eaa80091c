// Copies of hidden values elsewhere in the page (docs/privacy.md): a live preview ("Card ending
// 4242"), an error message echoing what was typed, another element's attributes, style text.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import {
  MASK, MASK_PLACEHOLDER, forgetSecrets, maskCopies, maskFormState, maskInputValue, maskTextContent, scrubEvent,
} from "../src/shared/masking.ts";
import { document, html } from "./dom.ts";

afterEach(() => forgetSecrets());

/** A form in the document with a hidden card field, a password and a field the site shows. */
function mounted(): { form: Element; card: HTMLInputElement; pw: HTMLInputElement; shown: HTMLInputElement } {
  const form = html('<form><input id="card" autocomplete="cc-number"><input id="pw" type="password">' +
    '<input id="q" data-tandem-unmask><input id="name"><p id="preview">Card ending</p></form>');
  document.body.append(form);
  const [card, pw, shown] = ["#card", "#pw", "#q"].map((s) => form.querySelector(s) as HTMLInputElement);
  return { form, card, pw, shown };
}

test("text that repeats a hidden value, or a run of its digits, is masked; other text is not", (t) => {
  const { form, card, pw } = mounted();
  t.after(() => form.remove());
  const preview = form.querySelector("#preview") as Element;
  // Before the customer types, nothing is a copy.
  assert.equal(maskTextContent("Card ending 4242, order 1234", preview), "Card ending 4242, order 1234");
  assert.equal(maskInputValue("4242424242424242", card), MASK_PLACEHOLDER);
  assert.equal(maskInputValue("Hunter2-secret", pw), MASK_PLACEHOLDER);
  assert.equal(maskTextContent("Card ending 4242", preview), `Card ending ${MASK.repeat(4)}`);
  assert.equal(maskTextContent("Card 4242 4242 4242 ...", preview), `Card ${MASK.repeat(4)} ${MASK.repeat(4)} ${MASK.repeat(4)} ...`);
  assert.equal(maskTextContent("Order 1234, 3 items, 42 pence", preview), "Order 1234, 3 items, 42 pence");
  assert.equal(maskTextContent("'HUNTER2-SECRET' is too weak", preview), `'${MASK_PLACEHOLDER}' is too weak`);
  assert.equal(maskTextContent("Nothing typed here", preview), "Nothing typed here");
});

test("every string of a recorded event is looked at: other elements' attributes and style text", (t) => {
  const { form, pw } = mounted();
  t.after(() => form.remove());
  assert.equal(maskInputValue("Hunter2-secret", pw), MASK_PLACEHOLDER);
  const attributes = {
    title: "You typed Hunter2-secret", "aria-label": "hunter2-secret", placeholder: "was Hunter2-secret",
    "data-echo": "Hunter2-secret", value: "Hunter2-secret", class: "field", href: "/help",
  };
  const style = "p::after { content: \"Hunter2-secret\"; }";
  const event = {
    type: 3,
    data: {
      source: 0, texts: [], removes: [], adds: [
        { parentId: 1, node: { type: 2, id: 5, tagName: "span", attributes: { ...attributes }, childNodes: [] } },
        { parentId: 1, node: { type: 3, id: 6, textContent: style, isStyle: true } },
      ],
      attributes: [{ id: 5, attributes: { "data-echo": "Hunter2-secret" } }],
    },
  };
  const rule = { type: 3, data: { source: 8, id: 7, adds: [{ rule: ".x::before { content: 'Hunter2-secret' }", index: 0 }] } };
  const out = JSON.stringify(scrubEvent([event, rule]));
  assert.ok(!/hunter2/i.test(out), out);
  const span = (event.data.adds[0].node as { attributes: Record<string, string> }).attributes;
  assert.equal(span.title, `You typed ${MASK_PLACEHOLDER}`);
  assert.equal(span.class, "field");
  assert.equal(span.href, "/help");
});

test("a value stays known once the field is cleared or removed (an error message echoing it)", (t) => {
  const { form, pw } = mounted();
  t.after(() => form.remove());
  // The snapshot sees the field's value; the page then clears it and shows an error with it.
  pw.value = "4729";
  const lookup = (id: number) => (id === 2 ? pw : null);
  const snapshot = { type: 2, data: { node: { type: 0, id: 1, childNodes: [
    { type: 2, id: 2, tagName: "input", attributes: { type: "password", value: "4729" }, childNodes: [] },
  ] } } };
  maskFormState(snapshot, lookup);
  pw.value = "";
  form.remove();
  assert.equal(maskCopies("PIN 4729 is wrong"), `PIN ${MASK_PLACEHOLDER} is wrong`);
  assert.equal(maskCopies("Tried 47291"), `Tried ${MASK.repeat(5)}`, "a run holding its digits");
});

test("a hidden field's live value is read at each recorded event, also when the page set it", (t) => {
  const { form, card } = mounted();
  t.after(() => form.remove());
  assert.equal(maskInputValue("5", card), MASK_PLACEHOLDER); // rrweb saw the first key
  card.value = "5500000000000004"; // the page's script formats or fills the rest
  maskFormState({ type: 3, data: { source: 0, texts: [], removes: [], adds: [], attributes: [] } }, () => null);
  assert.equal(maskCopies("ends 0004"), `ends ${MASK.repeat(4)}`);
  assert.equal(maskCopies("5500-0000"), `${MASK.repeat(4)}-${MASK.repeat(4)}`);
});

test("short values are masked only as words; a value the site shows is no secret", (t) => {
  const { form, pw, shown } = mounted();
  t.after(() => form.remove());
  const name = form.querySelector("#name") as HTMLInputElement;
  assert.equal(maskInputValue("cats", name), MASK_PLACEHOLDER);
  assert.equal(maskCopies("Cats and dogs"), `${MASK_PLACEHOLDER} and dogs`);
  assert.equal(maskCopies("Concatenate"), "Concatenate", "a short value inside a longer word");
  assert.equal(maskCopies("12 apples"), "12 apples");
  assert.equal(maskInputValue("shoes 4711", shown), "shoes 4711");
  assert.equal(maskCopies("Results for shoes 4711"), "Results for shoes 4711");
  // A field that is no password, PIN or card: a value of one to three characters is not looked for.
  forgetSecrets();
  assert.equal(maskInputValue("ab", name), MASK_PLACEHOLDER);
  assert.equal(maskInputValue("12", name), MASK_PLACEHOLDER);
  assert.equal(maskCopies("ab 12 c"), "ab 12 c");
  // A password's first keys are: the page echoes each start before the whole.
  assert.equal(maskInputValue("Ze", pw), MASK_PLACEHOLDER);
  assert.equal(maskCopies("You typed Ze"), `You typed ${MASK_PLACEHOLDER}`);
  assert.equal(maskCopies("Zebra"), "Zebra");
  assert.equal(maskInputValue("7", pw), MASK_PLACEHOLDER);
  assert.equal(maskCopies("PIN 7?"), `PIN ${MASK_PLACEHOLDER}?`);
});

test("an event is searched as it is recorded, while the field holds what the page copied", (t) => {
  const { form, pw } = mounted();
  t.after(() => form.remove());
  assert.equal(maskInputValue("Zebr", pw), MASK_PLACEHOLDER);
  pw.value = "Zebr";
  const rule = { type: 3, data: { source: 8, id: 7, adds: [{ rule: '#hint::before { content: "Zebr" }', index: 0 }] } };
  maskFormState(rule, () => null);
  // The customer types on before the batch leaves: "Zebr" is no longer the field's value.
  pw.value = "Zebra-ECHO-8812";
  assert.equal(maskInputValue("Zebra-ECHO-8812", pw), MASK_PLACEHOLDER);
  const out = JSON.stringify(scrubEvent([rule]));
  assert.ok(!/zebr/i.test(out), out);
});

test("a hidden input's value counts only when long (a token), a checkbox's or radio's never", (t) => {
  const page = html('<form><input type="hidden" id="h" value="1"><input type="hidden" id="t" value="tok-12345678">' +
    '<input type="radio" id="r" value="express"><input type="checkbox" id="c" value="newsletter"></form>');
  document.body.append(page);
  t.after(() => page.remove());
  const [flag, token, radio, box] = ["#h", "#t", "#r", "#c"].map((s) => page.querySelector(s) as HTMLInputElement);
  for (const [field, value] of [[flag, "1"], [token, "tok-12345678"], [radio, "express"], [box, "newsletter"]] as const) {
    assert.equal(maskInputValue(value, field), MASK_PLACEHOLDER);
  }
  assert.equal(maskCopies("1 item, Express delivery, our newsletter"), "1 item, Express delivery, our newsletter");
  assert.equal(maskCopies("token=tok-12345678"), `token=${MASK_PLACEHOLDER}`);
});

test("a password's digits are not each a copy, and short values leave markup and sizes alone", (t) => {
  const { form, pw, card } = mounted();
  t.after(() => form.remove());
  const pin = html('<input id="pin" type="password" inputmode="numeric">');
  form.append(pin);
  assert.equal(maskInputValue("Hunter2", pw), MASK_PLACEHOLDER);
  assert.equal(maskInputValue("4", pin), MASK_PLACEHOLDER); // the first key of a PIN
  assert.equal(maskInputValue("a", card), MASK_PLACEHOLDER);
  assert.equal(maskCopies("2 items, 4px, up-80953a2c"), `2 items, 4px, up-80953a2c`);
  assert.equal(maskCopies("PIN 4 is wrong"), `PIN ${MASK_PLACEHOLDER} is wrong`);
  const node = { type: 2, id: 9, tagName: "a", childNodes: [], attributes: { id: "x-4", class: "a b-4", style: "width: 4px", title: "a" } };
  const style = { type: 3, id: 10, isStyle: true, textContent: "a { margin: 4px }" };
  const event = { type: 3, data: { source: 0, texts: [], removes: [], attributes: [], adds: [{ parentId: 1, node }, { parentId: 1, node: style }] } };
  maskFormState(event, () => null);
  scrubEvent(event);
  assert.deepEqual(node.attributes, { id: "x-4", class: "a b-4", style: "width: 4px", title: MASK_PLACEHOLDER });
  assert.equal(node.tagName, "a");
  assert.equal(style.textContent, "a { margin: 4px }");
});

test("a value typed in pieces (one digit per box, a card in four boxes) is looked for joined; other short values are not", (t) => {
  const form = html('<form><span><input id="d1" maxlength="1"></span><span><input id="d2" maxlength="1"></span>' +
    '<span><input id="d3" maxlength="1"></span><span><input id="d4" maxlength="1"></span>' +
    '<div><input id="a"><input id="b"></div><fieldset><label>State <input id="state" maxlength="2"></label></fieldset></form>');
  document.body.append(form);
  t.after(() => form.remove());
  const [d1, d2, d3, a, b, state] = ["#d1", "#d2", "#d3", "#a", "#b", "#state"].map((s) => form.querySelector(s) as HTMLInputElement);
  const recorded = () => maskFormState({ type: 3, data: { source: 0, texts: [], removes: [], adds: [], attributes: [] } }, () => null);
  // Typed in order: the first box alone (a box of one digit is a code's piece: from its first digit).
  assert.equal(maskInputValue("7", d1), MASK_PLACEHOLDER);
  d1.value = "7";
  recorded();
  assert.equal(maskCopies("code 7"), `code ${MASK_PLACEHOLDER}`);
  d2.value = "3";
  assert.equal(maskInputValue("3", d2), MASK_PLACEHOLDER);
  recorded();
  assert.equal(maskCopies("Pay 73 now"), `Pay ${MASK_PLACEHOLDER} now`, "its start as it is typed");
  d3.value = "0";
  assert.equal(maskInputValue("0", d3), MASK_PLACEHOLDER);
  recorded();
  assert.equal(maskCopies("730"), MASK_PLACEHOLDER, "the whole code, joined in page order");
  // Short values of fields that are no boxes (no maxlength) are not joined.
  a.value = "AB";
  b.value = "CD";
  assert.equal(maskInputValue("AB", a), MASK_PLACEHOLDER);
  assert.equal(maskInputValue("CD", b), MASK_PLACEHOLDER);
  recorded();
  assert.equal(maskCopies("ref ABCD"), "ref ABCD");
  assert.equal(maskCopies("Other words 99"), "Other words 99");
  // A short box alone is no piece of a code: its value is not looked for in the page's words.
  state.value = "NY";
  assert.equal(maskInputValue("NY", state), MASK_PLACEHOLDER);
  recorded();
  assert.equal(maskCopies("Ships to NY in 2 days"), "Ships to NY in 2 days");
});

test("a shown box of a number typed in pieces (four boxes of four or more) shows no digits; a date in three does", (t) => {
  const form = html('<form data-tandem-unmask><div><input id="c1" maxlength="4"><input maxlength="4"><input maxlength="4">' +
    '<input maxlength="4"></div><p><span><input id="o1" maxlength="1"></span><span><input maxlength="1"></span>' +
    '<span><input maxlength="1"></span><span><input maxlength="1"></span></p>' +
    '<input id="day" maxlength="2"><input maxlength="2"><input id="year" maxlength="4"><input id="q"></form>');
  document.body.append(form);
  t.after(() => form.remove());
  const [c1, o1, day, year, q] = ["#c1", "#o1", "#day", "#year", "#q"].map((s) => form.querySelector(s) as HTMLInputElement);
  assert.equal(maskInputValue("4012", c1), MASK.repeat(4));
  assert.equal(maskInputValue("7", o1), MASK, "a box per wrapper: its grandparent's grandchildren");
  assert.equal(maskInputValue("12", day), "12");
  assert.equal(maskInputValue("1990", year), "1990");
  assert.equal(maskInputValue("size 42", q), "size 42");
});

test("a shown box said to be short without maxlength (size, number max, pattern, width, name) is a code's piece; long ones are not", (t) => {
  const group = (attrs: string) => `<div>${[1, 2, 3, 4, 5, 6].map((n) => `<input ${attrs.replace("{n}", String(n))}>`).join("")}</div>`;
  const shapes = ['size="1"', 'type="number" min="0" max="9"', 'pattern="[0-9]"', 'pattern="\\d{1}"', 'style="width: 1em"',
    'aria-label="Digit {n} of 6"', 'placeholder="Please enter OTP character {n}"'];
  const notShort = ['pattern="[0-9]*"', 'type="number" max=""', 'pattern="\\d{6}"', 'type="number" max="99999"', 'size="20"', 'style="width: 12em"',
    'aria-label="Street 1"'];
  const form = html(`<form data-tandem-unmask>${[...shapes, ...notShort].map(group).join("")}</form>`);
  document.body.append(form);
  t.after(() => form.remove());
  const firsts = Array.from(form.querySelectorAll("div > input:first-child")) as HTMLInputElement[];
  // Masked: one `•`, or the placeholder once "7" is a remembered piece (a copy of it).
  shapes.forEach((shape, i) => assert.doesNotMatch(maskInputValue("7", firsts[i]), /\d/, shape));
  forgetSecrets(); // "7" above was a code's piece: shown elsewhere, it is masked as its copy
  notShort.forEach((shape, i) => assert.equal(maskInputValue("7", firsts[shapes.length + i]), "7", shape));
});

test("one-time-code on the first box makes boxes shaped alike its pieces; a lone one-time-code field does not", (t) => {
  const form = html('<form data-tandem-unmask><div id="code"><input class="otp" autocomplete="one-time-code">' +
    '<input class="otp"><input class="otp"><input class="otp"></div>' +
    '<div id="other"><input id="otc" autocomplete="one-time-code"><input id="email" class="field"><input class="field">' +
    '<input class="field"></div></form>');
  document.body.append(form);
  t.after(() => form.remove());
  const second = form.querySelector("#code > input:nth-child(2)") as HTMLInputElement;
  assert.equal(maskInputValue("7", second), MASK);
  assert.equal(maskInputValue("flat 12", form.querySelector("#email") as HTMLInputElement), "flat 12");
});

test("boxes the page names as a birth date or a phone number are no code's pieces, however many; a code beside them is", (t) => {
  const form = html('<form data-tandem-unmask><div><input id="day" autocomplete="bday-day" maxlength="2">' +
    '<input autocomplete="bday-month" maxlength="2"><input autocomplete="bday-year" maxlength="4">' +
    '<input id="area" autocomplete="shipping tel-area-code" maxlength="3"><input autocomplete="tel-local-prefix" maxlength="3">' +
    '<input autocomplete="tel-local-suffix" maxlength="4"><input id="dd" placeholder="DD" maxlength="2">' +
    '<input id="o1" maxlength="1"><input maxlength="1"><input maxlength="1"><input maxlength="1"></div></form>');
  document.body.append(form);
  t.after(() => form.remove());
  const [day, area, dd, o1] = ["#day", "#area", "#dd", "#o1"].map((s) => form.querySelector(s) as HTMLInputElement);
  assert.equal(maskInputValue("24", day), "24");
  assert.equal(maskInputValue("212", area), "212");
  assert.equal(maskInputValue("03", dd), "03");
  assert.equal(maskInputValue("7", o1), MASK);
});

test("fewer than four boxes are a code's only when the page says so; a checkout's fields beside cc-number are not", (t) => {
  const form = html('<form data-tandem-unmask>' +
    '<div id="three"><input id="t1" maxlength="1"><input maxlength="1"><input maxlength="1"></div>' +
    '<div id="marked"><input id="m1" maxlength="3" autocomplete="one-time-code"><input id="m2" maxlength="3"></div>' +
    '<div id="named"><input id="n1" class="otp-input"><input class="otp-input"><input class="otp-input"></div>' +
    '<div id="pay"><input id="card" class="form-control" autocomplete="cc-number"><input id="holder" class="form-control">' +
    '<input id="street" class="form-control"><input id="town" class="form-control"></div>' +
    '<div id="dob"><input id="dob-day" maxlength="2"><input id="dob-month" maxlength="2"><input id="dob-year" maxlength="4"></div>' +
    '<div id="two"><input id="x1" maxlength="1"><input maxlength="1"></div>' +
    '<div id="cart"><p><input id="q1" class="qty" type="number" max="99"></p><p><input class="qty" type="number" max="99"></p>' +
    '<p><input class="qty" type="number" max="99"></p><p><input class="qty" type="number" max="99"></p></div>' +
    '<div id="rows"><p><input id="r1" maxlength="2"><input maxlength="2"></p><p><input maxlength="2"><input maxlength="2"></p>' +
    '<p><input maxlength="2"></p></div></form>');
  document.body.append(form);
  t.after(() => form.remove());
  const at = (s: string) => form.querySelector(s) as HTMLInputElement;
  assert.equal(maskInputValue("Q", at("#t1")), MASK, "three boxes of one character; a letter too");
  assert.equal(maskInputValue("518", at("#m2")), MASK.repeat(3), "beside a box marked one-time-code");
  assert.equal(maskInputValue("7", at("#n1")), MASK, "named a code's by their class");
  forgetSecrets();
  assert.equal(maskInputValue("Ann Lee", at("#holder")), "Ann Lee", "a checkout's field is no piece of its card");
  assert.equal(maskInputValue("12 High St", at("#street")), "12 High St");
  assert.equal(maskInputValue("13", at("#dob-day")), "13", "a date's day, named so");
  assert.equal(maskInputValue("1990", at("#dob-year")), "1990");
  assert.equal(maskInputValue("8", at("#x1")), MASK, "two boxes of one character are a code's (no date's or phone's part is one)");
  assert.equal(maskInputValue("12", at("#q1")), "12", "quantities, named so");
  assert.equal(maskInputValue("24", at("#r1")), "24", "rows of two fields are no boxes one per wrapper");
});

test("a code's box stays one when the page takes off its maxlength", (t) => {
  const form = html('<form data-tandem-unmask><div><input id="o1" maxlength="1"><input maxlength="1"><input maxlength="1">' +
    '<input maxlength="1"></div></form>');
  document.body.append(form);
  t.after(() => form.remove());
  const boxes = Array.from(form.querySelectorAll("input"));
  assert.equal(maskInputValue("7", boxes[0]), MASK);
  for (const box of boxes) box.removeAttribute("maxlength");
  assert.doesNotMatch(maskInputValue("8", boxes[0]), /\d/);
});

test("the slots a one-time-code field is drawn on show no character; other short text beside it does", (t) => {
  const form = html('<div><form><div data-input-otp-container><div><div id="s1">7</div><div>3</div></div>' +
    '<div><input autocomplete="one-time-code" maxlength="6"></div></div>' +
    '<div id="plain"><div><span id="s2">5</span></div><input autocomplete="one-time-code"></div>' +
    '<label id="label">Code</label></form><p><b id="step">2</b> of 3</p></div>');
  document.body.append(form);
  t.after(() => form.remove());
  const [s1, s2, step, label] = ["#s1", "#s2", "#step", "#label"].map((s) => document.querySelector(s) as Element);
  assert.equal(maskTextContent("7", s1), MASK);
  assert.equal(maskTextContent("5", s2), MASK);
  assert.equal(maskTextContent("2", step), "2");
  assert.equal(maskTextContent("Code", label), "Code");
});
