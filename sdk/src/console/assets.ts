/**
 * The mirror sends nothing to the network (issue 14, item 7). The customer's page is hostile
 * content in the agent's (and an auditor's) browser: an image, a CSS background, a font or a
 * `<link rel=prefetch>` in it would make the viewer's browser fetch any address (a tracking pixel,
 * a request to this server with the agent's cookie). Before rrweb replays an event, every address
 * it carries is neutralised unless it is `data:` or `blob:` (content that came inside the
 * encrypted channel: images the customer's SDK could read are inlined there, `rr_dataURL`);
 * resource hints are dropped. The mirror's own CSP (MIRROR_CSP: nothing from any server), the
 * console's (`img-src`/`font-src` without `*`) and the API's
 * Fetch-Metadata check stop whatever slips through.
 *
 * What the customer's browser carried (`asset` payloads, ../share/assets.ts) is kept in an
 * AssetStore: checked again here (type by content, sizes, counts; a hostile page may tamper with
 * the SDK), turned into `blob:` URLs of this console (SVG into `data:` URLs, which have no origin
 * if opened on their own), and the addresses in events that name a carried asset are rewritten
 * to it before they are neutralised.
 */

import {
  type AssetPayload, MAX_ASSET_BYTES, MAX_SESSION_ASSET_BYTES, MAX_SESSION_ASSETS, cssUrls, decodeBase64,
  looksLike,
} from "../shared/assets.ts";
import {
  ADOPTED_STYLE_SHEET, DRAG, FONT, FULL_SNAPSHOT, INCREMENTAL_SNAPSHOT, MOUSE_MOVE, MUTATION, SERIALIZED_ELEMENT,
  SERIALIZED_TEXT, STYLE_DECLARATION, STYLE_SHEET_RULE, TOUCH_MOVE,
} from "../shared/rrweb-events.ts";
import { MAX_MIRROR_DEPTH, MAX_MIRROR_NODES, type StyleBudget } from "./budget.ts";

/** Where carried assets are found: an address as the events write it → a local URL. */
export interface AssetLookup {
  resolve(url: string): string | undefined;
  /** A carried stylesheet's text (already rewritten and neutralised), for a `<link>`. */
  stylesheet(url: string): string | undefined;
}

export class AssetStore implements AssetLookup {
  private readonly local = new Map<string, string>();
  private readonly sheets = new Map<string, string>();
  private readonly created: string[] = [];
  private bytes = 0;

  constructor(private readonly makeUrl: (blob: Blob) => string = (blob) => URL.createObjectURL(blob),
    private readonly revokeUrl: (url: string) => void = (url) => URL.revokeObjectURL(url)) {}

  get size(): number {
    return this.local.size + this.sheets.size;
  }

  /** Keep one carried asset; false (and nothing kept) if it breaks a rule. */
  add(asset: AssetPayload): boolean {
    if (this.local.has(asset.url) || this.sheets.has(asset.url)) return true;
    if (this.size >= MAX_SESSION_ASSETS) return false;
    let bytes: Uint8Array;
    try {
      bytes = decodeBase64(asset.data);
    } catch {
      return false;
    }
    if (bytes.length > MAX_ASSET_BYTES || this.bytes + bytes.length > MAX_SESSION_ASSET_BYTES) return false;
    if (!looksLike(asset.type, bytes)) return false;
    this.bytes += bytes.length;
    if (asset.type === "text/css") {
      const text = new TextDecoder().decode(bytes);
      this.sheets.set(asset.url, neutralizeCss(absoluteCss(text, asset.url), this));
    } else if (asset.type === "image/svg+xml") {
      this.local.set(asset.url, `data:image/svg+xml;base64,${asset.data}`);
    } else {
      const url = this.makeUrl(new Blob([bytes as BlobPart], { type: asset.type }));
      this.created.push(url);
      this.local.set(asset.url, url);
    }
    return true;
  }

  resolve(url: string): string | undefined {
    return this.local.get(url.trim());
  }

  stylesheet(url: string): string | undefined {
    return this.sheets.get(url.trim());
  }

  /** The session ended: the blobs are released. */
  dispose(): void {
    for (const url of this.created) this.revokeUrl(url);
    this.created.length = 0;
    this.local.clear();
    this.sheets.clear();
    this.bytes = 0;
  }
}

/** A carried stylesheet's relative `url()`s made absolute against its own address. */
function absoluteCss(css: string, base: string): string {
  return css.replace(CSS_ADDRESS, (whole, fn: string, _space: string, _q: string, address: string) => {
    if (fn.toLowerCase() !== "url") return whole;
    try {
      return /^\s*(data|blob):/i.test(address) ? whole : `url("${new URL(address.trim(), base).href}")`;
    } catch {
      return "none";
    }
  });
}

export { cssUrls };

/** Attributes whose value the browser fetches (or may), on any element (`attributionsrc`: Chromium's
 * Attribution Reporting makes a request of its own to it, beside an image's or a link's). */
const FETCHED = new Set([
  "src", "srcset", "poster", "background", "data", "xlink:href", "imagesrcset", "lowsrc", "dynsrc",
  "ping", "manifest", "codebase", "archive", "longdesc", "action", "formaction", "itemtype", "attributionsrc",
]);
/** Attributes whose value is an address a browser follows or fetches (not words: an `alt` may
 * well read "JavaScript: the good parts"). */
const ADDRESSES = new Set([...FETCHED, "href", "to", "from", "values"]);
/** `href` fetches on these (on `a` and `area` it only navigates, which the sandbox forbids). */
const HREF_FETCHES = new Set(["link", "image", "use", "feimage", "script", "base"]);
/** SVG's presentation attributes that name an element by `url(#id)`; the browser fetches
 * `fill="url(https://…#p)"`, `mask`, `filter`, `clip-path` and markers from anywhere too. */
const SVG_REFERENCES = new Set([
  "fill", "stroke", "filter", "mask", "clip-path", "marker", "marker-start", "marker-mid", "marker-end",
]);
/** Attributes whose value is CSS that may hold a `url()`. */
const CSS_VALUED = new Set(["style", "_csstext", "cursor", ...SVG_REFERENCES]);
/** Dropped on every element: a frame's `srcdoc` is a whole document that nothing here would
 * neutralise (its images, styles and frames load as they are; rrweb carries a same-origin
 * frame's content as nodes of its own); `xml:base` sets the base its element's (and its
 * children's) relative addresses resolve against, which the neutraliser does not follow. */
const DROPPED = new Set(["srcdoc", "xml:base"]);
/** SMIL animations set another attribute of their target to these values. */
const ANIMATIONS = new Set(["set", "animate", "animatemotion", "animatetransform", "animatecolor"]);
const ANIMATED_VALUES = ["to", "from", "by", "values"];

