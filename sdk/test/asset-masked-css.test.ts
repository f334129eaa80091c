// A stylesheet's image that only masked or hidden content shows is not carried (../src/share/assets.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { AssetCarrier, type Fetcher, unshownImages } from "../src/share/assets.ts";
import { document } from "./dom.ts";

const PAGE = "https://shop.example/mandate/";
const SVG = new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>');

test("an image only masked content shows is neither fetched nor sent; the rest of the sheet is", async () => {
  const asked: string[] = [];
  const fetcher: Fetcher = async (url) => {
    asked.push(url);
    return new Response(SVG as BodyInit, { status: 200, headers: { "content-type": "image/svg+xml" } });
  };
  const judged: string[][] = [];
  const unshown = (urls: string[]) => {
    judged.push(urls);
    return new Set(urls.filter((url) => url.endsWith("/signature.svg")));
  };
  const carrier = new AssetCarrier(() => PAGE, () => false, () => null, () => true, fetcher, undefined, unshown);
  const style = { type: 2, id: 2, tagName: "style", attributes: {}, childNodes: [{ type: 3, id: 3, isStyle: true,
    textContent: ".sig{background:url(/signature.svg)} .logo{background:url(/logo.svg)} " +
      "@font-face{font-family:F;src:url(/f.woff2)} @import url(/more.css);" }] };
  const img = { type: 2, id: 4, tagName: "img", attributes: { src: "/signature.svg" }, childNodes: [] };
  const sent = await carrier.carry([{ type: 2, timestamp: 1, data: { node: { type: 0, id: 1, childNodes: [style] } } }]);
  assert.deepEqual(sent.map((asset) => asset.url).filter((url) => url.endsWith(".svg")), ["/logo.svg"]);
  assert.deepEqual(asked.filter((url) => url.endsWith(".svg")), ["https://shop.example/logo.svg"]);
  // Fonts and imported sheets are not images a masked element could show: not judged.
  assert.deepEqual(judged, [["/signature.svg", "/logo.svg"]]);
  assert.ok(asked.includes("https://shop.example/f.woff2") && asked.includes("https://shop.example/more.css"), asked.join());
  // An image an element shows by its own src is not judged by styles (masking placed that element).
  judged.length = 0;
  await carrier.carry([{ type: 2, timestamp: 2, data: { node: { type: 0, id: 1, childNodes: [style, img] } } }]);
  assert.deepEqual(judged, []);
});

test("which stylesheet images no shown element shows fails closed: a page that cannot be read withholds them all", () => {
  const urls = ["/signature.svg", "/logo.svg"];
  const unreadable = () => {
    throw new TypeError("cannot read");
  };
  assert.deepEqual([...unshownImages(document, PAGE, urls, unreadable, () => true)].sort(), [...urls].sort());
  // No element shows either yet: both withheld (masked content may be the first to show one).
  assert.deepEqual([...unshownImages(document, PAGE, urls, () => [], () => false)].sort(), [...urls].sort());
});
