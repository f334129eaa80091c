// Page assets carried inside the encrypted channel (issue 14, item 7): the customer's SDK fetches
// the same-origin images, fonts and stylesheets the recorded events use; the console shows them
// from blob:/data: URLs and fetches nothing.
import assert from "node:assert/strict";
import { test } from "node:test";
import { AssetStore, neutralizeEvent } from "../src/console/assets.ts";
import { AssetCarrier, assetUrls, type Fetcher } from "../src/share/assets.ts";
import { type AssetPayload, MAX_ASSET_BYTES, decodeBase64, encodeBase64, looksLike } from "../src/shared/assets.ts";
import { PayloadDecoder, encodePayload } from "../src/shared/payload.ts";

const PAGE = "https://shop.example/products/";
const PNG = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 1, 2, 3, 4]);
const WOFF2 = new Uint8Array([0x77, 0x4f, 0x46, 0x32, 0, 1, 0, 0]);
const SVG = new TextEncoder().encode('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>');
const HTML = new TextEncoder().encode("<!doctype html><script>alert(1)</script>");

function snapshot(...nodes: unknown[]) {
  return { type: 2, timestamp: 1, data: { node: { type: 0, id: 1, childNodes: nodes } } };
}
const el = (id: number, tagName: string, attributes: Record<string, unknown>) => ({ type: 2, id, tagName, attributes, childNodes: [] });

interface Site { [url: string]: { body: Uint8Array; type: string } }

function site(files: Site) {
  const asked: { url: string; init: RequestInit }[] = [];
  const fetcher: Fetcher = async (url, init) => {
    asked.push({ url, init });
    const file = files[url];
    if (!file) return new Response("missing", { status: 404 });
    return new Response(file.body as BodyInit, { status: 200, headers: { "content-type": file.type } });
  };
  return { asked, fetcher };
}

test("the addresses events use: images, srcset, posters, CSS (attributes, style text, rules), uninlined stylesheets", () => {
  const events = [
    snapshot(
      el(2, "img", { src: `${PAGE}a.png`, srcset: "/b.png 1x, /c.png 2x" }),
      el(3, "div", { style: "background:url('/bg.png')" }),
      el(4, "link", { rel: "stylesheet", href: "/late.css" }),
      el(5, "link", { rel: "stylesheet", href: "/inlined.css", _cssText: "@font-face{src:url(/f.woff2)}" }),
      { type: 2, id: 6, tagName: "style", attributes: {}, childNodes: [{ type: 3, id: 7, isStyle: true, textContent: "p{cursor:url(/c.cur)}" }] },
      el(8, "a", { href: "/next-page" }),
    ),
    { type: 3, timestamp: 2, data: { source: 0, adds: [{ node: el(9, "video", { poster: "/p.png" }) }], texts: [], removes: [], attributes: [{ id: 3, attributes: { style: { "background-image": "url(/late-bg.png)" } } }] } },
    { type: 3, timestamp: 3, data: { source: 8, id: 6, adds: [{ rule: "q{background:url(/rule.png)}", index: 0 }] } },
  ];
  assert.deepEqual([...assetUrls(events)].sort(), [
    `${PAGE}a.png`, "/b.png", "/bg.png", "/c.cur", "/c.png", "/f.woff2", "/late-bg.png", "/late.css", "/p.png", "/rule.png",
  ].sort());
});

test("scripts, frames and media are not collected: only images, fonts and stylesheets are carried", () => {
  const events = [snapshot(
    el(2, "script", { src: "/sdk/tandem.js" }),
    el(3, "iframe", { src: "/frame.html" }),
    el(4, "video", { src: "/clip.mp4", poster: "/poster.png" }),
    el(5, "input", { type: "image", src: "/go.png" }),
  )];
  assert.deepEqual([...assetUrls(events)].sort(), ["/go.png", "/poster.png"]);
});

