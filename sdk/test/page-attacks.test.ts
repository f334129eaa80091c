// An attack review of the page rules (../src/shared/pages.ts, docs/privacy.md): each test spells
// a private page so that a matcher that reads the address naively would share it.
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { pageIsPrivate, validatePolicy } from "../src/shared/policy.ts";

const page = (u: string) => new URL(`https://shop.example${u}`);
const rules = (pages: { allow?: string[]; deny?: string[] }) => [validatePolicy({ version: 1, pages })];

/** Every spelling is private: the ones shared (leaks) listed at once. */
function privateAll(policy: ReturnType<typeof rules>, spellings: string[]): void {
  assert.deepEqual(spellings.filter((spelling) => !pageIsPrivate(page(spelling), policy)), []);
}

test("escapes decoded more than once, overlong and invalid UTF-8, NUL", () => {
  const deny = rules({ deny: ["/checkout", "/index.php?page=checkout", "/admin/*"] });
  privateAll(deny, [
    "/%2563heckout", "/%252563heckout", "/index.php?page=%2563heckout", "/index.php?p%2561ge=checkout",
    "/x/..%c0%afcheckout", "/x/%c0%ae%c0%ae/checkout", "/x%c0%af..%c0%afcheckout", "/x/..%e0%80%afcheckout",
    "/checkout%00.html", "/checkout%00", "/%ff/..%2fadmin/x",
  ]);
  const allow = rules({ allow: ["/help/*"] });
  privateAll(allow, [
    "/help/%252e%252e/checkout", "/help/..%c0%af..%c0%afcheckout", "/help/%c0%ae%c0%ae/checkout",
    "/help/%2e%2e%2f%ff/x", "/help/%ff%2f%2e%2e%2f%2e%2e%2fcheckout", "/help/x%00/../../checkout",
  ]);
  assert.equal(pageIsPrivate(page("/help/%2e%2e"), allow), true);
  for (const shared of ["/help/a", "/help/%C3%BCber", "/help/%ff"]) assert.equal(pageIsPrivate(page(shared), allow), false, shared);
});

test("a script's extra path (PATH_INFO) is the script's page", () => {
  const deny = rules({ deny: ["/index.php?page=checkout", "/checkout.php", "/admin.aspx"] });
  privateAll(deny, [
    "/index.php/?page=checkout", "/index.php/x/y?page=checkout", "/index.php/x.html?page=checkout",
    "/checkout.php/", "/checkout.php/anything", "/Checkout.PHP/x", "/admin.aspx/a/b", "/checkout.php;x/y",
  ]);
  for (const shared of ["/index.php/x?page=cart", "/checkout.php.bak", "/checkout.phpx/y", "/shop/checkout.php2/x"]) {
    assert.equal(pageIsPrivate(page(shared), deny), false, shared);
  }
});

test("query names as servers read them: array keys and PHP's . and space", () => {
  const deny = rules({ deny: ["/index.php?page=checkout", "/i.php?my_page=checkout"] });
  privateAll(deny, [
    "/index.php?page[0]=checkout", "/index.php?page[x]=checkout", "/index.php?page%5B%5D=checkout", "/index.php?page%5b0%5d=checkout",
    "/i.php?my.page=checkout", "/i.php?my+page=checkout", "/i.php?my%20page=checkout",
    "/index.php?page=checkout%00", "/index.php?page=%2563heckout", "/index.php?page=\tcheckout",
    "/index.php?a=1&&page=checkout", "/index.php?page&page=checkout", "/index.php?page=&page=checkout",
  ]);
  const allow = rules({ allow: ["/index.php?page=help"] });
  privateAll(allow, ["/index.php?page=help&page[0]=checkout", "/index.php?page=help&page%5b%5d=checkout", "/index.php?page=help%00"]);
});

test("hash routes however spelled", () => {
  const deny = rules({ deny: ["/#/account", "/app#!/settings/*"] });
  privateAll(deny, [
    "/#%61ccount", "/#!/account?x", "/#/account/", "/#/ACCOUNT", "/#/%2561ccount", "/#//account", "/#/./account",
    "/#/x/../account", "/#/account;x", "/#!%2Faccount", "/app#/settings/a", "/app#!settings/a", "/app#%21/settings/a",
  ]);
});

test("many parameters, many stars, a long path: linear", () => {
  // Only counts: every step is bounded by the input's length (no clock is read).
  const params = Array.from({ length: 20000 }, (_, i) => `p${i}=v`).join("&");
  const deny = rules({ deny: ["/index.php?page=checkout&a=1&b=2&c=3&d=4&e=5&f=6&g=7", "/*a*a*a*a*a*a*a*a*a*a*a*a*a*b"] });
  assert.equal(pageIsPrivate(page(`/index.php?${params}`), deny), false);
  assert.equal(pageIsPrivate(page(`/${"a".repeat(50000)}`), deny), false);
  assert.equal(pageIsPrivate(page(`/${"a".repeat(50000)}b`), deny), true);
  assert.equal(pageIsPrivate(page(`/${"%25".repeat(20000)}`), deny), false);
  assert.equal(pageIsPrivate(page(`/${"x.php/".repeat(5000)}`), deny), false);
});

