/**
 * Page rules (`pages.allow`, `pages.deny`, docs/privacy.md): which pages a pattern names, for the
 * ways real sites route pages: by path (`/checkout`), by query (`/index.php?page=checkout`) and
 * by a hash router's route (`/#/checkout`, `/#!/checkout`, `/#checkout`).
 *
 * A pattern is `[origin]path[?query][#route[?query]]`:
 * - origin and path: a glob (./glob.ts: `*` is anything), as before;
 * - a query: `&`-separated conditions, each `name` (present) or `name=value` (value a glob); the
 *   page's query must meet every one, in any order among other parameters;
 * - a route: the hash router's route the page shows (`#/checkout`, `#!/checkout`, `#checkout`
 *   and `#!checkout` are one route, `/checkout`; no fragment is the route `/`), a glob, with its
 *   own query conditions.
 *
 * Every part is matched as written and as a lenient server or router reads it (paths:
 * canonicalSegments; query names and values: escapes and `+` decoded, cut at a NUL, no case, no
 * surrounding white space, an array's `[…]` after a name dropped, PHP's `_` for `.`). A `deny`
 * pattern names the page if it names any spelling: the path with its query, the route read as a
 * path with the route's query, or the path with both queries; with a route, the path and the
 * route together; also the script a path runs (`/index.php/x`), and on http as on https. An `allow` pattern must name the page
 * as the customer sees it, both as written and as read leniently: its path and, on a page with a
 * fragment, the route too (`/app/*` takes in `/app/#/orders`; `/faq` is not `/faq#/account`), and
 * each named parameter's every value (`?page=faq&page=checkout` is not on `?page=faq`: servers
 * differ in which of the two they read).
 *
 * Linear in the pattern and the address for each condition (at most MAX_PATTERN_PARAMETERS of
 * them): no regular expression is ever built from a pattern.
 */

import { globMatches } from "./glob.ts";

/** The most query conditions in one part of a pattern (the same in src/tandem/policy.py). */
export const MAX_PATTERN_PARAMETERS = 8;

interface Condition {
  /** The name as written, and as read leniently (readParam). */
  name: string;
  lenientName: string;
  /** The value's glob as written and as read leniently; null: any value (the name alone). */
  value: string | null;
  lenientValue: string | null;
}

interface Pattern {
  /** Origin and path (`https://…/path`) or the path alone, as written. */
  main: string;
  onOrigin: boolean;
  query: Condition[];
  /** The route (with a leading `/`, no `!`) and its conditions; null: the pattern names none. */
  route: { path: string; query: Condition[] } | null;
}

/** How many times escapes are decoded: a server or a framework that decodes twice reads
 * `%2563` as `c` (`%25` is `%`); no server decodes more often. A constant, so linear time. */
export const DECODE_PASSES = 4;

/** One run of `%XX` escapes decoded as a lenient server decodes bytes: UTF-8, and also its
 * overlong forms (`%c0%af` is `/` to the old servers that read them, `%e0%80%ae` is `.`); a byte
 * that starts no sequence stays as written (`%ff`). */
function decodedRun(run: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < run.length; i += 3) bytes.push(parseInt(run.slice(i + 1, i + 3), 16));
  let out = "";
  for (let i = 0; i < bytes.length;) {
    const lead = bytes[i];
    const length = lead < 0x80 ? 1 : lead >= 0xc0 && lead < 0xe0 ? 2 : lead >= 0xe0 && lead < 0xf0 ? 3 : lead >= 0xf0 && lead < 0xf8 ? 4 : 0;
    let point = length === 1 ? lead : lead & (0x7f >> length);
    let whole = length > 0 && i + length <= bytes.length;
    for (let k = 1; whole && k < length; k++) {
      if ((bytes[i + k] & 0xc0) !== 0x80) whole = false;
      else point = (point << 6) | (bytes[i + k] & 0x3f);
    }
    if (!whole || point > 0x10ffff || (point >= 0xd800 && point < 0xe000)) {
      out += run.slice(i * 3, i * 3 + 3);
      i++;
      continue;
    }
    out += String.fromCodePoint(point);
    i += length;
  }
  return out;
}

/** `%XX` escapes decoded (decodedRun), again while that changes anything, at most DECODE_PASSES
 * times; any other `%` stays as it is. */
