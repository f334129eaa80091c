// Eighth masking review (docs/security.md): fields a checkout or a bank names as a card's
// security code or a PIN, in a form the site shows, are hidden as passwords are; fields whose
// names only hold those letters inside another word stay shown.
import assert from "node:assert/strict";
import { test } from "node:test";
import { forgetSecrets, isSensitiveField, maskInputValue } from "../src/shared/masking.ts";
import { document, html } from "./dom.ts";

function judged(markup: string): { sensitive: boolean; shown: string } {
  const form = html(`<form data-tandem-unmask>${markup}</form>`);
  document.body.append(form);
  try {
    forgetSecrets();
    const field = form.querySelector("#f") as Element;
    return { sensitive: isSensitiveField(field), shown: maskInputValue("8371", field) };
  } finally {
    form.remove();
  }
}

test("a card's security code or a PIN named so is hidden in a form the site shows", () => {
  for (const markup of [
    '<input id="f" name="cvv" inputmode="numeric" maxlength="4">', '<input id="f" name="card_cvc">',
    '<input id="f" name="cvv2">', '<input id="f" name="securityCode">', '<input id="f" name="security-code">',
    '<input id="f" name="card-verification-value">', '<input id="f" name="csc">', '<input id="f" name="cardCvn">',
    '<input id="f" name="pin" type="tel">', '<input id="f" name="pinNumber" type="number">', '<input id="f" name="tan">',
    '<label for="f">CVV</label><input id="f" name="field_7">', '<input id="f" aria-label="Security code">',
    '<input id="f" placeholder="CVC">', '<label for="f">Card verification number</label><input id="f">',
    '<textarea id="f" name="pin"></textarea>',
  ]) {
    const { sensitive, shown } = judged(markup);
    assert.equal(sensitive, true, markup);
    assert.notEqual(shown, "8371", markup);
  }
});

test("fields whose names only hold those letters inside another word stay shown", () => {
  for (const markup of [
    '<input id="f" name="pincode">', '<input id="f" name="spinner">', '<input id="f" name="opinion">',
    '<input id="f" name="shipping">', '<input id="f" name="security-question">', '<input id="f" name="tanks">',
    '<input id="f" name="captain">', '<label for="f">Postcode</label><input id="f">', '<input id="f" name="cvs-store">',
    '<select id="f" name="pin"><option>8371</option></select>',
  ]) {
    const { sensitive, shown } = judged(markup);
    assert.equal(sensitive, false, markup);
    assert.equal(shown, "8371", markup);
  }
});
