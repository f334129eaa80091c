// Masking attacks of the review of masking at the source (docs/security.md, "Attacks tried"):
// what rrweb records besides a hidden value itself — how often it changed, which box was chosen,
// where a caret sits in hidden text — and addresses a page hides in a refresh.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  MASK_PLACEHOLDER, forgetSecrets, hideValue, maskFormState, maskImageText, onMarkedLate, maskInputValue, maskTextContent, scrubEvent, stripAddressesIn,
} from "../src/shared/masking.ts";
import { document, html } from "./dom.ts";

type Nodes = Record<number, Node>;
const lookupIn = (nodes: Nodes) => (id: number) => nodes[id] ?? null;

function snapshot(nodes: Nodes, ...children: object[]) {
  return maskFormState({ type: 2, timestamp: 1, data: { node: { type: 0, id: 1, childNodes: children } } }, lookupIn(nodes));
}

function mutation(nodes: Nodes, data: Record<string, unknown>) {
  const event = { type: 3, timestamp: 1, data: { source: 0, adds: [], removes: [], texts: [], attributes: [], ...data } };
  return maskFormState(event, lookupIn(nodes));
}

test("a hidden field's value attribute kept in step with each keystroke is sent once, not once per key", () => {
  const form = html('<form><input id="pw" type="password"><input id="shown" data-tandem-unmask></form>');
  const pw = form.querySelector("#pw") as HTMLInputElement;
  const shown = form.querySelector("#shown") as HTMLInputElement;
  const nodes: Nodes = { 2: pw, 3: shown };
  snapshot(nodes, { type: 2, id: 2, tagName: "input", attributes: { type: "password" }, childNodes: [] });
  // A framework writes the value into the attribute on every keystroke (React's controlled
  // fields): rrweb masks each to the placeholder, and sent each change all the same.
  const sent: unknown[] = [];
  for (const typed of ["h", "hu", "hun", "hunt", "hunte", "hunter"]) {
    pw.value = typed;
    const event = mutation(nodes, { attributes: [{ id: 2, attributes: { value: MASK_PLACEHOLDER, "data-value": typed } }] });
    if (event !== null) sent.push(event);
  }
  assert.equal(sent.length, 1, "one change: the field is filled; not one a keystroke");
  assert.deepEqual((sent[0] as { data: { attributes: unknown[] } }).data.attributes, [
    { id: 2, attributes: { value: MASK_PLACEHOLDER, "data-value": MASK_PLACEHOLDER } },
  ]);
  // Emptied: that the agent may know, once.
  pw.value = "";
  const emptied = mutation(nodes, { attributes: [{ id: 2, attributes: { value: "" } }] });
  assert.deepEqual((emptied as { data: { attributes: unknown[] } }).data.attributes, [{ id: 2, attributes: { value: "" } }]);
  // A field the agent may see shows each change; and a change among others keeps the others.
  for (const typed of ["a", "ab"]) {
    shown.value = typed;
    const event = mutation(nodes, { attributes: [{ id: 3, attributes: { value: typed } }, { id: 2, attributes: { value: "" } }] });
    assert.deepEqual((event as { data: { attributes: unknown[] } }).data.attributes, [{ id: 3, attributes: { value: typed } }]);
  }
});

test("text typed into a hidden editor changes the mirror once, not once per keystroke", () => {
  const box = html('<div><div id="ed" contenteditable="true">Dear</div><p id="shown">Total 1</p></div>');
  const editorText = (box.querySelector("#ed") as Element).firstChild as Text;
  const shownText = (box.querySelector("#shown") as Element).firstChild as Text;
  const nodes: Nodes = { 2: editorText, 3: shownText };
  snapshot(nodes, { type: 3, id: 2, textContent: "Dear" }, { type: 3, id: 3, textContent: "Total 1" });
  let events = 0;
  for (const typed of ["Dear J", "Dear Ja", "Dear Jan", "Dear Jane"]) {
    editorText.data = typed;
    if (mutation(nodes, { texts: [{ id: 2, value: typed }] }) !== null) events++;
  }
  assert.equal(events, 0, "the placeholder the agent already has: nothing to send, no keystroke to count");
  // Page text the agent sees goes at each change.
  for (const total of ["Total 2", "Total 3"]) {
    shownText.data = total;
    const event = mutation(nodes, { texts: [{ id: 3, value: total }, { id: 2, value: "Dear Jane!" }] });
    assert.deepEqual((event as { data: { texts: unknown[] } }).data.texts, [{ id: 3, value: total }]);
  }
});

