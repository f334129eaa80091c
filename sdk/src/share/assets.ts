/**
 * The customer's side of asset carrying (issue 14, item 7; ../shared/assets.ts). The agent's
 * mirror fetches nothing, so the images, fonts and stylesheets of the shared page reach it only
 * this way: for each batch of recorded events (already masked and scrubbed, so a blocked or
 * hidden element's image is not in them), the addresses the events use are collected, and those
 * on the page's own origin are fetched from there, as the page itself could (cookies of that
 * origin only, the browser's cache first, no redirect elsewhere), checked (type by header and by
 * content, size) and sent as `asset` payloads ahead of the events. The page's own images start
 * loading as the recorder starts (`prefetch`), so a first snapshot does not wait for them after
 * it is made; what is sent is still decided from the events alone.
 *
 * Not carried: other origins' assets (a CDN's images, web fonts): the page could not read them
 * without CORS, and the mirror shows them as missing; images when the policy hides images;
 * anything over the size limits; addresses whose query the masking removed fetch what the
 * address without it gives. Fetched bytes are kept for the session (one fetch per address);
 * each recorder start (a new full snapshot) sends them again, since the console may be new.
 */

import {
  type AssetPayload, type AssetType, MAX_ASSET_BYTES, MAX_ASSET_URL, MAX_SESSION_ASSET_BYTES,
  MAX_SESSION_ASSETS, assetType, cssImageUrls, cssUrls, decodeBase64, encodeBase64, isImage, looksLike, srcsetUrls,
} from "../shared/assets.ts";
import { attributeOf, queryAllIn, shadowRootOf } from "../shared/dom.ts";
import {
  ADOPTED_STYLE_SHEET, FULL_SNAPSHOT, INCREMENTAL_SNAPSHOT, MUTATION, SERIALIZED_ELEMENT, SERIALIZED_TEXT,
  STYLE_DECLARATION, STYLE_SHEET_RULE,
} from "../shared/rrweb-events.ts";


/** How long one batch of events waits for its assets before it is sent without the rest. */
export const ASSET_WAIT_MS = 3000;

export interface AssetLimits {
  maxBytes: number;
  sessionBytes: number;
  sessionAssets: number;
  waitMs: number;
}

export const DEFAULT_LIMITS: AssetLimits = {
  maxBytes: MAX_ASSET_BYTES, sessionBytes: MAX_SESSION_ASSET_BYTES, sessionAssets: MAX_SESSION_ASSETS,
  waitMs: ASSET_WAIT_MS,
};

export type Fetcher = (url: string, init: RequestInit) => Promise<Response>;

interface Fetched { type: AssetType; data: string; bytes: number }

/** Elements whose `src` is an image (an attribute change names no tag: ""). A script's or a
 * frame's `src` is never carried, and fetching it to find that out held the first snapshot back
 * (issue 17: the SDK's own script, revalidated with its server, on every page). */
const IMAGE_SOURCES = new Set(["img", "input", ""]);

/** Addresses (as the events write them) that a batch of rrweb events makes the page load,
 * leaving out what nodes for which `masked(id)` says true use (and their subtrees), and `src`,
 * `poster` and `href` addresses that differ from the live element's (`original`): masking removed
 * their query or fragment, and the address without it may well be another image (`srcset`
 * candidates alike: `original(id, "srcset")` gives the live ones, one a line). */
