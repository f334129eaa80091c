// What the page says about a field (its labels, toggles, the elements it names) is read once and
// kept until its tree changes (../src/shared/masking.ts, saidToBePassword): a change made after a
// keystroke must be honoured at the next one, in the same task or after the observer's delivery.
import assert from "node:assert/strict";
import { test } from "node:test";
import { MASK_PLACEHOLDER, forgetSecrets, hiddenFromAgent, maskFormState, maskInputValue } from "../src/shared/masking.ts";
import { document, html, window } from "./dom.ts";

(globalThis as { MutationObserver?: unknown }).MutationObserver ??= window.MutationObserver;

const delivered = () => new Promise((resolve) => setTimeout(resolve, 0));

/** A keystroke as rrweb reports it: maskInputFn, then the event's masking. */
function keystroke(field: Element, value: string): string {
  const text = maskInputValue(value, field);
  const event = { type: 3, timestamp: 1, data: { source: 5, id: 1, text, isChecked: false } };
  maskFormState(event, (id) => (id === 1 ? field : null));
  return event.data.text;
}

function mounted(markup: string): [HTMLFormElement, () => void] {
  const form = html(`<form data-tandem-unmask>${markup}</form>`) as HTMLFormElement;
  document.body.append(form);
  return [form, () => form.remove()];
}

test("a field whose label becomes 'Password' after a keystroke is hidden from the next one", async () => {
  const [form, done] = mounted('<label for="f">Nickname</label><input id="f">');
  try {
    const field = form.querySelector("#f") as Element;
    const label = form.querySelector("label") as Element;
    assert.equal(keystroke(field, "jane"), "jane");
    assert.equal(keystroke(field, "jane2"), "jane2", "kept: still shown");
    (label.firstChild as Text).data = "Password"; // a text change, in the same task
    assert.equal(keystroke(field, "jane23"), MASK_PLACEHOLDER);
    await delivered();
    assert.equal(keystroke(field, "jane234"), MASK_PLACEHOLDER, "and from then on");
    label.textContent = "Nickname";
    await delivered();
    assert.equal(keystroke(field, "jane2345"), "jane2345", "the label changed back: shown again");
  } finally {
    done();
  }
});

test("every kind of change to what names a field is honoured at the next keystroke", async () => {
  const changes: [string, (form: HTMLFormElement) => void][] = [
    ["a label added", (form) => form.append(html('<label for="f">Kennwort</label>'))],
    ["a label's for", (form) => (form.querySelector("#other") as Element).setAttribute("for", "f")],
    ["the field moved into a label", (form) => (form.querySelector("#wrap") as Element).append(form.querySelector("#f") as Element)],
    ["the field's placeholder", (form) => (form.querySelector("#f") as Element).setAttribute("placeholder", "PIN")],
    ["its aria-labelledby", (form) => (form.querySelector("#f") as Element).setAttribute("aria-labelledby", "said")],
    ["the element it names", (form) => ((form.querySelector("#hint") as Element).textContent = "Your password")],
    ["an id given to what it names", (form) => (form.querySelector("#said") as Element).setAttribute("id", "later")],
    ["a toggle added", (form) => form.append(html('<button aria-controls="f">Show password</button>'))],
    ["a toggle's aria-controls", (form) => (form.querySelector("#toggle") as Element).setAttribute("aria-controls", "f")],
  ];
  for (const [name, change] of changes) {
    const [form, done] = mounted(`<label for="f">Name</label><input id="f" aria-describedby="hint" aria-labelledby="later"><small id="hint">As on your card</small>
      <label id="other" for="g">Passwort</label><input id="g"><label id="wrap">Passwort </label><span id="said">Passwort</span>
      <button id="toggle" aria-controls="g">Show password</button>`);
    try {
      const field = form.querySelector("#f") as Element;
      assert.equal(keystroke(field, "jane"), "jane", name);
      change(form);
      assert.equal(keystroke(field, "jane2"), MASK_PLACEHOLDER, `${name}, same task`);
      await delivered();
      assert.equal(keystroke(field, "jane23"), MASK_PLACEHOLDER, `${name}, delivered`);
    } finally {
      done();
    }
  }
});

test("answers are kept per tree: a change in a shadow root is honoured there, and the outline follows", async () => {
  const [form, done] = mounted('<label for="f">Name</label><input id="f">');
  try {
    const host = document.createElement("div");
    form.append(host);
    const shadow = host.attachShadow({ mode: "open" });
    shadow.innerHTML = '<div data-tandem-unmask><label for="s">Name</label><input id="s"></div>';
    const inside = shadow.querySelector("#s") as Element;
    const outside = form.querySelector("#f") as Element;
    assert.equal(keystroke(inside, "jane"), "jane");
    assert.equal(keystroke(outside, "jane"), "jane");
    assert.equal(hiddenFromAgent(document).includes(inside), false);
    (shadow.querySelector("label") as Element).textContent = "Passwort";
    assert.equal(keystroke(inside, "jane2"), MASK_PLACEHOLDER);
    assert.equal(hiddenFromAgent(document).includes(inside), true);
    forgetSecrets(); // else "jane2", hidden inside, is masked outside as its copy
    assert.equal(keystroke(outside, "jane2"), "jane2", "the page's own tree did not change");
    await delivered();
    assert.equal(keystroke(inside, "jane23"), MASK_PLACEHOLDER);
  } finally {
    done();
  }
});
