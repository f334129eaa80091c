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

test("a frame's srcdoc, SVG's url-valued presentation attributes and animated addresses are neutralised", () => {
  const event = {
    type: 2, timestamp: 1,
    data: { node: { type: 0, id: 1, childNodes: [
      { type: 2, id: 2, tagName: "iframe", attributes: { srcdoc: `<img src="${SPY}/srcdoc.png">` }, childNodes: [] },
      { type: 2, id: 3, tagName: "rect", isSVG: true, attributes: {
        fill: `url(${SPY}/fill.svg#p)`, stroke: `url('${SPY}/stroke.svg#p') red`, filter: `url(${SPY}/f.svg#f)`,
        mask: `url(${SPY}/m.svg#m)`, "clip-path": `url(${SPY}/c.svg#c)`, "marker-start": `url(${SPY}/k.svg#k)`,
        "marker-end": `url(${SPY}/e.svg#e)`, cursor: `url(${SPY}/c.png), auto`,
      }, childNodes: [] },
      { type: 2, id: 4, tagName: "image", isSVG: true, attributes: {}, childNodes: [
        { type: 2, id: 5, tagName: "set", isSVG: true, attributes: { attributeName: "href", to: `${SPY}/set.png` }, childNodes: [] },
        { type: 2, id: 6, tagName: "animate", isSVG: true, attributes: { attributeName: "xlink:href", values: `${SPY}/a.png;${SPY}/b.png` }, childNodes: [] },
        { type: 2, id: 7, tagName: "animate", isSVG: true, attributes: { attributeName: "fill", from: `url(${SPY}/x#p)`, to: "red" }, childNodes: [] },
      ] },
    ] } },
  };
  const json = JSON.stringify(neutralizeEvent(event));
  assert.ok(!json.includes(SPY), json);
  assert.ok(!json.includes("srcdoc"), json);
  assert.ok(json.includes('"attributeName":"href"'), "the animation stays, without its values");
});

test("references within the page stay: url(#…) in SVG attributes, #id from SVG references", () => {
  const event = {
    type: 2, timestamp: 1,
    data: { node: { type: 0, id: 1, childNodes: [
      { type: 2, id: 2, tagName: "rect", isSVG: true, attributes: { fill: "url(#gradient)", filter: "url('#blur')" }, childNodes: [] },
      { type: 2, id: 3, tagName: "use", isSVG: true, attributes: { href: "#icon-cart", "xlink:href": "#icon-cart" }, childNodes: [] },
      { type: 2, id: 4, tagName: "image", isSVG: true, attributes: { href: "#not-an-image" }, childNodes: [] },
      { type: 2, id: 5, tagName: "animate", isSVG: true, attributes: { attributeName: "opacity", values: "0;1" }, childNodes: [] },
    ] } },
  };
  const out = neutralizeEvent(event).data.node.childNodes;
  assert.deepEqual(out[0]?.attributes, { fill: "url(#gradient)", filter: "url('#blur')" });
  assert.deepEqual(out[1]?.attributes, { href: "#icon-cart", "xlink:href": "#icon-cart" });
  assert.deepEqual(out[2]?.attributes, {}, "an image's #x is the document's own address: fetched");
  assert.deepEqual(out[3]?.attributes, { attributeName: "opacity", values: "0;1" });
});

test("mutations cannot add a srcdoc, aim an animation at an address or change its values", () => {
  const mutation = {
    type: 3, timestamp: 1,
    data: { source: 0, texts: [], removes: [], adds: [],
      attributes: [
        { id: 2, attributes: { srcdoc: `<img src="${SPY}/late.png">` } },
        { id: 5, attributes: { attributeName: "href" } },
        { id: 6, attributes: { to: `${SPY}/to.png`, values: `${SPY}/v.png` } },
        { id: 3, attributes: { fill: `url(${SPY}/late-fill.svg#p)` } },
      ] },
  };
  const json = JSON.stringify(neutralizeEvent(mutation));
  assert.ok(!json.includes(SPY) && !json.includes("srcdoc") && !json.includes("attributeName"), json);
});

test("url(#…) outside SVG's references is the mirror's own address: broken", () => {
  assert.equal(neutralizeCss("div{background-image:url(#x)}"), "div{background-image:none}");
  assert.equal(neutralizeCss("url(#x)", undefined, true), "url(#x)");
});

test("event handlers, script addresses and refreshes are not replayed", () => {
  const event = {
    type: 2, timestamp: 1,
    data: { node: { type: 0, id: 1, childNodes: [
      { type: 2, id: 2, tagName: "img", attributes: { onerror: "alert(1)", ONLOAD: "alert(2)", alt: "JavaScript: the good parts", title: "once upon" }, childNodes: [] },
      { type: 2, id: 3, tagName: "a", attributes: { href: "java\tscript:alert(3)" }, childNodes: [] },
      { type: 2, id: 4, tagName: "a", attributes: { href: " JavaScript:alert(4)", "xlink:href": "vbscript:x" }, childNodes: [] },
      { type: 2, id: 5, tagName: "form", attributes: { action: "javascript:alert(5)" }, childNodes: [] },
      { type: 2, id: 6, tagName: "meta", attributes: { "http-equiv": "refresh", content: "0;url=https://spy.example/" }, childNodes: [] },
      { type: 2, id: 7, tagName: "a", attributes: { href: "https://shop.example/help" }, childNodes: [] },
    ] } },
  };
  const nodes = neutralizeEvent(event).data.node.childNodes;
  assert.deepEqual(nodes.map((node) => node.attributes), [
    { alt: "JavaScript: the good parts", title: "once upon" }, {}, {}, {}, { "http-equiv": "refresh" }, { href: "https://shop.example/help" },
  ]);
  const mutation = {
    type: 3, timestamp: 1,
    data: { source: 0, texts: [], removes: [], adds: [], attributes: [
      { id: 6, attributes: { "http-equiv": "refresh", content: "0; url=https://spy.example/" } },
      { id: 8, attributes: { content: "5" } },
      { id: 9, attributes: { content: "A shop for tents", onclick: "alert(6)", value: "javascript: is a language" } },
      { id: 3, attributes: { href: "javascript:alert(7)" } },
    ] },
  };
  assert.deepEqual(neutralizeEvent(mutation).data.attributes.map((change) => change.attributes), [
    {}, {}, { content: "A shop for tents", value: "javascript: is a language" }, {},
  ]);
});