export function assetUrls(
  events: readonly unknown[],
  masked: (id: number) => boolean = () => false,
  original: (id: number, name: string) => string | null = () => null,
  /** Filled with those of the addresses that only CSS shows as images (cssImageUrls), not also
   * an element's own `src`: which element shows one is known only from computed styles. */
  cssImages: Set<string> = new Set(),
): Set<string> {
  const hidden = (id: unknown) => typeof id !== "number" || masked(id);
  const found = new Set<string>();
  const direct = new Set<string>();
  const css = (text: unknown) => {
    if (typeof text !== "string") return;
    for (const url of cssUrls(text)) found.add(url);
    for (const url of cssImageUrls(text)) cssImages.add(url);
  };
  const add = (url: string) => {
    found.add(url);
    direct.add(url);
  };
  const deepCss = (value: unknown) => {
    const stack = [value];
    while (stack.length) {
      const item = stack.pop();
      if (typeof item === "string") css(item);
      else if (item && typeof item === "object") stack.push(...Object.values(item));
    }
  };
  const unchanged = (id: unknown, name: string, value: string) => {
    const live = typeof id === "number" ? original(id, name) : null;
    return live === null || live.trim() === value.trim();
  };
  // A `srcset` candidate: `original` gives the live element's candidates, one a line.
  const listed = (id: unknown, url: string) => {
    const live = typeof id === "number" ? original(id, "srcset") : null;
    return live === null || live.split("\n").some((candidate) => candidate.trim() === url.trim());
  };
  const attributes = (tag: string, attrs: Record<string, unknown>, id?: unknown) => {
    for (const [name, value] of Object.entries(attrs)) {
      const key = name.toLowerCase();
      if (key === "style" && value && typeof value === "object") deepCss(value);
      if (typeof value !== "string") continue;
      if (key === "style" || key === "_csstext") css(value);
      else if (((key === "src" && IMAGE_SOURCES.has(tag)) || key === "poster") && unchanged(id, name, value)) add(value);
      else if (key === "srcset") {
        for (const url of srcsetUrls(value)) if (listed(id, url)) add(url);
      }
      else if ((key === "href" || key === "xlink:href") && tag === "image" && unchanged(id, name, value)) add(value);
      else if (key === "href" && tag === "link" && /\bstylesheet\b/i.test(String(attrs.rel ?? "")) &&
        typeof attrs._cssText !== "string") add(value);
    }
  };
  const tree = (root: unknown) => {
    const stack = [root];
    while (stack.length) {
      const node = stack.pop() as {
        type?: unknown; id?: unknown; tagName?: unknown; attributes?: unknown; childNodes?: unknown;
        textContent?: unknown; isStyle?: unknown;
      } | null;
      if (!node || typeof node !== "object") continue;
      // A text node is hidden where its parent is (visited first, and skipped with its subtree if
      // hidden): only a style's text, which may name addresses, is looked up on its own.
      const style = node.type === SERIALIZED_TEXT && node.isStyle === true;
      if ((node.type === SERIALIZED_ELEMENT || style) && hidden(node.id)) continue;
      if (node.type === SERIALIZED_ELEMENT && typeof node.tagName === "string" && node.attributes &&
        typeof node.attributes === "object") {
        attributes(node.tagName.toLowerCase(), node.attributes as Record<string, unknown>, node.id);
      } else if (style) {
        css(node.textContent);
      }
      if (Array.isArray(node.childNodes)) stack.push(...(node.childNodes as unknown[]));
    }
  };
  for (const event of events) {
    const e = event as { type?: unknown; data?: Record<string, unknown> } | null;
    if (!e || typeof e !== "object" || !e.data || typeof e.data !== "object") continue;
    const data = e.data;
    if (e.type === FULL_SNAPSHOT) tree(data.node);
    else if (e.type === INCREMENTAL_SNAPSHOT && data.source === MUTATION) {
      if (Array.isArray(data.adds)) for (const add of data.adds) tree((add as { node?: unknown })?.node);
      if (Array.isArray(data.texts)) {
        for (const text of data.texts as { id?: unknown; value?: unknown }[]) if (!hidden(text?.id)) css(text?.value);
      }
      if (Array.isArray(data.attributes)) {
        for (const change of data.attributes as { id?: unknown; attributes?: unknown }[]) {
          if (change?.attributes && typeof change.attributes === "object" && !hidden(change.id)) {
            attributes("", change.attributes as Record<string, unknown>, change.id);
          }
        }
      }
    } else if (e.type === INCREMENTAL_SNAPSHOT &&
      (data.source === STYLE_SHEET_RULE || data.source === STYLE_DECLARATION || data.source === ADOPTED_STYLE_SHEET)) {
      // A rule of a <style> element (its node id), or of a sheet adopted by a document (none).
      if (data.id === undefined || !hidden(data.id)) deepCss(data);
    }
  }
  for (const url of direct) cssImages.delete(url);
  return found;
}

const querySelectorAll = (root: ParentNode, selector: string): Element[] =>
  Array.from(Document.prototype.querySelectorAll.call(root, selector) as NodeListOf<Element>);