test("a hidden checkbox's or radio button's events are not sent: they would tell the choice", () => {
  const form = html('<form><input id="a" type="radio" name="plan"><input id="b" type="radio" name="plan">' +
    '<input id="box" type="checkbox"><input id="open" type="checkbox" data-tandem-unmask></form>');
  const [a, b, box, open] = ["#a", "#b", "#box", "#open"].map((s) => form.querySelector(s) as HTMLInputElement);
  const nodes: Nodes = { 2: a, 3: b, 4: box, 5: open };
  // rrweb sends the chosen radio first, then the others of its group, and one event a change
  // of a box: each hidden choice's order or count told it.
  for (const id of [3, 2, 4]) {
    assert.equal(maskFormState({ type: 3, timestamp: 1, data: { source: 5, id, text: "on", isChecked: id !== 2 } }, lookupIn(nodes)), null);
  }
  // Focus and clicks name the box too (arrow keys in a radio group move focus and choice).
  for (const type of [0, 1, 2, 5, 6]) {
    assert.equal(maskFormState({ type: 3, timestamp: 1, data: { source: 2, type, id: 3, x: 1, y: 1 } }, lookupIn(nodes)), null);
  }
  // A box the site shows, and clicks elsewhere, go as they are.
  const shown = { type: 3, timestamp: 1, data: { source: 5, id: 5, text: "on", isChecked: true } };
  assert.deepEqual(maskFormState(shown, lookupIn(nodes)), shown);
  assert.equal(shown.data.isChecked, true);
  const click = { type: 3, timestamp: 1, data: { source: 2, type: 2, id: 5, x: 1, y: 1 } };
  assert.deepEqual(maskFormState(click, lookupIn(nodes)), click);
});

test("a selection's offsets in a hidden editor are not sent: they tell the hidden text's length", () => {
  const page = html('<div><div id="ed" contenteditable>Secret words</div><p id="p">Shown words</p></div>');
  const editorText = (page.querySelector("#ed") as Element).firstChild as Text;
  const shownText = (page.querySelector("#p") as Element).firstChild as Text;
  const nodes: Nodes = { 2: editorText, 3: shownText, 4: page };
  const select = (ranges: object[]) => maskFormState({ type: 3, timestamp: 1, data: { source: 14, ranges } }, lookupIn(nodes));
  assert.equal(select([{ start: 2, startOffset: 0, end: 2, endOffset: 12 }]), null, "select all in the editor");
  assert.equal(select([{ start: 3, startOffset: 0, end: 2, endOffset: 6 }]), null, "from page text into the editor");
  const kept = select([{ start: 3, startOffset: 0, end: 3, endOffset: 5 }, { start: 2, startOffset: 3, end: 2, endOffset: 3 }]);
  assert.deepEqual((kept as { data: { ranges: unknown[] } }).data.ranges, [{ start: 3, startOffset: 0, end: 3, endOffset: 5 }]);
  // A selection cleared (no range) still goes.
  assert.notEqual(select([]), null);
});

test("a refresh's address loses its query and fragment, relative or not", () => {
  assert.equal(stripAddressesIn("3600; url=reset?token=abc#x"), "3600; url=reset");
  assert.equal(stripAddressesIn("0;URL='/next?session=abc'"), "0;URL='/next'");
  assert.equal(stripAddressesIn("5, url = https://bank.example/a?b=c"), "5, url = https://bank.example/a");
  // Not a refresh: as before.
  assert.equal(stripAddressesIn("width=device-width, initial-scale=1"), "width=device-width, initial-scale=1");
  const meta = { type: 2, tagName: "meta", attributes: { "http-equiv": "refresh", content: "1; url=pay?card=4000056655665556&t=77" } };
  assert.equal(scrubEvent(meta).attributes.content, "1; url=pay");
});

