// Ninth masking review (docs/security.md, docs/privacy.md): card numbers and copies of hidden
// values written with characters the agent's eye skips (invisible format characters, bidi marks,
// no-break spaces between every digit, line breaks), and a password a web component shows
// (`type` switched to `text` inside an open shadow root) before sharing started.
import assert from "node:assert/strict";
import { test } from "node:test";
import {
  forgetSecrets, maskCardNumbers, maskCopies, maskInputValue, maskLongDigitRuns, watchPasswordFields,
} from "../src/shared/masking.ts";
import { document, html, window } from "./dom.ts";

(globalThis as { MutationObserver?: unknown }).MutationObserver ??= window.MutationObserver;

const ANY_DIGIT = /\p{Nd}/u;
const GROUPS = ["4111", "1111", "1111", "1111"];

test("a card split by invisible format characters, bidi marks or fillers is masked", () => {
  // Each is drawn as nothing (or as a blank) between the groups: the agent reads 4111 1111 ...
  const separators = [
    "\u200e", "\u200f", "\u202a", "\u202c", "\u2066", "\u2069", "\u061c", "\u180e", "\u034f", "\u2061",
    "\u2062", "\u2063", "\u2064", "\u206a", "\u3164", "\u115f", "\ufe0f", "\u17b4", "\u{e0020}",
    "\u00ad\u00ad\u00ad\u00ad\u00ad\u00ad", "\u200b\u200b\u200b\u200b\u200b", "\u00a0\u00ad\u00a0\u00ad\u00a0\u00ad",
  ];
  for (const separator of separators) {
    const card = GROUPS.join(separator);
    for (const masked of [maskCardNumbers(`Card ${card} on file`), maskLongDigitRuns(`Card ${card}`)]) {
      assert.doesNotMatch(masked, ANY_DIGIT, `${JSON.stringify(separator)}: ${JSON.stringify(masked)}`);
    }
  }
});

test("a card broken over lines, or with a line or ogham space between its groups, is masked", () => {
  for (const separator of ["\n", "\r\n", "\u0085", "\u2028", "\u2029", "\u000b", "\u000c", "\u1680"]) {
    const card = GROUPS.join(separator);
    for (const masked of [maskCardNumbers(`Card ${card} on file`), maskLongDigitRuns(`Card ${card}`)]) {
      assert.doesNotMatch(masked, ANY_DIGIT, `${JSON.stringify(separator)}: ${JSON.stringify(masked)}`);
    }
  }
});

test("a card with a no-break space or narrow no-break space between every digit is masked", () => {
  // A receipt template spacing each digit (`letter-spacing` done by hand, &nbsp; between them).
  for (const separator of ["\u00a0", "\u202f", "\u2009", "\u00a0\u00ad", "\u00a0\u00a0"]) {
    const card = "4111111111111111".split("").join(separator);
    for (const masked of [maskCardNumbers(`Card ${card} on file`), maskLongDigitRuns(`Card ${card}`)]) {
      assert.doesNotMatch(masked, ANY_DIGIT, `${JSON.stringify(separator)}: ${JSON.stringify(masked)}`);
    }
  }
});

test("honest text with invisible characters and line breaks stays shown", () => {
  for (const text of [
    "15\u200e.01.2024", "Order\u00a0123\u00a0456", "1\n2\n3\n4\n5", "2024\n2025\n2026",
    "v1.2.3\u200b", "Total:\u202f1\u202f299,00\u00a0€", "Room 12\u2028Floor 3",
  ]) {
    assert.equal(maskCardNumbers(text), text, JSON.stringify(text));
    assert.equal(maskLongDigitRuns(text), text, JSON.stringify(text));
  }
});

