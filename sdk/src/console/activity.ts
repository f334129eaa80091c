/**
 * What happened to the signed-in account lately (GET /api/me/activity), shown at each sign-in
 * and each load of a signed-in console, first in `<main>`: its sign-ins (when, from where, how)
 * and the changes others made to it (an admin's reset of its password or authenticator, a link
 * to a provider account, the operator's), and who created it, with the password they chose
 * (temporary or kept). An admin can take an agent's account over that way
 * and sign in as the agent; the server reads this list from the audit trail, so whoever signed
 * in as the agent cannot take it out of the owner's sight (attack review of authentication).
 * It is shown when something in it needs the owner's eye: a change someone else made, the
 * password typed with a wrong code, a copy of the sign-in used elsewhere (each a warning), or a
 * sign-in from another address than this one's (a phishing page that relayed the password and
 * a code signs in from its own; so does the agent at home, which the agent knows) or made
 * another way (through the organisation's provider, for an agent who types a password). Hiding it
 * hides it in this tab only: it is shown again at the next sign-in.
 */
import type { AccountEvent } from "../generated/rest.ts";
import { checkedAnswer } from "./answers.ts";
import { type AccountKey, accountT as a } from "./messages/account.ts";
import { relayFetch } from "./relay.ts";
import { MAX_NAME, plainLine } from "../shared/names.ts";

const SECTION_ID = "account-activity";

/** A record's time as the audit pages show one (office.ts `when`), in the browser's locale. */
const when = (seconds: number) => new Date(seconds * 1000).toLocaleString(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
});

/** Done to the account by someone else (the record's `by`): said as a warning. */
const CHANGES: Readonly<Record<string, AccountKey>> = {
  password_reset: "actPasswordReset",
  mfa_reset: "actMfaReset",
  sso_identity_bound: "actSsoBound",
  sso_identity_removed: "actSsoRemoved",
  user_disabled: "actDisabled",
  user_enabled: "actEnabled",
  role_changed: "actRoleChanged",
};

/** Done in the account's name. */
const OWN: Readonly<Record<string, AccountKey>> = {
  sign_in: "actSignIn",
  second_factor_failed: "actWrongCode",
  sign_in_other_client: "actOtherClient",
  password_changed: "actPasswordChanged",
  mfa_enrolled: "actMfaEnrolled",
  recovery_codes_renewed: "actRecoveryRenewed",
};

/** The password the creator of the account chose (a `user_created` record's `method`). */
const CREATED_PASSWORD: Readonly<Record<string, AccountKey>> = {
  temporary: "actCreatedTemporary",
  kept_by_creator: "actCreatedKept",
};

const METHODS: Readonly<Record<string, AccountKey>> = {
  oidc: "actByProvider",
  authenticator: "actByAuthenticator",
  recovery_code: "actByRecoveryCode",
  password: "actByPassword",
};

/** An account event as one line: its words, and whether someone else did it (a warning), for a
 * console signed in from the address `here` (a wrong code typed from it is the owner's own
 * slip, not a warning). The server's strings are each one plain line (no override turns a name
 * and an address around). */
