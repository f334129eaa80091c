/**
 * The admin's compliance page (issue 16): a banner when known vulnerabilities affect this
 * installation or its advisories are stale, and the compliance check of the organisation against
 * a profile, each requirement with its reference and the fix for a failure. Only a view of
 * GET /api/security and GET /api/compliance. Text is always set with textContent.
 */

import type {
  ComplianceReport, Hold, HoldRequest, Holds, SecurityStatus, SubjectErased, SubjectFindings, SubjectRequest,
} from "../generated/rest.ts";
import { api, el, field, problemDetail, statusLine, table } from "./office.ts";
import { relayFetch } from "./relay.ts";

const MARK: Record<string, string> = { pass: "pass", fail: "FAIL", "not applicable": "n/a" };

export function compliancePanel(): HTMLElement {
  const panel = el("section");
  panel.setAttribute("aria-label", "Compliance");
  const banner = el("p", "", "status bad");
  banner.setAttribute("role", "alert");
  banner.hidden = true;
  const form = el("form", "", "office-form");
  const label = el("label", "Profile");
  const profile = el("select");
  profile.id = "compliance-profile";
  label.htmlFor = profile.id;
  for (const [value, text] of [["gdpr", "GDPR"], ["hipaa", "HIPAA"], ["pci-dss", "PCI DSS v4.0"]]) {
    profile.append(new Option(text, value));
  }
  const check = el("button", "Check compliance");
  check.type = "submit";
  form.append(label, profile, check);
  const results = el("div");
  const [status, say] = statusLine("Compliance status");

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    api<ComplianceReport[]>("GET", `/api/compliance?profile=${encodeURIComponent(profile.value)}`)
      .then(([report]) => {
        results.replaceChildren(table(["", "requirement", "reference", "found", "fix"], report.results.map((r) => [
          MARK[r.status] ?? r.status, r.title, r.reference, r.detail, r.status === "fail" ? r.fix : "",
        ])));
        const failed = report.results.filter((r) => r.status === "fail").length;
        say(failed ? `${failed} requirement${failed === 1 ? "" : "s"} of ${profile.selectedOptions[0].text} failed.` : `Every requirement of ${profile.selectedOptions[0].text} that applies passes.`, !failed);
      })
      .catch((error: Error) => say(error.message));
  });

  api<SecurityStatus>("GET", "/api/security")
    .then((security) => {
      banner.textContent = security.banner ?? "";
      banner.hidden = !security.banner;
    })
    .catch((error: Error) => say(error.message));

  panel.append(
    el("h2", "Compliance"), banner,
    el("p", "Checks this organisation's configuration against a profile (docs/compliance.md). The same check runs as `tandem compliance check`.", "muted"),
    form, results, status,
  );
  return panel;
}

function saveFile(name: string, data: Blob): void {
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
 * Data subject requests (GDPR Art. 15 and 17) and legal holds: find, export (a zip whose
 * recordings stay encrypted) or erase what concerns one customer, by the sub of the site's
 * customer token or a session id; place and lift holds, each with a reason. All audited.
 */
export function subjectsPanel(): HTMLElement {
  const panel = el("section");
  panel.setAttribute("aria-label", "Data subject requests");
  const form = el("form", "", "office-form");
  const subject = field(form, "Customer (token sub or session id)", el("input"));
  subject.autocomplete = "off";
  subject.spellcheck = false;
  const find = el("button", "Find");
  find.type = "submit";
  const exportButton = el("button", "Export");
  exportButton.type = "button";
  const erase = el("button", "Erase");
  erase.type = "button";
  form.append(find, exportButton, erase);
  const found = el("div");
  const [status, say] = statusLine("Subject request status");
  const body = (): SubjectRequest | null => {
    const value = subject.value.trim();
    if (!value) say("Enter the customer's token sub or a session id.");
    return value ? { subject: value } : null;
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const request = body();
    if (!request) return;
    api<SubjectFindings>("POST", "/api/subjects/find", request)
      .then((f) => {
        found.replaceChildren(table(["sessions", "recordings", "audit records", "reports"], [[
          f.sessions.join(", ") || "none", f.recordings.join(", ") || "none", String(f.audit_records), String(f.reports),
        ]]));
        say(f.sessions.length || f.audit_records ? "Found." : "Nothing stored concerns this customer.", true);
      })
      .catch((error: Error) => say(error.message));
  });
  exportButton.addEventListener("click", () => {
    const request = body();
    if (!request) return;
    relayFetch("/api/subjects/export", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(request),
    })
      .then(async (response) => {
        if (!response.ok) throw new Error(await problemDetail(response));
        saveFile("tandem-subject-export.zip", await response.blob());
        say("Exported: recordings in the archive stay encrypted; its README says how to open them.", true);
      })
      .catch((error: Error) => say(error.message));
  });
  erase.addEventListener("click", () => {
    const request = body();
    if (!request) return;
    if (!confirm("Erase this customer's sessions and recordings for good? This cannot be undone.")) return;
    api<SubjectErased>("POST", "/api/subjects/erase", request)
      .then((e) => {
        found.replaceChildren();
        say(`Erased ${e.sessions} session(s) and ${e.recordings.length} recording(s); ${e.audit_records_kept} audit record(s) kept, no longer linked to the customer.`, true);
      })
      .catch((error: Error) => say(error.message));
  });

  const holdForm = el("form", "", "office-form");
  const kind = field(holdForm, "Hold on", el("select"));
  kind.append(new Option("a customer", "subject"), new Option("a recording", "recording"));
  const target = field(holdForm, "Customer or recording id", el("input"));
  target.autocomplete = "off";
  const reason = field(holdForm, "Reason", el("input"));
  const place = el("button", "Place hold");
  place.type = "submit";
  const lift = el("button", "Lift hold");
  lift.type = "button";
  holdForm.append(place, lift);
  const holdList = el("div");
  const [holdStatus, sayHold] = statusLine("Legal hold status");
  const showHolds = () => api<Holds>("GET", "/api/holds")
    .then(({ holds }) => holdList.replaceChildren(holds.length
      ? table(["on", "target", "since", "by", "reason"], holds.map((h) => [
        h.kind, h.target, new Date(h.placed_at * 1000).toISOString().slice(0, 16).replace("T", " "), h.placed_by, h.reason,
      ]))
      : el("p", "No legal holds.", "muted")))
    .catch((error: Error) => sayHold(error.message));
  const holdRequest = (): HoldRequest | null => {
    if (!target.value.trim() || !reason.value.trim()) {
      sayHold("A hold needs what it is on and a reason.");
      return null;
    }
    return { kind: kind.value, target: target.value.trim(), reason: reason.value.trim() };
  };
  holdForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const request = holdRequest();
    if (!request) return;
    api<Hold>("POST", "/api/holds", request)
      .then(() => {
        sayHold("Hold placed: purge and erasure leave it alone until it is lifted.", true);
        void showHolds();
      })
      .catch((error: Error) => sayHold(error.message));
  });
  lift.addEventListener("click", () => {
    const request = holdRequest();
    if (!request) return;
    api<Hold>("POST", "/api/holds/lift", request)
      .then(() => {
        sayHold("Hold lifted.", true);
        void showHolds();
      })
      .catch((error: Error) => sayHold(error.message));
  });
  void showHolds();

  panel.append(
    el("h2", "Data subject requests"),
    el("p", "Find, export or erase what Tandem stores about one customer (docs/compliance.md). Exports and erasures are audited.", "muted"),
    form, found, status,
    el("h3", "Legal holds"), holdList, holdForm, holdStatus,
  );
  return panel;
}
