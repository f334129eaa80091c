/**
 * The console's office: pages for the roles without live sessions (issue 15, item 8). Admins get
 * Users, Teams, Sites, Policies, Recordings, Single sign-on and Organisation; auditors the Audit
 * trail and Recordings. A navigation bar lists the pages a role may open (a registry:
 * `registerOfficePage` adds one, e.g. Training), the address's hash names the open one, and the
 * organisation's name heads every page and the window title. Everything goes through the same
 * HTTP API (and the server's authorisation); this is only a view. Text is always set with
 * textContent; strings come from messages/office.ts.
 */

import { checkedAnswer, problemText } from "./answers.ts";
import type {
  AgentInfo, AuditRecord, NewSite, NewTeam, NewUser, Org, OrgChange, OrgName, PasswordReset, Site, SiteChange, SsoAnswer,
  SsoProvider, SsoSettings, Team, TokenKey, User, UserChange,
} from "../generated/rest.ts";
import { type Locale, type Translate, direction, pageLocale, translator } from "../shared/i18n.ts";
import { compliancePanel, subjectsPanel } from "./compliance.ts";
import { en, humanLabel, officeMessages } from "./messages/office.ts";
import { recordingKeyPanel, recordingsPanel } from "./recordings.ts";
import { relay, relayFetch } from "./relay.ts";
import { serverSelectorProblem } from "../shared/policy.ts";
import { serverPagePatternProblem } from "../shared/pages.ts";
import { MAX_NAME, plainLine } from "../shared/names.ts";

type Row = (string | Node)[];
export type OfficeT = Translate<typeof en>;

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, text = "", className = ""): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (text) node.textContent = text;
  if (className) node.className = className;
  return node;
}

export function table(headers: string[], rows: Row[], caption = ""): HTMLTableElement {
  const t = el("table", "", "grid");
  if (caption) {
    const c = t.createCaption();
    c.textContent = caption;
    c.className = "visually-hidden";
  }
  const head = t.createTHead().insertRow();
  for (const h of headers) {
    const th = el("th", h);
    th.scope = "col";
    head.append(th);
  }
  const body = t.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    for (const cell of row) {
      const td = tr.insertCell();
      // One plain line, invisible characters shown: a name the relay sends (or an earlier version
      // stored) with a U+200E after it must not look like another account's.
      if (typeof cell === "string") td.textContent = plainLine(cell, Infinity);
      else td.append(cell);
    }
  }
  return t;
}

/** The `detail` of a problem+json answer, or a generic line (answers.ts checks it). */
export const problemDetail = problemText;

let fieldCount = 0;

/** A labelled field appended to `form`, with a slot for its validation message. */
export function field<T extends HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement>(form: HTMLFormElement, label: string, input: T): T {
  input.id = `f${++fieldCount}-${label.toLowerCase().replace(/\W+/g, "-").slice(0, 40)}`;
  const l = el("label", label);
  l.htmlFor = input.id;
  form.append(l, input);
  input.addEventListener("input", () => { input.dataset.edited = "1"; }, { once: true });
  return input;
}

/** Fill a field from a page's first answer unless the user has already typed in it (a slow
 * answer must not overwrite what they wrote). */
export function prefill(input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement, value: string): void {
  if (!input.dataset.edited) input.value = value;
}