/** The addresses of the page's `<img src>` images outside what `hidden` says the agent may not
 * see, absolute (as rrweb records them): what to prefetch for a first snapshot. Best effort: a
 * page that cannot be read this way gives none. */
export function pageImages(doc: Document, hidden: (el: Element) => boolean): string[] {
  try {
    const out = new Set<string>();
    for (const img of querySelectorAll(doc, "img[src]")) {
      const src = hidden(img) ? null : attributeOf(img, "src");
      if (src) out.add(new URL(src, doc.baseURI).href);
    }
    return [...out];
  } catch {
    return [];
  }
}

/** Computed style properties that can show an image (their values are absolute `url("…")`). */
const IMAGE_PROPERTIES = [
  "background-image", "list-style-image", "border-image-source", "mask-image", "-webkit-mask-image", "content", "cursor",
];
const COMPUTED_URL = /url\("((?:[^"\\]|\\.)*)"\)/g;

/** The image addresses `el` and its ::before and ::after show, as computed (absolute), added to
 * `out`; calls `found` with each. */
function imagesShownBy(el: Element, out: Set<string>, found: (url: string) => void = () => undefined): void {
  for (const pseudo of [null, "::before", "::after"]) {
    const style = getComputedStyle(el, pseudo);
    for (const property of IMAGE_PROPERTIES) {
      for (const match of style.getPropertyValue(property).matchAll(COMPUTED_URL)) {
        const url = match[1].replace(/\\(.)/g, "$1");
        out.add(url);
        found(url);
      }
    }
  }
}

/**
 * Of `urls` (CSS images, as the events write them, resolved against `base`), those that no
 * element outside content the agent may not see shows now (`masked`: every element of masked,
 * hidden or blocked regions; `inRegion`: whether an element lies in one). A stylesheet's image
 * goes only once such an element shows it (the agent sees it there anyway): one no element shows
 * yet may well be shown first by masked content, and once carried, the mirror draws it for any
 * element of its class, masked or not. Fails closed: if the page cannot be read this way, all of
 * `urls` are withheld.
 *
 * Shown means: the computed style of the element, or of its ::before or ::after, names the
 * image. Which elements can is found from the style sheets (selectorCandidates): those each rule
 * naming an image matches, and those whose `style` attribute names one; only when a rule cannot
 * be matched that way is every element looked at (the whole tree's computed styles: hundreds of
 * milliseconds on a large page).
 */
export function unshownImages(
  doc: Document, base: string, urls: readonly string[], masked: () => Element[], inRegion: (el: Element) => boolean,
): Set<string> {
  if (!urls.length) return new Set();
  try {
    const absolute = new Map<string, string[]>();
    for (const url of urls) {
      try {
        const href = new URL(url, base).href;
        absolute.set(href, [...(absolute.get(href) ?? []), url]);
      } catch {
        // not an address: never fetched (carriable refuses it)
      }
    }
    const outside = new Set<string>();
    const wanted = [...absolute.keys()];
    // Those not yet seen outside: each look ends once none is left (a count, not a look at each).
    const missing = new Set(wanted);
    const seen = (url: string) => missing.delete(url);
    // The page's tree, then the open shadow roots of its web components (their sheets' images).
    const trees: Node[] = [doc];
    for (let t = 0; t < trees.length && t < 1000; t++) {
      for (const el of queryAllIn(trees[t], "*")) {
        const shadow = shadowRootOf(el);
        if (shadow) trees.push(shadow);
      }
    }
    let candidates: Set<Element> | null;
    try {
      candidates = selectorCandidates(doc, trees, missing);
    } catch {
      candidates = null; // then every element is looked at
    }
    if (candidates) {
      for (const el of candidates) {
        if (!missing.size) break;
        if (inRegion(el)) continue;
        imagesShownBy(el, outside, seen);
      }
    } else {
      const hiddenTop = new Set(masked());
      for (let t = 0; t < trees.length && missing.size; t++) {
        for (const el of queryAllIn(trees[t], "*")) {
          if (t === 0 ? hiddenTop.has(el) : inRegion(el)) continue;
          imagesShownBy(el, outside, seen);
          if (!missing.size) break;
        }
      }
    }
    return new Set(wanted.filter((url) => !outside.has(url)).flatMap((url) => absolute.get(url) as string[]));
  } catch {
    return new Set(urls);
  }
}

