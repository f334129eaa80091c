// Copies of hidden values split over several text nodes (docs/privacy.md "How copies are found"):
// a PIN echoed one digit per element, a password whose digits the page wraps in <b>, a card
// number a script cut with splitText. And copies found as read are masked where written: the
// rest of the string goes as the page wrote it.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { MASK, MASK_PLACEHOLDER, forgetSecrets, maskCopies, maskFormState, maskInputValue } from "../src/shared/masking.ts";
import { document, html } from "./dom.ts";

afterEach(() => forgetSecrets());

/** A form with a PIN, a password and a card field, the customer's values typed into them. */
function typed(values: { pin?: string; pw?: string; card?: string }): Element {
  const form = html('<form><input id="pin" name="pin"><input id="pw" type="password"><input id="card" autocomplete="cc-number"></form>');
  document.body.append(form);
  for (const [id, value] of Object.entries(values)) maskInputValue(value, form.querySelector(`#${id}`) as HTMLInputElement);
  return form;
}

function textNodesOf(root: Node): Text[] {
  const found: Text[] = [];
  const walker = document.createTreeWalker(root, 4);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) found.push(node as Text);
  return found;
}

/** What the agent is sent of each text node under `root` (a recorded change of each): the
 * masked texts in tree order, joined by `|`. */
function sentTexts(root: Element): string {
  const nodes = textNodesOf(root);
  const event = {
    type: 3,
    data: { source: 0, adds: [], removes: [], attributes: [], texts: nodes.map((node, i) => ({ id: i + 1, value: node.data })) },
  };
  const out = maskFormState(event, (id) => nodes[id - 1] ?? null) as typeof event;
  return out.data.texts.map((change) => change.value).join("|");
}

/** The same, for the tree added whole (a snapshot's or an added node's serialized text nodes). */
function sentAdded(root: Element): string {
  const nodes = textNodesOf(root);
  const event = {
    type: 3,
    data: {
      source: 0, removes: [], attributes: [], texts: [],
      adds: [{ parentId: 1, node: { type: 2, id: 100, tagName: "div", attributes: {},
        childNodes: nodes.map((node, i) => ({ type: 3, id: i + 1, textContent: node.data })) } }],
    },
  };
  const out = maskFormState(event, (id) => nodes[id - 1] ?? null) as typeof event;
  return out.data.adds[0].node.childNodes.map((child) => child.textContent).join("|");
}

function shown(markup: string): Element {
  const el = html(markup);
  document.body.append(el);
  return el;
}

test("a PIN echoed one digit per element is masked in every element; a number drawn so that was not typed stays", (t) => {
  const form = typed({ pin: "4729" });
  const echo = shown('<div id="echo" style="display: flex"><div>4</div><div>7</div><div>2</div><div>9</div></div>');
  const order = shown("<p>Order <span>1</span><span>3</span><span>5</span><span>6</span></p>");
  t.after(() => [form, echo, order].forEach((el) => el.remove()));
  assert.equal(sentTexts(echo), [MASK, MASK, MASK, MASK].join("|"));
  assert.equal(sentAdded(echo), [MASK, MASK, MASK, MASK].join("|"));
  assert.equal(sentTexts(order), "Order |1|3|5|6");
});

test("a password whose digits the page wraps in <b> is masked in both nodes; a price and an order number split so stay", (t) => {
  const form = typed({ pw: "Quokka-Ladder-9063" });
  const echo = shown("<p>You chose Quokka-Ladder-<b>9063</b>, a strong one</p>");
  const price = shown("<p>Total <b>£47</b>.29, order <b>ZX</b>-<b>81</b>, Quokka</p>");
  t.after(() => [form, echo, price].forEach((el) => el.remove()));
  const sent = sentTexts(echo);
  assert.doesNotMatch(sent, /Quokka|Ladder|9|0|6|3/, sent);
  assert.ok(sent.startsWith("You chose ") && sent.endsWith(", a strong one"), sent);
  assert.equal(sentTexts(price), "Total |£47|.29, order |ZX|-|81|, Quokka");
});

test("a card number a script cut into nodes of three digits is masked in each; a phone number split over spans stays", (t) => {
  const form = typed({ card: "5131351313513133" }); // mistyped: no card to the card detector
  const summary = shown("<p>5131351313513133</p>");
  let node = summary.firstChild as Text;
  while (node.data.length > 3) node = node.splitText(3);
  const phone = shown("<p>Call us on <span>020</span> <span>7946</span> <span>0872</span></p>");
  t.after(() => [form, summary, phone].forEach((el) => el.remove()));
  assert.equal(textNodesOf(summary).length, 6);
  const sent = sentTexts(summary);
  assert.doesNotMatch(sent, /\d/, sent);
  assert.equal(sentTexts(phone), "Call us on |020| |7946| |0872");
});

test("a card spaced over inline elements, its groups shorter than four digits, is masked", (t) => {
  const form = typed({ card: "4000056655665557" }); // mistyped: no card to the card detector
  const line = shown("<p>Card: <span>400</span> <span>005</span> <span>665</span> <span>566</span> <span>555</span><span>7</span> on file</p>");
  t.after(() => [form, line].forEach((el) => el.remove()));
  const sent = sentTexts(line);
  assert.doesNotMatch(sent, /\d/, sent);
  assert.ok(sent.startsWith("Card: ") && sent.endsWith(" on file"), sent);
});