export function activityLine(event: AccountEvent, here: string | null = null): { text: string; warn: boolean } {
  const has = (table: Readonly<Record<string, AccountKey>>, key: string | null): key is string =>
    key !== null && Object.prototype.hasOwnProperty.call(table, key);
  const ip = plainLine(event.ip ?? "", MAX_NAME) || "?";
  const by = event.by === "cli" ? a("actOperator") : plainLine(event.by, MAX_NAME) || "?";
  if (event.action === "user_created") {
    // Who made the account, and the password they chose (the record's `at` is the date): not
    // a warning, every account an admin makes has one; it is in the list when the list is shown.
    const password = has(CREATED_PASSWORD, event.method) ? a(CREATED_PASSWORD[event.method]) : plainLine(event.method ?? "", MAX_NAME) || "?";
    return { text: a("actCreated", { by, password }), warn: false };
  }
  if (has(CHANGES, event.action)) {
    return { text: a(CHANGES[event.action], { by }), warn: true };
  }
  if (has(OWN, event.action)) {
    const how = has(METHODS, event.method) ? a(METHODS[event.method]) : plainLine(event.method ?? "", MAX_NAME);
    // A right password with a wrong code from elsewhere, or a copy of the cookie used
    // elsewhere: someone else.
    const warn = (event.action === "second_factor_failed" && event.ip !== here) || event.action === "sign_in_other_client";
    if (event.action === "password_changed" && event.chosen_by !== null) {
      // A temporary password claimed: the owner's own first sign-in, or its chooser's before
      // the owner's (an admin who chose the owner's password). From another address than this
      // sign-in's, a warning. "" when no version kept who chose it (set before revision 0019):
      // still a claim of a password someone else chose.
      const chooser = event.chosen_by === "cli"
        ? a("actChooserOperator")
        : plainLine(event.chosen_by, MAX_NAME) || a("actChooserUnknown");
      return { text: a("actClaimedTemporary", { ip, by: chooser }), warn: event.ip !== here };
    }
    if (event.action === "password_changed" && event.ip !== null) {
      // From another address than this sign-in's, a warning: whoever holds the account (its
      // claimer, a phished sign-in) changing the password in the owner's name. Records made
      // before a change kept its address say it without one.
      return { text: a("actPasswordChangedFrom", { ip }), warn: event.ip !== here };
    }
    return { text: a(OWN[event.action], { ip, how }), warn };
  }
  return { text: plainLine(event.action, MAX_NAME), warn: false };
}

/** Whether the account's `events` (newest first, as the server answers) need the owner's eye,
 * and how many are warnings. The newest sign-in is this console's own: the others are compared
 * with its address. */
export function activityNotice(events: readonly AccountEvent[]): { show: boolean; warnings: number; lines: { text: string; warn: boolean }[] } {
  const signIns = events.filter((event) => event.action === "sign_in");
  const here = signIns.length ? signIns[0] : null;
  const lines = events.map((event) => activityLine(event, here ? here.ip : null));
  const warnings = lines.filter((line) => line.warn).length;
  // From another address, or another way (through the provider where the owner types a
  // password: an admin who bound the account to a provider account of its own, in the office).
  const elsewhere = here !== null && signIns.some((event) => event.ip !== here.ip || event.method !== here.method);
  return { show: warnings > 0 || elsewhere, warnings, lines };
}

/** Ask the server for the account's activity and show it if it needs the owner's eye, unless
 * the console is no longer `signedIn()` when it answers; nothing is shown when the answer fails
 * (the console works on; the next sign-in asks again). */
export async function showAccountActivity(signedIn: () => boolean): Promise<void> {
  let events: AccountEvent[];
  try {
    const response = await relayFetch("/api/me/activity");
    if (!response.ok) return;
    events = await checkedAnswer<AccountEvent[]>(response, "GET", "/api/me/activity");
  } catch {
    return;
  }
  const main = document.querySelector("main");
  hideAccountActivity();
  const notice = activityNotice(events);
  if (!main || !notice.show || !signedIn()) return;
  const section = Object.assign(document.createElement("section"), { id: SECTION_ID, className: "card" });
  section.setAttribute("aria-labelledby", `${SECTION_ID}-title`);
  const title = Object.assign(document.createElement("h2"), { id: `${SECTION_ID}-title`, textContent: a("actTitle") });
  const { lines, warnings: changed } = notice;
  const intro = Object.assign(document.createElement("p"), { className: changed ? "error" : "muted" });
  intro.textContent = changed ? a("actWarning", { count: changed }) : a("actIntro");
  if (changed) intro.setAttribute("role", "alert");
  const list = Object.assign(document.createElement("ul"), { id: `${SECTION_ID}-list`, className: "activity" });
  events.forEach((event, i) => {
    const item = Object.assign(document.createElement("li"), { className: lines[i].warn ? "warn" : "" });
    item.append(Object.assign(document.createElement("time"), { textContent: when(event.at) }), " ", lines[i].text);
    list.append(item);
  });
  const hide = Object.assign(document.createElement("button"), { id: `${SECTION_ID}-hide`, type: "button", className: "ghost", textContent: a("actHide") });
  hide.onclick = hideAccountActivity;
  section.append(title, intro, list, hide);
  main.prepend(section);
}

/** Take the list away (hidden by the agent, or signed out). */
export function hideAccountActivity(): void {
  document.getElementById(SECTION_ID)?.remove();
}
