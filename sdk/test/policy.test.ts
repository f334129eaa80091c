import assert from "node:assert/strict";
import { test } from "node:test";
import {
  DEFAULT_POLICY, mergePolicies, pageIsPrivate, PolicyError, serverSelectorProblem, validatePolicy, validateServerPolicy,
} from "../src/shared/policy.ts";

test("a minimal policy gets private defaults", () => {
  const policy = validatePolicy({ version: 1 });
  assert.deepEqual(policy, { ...DEFAULT_POLICY, detectors: { ...DEFAULT_POLICY.detectors } });
  assert.equal(policy.url.query, false);
  assert.equal(policy.media.video, false);
});

test("a full policy round-trips", () => {
  const doc = {
    version: 1, mask: [".balance"], hide: ["#chat"], unmask: ["#search"],
    detectors: { iban: true, email: true }, media: { images: false }, url: { fragment: true },
  };
  const policy = validatePolicy(doc);
  assert.deepEqual(policy.mask, [".balance"]);
  assert.equal(policy.detectors.iban, true);
  assert.equal(policy.detectors.ssn, false);
  assert.equal(policy.media.images, false);
  assert.equal(policy.url.fragment, true);
});

const BAD: [unknown, RegExp][] = [
  [null, /policy: must be a JSON object/],
  [[], /policy: must be a JSON object/],
  [{}, /policy\.version: must be 1/],
  [{ version: 2 }, /policy\.version/],
  [{ version: 1, mask: ".x" }, /policy\.mask: must be a list/],
  [{ version: 1, hide: [""] }, /policy\.hide\[0\]: must be a non-empty string/],
  [{ version: 1, unmask: [42] }, /policy\.unmask\[0\]/],
  [{ version: 1, mask: ["x".repeat(501)] }, /policy\.mask\[0\]: longer than/],
  [{ version: 1, mask: new Array(201).fill(".a") }, /policy\.mask: at most 200/],
  [{ version: 1, detectors: { cards: false } }, /policy\.detectors\.cards: payment cards are always masked/],
  [{ version: 1, detectors: { dna: true } }, /policy\.detectors\.dna: unknown setting/],
  [{ version: 1, detectors: { iban: "yes" } }, /policy\.detectors\.iban: must be true or false/],
  [{ version: 1, media: [] }, /policy\.media: must be an object/],
  [{ version: 1, colour: "red" }, /policy\.colour: unknown field/],
];

test("malformed policies are refused with the field named", () => {
  for (const [doc, message] of BAD) {
    assert.throws(() => validatePolicy(doc), (error: unknown) => error instanceof PolicyError && message.test(error.message), JSON.stringify(doc)?.slice(0, 60));
  }
});

test("page rules: deny wins, an allow list excludes the rest, both policies apply", () => {
  const site = validatePolicy({ version: 1, pages: { deny: ["/account/*"] } });
  const org = validatePolicy({ version: 1, pages: { allow: ["https://shop.example/*"] } });
  const url = (u: string) => new URL(u);
  assert.equal(pageIsPrivate(url("https://shop.example/cart"), [site, org]), false);
  assert.equal(pageIsPrivate(url("https://shop.example/account/settings"), [site, org]), true);
  assert.equal(pageIsPrivate(url("https://admin.shop.example/"), [site, org]), true);
  assert.equal(pageIsPrivate(url("https://shop.example/x?y=/account/z"), [site]), false, "query is not the path");
  const dotted = validatePolicy({ version: 1, pages: { deny: ["/a?b"] } });
  assert.equal(pageIsPrivate(url("https://shop.example/ab"), [dotted]), false, "no regex injection");
  assert.throws(() => validatePolicy({ version: 1, pages: { deny: ["account"] } }), /policy\.pages\.deny\[0\]: must start with/);
  assert.throws(() => validatePolicy({ version: 1, pages: { block: [] } }), /policy\.pages\.block: unknown setting/);
});

