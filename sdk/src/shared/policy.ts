/**
 * The masking policy (docs/privacy.md): a versioned JSON document, validated here.
 *
 * Two sources: the site's own page (`Tandem.start({policy})` or
 * `<script type="application/json" id="tandem-policy">`) and the organisation's policy from the
 * server. `mergePolicies` lets the server's policy only *add* restrictions: it can mask or hide
 * more, turn detectors on and media off, never unmask anything.
 */

import { pagePatternProblem, pageRulesKeepPrivate, serverPagePatternProblem } from "./pages.ts";

export interface Policy {
  version: 1;
  /** Elements whose text and values are masked (`•`), matched with `closest()`. */
  mask: string[];
  /** Elements replaced by an empty box of the same size. */
  hide: string[];
  /** Elements whose values are shown (like `data-tandem-unmask`); never sensitive fields. */
  unmask: string[];
  /** Opt-in detectors; payment cards are always on. */
  detectors: { iban: boolean; ssn: boolean; email: boolean; phone: boolean };
  /** Whether images and video are shown (off: replaced by boxes). */
  media: { images: boolean; video: boolean };
  /** Whether query strings and fragments of URLs are kept (default: stripped). */
  url: { query: boolean; fragment: boolean };
  /** Pages that may be shared: URL patterns (`*` = anything) on origin, path, query and hash
   * route (./pages.ts). */
  pages: { allow: string[]; deny: string[] };
}

export class PolicyError extends Error {}

export const DEFAULT_POLICY: Policy = Object.freeze({
  version: 1,
  mask: [],
  hide: [],
  unmask: [],
  detectors: { iban: false, ssn: false, email: false, phone: false },
  media: { images: true, video: false },
  url: { query: false, fragment: false },
  pages: { allow: [], deny: [] },
}) as Policy;

const MAX_SELECTORS = 200;
const MAX_SELECTOR_LENGTH = 500;
const TOP_KEYS = new Set(["version", "mask", "hide", "unmask", "detectors", "media", "url", "pages"]);

function fail(field: string, message: string): never {
  throw new PolicyError(`policy.${field}: ${message}`);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function selectors(value: unknown, field: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) fail(field, "must be a list of CSS selectors");
  if (value.length > MAX_SELECTORS) fail(field, `at most ${MAX_SELECTORS} selectors`);
  return value.map((selector, i) => {
    if (typeof selector !== "string" || !selector.trim()) fail(`${field}[${i}]`, "must be a non-empty string");
    if (selector.length > MAX_SELECTOR_LENGTH) fail(`${field}[${i}]`, `longer than ${MAX_SELECTOR_LENGTH} characters`);
    if (typeof document !== "undefined") {
      try {
        document.createDocumentFragment().querySelector(selector);
      } catch {
        fail(`${field}[${i}]`, `not a valid CSS selector: ${JSON.stringify(selector)}`);
      }
    }
    return selector.trim();
  });
}

function flags<T extends Record<string, boolean>>(value: unknown, field: string, defaults: T): T {
  if (value === undefined) return { ...defaults };
  if (!isObject(value)) fail(field, "must be an object");
  const out = { ...defaults };
  for (const [key, flag] of Object.entries(value)) {
    if (!(key in defaults)) fail(`${field}.${key}`, `unknown setting (known: ${Object.keys(defaults).join(", ")})`);
    if (typeof flag !== "boolean") fail(`${field}.${key}`, "must be true or false");
    (out as Record<string, boolean>)[key] = flag;
  }
  return out;
}

/**
 * What a selector in a policy from the server (the organisation's, the agent's teams') may say:
 * elements by their tag, classes, id, structure (`:not`, `:is`, `:where`, `:has`, `:nth-child`
 * and the like, combinators) and markup attributes, only what the page's own markup says and the
 * agent sees anyway. Never the page's state: `:checked`, `:valid`, `:placeholder-shown`,
 * `:focus`, `:hover`, `:empty`, a `value`, `data-*` or `aria-*` attribute's value... A selector
 * that tested it would hide or mask a part of the page depending on what the customer chose or
 * typed in a hidden field (`body:has(#yes:checked) #essay`), and the relay reads the answer in
 * the size of the next snapshot; the agent in the mirror. The site's own policy is the site's:
 * any selector. One pass over the selector, one character a step (no backtracking to blow up);
 * src/tandem/policy.py holds the same expression for what admins configure.
 */