test("nothing a masked or hidden node uses is collected, nor its subtree's", () => {
  const masked = new Set([3, 9]);
  const events = [
    snapshot(
      el(2, "img", { src: "/shown.png" }),
      { ...el(3, "div", { style: "background:url(/masked-bg.png)" }), childNodes: [el(4, "img", { src: "/inside-masked.png" })] },
      { type: 2, id: 5, tagName: "style", attributes: {}, childNodes: [{ type: 3, id: 9, isStyle: true, textContent: "p{background:url(/masked-style.png)}" }] },
    ),
    { type: 3, timestamp: 2, data: { source: 0, adds: [], removes: [], texts: [{ id: 9, value: "q{background:url(/masked-text.png)}" }], attributes: [{ id: 3, attributes: { src: "/masked-late.png" } }, { id: 2, attributes: { src: "/shown-late.png" } }] } },
    { type: 3, timestamp: 3, data: { source: 8, id: 3, adds: [{ rule: "a{background:url(/masked-rule.png)}", index: 0 }] } },
  ];
  assert.deepEqual([...assetUrls(events, (id) => masked.has(id))].sort(), ["/shown-late.png", "/shown.png"]);
});

test("an address masking shortened (its query or fragment removed) is not carried: it may be another image", () => {
  const live: Record<number, string> = { 2: "https://shop.example/img?id=42", 3: "https://shop.example/plain.png" };
  const events = [snapshot(el(2, "img", { src: "https://shop.example/img" }), el(3, "img", { src: "https://shop.example/plain.png" }))];
  assert.deepEqual([...assetUrls(events, () => false, (id) => live[id] ?? null)], ["https://shop.example/plain.png"]);
});

test("a srcset candidate masking shortened is not carried either; the others are", () => {
  const live: Record<number, string> = { 2: "https://shop.example/img?id=42\nhttps://shop.example/plain.png" };
  const events = [snapshot(el(2, "img", { srcset: "https://shop.example/img 1x, https://shop.example/plain.png 2x" }))];
  assert.deepEqual([...assetUrls(events, () => false, (id, name) => (name === "srcset" ? live[id] ?? null : null))],
    ["https://shop.example/plain.png"]);
});

test("same-origin assets are fetched as the page could, checked, sent once per recorder", async () => {
  const { asked, fetcher } = site({
    "https://shop.example/a.png": { body: PNG, type: "image/png" },
    "https://shop.example/f.woff2": { body: WOFF2, type: "font/woff2" },
    "https://shop.example/fake.png": { body: HTML, type: "image/png" },
    "https://shop.example/page.html": { body: HTML, type: "text/html" },
  });
  const carrier = new AssetCarrier(() => PAGE, () => false, () => null, () => true, fetcher);
  const events = [snapshot(
    el(2, "img", { src: "https://shop.example/a.png" }),
    el(3, "img", { src: "https://cdn.example/other.png" }), // another origin: never asked
    el(4, "img", { src: "/fake.png" }), // HTML served as an image: refused
    el(5, "img", { src: "/page.html" }), // not an asset type
    el(6, "div", { style: "font-family:x;background:url(/f.woff2)" }),
    el(7, "img", { src: "data:image/png;base64,AAAA" }),
  )];
  const sent = await carrier.carry(events);
  assert.deepEqual(sent.map((a) => [a.url, a.type]).sort(), [
    ["/f.woff2", "font/woff2"], ["https://shop.example/a.png", "image/png"],
  ]);
  assert.deepEqual(decodeBase64(sent.find((a) => a.type === "image/png")!.data), PNG);
  assert.ok(asked.every(({ url }) => url.startsWith("https://shop.example/")), JSON.stringify(asked));
  for (const { init } of asked) {
    assert.equal(init.mode, "same-origin");
    assert.equal(init.credentials, "same-origin");
  }
  // Sent once per recorder, fetched once per session.
  assert.deepEqual(await carrier.carry(events), []);
  carrier.restart();
  assert.equal((await carrier.carry(events)).length, 2);
  assert.equal(asked.filter(({ url }) => url === "https://shop.example/a.png").length, 1);
});