/** Properties whose value passes to descendants: an element can show the image without a rule
 * of its own (and a custom property may be used by any other rule), so such a rule sends the
 * look to every element. */
const INHERITED_IMAGE_PROPERTIES = new Set(["cursor", "list-style-image", "list-style"]);
/** Pseudo-elements whose image getComputedStyle(el, pseudo) reports (imagesShownBy): the rest
 * (`::marker`, `::placeholder`...) show nothing imagesShownBy counts, whatever they name. */
const SHOWN_PSEUDO = /::?(?:before|after)\b/gi;
const NAMES_SHOWN_PSEUDO = /::?(?:before|after)\b/i;
/** Selectors that match elements of another tree than the sheet's (`:host`, `::slotted`,
 * `::part`), or are relative to an outer rule (nesting's `&`). */
const OTHER_TREE = /:host\b|:host-context\b|::slotted\b|::part\b|&/i;

/** Whether the image addresses of a CSS text, resolved against `base`, include one of `wanted`. */
function namesAny(text: string, base: string, wanted: ReadonlySet<string>): boolean {
  if (!/url\(/i.test(text)) return false;
  for (const url of cssImageUrls(text)) {
    try {
      if (wanted.has(new URL(url, base).href)) return true;
    } catch {
      // not an address
    }
  }
  return false;
}

/** Whether a declaration block names one of `wanted` only in properties that show it on the
 * element itself (null: it names none; "any": in an inherited or custom property). */
function declarationNames(style: CSSStyleDeclaration, base: string, wanted: ReadonlySet<string>): "own" | "any" | null {
  if (!namesAny(style.cssText, base, wanted)) return null;
  for (let i = 0; i < style.length; i++) {
    const property = style.item(i);
    if ((property.startsWith("--") || INHERITED_IMAGE_PROPERTIES.has(property)) &&
      namesAny(style.getPropertyValue(property), base, wanted)) return "any";
  }
  return "own";
}

/**
 * The elements that may show one of `wanted` (absolute addresses), tree by tree: those the
 * selector of a rule naming one matches (its ::before and ::after left out: imagesShownBy looks
 * at them), in the rule's own tree (a document's or shadow root's sheets, adopted ones, imported
 * ones, inside @media, @supports, @layer...), and those whose `style` attribute names one.
 * Null when that cannot tell: a sheet that cannot be read (another origin's), a rule naming one
 * in an inherited or custom property, in @keyframes or another at-rule, inside a nested or
 * @scope rule, with a selector reaching another tree or that the page's querySelectorAll
 * refuses; then every element must be looked at.
 */
function selectorCandidates(doc: Document, trees: readonly Node[], wanted: ReadonlySet<string>): Set<Element> | null {
  const out = new Set<Element>();
  const docBase = doc.baseURI;
  const rulesOf = new Map<CSSStyleSheet, string[] | null>();
  const selectorsIn = (sheet: CSSStyleSheet): string[] | null => {
    let found = rulesOf.get(sheet);
    if (found !== undefined) return found;
    found = [];
    const walk = (rules: CSSRuleList, base: string, nested: boolean, depth: number): boolean => {
      if (depth > 32) return false;
      for (const rule of Array.from(rules)) {
        if (typeof CSSImportRule !== "undefined" && rule instanceof CSSImportRule) {
          const imported = rule.styleSheet;
          if (imported && !walk(imported.cssRules, imported.href ?? base, nested, depth + 1)) return false;
          continue;
        }
        if (typeof CSSStyleRule !== "undefined" && rule instanceof CSSStyleRule) {
          const names = declarationNames(rule.style, base, wanted);
          if (names === "any" || (names && (nested || OTHER_TREE.test(rule.selectorText)))) return false;
          if (names) (found as string[]).push(rule.selectorText);
          const inner = (rule as { cssRules?: CSSRuleList }).cssRules;
          if (inner?.length && !walk(inner, base, true, depth + 1)) return false;
          continue;
        }
        const inner = (rule as { cssRules?: CSSRuleList }).cssRules;
        const grouping = inner !== undefined && !(typeof CSSKeyframesRule !== "undefined" && rule instanceof CSSKeyframesRule);
        if (grouping) {
          const scoped = typeof CSSScopeRule !== "undefined" && rule instanceof CSSScopeRule;
          if (!walk(inner, base, nested || scoped, depth + 1)) return false;
        } else if (namesAny(rule.cssText, base, wanted) && !(typeof CSSFontFaceRule !== "undefined" && rule instanceof CSSFontFaceRule)) {
          return false; // @keyframes, @property, @page...: no selector says which elements
        }
      }
      return true;
    };
    try {
      if (!walk(sheet.cssRules, sheet.href ?? docBase, false, 0)) found = null;
    } catch {
      found = null; // another origin's sheet (its rules cannot be read), or an odd page
    }
    rulesOf.set(sheet, found);
    return found;
  };
  for (const tree of trees) {
    const owner = tree as unknown as { styleSheets?: StyleSheetList; adoptedStyleSheets?: CSSStyleSheet[] };
    const sheets = [...Array.from(owner.styleSheets ?? []), ...(owner.adoptedStyleSheets ?? [])] as CSSStyleSheet[];
    const selectors = new Set<string>();
    for (const sheet of sheets) {
      const found = selectorsIn(sheet);
      if (found === null) return null;
      for (const selector of found) selectors.add(selector);
    }
    for (const selector of selectors) {
      if (/["'\\]/.test(selector) && NAMES_SHOWN_PSEUDO.test(selector)) return null; // a pseudo-element's name in a string?
      const own = selector.replace(SHOWN_PSEUDO, "");
      if (own.includes("::") || /:(?:first-line|first-letter)\b/i.test(own)) continue; // shows nothing imagesShownBy counts
      let matched: Element[];
      try {
        matched = queryAllIn(tree, own.trim() === "" ? "*" : own);
      } catch {
        return null; // a selector this page's querySelectorAll refuses
      }
      for (const el of matched) out.add(el);
    }
    for (const el of queryAllIn(tree, "[style]")) {
      const style = (el as HTMLElement).style as CSSStyleDeclaration | undefined;
      if (!style) continue;
      const names = declarationNames(style, docBase, wanted);
      if (names === "any") return null;
      if (names) out.add(el);
    }
  }
  return out;
}

export class AssetCarrier {
  private readonly fetched = new Map<string, Promise<Fetched | null>>();
  private sent = new Set<string>();
  private bytes = 0;

  constructor(
    /** The page's address (assets of its origin only; relative addresses resolve against it). */
    private readonly page: () => string,
    /** Whether a recorded node (by id) is in content the agent may not see. */
    private readonly masked: (id: number) => boolean,
    /** A recorded element's attribute as the live page has it (null: unknown). */
    private readonly original: (id: number, name: string) => string | null,
    /** Whether the policy lets images be seen (else only fonts and stylesheets go). */
    private readonly imagesShown: () => boolean,
    private readonly fetcher: Fetcher = (url, init) => fetch(url, init),
    private readonly limits: AssetLimits = DEFAULT_LIMITS,
    /** Of these CSS images, those no element outside content the agent may not see shows
     * (unshownImages). */
    private readonly unshown: (urls: string[]) => Set<string> = () => new Set(),
  ) {}

  /** A new recorder (full snapshot) starts: the console may not have anything yet. */
  restart(): void {
    this.sent = new Set();
  }

  /** Start fetching `urls` (those carriable) before any event names them: the first snapshot's
   * images load while it is made (issue 17), instead of after. Nothing is sent from here:
   * `carry` still decides what goes, from the masked events. */
  prefetch(urls: Iterable<string>): void {
    for (const url of urls) if (this.carriable(url)) void this.fetch(url);
  }

  /** The asset payloads to send before `events`: those they use that were not sent since the
   * recorder started. Never rejects; waits at most `waitMs`. */
  async carry(events: readonly unknown[]): Promise<AssetPayload[]> {
    const cssImages = new Set<string>();
    const urls = assetUrls(events, this.masked, this.original, cssImages);
    const wanted = this.shown([...urls].filter((url) => !this.sent.has(url) && this.carriable(url)), cssImages);
    if (!wanted.length) return [];
    const out = await this.carryUrls(wanted);
    // A carried stylesheet's own images and fonts (absolute, as the console resolves them) go
    // before it: the console rewrites the sheet when it arrives.
    const nested: AssetPayload[] = [];
    for (const sheet of out.filter((asset) => asset.type === "text/css")) {
      const text = new TextDecoder().decode(decodeBase64(sheet.data));
      const absolute = (list: string[]) => list.flatMap((url) => {
        try {
          return [new URL(url, new URL(sheet.url, this.page())).href];
        } catch {
          return [];
        }
      });
      const inner = absolute(cssUrls(text)).filter((url) => !this.sent.has(url) && this.carriable(url));
      nested.push(...await this.carryUrls(this.shown(inner, new Set(absolute(cssImageUrls(text))))));
    }
    return [...nested, ...out];
  }

  /** `urls` without the CSS images (`cssImages`) no element outside masked content shows: not
   * fetched, not sent (asked again when a later batch names them: the page may show them by
   * then). */
  private shown(urls: string[], cssImages: Set<string>): string[] {
    const judged = urls.filter((url) => cssImages.has(url));
    if (!judged.length) return urls;
    const withheld = this.unshown(judged);
    return withheld.size ? urls.filter((url) => !withheld.has(url)) : urls;
  }

  private async carryUrls(wanted: string[]): Promise<AssetPayload[]> {
    if (!wanted.length) return [];
    for (const url of wanted) this.sent.add(url); // asked once per recorder, even if it fails
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), this.limits.waitMs);
    });
    const results = await Promise.all(wanted.map((url) =>
      Promise.race([this.fetch(url), deadline]).then((got) => ({ url, got }))));
    clearTimeout(timer);
    const out: AssetPayload[] = [];
    for (const { url, got } of results) {
      if (!got || got === "late") continue;
      if (isImage(got.type) && !this.imagesShown()) continue;
      out.push({ k: "asset", url, type: got.type, data: got.data });
    }
    return out;
  }

  /** Only http(s) on the page's own origin, within the count. */
  private carriable(url: string): boolean {
    if (url.length > MAX_ASSET_URL || /^\s*(data|blob):/i.test(url)) return false;
    let target: URL;
    let page: URL;
    try {
      page = new URL(this.page());
      target = new URL(url, page);
    } catch {
      return false;
    }
    if (target.origin !== page.origin || !/^https?:$/.test(target.protocol)) return false;
    return this.fetched.has(url) || this.fetched.size < this.limits.sessionAssets;
  }

  private fetch(url: string): Promise<Fetched | null> {
    let pending = this.fetched.get(url);
    if (!pending) {
      pending = this.load(url).catch(() => null);
      this.fetched.set(url, pending);
    }
    return pending;
  }

  private async load(url: string): Promise<Fetched | null> {
    const page = new URL(this.page());
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.limits.waitMs * 4);
    try {
      const response = await this.fetcher(new URL(url, page).href, {
        // As the page itself could: its own origin only (a redirect elsewhere fails), its
        // cookies there, the copy the browser already has if it can.
        mode: "same-origin",
        credentials: "same-origin",
        cache: "force-cache",
        redirect: "follow",
        referrerPolicy: "same-origin",
        signal: controller.signal,
      });
      if (!response.ok || (response.url && new URL(response.url).origin !== page.origin)) return null;
      const type = assetType(response.headers.get("content-type"));
      if (!type) return null;
      const declared = Number(response.headers.get("content-length") ?? "0");
      if (declared > this.limits.maxBytes) return null;
      const bytes = await readAtMost(response, this.limits.maxBytes);
      if (!bytes || !looksLike(type, bytes)) return null;
      if (this.bytes + bytes.length > this.limits.sessionBytes) return null;
      this.bytes += bytes.length;
      return { type, data: encodeBase64(bytes), bytes: bytes.length };
    } finally {
      clearTimeout(timer);
    }
  }
}

/** The body, or null if it is longer than `limit` (reading stops there). */
async function readAtMost(response: Response, limit: number): Promise<Uint8Array | null> {
  if (!response.body) return new Uint8Array(await response.arrayBuffer());
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > limit) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.length;
  }
  return out;
}
