// The site's brand on the widget (issue 15): validated so that it can neither open a channel out
// of the page (a third-party logo learns who asks for help) nor run script nor inject CSS, and
// the text on brand colours keeps 4.5:1 contrast.
import assert from "node:assert/strict";
import { test } from "node:test";
import { BrandError, brandCss, contrast, textOn, validateBrand } from "../src/share/brand.ts";

const PAGE = "https://shop.example/checkout?x=1";

test("a brand with name, same-origin logo, hex colours and radius is accepted", () => {
  const brand = validateBrand(
    { name: " Northwind ", logo: "/img/logo.png", colours: { accent: "#F0B429", banner: "#123" }, radius: 6 }, PAGE,
  );
  assert.deepEqual(brand, {
    name: "Northwind", logo: "https://shop.example/img/logo.png", accent: "#f0b429", banner: "#123", radius: 6,
  });
  assert.match(brandCss(brand), /--tandem-accent: #f0b429; --tandem-accent-text: #000000/);
});

test("logos that would leak or run script are refused", () => {
  const refused = [
    "javascript:alert(1)", "https://tracker.example/pixel.png", "//tracker.example/x.png", "http://shop.example/x.png",
    "data:text/html;base64,PHNjcmlwdD4=", "data:image/svg+xml,<svg onload=alert(1)>", "blob:https://shop.example/1",
    "https://user:pw@shop.example/x.png", `data:image/png;base64,${"A".repeat(40_000)}`, "ftp://shop.example/x.png",
  ];
  for (const logo of refused) assert.throws(() => validateBrand({ logo }, PAGE), BrandError, logo);
  assert.equal(validateBrand({ logo: "data:image/png;base64,iVBORw0KGgo=" }, PAGE).logo, "data:image/png;base64,iVBORw0KGgo=");
});

test("colours must be hex (nothing to inject), radius bounded, unknown options refused", () => {
  for (const accent of ["red; } * { display: none", "url(https://x)", "rgb(0,0,0)", "#12345", 3]) {
    assert.throws(() => validateBrand({ colours: { accent } }, PAGE), BrandError, String(accent));
  }
  assert.throws(() => validateBrand({ radius: 100 }, PAGE), BrandError);
  assert.throws(() => validateBrand({ radius: "4px" }, PAGE), BrandError);
  assert.throws(() => validateBrand({ logoo: "x" }, PAGE), /brand.logoo is not an option/);
  assert.throws(() => validateBrand({ name: "x".repeat(61) }, PAGE), BrandError);
  assert.throws(() => validateBrand("Northwind", PAGE), BrandError);
});

test("text on any brand colour has at least 4.5:1 contrast", () => {
  for (let r = 0; r < 256; r += 17) {
    for (let g = 0; g < 256; g += 17) {
      for (let b = 0; b < 256; b += 51) {
        const hex = `#${[r, g, b].map((c) => c.toString(16).padStart(2, "0")).join("")}`;
        assert.ok(contrast(hex, textOn(hex)) >= 4.5, hex);
      }
    }
  }
});