test("too large, too many, images the policy hides, a redirect elsewhere and a silent server carry nothing", async () => {
  const big = new Uint8Array(MAX_ASSET_BYTES + 1);
  big.set(PNG);
  const { fetcher } = site({
    "https://shop.example/big.png": { body: big, type: "image/png" },
    "https://shop.example/a.png": { body: PNG, type: "image/png" },
    "https://shop.example/f.woff2": { body: WOFF2, type: "font/woff2" },
  });
  const carrier = new AssetCarrier(() => PAGE, () => false, () => null, () => false, fetcher);
  const sent = await carrier.carry([snapshot(
    el(2, "img", { src: "/big.png" }), el(3, "img", { src: "/a.png" }), el(4, "div", { style: "background:url(/f.woff2)" }),
  )]);
  assert.deepEqual(sent.map((a) => a.url), ["/f.woff2"]); // images hidden by the policy; big refused
  const elsewhere: Fetcher = async () => {
    const response = new Response(PNG as BodyInit, { headers: { "content-type": "image/png" } });
    Object.defineProperty(response, "url", { value: "https://evil.example/x.png" });
    return response;
  };
  assert.deepEqual(await new AssetCarrier(() => PAGE, () => false, () => null, () => true, elsewhere).carry([snapshot(el(2, "img", { src: "/x.png" }))]), []);
  const few = new AssetCarrier(() => PAGE, () => false, () => null, () => true, fetcher, { maxBytes: 100, sessionBytes: 15, sessionAssets: 10, waitMs: 1000 });
  const fitting = await few.carry([snapshot(el(2, "img", { src: "/a.png" }), el(3, "div", { style: "background:url(/f.woff2)" }))]);
  assert.equal(fitting.length, 1); // 12 + 8 bytes > 15: the second does not fit the session's budget
});

test("a server that never answers is given up on after waitMs, not waited for", async (t) => {
  // The clock is the test's (no wall-clock bound: a busy machine took 4 s for a 50 ms wait).
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const silent: Fetcher = () => new Promise(() => undefined);
  const late = new AssetCarrier(() => PAGE, () => false, () => null, () => true, silent, { maxBytes: 1000, sessionBytes: 1000, sessionAssets: 10, waitMs: 50 });
  let sent: AssetPayload[] | undefined;
  const carrying = late.carry([snapshot(el(2, "img", { src: "/slow.png" }))]).then((got) => { sent = got; });
  const settle = () => new Promise((resolve) => setImmediate(resolve));
  await settle();
  t.mock.timers.tick(49);
  await settle();
  assert.equal(sent, undefined); // still waiting within waitMs
  t.mock.timers.tick(1);
  await settle();
  assert.deepEqual(sent, []); // given up at waitMs (a wait never bounded fails here, not hangs)
  await carrying;
});

test("a stylesheet rrweb could not inline is carried with its own fonts first", async () => {
  const css = new TextEncoder().encode("@font-face{font-family:N;src:url(fonts/n.woff2)} body{color:rgb(1, 2, 3)}");
  const { fetcher } = site({
    "https://shop.example/css/late.css": { body: css, type: "text/css; charset=utf-8" },
    "https://shop.example/css/fonts/n.woff2": { body: WOFF2, type: "font/woff2" },
  });
  const sent = await new AssetCarrier(() => PAGE, () => false, () => null, () => true, fetcher)
    .carry([snapshot(el(2, "link", { rel: "stylesheet", href: "https://shop.example/css/late.css" }))]);
  assert.deepEqual(sent.map((a) => a.url), ["https://shop.example/css/fonts/n.woff2", "https://shop.example/css/late.css"]);
  const store = new AssetStore((blob) => `blob:console/${blob.type}`, () => undefined);
  for (const asset of sent) assert.ok(store.add(asset));
  const event = neutralizeEvent(snapshot(el(2, "link", { rel: "stylesheet", href: "https://shop.example/css/late.css" })), store);
  const link = event.data.node.childNodes[0] as { attributes: Record<string, string> };
  assert.equal(link.attributes.href, undefined);
  assert.match(link.attributes._cssText, /src:url\("blob:console\/font\/woff2"\)/);
  assert.match(link.attributes._cssText, /color:rgb\(1, 2, 3\)/);
});

