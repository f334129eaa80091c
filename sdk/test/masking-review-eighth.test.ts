// Review of the eighth masking review's fixes (docs/security.md): what its rules missed, as an
// ordinary site whose markup differs a little and as an agent reading the stream.
import assert from "node:assert/strict";
import { test } from "node:test";
import { maskCardNumbers, maskLongDigitRuns } from "../src/shared/masking.ts";

/** Any decimal digit of any script (Arabic-Indic, Devanagari, mathematical bold...). */
const ANY_DIGIT = /\p{Nd}/u;

test("a card number in another script's digits or with other separators is masked", () => {
  const arabic = (ascii: string) => ascii.replace(/\d/g, (d) => String.fromCharCode(0x660 + Number(d)));
  const persian = (ascii: string) => ascii.replace(/\d/g, (d) => String.fromCharCode(0x6f0 + Number(d)));
  const devanagari = (ascii: string) => ascii.replace(/\d/g, (d) => String.fromCharCode(0x966 + Number(d)));
  const bold = (ascii: string) => ascii.replace(/\d/g, (d) => String.fromCodePoint(0x1d7ce + Number(d)));
  for (const card of [
    arabic("4111111111111111"), arabic("4111 1111 1111 1111"), persian("4111-1111-1111-1111"), devanagari("4111111111111111"),
    bold("4111111111111111"), "4111\u00b71111\u00b71111\u00b71111", "4111\u20271111\u20271111\u20271111",
    "4111|1111|1111|1111", "4111\t1111\t1111\t1111", "4\u200b1\u200b1\u200b1\u200b1111\u200b1111\u200b1111",
    "4111\u200b1111\u200c1111\u200d1111", "4111\u20601111\ufeff1111\u20091111", "４１１１1111１１１１1111",
    "4111 \u200b1111 \u200b1111 \u200b1111",
  ]) {
    for (const masked of [maskCardNumbers(`Card ${card} on file`), maskLongDigitRuns(`Card ${card}`)]) {
      assert.doesNotMatch(masked, ANY_DIGIT, `${JSON.stringify(card)}: ${masked}`);
    }
  }
});

test("a long number typed in another script's digits is masked in a shown value", () => {
  for (const typed of ["٤١١١٢٢٢٣", "٤١١١ ٢٢٢٣ ٣", "۰۹۱۲۳۴۵۶۷۸۹", "४१११२२२३३"]) {
    assert.doesNotMatch(maskLongDigitRuns(typed), ANY_DIGIT, typed);
  }
});

test("honest numbers stay shown: short ones in any script, IBANs, phone numbers, dates", () => {
  for (const text of ["٢٠٢٤", "١٥.٠١.٢٠٢٤", "Tel. 030 12", "+49 30.12", "DE89 3704", "1Z 999 AA1",
    "12:30:45.123"]) {
    assert.equal(maskLongDigitRuns(text), text, text);
  }
  for (const text of ["DE89 3704 0044 0532 0130 00", "+49 30 1234 5678", "+1.415.555.2671", "1Z 999 AA1 01 2345 6784",
    "2024-01-15T10:30:00Z", "Tracking 1Z999AA10123456784", "١٥.٠١.٢٠٢٤ - ١٦.٠١.٢٠٢٤"]) {
    assert.equal(maskCardNumbers(text), text, text);
  }
});