test("a hidden value's copy with soft hyphens, zero-width characters or no-break spaces in it is masked", () => {
  forgetSecrets();
  const form = html('<form><input id="pw" type="password"><input id="pin" name="pin"><input id="phrase" type="password"></form>');
  document.body.append(form);
  try {
    maskInputValue("Transmogrification7", form.querySelector("#pw"));
    maskInputValue("4729", form.querySelector("#pin"));
    maskInputValue("correct horse battery", form.querySelector("#phrase"));
    // A hyphenation script's soft hyphens in the page's echo of the password; a PIN echoed with
    // zero-width spaces (a template's word-break helper); a passphrase written with &nbsp;.
    for (const copy of [
      "You typed Trans\u00admog\u00adri\u00adfi\u00adca\u00adtion7", "Hint: Transmogri\u200bfication7",
      "PIN 4\u200b7\u200b2\u200b9 is wrong", "PIN 47\u2060 29 is wrong", "Phrase: correct\u00a0horse\u00a0battery",
      "Phrase: correct\u202fhorse\u2009battery", "Code: Transmogri\u200dfication7 ok",
    ]) {
      const masked = maskCopies(copy);
      assert.doesNotMatch(masked, /Transmog|mogri|fication|horse|4.?7.?2.?9|7\W*2\W*9/u, `${JSON.stringify(copy)}: ${JSON.stringify(masked)}`);
    }
    // Other text keeps its characters.
    for (const text of ["Trans\u00adport is on its way", "Room\u00a012", "correct\u00a0answer"]) {
      assert.equal(maskCopies(text), text);
    }
  } finally {
    form.remove();
    forgetSecrets();
  }
});

test("a password a web component shows (type switched inside an open shadow root) before sharing stays hidden", async () => {
  forgetSecrets();
  watchPasswordFields(document);
  const host = html("<pw-field></pw-field>");
  document.body.append(host);
  const root = (host as HTMLElement).attachShadow({ mode: "open" });
  root.innerHTML = '<form data-tandem-unmask><input id="pw" type="password"><button type="button" id="show">Show</button></form>';
  const field = root.querySelector("#pw") as HTMLInputElement;
  const show = root.querySelector("#show") as HTMLElement;
  show.addEventListener("click", () => field.setAttribute("type", field.getAttribute("type") === "password" ? "text" : "password"));
  try {
    // The component's "suggest a strong password": set by its script, no input event.
    field.value = "Generated-Quokka-8841";
    // The customer clicks "Show" (a composed click from inside the root).
    show.dispatchEvent(new window.MouseEvent("click", { bubbles: true, composed: true }) as unknown as Event);
    await new Promise((resolve) => setTimeout(resolve, 0)); // the page's own microtasks and observers
    assert.equal(field.getAttribute("type"), "text");
    assert.doesNotMatch(maskInputValue(field.value, field), /Quokka|8841/);
  } finally {
    host.remove();
    forgetSecrets();
  }
});

test("a password field a web component drew before the SDK looked, toggled by script, stays hidden", async () => {
  forgetSecrets();
  const host = html("<pw-field></pw-field>");
  document.body.append(host);
  const root = (host as HTMLElement).attachShadow({ mode: "open" });
  root.innerHTML = '<div data-tandem-unmask><input id="pw" type="password"></div>';
  const field = root.querySelector("#pw") as HTMLInputElement;
  watchPasswordFields(document);
  try {
    field.value = "Saved-Narwhal-5521";
    field.dispatchEvent(new window.FocusEvent("focusin", { bubbles: true, composed: true }) as unknown as Event);
    field.setAttribute("type", "text"); // revealed by a timer, no event of its own
    await new Promise((resolve) => setTimeout(resolve, 0));
    assert.doesNotMatch(maskInputValue(field.value, field), /Narwhal|5521/);
  } finally {
    host.remove();
    forgetSecrets();
  }
});

test("a password the page fills by script and then swaps for a text field on \"Show\" stays hidden", () => {
  forgetSecrets();
  watchPasswordFields(document);
  const form = html('<form data-tandem-unmask><input id="pw" type="password"><button type="button" id="show">Show</button></form>');
  document.body.append(form);
  const field = form.querySelector("#pw") as HTMLInputElement;
  const show = form.querySelector("#show") as HTMLElement;
  let swapped: HTMLInputElement | null = null;
  show.addEventListener("click", () => {
    // A plugin's "show password": a new text field in its place, holding the value.
    swapped = html('<input id="plain" type="text">') as HTMLInputElement;
    swapped.value = field.value;
    field.replaceWith(swapped);
  });
  try {
    field.value = "Suggested-Wombat-3307"; // the page's "suggest a strong password", no event
    show.dispatchEvent(new window.MouseEvent("click", { bubbles: true, composed: true }) as unknown as Event);
    assert.ok(swapped);
    const plain = swapped as HTMLInputElement;
    assert.equal(plain.value, "Suggested-Wombat-3307");
    assert.doesNotMatch(maskInputValue(plain.value, plain), /Wombat|3307/);
  } finally {
    form.remove();
    forgetSecrets();
  }
});