test("a private page is private however its address is spelled (a lenient server serves them all)", () => {
  const deny = [validatePolicy({ version: 1, pages: { deny: ["/checkout"] } })];
  const url = (u: string) => new URL(u);
  for (const spelling of [
    "/checkout", "/Checkout", "/CHECKOUT", "/checkout/", "//checkout", "/%63heckout", "/%43HECKOUT",
    "/checkout;jsessionid=1", "/checkout;jsessionid=1/", "/./checkout", "/a/../checkout", "/a/%2e%2e/checkout",
    "/a%2f..%2fcheckout", "/a/..;/checkout", "/checkout%3bx=1", "/checkout.", "/checkout..", "/checkout%20", "/checkout?step=2", "/checkout#top",
    "/#/checkout", "/#!/checkout", "/shop#/checkout?step=2", "/#/Checkout/",
  ]) {
    assert.equal(pageIsPrivate(url(`https://shop.example${spelling}`), deny), true, spelling);
    assert.equal(pageIsPrivate(url(`https://pay.shop.example${spelling}`), deny), true, `subdomain ${spelling}`);
  }
  for (const shared of ["/", "/checkouts", "/cart", "/#/cart", "/cart?next=/checkout", "/cart#checkout", "/checkout-help"]) {
    assert.equal(pageIsPrivate(url(`https://shop.example${shared}`), deny), false, shared);
  }
  // Patterns are read the same way: an admin's `/Checkout/` names `/checkout`.
  const spelled = [validatePolicy({ version: 1, pages: { deny: ["/Checkout/", "https://Shop.example/Account*"] } })];
  assert.equal(pageIsPrivate(url("https://shop.example/checkout"), spelled), true);
  assert.equal(pageIsPrivate(url("https://shop.example/account/x"), spelled), true);
  assert.equal(pageIsPrivate(url("https://shop.example/%61ccount"), spelled), true);
  assert.equal(pageIsPrivate(url("https://other.example/account"), spelled), false);
  // An origin's pattern names the host however it is written: a trailing dot, a default port,
  // an international name (the browser's address has it in punycode).
  const hosts = [validatePolicy({ version: 1, pages: { deny: ["https://Admin.shop.example/*", "https://*.bücher.example/*"] } })];
  for (const page of ["https://admin.shop.example./x", "https://admin.shop.example:443/x", "https://ADMIN.shop.example/",
    "https://www.bücher.example/a", "https://www.xn--bcher-kva.example./a"]) {
    assert.equal(pageIsPrivate(url(page), hosts), true, page);
  }
  assert.equal(pageIsPrivate(url("https://shop.example/x"), hosts), false);
  assert.equal(pageIsPrivate(url("https://admin.shop.example:8443/x"), hosts), false, "another port is another origin");
  const ported = [validatePolicy({ version: 1, pages: { deny: ["https://shop.example:*/private*"] } })];
  assert.equal(pageIsPrivate(url("https://shop.example:8443/private/a"), ported), true);
  // An allow list is read strictly: a page is on it only as written and as read leniently.
  const allow = [validatePolicy({ version: 1, pages: { allow: ["/help/*", "/faq"] } })];
  for (const shared of ["/help/", "/help/a", "/faq", "/faq?x=1", "/help/a#/anything"]) {
    assert.equal(pageIsPrivate(url(`https://shop.example${shared}`), allow), false, shared);
  }
  for (const hidden of ["/help/../checkout", "/help/..;/checkout", "/help/%2e%2e/checkout", "/help/..%2fcheckout", "/FAQ", "/help/x/..%2F..%2Fcheckout"]) {
    assert.equal(pageIsPrivate(url(`https://shop.example${hidden}`), allow), true, hidden);
  }
  // A bad escape is no crash: it stays as written.
  assert.equal(pageIsPrivate(url("https://shop.example/%E0%A4%A/checkout"), deny), false);
  assert.equal(pageIsPrivate(url("https://shop.example/%ff/../checkout"), deny), true);
});

test("the organisation can only tighten the site's policy", () => {
  const site = validatePolicy({ version: 1, mask: [".a"], unmask: ["#search"], media: { images: true, video: true }, url: { query: true } });
  const org = validatePolicy({ version: 1, mask: [".b"], hide: ["#chat"], unmask: ["#everything"], detectors: { ssn: true }, media: { images: false, video: true }, url: { query: true } });
  const merged = mergePolicies(site, org);
  assert.deepEqual(merged.mask, [".a", ".b"]);
  assert.deepEqual(merged.hide, ["#chat"]);
  assert.deepEqual(merged.unmask, ["#search"]);
  assert.equal(merged.detectors.ssn, true);
  assert.equal(merged.media.images, false);
  assert.equal(merged.media.video, true);
  const looseOrg = validatePolicy({ version: 1, url: { query: true, fragment: true }, media: { video: true } });
  const strictSite = validatePolicy({ version: 1 });
  const merged2 = mergePolicies(strictSite, looseOrg);
  assert.equal(merged2.url.query, false);
  assert.equal(merged2.url.fragment, false);
  assert.equal(merged2.media.video, false);
});

// The same lists as tests/test_policy.py (src/tandem/policy.py holds the same expression).
const MARKUP_SELECTORS = [
  "#card", ".pii", "input[name=ssn]", 'input[type="password" i]', "[data-pii]", "form.checkout > .payment input",
  "body:has(.pii) #essay", ".md\\:flex", "li:nth-child(2n+1)", "td:not(.price)", "a ~ b, c + d", "x-widget",
  "[autocomplete^=cc-]", "tr:nth-last-of-type(odd)", "INPUT[NAME=SSN]",
];
const STATE_SELECTORS = [
  "body:has(#yes:checked) #essay", "input:invalid", "#card[value^='4']", "[data-value*=a]", "a:hover", "p:empty",
  "input:placeholder-shown", "li:nth-child(2n of :checked)", "[aria-checked=true]", "p::before", "input:focus",
  "[xlink|href]", "a:is(:checked)", "#x:-webkit-autofill", "input:autofill", "details:open",
];

test("a policy from the server names elements by markup, never by the page's state", () => {
  for (const selector of MARKUP_SELECTORS) assert.equal(serverSelectorProblem(selector), null, selector);
  for (const selector of STATE_SELECTORS) assert.ok(serverSelectorProblem(selector), selector);
  assert.throws(() => validateServerPolicy({ version: 1, mask: [".ok", "input:checked"] }), /policy\.mask\[1\]: a policy from the server/);
  assert.throws(() => validateServerPolicy({ version: 1, hide: ["#a[value=x]"] }), /policy\.hide\[0\]/);
  // The site's own policy is the site's: any selector; the server's unmask is never used.
  assert.deepEqual(validatePolicy({ version: 1, mask: ["input:checked"] }).mask, ["input:checked"]);
  assert.deepEqual(validateServerPolicy({ version: 1, unmask: ["a:hover"] }).unmask, ["a:hover"]);
  // Linear: a long selector that fails at its end is refused at once.
  const started = Date.now();
  for (const long of ["a".repeat(499) + "!", "[name=" + "a".repeat(490) + "!", "(".repeat(499) + ":"]) assert.ok(serverSelectorProblem(long));
  assert.ok(Date.now() - started < 200);
});