export function percentDecoded(text: string): string {
  for (let pass = 0; pass < DECODE_PASSES && text.includes("%"); pass++) {
    const next = text.replace(/(?:%[0-9a-fA-F]{2})+/g, decodedRun);
    if (next === text) break;
    text = next;
  }
  return text;
}

/** What a server reads of `text` that has a NUL in it: C code stops there (`/checkout%00.html`
 * is `/checkout`). */
function beforeNul(text: string): string {
  const nul = text.indexOf("\0");
  return nul < 0 ? text : text.slice(0, nul);
}

/** Trimmed of spaces, tabs and line breaks at both ends, without a regular expression. */
function trimmed(text: string): string {
  const blank = (c: string) => c === " " || c === "\t" || c === "\n" || c === "\r" || c === "\f" || c === "\v";
  let start = 0;
  let end = text.length;
  while (start < end && blank(text[start])) start++;
  while (end > start && blank(text[end - 1])) end--;
  return text.slice(start, end);
}

/** A query name or value as a lenient server reads it: `+` is a space, escapes decoded, cut at a
 * NUL, no surrounding white space, lower case. */
function readParam(text: string): string {
  return trimmed(beforeNul(lenientText(text.replaceAll("+", " ")))).toLowerCase();
}

/** Escapes decoded and compatibility forms folded (NFKC: `ｃ` is `c`, `．` is `.`, `／` is `/`),
 * as servers that map to ASCII "best fit" read them. */
function lenientText(text: string): string {
  const decoded = percentDecoded(text);
  return /[^\x00-\x7f]/.test(decoded) ? decoded.normalize("NFKC") : decoded;
}

/** A query name read leniently, as PHP and others read an array's (`page[]`, `page[0]`,
 * `page[x]` are `page`), with PHP's `_` for a `.` or a space (`my.page` is `my_page`). */
function readName(text: string): string {
  let name = readParam(text);
  const bracket = name.indexOf("[");
  if (bracket > 0 && name.endsWith("]")) name = name.slice(0, bracket);
  return name.replaceAll(".", "_").replaceAll(" ", "_");
}

/** The extensions of server-side scripts, which servers run with the rest of the path after
 * them as "path info" (`/index.php/x/y` runs `/index.php`). */
const SCRIPT_EXTENSIONS = new Set([
  "php", "php3", "php4", "php5", "php7", "php8", "phtml", "phar", "asp", "aspx", "ashx", "asmx", "axd", "jsp", "jspx",
  "do", "action", "cgi", "fcgi", "pl", "py", "rb", "cfm", "cfml", "shtml", "dll", "exe",
]);

/** The most script segments a deny reads a path as ending at (canonicalForms). A constant of the
 * format, as DECODE_PASSES is, not a setting: it keeps the check linear, and no server may
 * loosen how customers' browsers read addresses. A server runs the first script on the path. */
export const MAX_SCRIPT_PREFIXES = 3;

/**
 * The path's segments as a lenient web server reads them, so that a page rule names a page
 * however its address is spelled: escapes decoded (`/%63heckout`, `/%2563heckout`, the overlong
 * `%c0%af`), compatibility forms folded (`/ｃheckout`, `．．`), cut at a NUL, `;` parameters of
 * each segment dropped (`/checkout;jsessionid=1`), empty segments (`//checkout`), `.` and `..`
 * resolved (also where they were escaped as `%2f`), trailing dots and spaces of a segment dropped
 * (`/checkout.`), lower case (`/Checkout`). Patterns are read the same way (their `*` is kept).
 * Linear in the path.
 */
function canonicalSegments(path: string): string[] {
  const segments: string[] = [];
  for (const raw of beforeNul(lenientText(path)).replaceAll("\\", "/").split("/")) {
    const segment = raw.split(";", 1)[0];
    if (segment === "" || segment === ".") continue;
    if (segment === "..") {
      segments.pop();
      continue;
    }
    let end = segment.length; // trailing dots and spaces, without a regular expression's backtracking
    while (end > 0 && (segment[end - 1] === "." || segment[end - 1] === " ")) end--;
    if (end > 0) segments.push(segment.slice(0, end).toLowerCase());
  }
  return segments;
}

