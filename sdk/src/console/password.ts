/**
 * The signed-in account's own password: a "Change password" button in the header, and the form,
 * which is the only thing shown after an admin's reset (`must_change_password`) until a new
 * password is chosen. The server checks everything (the current password, the rules); the page
 * only says what it answered.
 */
import type { AgentInfo } from "../generated/rest.ts";
import { checkedAnswer } from "./answers.ts";
import { accountPanel, headerButton } from "./account-panel.ts";
import { accountT as a } from "./messages/account.ts";
import { problemDetail } from "./office.ts";
import { relayFetch } from "./relay.ts";

const PANEL_ID = "password";

/** Show the header button; open the form at once (and return true) when a change is required. */
export function passwordControls(agent: AgentInfo, done: (agent: AgentInfo) => void): boolean {
  headerButton("password-change", a("pwButton"), () => openPanel(done, false));
  if (agent.must_change_password) {
    openPanel(done, true);
    return true;
  }
  return false;
}

function passwordField(form: HTMLFormElement, id: string, label: string, autocomplete: string): HTMLInputElement {
  const input = Object.assign(document.createElement("input"), { id, name: id, type: "password", required: true, autocomplete });
  form.append(Object.assign(document.createElement("label"), { htmlFor: id, textContent: label }), input);
  return input;
}

function openPanel(done: (agent: AgentInfo) => void, forced: boolean): void {
  const view = accountPanel(PANEL_ID, forced ? a("pwTitleForced") : a("pwTitle"), forced ? a("pwIntroForced") : a("pwIntro"));
  if (!view) return;
  const { panel, form, fail, close } = view;
  const current = passwordField(form, "password-current", forced ? a("pwGiven") : a("pwCurrent"), "current-password");
  const fresh = passwordField(form, "password-new", a("pwNew"), "new-password");
  const again = passwordField(form, "password-again", a("pwAgain"), "new-password");
  form.append(Object.assign(document.createElement("button"), { type: "submit", className: "primary", textContent: a("pwSubmit") }));
  if (!forced) {
    const cancel = Object.assign(document.createElement("button"), { type: "button", className: "ghost", textContent: a("pwCancel") });
    cancel.onclick = close;
    panel.append(cancel);
  }
  form.onsubmit = async (event) => {
    event.preventDefault();
    view.clear();
    if (fresh.value !== again.value) return fail(a("pwDiffer"));
    const response = await relayFetch("/api/me/password", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ current_password: current.value, new_password: fresh.value }),
    });
    for (const input of [current, fresh, again]) input.value = "";
    if (!response.ok) return fail(await problemDetail(response));
    let changed: AgentInfo;
    try {
      changed = await checkedAnswer<AgentInfo>(response, "POST", "/api/me/password");
    } catch (error) {
      return fail((error as Error).message);
    }
    close();
    if (forced) done(changed);
  };
  view.show();
  current.focus();
}
