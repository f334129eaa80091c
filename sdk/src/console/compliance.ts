/**
 * The admin's compliance page (issue 16): a banner when known vulnerabilities affect this
 * installation or its advisories are stale, and the compliance check of the organisation against
 * a profile, each requirement with its reference and the fix for a failure. Only a view of
 * GET /api/security and GET /api/compliance. Text is always set with textContent.
 */

import type {
  ComplianceReport, Hold, HoldRequest, Holds, PlacedHold, SecurityStatus, SubjectErased, SubjectFindings, SubjectRequest,
} from "../generated/rest.ts";
import { complianceT as t } from "./messages/compliance.ts";
import { api, el, field, problemDetail, saveFile, statusLine, table } from "./office.ts";
import { relayFetch } from "./relay.ts";

const mark = (status: string): string =>
  status === "pass" ? t("pass") : status === "fail" ? t("fail") : status === "not applicable" ? t("notApplicable") : status;

export function compliancePanel(): HTMLElement {
  const panel = el("section");
  panel.setAttribute("aria-label", t("title"));
  const banner = el("p", "", "status bad");
  banner.setAttribute("role", "alert");
  banner.hidden = true;
  const form = el("form", "", "office-form");
  const label = el("label", t("profile"));
  const profile = el("select");
  profile.id = "compliance-profile";
  label.htmlFor = profile.id;
  for (const [value, text] of [["gdpr", "GDPR"], ["hipaa", "HIPAA"], ["pci-dss", "PCI DSS v4.0"]]) {
    profile.append(new Option(text, value));
  }
  const check = el("button", t("check"));
  check.type = "submit";
  form.append(label, profile, check);
  const results = el("div");
  const [status, say] = statusLine(t("status"));

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    api<ComplianceReport[]>("GET", `/api/compliance?profile=${encodeURIComponent(profile.value)}`)
      .then(([report]) => {
        results.replaceChildren(table([t("colResult"), t("colRequirement"), t("colReference"), t("colFound"), t("colFix")], report.results.map((r) => [
          mark(r.status), r.title, r.reference, r.detail, r.status === "fail" ? r.fix : "",
        ])));
        const failed = report.results.filter((r) => r.status === "fail").length;
        const name = profile.selectedOptions[0].text;
        say(failed ? t(failed === 1 ? "failedOne" : "failedMany", { count: failed, profile: name }) : t("passed", { profile: name }), !failed);
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
    el("h2", t("title")), banner,
    el("p", t("intro"), "muted"),
    form, results, status,
  );
  return panel;
}

/**
 * Data subject requests (GDPR Art. 15 and 17) and legal holds: find, export (a zip whose
 * recordings stay encrypted) or erase what concerns one customer, by the sub of the site's
 * customer token or a session id; place and lift holds, each with a reason. All audited.
 */
export function subjectsPanel(): HTMLElement {
  const panel = el("section");
  panel.setAttribute("aria-label", t("subjectsTitle"));
  const form = el("form", "", "office-form");
  const subject = field(form, t("subject"), el("input"));
  subject.autocomplete = "off";
  subject.spellcheck = false;
  const find = el("button", t("find"));
  find.type = "submit";
  const exportButton = el("button", t("export"));
  exportButton.type = "button";
  const erase = el("button", t("erase"));
  erase.type = "button";
  form.append(find, exportButton, erase);
  const found = el("div");
  const [status, say] = statusLine(t("subjectStatus"));
  const body = (): SubjectRequest | null => {
    const value = subject.value.trim();
    if (!value) say(t("needSubject"));
    return value ? { subject: value } : null;
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const request = body();
    if (!request) return;
    api<SubjectFindings>("POST", "/api/subjects/find", request)
      .then((f) => {
        found.replaceChildren(table([t("colSessions"), t("colRecordings"), t("colAuditRecords"), t("colReports")], [[
          f.sessions.join(", ") || t("none"), f.recordings.join(", ") || t("none"), String(f.audit_records), String(f.reports),
        ]]));
        say(f.sessions.length || f.audit_records ? t("found") : t("nothingFound"), true);
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
        say(t("exported"), true);
      })
      .catch((error: Error) => say(error.message));
  });
  erase.addEventListener("click", () => {
    const request = body();
    if (!request) return;
    if (!confirm(t("confirmErase"))) return;
    api<SubjectErased>("POST", "/api/subjects/erase", request)
      .then((e) => {
        found.replaceChildren();
        say(t("erased", { sessions: e.sessions, recordings: e.recordings.length, kept: e.audit_records_kept }), true);
      })
      .catch((error: Error) => say(error.message));
  });

  const holdForm = el("form", "", "office-form");
  const kind = field(holdForm, t("holdOn"), el("select"));
  kind.append(new Option(t("holdSubject"), "subject"), new Option(t("holdRecording"), "recording"));
  const target = field(holdForm, t("holdTarget"), el("input"));
  target.autocomplete = "off";
  const reason = field(holdForm, t("holdReason"), el("input"));
  const place = el("button", t("place"));
  place.type = "submit";
  const lift = el("button", t("lift"));
  lift.type = "button";
  holdForm.append(place, lift);
  const holdList = el("div");
  const [holdStatus, sayHold] = statusLine(t("holdStatus"));
  const showHolds = () => api<Holds>("GET", "/api/holds")
    .then(({ holds }) => holdList.replaceChildren(holds.length
      ? table([t("colOn"), t("colTarget"), t("colSince"), t("colBy"), t("colReason")], holds.map((h) => [
        h.kind === "subject" ? t("holdSubject") : h.kind === "recording" ? t("holdRecording") : h.kind, h.target, new Date(h.placed_at * 1000).toISOString().slice(0, 16).replace("T", " "), h.placed_by, h.reason,
      ]))
      : el("p", t("noHolds"), "muted")))
    .catch((error: Error) => sayHold(error.message));
  const holdRequest = (): HoldRequest | null => {
    if (!target.value.trim() || !reason.value.trim()) {
      sayHold(t("needHold"));
      return null;
    }
    return { kind: kind.value, target: target.value.trim(), reason: reason.value.trim() };
  };
  holdForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const request = holdRequest();
    if (!request) return;
    api<PlacedHold>("POST", "/api/holds", request)
      .then((placed) => {
        // A hold that matches nothing stored may be a typo: say so, as a warning.
        const keeps = placed.sessions.length > 0 || placed.recordings.length > 0;
        sayHold(t(keeps ? "placed" : "placedNothingYet"), keeps);
        void showHolds();
      })
      .catch((error: Error) => sayHold(error.message));
  });
  lift.addEventListener("click", () => {
    const request = holdRequest();
    if (!request) return;
    api<Hold>("POST", "/api/holds/lift", request)
      .then(() => {
        sayHold(t("lifted"), true);
        void showHolds();
      })
      .catch((error: Error) => sayHold(error.message));
  });
  void showHolds();

  panel.append(
    el("h2", t("subjectsTitle")),
    el("p", t("subjectsIntro"), "muted"),
    form, found, status,
    el("h3", t("holdsTitle")), holdList, holdForm, holdStatus,
  );
  return panel;
}
