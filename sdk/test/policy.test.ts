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
    // A fragment without a slash may be a hash router's route too (`#checkout`, `#!checkout`):
    // it cannot be told from an anchor, so a deny takes it as one (an anchor so named pauses).
    "/#checkout", "/#!checkout", "/cart#checkout", "/#%63heckout", "/#!Checkout?step=2",
  ]) {
    assert.equal(pageIsPrivate(url(`https://shop.example${spelling}`), deny), true, spelling);
    assert.equal(pageIsPrivate(url(`https://pay.shop.example${spelling}`), deny), true, `subdomain ${spelling}`);
  }
  for (const shared of ["/", "/checkouts", "/cart", "/#/cart", "/cart?next=/checkout", "/cart#top", "/cart#checkout-help", "/checkout-help"]) {
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

const page = (u: string) => new URL(`https://shop.example${u}`);
const rules = (pages: { allow?: string[]; deny?: string[] }) => [validatePolicy({ version: 1, pages })];

test("a query-routed page is named by its parameter, however the query is spelled", () => {
  const deny = rules({ deny: ["/index.php?page=checkout", "/app?view=account*"] });
  for (const spelling of [
    "/index.php?page=checkout", "/index.php?lang=en&page=checkout", "/index.php?page=checkout&lang=en",
    "/index.php?page=%63heckout", "/index.php?PAGE=Checkout", "/index.php?page=CHECKOUT+", "/index.php?page=checkout%20",
    "/index.php?p%61ge=checkout", "/index.php?page=cart&page=checkout", "/index.php?page=checkout&page=cart",
    "/index.php?page[]=checkout", "/index.php?x=1;page=checkout", "/Index.php/?page=checkout", "/a/../index.php?page=checkout",
    "/index.php?page=checkout#top", "/index.php#/?page=checkout", "/app?view=account", "/app?view=accounts&x", "/app?view=Account%2Fedit",
    // a hash router's route with its own query
    "/#/index.php?page=checkout", "/#!/app?view=account",
  ]) {
    assert.equal(pageIsPrivate(page(spelling), deny), true, spelling);
  }
  for (const shared of [
    "/index.php", "/index.php?page=cart", "/index.php?pages=checkout", "/index.php?mypage=checkout", "/index.php?x=page%3Dcheckout",
    "/index.php?page=checkouts", "/index.php?page=my-checkout", "/other.php?page=checkout", "/app?view=cart&next=account",
    "/app", "/app?account", "/index.php?next=/index.php?page=checkout",
  ]) {
    assert.equal(pageIsPrivate(page(shared), deny), false, shared);
  }
  // A name alone: the parameter with any value; several conditions: all of them, in any order.
  const both = rules({ deny: ["/shop?debug", "/shop?step=pay&id=*"] });
  assert.equal(pageIsPrivate(page("/shop?debug"), both), true);
  assert.equal(pageIsPrivate(page("/shop?a=1&debug=0"), both), true);
  assert.equal(pageIsPrivate(page("/shop?id=7&x=1&step=pay"), both), true);
  assert.equal(pageIsPrivate(page("/shop?step=pay"), both), false, "id is missing");
  assert.equal(pageIsPrivate(page("/shop?id=7"), both), false, "step is missing");
  assert.equal(pageIsPrivate(page("/shop?debugging=1"), both), false);
});

test("a hash-routed page is named however the router spells its route", () => {
  for (const pattern of ["/checkout", "/#/checkout", "/#checkout", "/#!/checkout", "/#!checkout"]) {
    const deny = rules({ deny: [pattern] });
    for (const spelling of ["/#/checkout", "/#!/checkout", "/#checkout", "/#!checkout", "/#/Checkout/", "/#/a/../checkout", "/#/checkout?step=2"]) {
      assert.equal(pageIsPrivate(page(spelling), deny), true, `${pattern} names ${spelling}`);
    }
    for (const shared of ["/", "/#/cart", "/#cart", "/#!/checkouts", "/cart"]) {
      assert.equal(pageIsPrivate(page(shared), deny), false, `${pattern} does not name ${shared}`);
    }
  }
  // A pattern with a route names that route of that path only; no fragment is the route `/`.
  const app = rules({ deny: ["/app/#/account*", "/shop#!/list?view=orders"] });
  assert.equal(pageIsPrivate(page("/app/#/account/edit"), app), true);
  assert.equal(pageIsPrivate(page("/app#account"), app), true);
  assert.equal(pageIsPrivate(page("/other/#/account"), app), false, "another path");
  assert.equal(pageIsPrivate(page("/app/"), app), false);
  assert.equal(pageIsPrivate(page("/shop#/list?view=orders&sort=1"), app), true);
  assert.equal(pageIsPrivate(page("/shop#/list?view=%4Frders"), app), true);
  assert.equal(pageIsPrivate(page("/shop#/list?view=cart"), app), false);
  assert.equal(pageIsPrivate(page("/shop?view=orders#/list"), app), false, "the route's query is the route's");
  const root = rules({ deny: ["/app/#/"] });
  assert.equal(pageIsPrivate(page("/app/"), root), true, "no fragment: the route /");
  assert.equal(pageIsPrivate(page("/app/#/cart"), root), false);
});

test("an allow list names the page as the customer sees it: path, query and route", () => {
  const allow = rules({ allow: ["/app/*", "/faq", "/index.php?page=help", "/shop/#/cart", "/docs#*"] });
  for (const shared of [
    "/app/", "/app/#/orders", "/app/x#!account", "/faq", "/faq?utm_source=x", "/index.php?page=help", "/index.php?lang=de&page=help",
    "/shop/#/cart", "/shop/#!/cart", "/shop/#/cart?x=1", "/docs", "/docs#intro",
  ]) {
    assert.equal(pageIsPrivate(page(shared), allow), false, shared);
  }
  for (const hidden of [
    // a route the allow list does not name: the customer sees that route, not the path's page
    "/faq#/account", "/faq#!account", "/faq#account", "/shop/#/checkout", "/shop/", "/shop/#cart/../checkout",
    // the reverse: a route that looks allowed on a path that is not
    "/checkout#/app/x", "/checkout#/faq",
    // a query route the allow list does not name, and every value of a repeated parameter counts
    "/index.php", "/index.php?page=checkout", "/index.php?page=help&page=checkout", "/index.php?page=checkout&page=help",
    "/index.php?page=%68elp", "/index.php?page=Help", "/index.php?PAGE=help", "/index.php?page=help;page=checkout",
    "/index.php?page[]=checkout&page=help",
  ]) {
    assert.equal(pageIsPrivate(page(hidden), allow), true, hidden);
  }
  // A deny of any spelling wins over an allow.
  const both = rules({ allow: ["/app/*"], deny: ["/account", "/app/?tab=billing"] });
  assert.equal(pageIsPrivate(page("/app/#/account"), both), true);
  assert.equal(pageIsPrivate(page("/app/#account"), both), true);
  assert.equal(pageIsPrivate(page("/app/?tab=Billing#/home"), both), true);
  assert.equal(pageIsPrivate(page("/app/#/home?tab=billing"), both), true, "a route's query read with the path's");
  assert.equal(pageIsPrivate(page("/app/#/home"), both), false);
});

test("malformed page patterns are refused with the field named", () => {
  for (const [pattern, message] of [
    ["/index.php?", /nothing after \?/],
    ["/index.php?page=a&&x=1", /an empty query parameter/],
    ["/index.php?=checkout", /a query parameter without a name/],
    ["/index.php?pa*=checkout", /name cannot have \*/],
    ["/a?b&c&d&e&f&g&h&i&j", /at most 8 query parameters/],
    ["/app#/list?", /in the route: nothing after \?/],
    ["index.php?page=checkout", /must start with \//],
    ["?page=checkout", /must start with \//],
  ] as [string, RegExp][]) {
    assert.throws(() => validatePolicy({ version: 1, pages: { deny: ["/ok", pattern] } }),
      (error: unknown) => error instanceof PolicyError && /policy\.pages\.deny\[1\]: /.test(error.message) && message.test(error.message), pattern);
  }
  for (const fine of ["/a?b&c&d&e&f&g&h&i", "/index.php?page=*", "https://*?page=checkout", "/#!", "/a?%3D=1"]) {
    assert.doesNotThrow(() => validatePolicy({ version: 1, pages: { allow: [fine] } }), fine);
  }
});

test("a fragment of parameters is a query, not a route; a server's pattern names a value only whole", () => {
  // `#tab=billing` (a site's hash parameters), `#access_token=…` (an OAuth answer): parameters.
  const tabs = rules({ deny: ["/app#tab=billing", "/*?access_token"] });
  for (const hidden of ["/app#tab=billing", "/app#x=1&tab=Billing", "/app#!/?tab=billing", "/cb#access_token=abc&state=1", "/cb?access_token=abc"]) {
    assert.equal(pageIsPrivate(page(hidden), tabs), true, hidden);
  }
  for (const shared of ["/app#tab=orders", "/app", "/app#billing", "/cb#state=1"]) {
    assert.equal(pageIsPrivate(page(shared), tabs), false, shared);
  }
  // Read as parameters, such a fragment is no path a path's glob could spell out.
  assert.equal(pageIsPrivate(page("/cb#access_token=abc"), rules({ deny: ["/access_token=a*"] })), false);
  // The rules the server chooses (before the Allow, seeing the pause) cannot ask for a value's
  // first characters; whole values and presence they may name.
  const server = (pattern: string) => () => validateServerPolicy({ version: 1, pages: { deny: ["/ok", pattern] } });
  for (const asking of ["/*?token=a*", "/cb#access_token=ab*", "/#/reset?code=*1", "/x?a=1&email=*@*"]) {
    assert.throws(server(asking), /policy\.pages\.deny\[1\]: a policy from the server may name a query parameter's value only whole/, asking);
    assert.doesNotThrow(() => validatePolicy({ version: 1, pages: { deny: [asking] } }), `the site's own: ${asking}`);
  }
  for (const whole of ["/*?token", "/*?token=*", "/index.php?page=checkout", "/app#tab=billing", "/account/*", "/#!/checkout"]) {
    assert.doesNotThrow(server(whole), whole);
  }
});
