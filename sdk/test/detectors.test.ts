import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import {
  forgetSecrets, ibanValid, MASK, maskDetected, maskInputValue, maskTextContent, scrubEvent, stripCssUrls, stripUrl, stripUrlList, usePolicy, type MaskableElement,
} from "../src/shared/masking.ts";
import { document, html } from "./dom.ts";
import { textContentUpTo } from "../src/shared/dom.ts";
import { DEFAULT_POLICY, validatePolicy } from "../src/shared/policy.ts";

afterEach(() => {
  usePolicy(DEFAULT_POLICY);
  forgetSecrets(); // hidden values seen in one test are not copies in the next
});

/** An element (happy-dom) matching `matches` (`.class` and `#id` selectors), with its text. */
function el(tag: string, matches: string[] = [], attrs: Record<string, string> = {}, textContent = ""): MaskableElement {
  const element = document.createElement(tag.toLowerCase());
  for (const [name, value] of Object.entries(attrs)) element.setAttribute(name, value);
  for (const selector of matches) {
    if (selector.startsWith(".")) element.classList.add(selector.slice(1));
    else if (selector.startsWith("#")) element.id = selector.slice(1);
  }
  element.textContent = textContent;
  return element;
}

test("IBAN checksum", () => {
  assert.ok(ibanValid("GB82 WEST 1234 5698 7654 32"));
  assert.ok(ibanValid("DE89370400440532013000"));
  assert.ok(!ibanValid("GB82 WEST 1234 5698 7654 33"));
});

test("opt-in detectors are off by default and mask when on", () => {
  const text = "IBAN GB82 WEST 1234 5698 7654 32, SSN 123-45-6789, mail jane.doe@example.com, call +44 20 7946 0958";
  assert.equal(maskDetected(text), text);
  usePolicy(validatePolicy({ version: 1, detectors: { iban: true, ssn: true, email: true, phone: true } }));
  const masked = maskDetected(text);
  for (const secret of ["WEST", "6789", "jane", "example", "7946"]) assert.ok(!masked.includes(secret), `${secret} in ${masked}`);
  assert.ok(masked.includes("@"), "shape of the address kept");
});

test("SSN detector skips impossible numbers", () => {
  usePolicy(validatePolicy({ version: 1, detectors: { ssn: true } }));
  assert.equal(maskDetected("000-12-3456 and 666-12-3456"), "000-12-3456 and 666-12-3456");
});

test("phone detector needs enough digits", () => {
  usePolicy(validatePolicy({ version: 1, detectors: { phone: true } }));
  assert.equal(maskDetected("room 12-34"), "room 12-34");
});

test("URLs lose query and fragment unless the policy keeps them", () => {
  assert.equal(stripUrl("https://shop.example/account?email=jane@example.com#card"), "https://shop.example/account");
  usePolicy(validatePolicy({ version: 1, url: { query: true } }));
  assert.equal(stripUrl("https://shop.example/a?x=1#y"), "https://shop.example/a?x=1");
});

test("scrubEvent strips URLs in href/src keys only", () => {
  const event = { type: 4, data: { href: "https://shop.example/p?token=abc", width: 800 }, note: "see ?token=abc" };
  const out = scrubEvent(event);
  assert.equal(out.data.href, "https://shop.example/p");
  assert.equal(out.note, "see ?token=abc");
});

test("mask selectors mask text and values; unmask selectors show values", () => {
  usePolicy(validatePolicy({ version: 1, mask: [".balance"], unmask: ["#search"] }));
  assert.equal(maskTextContent("Balance 1,234.00", el("SPAN", [".balance"])), "••••••• ••••••••".replace(/•/g, MASK));
  assert.equal(maskInputValue("tents", el("INPUT", ["#search"])), "tents");
  assert.equal(maskInputValue("tents", el("INPUT", ["#search", ".balance"])), MASK.repeat(8), "mask wins over unmask");
  assert.equal(maskInputValue("pw", el("INPUT", ["#search"], { type: "password" })), MASK.repeat(8), "passwords never");
});

test("a card number split across nodes is masked in each piece", () => {
  const parent = el("P", [], {}, "Card: 4111 1111 1111 1111");
  assert.equal(maskTextContent("4111", parent), MASK.repeat(4));
  assert.equal(maskTextContent("Card: ", parent), "Card: ");
});

test("a card number split into inline elements is found through the ancestors", () => {
  const paragraph = html("<p>Card: <b>4111</b> <b>1111</b> <b>1111</b> <b>1111</b></p>");
  assert.equal(maskTextContent("4111", paragraph.querySelector("b")), MASK.repeat(4));
  const unrelated = html("<p>Year <b>2024</b> report</p>");
  assert.equal(maskTextContent("2024", unrelated.querySelector("b")), "2024");
});

