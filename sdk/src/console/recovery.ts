/**
 * The signed-in account's own recovery codes: a "New recovery codes" button in the header, and a
 * form asking for the password and a code of the authenticator again (POST
 * /api/me/recovery-codes). The server checks both, spends the code, and answers ten new codes,
 * shown here once; the old ones stop working at once. The page only says what it answered.
 */
import type { RecoveryCodes } from "../generated/rest.ts";
import { checkedAnswer } from "./answers.ts";
import { accountPanel, headerButton } from "./account-panel.ts";
import { accountT as a } from "./messages/account.ts";
import { problemDetail } from "./office.ts";
import { relayFetch } from "./relay.ts";

const PANEL_ID = "recovery-renewal";

/** Show the header button (beside the password's). */
export function recoveryControls(): void {
  headerButton("recovery-renew", a("rcButton"), openPanel);
}

function field(form: HTMLFormElement, id: string, label: string, kind: "password" | "code"): HTMLInputElement {
  const input = Object.assign(document.createElement("input"), { id, name: id, required: true });
  if (kind === "password") Object.assign(input, { type: "password", autocomplete: "current-password" });
  else Object.assign(input, { autocomplete: "one-time-code", inputMode: "numeric", maxLength: 8 });
  form.append(Object.assign(document.createElement("label"), { htmlFor: id, textContent: label }), input);
  return input;
}

function openPanel(): void {
  const view = accountPanel(PANEL_ID, a("rcTitle"), a("rcIntro"));
  if (!view) return;
  const { panel, form, fail, close } = view;
  const password = field(form, "recovery-password", a("rcPassword"), "password");
  const code = field(form, "recovery-code", a("rcCode"), "code");
  form.append(Object.assign(document.createElement("button"), { type: "submit", className: "primary", textContent: a("rcSubmit") }));
  const cancel = Object.assign(document.createElement("button"), { type: "button", className: "ghost", textContent: a("pwCancel") });
  cancel.onclick = close;
  panel.append(cancel);
  form.onsubmit = async (event) => {
    event.preventDefault();
    view.clear();
    const response = await relayFetch("/api/me/recovery-codes", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ password: password.value, code: code.value }),
    });
    for (const input of [password, code]) input.value = "";
    if (!response.ok) return fail(await problemDetail(response));
    let codes: string[];
    try {
      ({ recovery_codes: codes } = await checkedAnswer<RecoveryCodes>(response, "POST", "/api/me/recovery-codes"));
    } catch (error) {
      return fail((error as Error).message);
    }
    showCodes(panel, codes, close);
  };
  view.show();
  password.focus();
}

/** The new codes, once: the panel's form gives way to them; closing the panel drops them. */
function showCodes(panel: HTMLElement, codes: readonly string[], close: () => void): void {
  const done = Object.assign(document.createElement("div"), { id: "recovery-done" });
  const note = Object.assign(document.createElement("p"), { className: "good", textContent: a("rcDone") });
  const list = Object.assign(document.createElement("ol"), { id: "recovery-codes", className: "codes" });
  list.setAttribute("aria-label", a("mfaCodes"));
  for (const text of codes) {
    const item = document.createElement("li");
    item.append(Object.assign(document.createElement("code"), { textContent: text }));
    list.append(item);
  }
  const copy = Object.assign(document.createElement("button"), { type: "button", id: "recovery-copy", textContent: a("mfaCopy") });
  copy.onclick = () => {
    const copied = navigator.clipboard?.writeText(codes.join("\n")) ?? Promise.reject(new Error("no clipboard"));
    copied.then(() => { copy.textContent = a("mfaCopied"); }, () => { copy.textContent = a("mfaCopyFailed"); });
  };
  const finish = Object.assign(document.createElement("button"), { type: "button", id: "recovery-close", className: "primary", textContent: a("rcClose") });
  finish.onclick = close;
  done.append(note, list, copy, finish);
  panel.replaceChildren(panel.querySelector("h1") ?? "", done);
  finish.focus();
}
