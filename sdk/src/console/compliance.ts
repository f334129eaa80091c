/**
 * The admin's compliance page (issue 16): a banner when known vulnerabilities affect this
 * installation or its advisories are stale, and the compliance check of the organisation against
 * a profile, each requirement with its reference and the fix for a failure. Only a view of
 * GET /api/security and GET /api/compliance. Text is always set with textContent.
 */

import type { ComplianceReport, SecurityStatus } from "../generated/rest.ts";
import { api, el, statusLine, table } from "./office.ts";

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