test("a copy of a hidden value with digits is found beside a card number, before the card's digits are masked", () => {
  const form = html('<form><input id="pw" type="password"><input id="shown" data-tandem-unmask></form>');
  const pw = form.querySelector("#pw") as HTMLInputElement;
  try {
    hideValue("Zebra9Tango", pw); // as rrweb records the password field
    // The card's digits were masked first: "Zebra•Tango" was no longer the value, and went.
    const title = html("<title>Card 4111 1111 1111 1111 for Zebra9Tango</title>");
    const text = maskTextContent("Card 4111 1111 1111 1111 for Zebra9Tango", title);
    assert.equal(text.includes("Zebra"), false, text);
    assert.equal(maskTextContent("Zebra9Tango and 4111 1111 1111 1111", html("<p>x</p>")).includes("Zebra"), false);
    // A field the site shows (its runs of 7 digits masked), and any string of an event.
    assert.equal(maskInputValue("Zebra9Tango 1234567", form.querySelector("#shown")).includes("Zebra"), false);
    const event = scrubEvent({ attributes: { title: "4111 1111 1111 1111 Zebra9Tango" } });
    assert.equal(event.attributes.title.includes("Zebra"), false, event.attributes.title);
  } finally {
    forgetSecrets();
  }
});

test("a hidden field's or editor's scrolling is not sent: it tells how long the hidden text is", () => {
  const page = html('<div><input id="pw" type="password"><textarea id="notes"></textarea>' +
    '<div id="ed" contenteditable><p id="line">Dear</p></div><input id="shown" data-tandem-unmask><div id="list">x</div></div>');
  const nodes: Nodes = {};
  ["#pw", "#notes", "#ed", "#line", "#shown", "#list"].forEach((s, i) => void (nodes[i + 2] = page.querySelector(s) as Element));
  nodes[9] = document;
  const scroll = (id: number) => maskFormState({ type: 3, timestamp: 1, data: { source: 3, id, x: 81, y: 0 } }, lookupIn(nodes));
  for (const id of [2, 3, 4, 5]) assert.equal(scroll(id), null, `id ${id}`);
  for (const id of [6, 7, 9]) assert.notEqual(scroll(id), null, `id ${id}`);
});

test("text an SVG image given as a data: address draws is masked, however it is encoded", () => {
  const svg = (text: string) => `<svg xmlns="http://www.w3.org/2000/svg" width="100%"><text y="10">${text}</text></svg>`;
  const card = svg("Card 4111 1111 1111 1111");
  const percent = `data:image/svg+xml,${encodeURIComponent(card)}`;
  const base64 = `data:image/svg+xml;base64,${btoa(card)}`;
  const drawn = (address: string) => decodeURIComponent(address.slice(address.indexOf(",") + 1));
  for (const address of [percent, base64, `data:image/svg+xml;charset=utf-8,${encodeURIComponent(card)}`]) {
    const masked = maskImageText(address);
    assert.equal(drawn(masked).includes("4111"), false, masked);
    assert.ok(drawn(masked).includes('width="100%"'), "the rest of the image stays");
  }
  // Wherever the address is: an image's source, a CSS url(), any string of an event.
  const event = scrubEvent({ attributes: { src: percent, style: `background: url("${percent}")`, "data-icon": base64 } });
  assert.equal(JSON.stringify(event).includes("4111"), false);
  assert.equal(JSON.stringify(event).includes("4111%201111"), false);
  // A hidden value's copy, too; an image with nothing to mask goes as it was, byte for byte.
  const pw = html('<input type="password">');
  try {
    hideValue("Quokka-77-secret", pw);
    const copy = maskImageText(`data:image/svg+xml,${encodeURIComponent(svg("Hi Quokka-77-secret"))}`);
    assert.equal(drawn(copy).includes("Quokka"), false, copy);
  } finally {
    forgetSecrets();
  }
  const icon = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'%3E%3Cpath d='M0 0h24v24'/%3E%3C/svg%3E";
  assert.equal(maskImageText(icon), icon);
  assert.equal(maskImageText("data:image/svg+xml;base64,@@not base64@@"), "data:image/svg+xml;base64,@@not base64@@");
  assert.equal(maskImageText("data:image/png;base64,iVBORw0KGgo="), "data:image/png;base64,iVBORw0KGgo=");
});