test("an ancestor's text is read only up to the limit, as textContent has it", () => {
  const paragraph = html("<p>Card: <b>4111</b><!-- note 9999 --> <i><b>1111</b> 1111</i> <b>1111</b></p>");
  assert.equal(textContentUpTo(paragraph, 400), paragraph.textContent);
  assert.equal(textContentUpTo(paragraph, 10), null);
  assert.equal(textContentUpTo(paragraph.querySelector("i") as Element, 400), "1111 1111");
  assert.equal(textContentUpTo(paragraph.firstChild as Node, 400), "Card: ");
});

test("masking the text of a 1,500-row list does not read the whole list for each row", () => {
  const rows = Array.from({ length: 1500 }, (_, i) =>
    `<article><h3>Product ${i}</h3><p>Taped seams, sizes XS to XXL, colour ${i % 7}.</p><button>Add ${i}</button></article>`);
  const section = html(`<section>${rows.join("\n")}</section>`);
  const texts: [string, Element][] = [];
  for (const el of section.querySelectorAll("h3, p, button")) texts.push([el.textContent ?? "", el]);
  const before = process.cpuUsage();
  for (const [text, el] of texts) assert.equal(maskTextContent(text, el), text);
  const used = process.cpuUsage(before);
  // Reading the section's 130,000 characters for each of its 4,500 text nodes took minutes.
  assert.ok((used.user + used.system) / 1000 < 3000, `${(used.user + used.system) / 1000} ms of CPU`);
});

test("scrubEvent strips the query of every attribute that names an address, lists too", () => {
  const attributes = {
    rr_src: "https://pay.example/frame?token=abc#f", data: "/doc.pdf?id=7", cite: "/q?who=jane", "xlink:href": "/i.svg?u=1",
    srcset: "/a.png?u=jane 1x, /b.png?u=jane,2 2x,/c.png?x=1", ping: "/t?u=1 /t2#k", title: "see ?token=abc",
  };
  scrubEvent({ type: 2, data: { node: { attributes } } });
  assert.deepEqual(attributes, {
    rr_src: "https://pay.example/frame", data: "/doc.pdf", cite: "/q", "xlink:href": "/i.svg",
    srcset: "/a.png 1x, /b.png 2x,/c.png", ping: "/t /t2", title: "see ?token=abc",
  });
  usePolicy(validatePolicy({ version: 1, url: { query: true } }));
  try {
    assert.equal(stripUrlList("/a.png?u=1 2x, /b.png#f"), "/a.png?u=1 2x, /b.png");
    // An address's user name and password never go, whatever the policy keeps.
    assert.equal(stripUrl("https://jane:Hunter2@files.example/doc?x=1"), "https://files.example/doc?x=1");
    assert.equal(stripUrl("ftp://jane@files.example/a@b"), "ftp://files.example/a@b");
    assert.equal(stripUrl("mailto:jane@example.org"), "mailto:jane@example.org");
    // A data: or blob: address is its content: its `#` and `?` stay.
    assert.equal(stripUrl("data:image/svg+xml;utf8,<svg fill='#000'>?</svg>"), "data:image/svg+xml;utf8,<svg fill='#000'>?</svg>");
  } finally {
    usePolicy(DEFAULT_POLICY);
  }
});

test("an inline style's addresses lose their query too; data: and blob: addresses stay whole", () => {
  const svg = "url(\"data:image/svg+xml;utf8,<svg fill='#000'>?</svg>\")";
  assert.equal(stripCssUrls(`background:url(/a.png?u=jane) no-repeat, ${svg}`), `background:url(/a.png) no-repeat, ${svg}`);
  assert.equal(stripCssUrls("background-image: url( 'https://x.example/b.png#f' )"), "background-image: url('https://x.example/b.png')");
  const change = { style: { "background-image": "url(\"/c.png?u=1\")", cursor: ["url(/d.cur?x=1), auto", "important"] } };
  const snapshot = { attributes: { style: "color:red;background:URL(/e.png?token=1)" } };
  scrubEvent({ type: 3, data: { source: 0, attributes: [{ id: 1, attributes: change }] } });
  scrubEvent({ type: 2, data: { node: snapshot } });
  assert.deepEqual(change.style, { "background-image": "url(\"/c.png\")", cursor: ["url(/d.cur), auto", "important"] });
  assert.equal(snapshot.attributes.style, "color:red;background:url(/e.png)");
});
