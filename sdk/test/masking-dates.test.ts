// Rows of one-character boxes that are no code (docs/privacy.md, "Codes typed in boxes"): a date
// of birth typed one character per box is the site's ordinary data, shown where the site shows
// its form; a code's row calling itself a date is not. And rows of boxes that say nothing
// themselves, under a container or label that names a code: masked as a code's pieces.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { MASK_PLACEHOLDER, forgetSecrets, maskCopies, maskFormState, maskInputValue } from "../src/shared/masking.ts";
import { boxes, mounted, part } from "./box-rows.ts";
import { document, html } from "./dom.ts";

afterEach(() => forgetSecrets());


/** What the agent sees of a date typed into a row: each box's digit of 13 03 1990. */
function typed(at: (selector: string) => HTMLInputElement, row: string): string {
  const all = Array.from(at(row).querySelectorAll("input")) as HTMLInputElement[];
  return all.map((box, i) => maskInputValue("13031990"[i], box)).join("");
}

test("a date of birth typed one character per box is shown: by autocomplete, placeholder, name, labels or its parts' wrappers", (t) => {
  const rows = {
    autocomplete: `<div id="autocomplete">${boxes(8, (n) => `maxlength="1" inputmode="numeric" autocomplete="bday-${part(n)}"`)}</div>`,
    placeholder: `<div id="placeholder">${boxes(8, (n) => `maxlength="1" placeholder="${part(n)[0].toUpperCase()}"`)}</div>`,
    names: `<div id="names">${boxes(8, (n) => `maxlength="1" pattern="[0-9]" name="dob_${part(n)}_${n}"`)}</div>`,
    labels: `<div id="labels">${boxes(8, (n) => `maxlength="1" id="l${n}"`)}</div>` +
      [1, 2, 3, 4, 5, 6, 7, 8].map((n) => `<label for="l${n}">${part(n)} ${n}</label>`).join(""),
    wrappers: '<fieldset id="wrappers"><legend>Date of birth</legend>' +
      `<div class="dob-day"><label>Day</label>${boxes(2, () => 'maxlength="1"')}</div>` +
      `<div aria-label="Month">${boxes(2, () => 'maxlength="1"')}</div>` +
      `<div><label>Year</label>${boxes(4, () => 'maxlength="1"')}</div></fieldset>`,
    "YYYY MM DD": `<div id="iso">${boxes(8, (n) => `maxlength="1" autocomplete="bday-${n <= 4 ? "year" : n <= 6 ? "month" : "day"}"`)}</div>`,
  };
  const at = mounted(Object.values(rows).join("<hr>"));
  t.after(() => at("#autocomplete").closest("form")?.remove());
  for (const id of ["#autocomplete", "#placeholder", "#names", "#labels", "#wrappers", "#iso"]) {
    assert.equal(typed(at, id), "13031990", id);
  }
});

test("a code's row calling itself a date, or a row only partly a date, stays masked", (t) => {
  const rows = [
    // Six boxes named a code's, each saying it is a day.
    `<div id="named-otp">${boxes(6, () => 'maxlength="1" name="otp" aria-label="day"')}</div>`,
    // A full date's autocomplete, in a row named a code's.
    `<div id="in-otp" class="otp-inputs">${boxes(8, (n) => `maxlength="1" autocomplete="bday-${part(n)}"`)}</div>`,
    // A full date's placeholders on boxes named digits.
    `<div id="digits">${boxes(8, (n) => `maxlength="1" class="digit" placeholder="${part(n)[0]}"`)}</div>`,
    // A PIN in four boxes all named a day (a copied date widget).
    `<div id="all-day">${boxes(4, () => 'maxlength="1" autocomplete="bday-day"')}</div>`,
    // Six boxes all named a day.
    `<div id="six-day">${boxes(6, () => 'maxlength="1" name="day"')}</div>`,
    // A date's names on the first box only.
    `<div id="first-only"><input maxlength="1" autocomplete="bday-day">${boxes(7, () => 'maxlength="1"')}</div>`,
    // A full date's names and a one-time-code box among them.
    `<div id="one-time">${boxes(8, (n) => `maxlength="1" autocomplete="bday-${part(n)}${n === 1 ? " one-time-code" : ""}"`)}</div>`,
    // Day and month only: no year.
    `<div id="no-year">${boxes(4, (n) => `maxlength="1" autocomplete="bday-${part(n)}"`)}</div>`,
    // Parts interleaved: no date's order.
    `<div id="mixed">${boxes(8, (n) => `maxlength="1" autocomplete="bday-${["day", "month", "year", "year"][n % 4]}"`)}</div>`,
    // A date's placeholders, the row labelled a verification code.
    `<fieldset id="verify"><legend>Verification code</legend>${boxes(8, (n) => `maxlength="1" placeholder="${part(n)[0]}"`)}</fieldset>`,
  ];
  const at = mounted(rows.join("<hr>"));
  t.after(() => at("#named-otp").closest("form")?.remove());
  for (const id of ["#named-otp", "#in-otp", "#digits", "#all-day", "#six-day", "#first-only", "#one-time", "#no-year", "#mixed", "#verify"]) {
    assert.doesNotMatch(maskInputValue("1", at(`${id} input`)), /1/, id);
    forgetSecrets();
  }
});

