/**
 * The masking policy (docs/privacy.md): a versioned JSON document, validated here.
 *
 * Two sources: the site's own page (`Tandem.start({policy})` or
 * `<script type="application/json" id="tandem-policy">`) and the organisation's policy from the
 * server. `mergePolicies` lets the server's policy only *add* restrictions: it can mask or hide
 * more, turn detectors on and media off, never unmask anything.
 */

import { globMatches } from "./glob.ts";

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
  /** Pages that may be shared: URL patterns (`*` = anything), on origin + path. */
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
 * `mask` and `hide` selectors say nothing of the page's state (SERVER_SELECTOR). Its `unmask` is
 * never used (mergePolicies). Throws PolicyError naming the first bad field. */
export function validateServerPolicy(value: unknown): Policy {
  const policy = validatePolicy(value);
  for (const field of ["mask", "hide"] as const) {
    policy[field].forEach((selector, i) => {
      const problem = serverSelectorProblem(selector);
      if (problem) fail(`${field}[${i}]`, problem);
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
    if (!pattern.startsWith("/") && !/^https?:\/\//.test(pattern)) {
      fail(`${field}[${i}]`, "must start with / (a path) or http(s):// (origin and path)");
    }
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

/** `%XX` escapes decoded where they spell UTF-8; any other `%` stays as it is. */
function percentDecoded(text: string): string {
  if (!text.includes("%")) return text;
  return text.replace(/(?:%[0-9a-fA-F]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      return run;
    }
  });
}

/**
 * The path as a lenient web server reads it, so that a page rule names a page however its address
 * is spelled: escapes decoded (`/%63heckout`), `;` parameters of each segment dropped
 * (`/checkout;jsessionid=1`), empty segments (`//checkout`), `.` and `..` resolved (also where
 * they were escaped as `%2f`), trailing dots and spaces of a segment dropped (`/checkout.`), no
 * trailing slash (`/checkout/`), lower case (`/Checkout`). Patterns are read the same way (their
 * `*` is kept). Linear in the path.
 */
function canonicalPath(path: string): string {
  const segments: string[] = [];
  for (const raw of percentDecoded(path).replaceAll("\\", "/").split("/")) {
    const segment = raw.split(";", 1)[0];
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      segments.pop();
      continue;
    }
    let end = segment.length; // trailing dots and spaces, without a regular expression's backtracking
    while (end > 0 && (segment[end - 1] === "." || segment[end - 1] === " ")) end--;
    if (end > 0) segments.push(segment.slice(0, end));
  }
  return `/${segments.join("/")}`.toLowerCase();
}

/** A path read leniently, with and without a trailing slash (`/help/` is `/help` and `/help/`). */
function canonicalForms(path: string): string[] {
  const path2 = canonicalPath(path);
  return path2 === "/" ? [path2] : [path2, `${path2}/`];
}

/** An origin as the browser writes it (lower case, international names in punycode, no default
 * port), without a trailing dot of its host (`https://shop.example.` is `https://shop.example`
 * to a server). A pattern's origin that is no address (`https://shop.example:*`) stays as written,
 * in lower case. */
function canonicalOrigin(origin: string): string {
  let written = origin.toLowerCase();
  try {
    written = new URL(origin).origin;
  } catch {
    // a pattern's wildcard where an address has none: matched as written
  }
  const port = written.lastIndexOf(":");
  const hostEnd = port > written.indexOf("://") ? port : written.length;
  return written[hostEnd - 1] === "." ? written.slice(0, hostEnd - 1) + written.slice(hostEnd) : written;
}

/** A pattern read like canonicalPath reads a page's path (an origin's pattern, canonicalOrigin). */
function canonicalPattern(pattern: string): string {
  if (pattern.startsWith("/")) return canonicalPath(pattern);
  const pathStart = pattern.indexOf("/", pattern.indexOf("://") + 3);
  if (pathStart < 0) return canonicalOrigin(pattern);
  return canonicalOrigin(pattern.slice(0, pathStart)) + canonicalPath(pattern.slice(pathStart));
}

/**
 * The paths a page shows, each as written and read leniently (canonicalPath): its own, and the
 * route of a hash router (`/#/checkout`, `/#!/checkout`; its own query left out). A `deny`
 * pattern that names any of them makes the page private.
 */
function shownPaths(url: URL): string[] {
  const paths = [url.pathname];
  const route = /^#!?(\/[^?]*)/.exec(url.hash)?.[1];
  if (route !== undefined) paths.push(route);
  return paths;
}

/** Whether `pattern` names `path` of `url` as written, or as read leniently. Linear time
 * (./glob.ts): no regular expression is ever built from a pattern. */
function names(pattern: string, url: URL, path: string, strict: boolean): boolean {
  const onOrigin = !pattern.startsWith("/");
  const written = globMatches(pattern, (onOrigin ? url.origin : "") + path);
  if (strict && !written) return false;
  if (!strict && written) return true;
  const lenient = canonicalPattern(pattern);
  const origin = onOrigin ? canonicalOrigin(url.origin) : "";
  return canonicalForms(path).some((form) => globMatches(lenient, origin + form));
}

/** A `deny` pattern names the page under any spelling of any path it shows. */
function denies(pattern: string, url: URL): boolean {
  return shownPaths(url).some((path) => names(pattern, url, path, false));
}

/** An `allow` pattern names the page's path both as written and as read leniently (stricter:
 * `/Help` is not on an allow list of `/help*`, though it is `/help` on a lenient server). */
function allows(pattern: string, url: URL): boolean {
  return names(pattern, url, url.pathname, true);
}

/**
 * Whether a page is private under any of the policies: it matches a `deny` pattern, or a policy
 * has an `allow` list the page is not on. The site's and the organisation's rules both apply.
 * A page's address is matched as written and as a lenient server reads it (canonicalPath), and
 * a hash router's route counts as a path for `deny` (docs/privacy.md).
 */
export function pageIsPrivate(url: URL, policies: (Policy | null)[]): boolean {
  return policies.some((policy) => {
    if (!policy) return false;
    if (policy.pages.deny.some((p) => denies(p, url))) return true;
    return policy.pages.allow.length > 0 && !policy.pages.allow.some((p) => allows(p, url));
  });
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