/** canonicalSegments as a path: no trailing slash (`/checkout/` is `/checkout`). */
function canonicalPath(path: string): string {
  return `/${canonicalSegments(path).join("/")}`;
}

/** A path read leniently, with and without a trailing slash (`/help/` is `/help` and `/help/`);
 * with `scripts`, also each script the path runs (`/index.php/x` runs `/index.php`), at most
 * MAX_SCRIPT_PREFIXES of them. */
function canonicalForms(path: string, scripts = false): string[] {
  const segments = canonicalSegments(path);
  const path2 = `/${segments.join("/")}`;
  const forms = path2 === "/" ? [path2] : [path2, `${path2}/`];
  if (!scripts) return forms;
  let found = 0;
  for (let i = 0; i < segments.length - 1 && found < MAX_SCRIPT_PREFIXES; i++) {
    const dot = segments[i].lastIndexOf(".");
    if (dot < 0 || !SCRIPT_EXTENSIONS.has(segments[i].slice(dot + 1))) continue;
    found++;
    const script = `/${segments.slice(0, i + 1).join("/")}`;
    forms.push(script, `${script}/`);
  }
  return forms;
}

/** Whether the path has a NUL once decoded: servers differ in whether they stop there, so no
 * allow names such a page. */
function hasNul(path: string): boolean {
  return percentDecoded(path).includes("\0");
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

/** A pattern's origin and path read like canonicalPath reads a page's path (its origin,
 * canonicalOrigin). */
function canonicalMain(main: string): string {
  if (main.startsWith("/")) return canonicalPath(main);
  const pathStart = main.indexOf("/", main.indexOf("://") + 3);
  if (pathStart < 0) return canonicalOrigin(main);
  return canonicalOrigin(main.slice(0, pathStart)) + canonicalPath(main.slice(pathStart));
}

/** `text` split at the first `separator`: before it, and after it (null: there is none). */
function splitOnce(text: string, separator: string): [string, string | null] {
  const at = text.indexOf(separator);
  return at < 0 ? [text, null] : [text.slice(0, at), text.slice(at + 1)];
}

/** A fragment's route: no leading `!`, a leading `/`; and the route's own query. A fragment of
 * parameters (`#tab=billing`, an OAuth answer's `#access_token=…&state=…`: no `/` or `!` first, a
 * `=` before any `?`) is the route `/` with that query, not a path to read (its values are named
 * only as query conditions, which a policy from the server names only whole). */
function routeOf(fragment: string): [string, string | null] {
  // A router that reads the fragment decoded (as some browsers gave it) reads `%21` as `!`.
  if (fragment.startsWith("%21")) fragment = `!${fragment.slice(3)}`;
  const bang = fragment.startsWith("!");
  const [path, query] = splitOnce(bang ? fragment.slice(1) : fragment, "?");
  if (!bang && !path.startsWith("/") && path.includes("=")) return ["/", fragment];
  return [path.startsWith("/") ? path : `/${path}`, query];
}

/** A pattern's query conditions, or why they are malformed. */
function conditions(query: string | null): Condition[] | string {
  if (query === null) return [];
  if (query === "") return "nothing after ? (name a query parameter: ?page=checkout)";
  const parts = query.split("&");
  if (parts.length > MAX_PATTERN_PARAMETERS) return `at most ${MAX_PATTERN_PARAMETERS} query parameters`;
  const found: Condition[] = [];
  for (const part of parts) {
    if (part === "") return "an empty query parameter (nothing between & and &)";
    const [name, value] = splitOnce(part, "=");
    if (readName(name) === "") return `a query parameter without a name: ${part}`;
    if (name.includes("*")) return `a query parameter's name cannot have *: ${part}`;
    found.push({
      name, lenientName: readName(name), value, lenientValue: value === null ? null : readParam(value),
    });
  }
  return found;
}

/** A pattern read into its parts, or why it is malformed. */
function parsePattern(pattern: string): Pattern | string {
  const [beforeRoute, route] = splitOnce(pattern, "#");
  const [main, query] = splitOnce(beforeRoute, "?");
  if (!main.startsWith("/") && !/^https?:\/\//.test(main)) {
    return "must start with / (a path) or http(s):// (origin and path)";
  }
  // Patterns that would name no page at all: refused, so that no admin believes a page private
  // that is not (the same checks in src/tandem/policy.py).
  for (let i = 0; i < pattern.length; i++) {
    const code = pattern.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return "a control character, which no address has (write it escaped: %0A)";
  }
  if (!main.startsWith("/") && !main.includes("*") && !main.slice(main.indexOf("://") + 3).includes("/")) {
    return "an origin without a path names no page: add / (its home page) or /* (all its pages)";
  }
  const mainQuery = conditions(query);
  if (typeof mainQuery === "string") return mainQuery;
  let routePart: Pattern["route"] = null;
  if (route !== null) {
    const [routePath, routeQuery] = routeOf(route);
    const found = conditions(routeQuery);
    if (typeof found === "string") return `in the route: ${found}`;
    routePart = { path: routePath, query: found };
  }
  return { main, onOrigin: !main.startsWith("/"), query: mainQuery, route: routePart };
}

/** Why a page pattern is malformed (null: it is not). The server says the same
 * (src/tandem/policy.py, page_pattern_problem). */
export function pagePatternProblem(pattern: string): string | null {
  const parsed = parsePattern(pattern);
  return typeof parsed === "string" ? parsed : null;
}

/**
 * Why a pattern may not come from the server (the organisation's, a site's or a team's policy;
 * null: it may). Its rules are chosen before the customer's Allow and the server sees sharing
 * pause (docs/threat-model.md, "Policies are fixed at Allow"): a pause answers whether the page
 * matches. A query value with a `*` in it (`?token=a*`) would ask for a token's or an e-mail
 * address's first characters, page after page, so a server's pattern names a value whole, or
 * any value (`*` alone, or the name alone). The src/tandem/policy.py check says the same.
 */
export function serverPagePatternProblem(pattern: string): string | null {
  const found = parsePattern(pattern);
  if (typeof found === "string") return found;
  for (const cond of [...found.query, ...(found.route?.query ?? [])]) {
    if (cond.value !== null && cond.value !== "*" && cond.value.includes("*")) {
      return `a policy from the server may name a query parameter's value only whole (no * in it, or * alone): ${cond.name}=${cond.value}`;
    }
  }
  return null;
}

const parsedPatterns = new Map<string, Pattern | null>();

/** Parsed once: checks run every 300 ms and on every recorded event. A malformed pattern (the
 * policy's validation refuses it) names every page. */
function parsed(pattern: string): Pattern | null {
  let found = parsedPatterns.get(pattern);
  if (found === undefined) {
    const result = parsePattern(pattern);
    found = typeof result === "string" ? null : result;
    if (parsedPatterns.size > 2000) parsedPatterns.clear();
    parsedPatterns.set(pattern, found);
  }
  return found;
}

interface Param { name: string; lenientName: string; value: string; lenientValue: string }

/** A query's parameters (without its `?`), split at `&` and, as some servers also do, at `;`. */
function paramsOf(query: string | null): Param[] {
  if (!query) return [];
  const found: Param[] = [];
  const add = (part: string) => {
    if (part === "") return;
    const [name, value] = splitOnce(part, "=");
    found.push({ name, lenientName: readName(name), value: value ?? "", lenientValue: readParam(value ?? "") });
  };
  for (const part of query.split("&")) {
    add(part);
    if (part.includes(";")) for (const piece of part.split(";")) add(piece);
  }
  return found;
}

/** Whether the parameters meet the conditions. Deny (lenient): some parameter of that name has a
 * value the condition names as written or as read leniently. Allow (strict): the name is there as
 * written, and every value of every spelling of the name is named both ways. */
function meets(conds: Condition[], params: Param[], strict: boolean): boolean {
  return conds.every((cond) => {
    const same = params.filter((p) => p.lenientName === cond.lenientName);
    const valueNamed = (p: Param, both: boolean) => {
      if (cond.value === null || cond.lenientValue === null) return true;
      const written = globMatches(cond.value, p.value);
      const lenient = globMatches(cond.lenientValue, p.lenientValue);
      return both ? written && lenient : written || lenient;
    };
    if (!strict) return same.some((p) => valueNamed(p, false));
    return params.some((p) => p.name === cond.name) && same.every((p) => valueNamed(p, true));
  });
}

/** Whether the glob `main` (origin and path, or path) names `path` of the page (`suffix`, a
 * route appended to the subject, as written and as read leniently) as written, or as read
 * leniently; strict: both. */
function namesPath(
  pattern: Pattern, main: string, origin: string, path: string, strict: boolean,
  suffix?: { written: string; lenient: string },
): boolean {
  const written = globMatches(main, (pattern.onOrigin ? origin : "") + path + (suffix?.written ?? ""));
  if (strict && (!written || hasNul(path))) return false;
  if (!strict && written) return true;
  // A deny names the page on either scheme (a host that serves http too serves the same pages).
  const scheme = (text: string) => !strict && text.startsWith("http://") ? `https://${text.slice(7)}` : text;
  const lenient = scheme(canonicalMain(main));
  const lenientOrigin = pattern.onOrigin ? scheme(canonicalOrigin(origin)) : "";
  // A deny also names the page of each script the path runs (`/index.php/x` is `/index.php`).
  return canonicalForms(path, !strict).some((form) => globMatches(lenient, lenientOrigin + form + (suffix?.lenient ?? "")));
}

/** The route pattern names the page's route (`/` without one) as written or leniently; strict: both. */
function namesRoute(glob: string, route: string, strict: boolean): boolean {
  const written = globMatches(glob, route);
  if (strict && (!written || hasNul(route))) return false;
  if (!strict && written) return true;
  const lenient = canonicalPath(glob);
  return canonicalForms(route).some((form) => globMatches(lenient, form));
}

/** What a page shows: its path and query, and its fragment read as a route. */
interface Shown {
  origin: string;
  path: string;
  query: Param[];
  /** The fragment's route (`/` for none) and its query; hasRoute: there is a fragment. */
  route: string;
  routeQuery: Param[];
  hasRoute: boolean;
}

function shown(url: URL): Shown {
  const fragment = url.hash.slice(1);
  const [route, routeQuery] = fragment ? routeOf(fragment) : ["/", null];
  return {
    origin: url.origin, path: url.pathname, query: paramsOf(url.search.slice(1)),
    route, routeQuery: paramsOf(routeQuery), hasRoute: fragment !== "",
  };
}

/** A `deny` pattern names the page under any spelling of any path it shows. */
function denies(pattern: Pattern, page: Shown): boolean {
  if (pattern.route) {
    return namesPath(pattern, pattern.main, page.origin, page.path, false) && meets(pattern.query, page.query, false)
      && namesRoute(pattern.route.path, page.route, false) && meets(pattern.route.query, page.routeQuery, false);
  }
  if (namesPath(pattern, pattern.main, page.origin, page.path, false)
    && meets(pattern.query, [...page.query, ...page.routeQuery], false)) return true;
  return page.hasRoute && namesPath(pattern, pattern.main, page.origin, page.route, false)
    && meets(pattern.query, page.routeQuery, false);
}

/** An `allow` pattern names the page as the customer sees it, as written and as read leniently. */
function allows(pattern: Pattern, page: Shown): boolean {
  if (pattern.route) {
    return namesPath(pattern, pattern.main, page.origin, page.path, true) && meets(pattern.query, page.query, true)
      && namesRoute(pattern.route.path, page.route, true) && meets(pattern.route.query, page.routeQuery, true);
  }
  // A page with a fragment may show a route: the pattern must name it too (`/app/*` does).
  const suffix = page.hasRoute ? { written: `#${page.route}`, lenient: `#${canonicalPath(page.route)}` } : undefined;
  return namesPath(pattern, pattern.main, page.origin, page.path, true, suffix)
    && meets(pattern.query, page.query, true);
}

/** Whether page rules keep `url` private: a `deny` pattern names it, or there is an `allow`
 * list it is not on. */
export function pageRulesKeepPrivate(url: URL, allow: string[], deny: string[]): boolean {
  const page = shown(url);
  if (deny.some((p) => {
    const pattern = parsed(p);
    return pattern === null || denies(pattern, page);
  })) return true;
  return allow.length > 0 && !allow.some((p) => {
    const pattern = parsed(p);
    return pattern !== null && allows(pattern, page);
  });
}