test("the console shows carried assets from local URLs, checks them again, and still fetches nothing else", () => {
  const made: Blob[] = [];
  const revoked: string[] = [];
  const store = new AssetStore((blob) => {
    made.push(blob);
    return `blob:console/${made.length}`;
  }, (url) => revoked.push(url));
  const asset = (url: string, type: AssetPayload["type"], bytes: Uint8Array): AssetPayload =>
    ({ k: "asset", url, type, data: encodeBase64(bytes) });
  assert.ok(store.add(asset("https://shop.example/a.png", "image/png", PNG)));
  assert.ok(store.add(asset("https://shop.example/logo.svg", "image/svg+xml", SVG)));
  // A tampered SDK sends markup as an image, or a page as a stylesheet: refused.
  assert.equal(store.add(asset("https://shop.example/x.png", "image/png", HTML)), false);
  assert.equal(store.add(asset("https://shop.example/x.svg", "image/svg+xml", HTML)), false);
  assert.equal(store.add(asset("https://shop.example/x.css", "text/css", HTML)), false);
  assert.equal(store.add({ k: "asset", url: "https://shop.example/y.png", type: "image/png", data: "%%%" }), false);
  assert.equal(made.length, 1);
  assert.equal(made[0].type, "image/png");
  const event = neutralizeEvent(snapshot(
    el(2, "img", { src: "https://shop.example/a.png", srcset: "https://shop.example/a.png 1x, https://spy.example/2x.png 2x" }),
    el(3, "img", { src: "https://shop.example/logo.svg" }),
    el(4, "img", { src: "https://shop.example/not-carried.png" }),
    el(5, "div", { style: "background:url(https://shop.example/a.png);border-image:url(https://spy.example/b.png)" }),
  ), store);
  const [img, svg, missing, div] = event.data.node.childNodes as { attributes: Record<string, string> }[];
  assert.equal(img.attributes.src, "blob:console/1");
  assert.equal(img.attributes.srcset, "blob:console/1 1x");
  assert.match(svg.attributes.src, /^data:image\/svg\+xml;base64,/);
  assert.equal(missing.attributes.src, undefined);
  assert.equal(div.attributes.style, 'background:url("blob:console/1");border-image:none');
  store.dispose();
  assert.deepEqual(revoked, ["blob:console/1"]);
});

test("an asset crosses as one payload (in parts when large) and only within the limits", () => {
  const bytes = new Uint8Array(700 * 1024);
  bytes.set(PNG);
  const payload: AssetPayload = { k: "asset", url: "https://shop.example/big.png", type: "image/png", data: encodeBase64(bytes) };
  const decoder = new PayloadDecoder();
  let got = null;
  for (const frame of encodePayload(payload)) got = decoder.push(frame) ?? got;
  assert.deepEqual(got, payload);
  const tooBig = { ...payload, data: "A".repeat(Math.ceil(MAX_ASSET_BYTES / 3) * 4 + 4) };
  const decoder2 = new PayloadDecoder();
  assert.throws(() => { for (const frame of encodePayload(tooBig)) decoder2.push(frame); });
  assert.throws(() => new PayloadDecoder().push(new TextEncoder().encode(JSON.stringify({ ...payload, type: "text/html" }))));
  assert.ok(looksLike("font/woff2", WOFF2) && !looksLike("font/woff2", PNG));
});

test("the addresses of CSS built to make the patterns backtrack are found in one pass; honest ones as before", { timeout: 60_000 }, async () => {
  // cssUrls' `\(\s*(['"]?)([^)'"]*)\1\s*\)` tried every split of a run of spaces after `url(`
  // between its quantifiers (`url(` and 4,000 spaces: 40 s in the customer's tab), and
  // cssImageUrls' `@font-face\s*\{[^}]*\}` looked to the end of the text from each unclosed
  // `@font-face{` (20,000 of them: 6 s). The timeout only keeps a regression from hanging the suite.
  const { cssImageUrls, cssUrls } = await import("../src/shared/assets.ts");
  const spaces = " ".repeat(50_000);
  for (const css of [
    `a{b:url(${spaces}x}`, `a{b:url('${spaces}x}`, `a{b:url("${spaces}`, `a{b:${"url(".repeat(25_000)}}`, `a{b:${"url(\"".repeat(25_000)}}`,
    `a{b:${`url(${" ".repeat(20)}`.repeat(5_000)}}`, "@font-face{".repeat(20_000), `@font-face${spaces}`,
  ]) {
    assert.deepEqual(cssUrls(css), []);
    assert.deepEqual(cssImageUrls(css), []);
  }
  const honest = `@import url(a.css); @font-face{font-family:F;src:url("f.woff2") format("woff2")} a{background:url( b.png ) , URL('c d.png')}` +
    ` p{background:url("e(1).png")} q{background:url(${spaces}g.png${spaces})}`;
  assert.deepEqual(cssUrls(honest), ["a.css", "f.woff2", "b.png", "c d.png", "e(1).png", "g.png"]);
  assert.deepEqual(cssImageUrls(honest), ["b.png", "c d.png", "e(1).png", "g.png"]);
});
