// Attack review of the ninth masking review (docs/security.md): card numbers written with digit
// forms it did not read (parenthesized `⑷`, with a full stop `⒋`, with a comma `🄅`), or
// grouped with the full-width and small forms of its own separators (a Japanese IME's `－`,
// `．`, `／`, its prolonged sound mark `ー`, the one-dot leader `․`).
import assert from "node:assert/strict";
import { test } from "node:test";
import { forgetSecrets, maskCardNumbers, maskCopies, maskInputValue, maskLongDigitRuns } from "../src/shared/masking.ts";
import { document, html } from "./dom.ts";

const CARD = "4111 1111 1111 1111";
/** Any digit the agent reads as one: a decimal digit, or one of the forms below. */
const READ_DIGIT = /[\p{Nd}\u2474-\u247c\u2488-\u2490\u{1f100}-\u{1f10c}]/u;

function form(start: number, zero: boolean): (text: string) => string {
  return (text) => Array.from(text, (ch) => {
    if (!/[0-9]/.test(ch)) return ch;
    if (!zero && ch === "0") return ch;
    return String.fromCodePoint(start + Number(ch) - (zero ? 0 : 1));
  }).join("");
}

test("a card in parenthesized digits, or digits with a full stop or a comma, is masked", () => {
  const forms: Array<[string, (text: string) => string]> = [
    ["parenthesized", form(0x2474, false)],
    ["full stop", form(0x2488, false)],
    ["digit comma", form(0x1f101, true)],
  ];
  for (const [name, write] of forms) {
    const card = write(CARD);
    for (const masked of [maskCardNumbers(`Card ${card} on file`), maskLongDigitRuns(`Card ${card}`)]) {
      assert.doesNotMatch(masked, READ_DIGIT, `${name}: ${JSON.stringify(masked)}`);
      assert.ok(!/[\ud800-\udfff]/u.test(masked.replace(/[\ud800-\udbff][\udc00-\udfff]/g, "")), `${name}: a lone surrogate`);
    }
  }
  // Text in such forms that is no card stays as written.
  assert.equal(maskCardNumbers("Steps ⑴ ⑵ ⑶ and ⒈ ⒉ ⒊, 🄁 🄂"), "Steps ⑴ ⑵ ⑶ and ⒈ ⒉ ⒊, 🄁 🄂");
});

test("a card grouped by full-width or small dashes, dots or slashes, or a prolonged sound mark, is masked", () => {
  const separators = [
    "\uff0d", "\uff0e", "\uff0f", "\uff3f", "\uff5c", "\u30fc", "\uff70", "\ufe63", "\ufe58", "\ufe52",
    "\u2024", "\u2043", "\u2044", "\u2215", "\u2219", "\u22c5", "\u2e3a", "\u301c", "\uff65",
    "\u00a0\uff0d\u00a0", "\u3000\uff0d\u3000",
  ];
  const fullwidth = form(0xff10, true);
  for (const separator of separators) {
    for (const card of [CARD.split(" ").join(separator), fullwidth(CARD.split(" ").join(separator))]) {
      for (const masked of [maskCardNumbers(`Card ${card} on file`), maskLongDigitRuns(`Card ${card}`)]) {
        assert.doesNotMatch(masked, /\p{Nd}/u, `${JSON.stringify(separator)}: ${JSON.stringify(masked)}`);
      }
    }
  }
});

test("dates, phone numbers and order numbers written with those separators stay as written", () => {
  for (const text of [
    "２０２４－０１－１５ から ２０２４－０２－１５ まで", "Tel ０３－１２３４－５６７８", "Order ＡＢ－１２３４５",
    "2024\u20241\u202415", "Items 12／34／56",
  ]) {
    assert.equal(maskCardNumbers(text), text);
  }
});

test("a hidden value's copy in full-width letters, superscript or keycap digits, or spread over lines, is masked", () => {
  forgetSecrets();
  const form = html('<form><input id="pw" type="password"><input id="pin" name="pin"><input id="phrase" type="password"></form>');
  document.body.append(form);
  const fullwidth = (text: string) => Array.from(text, (ch) => (/[!-~]/.test(ch) ? String.fromCharCode(ch.charCodeAt(0) + 0xfee0) : ch)).join("");
  try {
    maskInputValue("Transmogrification7", form.querySelector("#pw"));
    maskInputValue("4729", form.querySelector("#pin"));
    maskInputValue("correct horse battery", form.querySelector("#phrase"));
    // A page that echoes in full-width forms (a Japanese site's 全角 conversion), in superscript,
    // circled or keycap digits, or with an underline drawn on each digit; a passphrase that the
    // page's markup breaks over lines or spaces twice (HTML draws any run of blanks as one space).
    for (const copy of [
      `You typed ${fullwidth("Transmogrification7")}`, "PIN ⁴⁷²⁹", "PIN ④⑦②⑨", "PIN ⑷⑺⑵⑼",
      "PIN 4\ufe0f\u20e37\ufe0f\u20e32\ufe0f\u20e39\ufe0f\u20e3", "PIN 4\u03327\u03322\u03329\u0332",
      "Phrase: correct\n      horse\n      battery", "Phrase: correct  horse\tbattery", "Phrase:\r\ncorrect\r\nhorse battery",
    ]) {
      const masked = maskCopies(copy);
      assert.doesNotMatch(masked, /Transmog|ｍｏｇｒｉ|horse|battery|[4⁴④⑷][^a-z]*[7⁷⑦⑺]/u, `${JSON.stringify(copy)}: ${JSON.stringify(masked)}`);
    }
    // Other text keeps its characters, its line breaks and its full-width forms.
    for (const text of ["Ｔｒａｎｓｐｏｒｔ ４７", "line one\n  line two", "correct\nanswer", "Room ⁴⁷"]) {
      assert.equal(maskCopies(text), text);
    }
  } finally {
    form.remove();
    forgetSecrets();
  }
});

test("a row of numbers spaced by tabs, double or no-break spaces keeps the columns around a card-valid span", () => {
  // As a row spaced by single spaces does (DIGIT_RUN): only the 13-19 digits that pass Luhn's
  // check are masked, not the whole row (a <pre> table, a receipt's columns).
  assert.equal(maskCardNumbers("x 1200 3400 5600 7800 9100 2300 4500"), "x 1200 •••• •••• •••• •••• 2300 4500");
  for (const blank of ["\t", "  ", "\u00a0", "\u2003\u2003"]) {
    const row = ["1200", "3400", "5600", "7800", "9100", "2300", "4500"].join(blank);
    const expected = ["1200", "••••", "••••", "••••", "••••", "2300", "4500"].join(blank);
    assert.equal(maskCardNumbers(`x ${row}`), `x ${expected}`, JSON.stringify(blank));
  }
  // A card spaced so is masked whole, digit by digit too.
  assert.equal(maskCardNumbers("Card 4111\t1111\t1111\t1111"), "Card ••••\t••••\t••••\t••••");
  assert.equal(maskCardNumbers(`Card ${"4111111111111111".split("").join("\u00a0")}`), `Card ${"•".repeat(16).split("").join("\u00a0")}`);
});