/** Only content that is already here. */
function local(url: string): boolean {
  return /^\s*(data|blob):/i.test(url);
}

/** An element of this same document (`#icon`): SVG's references from these elements never fetch
 * (an `<image href="#x">` would: the mirror's address is the console's). */
const SAME_DOCUMENT_REFS = new Set([
  "use", "feimage", "pattern", "lineargradient", "radialgradient", "filter", "textpath", "mpath", "tref",
]);
function sameDocument(url: string): boolean {
  return /^\s*#/.test(url);
}

/** A script in an address: what a browser runs when it follows it (it ignores the ASCII
 * whitespace and controls a page may hide the scheme with: `java\tscript:`). */
function scripted(url: string): boolean {
  return /^(javascript|vbscript):/i.test(url.replace(/[\u0000-\u0020]/g, ""));
}

/** A refresh's `content` ("5", "0; url=…", "0 url=…": the browser reads any that starts with a
 * number, its address after a `;`, a `,` or a space). */
const REFRESH = /^\s*[\d.]/;

/** Elements whose address is a document of its own (its images, styles and frames load as they
 * are: nothing here neutralises a `data:` page), and a `<link>`, whose address is a stylesheet. */
const DOCUMENT_HOLDERS = new Set(["iframe", "frame", "object", "embed", "portal", "fencedframe", "link"]);

/** Not a `data:` address, or one of content that shows (a picture, a sound, a font), not a page
 * or a stylesheet. An SVG picture stays (pages change an image's to one), though on a frame it
 * is a document: the mirror's policy and the sandbox are left to stop that. */
function shownData(url: string): boolean {
  return !/^\s*data:/i.test(url) || /^\s*data:\s*(image|audio|video|font)\//i.test(url);
}

/** Whether an animation that sets `attribute` could make its target fetch. */
function animatesAnAddress(attribute: string): boolean {
  const name = attribute.trim().toLowerCase();
  return name === "href" || FETCHED.has(name) || CSS_VALUED.has(name);
}

/**
 * CSS with every fetch broken: `url(…)` (escaped spellings too), `image-set(…)`, `image(…)`,
 * `src(…)` and `@import` lose their address unless it is `data:`/`blob:`. With `fragments`
 * (an SVG presentation attribute), `url(#…)` stays: it names an element of the same document
 * (a gradient, a filter). Elsewhere it does not (a `background-image: url(#x)` fetches the
 * mirror's address, the console's). A broken declaration
 * is dropped by the CSS parser; the rest of the style stays.
 */
export function neutralizeCss(css: string, assets?: AssetLookup, fragments = false): string {
  return breakFetches(unescapeCss(css), assets, fragments);
}

/**
 * CSS with its escapes decoded, so that `\75 rl(` or `u\rl(` cannot hide a `url(` from the
 * patterns (CSS escapes in an address are rare in real pages). Decoded once, as the browser
 * decodes (its newlines first, then each escape in one pass from the left): what an escape gives
 * is a character, never the start of another escape, so a backslash it gives (`\5c`, `\\`) is
 * written back escaped (`\\`, read as one backslash; see `written`). Decoded in two passes, or a decoded
 * backslash written bare, `\5c 75 rl(` and `u\r\\l(` (which the browser reads as no function) came
 * out as `\75 rl(` and `ur\l(`, which it reads as `url(`.
 */
function unescapeCss(css: string): string {
  return css.replace(/\r\n?|\f/g, "\n").replace(/\\(?:([0-9a-fA-F]{1,6})[ \t\n]?|([^\n]))/g, (_, hex?: string, other?: string) => {
    let decoded = other ?? "";
    if (hex !== undefined) {
      const code = parseInt(hex, 16);
      decoded = code > 0 && code <= 0x10ffff && (code < 0xd800 || code > 0xdfff) ? String.fromCodePoint(code) : "\ufffd";
    }
    return written(decoded);
  });
}

/**
 * A decoded character as written back: as itself, but a backslash, a quote or a control (a line
 * break, a tab), which are written escaped again (`\\`, `\"`, `\a `) so that they mean in the
 * neutralised CSS what they meant escaped: a backslash that starts no escape, a quote or a line
 * break that ends no string (`content:"\""` and `"one\A two"` decoded bare were a string left
 * open, its declaration and the rules after it in its block lost). None of these escapes spells a
 * letter or a bracket, so none hides a `url(` from the patterns; and decoding them again gives
 * the same text (a carried sheet is neutralised twice: as a sheet and as its `<link>`'s).
 */
function written(decoded: string): string {
  if (decoded === "\\" || decoded === '"' || decoded === "'") return `\\${decoded}`;
  const code = decoded.codePointAt(0) ?? 0x20;
  return code < 0x20 || code === 0x7f ? `\\${code.toString(16)} ` : decoded;
}

/**
 * `url(…)` or `src(…)` with the address in it (group 4), quoted or not. Written so that the regular
 * expression engine never tries a character in two places: `(?=(x*))\n` takes a run whole (as an
 * atomic group would), and the address holds no `(`, so the look from one `url(` stops at the
 * next. As `\(\s*(['"]?)([^)'"]*)\2\s*\)` it tried every split of a run of spaces between its
 * three quantifiers, at every `url(`: a hostile page's `url(` followed by 4,000 spaces (in a
 * `<style>`, an attribute, a font's source) kept the agent's tab busy for 155 s. An address with a
 * `(` (a data: SVG's `rgb(…)`) is left to the pattern that breaks every `url(` but data:'s.
 */