test("a PIN typed in another script's digits is found where the page echoes it in ASCII digits, and back", () => {
  forgetSecrets();
  const arabic = (ascii: string) => ascii.replace(/\d/g, (d) => String.fromCharCode(0x660 + Number(d)));
  const form = html('<form><input id="pin" name="pin"><input id="pin2" name="pin"></form>');
  document.body.append(form);
  try {
    maskInputValue(arabic("4729"), form.querySelector("#pin")); // an Arabic keyboard's PIN
    maskInputValue("8315", form.querySelector("#pin2"));
    for (const copy of ["PIN 4729 is wrong", `PIN ${arabic("8315")} is wrong`, "Code: 47 29"]) {
      const masked = maskCopies(copy);
      assert.doesNotMatch(masked, /4.?7.?2.?9|8.?3.?1.?5|[\u0660-\u0669]/u, `${copy}: ${masked}`);
    }
    assert.equal(maskCopies(`Order ${arabic("1234")}`), `Order ${arabic("1234")}`);
  } finally {
    form.remove();
    forgetSecrets();
  }
});

test("a card drawn with combining marks (keycaps, underlines, strokes) on its digits is masked", () => {
  const marked = (card: string, mark: string) => card.replace(/\d/g, (d) => d + mark);
  for (const card of [
    marked("4111111111111111", "\ufe0f\u20e3"), marked("4111 1111 1111 1111", "\ufe0f\u20e3"),
    marked("4111 1111 1111 1111", "\u0332"), marked("4111111111111111", "\u0336"), marked("4111-1111-1111-1111", "\u0305"),
  ]) {
    for (const masked of [maskCardNumbers(`Card ${card} on file`), maskLongDigitRuns(`Card ${card}`)]) {
      assert.doesNotMatch(masked, /\d/, `${JSON.stringify(card)}: ${JSON.stringify(masked)}`);
    }
  }
  // Accented words and an emoji keycap beside short numbers stay as written.
  for (const text of ["Cafe\u0301 au lait 12", "Press 1\ufe0f\u20e3 then 2\ufe0f\u20e3", "Room 2\u0332"]) {
    assert.equal(maskCardNumbers(text), text);
    assert.equal(maskLongDigitRuns(text), text);
  }
});

test("a card written in superscript, subscript or circled digits is masked", () => {
  const forms: Record<string, string[]> = {
    superscript: ["\u2070", "\u00b9", "\u00b2", "\u00b3", "\u2074", "\u2075", "\u2076", "\u2077", "\u2078", "\u2079"],
    subscript: Array.from({ length: 10 }, (_, d) => String.fromCharCode(0x2080 + d)),
    circled: ["\u24ea", ...Array.from({ length: 9 }, (_, d) => String.fromCharCode(0x2460 + d))],
    dingbat: ["\u24ff", ...Array.from({ length: 9 }, (_, d) => String.fromCharCode(0x2776 + d))],
    sansSerif: ["\u24ea", ...Array.from({ length: 9 }, (_, d) => String.fromCharCode(0x2780 + d))],
  };
  for (const [name, digits] of Object.entries(forms)) {
    for (const ascii of ["4111111111111111", "4111 1111 1111 1111", "5500-0000-0000-0004"]) {
      const card = ascii.replace(/\d/g, (d) => digits[Number(d)]);
      const other = new RegExp(`[${digits.join("")}]`, "u");
      for (const masked of [maskCardNumbers(`Card ${card} on file`), maskLongDigitRuns(`Card ${card}`)]) {
        assert.doesNotMatch(masked, other, `${name} ${card}: ${masked}`);
      }
    }
  }
  for (const text of ["E = mc\u00b2 and H\u2082O", "Area 120 m\u00b2, footnote\u00b9", "\u2460 Step one \u2461 Step two"]) {
    assert.equal(maskCardNumbers(text), text);
    assert.equal(maskLongDigitRuns(text), text);
  }
});
