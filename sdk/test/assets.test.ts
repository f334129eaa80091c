// The mirror fetches nothing (issue 14, item 7): every address a replayed event carries is
// neutralised unless it is data: or blob:, whatever its spelling.
import assert from "node:assert/strict";
import { test } from "node:test";
import { neutralizeCss, neutralizeEvent } from "../src/console/assets.ts";

const SPY = "http://spy.example";

test("CSS addresses are broken in every spelling; data: and blob: stay", () => {
  const cases = [
    `a{background:url(${SPY}/1)}`, `a{background:url("${SPY}/2")}`, `a{background:URL( '${SPY}/3' )}`,
    `a{background:\\75 rl(${SPY}/4)}`, `a{background:u\\rl(${SPY}/5)}`, `@import "${SPY}/6.css";`,
    `@import url(${SPY}/7.css) screen;`, `a{background-image:image-set("${SPY}/8.png" 1x)}`,
    `a{background-image:-webkit-image-set("${SPY}/9.png" 1x)}`, `@font-face{src:url("${SPY}/a)b.woff")}`,
  ];
  for (const css of cases) {
    const out = neutralizeCss(css);
    assert.ok(!/(^|[^-\w])url\(\s*['"]?http/i.test(out) && !/(^|[^-])image-set\(/i.test(out) && !/@import/i.test(out), `${css} -> ${out}`);
  }
  assert.equal(neutralizeCss("a{background:url(data:image/png;base64,AAAA)}"), "a{background:url(data:image/png;base64,AAAA)}");
  assert.equal(neutralizeCss("a{color:red}"), "a{color:red}");
});

test("snapshots lose fetching attributes and resource hints, keep the page", () => {
  const event = {
    type: 2, timestamp: 1,
    data: { node: { type: 0, id: 1, childNodes: [
      { type: 2, id: 2, tagName: "link", attributes: { rel: "prefetch", href: `${SPY}/p` }, childNodes: [] },
      { type: 2, id: 3, tagName: "link", attributes: { rel: "stylesheet", href: `${SPY}/s.css`, _cssText: `b{background:url(${SPY}/x)}` }, childNodes: [] },
      { type: 2, id: 4, tagName: "img", attributes: { src: `${SPY}/i.png`, srcset: `${SPY}/i2.png 2x`, alt: "pic" }, childNodes: [] },
      { type: 2, id: 5, tagName: "div", attributes: { style: `background:url(${SPY}/d.png)` }, childNodes: [
        { type: 3, id: 6, textContent: "see url(http://docs.example) in text" },
      ] },
      { type: 2, id: 7, tagName: "style", attributes: {}, childNodes: [{ type: 3, id: 8, textContent: `p{background:url(${SPY}/t)}`, isStyle: true }] },
      { type: 2, id: 9, tagName: "a", attributes: { href: "https://shop.example/help" }, childNodes: [] },
      { type: 2, id: 10, tagName: "img", attributes: { src: "data:image/png;base64,AAAA" }, childNodes: [] },
    ] } },
  };
  const json = JSON.stringify(neutralizeEvent(event));
  assert.ok(!json.includes(SPY), json);
  assert.ok(json.includes('"alt":"pic"'));
  assert.ok(json.includes("see url(http://docs.example) in text"), "page text is not CSS");
  assert.ok(json.includes("https://shop.example/help"), "links only navigate (the sandbox forbids it)");
  assert.ok(json.includes("data:image/png;base64,AAAA"));
});

test("mutations and style rules lose their addresses too", () => {
  const mutation = {
    type: 3, timestamp: 1,
    data: { source: 0, texts: [{ id: 8, value: `p{background:url(${SPY}/m)}` }], removes: [],
      adds: [{ parentId: 1, nextId: null, node: { type: 2, id: 11, tagName: "img", attributes: { src: `${SPY}/late` }, childNodes: [] } }],
      attributes: [{ id: 5, attributes: { style: { "background-image": [`url(${SPY}/s)`, ""] }, src: `${SPY}/a` } }] },
  };
  const rule = { type: 3, timestamp: 1, data: { source: 8, id: 7, adds: [{ rule: `p{background:url(${SPY}/r)}`, index: 0 }] } };
  const declaration = { type: 3, timestamp: 1, data: { source: 13, id: 7, set: { property: "background", value: `url(${SPY}/v)` }, index: [0] } };
  for (const event of [mutation, rule, declaration]) {
    const json = JSON.stringify(neutralizeEvent(event));
    assert.ok(!json.includes(SPY), json);
  }
});
