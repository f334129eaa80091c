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