test("identical boxes that say nothing, in a row a legend, a label or aria-labelledby names a code, are its pieces", (t) => {
  const at = mounted(
    `<fieldset id="legend"><legend>Verification code</legend>${boxes(6, () => 'type="text"')}</fieldset>` +
    `<h2 id="heading">Enter your one-time code</h2><div id="labelled" role="group" aria-labelledby="heading">${boxes(6, () => "")}</div>` +
    `<div id="label"><label>One-time code</label><div>${boxes(6, () => "")}</div></div>` +
    `<label id="own">Verification code <span>${boxes(6, () => "")}</span></label>` +
    // Two boxes of three ("123-456") under a legend naming a code.
    `<fieldset id="small"><legend>One-time code</legend>${boxes(2, () => 'maxlength="3"')}</fieldset>` +
    `<fieldset id="aria" aria-label="Verification code">${boxes(6, () => "")}</fieldset>`,
  );
  t.after(() => at("#legend").closest("form")?.remove());
  const leaked = ["#legend", "#labelled", "#label", "#own", "#small", "#aria"].filter((id) => {
    const shown = maskInputValue("7", at(`${id} input`));
    forgetSecrets();
    return shown.includes("7");
  });
  assert.deepEqual(leaked, []);
});

test("a row a legend names something else, or a promo code, is not a code's", (t) => {
  const at = mounted(
    `<fieldset id="address"><legend>Delivery address</legend>${boxes(4, () => 'type="text"')}</fieldset>` +
    `<fieldset id="promo"><legend>Promo code</legend>${boxes(4, () => 'type="text"')}</fieldset>`,
  );
  t.after(() => at("#address").closest("form")?.remove());
  assert.equal(maskInputValue("12 High St", at("#address input")), "12 High St");
  assert.equal(maskInputValue("SPRING", at("#promo input")), "SPRING");
});

test("a date of birth in boxes of a masked form: each box hidden, the page's copy of the whole date masked, its digits not as words across the page", (t) => {
  const form = html(`<form><div id="dob">${boxes(8, (n) => `maxlength="1" autocomplete="bday-${part(n)}"`)}</div></form>`);
  document.body.append(form);
  t.after(() => form.remove());
  const all = Array.from(form.querySelectorAll("input")) as HTMLInputElement[];
  all.forEach((box, i) => {
    box.value = "13031990"[i];
    assert.equal(maskInputValue(box.value, box), MASK_PLACEHOLDER);
  });
  maskFormState({ type: 3, data: { source: 0, texts: [], removes: [], adds: [], attributes: [] } }, () => null);
  assert.equal(maskCopies("Born 13031990"), `Born ${MASK_PLACEHOLDER}`);
  // A code's box's digit is looked for as a word of its own (the page's echo of that box); a
  // date's part's digit is not: "1" and "3" masked every such word of the page.
  assert.equal(maskCopies("Step 1 of 3"), "Step 1 of 3");
});
