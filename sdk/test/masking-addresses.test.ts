// Addresses outside the attributes that name one, and in style text (docs/privacy.md): their
// query strings carry tokens and e-mail addresses as often as a link's do.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { scrubEvent, stripAddressesIn, stripCssUrls, usePolicy } from "../src/shared/masking.ts";
import { DEFAULT_POLICY } from "../src/shared/policy.ts";

afterEach(() => usePolicy(DEFAULT_POLICY));

test("any attribute holding an address loses its query, fragment and credentials", () => {
  const node = {
    type: 2, id: 3, tagName: "div", childNodes: [],
    attributes: {
      "data-url": "/account/reset?token=TOKEN-9911#step", "data-next": "https://jane:PW-9912@shop.example/x?u=TOKEN-9913",
      "data-config": '{"avatar":"https://cdn.example/a.png?email=jane%40mail.example"}', content: "https://shop.example/o/1?TOKEN-9914",
      "data-target": "#modal", title: "Questions? Ask us.", value: "/search?q=TOKEN-9915",
    },
  };
  const change = { id: 3, attributes: { "data-url": "/x?token=TOKEN-9916" } };
  const text = { type: 3, id: 4, textContent: "Your link: https://shop.example/r?token=TOKEN-9917 (valid 1 day)" };
  const event = { type: 3, data: { source: 0, texts: [], removes: [], adds: [{ parentId: 1, node }, { parentId: 1, node: text }], attributes: [change] } };
  const out = JSON.stringify(scrubEvent(event));
  assert.ok(!/TOKEN-99|PW-9912|jane%40/.test(out), out);
  assert.deepEqual(node.attributes, {
    "data-url": "/account/reset", "data-next": "https://shop.example/x", "data-config": '{"avatar":"https://cdn.example/a.png"}',
    content: "https://shop.example/o/1", "data-target": "#modal", title: "Questions? Ask us.", value: "/search",
  });
  assert.equal(text.textContent, "Your link: https://shop.example/r (valid 1 day)");
});

test("style text, inserted rules and adopted sheets lose the queries of their addresses", () => {
  const style = { type: 3, id: 5, isStyle: true, textContent: '.a { background: url("/bg.png?token=TOKEN-9921") } @import "/t.css?u=TOKEN-9922";' };
  const link = { type: 2, id: 6, tagName: "link", childNodes: [], attributes: { _cssText: ".b::after { content: url(/badge?token=TOKEN-9923) }" } };
  const snapshot = { type: 2, data: { node: { type: 0, id: 1, childNodes: [link, style] } } };
  const rule = { type: 3, data: { source: 8, id: 7, adds: [{ rule: ".c { cursor: url('/c.cur?TOKEN-9924'), auto }", index: 0 }] } };
  const adopted = { type: 3, data: { source: 15, styleId: 1, styles: [{ rule: "@import url(https://x.example/s.css?TOKEN-9925);", index: 0 }] } };
  const declaration = { type: 3, data: { source: 13, id: 8, set: { property: "mask-image", value: "url(/m.svg?TOKEN-9926)" } } };
  const out = JSON.stringify(scrubEvent([snapshot, rule, adopted, declaration]));
  assert.ok(!/TOKEN-99/.test(out), out);
  assert.equal(style.textContent, '.a { background: url("/bg.png") } @import "/t.css";');
  // A `url(#id)` names part of the page itself, and a data: address is its content.
  assert.equal(stripCssUrls("fill: url(#grad); b: url(data:image/svg+xml,%3Csvg%3E#x)"), "fill: url(#grad); b: url(data:image/svg+xml,%3Csvg%3E#x)");
});

test("words and relative addresses without a leading slash stay; a policy that keeps queries keeps them", () => {
  assert.equal(stripAddressesIn("Really? Yes #1"), "Really? Yes #1");
  assert.equal(stripAddressesIn("and/or?"), "and/or?");
  assert.equal(stripAddressesIn("data:text/plain,a?b#c"), "data:text/plain,a?b#c");
  usePolicy({ ...DEFAULT_POLICY, url: { query: true, fragment: true } });
  assert.equal(stripAddressesIn("/x?page=2#top"), "/x?page=2#top");
  assert.equal(stripAddressesIn("see https://jane:pw@shop.example/x?page=2"), "see https://shop.example/x?page=2");
});
