// A stylesheet's image that only masked or hidden content shows is not carried (../src/share/assets.ts).
import assert from "node:assert/strict";
import { test } from "node:test";
import { AssetCarrier, type Fetcher, onlyMaskedImages } from "../src/share/assets.ts";
import { document } from "./dom.ts";

const PAGE = "https://shop.example/mandate/";
const SVG = new TextEncoder().encode('<svg xmlns="http://www.w3.org/2000/svg"><rect/></svg>');

test("an image only masked content shows is neither fetched nor sent; the rest of the sheet is", async () => {
  const asked: string[] = [];
  const fetcher: Fetcher = async (url) => {
    asked.push(url);
    return new Response(SVG as BodyInit, { status: 200, headers: { "content-type": "image/svg+xml" } });
  };
  const onlyMasked = (urls: string[]) => new Set(urls.filter((url) => url.endsWith("/signature.svg")));
  const carrier = new AssetCarrier(() => PAGE, () => false, () => null, () => true, fetcher, undefined, onlyMasked);
  const style = { type: 2, id: 2, tagName: "style", attributes: {}, childNodes: [{ type: 3, id: 3, isStyle: true,
    textContent: ".sig{background:url(/signature.svg)} .logo{background:url(/logo.svg)}" }] };
  const sent = await carrier.carry([{ type: 2, timestamp: 1, data: { node: { type: 0, id: 1, childNodes: [style] } } }]);
  assert.deepEqual(sent.map((asset) => asset.url), ["/logo.svg"]);
  assert.deepEqual(asked, ["https://shop.example/logo.svg"]);
});

test("which images only masked content shows fails closed: a page that cannot be read withholds them all", () => {
  const urls = ["/signature.svg", "/logo.svg"];
  const unreadable = () => {
    throw new TypeError("cannot read");
  };
  assert.deepEqual([...onlyMaskedImages(document, PAGE, urls, unreadable, () => true)].sort(), [...urls].sort());
  // Nothing masked on the page: nothing withheld.
  assert.deepEqual([...onlyMaskedImages(document, PAGE, urls, () => [], () => false)], []);
});
