// Review of the date-row and row-label rules (docs/security.md, "Sixth masking review"): a code's
// row the rules missed. A label names a code in the page's language ("Código de verificación",
// "Bestätigungscode"), not only in English; and a date's row drawn in a web component's shadow
// root is a code's when its host says so.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { forgetSecrets, maskInputValue } from "../src/shared/masking.ts";
import { boxes, mounted, part } from "./box-rows.ts";
import { document, html } from "./dom.ts";

afterEach(() => forgetSecrets());


/** The rows whose first box shows a typed "7" to the agent. */
function leaking(at: (selector: string) => HTMLInputElement, ids: string[]): string[] {
  return ids.filter((id) => {
    const shown = maskInputValue("7", at(`${id} input`));
    forgetSecrets();
    return shown.includes("7");
  });
}

const CODE_LABELS = [
  "Código de verificación", "Código de verificação", "Bestätigungscode", "Sicherheitscode", "Codice di verifica",
  "Verificatiecode", "Код подтверждения", "Kod weryfikacyjny", "Engangskode",
];

test("identical boxes that say nothing under a label naming a code in the page's language are its pieces", (t) => {
  const at = mounted(CODE_LABELS.map((label, i) =>
    `<fieldset id="l${i}"><legend>${label}</legend>${boxes(6, () => 'type="text"')}</fieldset>`).join(""));
  t.after(() => at("#l0").closest("form")?.remove());
  assert.deepEqual(leaking(at, CODE_LABELS.map((_, i) => `#l${i}`)), []);
});

test("a date's row under a label naming a code in the page's language stays masked", (t) => {
  const at = mounted(CODE_LABELS.map((label, i) =>
    `<fieldset id="d${i}"><legend>${label}</legend>${boxes(8, (n) => `maxlength="1" autocomplete="bday-${part(n)}"`)}</fieldset>`).join(""));
  t.after(() => at("#d0").closest("form")?.remove());
  assert.deepEqual(leaking(at, CODE_LABELS.map((_, i) => `#d${i}`)), []);
});

test("a postcode's or a promo code's boxes labelled in the page's language stay shown", (t) => {
  const labels = ["Código postal", "Código promocional", "Cupón de descuento", "Gutscheincode", "Codice postale", "Posta kodu", "Kod rabatowy"];
  const at = mounted(labels.map((label, i) =>
    `<fieldset id="p${i}"><legend>${label}</legend>${boxes(4, () => 'type="text"')}</fieldset>`).join(""));
  t.after(() => at("#p0").closest("form")?.remove());
  for (let i = 0; i < labels.length; i++) assert.equal(maskInputValue("SPRING", at(`#p${i} input`)), "SPRING", labels[i]);
});

test("a date's row in a web component's shadow root whose host names a code stays masked", (t) => {
  const form = html('<form data-tandem-unmask><div class="otp-inputs"><date-boxes id="host"></date-boxes></div>' +
    '<date-boxes id="labelled" aria-label="Verification code"></date-boxes><date-boxes id="plain"></date-boxes></form>');
  document.body.append(form);
  t.after(() => form.remove());
  const rows: Record<string, HTMLInputElement> = {};
  for (const id of ["host", "labelled", "plain"]) {
    const root = (form.querySelector(`#${id}`) as HTMLElement).attachShadow({ mode: "open" });
    root.innerHTML = `<div>${boxes(8, (n) => `maxlength="1" data-tandem-unmask autocomplete="bday-${part(n)}"`)}</div>`;
    rows[id] = root.querySelector("input") as HTMLInputElement;
  }
  const shown = (id: string): string => {
    const out = maskInputValue("7", rows[id]);
    forgetSecrets();
    return out;
  };
  assert.doesNotMatch(shown("host"), /7/, "a row named otp around the host");
  assert.doesNotMatch(shown("labelled"), /7/, "a host labelled a code's");
  assert.equal(shown("plain"), "7", "a date's row in a component that says nothing else stays shown");
});

test("boxes of a code in a wrapper of a web component's shadow root, the host labelled a code's, are its pieces", (t) => {
  const form = html('<form data-tandem-unmask><code-boxes id="labelled" aria-label="Enter your one-time code"></code-boxes>' +
    '<code-boxes id="slotted"><label>Verification code</label></code-boxes>' +
    '<fieldset><legend>Delivery address</legend><code-boxes id="address"></code-boxes></fieldset></form>');
  document.body.append(form);
  t.after(() => form.remove());
  const first: Record<string, HTMLInputElement> = {};
  const inner: Record<string, string> = {
    labelled: `<div>${boxes(6, () => 'type="text" data-tandem-unmask')}</div>`,
    slotted: `<slot></slot><div>${boxes(6, () => 'type="text" data-tandem-unmask')}</div>`,
    address: `<div>${boxes(6, () => 'type="text" data-tandem-unmask')}</div>`,
  };
  for (const [id, markup] of Object.entries(inner)) {
    const root = (form.querySelector(`#${id}`) as HTMLElement).attachShadow({ mode: "open" });
    root.innerHTML = markup;
    first[id] = root.querySelector("input") as HTMLInputElement;
  }
  const shown = (id: string, value: string): string => {
    const out = maskInputValue(value, first[id]);
    forgetSecrets();
    return out;
  };
  assert.doesNotMatch(shown("labelled", "7"), /7/, "the host labelled a code's");
  assert.doesNotMatch(shown("slotted", "7"), /7/, "the host's label child names a code");
  assert.equal(shown("address", "12 High St"), "12 High St", "boxes under another legend stay shown");
});

test("a code's row the page makes a date's after the code was typed stays masked (once a piece, always one)", (t) => {
  const form = html(`<form data-tandem-unmask><div id="row">${boxes(8, () => 'maxlength="1"')}</div></form>`);
  document.body.append(form);
  t.after(() => form.remove());
  const all = Array.from(form.querySelectorAll("input")) as HTMLInputElement[];
  all.forEach((box) => assert.doesNotMatch(maskInputValue("7", box), /7/));
  all.forEach((box, i) => box.setAttribute("autocomplete", `bday-${part(i + 1)}`));
  assert.deepEqual(all.map((box) => maskInputValue("7", box)).filter((shown) => shown.includes("7")), []);
});