/** Show (or, with "", clear) a field's validation message beside it; returns whether it is valid. */
export function invalid(input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement, message: string): boolean {
  const id = `${input.id}-error`;
  let note = document.getElementById(id);
  if (!message) {
    note?.remove();
    input.removeAttribute("aria-invalid");
    input.removeAttribute("aria-describedby");
    return true;
  }
  if (!note) {
    note = el("p", "", "field-error");
    note.id = id;
    input.after(note);
  }
  note.textContent = message;
  input.setAttribute("aria-invalid", "true");
  input.setAttribute("aria-describedby", id);
  return false;
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await relayFetch(path, {
    method,
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(await problemDetail(response));
  return checkedAnswer<T>(response, method, path); // checked against the route's schema, not cast
}

/** POST .../reset-mfa (204): what the account has left, from its Tandem-Second-Factor header.
 * "none": created with --no-mfa, it had no authenticator and still signs in with its password
 * alone; anything else (an older server sends none) reads as a new one at its next sign-in. */
async function resetSecondFactor(username: string): Promise<"none" | "new-at-next-sign-in"> {
  const response = await relayFetch(`/api/users/${encodeURIComponent(username)}/reset-mfa`, { method: "POST" });
  if (!response.ok) throw new Error(await problemDetail(response));
  return response.headers.get("Tandem-Second-Factor") === "none" ? "none" : "new-at-next-sign-in";
}

type Say = (text: string, good?: boolean) => void;

/** A status line (role=status, named if `name` is given) and the function that writes to it. */
export function statusLine(name = ""): [HTMLParagraphElement, Say] {
  const status = el("p", "", "status");
  status.setAttribute("role", "status");
  if (name) status.setAttribute("aria-label", name);
  const say: Say = (text, good = false) => {
    status.textContent = text;
    status.className = `status ${good ? "good" : "bad"}`;
  };
  return [status, say];
}

/** A button that copies `text()` to the clipboard and says so through `say`. */
export function copyButton(label: string, text: () => string, say: Say, t: OfficeT = defaultT()): HTMLButtonElement {
  const button = el("button", label);
  button.type = "button";
  button.addEventListener("click", () => {
    const value = text();
    const done = navigator.clipboard?.writeText(value) ?? Promise.reject(new Error("no clipboard"));
    done.then(() => say(t("copy.done"), true), () => say(t("copy.failed")));
  });
  return button;
}

/** Hand `data` to the browser as a download named `name` (its object URL revoked after 10 s). */
export function saveFile(name: string, data: Blob): void {
  const url = URL.createObjectURL(data);
  const link = el("a");
  link.href = url;
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/**
 * An audit record's details, one line each ("reason: …"), every value one plain line of its text.
 * They were one string joined by "; ", so a value holding "; outcome: signed in" (a provider's
 * subject in a failed sign-in's reason, a name an anonymous client tried) read as a detail of the
 * record's own, and an override in one value reordered the others after it.
 */
export function auditDetails(details: Readonly<Record<string, unknown>>): HTMLElement {
  const list = el("div", "", "details");
  for (const [key, value] of Object.entries(details)) {
    const text = typeof value === "string" ? value : JSON.stringify(value) ?? String(value);
    list.append(el("div", `${plainLine(key.replace(/_/g, " "), Infinity)}: ${plainLine(text, Infinity)}`));
  }
  return list;
}

export const when = (seconds: number) => new Date(seconds * 1000).toLocaleString(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
});

/**
 * A searchable, paged table of `items`: a search box filtering on `text(item)`, the table of the
 * current page and Previous/Next with "Page 1 of 3". `refresh(items)` replaces the items.
 */
export function listView<T>(options: {
  headers: string[]; cells: (item: T) => Row; text: (item: T) => string; search: string; caption: string;
  t: OfficeT; pageSize?: number;
}): { element: HTMLElement; refresh: (items: T[]) => void } {
  const { t } = options;
  const pageSize = options.pageSize ?? 20;
  const element = el("div", "", "list-view");
  const search = el("input");
  search.type = "search";
  search.id = `search-${++fieldCount}`;
  search.setAttribute("aria-label", options.search);
  search.placeholder = options.search;
  search.className = "search";
  const body = el("div");
  const pager = el("div", "", "pager");
  const previous = el("button", t("paging.previous"));
  const next = el("button", t("paging.next"));
  previous.type = next.type = "button";
  const where = el("span", "", "muted");
  where.setAttribute("aria-live", "polite");
  pager.append(previous, where, next);
  let items: T[] = [];
  let page = 0;
  const draw = () => {
    const q = search.value.trim().toLowerCase();
    const shown = q ? items.filter((item) => options.text(item).toLowerCase().includes(q)) : items;
    const pages = Math.max(1, Math.ceil(shown.length / pageSize));
    page = Math.min(page, pages - 1);
    const slice = shown.slice(page * pageSize, (page + 1) * pageSize);
    body.replaceChildren(slice.length ? table(options.headers, slice.map(options.cells), options.caption) : el("p", t("paging.empty"), "muted"));
    previous.disabled = page === 0;
    next.disabled = page >= pages - 1;
    pager.hidden = pages === 1;
    where.textContent = t("paging.status", { page: page + 1, pages, count: slice.length });
  };
  search.addEventListener("input", () => {
    page = 0;
    draw();
  });
  previous.addEventListener("click", () => {
    page -= 1;
    draw();
  });
  next.addEventListener("click", () => {
    page += 1;
    draw();
  });
  element.append(search, body, pager);
  return { element, refresh: (fresh) => {
    items = fresh;
    draw();
  } };
}

/** A form's row of buttons (in the form's second column). */
function actions(form: HTMLFormElement, ...buttons: HTMLButtonElement[]): void {
  const row = el("div", "", "actions");
  row.append(...buttons);
  form.append(row);
}

function button(text: string, type: "button" | "submit" = "button", className = ""): HTMLButtonElement {
  const b = el("button", text, className);
  b.type = type;
  return b;
}

// The registry of pages

export interface OfficeContext {
  agent: AgentInfo;
  org: OrgName;
  t: OfficeT;
  /** Open another page (by id). */
  open(id: string): void;
}

export interface OfficePage {
  /** The address's hash (#users) and the navigation link's key. */
  id: string;
  /** The navigation's text and the page's heading: a catalogue key, or a function of `t`. */
  label: (keyof typeof en & string) | ((t: OfficeT) => string);
  /** Roles that see this page. */
  roles: readonly string[];
  /** Position in the navigation (lower first). */
  order: number;
  /** Fill `root` (under the page's heading). */
  render(root: HTMLElement, context: OfficeContext): void;
}

const registry: OfficePage[] = [];

/** Add a page to the office's navigation (another module may, e.g. Training). */
export function registerOfficePage(page: OfficePage): void {
  const at = registry.findIndex((p) => p.id === page.id);
  if (at >= 0) registry.splice(at, 1);
  registry.push(page);
  registry.sort((a, b) => a.order - b.order);
}

export function officePages(role: string): OfficePage[] {
  return registry.filter((page) => page.roles.includes(role));
}

const labelOf = (page: OfficePage, t: OfficeT) => (typeof page.label === "function" ? page.label(t) : t(page.label));

/** The office's language: `?lang=` in the console's address, else the page's and the browser's. */
function officeLocale(): Locale {
  return pageLocale(new URLSearchParams(location.search).get("lang"));
}

function defaultT(): OfficeT {
  return translator(officeMessages, officeLocale());
}

let stopShell: (() => void) | null = null;

/**
 * The office for `agent` in `root`: the organisation's name, the navigation, and the page the
 * address names (else the role's first). Called again at each sign-in; the previous one stops.
 */
export function officeConsole(root: HTMLElement, agent: AgentInfo): void {
  stopShell?.();
  const t = defaultT();
  const locale = officeLocale();
  root.lang = locale;
  root.dir = direction(locale);
  const pages = officePages(agent.role);
  const orgName = el("p", agent.org, "org-name");
  orgName.id = "office-org";
  const nav = el("nav", "", "office-nav");
  nav.setAttribute("aria-label", t("nav.label"));
  const list = el("ul");
  nav.append(list);
  const heading = el("h1");
  heading.tabIndex = -1;
  const body = el("div", "", "office-page");
  const page = el("section");
  page.setAttribute("aria-labelledby", "office-title");
  heading.id = "office-title";
  page.append(heading, body);
  root.replaceChildren(orgName, nav, page);
  const context: OfficeContext = { agent, org: { org_id: agent.org, name: agent.org }, t, open: (id) => {
    location.hash = id;
  } };
  const links = new Map<string, HTMLAnchorElement>();
  for (const p of pages) {
    const link = el("a", labelOf(p, t));
    link.href = `#${p.id}`;
    links.set(p.id, link);
    const item = el("li");
    item.append(link);
    list.append(item);
  }
  let shown = "";
  const show = (focus: boolean) => {
    if (!root.isConnected) return stop();
    const wanted = location.hash.slice(1);
    const chosen = pages.find((p) => p.id === wanted) ?? pages[0];
    if (!chosen || chosen.id === shown) return;
    shown = chosen.id;
    for (const [id, link] of links) {
      if (id === chosen.id) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    heading.textContent = labelOf(chosen, t);
    document.title = `${t("title.page", { page: heading.textContent, org: context.org.name })} · Tandem`;
    body.replaceChildren();
    chosen.render(body, context);
    if (focus) heading.focus();
  };
  const onHash = () => show(true);
  const stop = () => {
    window.removeEventListener("hashchange", onHash);
    if (stopShell === stop) stopShell = null;
  };
  stopShell = stop;
  window.addEventListener("hashchange", onHash);
  show(false);
  api<OrgName>("GET", "/api/me/org")
    .then((org) => {
      context.org = { ...org, name: plainLine(org.name, MAX_NAME) || org.org_id };
      orgName.textContent = context.org.name;
      document.title = `${t("title.page", { page: heading.textContent ?? "", org: context.org.name })} · Tandem`;
    })
    .catch(() => undefined); // the id stays shown
}

/** Stop following the address (signed out). */
export function leaveOffice(): void {
  stopShell?.();
}

// Pages

const ROLES = ["agent", "supervisor", "auditor", "admin"] as const;
const USERNAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

function twoStep(u: User, t: OfficeT): string {
  return u.second_factor ? t("twoStep.on") : u.mfa_exempt ? t("twoStep.exempt") : t("twoStep.pending");
}

function usersPage(root: HTMLElement, { t, agent }: OfficeContext): void {
  const [status, say] = statusLine(t("nav.users"));
  const list = listView<User>({
    headers: [t("col.account"), t("col.name"), t("col.role"), t("col.teams"), t("col.twoStep"), t("col.state"), t("col.actions")],
    caption: t("nav.users"),
    search: t("search.users"),
    t,
    text: (u) => `${u.username} ${u.display_name} ${u.role} ${u.teams.join(" ")}`,
    cells: (u) => {
      const role = el("select");
      role.setAttribute("aria-label", t("users.roleOf", { user: u.username }));
      for (const r of ROLES) role.append(new Option(t(`role.${r}`), r, false, r === u.role));
      role.addEventListener("change", () => {
        api("PATCH", `/api/users/${encodeURIComponent(u.username)}`, { role: role.value } satisfies UserChange)
          .then(() => {
            say(t("users.roleChanged", { user: u.username, role: role.selectedOptions[0].text.toLowerCase() }), true);
            return load();
          })
          .catch((error: Error) => {
            role.value = u.role;
            say(error.message);
          });
      });
      const state = el("span", "", "pills");
      state.append(el("span", u.disabled ? t("state.disabled") : t("state.active"), u.disabled ? "pill bad" : "pill good"));
      // Its password is the one an admin typed until its owner signs in and chooses another. A
      // bound account signs in through the provider: a temporary password signs it in never.
      // Past temporary_password_seconds it signs in no more: the admin gives a new one (reset).
      if (u.password_change_required && !u.sso_bound) {
        const expired = u.temporary_password_expired;
        state.append(" ", el("span", t(expired ? "state.temporaryPasswordExpired" : "state.temporaryPassword"), expired ? "pill bad" : "pill warn"));
      }
      const tools = el("div", "", "row-actions");
      const toggle = button(u.disabled ? t("action.enable") : t("action.disable"));
      toggle.setAttribute("aria-label", `${toggle.textContent} ${u.username}`);
      toggle.addEventListener("click", () => {
        api("POST", `/api/users/${encodeURIComponent(u.username)}/${u.disabled ? "enable" : "disable"}`)
          .then(() => {
            say(t(u.disabled ? "users.enabled" : "users.disabled", { user: u.username }), true);
            return load();
          })
          .catch((error: Error) => say(error.message));
      });
      const mfa = button(t("action.resetMfa"));
      mfa.setAttribute("aria-label", `${t("action.resetMfa")}: ${u.username}`);
      mfa.addEventListener("click", () => {
        resetSecondFactor(u.username)
          .then((left) => {
            say(t(left === "none" ? "users.mfaResetNone" : "users.mfaReset", { user: u.username }), true);
            return load();
          })
          .catch((error: Error) => say(error.message));
      });
      const reset = button(t("action.resetPassword"));
      reset.setAttribute("aria-label", `${t("action.resetPassword")}: ${u.username}`);
      reset.addEventListener("click", () => openReset(u.username));
      const remove = button(t("action.delete"), "button", "danger-outline");
      remove.setAttribute("aria-label", `${t("action.delete")} ${u.username}`);
      remove.addEventListener("click", () => {
        if (!confirm(t("users.confirmDelete", { user: u.username }))) return;
        api("DELETE", `/api/users/${encodeURIComponent(u.username)}`)
          .then(() => {
            say(t("users.deleted", { user: u.username }), true);
            return load();
          })
          .catch((error: Error) => say(error.message));
      });
      if (u.username === agent.username) tools.append(el("span", "—", "muted"));
      else tools.append(toggle, mfa, reset, remove);
      return [u.username, u.display_name, role, u.teams.join(", "), twoStep(u, t), state, tools];
    },
  });
  const load = async () => list.refresh(await api<User[]>("GET", "/api/users"));

  // An admin's password reset: a temporary password told to the user out of band.
  const resetForm = el("form", "", "office-form once-form");
  resetForm.hidden = true;
  resetForm.noValidate = true;
  const resetTitle = el("h2");
  const temporary = el("input");
  temporary.type = "password";
  temporary.autocomplete = "new-password";
  let resetting = "";
  const openReset = (username: string) => {
    resetting = username;
    resetTitle.textContent = t("users.resetTitle", { user: username });
    resetForm.hidden = false;
    temporary.value = "";
    invalid(temporary, "");
    temporary.focus();
  };
  resetForm.append(resetTitle, el("p", t("users.resetHelp"), "muted wide"));
  field(resetForm, t("action.resetPassword"), temporary);
  const cancel = button(t("action.cancel"));
  cancel.addEventListener("click", () => {
    resetForm.hidden = true;
    temporary.value = "";
  });
  actions(resetForm, button(t("action.resetPassword"), "submit", "primary"), cancel);
  resetForm.addEventListener("submit", (event) => {
    event.preventDefault();
    if (!invalid(temporary, temporary.value.length < 12 ? t("validate.password") : "")) return temporary.focus();
    const password = temporary.value;
    temporary.value = "";
    api("POST", `/api/users/${encodeURIComponent(resetting)}/reset-password`, { password } satisfies PasswordReset)
      .then(() => {
        resetForm.hidden = true;
        say(t("users.passwordReset", { user: resetting }), true);
      })
      .catch((error: Error) => say(error.message));
  });

  const form = el("form", "", "office-form");
  form.noValidate = true;
  const username = field(form, t("users.new"), el("input"));
  username.autocapitalize = "off";
  username.spellcheck = false;
  const password = field(form, t("users.password"), el("input"));
  password.type = "password";
  password.autocomplete = "new-password";
  const newRole = field(form, t("col.role"), el("select"));
  for (const r of ROLES) if (r !== "auditor") newRole.append(new Option(t(`role.${r}`), r));
  const newTeams = field(form, t("users.teams"), el("input"));
  form.append(el("p", t("users.newHelp"), "muted wide"), button(t("users.add"), "submit", "primary"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = username.value.trim();
    const ok = [
      invalid(username, !name ? t("validate.required") : USERNAME.test(name) ? "" : t("validate.username")),
      invalid(password, password.value.length < 12 ? t("validate.password") : ""),
    ];
    if (ok.includes(false)) return;
    const teamList = newTeams.value.split(",").map((team) => team.trim()).filter(Boolean);
    api("POST", "/api/users", {
      username: name, password: password.value, role: newRole.value, ...(teamList.length ? { teams: teamList } : {}),
    } satisfies NewUser)
      .then(() => {
        say(t("users.added", { user: name }), true);
        form.reset();
        return load();
      })
      .catch((error: Error) => say(error.message));
    password.value = "";
  });

  root.append(status, list.element, resetForm, el("h2", t("users.new")), form);
  load().catch((error: Error) => say(error.message));
}

function policySummary(policy: Record<string, unknown> | null | undefined, t: OfficeT): string {
  if (!policy) return t("policy.none");
  const pages = (policy.pages ?? {}) as { allow?: string[]; deny?: string[] };
  const count = (value: unknown) => (Array.isArray(value) ? value.length : 0);
  return t("policy.summary", {
    pages: count(pages.allow) + count(pages.deny), masks: count(policy.mask), hidden: count(policy.hide),
  });
}

function teamsPage(root: HTMLElement, { t, open }: OfficeContext): void {
  const [status, say] = statusLine(t("nav.teams"));
  const list = el("div");
  const load = async () => {
    const names = await api<string[]>("GET", "/api/teams");
    const details = await Promise.all(names.map((team) => api<Team>("GET", `/api/teams/${encodeURIComponent(team)}`)));
    list.replaceChildren(details.length ? table([t("col.team"), t("col.policy"), t("col.actions")], details.map((team) => {
      const edit = button(t("nav.policies"));
      edit.setAttribute("aria-label", `${t("nav.policies")}: ${team.team}`);
      edit.addEventListener("click", () => {
        sessionStorage.setItem("tandem-policy-target", `team:${team.team}`);
        open("policies");
      });
      const remove = button(t("action.delete"), "button", "danger-outline");
      remove.setAttribute("aria-label", `${t("action.delete")} ${team.team}`);
      remove.addEventListener("click", () => {
        api("DELETE", `/api/teams/${encodeURIComponent(team.team)}`)
          .then(() => {
            say(t("teams.deleted", { team: team.team }), true);
            return load();
          })
          .catch((error: Error) => say(error.message));
      });
      const tools = el("div", "", "row-actions");
      tools.append(edit, remove);
      return [team.team, policySummary(team.policy, t), tools];
    }), t("nav.teams")) : el("p", t("paging.empty"), "muted"));
  };
  const form = el("form", "", "office-form");
  form.noValidate = true;
  const name = field(form, t("teams.new"), el("input"));
  form.append(button(t("teams.add"), "submit"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const team = name.value.trim();
    if (!invalid(name, !team ? t("validate.required") : USERNAME.test(team) ? "" : t("validate.username"))) return;
    api("POST", "/api/teams", { team } satisfies NewTeam)
      .then(() => {
        say(t("teams.added", { team }), true);
        form.reset();
        return load();
      })
      .catch((error: Error) => say(error.message));
  });
  root.append(status, list, form);
  load().catch((error: Error) => say(error.message));
}

function sitesPage(root: HTMLElement, { t }: OfficeContext): void {
  const [status, say] = statusLine(t("sites.status"));
  const keyPanel = el("section", "", "once");
  keyPanel.setAttribute("aria-label", t("sites.keyRegion"));
  keyPanel.hidden = true;
  const hideKey = () => {
    keyPanel.replaceChildren(); // the key leaves the page with its text node
    keyPanel.hidden = true;
  };
  const showKey = (siteId: string, issued: TokenKey) => {
    const dismiss = button(t("sites.hideKey"));
    dismiss.addEventListener("click", () => {
      hideKey();
      say(t("sites.keyHidden", { site: siteId }), true);
    });
    const copy = copyButton(t("copy"), () => issued.key, say, t);
    copy.setAttribute("aria-label", `${t("copy")}: customer-token key of ${siteId}`);
    const tools = el("div", "", "row-actions");
    tools.append(copy, dismiss);
    keyPanel.replaceChildren(
      el("p", t("sites.keyIntro", { site: siteId, algorithm: issued.algorithm, audience: issued.audience })),
      el("code", issued.key),
      el("p", t("sites.keyWarning", { site: siteId }), "warning"),
      tools,
    );
    keyPanel.hidden = false;
    copy.focus();
  };
  const tokenSwitch = (site: Site) => {
    const required = el("input");
    required.type = "checkbox";
    required.checked = site.require_token;
    required.setAttribute("aria-label", t("sites.needToken", { site: site.site_id }));
    required.addEventListener("change", () => {
      api("PATCH", `/api/sites/${encodeURIComponent(site.site_id)}`, { require_token: required.checked } satisfies SiteChange)
        .then(() => {
          say(required.checked
            ? t("sites.tokensOn", { site: site.site_id }) : t("sites.tokensOff", { site: site.site_id }), true);
          return load();
        })
        .catch((error: Error) => {
          required.checked = site.require_token;
          say(error.message);
        });
    });
    return required;
  };
  const keyCell = (site: Site) => {
    const cell = el("span", `${site.has_token_key ? t("sites.keyIssued") : t("sites.keyNone")} `);
    const issue = button(t("sites.issue"));
    issue.setAttribute("aria-label", t("sites.issueFor", { site: site.site_id }));
    issue.addEventListener("click", () => {
      api<TokenKey>("POST", `/api/sites/${encodeURIComponent(site.site_id)}/token-key`)
        .then((issued) => {
          showKey(site.site_id, issued);
          say(t("sites.issued", { site: site.site_id }), true);
          return load();
        })
        .catch((error: Error) => say(error.message));
    });
    cell.append(issue);
    return cell;
  };
  const list = listView<Site>({
    headers: [t("col.site"), t("col.origin"), t("col.servedBy"), t("col.policy"), t("col.verified"), t("col.tokens"), t("col.tokenKey")],
    caption: t("nav.sites"),
    search: t("search.sites"),
    t,
    text: (s) => `${s.site_id} ${s.name} ${s.origin} ${s.teams.join(" ")}`,
    cells: (site) => [
      site.site_id, site.origin === "self" ? t("site.self") : site.origin, site.teams.join(", ") || t("site.noTeam"),
      site.policy ? t("sites.ownPolicy", { summary: policySummary(site.policy, t) }) : t("sites.serverPolicy"), site.verified ? t("site.verified") : t("site.unverified"),
      tokenSwitch(site), keyCell(site),
    ],
  });
  const load = async () => list.refresh(await api<Site[]>("GET", "/api/sites"));

  const form = el("form", "", "office-form");
  form.noValidate = true;
  const [siteId, origin, teams] = [t("sites.id"), t("col.origin"), t("sites.teams")].map((label) => field(form, label, el("input")));
  origin.placeholder = "https://shop.example";
  form.append(button(t("sites.add"), "submit"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const id = siteId.value.trim();
    const ok = [
      invalid(siteId, !id ? t("validate.required") : USERNAME.test(id) ? "" : t("validate.username")),
      invalid(origin, origin.value.trim() ? "" : t("validate.required")),
      invalid(teams, teams.value.trim() ? "" : t("validate.required")),
    ];
    if (ok.includes(false)) return;
    api("POST", "/api/sites", {
      site_id: id, origin: origin.value.trim(), teams: teams.value.split(",").map((team) => team.trim()).filter(Boolean),
    } satisfies NewSite)
      .then(() => {
        say(t("sites.added", { site: id }), true);
        form.reset();
        return load();
      })
      .catch((error: Error) => say(error.message));
  });
  root.append(status, list.element, keyPanel, el("h2", t("sites.new")), form);
  load().catch((error: Error) => say(error.message));
}

type Policy = Record<string, unknown> & {
  pages?: { allow?: string[]; deny?: string[] }; mask?: string[]; hide?: string[]; unmask?: string[];
  detectors?: Record<string, boolean>; media?: { images?: boolean; video?: boolean };
};

const DETECTORS = ["iban", "ssn", "email", "phone"] as const;

function policiesPage(root: HTMLElement, { t }: OfficeContext): void {
  const [status, say] = statusLine(t("policy.status"));
  const form = el("form", "", "office-form policy-form");
  form.noValidate = true;
  const target = field(form, t("policy.for"), el("select"));
  const lines = (label: string) => {
    const area = field(form, label, el("textarea"));
    area.rows = 3;
    area.spellcheck = false;
    return area;
  };
  const deny = lines(t("policy.deny"));
  deny.placeholder = "/account/*";
  const allow = lines(t("policy.allow"));
  const mask = lines(t("policy.mask"));
  mask.placeholder = ".balance";
  const hide = lines(t("policy.hide"));
  const unmask = lines(t("policy.unmask"));
  const detectorSet = el("fieldset", "", "wide");
  detectorSet.append(el("legend", t("policy.detectors")));
  const detectors = new Map<string, HTMLInputElement>();
  for (const name of DETECTORS) {
    const box = el("input");
    box.type = "checkbox";
    box.id = `detector-${name}`;
    const label = el("label", t(`policy.detector.${name}`), "check");
    label.prepend(box);
    detectors.set(name, box);
    detectorSet.append(label);
  }
  form.append(detectorSet);
  const imagesLabel = el("label", t("policy.images"), "check wide");
  const images = el("input");
  images.type = "checkbox";
  imagesLabel.prepend(images);
  form.append(imagesLabel);
  const advanced = el("details", "", "wide");
  advanced.append(el("summary", t("policy.advanced")));
  const json = el("textarea");
  json.id = "policy-json";
  json.rows = 8;
  json.spellcheck = false;
  const jsonLabel = el("label", t("policy.json"));
  jsonLabel.htmlFor = json.id;
  advanced.append(jsonLabel, json);
  form.append(advanced);
  const save = button(t("policy.save"), "submit", "primary");
  const clear = button(t("policy.clear"));
  actions(form, save, clear);

  let loaded: Policy | null = null;
  const policies = new Map<string, Policy | null>();
  const split = (area: HTMLTextAreaElement) => area.value.split("\n").map((line) => line.trim()).filter(Boolean);
  const fill = (policy: Policy | null) => {
    loaded = policy;
    deny.value = (policy?.pages?.deny ?? []).join("\n");
    allow.value = (policy?.pages?.allow ?? []).join("\n");
    mask.value = (policy?.mask ?? []).join("\n");
    hide.value = (policy?.hide ?? []).join("\n");
    unmask.value = (policy?.unmask ?? []).join("\n");
    for (const [name, box] of detectors) box.checked = Boolean(policy?.detectors?.[name]);
    images.checked = policy?.media?.images !== false;
    json.value = policy ? JSON.stringify(policy, null, 2) : "";
    for (const area of [deny, allow, mask, hide, unmask, json]) invalid(area, "");
  };
  /** The policy the fields describe (fields the form does not show are kept from the loaded one). */
  const fromFields = (): Policy | null => {
    let ok = true;
    const patterns = (area: HTMLTextAreaElement) => {
      const values = split(area);
      // As customers' browsers read a policy the server hands out (../shared/pages.ts).
      const problems = values.map((value) => serverPagePatternProblem(value));
      const bad = problems.findIndex((problem) => problem !== null);
      ok = invalid(area, bad >= 0 ? t("validate.pattern", { line: bad + 1, problem: problems[bad] ?? "" }) : "") && ok;
      return values;
    };
    // A policy the server hands out may not hide or mask by the page's state (customers'
    // browsers refuse it: ../shared/policy.ts, serverSelectorProblem); its unmask is not used.
    const selectors = (area: HTMLTextAreaElement, handedOut: boolean) => {
      const values = split(area);
      const bad = values.findIndex((value) => {
        try {
          document.createDocumentFragment().querySelector(value);
          return false;
        } catch {
          return true;
        }
      });
      const state = handedOut ? values.findIndex((value) => serverSelectorProblem(value) !== null) : -1;
      const problem = bad >= 0 ? t("validate.selector", { line: bad + 1 })
        : state >= 0 ? t("validate.state", { line: state + 1 }) : "";
      ok = invalid(area, problem) && ok;
      return values;
    };
    const policy: Policy = { ...(loaded ?? {}), version: 1 };
    const pages = { ...(loaded?.pages ?? {}), deny: patterns(deny), allow: patterns(allow) };
    policy.pages = pages;
    policy.mask = selectors(mask, true);
    policy.hide = selectors(hide, true);
    policy.unmask = selectors(unmask, false);
    policy.detectors = Object.fromEntries([...detectors].filter(([, box]) => box.checked).map(([name]) => [name, true]));
    policy.media = { ...(loaded?.media ?? {}), images: images.checked };
    return ok ? policy : null;
  };
  const targetName = () => {
    const [kind, name] = target.value.split(/:(.*)/s);
    return t("policy.of", { kind: t(kind === "team" ? "policy.kind.team" : "policy.kind.site"), name });
  };
  const send = (policy: Policy | null) => {
    const [kind, name] = target.value.split(/:(.*)/s);
    const request = kind === "team"
      ? api<Team>("PATCH", `/api/teams/${encodeURIComponent(name)}`, { policy }).then((team) => team.policy as Policy | null)
      : api<Site>("PATCH", `/api/sites/${encodeURIComponent(name)}`, policy ? { policy } : { clear_policy: true })
        .then((site) => site.policy as Policy | null);
    request
      .then((stored) => {
        policies.set(target.value, stored);
        fill(stored);
        say(stored ? t("policy.saved", { target: targetName() }) : t("policy.cleared", { target: targetName() }), true);
      })
      .catch((error: Error) => say(error.message));
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (advanced.open) {
      let value: unknown;
      try {
        value = JSON.parse(json.value);
      } catch (error) {
        invalid(json, t("policy.notJson", { reason: (error as Error).message }));
        return say(t("policy.invalid"));
      }
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        invalid(json, t("policy.notObject"));
        return say(t("policy.invalid"));
      }
      invalid(json, "");
      return send(value as Policy);
    }
    const policy = fromFields();
    if (!policy) return say(t("policy.invalid"));
    send(policy);
  });
  clear.addEventListener("click", () => send(null));
  // Changing a field shows the JSON it makes; opening the advanced view starts from the fields.
  form.addEventListener("input", (event) => {
    if (event.target === json || event.target === target) return;
    const policy = fromFields();
    if (policy) json.value = JSON.stringify(policy, null, 2);
  });
  target.addEventListener("change", () => {
    fill(policies.get(target.value) ?? null);
    sessionStorage.setItem("tandem-policy-target", target.value);
  });

  const load = async () => {
    const [teams, sites] = await Promise.all([api<string[]>("GET", "/api/teams"), api<Site[]>("GET", "/api/sites")]);
    const details = await Promise.all(teams.map((team) => api<Team>("GET", `/api/teams/${encodeURIComponent(team)}`)));
    const teamGroup = el("optgroup");
    teamGroup.label = t("nav.teams");
    for (const team of details) {
      policies.set(`team:${team.team}`, team.policy as Policy | null);
      teamGroup.append(new Option(`${t("policy.kind.team")} ${team.team}`, `team:${team.team}`));
    }
    const siteGroup = el("optgroup");
    siteGroup.label = t("nav.sites");
    for (const site of sites) {
      policies.set(`site:${site.site_id}`, site.policy as Policy | null);
      siteGroup.append(new Option(`${t("policy.kind.site")} ${site.site_id}`, `site:${site.site_id}`));
    }
    target.replaceChildren(teamGroup, siteGroup);
    const wanted = sessionStorage.getItem("tandem-policy-target");
    if (wanted && policies.has(wanted)) target.value = wanted;
    fill(policies.get(target.value) ?? null);
  };
  root.append(
    el("p", t("policy.intro"), "muted"),
    form, status,
  );
  load().catch((error: Error) => say(error.message));
}

function auditPage(root: HTMLElement, { t }: OfficeContext): void {
  const PAGE = 50;
  const [status, say] = statusLine(t("nav.audit"));
  const form = el("form", "", "search-form");
  form.setAttribute("role", "search");
  const query = el("input");
  query.type = "search";
  query.id = "audit-search";
  query.setAttribute("aria-label", t("search.audit"));
  query.placeholder = t("search.audit");
  form.append(query, button(t("search.label"), "submit"));
  const list = el("div");
  const pager = el("div", "", "pager");
  const newer = button(t("paging.newer"));
  const older = button(t("paging.older"));
  const where = el("span", "", "muted");
  pager.append(newer, where, older);
  /** The `before` of each page shown so far: the first is the newest. */
  const cursors: number[] = [];
  let before = Number.MAX_SAFE_INTEGER;
  const load = async () => {
    const params = new URLSearchParams({ limit: String(PAGE) });
    if (before !== Number.MAX_SAFE_INTEGER) params.set("before", String(before));
    if (query.value.trim()) params.set("q", query.value.trim());
    const records = await api<AuditRecord[]>("GET", `/api/audit/search?${params}`);
    list.replaceChildren(records.length ? table([t("col.time"), t("col.event"), t("col.by"), t("col.about"), t("col.details")], records.map((r) => {
      const event = el("span", humanLabel(r.action));
      event.append(el("br"), el("code", r.action, "muted"));
      const time = el("time", when(r.at));
      time.dateTime = new Date(r.at * 1000).toISOString();
      // Whole (it is the evidence), each one plain line.
      return [time, event, plainLine(r.actor, Infinity), plainLine(r.subject, Infinity), auditDetails(r.details)];
    }), t("nav.audit")) : el("p", t("paging.empty"), "muted"));
    newer.disabled = cursors.length === 0;
    older.disabled = records.length < PAGE;
    where.textContent = records.length
      ? t("paging.audit", { first: records[records.length - 1].seq, last: records[0].seq }) : "";
    return records;
  };
  let page: AuditRecord[] = [];
  const run = () => load().then((records) => {
    page = records;
  }).catch((error: Error) => say(error.message));
  older.addEventListener("click", () => {
    if (!page.length) return;
    cursors.push(before);
    before = page[page.length - 1].seq;
    void run();
  });
  newer.addEventListener("click", () => {
    before = cursors.pop() ?? Number.MAX_SAFE_INTEGER;
    void run();
  });
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    cursors.length = 0;
    before = Number.MAX_SAFE_INTEGER;
    void run();
  });
  root.append(el("p", t("audit.intro"), "muted"), form, list, pager, status);
  void run();
}

