import assert from "node:assert/strict";
import { test } from "node:test";
import { DEFAULT_POLICY, mergePolicies, pageIsPrivate, PolicyError, validatePolicy } from "../src/shared/policy.ts";

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