test("a mask or hide mark added after its element was sent asks for the page afresh, once", () => {
  const page = html('<div><p id="late">Balance 1200</p><p id="gone">Address</p><div class="rr-mask"><p id="in">x</p></div></div>');
  const [late, gone, inside] = ["#late", "#gone", "#in"].map((s) => page.querySelector(s) as Element);
  const nodes: Nodes = { 2: late, 3: gone, 4: inside, 5: late.firstChild as Node };
  let asked = 0;
  onMarkedLate(() => void asked++);
  try {
    snapshot(nodes,
      { type: 2, id: 2, tagName: "p", attributes: { id: "late" }, childNodes: [{ type: 3, id: 5, textContent: "Balance 1200" }] },
      { type: 2, id: 3, tagName: "p", attributes: { id: "gone" }, childNodes: [] },
      { type: 2, id: 4, tagName: "p", attributes: { id: "in" }, childNodes: [] });
    const changed = (id: number, attributes: object) => mutation(nodes, { attributes: [{ id, attributes }] });
    // A change that marks nothing, and one of an element sent masked, ask nothing.
    changed(2, { title: "x" });
    changed(4, { title: "y" });
    assert.equal(asked, 0);
    late.classList.add("rr-mask"); // the mirror still showed "Balance 1200" under the mark
    changed(2, { class: "rr-mask" });
    assert.equal(asked, 1);
    changed(2, { class: "rr-mask" });
    assert.equal(asked, 1, "once for the element");
    gone.classList.add("rr-block"); // the mirror still showed its content, not a box
    assert.equal(changed(3, { class: "rr-block" }), null, "the blocked element's change itself is not sent");
    assert.equal(asked, 2);
    // Sent afresh under the marks: nothing more to ask for them.
    snapshot(nodes,
      { type: 2, id: 2, tagName: "p", attributes: { id: "late", class: "rr-mask" }, childNodes: [] },
      { type: 2, id: 3, tagName: "p", attributes: { class: "rr-block", rr_width: "10px", rr_height: "10px" }, childNodes: [] });
    changed(2, { title: "z" });
    changed(3, { title: "z" });
    assert.equal(asked, 2);
  } finally {
    onMarkedLate(null);
  }
});

test("a meta's content goes only where it changes how the page is drawn", () => {
  const head = html('<div><meta name="csrf-token"><meta name="viewport"><meta http-equiv="refresh"><meta property="og:url"></div>');
  const [csrf, viewport, refresh, og] = Array.from(head.querySelectorAll("meta"));
  const nodes: Nodes = { 2: csrf, 3: viewport, 4: refresh, 5: og };
  const meta = (id: number, attributes: Record<string, string>) => ({ type: 2, id, tagName: "meta", attributes, childNodes: [] });
  const served = [
    meta(2, { name: "csrf-token", content: "CSRF-TOKEN-16" }),
    meta(3, { name: "viewport", content: "width=device-width, initial-scale=1" }),
    meta(4, { "http-equiv": "refresh", content: "5; url=/next" }),
    meta(5, { property: "og:url", content: "https://shop.example/orders/42" }),
  ];
  snapshot(nodes, ...served);
  assert.deepEqual(served.map((m) => m.attributes.content), [
    MASK_PLACEHOLDER, "width=device-width, initial-scale=1", MASK_PLACEHOLDER, MASK_PLACEHOLDER,
  ]);
  // Set later by the page's script, too.
  const changed = mutation(nodes, { attributes: [{ id: 2, attributes: { content: "CSRF-TOKEN-17" } }] });
  assert.equal(JSON.stringify(changed).includes("CSRF"), false);
});

test("a copy of a hidden value the page writes into another element at each keystroke goes once", () => {
  const page = html('<div><input id="pw" type="password"><div id="preview"></div></div>');
  const pw = page.querySelector("#pw") as HTMLInputElement;
  const preview = page.querySelector("#preview") as Element;
  const nodes: Nodes = { 2: pw, 3: preview };
  try {
    let sent = 0;
    for (const typed of ["Quok", "Quokk", "Quokka", "Quokka7"]) {
      pw.value = typed;
      hideValue(typed, pw); // as rrweb records the field at each keystroke
      const event = mutation(nodes, { attributes: [{ id: 3, attributes: { "data-preview": typed, title: `Hello ${typed}` } }] });
      if (event !== null) {
        sent++;
        assert.equal(JSON.stringify(event).includes("Quok"), false);
      }
    }
    assert.equal(sent, 1, "the placeholder once, not once a keystroke");
    // What the agent may see goes at each change, and a masked value again after it.
    const shown = mutation(nodes, { attributes: [{ id: 3, attributes: { "data-preview": "empty" } }] });
    assert.notEqual(shown, null);
    const again = mutation(nodes, { attributes: [{ id: 3, attributes: { "data-preview": "Quokka7" } }] });
    assert.deepEqual((again as { data: { attributes: unknown[] } }).data.attributes, [{ id: 3, attributes: { "data-preview": MASK_PLACEHOLDER } }]);
  } finally {
    forgetSecrets();
  }
});