const CSS_ADDRESS = /\b(url|src)\((?=(\s*))\2(['"]?)(?=([^()'"]*))\4\3\s*\)/gi;

function breakFetches(plain: string, assets: AssetLookup | undefined, fragments: boolean): string {
  return plain
    .replace(/@import[^;]*;?/gi, "")
    .replace(CSS_ADDRESS, (whole, fn: string, _space: string, _q: string, address: string) => {
      if (local(address) || (fragments && fn.toLowerCase() === "url" && sameDocument(address))) return whole;
      const carried = fn.toLowerCase() === "url" ? assets?.resolve(address) : undefined;
      return carried ? `url("${carried}")` : "none";
    })
    // What the pattern above could not take apart (a quoted `)`...): broken, not fetched.
    .replace(fragments ? /\b(url|src)\((?=(\s*))\2(?!['"]?\s*(?:data:|blob:|#))/gi : /\b(url|src)\((?=(\s*))\2(?!['"]?\s*(?:data|blob):)/gi,
      "blocked-$1(")
    .replace(/\b((?:-webkit-)?image-set|image|cross-fade|element)\(/gi, "blocked-$1(");
}

/** `<link>` kinds that fetch ahead of need (or connect): dropped whole. */
const HINTS = /\b(prefetch|preload|modulepreload|prerender|dns-prefetch|preconnect|next|icon|apple-touch-icon|manifest|search|pingback)\b/i;

/**
 * An attribute's value as the neutraliser looks at it, as rrweb's replayer would write it, or
 * undefined to drop it. rrweb sends strings, `true` (a boolean attribute), `null` and, in its own
 * `rr_` attributes, numbers and booleans (a medium's time, muted); its replayer writes any other
 * value of a node it builds with `toString()`, so `["https://…"]` (an array) or `{}` wrote an
 * address or CSS the checks of strings never saw (`src`, `style`, `rr_dataURL`), and `7` or
 * `false` an address relative to the console's. A number is written as a string here, so that the
 * checks see it, `false` dropped from an address or CSS (kept elsewhere: rrweb skips an option's),
 * anything else dropped (no honest page sends them). In
 * a mutation (`inMutation`), a `style` may be an object of properties (checked by the caller).
 */
function writtenValue(name: string, value: unknown, inMutation: boolean): unknown {
  if (typeof value === "string" || value === null || value === true) return value;
  if (name.startsWith("rr_") && (typeof value === "number" || typeof value === "boolean")) return value;
  // rrweb skips an option's `selected: false`; elsewhere it writes "false", an address in an address.
  if (value === false) return ADDRESSES.has(name.toLowerCase()) || CSS_VALUED.has(name.toLowerCase()) ? undefined : value;
  if (typeof value === "number") return String(value);
  if (inMutation && name === "style" && typeof value === "object") return value;
  return undefined;
}

/** `holder`: in a mutation (`tag` ""), the element is known to hold a document (a frame, an
 * object: DOCUMENT_HOLDERS), from when it was added. */
function neutralizeAttributes(tag: string, attrs: Record<string, unknown>, assets?: AssetLookup, holder = false): void {
  // A stylesheet rrweb could not inline, carried whole: rrweb builds a <style> from `_cssText`.
  if (tag === "link" && typeof attrs.href === "string" && typeof attrs._cssText !== "string") {
    const sheet = assets?.stylesheet(attrs.href);
    if (sheet !== undefined) attrs._cssText = sheet;
  }
  for (const [name, given] of Object.entries(attrs)) {
    const key = name.toLowerCase();
    const value = writtenValue(name, given, tag === "");
    if (value === undefined) {
      delete attrs[name];
      continue;
    }
    attrs[name] = value;
    // Event handlers and script addresses never run in the script-less sandbox; they are not
    // replayed either, so that no change of the sandbox could ever run them.
    if (DROPPED.has(key) || key.startsWith("on") || (ADDRESSES.has(key) && typeof value === "string" && scripted(value))) {
      delete attrs[name];
      continue;
    }
    if (typeof value !== "string") continue;
    if (CSS_VALUED.has(key)) attrs[name] = neutralizeCss(value, assets, SVG_REFERENCES.has(key));
    else if (FETCHED.has(key) || (key === "href" && HREF_FETCHES.has(tag))) {
      if (key.endsWith("srcset")) {
        const carried = value.split(",").map((candidate) => {
          const [address, ...descriptor] = candidate.trim().split(/\s+/);
          const resolved = address ? assets?.resolve(address) : undefined;
          return resolved ? [resolved, ...descriptor].join(" ") : null;
        }).filter((candidate): candidate is string => candidate !== null);
        if (carried.length) attrs[name] = carried.join(", ");
        else delete attrs[name];
        continue;
      }
      if ((key === "href" || key === "xlink:href") && SAME_DOCUMENT_REFS.has(tag) && sameDocument(value)) continue;
      // A page or a stylesheet inside an address: dropped where it would load as one, and in a
      // mutation (whose element is not said) unless it only shows.
      if (local(value) && (DOCUMENT_HOLDERS.has(tag) || holder || (tag === "" && !shownData(value)))) {
        delete attrs[name];
        continue;
      }
      const carried = local(value) ? undefined : assets?.resolve(value);
      if (carried && (key === "src" || key === "poster" || key === "href" || key === "xlink:href")) attrs[name] = carried;
      else if (!local(value)) delete attrs[name];
    }
  }
  // rrweb sets an image's (or a canvas's image's) `src` to it, whatever it is (a number too).
  if ("rr_dataURL" in attrs && !(typeof attrs.rr_dataURL === "string" && local(attrs.rr_dataURL))) delete attrs.rr_dataURL;
  if (tag === "link" && typeof attrs.rel === "string" && HINTS.test(attrs.rel)) {
    attrs.rel = "";
    delete attrs.href;
  }
  // A refresh: its content goes, whatever the case of the names (the browser lowercases an HTML
  // element's attribute names as rrweb sets them: `HTTP-EQUIV`/`Content` are a refresh too).
  if (tag === "meta" && Object.keys(attrs).some((name) => name.toLowerCase() === "http-equiv")) {
    for (const name of Object.keys(attrs)) if (name.toLowerCase() === "content") delete attrs[name];
  }
  // A mutation does not say whose attributes change: no pragma is set, no refresh's content.
  if (tag === "") {
    for (const name of Object.keys(attrs)) {
      const key = name.toLowerCase();
      const value = attrs[name];
      if (key === "http-equiv" || (key === "content" && typeof value === "string" && REFRESH.test(value))) delete attrs[name];
    }
  }
  // An animation of an address (`<set attributeName="href" to="https://…">`) fetches what it
  // sets; a change of attributeName alone (a mutation: no tag) may aim one that was harmless.
  const animated = Object.keys(attrs).find((name) => name.toLowerCase() === "attributename");
  if (animated !== undefined && typeof attrs[animated] === "string" && animatesAnAddress(attrs[animated])) {
    if (ANIMATIONS.has(tag)) for (const name of Object.keys(attrs)) {
      if (ANIMATED_VALUES.includes(name.toLowerCase())) delete attrs[name];
    }
    else if (tag === "") delete attrs[animated];
  }
  // A mutation does not say whose values change: an animation keeps the values it was built with.
  if (tag === "") for (const name of Object.keys(attrs)) if (ANIMATED_VALUES.includes(name.toLowerCase())) delete attrs[name];
}

interface Serialized {
  type?: unknown; id?: unknown; tagName?: unknown; attributes?: unknown; childNodes?: unknown; textContent?: unknown; isStyle?: unknown;
}

/** Elements whose text the browser reads as CSS: `<style>` (HTML's and SVG's) and `<link>`, which
 * rrweb builds into a `<style>` when it carries the sheet (`_cssText`). By the name's local part:
 * rrweb builds an SVG element with `createElementNS`, so `x:style` is an SVG `<style>` (prefix
 * `x`, local name `style`) whose text the browser applies as CSS. */
function holdsCss(node: Serialized): boolean {
  if (node.type !== SERIALIZED_ELEMENT || typeof node.tagName !== "string") return false;
  const tag = localTag(node.tagName);
  return tag === "style" || tag === "link";
}

/** An element's name as the browser tells elements apart: lowercased, without a prefix (rrweb
 * builds an SVG element with `createElementNS`, so `x:image` is an SVG `<image>`; an HTML one
 * named so is no element the browser knows, and loses no more than an `<image>` would). */
function localTag(tagName: string): string {
  const tag = tagName.toLowerCase();
  return tag.slice(tag.lastIndexOf(":") + 1);
}

/** Put before every text that goes into an element whose text is CSS (and every change of one):
 * another text may come before it (even before the first: a mutation may add one before it), and
 * the browser reads a `<style>`'s texts as one, so two that each name nothing
 * (`p{background:u` and `rl(https://…)}`, `@imp` and `ort "…"`, a backslash and `75 rl(…)`)
 * would name an address together. A comment ends a word (or a comment the text before left
 * open); after a backslash, what is left of it (two stars and a slash) still does; inside a
 * string it is text (and a string fetches only after a word the neutraliser breaks wherever it
 * stands). It changes no honest CSS.
 */
export const CSS_TEXT_SEPARATOR = "/**/";

/**
 * The ids of a page's elements whose text is CSS (`holdsCss`), and of the texts in them, from its
 * full snapshot on: a text a mutation adds to one of them is neutralised as CSS whatever rrweb's
 * `isStyle` flag says (the page's SDK sets the flag, and a hostile page leaves it off, so rrweb's
 * replayer takes the text as it is; its `url()`s then fetched from the agent's browser, but for
 * the mirror's own policy), and so is a change of such a text (`CSS_TEXT_SEPARATOR` before it).
 * A change of any other text is the page's text, shown as it is (`isPageText`), unless it may be
 * in such an element all the same: an id never placed as a text (a style element itself, whose
 * text rrweb's replayer replaces, or a node the events never showed), or a text once placed in
 * one since the snapshot (moved out by an add rrweb may not have made: a parent it never had).
 * One per mirror, given every event in the order rrweb applies them; a full snapshot starts
 * afresh (a new page's ids name other nodes). An id a page names again as another node stays in
 * (its text is then taken as CSS, which only such a page's own text pays for).
 */
export class StyleParents {
  private readonly ids = new Set<number>();
  private readonly texts = new Set<number>();
  /** Texts placed outside such elements only, since the snapshot. */
  private readonly pageTexts = new Set<number>();
  /** Texts placed in one at some time since the snapshot, and not certainly moved out since. */
  private readonly everCss = new Set<number>();
  /** Each node of the page by id: where it was last placed (its parent's id; null for the page's
   * root, NaN for no parent the events named), and an element's local tag name. */
  private readonly nodes = new Map<number, { parent: number | null; tag: string | null }>();
  /** The ids placed under each id (a removal takes them with it, as rrweb's replayer forgets the
   * ids of a removed node's subtree). */
  private readonly kids = new Map<number, Set<number>>();
  /** The ids rrweb's replayer certainly built where `nodes` says: a full snapshot's texts and
   * elements, and a mutation's only addition where `certainlyPlaced` (not the children its event
   * nests in it: the replayer builds an addition without them, skipChild), of a name it can
   * build. Whatever else a mutation adds may not be there (a rootId it does not hold, a name
   * createElement refuses, a parent that never came): no text is certainly moved under it. */
  private readonly built = new Set<number>();
  /** The ids of elements added as holding a document (DOCUMENT_HOLDERS) since the snapshot, kept
   * when the id is added again as another element (rrweb may not have made that add); beyond
   * MAX_MIRROR_NODES of them, every id is taken as one (`manyHolders`) until the next snapshot. */
  private readonly holders = new Set<number>();
  private manyHolders = false;
  /** About how many rules each style sheet holds (by `n<id>` of its element or `s<styleId>` of an
   * adopted one), for RULE_SHIFTS: `top`, its own (a top-level index shifts those after it), and
   * `all`, with those nested in its grouping rules (`@media`...: a nested index shifts those of its
   * group, at most all of them); counted from its texts' `{` (`ruleCount`) and the rules events add. */
  private readonly rules = new Map<string, RuleCount>();

  has(id: unknown): boolean {
    return typeof id === "number" && this.ids.has(id);
  }

  /** Whether `id` was a text in an element whose text is CSS. */
  hasText(id: unknown): boolean {
    return typeof id === "number" && this.texts.has(id);
  }

  /** Whether a change of `id` is page text, never CSS: a text placed outside every element whose
   * text is CSS, and never in one since the snapshot unless certainly moved out since (see
   * `certainlyPlaced`), under an id that names no such element. */
  isPageText(id: unknown): boolean {
    return typeof id === "number" && this.pageTexts.has(id) && !this.everCss.has(id) && !this.ids.has(id);
  }

  /** Whether `id` names an element that holds a document of its own (a frame, an object:
   * DOCUMENT_HOLDERS), as it was last added: a mutation of its attributes does not say its tag. */
  holdsDocument(id: unknown): boolean {
    return typeof id === "number" && (this.manyHolders || this.holders.has(id));
  }

  /** A node removed: its id is no page text until placed again (rrweb keeps a node whose removal
   * names a parent it never had, so only the safe side is forgotten: the sets stay bounded by the
   * page's texts, not by all it ever had), and no longer in the mirror (rrweb forgets its id and
   * those below it: `inMirror`). */
  removed(id: unknown): void {
    if (typeof id !== "number") return;
    this.pageTexts.delete(id);
    const stack = [id];
    while (stack.length) {
      const at = stack.pop() as number;
      const node = this.nodes.get(at);
      if (node && typeof node.parent === "number") this.kids.get(node.parent)?.delete(at);
      this.nodes.delete(at);
      this.built.delete(at);
      const below = this.kids.get(at);
      this.kids.delete(at);
      if (below) for (const kid of below) stack.push(kid);
    }
  }

  /** A full snapshot: the page's earlier elements are gone. */
  clear(): void {
    this.ids.clear();
    this.texts.clear();
    this.pageTexts.clear();
    this.everCss.clear();
    this.nodes.clear();
    this.kids.clear();
    this.built.clear();
    this.holders.clear();
    this.manyHolders = false;
    this.rules.clear();
  }

  /** Keep the CSS-holding elements of a serialized tree, and their texts; where each node is
   * (`parentId`: the root's, null for a page's root). A full snapshot's (`snapshot`) nodes are
   * built by rrweb's replayer; a mutation's are not yet known to be (`settle`). */
  learn(root: unknown, parentId: number | null = null, snapshot = false): void {
    const stack: [unknown, number | null][] = [[root, parentId]];
    while (stack.length) {
      const [item, parent] = stack.pop() as [unknown, number | null];
      const node = item as Serialized | null;
      if (!node || typeof node !== "object") continue;
      const id = typeof node.id === "number" ? node.id : NaN;
      const element = node.type === SERIALIZED_ELEMENT && typeof node.tagName === "string";
      if (!Number.isNaN(id)) {
        this.place(id, parent, element ? localTag(node.tagName as string) : null);
        if (snapshot) this.built.add(id);
        else this.built.delete(id);
      }
      const css = holdsCss(node);
      if (css && !Number.isNaN(id)) {
        this.ids.add(id);
        const cssText = (node.attributes as { _cssText?: unknown } | undefined)?._cssText;
        if (typeof cssText === "string") this.addRules(id, cssText);
      }
      if (!Array.isArray(node.childNodes)) continue;
      for (const child of node.childNodes as Serialized[]) {
        this.placeText(child, css);
        if (css && child && typeof child === "object" && typeof child.textContent === "string") this.addRules(id, child.textContent);
        stack.push([child, id]);
      }
    }
  }

  /** `id` placed under `parent` (its earlier place, if any, loses it). */
  private place(id: number, parent: number | null, tag: string | null): void {
    const before = this.nodes.get(id);
    if (before && typeof before.parent === "number" && before.parent !== parent) this.kids.get(before.parent)?.delete(id);
    this.nodes.set(id, { parent, tag });
    if (typeof parent === "number" && !Number.isNaN(parent)) {
      const siblings = this.kids.get(parent);
      if (siblings) siblings.add(id);
      else this.kids.set(parent, new Set([id]));
    }
    if (tag !== null && DOCUMENT_HOLDERS.has(tag) && !this.manyHolders) {
      this.holders.add(id);
      if (this.holders.size > MAX_MIRROR_NODES) {
        this.manyHolders = true;
        this.holders.clear();
      }
    }
  }

  /** A mutation's additions, learnt: its only one, where rrweb's replayer certainly places it and
   * can build it, is built (without the children its event nests in it). */
  settle(adds: { node?: unknown; parentId?: unknown; previousId?: unknown; nextId?: unknown }[]): void {
    const add = adds.length === 1 ? adds[0] : undefined;
    const id = (add?.node as Serialized | null | undefined)?.id;
    if (add && typeof id === "number" && buildable(add.node as Serialized) && this.certainlyPlaced(add, 1)) this.built.add(id);
  }

  /** Whether `id` is in the mirror as rrweb's replayer has it, as far as the events tell: placed
   * under a parent that is, up to the page's root, none removed since, each certainly built. */
  private inMirror(id: unknown): boolean {
    let at = id;
    for (let steps = 0; steps <= 2 * MAX_MIRROR_DEPTH; steps++) {
      const node = typeof at === "number" ? this.nodes.get(at) : undefined;
      if (!node || !this.built.has(at as number)) return false;
      if (node.parent === null) return true;
      at = node.parent;
    }
    return false; // a cycle, or deeper than the mirror takes
  }

  /**
   * Whether rrweb's replayer certainly places `add` (a mutation's only addition) where it says:
   * under an element in the mirror that is no frame, beside siblings (if it names them) that are
   * that element's children. Anything else (a parent it does not have, a sibling elsewhere, another
   * addition before it that may throw) may leave the node where it was.
   */
  certainlyPlaced(add: { node?: unknown; parentId?: unknown; previousId?: unknown; nextId?: unknown }, adds: number): boolean {
    if (adds !== 1 || typeof add.parentId !== "number") return false;
    const parent = this.nodes.get(add.parentId);
    if (!parent || parent.tag === null || DOCUMENT_HOLDERS.has(parent.tag) || !this.inMirror(add.parentId)) return false;
    const sibling = (id: unknown) => !id || (typeof id === "number" && this.nodes.get(id)?.parent === add.parentId && this.inMirror(id));
    const rootId = (add.node as { rootId?: unknown } | null)?.rootId;
    return sibling(add.previousId) && sibling(add.nextId) && (rootId === undefined || this.inMirror(rootId));
  }

  /** A text goes where it is CSS (`css`) or page text (a page moves a text by naming it again);
   * `certain`: the replayer certainly places it there (`certainlyPlaced`). */
  placeText(node: unknown, css: boolean, certain = false): void {
    const n = node as Serialized | null;
    if (!n || typeof n !== "object" || n.type !== SERIALIZED_TEXT || typeof n.id !== "number") return;
    if (css) {
      this.texts.add(n.id);
      this.everCss.add(n.id);
      this.pageTexts.delete(n.id);
    } else {
      this.texts.delete(n.id);
      this.pageTexts.add(n.id);
      if (certain) this.everCss.delete(n.id);
    }
  }

  /** The sheet of the element whose text `textId` is (a change of it parses the whole sheet again). */
  sheetOfText(textId: unknown): number | null {
    const parent = typeof textId === "number" ? this.nodes.get(textId)?.parent : undefined;
    return typeof parent === "number" && this.ids.has(parent) ? parent : null;
  }

  /** `css`, added to the sheet of the element `id`: about as many rules as it has `{`. */
  addRules(id: number, css: string, replaces = false): void {
    const count = ruleCount(css);
    const key = `n${id}`;
    const before = this.rules.get(key) ?? NO_RULES;
    this.rules.set(key, replaces
      ? { top: Math.max(count.top, before.top), all: Math.max(count.all, before.all) }
      : { top: before.top + count.top, all: before.all + count.all });
  }

  /** The rules a style sheet event (STYLE_SHEET_RULE, ADOPTED_STYLE_SHEET) shifts (each rule
   * inserted or removed at an index moves those after it), and the sheets' rule counts after it:
   * `commit` keeps them (when the event is applied). */
  ruleShifts(data: Record<string, unknown>): { shifts: number; commit: () => void } {
    const counts = new Map<string, RuleCount>();
    const count = (key: string) => counts.get(key) ?? this.rules.get(key) ?? NO_RULES;
    // rrweb's replayer inserts at the last index of an array into the group the others name.
    const nested = (index: unknown) => Array.isArray(index) && index.length > 1;
    const indexOf = (index: unknown) => {
      const last = Array.isArray(index) ? index[index.length - 1] : index;
      return typeof last === "number" && Number.isFinite(last) ? Math.max(0, last) : 0;
    };
    let shifts = 0;
    const insert = (key: string, index: unknown, rule: unknown) => {
      const n = count(key);
      // One rule, with the rules nested in it (`@media all{…}` brings all of its own).
      const all = n.all + Math.max(1, typeof rule === "string" ? ruleCount(rule).all : 1);
      if (nested(index)) {
        shifts += Math.max(0, n.all - indexOf(index));
        counts.set(key, { top: n.top, all });
      } else {
        shifts += Math.max(0, n.top - indexOf(index));
        counts.set(key, { top: n.top + 1, all });
      }
    };
    const remove = (key: string, index: unknown) => {
      const n = count(key);
      // What it took with it is not said: the sheet's `all` stays at most one less (more, never fewer).
      const all = Math.max(0, n.all - 1);
      if (nested(index)) {
        shifts += Math.max(0, all - indexOf(index));
        counts.set(key, { top: Math.min(n.top, all), all });
      } else {
        const top = Math.max(0, n.top - 1);
        shifts += Math.max(0, top - indexOf(index));
        counts.set(key, { top, all: Math.max(top, all) });
      }
    };
    const sheetKey = typeof data.styleId === "number" ? `s${data.styleId}` : `n${String(data.id)}`;
    if (data.source === STYLE_SHEET_RULE) {
      for (const text of [data.replace, data.replaceSync]) {
        if (typeof text === "string") counts.set(sheetKey, ruleCount(text));
      }
      if (Array.isArray(data.removes)) for (const removal of data.removes as { index?: unknown }[]) remove(sheetKey, removal?.index);
      if (Array.isArray(data.adds)) for (const add of data.adds as { index?: unknown; rule?: unknown }[]) insert(sheetKey, add?.index, add?.rule);
    } else if (data.source === ADOPTED_STYLE_SHEET && Array.isArray(data.styles)) {
      for (const style of data.styles as { styleId?: unknown; rules?: unknown }[]) {
        if (!style || typeof style !== "object" || !Array.isArray(style.rules)) continue;
        for (const rule of style.rules as { index?: unknown; rule?: unknown }[]) insert(`s${String(style.styleId)}`, rule?.index, rule?.rule);
      }
    }
    return { shifts, commit: () => { for (const [key, n] of counts) this.rules.set(key, n); } };
  }
}

interface RuleCount {
  top: number;
  all: number;
}
const NO_RULES: RuleCount = { top: 0, all: 0 };

/** About how many rules `css` holds: `{` at its top level (`top`), and in all (`all`, with the
 * rules nested in `@media`, `@supports`...), read once (strings and comments are not told apart:
 * a count, not a parse). */
export function ruleCount(css: string): RuleCount {
  let top = 0;
  let all = 0;
  let depth = 0;
  for (let at = 0; at < css.length; at++) {
    const c = css.charCodeAt(at);
    if (c === 0x7b) {
      all++;
      if (depth === 0) top++;
      depth++;
    } else if (c === 0x7d && depth > 0) {
      depth--;
    }
  }
  return { top, all };
}

/** Whether rrweb's replayer can build `node` in the mirror: a text, or an element whose name is
 * one createElement (createElementNS, with a prefix) takes, whatever the browser (a name such
 * as `1div` throws). */
function buildable(node: Serialized): boolean {
  if (node.type === SERIALIZED_TEXT) return true;
  return node.type === SERIALIZED_ELEMENT && typeof node.tagName === "string" &&
    /^[A-Za-z][A-Za-z0-9._-]*(?::[A-Za-z][A-Za-z0-9._-]*)?$/.test(node.tagName);
}

/** `rootCss`: the tree's root, if a text, goes into an element whose text is CSS. With `budget`
 * (a mutation's addition), its CSS texts and carried sheets are CSS the replayer rewrites for
 * replay: within the budget, or held (a text left empty, a sheet dropped). */
function neutralizeTree(root: unknown, assets?: AssetLookup, rootCss = false, budget?: StyleBudget): void {
  const stack: [unknown, boolean][] = [[root, rootCss]];
  while (stack.length) {
    const [item, css] = stack.pop() as [unknown, boolean];
    const node = item as Serialized | null;
    if (!node || typeof node !== "object") continue;
    if (node.type === SERIALIZED_ELEMENT && typeof node.tagName === "string" && node.attributes && typeof node.attributes === "object") {
      const attrs = node.attributes as Record<string, unknown>;
      if (budget && typeof attrs._cssText === "string" && !budget.rewrite(attrs._cssText.length)) {
        delete attrs._cssText;
        budget.lose(); // a sheet carried on its addition: not given later
      }
      neutralizeAttributes(localTag(node.tagName), node.attributes as Record<string, unknown>, assets);
    } else if (node.type === SERIALIZED_TEXT) {
      // rrweb makes a text of any value (an array's items, joined): only a string is a text here.
      node.textContent = typeof node.textContent === "string" ? node.textContent : typeof node.textContent === "number" ? String(node.textContent) : "";
      // rrweb's replayer rewrites a text with PostCSS when `isStyle` is truthy (1, "yes"), wherever it goes.
      if (node.isStyle) node.isStyle = true;
      if (node.isStyle === true || css) {
        if (budget && !budget.rewrite((node.textContent as string).length)) {
          budget.defer(node.id, null, node.textContent as string); // given later as a change of its text
          node.textContent = "";
        }
        node.textContent = CSS_TEXT_SEPARATOR + neutralizeCss(node.textContent as string, assets);
      }
    }
    const holds = holdsCss(node);
    if (Array.isArray(node.childNodes)) for (const child of node.childNodes) stack.push([child, holds]);
  }
}

function neutralizeStrings(value: unknown, assets?: AssetLookup): unknown {
  if (typeof value === "string") return neutralizeCss(value, assets);
  if (Array.isArray(value)) return value.map((item) => neutralizeStrings(item, assets));
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = neutralizeStrings(v, assets);
    return out;
  }
  return value;
}

/**
 * A mutation's added nodes without those whose next sibling can never be there: a next sibling
 * that is the node itself, or one of a cycle of added nodes each naming the next (or leading into
 * one), or no node id at all (0, a string; -1 is rrweb's own "unknown", kept). rrweb's replayer
 * puts such a node back in its queue until its next sibling is in the mirror, which never
 * happens: it spins for 500 ms on every such mutation (its own time limit), and a hostile page
 * that sends them continuously stalls the console. rrweb's recorder names as next sibling a node
 * already in the page or added before it in the same mutation, never one of these.
 * A next sibling that is a node id neither in the mirror nor added (which the event alone cannot
 * tell) is left to the replayer, whose loop (patched: ../../rrweb-patches.mjs, "Next siblings
 * waited for") does not wait for it.
 */
function settledAdds(adds: unknown[]): unknown[] {
  const nextOf = (add: unknown) => (add as { nextId?: unknown } | null)?.nextId;
  const idOf = (add: unknown) => (add as { node?: { id?: unknown } } | null)?.node?.id;
  const byId = new Map<unknown, number>();
  adds.forEach((add, i) => byId.set(idOf(add), i));
  // 0: not looked at, 1: on the path being followed, 2: its next can come, 3: never.
  const state = new Uint8Array(adds.length);
  for (let start = 0; start < adds.length; start++) {
    const path: number[] = [];
    let at: number | undefined = start;
    let verdict = 2;
    while (at !== undefined) {
      if (state[at] === 2 || state[at] === 3) {
        verdict = state[at] as number;
        break;
      }
      if (state[at] === 1) {
        verdict = 3; // a cycle (a node naming itself is the shortest)
        break;
      }
      state[at] = 1;
      path.push(at);
      const next = nextOf(adds[at]);
      if (next === null || next === undefined || next === -1) break;
      if (typeof next !== "number" || !Number.isInteger(next) || next < 1) {
        verdict = 3;
        break;
      }
      at = byId.get(next);
    }
    for (const i of path) state[i] = verdict;
  }
  return adds.filter((_add, i) => state[i] === 2);
}

/** How far before its event a pointer position may say it was (rrweb's recorder sends the moves of
 * the last half second or so, each with a `timeOffset` at most 0): rrweb's replayer schedules each
 * move at its event's time plus it, and a time that is no number (NaN, a string, none) put an
 * action in its timer's queue that never came due and held every later one (mutations too)
 * behind it: the mirror froze. */
export const MAX_POINTER_LAG_MS = 60_000;
/** Positions of one pointer move kept at most (its last ones: where the pointer ends up): each is
 * an action put in order into rrweb's timer queue, which a move of hundreds of thousands in no
 * order made quadratic. rrweb's recorder sends a few dozen at most. */
export const MAX_POINTER_POSITIONS = 500;

/** A pointer move's (or touch move's, or drag's) positions as the replayer may schedule them:
 * numbers, each time within MAX_POINTER_LAG_MS before its event (a time that is no finite number
 * is the event's own), never none (rrweb reads the first's time: one that moves nothing). */
function pointerPositions(positions: unknown): unknown[] {
  const kept: unknown[] = [];
  if (Array.isArray(positions)) {
    for (const p of positions.slice(-MAX_POINTER_POSITIONS) as { x?: unknown; y?: unknown; id?: unknown; timeOffset?: unknown }[]) {
      if (!p || typeof p !== "object" || !Number.isFinite(p.x) || !Number.isFinite(p.y)) continue;
      const time = typeof p.timeOffset === "number" && Number.isFinite(p.timeOffset) ? p.timeOffset : 0;
      kept.push({ ...p, id: typeof p.id === "number" ? p.id : -1, timeOffset: Math.min(0, Math.max(-MAX_POINTER_LAG_MS, time)) });
    }
  }
  // No node has id -1: the replayer moves the pointer over nothing.
  return kept.length ? kept : [{ x: 0, y: 0, id: -1, timeOffset: 0 }];
}

/** Neutralise one rrweb event in place (before `Replayer.addEvent` or `new Replayer`); addresses
 * of assets the customer's browser carried become theirs in `assets`. `styles` follows the page's
 * CSS-holding elements across events: give one per mirror and every event, in order (without it,
 * a text added to such an element of an earlier event, with no `isStyle` flag, is not seen as
 * CSS). With `budget` (./budget.ts), style rewrites and rule changes beyond it are taken out. */
export function neutralizeEvent<T>(event: T, assets?: AssetLookup, styles: StyleParents = new StyleParents(), budget?: StyleBudget): T {
  const e = event as { type?: unknown; data?: Record<string, unknown> } | null;
  if (!e || typeof e !== "object" || !e.data || typeof e.data !== "object") return event;
  const data = e.data;
  if (e.type === FULL_SNAPSHOT) {
    budget?.reset();
    styles.clear();
    styles.learn(data.node, null, true);
    neutralizeTree(data.node, assets);
  } else if (e.type === INCREMENTAL_SNAPSHOT && data.source === MUTATION) {
    // rrweb's replayer removes before it adds: a text moved is removed, then placed again.
    if (Array.isArray(data.removes)) {
      for (const removal of data.removes as { id?: unknown }[]) {
        styles.removed(removal?.id);
        budget?.removed(removal?.id);
      }
    }
    if (Array.isArray(data.adds)) {
      data.adds = settledAdds(data.adds);
      const adds = data.adds as { node?: unknown; parentId?: unknown; previousId?: unknown; nextId?: unknown }[];
      // All of them first: an added text may name a style added later in the same mutation.
      for (const add of adds) styles.learn(add?.node, typeof add?.parentId === "number" ? add.parentId : NaN);
      styles.settle(adds);
      for (const add of adds) {
        // A sibling id -1 (rrweb's "not known yet", which its recorder no longer sends): the
        // replayer holds the node aside and inserts it beside the first later node that names it
        // as its sibling, in that one's parent (a <style> perhaps), whatever its own parentId.
        const css = styles.has(add?.parentId) || add?.previousId === -1 || add?.nextId === -1;
        styles.placeText(add?.node, css, !css && !!add && styles.certainlyPlaced(add, adds.length));
        neutralizeTree(add?.node, assets, css, budget);
        const node = add?.node as Serialized | null | undefined;
        if (css && node?.type === SERIALIZED_TEXT && typeof node.textContent === "string" && typeof add.parentId === "number" &&
          styles.has(add.parentId)) styles.addRules(add.parentId, node.textContent);
      }
    }
    if (Array.isArray(data.texts)) {
      data.texts = (data.texts as { id?: unknown; value?: unknown }[]).filter((text) => {
        // rrweb sets a text to any value (an array's items, joined): only a string or null (empty).
        if (text && typeof text === "object" && typeof text.value !== "string" && text.value !== null) {
          text.value = typeof text.value === "number" ? String(text.value) : "";
        }
        // A page's own text (a help article about CSS, a path C:\Users) is shown as written; a
        // change that may land in a <style> is neutralised as CSS, after the separator if its
        // text is one of a style's, and counted as CSS rewritten (held beyond the budget).
        if (text && typeof text.value === "string" && !styles.isPageText(text.id)) {
          if (budget && !budget.rewrite(text.value.length)) {
            budget.defer(text.id, null, text.value); // its latest value, given once a window takes it
            return false;
          }
          const sheet = styles.sheetOfText(text.id);
          if (sheet !== null) styles.addRules(sheet, text.value, true);
          text.value = (styles.hasText(text.id) ? CSS_TEXT_SEPARATOR : "") + neutralizeCss(text.value, assets);
        }
        budget?.shown(text?.id, null); // newer than one held
        return true;
      });
    }
    if (Array.isArray(data.attributes)) {
      for (const change of data.attributes as { id?: unknown; attributes?: unknown }[]) {
        if (!change?.attributes || typeof change.attributes !== "object") continue;
        const attrs = change.attributes as Record<string, unknown>;
        // A frame (or an object) as it was added: an address of a page in it is dropped as then.
        const holder = styles.holdsDocument(change.id);
        // The tag is not in the event: treat `href` as fetching (an anchor only loses its link),
        // whatever the case of its name (the browser lowercases an HTML element's: `HREF` on a
        // <link> was its stylesheet's address), and a data: one as a page unless it only shows.
        for (const name of Object.keys(attrs)) {
          const value = attrs[name];
          if (name.toLowerCase() !== "href" || typeof value !== "string") continue;
          const carried = local(value) ? undefined : assets?.resolve(value);
          if (carried) attrs[name] = carried;
          else if (!local(value) || !shownData(value) || holder) delete attrs[name];
        }
        for (const [name, value] of Object.entries(attrs)) {
          // A whole style (or a link's carried sheet) parsed again: within the budget, or held.
          const key = name.toLowerCase();
          if (budget && (key === "style" || key === "_csstext") && typeof value === "string" && !budget.rewrite(value.length)) {
            delete attrs[name];
            // A whole style is given later (its latest); a carried sheet is not.
            if (name === "style") budget.defer(change.id, name, value);
            else budget.lose();
            continue;
          }
          // Newer than one held; properties set one by one on a style held whole would be undone
          // by it, which therefore is not given later.
          if (name === "style") budget?.shown(change.id, name, !!value && typeof value === "object");
          if (name === "style" && value && typeof value === "object") attrs[name] = neutralizeStrings(value, assets);
        }
        neutralizeAttributes("", attrs, assets, holder);
      }
    }
  } else if (e.type === INCREMENTAL_SNAPSHOT && (data.source === STYLE_SHEET_RULE || data.source === ADOPTED_STYLE_SHEET)) {
    // Rules inserted or removed shift those after them; a sheet replaced is parsed again.
    const { shifts, commit } = styles.ruleShifts(data);
    const replaced = [data.replace, data.replaceSync].reduce<number>((n, text) => n + (typeof text === "string" ? text.length : 0), 0);
    if (budget && ((shifts > 0 && !budget.shift(shifts)) || (replaced > 0 && !budget.rewrite(replaced)))) {
      budget.lose(); // each names an index in the sheet as it was: never given later
      // Held: the event changes no rule (rrweb's replayer reads what is there).
      for (const key of Object.keys(data)) if (key !== "source" && key !== "id" && key !== "styleId") delete data[key];
      // An adopted sheet's event with no host changes nothing (rrweb returns at once; with one
      // and no sheets it would take the host's adopted sheets away).
      if (data.source === ADOPTED_STYLE_SHEET) delete data.id;
    } else {
      commit();
    }
    for (const key of Object.keys(data)) if (key !== "source" && key !== "id" && key !== "styleId") data[key] = neutralizeStrings(data[key], assets);
  } else if (e.type === INCREMENTAL_SNAPSHOT && data.source === STYLE_DECLARATION) {
    for (const key of Object.keys(data)) if (key !== "source" && key !== "id" && key !== "styleId") data[key] = neutralizeStrings(data[key], assets);
  } else if (e.type === INCREMENTAL_SNAPSHOT && (data.source === MOUSE_MOVE || data.source === TOUCH_MOVE || data.source === DRAG)) {
    data.positions = pointerPositions(data.positions);
  } else if (e.type === INCREMENTAL_SNAPSHOT && data.source === FONT && data.buffer) {
    // With `buffer`, rrweb's replayer makes the font's bytes of `new Uint8Array(JSON.parse(fontSource))`,
    // which reads any array-like: `{"length": 200000000}` (40 bytes) kept the agent's tab busy over
    // a minute filling zeros, each such event. Only an array of bytes is the font's.
    data.fontSource = fontBytes(data.fontSource);
  } else if (e.type === INCREMENTAL_SNAPSHOT && data.source === FONT) {
    // rrweb's replayer makes a FontFace of `fontSource` (a CSS `src`: `url(…)`) in the console's
    // own window and adds it to the mirror's fonts: it loads under the console's policy (which
    // allows the console's server), not the mirror's, so `url(/api/…)` went to Tandem's server
    // with the agent's cookie. The SDK records no fonts; a page's SDK that sends one gets its
    // addresses neutralised as any CSS (a source that is not a string, which the FontFace would
    // read as one, is dropped). With `buffer`, the source is the font's bytes: nothing to fetch.
    data.fontSource = typeof data.fontSource === "string" ? neutralizeCss(data.fontSource, assets) : "";
  }
  return event;
}

/** A font event's bytes (JSON) as given when they are an array of at most MAX_ASSET_BYTES bytes;
 * none (`[]`) otherwise. */
function fontBytes(source: unknown): string {
  if (typeof source !== "string") return "[]";
  let bytes: unknown;
  try {
    bytes = JSON.parse(source);
  } catch {
    return "[]";
  }
  const ok = Array.isArray(bytes) && bytes.length <= MAX_ASSET_BYTES &&
    bytes.every((byte) => Number.isInteger(byte) && (byte as number) >= 0 && (byte as number) <= 255);
  return ok ? source : "[]";
}

/** The mirror's own Content-Security-Policy, on top of the console's: nothing from any server,
 * not even the console's own (which the console's policy allows for its own files): only what came
 * inside the encrypted channel (`data:`, `blob:`) and inline styles. What ./assets.ts misses
 * fetches nothing (with the agent's cookie, from the relay). */
export const MIRROR_CSP =
  "default-src 'none'; img-src data: blob:; font-src data: blob:; media-src data: blob:; style-src 'unsafe-inline' data: blob:";

/** Give the mirror's document (rrweb's sandboxed about:blank frame, before any event) its policy:
 * a policy a document was given stays its own however its content is rebuilt. */
export function confineMirror(frame: HTMLIFrameElement): void {
  const doc = frame.contentDocument;
  if (!doc) return;
  const meta = doc.createElement("meta");
  meta.httpEquiv = "Content-Security-Policy";
  meta.content = MIRROR_CSP;
  (doc.head ?? doc.documentElement ?? doc).appendChild(meta);
}