function ssoPage(root: HTMLElement, { t }: OfficeContext): void {
  const now = el("p");
  const form = el("form", "", "office-form");
  form.noValidate = true;
  const issuer = field(form, t("sso.issuer"), el("input"));
  issuer.type = "url";
  issuer.placeholder = "https://login.example.com";
  const clientId = field(form, t("sso.clientId"), el("input"));
  const clientSecret = field(form, t("sso.clientSecret"), el("input"));
  clientSecret.type = "password";
  clientSecret.autocomplete = "off";
  // The provider's second factor, checked in each ID token (its amr or acr): empty fields send
  // none, which lets a password phished at the provider sign in (the compliance check fails).
  const mfaAmr = field(form, t("sso.mfaAmr"), el("input"));
  const mfaAcr = field(form, t("sso.mfaAcr"), el("input"));
  for (const input of [issuer, clientId, mfaAmr, mfaAcr]) {
    input.autocomplete = "off";
    input.spellcheck = false;
  }
  /** Whether the fields show the server's requirement (or what the admin typed): until then a
   * save sends none, so the server keeps what it has instead of taking two empty fields. */
  let requirementShown = false;
  const values = (input: HTMLInputElement) => input.value.split(/[\s,]+/).filter(Boolean);
  const [status, say] = statusLine(t("sso.status"));
  form.append(button(t("sso.save"), "submit", "primary"));
  const off = button(t("sso.off"));
  const show = (sso: SsoProvider | null) => {
    // Whether the provider's second factor is checked (its ID token's acr/amr), or assumed.
    const required = [
      ...(sso?.mfa_acr.length ? [`acr ${sso.mfa_acr.join(", ")}`] : []),
      ...(sso?.mfa_amr.length ? [`amr ${sso.mfa_amr.join(", ")}`] : []),
    ];
    const assurance = required.length
      ? t("sso.mfaRequired", { values: required.join("; ") })
      : t("sso.mfaNotRequired");
    now.textContent = sso
      ? `${t("sso.isOn", { issuer: sso.issuer, client: sso.client_id })} ${assurance}`
      : t("sso.isOff");
    off.hidden = !sso;
    if (sso) {
      prefill(issuer, sso.issuer);
      prefill(clientId, sso.client_id);
      prefill(mfaAmr, sso.mfa_amr.join(", "));
      prefill(mfaAcr, sso.mfa_acr.join(", "));
    }
    requirementShown = true;
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const secret = clientSecret.value;
    clientSecret.value = "";
    if (!secret) return say(t("sso.needSecret"));
    const settings: SsoSettings = { issuer: issuer.value.trim(), client_id: clientId.value.trim(), client_secret: secret };
    if (requirementShown || mfaAmr.dataset.edited || mfaAcr.dataset.edited) {
      settings.mfa_amr = values(mfaAmr);
      settings.mfa_acr = values(mfaAcr);
    }
    api<SsoAnswer>("PUT", "/api/org/sso", settings)
      .then(({ sso }) => {
        show(sso);
        say(t("sso.turnedOn"), true);
      })
      .catch((error: Error) => say(error.message));
  });
  off.addEventListener("click", () => {
    api("DELETE", "/api/org/sso")
      .then(() => {
        show(null);
        form.reset();
        say(t("sso.turnedOff"), true);
      })
      .catch((error: Error) => say(error.message));
  });
  const uri = `${relay().base || location.origin}/api/sso/callback`;
  const intro = el("p", t("sso.intro", { uri }), "muted");
  root.append(now, intro, copyButton(t("copy"), () => uri, say, t), form, off, status);
  api<SsoAnswer>("GET", "/api/org/sso").then(({ sso }) => show(sso)).catch((error: Error) => say(error.message));
}

