// Eighth masking review (docs/security.md): a card number written with other separators than
// one space or dash (dots, two spaces, slashes, underscores, no-break spaces, en dashes) or in
// full-width digits (a Japanese IME's) was not found: page text and a shown field showed it.
import assert from "node:assert/strict";
import { test } from "node:test";
import { maskCardNumbers, maskLongDigitRuns } from "../src/shared/masking.ts";

const CARDS = [
  "4111.1111.1111.1111", "4111  1111  1111  1111", "4111/1111/1111/1111", "4111_1111_1111_1111",
  "4111\u00a01111\u00a01111\u00a01111", "4111\u20131111\u20131111\u20131111", "４１１１１１１１１１１１１１１１",
  "４１１１ １１１１ １１１１ １１１１", "5500 0000 . 0000 0004",
];

test("a card number with other separators or full-width digits is masked in page text and values", () => {
  for (const card of CARDS) {
    for (const masked of [maskCardNumbers(`Card ${card} on file`), maskLongDigitRuns(`Card ${card}`)]) {
      assert.doesNotMatch(masked, /[0-9０-９]/, `${card}: ${masked}`);
    }
  }
});

test("a card typed key by key with dots or in full-width digits shows no prefix in a shown value", () => {
  for (const typed of ["4111.1111", "4111.1111.11", "４１１１１１１", "4111  1111  1"]) {
    assert.doesNotMatch(maskLongDigitRuns(typed), /[0-9０-９]/, typed);
  }
});

test("dates, times, versions and prices with dots or slashes stay shown", () => {
  for (const text of ["15.01.2024", "2024/01/15", "12.03.2024 14:30", "v1.2.3", "1.299,00 €", "Order 123.45", "10/12/2023 - 11/12/2023"]) {
    assert.equal(maskLongDigitRuns(text), text, text);
    assert.equal(maskCardNumbers(`${text} and ${text}`), `${text} and ${text}`, text);
  }
});

test("two dates in a row are no card number, whatever their digits", () => {
  // 16 digits that pass Luhn's check, in a date's groups: page text of a booking stays shown.
  let checked = 0;
  for (let day = 1; day <= 28; day++) {
    const range = `01.02.2024 - ${String(day).padStart(2, "0")}.03.2024`;
    assert.equal(maskCardNumbers(`Stay ${range}`), `Stay ${range}`, range);
    checked++;
  }
  assert.equal(checked, 28);
});
