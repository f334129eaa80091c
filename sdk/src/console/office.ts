/**
 * The console's pages for roles without live sessions: the auditor's audit trail and the admin's
 * accounts, teams, sites, policies, retention and single sign-on. Everything goes through the same HTTP API (and the server's authorisation);
 * this is only a view. Text is always set with textContent.
 */

import { checkedAnswer, problemText } from "./answers.ts";
import { compliancePanel, subjectsPanel } from "./compliance.ts";
import { relay, relayFetch } from "./relay.ts";
import type {
  AuditRecord, NewSite, NewTeam, NewUser, Org, OrgChange, Site, SiteChange, SsoAnswer, SsoProvider, SsoSettings, Team, TokenKey, User, UserChange,
} from "../generated/rest.ts";

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

/** The `detail` of a problem+json answer, or a generic line (answers.ts checks it). */
export const problemDetail = problemText;

/** A labelled field appended to `form`; the label's id comes from its text. */
export function field<T extends HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement>(form: HTMLFormElement, label: string, input: T): T {
  input.id = `new-${label.toLowerCase().replace(/\W+/g, "-")}`;
  const l = el("label", label);
  l.htmlFor = input.id;
  form.append(l, input);
  return input;
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

/** Replace a select's options with `values`, keeping the chosen one while it is still there. */
function setOptions(select: HTMLSelectElement, values: string[]): void {
  const chosen = select.value;
  select.replaceChildren(...values.map((v) => new Option(v, v, false, v === chosen)));
}

const POLICY_EXAMPLE = '{"version": 1, "pages": {"deny": ["/account/*"]}, "mask": [".balance"]}';

/** The policy typed into a textarea as a JSON object, or what is wrong with it. */
function parsePolicy(text: string): { policy: Record<string, unknown> } | { error: string } {
  if (!text.trim()) return { error: "Write the policy as JSON first, or clear it. Nothing was changed." };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { error: `The policy is not valid JSON (${(error as Error).message}). Nothing was changed.` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { error: `The policy must be a JSON object, like ${POLICY_EXAMPLE}. Nothing was changed.` };
  }
  return { policy: value as Record<string, unknown> };
}

const pretty = (policy: unknown) => JSON.stringify(policy, null, 2);

/** A form's row of buttons (in the form's second column). */
function actions(form: HTMLFormElement, ...buttons: HTMLButtonElement[]): void {
  const row = el("div", "", "actions");
  row.append(...buttons);
  form.append(row);
}

/**
 * The admin's page: accounts (add, change role and teams), teams (add, their policies), sites
 * (add, policy, customer tokens), retention and single sign-on.
 */
export function administration(root: HTMLElement): void {
  const [status, say] = statusLine();
  const accounts = el("div");
  const teams = el("div");
  let siteRecords: Site[] = [];
  const teamPolicies = new Map<string, unknown>();

  const render = async () => {
    const [users, teamNames, sites] = await Promise.all([
      api<User[]>("GET", "/api/users"), api<string[]>("GET", "/api/teams"), api<Site[]>("GET", "/api/sites"),
    ]);
    siteRecords = sites;
    const teamDetails = await Promise.all(
      teamNames.map((team) => api<Team>("GET", `/api/teams/${encodeURIComponent(team)}`)),
    );
    teamPolicies.clear();
    for (const detail of teamDetails) teamPolicies.set(detail.team, detail.policy);
    siteList.replaceChildren(table(["site", "origin", "served by", "policy", "customers need a token", "token key"], sites.map((site) => [
      site.site_id, site.origin === "self" ? "this server (demo shop)" : site.origin, site.teams.join(", ") || "no team",
      site.policy ? "own policy" : "server's", tokenSwitch(site), keyCell(site),
    ])));
    setOptions(policySite, sites.map((site) => site.site_id));
    accounts.replaceChildren(table(["account", "name", "role", "teams", "two-step", ""], users.map((u) => {
      const role = el("select");
      role.setAttribute("aria-label", `Role of ${u.username}`);
      for (const r of ["agent", "supervisor", "auditor", "admin"]) role.append(new Option(r, r, false, r === u.role));
      role.addEventListener("change", () => {
        api("PATCH", `/api/users/${encodeURIComponent(u.username)}`, { role: role.value } satisfies UserChange)
          .then(() => say(`${u.username} is now ${role.value}.`, true))
          .catch((error: Error) => {
            role.value = u.role;
            say(error.message);
          });
      });
      const twoStep = u.second_factor ? "on" : u.mfa_exempt ? "exempt (demo)" : "set up at next sign-in";
      return [u.username, u.display_name, role, u.teams.join(", "), twoStep, ""];
    })));
    teams.replaceChildren(teamNames.length
      ? table(["team", "policy"], teamNames.map((team) => {
        const policy = teamPolicies.get(team);
        return [team, policy === null || policy === undefined ? "none" : JSON.stringify(policy)];
      }))
      : el("p", "Teams: none"));
    setOptions(policyTeam, teamNames);
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
    } satisfies NewUser)
      .then(() => {
        say(`Added ${username.value.trim()}. They set up two-step sign-in when they first sign in.`, true);
        form.reset();
        return render();
      })
      .catch((error: Error) => say(error.message));
    password.value = "";
  });

  // Sites: customer tokens (docs/administration.md) and their own policy.
  const siteList = el("div");
  const [siteStatus, saySite] = statusLine("Site status");
  const keyPanel = el("section", "", "once");
  keyPanel.setAttribute("aria-label", "New customer-token key");
  keyPanel.hidden = true;
  const hideKey = () => {
    keyPanel.replaceChildren(); // the key leaves the page with its text node
    keyPanel.hidden = true;
  };
  const showKey = (siteId: string, issued: TokenKey) => {
    const dismiss = el("button", "Hide the key");
    dismiss.type = "button";
    dismiss.addEventListener("click", () => {
      hideKey();
      saySite(`The key of ${siteId} is no longer shown, and it cannot be shown again.`, true);
    });
    keyPanel.replaceChildren(
      el("p", `New customer-token key for ${siteId} (${issued.algorithm}, audience "${issued.audience}"):`),
      el("code", issued.key),
      el("p", `It is shown only this once: copy it now into your site's backend, which signs its customers' tokens with it. Any earlier key of ${siteId} stopped working just now: tokens signed with it are refused.`, "warning"),
      dismiss,
    );
    keyPanel.hidden = false;
    dismiss.focus();
  };
  const tokenSwitch = (site: Site) => {
    const required = el("input");
    required.type = "checkbox";
    required.checked = site.require_token;
    required.setAttribute("aria-label", `Customers of ${site.site_id} need a token`);
    required.addEventListener("change", () => {
      api("PATCH", `/api/sites/${encodeURIComponent(site.site_id)}`, { require_token: required.checked } satisfies SiteChange)
        .then(() => {
          saySite(required.checked
            ? `Customers of ${site.site_id} now need a token from the site's backend to start a session.`
            : `Customers of ${site.site_id} can start sessions without a token.`, true);
          return render();
        })
        .catch((error: Error) => {
          required.checked = site.require_token;
          saySite(error.message);
        });
    });
    return required;
  };
  const keyCell = (site: Site) => {
    const cell = el("span", site.has_token_key ? "issued " : "none ");
    const issue = el("button", "Issue key");
    issue.type = "button";
    issue.setAttribute("aria-label", `Issue customer-token key for ${site.site_id}`);
    issue.addEventListener("click", () => {
      api<TokenKey>("POST", `/api/sites/${encodeURIComponent(site.site_id)}/token-key`)
        .then((issued) => {
          showKey(site.site_id, issued);
          saySite(`Issued a new customer-token key for ${site.site_id}.`, true);
          return render();
        })
        .catch((error: Error) => saySite(error.message));
    });
    cell.append(issue);
    return cell;
  };

  const sitePolicyForm = el("form", "", "office-form");
  const policySite = field(sitePolicyForm, "Policy for site", el("select"));
  const sitePolicy = field(sitePolicyForm, "Site policy (JSON)", el("textarea"));
  const [sitePolicyStatus, saySitePolicy] = statusLine("Site policy status");
  const setSitePolicy = el("button", "Set site policy");
  setSitePolicy.type = "submit";
  const clearSitePolicy = el("button", "Clear site policy");
  clearSitePolicy.type = "button";
  actions(sitePolicyForm, setSitePolicy, clearSitePolicy);
  const showSitePolicy = () => {
    const site = siteRecords.find((s) => s.site_id === policySite.value);
    sitePolicy.value = site?.policy ? pretty(site.policy) : "";
  };
  policySite.addEventListener("change", showSitePolicy);
  // `body` may carry a policy as the admin typed it (JSON, unchecked here): the server validates it.
  const changeSitePolicy = (body: object, done: string) => {
    const siteId = policySite.value;
    api("PATCH", `/api/sites/${encodeURIComponent(siteId)}`, body)
      .then(() => {
        saySitePolicy(done.replace("{site}", siteId), true);
        return render();
      })
      .then(showSitePolicy)
      .catch((error: Error) => saySitePolicy(error.message));
  };
  sitePolicyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const parsed = parsePolicy(sitePolicy.value);
    if ("error" in parsed) return saySitePolicy(parsed.error);
    changeSitePolicy({ policy: parsed.policy }, "Site {site} has its own policy now: it replaces the server's policy for this site.");
  });
  clearSitePolicy.addEventListener("click", () => {
    changeSitePolicy({ clear_policy: true }, "Site {site} has no policy of its own now: the server's policy applies.");
  });

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
    } satisfies NewSite)
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
    api("POST", "/api/teams", { team: teamInput.value.trim() } satisfies NewTeam)
      .then(() => {
        say(`Added team ${teamInput.value.trim()}.`, true);
        teamForm.reset();
        return render();
      })
      .catch((error: Error) => say(error.message));
  });

  // A team's own policy: page rules and masks for the sessions its agents join.
  const teamPolicyForm = el("form", "", "office-form");
  const policyTeam = field(teamPolicyForm, "Policy for team", el("select"));
  const teamPolicy = field(teamPolicyForm, "Team policy (JSON)", el("textarea"));
  const [teamPolicyStatus, sayTeamPolicy] = statusLine("Team policy status");
  const setTeamPolicy = el("button", "Set team policy");
  setTeamPolicy.type = "submit";
  const clearTeamPolicy = el("button", "Clear team policy");
  clearTeamPolicy.type = "button";
  actions(teamPolicyForm, setTeamPolicy, clearTeamPolicy);
  const showTeamPolicy = () => {
    const policy = teamPolicies.get(policyTeam.value);
    teamPolicy.value = policy ? pretty(policy) : "";
  };
  policyTeam.addEventListener("change", showTeamPolicy);
  const changeTeamPolicy = (policy: Record<string, unknown> | null) => {
    const team = policyTeam.value;
    api<Team>("PATCH", `/api/teams/${encodeURIComponent(team)}`, { policy })
      .then((changed) => {
        teamPolicies.set(team, changed.policy);
        sayTeamPolicy(changed.policy === null
          ? `Team ${team} has no policy of its own now.`
          : `Team ${team}'s policy is set: it applies to the sessions its agents join from now on.`, true);
        return render();
      })
      .then(showTeamPolicy)
      .catch((error: Error) => sayTeamPolicy(error.message));
  };
  teamPolicyForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const parsed = parsePolicy(teamPolicy.value);
    if ("error" in parsed) return sayTeamPolicy(parsed.error);
    changeTeamPolicy(parsed.policy);
  });
  clearTeamPolicy.addEventListener("click", () => changeTeamPolicy(null));

  for (const area of [sitePolicy, teamPolicy]) {
    area.rows = 6;
    area.spellcheck = false;
    area.placeholder = POLICY_EXAMPLE;
  }

  // Retention: how long ended sessions' records and recordings are kept.
  const retentionNow = el("p");
  const retentionForm = el("form", "", "office-form");
  retentionForm.noValidate = true; // the server decides what is allowed, and says so
  const retention = field(retentionForm, "Keep ended sessions (days)", el("input"));
  retention.type = "number";
  retention.min = "1";
  retention.step = "1";
  const [retentionStatus, sayRetention] = statusLine("Retention status");
  const saveRetention = el("button", "Save retention");
  saveRetention.type = "submit";
  retentionForm.append(saveRetention);
  const showRetention = (org: Org) => {
    retentionNow.textContent = `Records of ended sessions and their recordings are deleted after ${org.retention_days} day${org.retention_days === 1 ? "" : "s"}.`;
    retention.value = String(org.retention_days);
  };
  retentionForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const days = retention.value.trim();
    if (!days) return sayRetention("Enter a whole number of days.");
    api<Org>("PATCH", "/api/org", { retention_days: Number(days) } satisfies OrgChange)
      .then((org) => {
        showRetention(org);
        sayRetention(`Ended sessions are now kept for ${org.retention_days} day${org.retention_days === 1 ? "" : "s"}.`, true);
      })
      .catch((error: Error) => sayRetention(error.message));
  });

  // Single sign-on through the organisation's OpenID Connect provider. The secret goes to the
  // server only, which never shows it again; the field is emptied as soon as it is sent.
  const ssoNow = el("p");
  const ssoForm = el("form", "", "office-form");
  ssoForm.noValidate = true;
  const issuer = field(ssoForm, "Issuer URL", el("input"));
  issuer.type = "url";
  issuer.placeholder = "https://login.example.com";
  const clientId = field(ssoForm, "Client id", el("input"));
  const clientSecret = field(ssoForm, "Client secret", el("input"));
  clientSecret.type = "password";
  clientSecret.autocomplete = "off";
  for (const input of [issuer, clientId]) {
    input.autocomplete = "off";
    input.spellcheck = false;
  }
  const [ssoStatus, saySso] = statusLine("Single sign-on status");
  const saveSso = el("button", "Save single sign-on");
  saveSso.type = "submit";
  ssoForm.append(saveSso);
  const ssoOff = el("button", "Turn off single sign-on");
  ssoOff.type = "button";
  const showSso = (sso: SsoProvider | null) => {
    ssoNow.textContent = sso
      ? `Accounts can sign in through ${sso.issuer} (client id ${sso.client_id}). The client secret is stored encrypted and never shown.`
      : "Off: accounts sign in with their password and two-step sign-in only.";
    ssoOff.hidden = !sso;
    if (sso) {
      issuer.value = sso.issuer;
      clientId.value = sso.client_id;
    }
  };
  ssoForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const secret = clientSecret.value;
    clientSecret.value = "";
    if (!secret) return saySso("Enter the client secret your identity provider gave you (needed each time you save).");
    api<SsoAnswer>("PUT", "/api/org/sso", { issuer: issuer.value.trim(), client_id: clientId.value.trim(), client_secret: secret } satisfies SsoSettings)
      .then(({ sso }) => {
        showSso(sso);
        saySso("Single sign-on is on. Accounts must already exist here under the provider's user name.", true);
      })
      .catch((error: Error) => saySso(error.message));
  });
  ssoOff.addEventListener("click", () => {
    api("DELETE", "/api/org/sso")
      .then(() => {
        showSso(null);
        ssoForm.reset();
        saySso("Single sign-on is off.", true);
      })
      .catch((error: Error) => saySso(error.message));
  });

  root.replaceChildren(
    el("h1", "Administration"), status, el("h2", "Accounts"), accounts, form,
    el("h2", "Teams"), teams, teamForm,
    el("p", "A team's policy (docs/privacy.md) adds page rules and masks to every session its agents join. Setting one replaces the team's previous policy; clearing removes it.", "muted"),
    teamPolicyForm, teamPolicyStatus,
    el("h2", "Sites"), siteList, keyPanel, siteStatus,
    el("p", "A site's own policy (docs/privacy.md) replaces the server's policy for that site; the page can only add restrictions to it.", "muted"),
    sitePolicyForm, sitePolicyStatus, siteForm,
    el("h2", "Retention"), retentionNow, retentionForm, retentionStatus,
    el("h2", "Single sign-on"), ssoNow,
    el("p", `Register Tandem with your identity provider as a confidential client with the redirect URI ${relay().base || location.origin}/api/sso/callback.`, "muted"),
    ssoForm, ssoOff, ssoStatus,
    compliancePanel(), subjectsPanel(),
  );
  render()
    .then(() => {
      showSitePolicy();
      showTeamPolicy();
    })
    .catch((error: Error) => say(error.message));
  api<Org>("GET", "/api/org").then(showRetention).catch((error: Error) => sayRetention(error.message));
  api<SsoAnswer>("GET", "/api/org/sso").then(({ sso }) => showSso(sso)).catch((error: Error) => saySso(error.message));
}