function organisationPage(root: HTMLElement, context: OfficeContext): void {
  const { t } = context;
  const [status, say] = statusLine(t("org.status"));
  const nameForm = el("form", "", "office-form");
  nameForm.noValidate = true;
  const name = field(nameForm, t("org.name"), el("input"));
  nameForm.append(button(t("org.rename"), "submit"));
  const id = el("p", t("org.id", { id: context.org.org_id }), "muted");
  nameForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const value = name.value.trim();
    if (!invalid(name, value ? "" : t("validate.required"))) return;
    api<Org>("PATCH", "/api/org", { name: value } satisfies OrgChange)
      .then((org) => {
        context.org = { org_id: org.org_id, name: plainLine(org.name, MAX_NAME) || org.org_id };
        const shown = document.getElementById("office-org");
        if (shown) shown.textContent = context.org.name;
        say(t("org.renamed", { name: context.org.name }), true);
      })
      .catch((error: Error) => say(error.message));
  });

  // Retention: how long ended sessions' records and recordings are kept.
  const retentionNow = el("p");
  const retentionForm = el("form", "", "office-form");
  retentionForm.noValidate = true; // the server decides what is allowed, and says so
  const retention = field(retentionForm, t("retention.days"), el("input"));
  retention.type = "number";
  retention.min = "1";
  retention.step = "1";
  const [retentionStatus, sayRetention] = statusLine(t("retention.status"));
  retentionForm.append(button(t("retention.save"), "submit"));
  const showRetention = (org: Org, first = false) => {
    retentionNow.textContent = t("retention.now", { days: org.retention_days });
    if (first) prefill(retention, String(org.retention_days));
    else retention.value = String(org.retention_days);
  };
  retentionForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const days = retention.value.trim();
    if (!days) return sayRetention(t("retention.needDays"));
    api<Org>("PATCH", "/api/org", { retention_days: Number(days) } satisfies OrgChange)
      .then((org) => {
        showRetention(org);
        sayRetention(t("retention.saved", { days: org.retention_days }), true);
      })
      .catch((error: Error) => sayRetention(error.message));
  });
  root.append(
    id, nameForm, status,
    el("h2", t("retention.title")), retentionNow, retentionForm, retentionStatus,
    compliancePanel(), subjectsPanel(),
  );
  api<Org>("GET", "/api/org")
    .then((org) => {
      prefill(name, org.name);
      showRetention(org, true);
    })
    .catch((error: Error) => say(error.message));
}

function recordingsPage(root: HTMLElement, context: OfficeContext): void {
  root.append(el("p", context.t("recordings.intro"), "muted"));
  if (context.agent.role === "auditor") recordingsPanel(root, context.t);
  else recordingKeyPanel(root, context.t);
}

registerOfficePage({ id: "users", label: "nav.users", roles: ["admin"], order: 10, render: usersPage });
registerOfficePage({ id: "teams", label: "nav.teams", roles: ["admin"], order: 20, render: teamsPage });
registerOfficePage({ id: "sites", label: "nav.sites", roles: ["admin"], order: 30, render: sitesPage });
registerOfficePage({ id: "policies", label: "nav.policies", roles: ["admin"], order: 40, render: policiesPage });
registerOfficePage({ id: "audit", label: "nav.audit", roles: ["auditor"], order: 45, render: auditPage });
registerOfficePage({ id: "recordings", label: "nav.recordings", roles: ["admin", "auditor"], order: 50, render: recordingsPage });
registerOfficePage({ id: "sso", label: "nav.sso", roles: ["admin"], order: 60, render: ssoPage });
registerOfficePage({ id: "organisation", label: "nav.organisation", roles: ["admin"], order: 70, render: organisationPage });
