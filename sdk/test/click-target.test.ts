// The agent's clicks are refused where they would load a private page (../src/share/control.ts):
// the address a click loads is the one the page rules are checked on, query and route included.
import assert from "node:assert/strict";
import { test } from "node:test";
import { document } from "./dom.ts";
import { clickTarget } from "../src/share/control.ts";
import { pageIsPrivate, validatePolicy } from "../src/shared/policy.ts";

const BASE = document.location.href;
const policy = validatePolicy({ version: 1, pages: { deny: ["/index.php?page=checkout", "/#checkout"] } });

function target(html: string, selector: string): URL | null {
  document.body.innerHTML = html;
  const el = document.querySelector(selector);
  assert.ok(el, selector);
  return clickTarget(el, BASE);
}

test("a link's address is checked with its query and its hash route", () => {
  const link = target('<a href="/index.php?lang=en&amp;page=%63heckout"><b>Pay</b></a>', "b");
  assert.equal(link?.href, "https://shop.example/index.php?lang=en&page=%63heckout");
  assert.equal(pageIsPrivate(link as URL, [policy]), true);
  assert.equal(pageIsPrivate(target('<a href="/#checkout">Pay</a>', "a") as URL, [policy]), true);
  assert.equal(pageIsPrivate(target('<a href="/index.php?page=cart">Cart</a>', "a") as URL, [policy]), false);
  assert.equal(target("<p>Text</p>", "p"), null);
});

test("a GET form loads its action with its fields as the query", () => {
  const form = (fields: string, attrs = "") =>
    `<form action="/index.php?page=cart" ${attrs}>${fields}<button id="go">Go</button></form>`;
  const hidden = target(form('<input type="hidden" name="page" value="checkout">'), "#go") as URL;
  assert.equal(hidden.search, "?page=checkout", "the action's own query is replaced");
  assert.equal(pageIsPrivate(hidden, [policy]), true);
  const shared = target(form('<input type="hidden" name="page" value="cart">'), "#go") as URL;
  assert.equal(pageIsPrivate(shared, [policy]), false);
  // The submit button's own name and value are part of the query.
  const named = target(form("", "").replace('<button id="go">', '<button id="go" name="page" value="checkout">'), "#go") as URL;
  assert.equal(pageIsPrivate(named, [policy]), true);
  // A POST form loads its action as written.
  const posted = target(form('<input type="hidden" name="page" value="checkout">', 'method="post"'), "#go") as URL;
  assert.equal(posted.search, "?page=cart");
  // A button's formaction and formmethod win over the form's.
  const overridden = target(
    '<form action="/index.php" method="post"><input type="hidden" name="page" value="checkout">'
      + '<button id="go" formmethod="get" formaction="/index.php?x=1">Go</button></form>',
    "#go",
  ) as URL;
  assert.equal(pageIsPrivate(overridden, [policy]), true);
});

// An attack review (docs/privacy.md): each click below loads a private page in a browser.
const denied = validatePolicy({ version: 1, pages: { deny: ["/checkout", "/index.php?page=checkout", "/app#/account"] } });
const loadsPrivate = (html: string, selector: string) => {
  const url = target(html, selector);
  return url !== null && (url.origin !== document.location.origin || pageIsPrivate(url, [denied]));
};

test("a click inside a submit button, on its label, or on an image button submits the form", () => {
  const form = '<form action="/index.php"><input type="hidden" name="page" value="checkout">';
  assert.equal(loadsPrivate(`${form}<button><span id="in">Go</span></button></form>`, "#in"), true, "inside the button");
  assert.equal(loadsPrivate(`${form}<input type="submit" id="s"><label for="s" id="l">Go</label></form>`, "#l"), true, "its label");
  assert.equal(loadsPrivate(`${form}<label id="l">Go <input type="submit"></label></form>`, "#l"), true, "a wrapping label");
  assert.equal(loadsPrivate(`${form}<input type="image" id="i" alt="Go"></form>`, "#i"), true, "an image button");
  assert.equal(loadsPrivate(
    '<form action="/index.php?page=cart" method="post"><button id="go" formmethod="get" formaction="/index.php">'
      + '<b id="in">Go</b></button><input type="hidden" name="page" value="checkout"></form>',
    "#in",
  ), true, "inside a button with formaction and formmethod");
  assert.equal(loadsPrivate('<form action="/app#/account"><button id="go">Go</button></form>', "#go"), true, "an action's route");
});

test("areas, SVG links, javascript: and a base element", () => {
  assert.equal(loadsPrivate('<map name="m"><area id="a" href="/checkout" shape="rect" coords="0,0,9,9"></map>', "#a"), true, "area");
  const svg = (attrs: string) => `<svg><a ${attrs}><text id="t">Pay</text></a></svg>`;
  assert.equal(loadsPrivate(svg('href="/checkout"'), "#t"), true, "SVG href");
  assert.equal(loadsPrivate(svg('xlink:href="/checkout" xmlns:xlink="http://www.w3.org/1999/xlink"'), "#t"), true, "SVG xlink:href");
  assert.equal(loadsPrivate('<a id="j" href="javascript:location=\'/checkout\'">Pay</a>', "#j"), true, "javascript: is off the pages");
  assert.equal(loadsPrivate('<a id="b" href="/checkout" target="_blank">Pay</a>', "#b"), true, "a new tab");
  assert.equal(loadsPrivate('<a id="x" href="http://[">Bad</a>', "#x"), true, "an address that does not parse");
  assert.equal(loadsPrivate('<a id="n" href=" /check&#10;out&#9; ">Pay</a>', "#n"), true, "tabs, line breaks and spaces the parser drops");
  // A base element: the link loads what the browser resolves, against the document's base URL.
  const base = document.createElement("base");
  base.href = "https://shop.example/index.php/";
  document.head.append(base);
  try {
    assert.equal(loadsPrivate('<a id="r" href="../checkout">Pay</a>', "#r"), true, "relative to the base");
    assert.equal(loadsPrivate('<a id="q" href="?page=checkout">Pay</a>', "#q"), true, "a query relative to the base");
  } finally {
    base.remove();
  }
  assert.equal(loadsPrivate('<a id="c" href="/cart">Cart</a>', "#c"), false);
});

test("links around a shadow root and around a slot", () => {
  document.body.innerHTML = '<a href="/checkout"><span id="host"></span></a><div id="slotted"><b id="light">Pay</b></div>';
  const inner = (document.querySelector("#host") as HTMLElement).attachShadow({ mode: "open" });
  inner.innerHTML = '<i id="deep">Pay</i>';
  const deep = inner.querySelector("#deep") as Element;
  const inside = clickTarget(deep, BASE);
  assert.ok(inside && pageIsPrivate(inside, [denied]), "in a shadow root inside a link");
  const host = document.querySelector("#slotted") as HTMLElement;
  host.attachShadow({ mode: "open" }).innerHTML = '<a href="/checkout"><slot></slot></a>';
  const slotted = clickTarget(document.querySelector("#light") as Element, BASE);
  assert.ok(slotted && pageIsPrivate(slotted, [denied]), "slotted into a link");
});
