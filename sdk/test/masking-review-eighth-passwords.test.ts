// Review of the eighth masking review's fixes (docs/security.md): a password typed before sharing
// into a field the page swaps for a text field is remembered; it must still be found when it was
// typed otherwise (autofill telling only `change`), when many other hidden values come after it,
// and it is all that outlives a session's end.
import assert from "node:assert/strict";
import { test } from "node:test";
import { forgetSecrets, forgetSessionSecrets, maskInputValue, watchPasswordFields } from "../src/shared/masking.ts";
import { document, html, window } from "./dom.ts";

(globalThis as { MutationObserver?: unknown }).MutationObserver ??= window.MutationObserver;

/** Type `value` into a new password field the way `how` does, then swap it for a text field the
 * site shows, holding the same value. */
function typedThenSwapped(value: string, how: "input" | "change"): { swapped: HTMLInputElement; form: Element } {
  const form = html('<form data-tandem-unmask><input id="pw" type="password"></form>');
  document.body.append(form);
  watchPasswordFields(document);
  const field = form.querySelector("#pw") as HTMLInputElement;
  field.value = value;
  field.dispatchEvent(new window.Event(how, { bubbles: true }) as unknown as Event);
  const swapped = html('<input id="shown" type="text">') as HTMLInputElement;
  swapped.value = value;
  field.replaceWith(swapped);
  return { swapped, form };
}

test("a password an autofill tells only by `change` is remembered before the swap", () => {
  forgetSecrets();
  const { swapped, form } = typedThenSwapped("Quokka-Lantern-93", "change");
  try {
    assert.doesNotMatch(maskInputValue(swapped.value, swapped), /Quokka/);
  } finally {
    form.remove();
  }
});

test("a typed password is still found after many other hidden values", () => {
  forgetSecrets();
  const { swapped, form } = typedThenSwapped("Wombat-Ferry-51", "input");
  const others = html("<form></form>");
  document.body.append(others);
  try {
    for (let i = 0; i < 80; i++) {
      const other = html(`<input name="f${i}">`) as HTMLInputElement;
      others.append(other);
      maskInputValue(`someone${i}@example.org`, other); // hidden: remembered as a typed value
    }
    assert.doesNotMatch(maskInputValue(swapped.value, swapped), /Wombat/);
  } finally {
    form.remove();
    others.remove();
  }
});

test("a session's end forgets the values it saw, not the passwords typed since load", () => {
  forgetSecrets();
  const { swapped, form } = typedThenSwapped("Narwhal-Copper-77", "input");
  const other = html('<input name="email">') as HTMLInputElement;
  document.body.append(other);
  const shown = html('<input id="echo" data-tandem-unmask>') as HTMLInputElement;
  document.body.append(shown);
  try {
    maskInputValue("jane.doe@example.org", other); // hidden, remembered during the session
    assert.doesNotMatch(maskInputValue("jane.doe@example.org", shown), /jane/);
    forgetSessionSecrets();
    assert.equal(maskInputValue("jane.doe@example.org", shown), "jane.doe@example.org", "the session's values are gone");
    assert.doesNotMatch(maskInputValue(swapped.value, swapped), /Narwhal/, "the typed password is kept");
  } finally {
    form.remove();
    other.remove();
    shown.remove();
  }
});