const SERVER_SELECTOR =
  /^(?:[-_a-z0-9\u00a0-\uffff]|\\[^\n]|[.#*>+~,()\s]|\[\s*[-_a-z0-9]+\s*\]|\[\s*(?:class|id|type|role|name|autocomplete|inputmode|rel|lang|dir|for)\s*[~|^$*]?=\s*(?:"[^"\\\n]*"|'[^'\\\n]*'|[-_a-z0-9]+)\s*(?:[is]\s*)?\]|:(?:not|is|where|has)\(|:(?:first-child|last-child|only-child|first-of-type|last-of-type|only-of-type|root|defined)|:nth-(?:last-)?(?:child|of-type)\(\s*(?:odd|even|[-+]?[0-9]*n?(?:\s*[-+]\s*[0-9]+)?)\s*\))*$/;

/** Why a selector may not come from the server (SERVER_SELECTOR), or null. */
export function serverSelectorProblem(selector: string): string | null {
  if (SERVER_SELECTOR.test(selector.toLowerCase())) return null;
  return "a policy from the server may name elements only by tag, class, id, structure and markup attributes " +
    "(class, id, type, role, name, autocomplete, inputmode, rel, lang, dir, for), never by what the customer " +
    `did on the page: ${JSON.stringify(selector)}`;
}

/** Validate a policy from the server (the organisation's, a team's): a policy document whose
 * `mask` and `hide` selectors say nothing of the page's state (SERVER_SELECTOR), and whose page
 * patterns name query values only whole (./pages.ts, serverPagePatternProblem). Its `unmask` is
 * never used (mergePolicies). Throws PolicyError naming the first bad field. */
export function validateServerPolicy(value: unknown): Policy {
  const policy = validatePolicy(value);
  for (const field of ["mask", "hide"] as const) {
    policy[field].forEach((selector, i) => {
      const problem = serverSelectorProblem(selector);
      if (problem) fail(`${field}[${i}]`, problem);
    });
  }
  for (const field of ["allow", "deny"] as const) {
    policy.pages[field].forEach((pattern, i) => {
      const problem = serverPagePatternProblem(pattern);
      if (problem) fail(`pages.${field}[${i}]`, problem);
    });
  }
  return policy;
}

/** Validate a policy document. Throws PolicyError naming the first bad field. */
export function validatePolicy(value: unknown): Policy {
  if (!isObject(value)) throw new PolicyError("policy: must be a JSON object");
  for (const key of Object.keys(value)) {
    if (!TOP_KEYS.has(key)) fail(key, `unknown field (known: ${[...TOP_KEYS].join(", ")})`);
  }
  if (value.version !== 1) fail("version", "must be 1");
  if (isObject(value.detectors) && "cards" in value.detectors) {
    fail("detectors.cards", "payment cards are always masked and cannot be configured");
  }
  return {
    version: 1,
    mask: selectors(value.mask, "mask"),
    hide: selectors(value.hide, "hide"),
    unmask: selectors(value.unmask, "unmask"),
    detectors: flags(value.detectors, "detectors", DEFAULT_POLICY.detectors),
    media: flags(value.media, "media", DEFAULT_POLICY.media),
    url: flags(value.url, "url", DEFAULT_POLICY.url),
    pages: pageRules(value.pages),
  };
}

function patterns(value: unknown, field: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) fail(field, "must be a list of URL patterns");
  if (value.length > MAX_SELECTORS) fail(field, `at most ${MAX_SELECTORS} patterns`);
  return value.map((pattern, i) => {
    if (typeof pattern !== "string" || !pattern.trim()) fail(`${field}[${i}]`, "must be a non-empty string");
    if (pattern.length > MAX_SELECTOR_LENGTH) fail(`${field}[${i}]`, `longer than ${MAX_SELECTOR_LENGTH} characters`);
    const problem = pagePatternProblem(pattern.trim());
    if (problem) fail(`${field}[${i}]`, problem);
    return pattern.trim();
  });
}

function pageRules(value: unknown): Policy["pages"] {
  if (value === undefined) return { allow: [], deny: [] };
  if (!isObject(value)) fail("pages", "must be an object with allow and/or deny");
  for (const key of Object.keys(value)) {
    if (key !== "allow" && key !== "deny") fail(`pages.${key}`, "unknown setting (known: allow, deny)");
  }
  return { allow: patterns(value.allow, "pages.allow"), deny: patterns(value.deny, "pages.deny") };
}

/**
 * Whether a page is private under any of the policies: it matches a `deny` pattern, or a policy
 * has an `allow` list the page is not on. The site's, the organisation's and the teams' rules all
 * apply. A page is matched by its path, its query and its hash router's route, as written and as
 * a lenient server reads them (./pages.ts, docs/privacy.md).
 */
export function pageIsPrivate(url: URL, policies: (Policy | null)[]): boolean {
  return policies.some((policy) => policy !== null && pageRulesKeepPrivate(url, policy.pages.allow, policy.pages.deny));
}

/** The site's policy tightened by the organisation's: never looser than either. */
export function mergePolicies(site: Policy, org: Policy | null): Policy {
  if (!org) return site;
  return {
    version: 1,
    mask: [...site.mask, ...org.mask],
    hide: [...site.hide, ...org.hide],
    unmask: site.unmask, // the organisation can never unmask what the site masks
    detectors: {
      iban: site.detectors.iban || org.detectors.iban,
      ssn: site.detectors.ssn || org.detectors.ssn,
      email: site.detectors.email || org.detectors.email,
      phone: site.detectors.phone || org.detectors.phone,
    },
    media: { images: site.media.images && org.media.images, video: site.media.video && org.media.video },
    url: { query: site.url.query && org.url.query, fragment: site.url.fragment && org.url.fragment },
    // Page rules are checked per policy (pageIsPrivate), so an allow list never widens another.
    pages: { allow: site.pages.allow, deny: [...site.pages.deny, ...org.pages.deny] },
  };
}