test("patterns that would name no page at all are refused, with the server's words", () => {
  for (const [pattern, message] of [
    ["https://shop.example", /an origin without a path names no page: add \/ \(its home page\) or \/\* \(all its pages\)/],
    ["https://shop.example?page=checkout", /an origin without a path names no page/],
    ["https://shop.example#/account", /an origin without a path names no page/],
    ["/check\u0000out", /a control character, which no address has \(write it escaped: %0A\)/],
    ["/a\nb", /a control character/],
    ["/a?b=\u007f", /a control character/],
  ] as [string, RegExp][]) {
    assert.throws(() => validatePolicy({ version: 1, pages: { deny: [pattern] } }), message, JSON.stringify(pattern));
  }
  for (const fine of ["https://shop.example/", "https://*.shop.example*", "https://*", "/a%0Ab"]) {
    assert.doesNotThrow(() => validatePolicy({ version: 1, pages: { deny: [fine] } }), fine);
  }
  // The origin's home page, as the pattern names it.
  assert.equal(pageIsPrivate(new URL("https://shop.example"), rules({ deny: ["https://shop.example/"] })), true);
});

test("compatibility forms, backslashes, a NUL in a name, the other scheme", () => {
  const deny = rules({ deny: ["/checkout", "/index.php?page=checkout", "https://admin.shop.example/*"] });
  privateAll(deny, [
    "/%EF%BD%83heckout", "/CHEC%E2%84%AAOUT", "/x/%EF%BC%8E%EF%BC%8E/checkout", "/x%EF%BC%8F..%EF%BC%8Fcheckout", "/x/..%5ccheckout",
    "/index.php?page=%EF%BD%83heckout", "/index.php?p%EF%BD%81ge=checkout",
  ]);
  for (const other of ["http://admin.shop.example/x", "http://admin.shop.example:80/x"]) {
    assert.equal(pageIsPrivate(new URL(other), deny), true, other);
  }
  assert.equal(pageIsPrivate(new URL("http://admin.shop.example:8080/x"), deny), false, "another port is another origin");
  const allow = rules({ allow: ["/help/*", "/index.php?page=help", "https://shop.example/faq"] });
  privateAll(allow, [
    "/help/%EF%BC%8E%EF%BC%8E/checkout", "/help/..%5ccheckout", "/index.php?page=help&page%00=checkout",
    "/index.php?page=help&p%EF%BD%81ge=checkout",
  ]);
  assert.equal(pageIsPrivate(new URL("http://shop.example/faq"), allow), true, "an allow names its scheme only");
  assert.equal(pageIsPrivate(new URL("https://shop.example/faq"), allow), false);
});

test("however a private page's path and query are respelled, it stays private (property)", () => {
  const word = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,5}$/);
  // One character as a lenient server still reads it.
  const char = (c: string) => fc.constantFrom(
    c, c.toUpperCase(), `%${c.charCodeAt(0).toString(16)}`, `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
    `%25${c.charCodeAt(0).toString(16)}`,
    /[a-z]/.test(c) ? encodeURIComponent(String.fromCharCode(0xff41 + c.charCodeAt(0) - 97)) : c,
  );
  const spelled = (text: string) => fc.tuple(...[...text].map(char)).map((parts) => parts.join(""));
  const segment = (text: string, tails = ["", ";jsessionid=1", ".", "%20"]) => fc.tuple(
    spelled(text), fc.constantFrom(...tails), fc.constantFrom("", "./", "x/../", "/", "%2e/"),
  ).map(([body, tail, before]) => `${before}${body}${tail}`);
  const respelled = fc.tuple(fc.array(word, { minLength: 1, maxLength: 3 }), word).chain(([segments, value]) => fc.record({
    pattern: fc.constant(`/${segments.join("/")}?page=${value}`),
    path: fc.tuple(...segments.map((text) => segment(text))).map((parts) => parts.join("/")),
    value: spelled(value),
  }));
  fc.assert(fc.property(
    respelled, fc.boolean(), fc.constantFrom("", "a=1&", "page=x&"), fc.constantFrom("", "&b=2", "&page=y"),
    fc.constantFrom("page", "page[]", "page[0]", "PAGE", "p%61ge", "p%2561ge"),
    ({ pattern, path, value }, slash, before, after, name) => {
      const url = `/${path}${slash ? "/" : ""}?${before}${name}=${value}${after}`;
      assert.equal(pageIsPrivate(page(url), rules({ deny: [pattern] })), true, `${pattern} names ${url}`);
    },
  ), { numRuns: 300, seed: 20261130 });
  // A hash route, in every router's spelling (a router reads no `;` parameters: a fragment with a
  // `=` and no `/` first is parameters, not a route).
  const route = fc.array(word, { minLength: 1, maxLength: 3 }).chain((segments) => fc.record({
    pattern: fc.constant(`/#/${segments.join("/")}`),
    route: fc.tuple(...segments.map((text) => segment(text, ["", ".", "%20"]))).map((parts) => parts.join("/")),
  }));
  fc.assert(fc.property(
    route, fc.constantFrom("#/", "#!/", "#", "#!", "#%21/", "#//"), fc.constantFrom("", "/", "?x=1", "/?x=1"),
    ({ pattern, route: spelledRoute }, start, end) => {
      const url = `/${start}${spelledRoute}${end}`;
      assert.equal(pageIsPrivate(page(url), rules({ deny: [pattern] })), true, `${pattern} names ${url}`);
    },
  ), { numRuns: 300, seed: 20261130 });
});