test("pieces are joined only within reach: far apart, or in another part of the page, they stay", (t) => {
  const form = typed({ pin: "4729" });
  const far = shown(`<p><span>47</span>${"x".repeat(200)}<span>29</span></p>`);
  const apart = shown("<section><div><div><div><div><span>47</span></div></div></div></div><div><div><div><div><span>29</span></div></div></div></div></section>");
  // Paragraphs side by side: their texts are no boxes of one piece each.
  const paragraphs = shown("<div><p>Total 47</p>\n<p>29 items</p><p>Total 47 <span> </span></p><p>29</p></div>");
  t.after(() => [form, far, apart, paragraphs].forEach((el) => el.remove()));
  assert.equal(sentTexts(far), `47|${"x".repeat(200)}|29`);
  assert.equal(sentTexts(apart), "47|29");
  assert.equal(sentTexts(paragraphs), "Total 47|\n|29 items|Total 47 | |29");
});

test("a text holding a letter that lowers to two characters (Turkish İ) is searched for copies", (t) => {
  const form = typed({ pw: "hunter22" });
  t.after(() => form.remove());
  assert.equal(maskCopies("İstanbul: hunter22"), `İstanbul: ${MASK_PLACEHOLDER}`);
  assert.equal(maskCopies("İSTANBUL HUNTER22 İ"), `İSTANBUL ${MASK_PLACEHOLDER} İ`);
});

test("a copy found as read is masked where it is written; the rest of the string stays as the page wrote it", (t) => {
  const form = typed({ pw: "Transmogrification7", pin: "4729" });
  t.after(() => form.remove());
  // Line breaks and tabs (a <pre>'s layout), digit forms and soft hyphens outside the copy stay.
  assert.equal(maskCopies("Zeile\nTransmogrification7\n\t3 ①② Trans\u00adport"), `Zeile\n${MASK_PLACEHOLDER}\n\t3 ①② Trans\u00adport`);
  assert.equal(maskCopies("Check: Tran\u00adsmog\u00adrifi\u00adcation7!\n"), `Check: ${MASK_PLACEHOLDER}!\n`);
  // A PIN's digits, written apart by invisible characters or in another script, each masked in place.
  assert.equal(maskCopies("PIN 4\u200b7\u200b2\u200b9\u200b1\nok"), `PIN ${MASK}\u200b${MASK}\u200b${MASK}\u200b${MASK}\u200b${MASK}\nok`);
  assert.equal(maskCopies("رمز ٤٧٢٩\nok"), `رمز ${MASK_PLACEHOLDER}\nok`);
  assert.equal(maskCopies("PIN 4\u20e37\u20e32\u20e39\u20e3\tok"), `PIN ${MASK_PLACEHOLDER}\tok`);
  assert.equal(maskCopies("Ｐｉｎ ４７２９ ①"), `Ｐｉｎ ${MASK_PLACEHOLDER} ①`);
  // No copy: the string as it was.
  assert.equal(maskCopies("Zeile\n\t3 ①② ٤٧٢٨"), "Zeile\n\t3 ①② ٤٧٢٨");
});

test("a PIN or card echoed in Chinese numerals is masked; Chinese text and other numbers stay", (t) => {
  const form = typed({ pin: "4729", card: "5131351313513133" });
  t.after(() => form.remove());
  assert.equal(maskCopies("您输入的密码是四七二九。"), `您输入的密码是${MASK.repeat(4)}。`);
  assert.equal(maskCopies("密码 四 七 二 九"), `密码 ${MASK} ${MASK} ${MASK} ${MASK}`);
  assert.equal(maskCopies("卡号 五一三一三五一三一三五一三一三三"), `卡号 ${MASK_PLACEHOLDER}`);
  assert.equal(maskCopies("卡号尾号三一三三"), `卡号尾号${MASK.repeat(4)}`);
  assert.equal(maskCopies("二〇二四年一月, 三十七个, 一个一个地"), "二〇二四年一月, 三十七个, 一个一个地");
});

test("invisible characters, alone or in a row, are read as nothing; marks on a digit after one too", (t) => {
  const form = typed({ pin: "4729", pw: "hunter22" });
  t.after(() => form.remove());
  assert.equal(maskCopies("Yours: hun\u200b\u200cter22\u200d\u200d."), `Yours: ${MASK_PLACEHOLDER}\u200d\u200d.`);
  assert.equal(maskCopies("PIN \u200b\u200c4\u200d\u20e37\u00ad\u00ad2\ufe0f\u20e39!"), `PIN \u200b\u200c${MASK_PLACEHOLDER}!`);
  assert.equal(maskCopies("Café au lait, 4729"), `Café au lait, ${MASK_PLACEHOLDER}`);
  assert.equal(maskCopies("Café au lait, \u200b\u200c 12"), "Café au lait, \u200b\u200c 12");
});
