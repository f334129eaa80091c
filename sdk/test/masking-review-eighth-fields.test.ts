// Review of the eighth masking review's fixes (docs/security.md): spellings of a card's security
// code, a PIN, a TAN or a one-time code the word rules missed, in names and in the page's labels
// (its language's too), in a form the site shows; and the neighbours that must stay shown.
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

test("names spelled otherwise that say a security code, a PIN, a TAN or a one-time code are hidden", () => {
  for (const name of [
    "cvv2", "cvc_2", "card-cvv", "CardVerificationValue", "securitycode", "SECURITYCODE", "cvvcode", "cvvNumber", "x_card_code",
    "pinNumber", "pinnumber", "PIN1", "otp", "totp", "otp_code", "mfaCode", "2fa-code", "one-time-code", "onetimecode",
    "verification_code", "authCode", "smsCode", "passcode", "tan_code", "smsTan", "mtan", "cryptogramme", "pruefziffer",
    "prüfziffer", "kartenpruefnummer", "sicherheitscode", "geheimzahl", "codigo_seguridad", "codice-sicurezza",
  ]) {
    const { sensitive, shown } = judged(`<input id="f" name="${name}">`);
    assert.equal(sensitive, true, name);
    assert.notEqual(shown, "8371", name);
  }
});

test("labels that say so, in the page's language too, hide the field", () => {
  for (const said of [
    "Security Code", "SecurityCode", "CVV2", "One-time code", "One-time password", "OTP", "Verification code",
    "Authentication code", "Enter the code from your authenticator app", "mTAN", "TAN", "Cryptogramme visuel",
    "Code de sécurité", "Code confidentiel", "Prüfziffer", "Kartenprüfnummer", "Sicherheitscode", "Geheimzahl",
    "Código de seguridad", "Codigo de seguridad", "Código de verificación", "Código de segurança", "Codice di sicurezza",
    "Kod bezpieczeństwa", "Код безопасности", "Код подтверждения", "Güvenlik kodu", "セキュリティコード", "暗証番号",
    "安全码", "验证码", "보안코드", "인증번호",
  ]) {
    for (const markup of [
      `<label for="f">${said}</label><input id="f" name="field_7">`, `<input id="f" aria-label="${said}">`,
      `<input id="f" placeholder="${said}">`, `<span id="l">${said}</span><input id="f" aria-labelledby="l">`,
    ]) {
      const { sensitive, shown } = judged(markup);
      assert.equal(sensitive, true, markup);
      assert.notEqual(shown, "8371", markup);
    }
  }
});

test("names and labels of honest fields beside them stay shown", () => {
  for (const markup of [
    '<input id="f" name="pincode">', '<input id="f" name="zip_code">', '<input id="f" name="promoCode">',
    '<input id="f" name="country-code">', '<input id="f" name="tracking_code">', '<input id="f" name="security_question">',
    '<input id="f" name="captain">', '<input id="f" name="tank">', '<input id="f" name="cvsStore">', '<input id="f" name="product_code">',
    '<input id="f" name="time_code">', '<input id="f" name="timecode">',
    '<label for="f">Promo code</label><input id="f">', '<label for="f">Postal code</label><input id="f">',
    '<label for="f">Security question</label><input id="f">', '<label for="f">Colour: Tan</label><input id="f">',
    '<label for="f">Code de réduction</label><input id="f">', '<label for="f">Código postal</label><input id="f">',
    '<label for="f">Palabra clave</label><input id="f">', '<label for="f">Sicherheitshinweis</label><input id="f">',
    '<label for="f">Gutscheincode</label><input id="f">', '<label for="f">Tracking code</label><input id="f">',
    '<label for="f">Country code</label><input id="f">', '<label for="f">Otpusk</label><input id="f">',
    '<label for="f">PAKISTAN</label><input id="f">', '<label for="f">Code postal</label><input id="f">',
  ]) {
    const { sensitive, shown } = judged(markup);
    assert.equal(sensitive, false, markup);
    assert.equal(shown, "8371", markup);
  }
});
