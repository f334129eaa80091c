/**
 * The console's pages for roles without live sessions: the auditor's audit trail and the admin's
 * accounts and teams. Everything goes through the same HTTP API (and the server's authorisation);
 * this is only a view. Text is always set with textContent.
 */

type Row = (string | Node)[];

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, text = "", className = ""): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (text) node.textContent = text;
  if (className) node.className = className;
  return node;
}

export function table(headers: string[], rows: Row[]): HTMLTableElement {
  const t = el("table", "", "grid");
  const head = t.createTHead().insertRow();
  for (const h of headers) head.append(el("th", h));
  const body = t.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    for (const cell of row) {
      const td = tr.insertCell();
      if (typeof cell === "string") td.textContent = cell;
      else td.append(cell);
    }
  }
  return t;
}

/** The `detail` of a problem+json answer, or a generic line. */
export async function problemDetail(response: Response): Promise<string> {
  try {
    const body = (await response.json()) as { detail?: string };
    return body.detail ?? `Request failed (${response.status}).`;
  } catch {
    return `Request failed (${response.status}).`;
  }
}

/** A labelled field appended to `form`; the label's id comes from its text. */
export function field<T extends HTMLInputElement | HTMLSelectElement>(form: HTMLFormElement, label: string, input: T): T {
  input.id = `new-${label.toLowerCase().replace(/\W+/g, "-")}`;
  const l = el("label", label);
  l.htmlFor = input.id;
  form.append(l, input);
  return input;
}

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const response = await fetch(path, {
    method,
    credentials: "same-origin",
    headers: body === undefined ? {} : { "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) throw new Error(await problemDetail(response));
  return (response.status === 204 ? null : await response.json()) as T;
}

interface AuditRecord {
  seq: number;
  at: number;
  action: string;
  actor: string;
  subject: string;
}

/** The auditor's page: the organisation's audit trail, oldest first, a page at a time. */
export function auditTrail(root: HTMLElement): void {
  const list = el("div");
  const more = el("button", "Load more");
  const status = el("p", "", "status");
  status.setAttribute("role", "status");
  let after = 0;
  const load = async () => {
    try {
      const records = await api<AuditRecord[]>("GET", `/api/audit?after=${after}&limit=200`);
      if (records.length) after = records[records.length - 1].seq;
      list.append(table(["#", "time", "event", "by", "about"], records.map((r) => [
        String(r.seq), new Date(r.at * 1000).toISOString().replace("T", " ").slice(0, 19), r.action, r.actor, r.subject,
      ])));
      status.textContent = records.length < 200 ? "End of the trail." : "";
      more.hidden = records.length < 200;
    } catch (error) {
      status.textContent = (error as Error).message;
    }
  };
  more.addEventListener("click", () => void load());
  root.replaceChildren(el("h1", "Audit trail"), el("p", "Every security-relevant event of your organisation. Reading it is recorded too.", "muted"), list, more, status);
  void load();
}

interface Site {
  site_id: string;
  origin: string;
  name: string;
  teams: string[];
  policy: unknown;
  require_token: boolean;
}

interface User {
  username: string;
  display_name: string;
  role: string;
  teams: string[];
  second_factor: boolean;
  mfa_exempt: boolean;
}

/** The admin's page: accounts (add, change role and teams) and teams (add). */
export function administration(root: HTMLElement): void {
  const status = el("p", "", "status");
  status.setAttribute("role", "status");
  const accounts = el("div");
  const teams = el("div");
  const say = (text: string, good = false) => {
    status.textContent = text;
    status.className = `status ${good ? "good" : "bad"}`;
  };

  const render = async () => {
    const [users, teamNames, sites] = await Promise.all([
      api<User[]>("GET", "/api/users"), api<string[]>("GET", "/api/teams"), api<Site[]>("GET", "/api/sites"),
    ]);
    siteList.replaceChildren(table(["site", "origin", "served by", "policy", "customer token"], sites.map((site) => [
      site.site_id, site.origin === "self" ? "this server (demo shop)" : site.origin, site.teams.join(", ") || "no team",
      site.policy ? "own policy" : "server's", site.require_token ? "required" : "optional",
    ])));
    accounts.replaceChildren(table(["account", "name", "role", "teams", "two-step", ""], users.map((u) => {
      const role = el("select");
      role.setAttribute("aria-label", `Role of ${u.username}`);
      for (const r of ["agent", "supervisor", "auditor", "admin"]) role.append(new Option(r, r, false, r === u.role));
      role.addEventListener("change", () => {
        api("PATCH", `/api/users/${encodeURIComponent(u.username)}`, { role: role.value })
          .then(() => say(`${u.username} is now ${role.value}.`, true))
          .catch((error: Error) => {
            role.value = u.role;
            say(error.message);
          });
      });
      const twoStep = u.second_factor ? "on" : u.mfa_exempt ? "exempt (demo)" : "set up at next sign-in";
      return [u.username, u.display_name, role, u.teams.join(", "), twoStep, ""];
    })));
    teams.replaceChildren(el("p", `Teams: ${teamNames.join(", ") || "none"}`));
  };

  const form = el("form", "", "office-form");
  const username = field(form, "New account", el("input"));
  const password = field(form, "Initial password", el("input"));
  password.type = "password";
  password.autocomplete = "new-password";
  const newRole = field(form, "Role", el("select"));
  for (const r of ["agent", "supervisor", "auditor", "admin"]) newRole.append(new Option(r, r));
  const newTeams = field(form, "Teams (comma separated)", el("input"));
  const add = el("button", "Add account", "primary");
  add.type = "submit";
  form.append(add);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const teamList = newTeams.value.split(",").map((t) => t.trim()).filter(Boolean);
    api("POST", "/api/users", {
      username: username.value.trim(), password: password.value, role: newRole.value,
      ...(teamList.length ? { teams: teamList } : {}),
    })
      .then(() => {
        say(`Added ${username.value.trim()}. They set up two-step sign-in when they first sign in.`, true);
        form.reset();
        return render();
      })
      .catch((error: Error) => say(error.message));
    password.value = "";
  });

  const siteList = el("div");
  const siteForm = el("form", "", "office-form");
  const siteInputs = ["New site id", "Origin", "Served by teams"].map((label) => field(siteForm, label, el("input")));
  siteInputs[1].placeholder = "https://shop.example";
  const addSite = el("button", "Add site");
  addSite.type = "submit";
  siteForm.append(addSite);
  siteForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const [siteId, origin, siteTeams] = siteInputs.map((input) => input.value.trim());
    api("POST", "/api/sites", {
      site_id: siteId, origin, teams: siteTeams.split(",").map((t) => t.trim()).filter(Boolean),
    })
      .then(() => {
        say(`Added site ${siteId}. Its pages may now start sessions.`, true);
        siteForm.reset();
        return render();
      })
      .catch((error: Error) => say(error.message));
  });

  const teamForm = el("form", "", "office-form");
  const teamInput = field(teamForm, "New team", el("input"));
  const addTeam = el("button", "Add team");
  addTeam.type = "submit";
  teamForm.append(addTeam);
  teamForm.addEventListener("submit", (event) => {
    event.preventDefault();
    api("POST", "/api/teams", { team: teamInput.value.trim() })
      .then(() => {
        say(`Added team ${teamInput.value.trim()}.`, true);
        teamForm.reset();
        return render();
      })
      .catch((error: Error) => say(error.message));
  });

  root.replaceChildren(
    el("h1", "Administration"), status, el("h2", "Accounts"), accounts, form, el("h2", "Teams"), teams, teamForm,
    el("h2", "Sites"), siteList, siteForm,
    el("p", "Policies, customer-token keys, retention and single sign-on: see docs/administration.md (HTTP API).", "muted"),
  );
  render().catch((error: Error) => say(error.message));
}
