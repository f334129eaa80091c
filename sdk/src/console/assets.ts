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
  ADOPTED_STYLE_SHEET, FULL_SNAPSHOT, INCREMENTAL_SNAPSHOT, MUTATION, SERIALIZED_ELEMENT, SERIALIZED_TEXT,
  STYLE_DECLARATION, STYLE_SHEET_RULE,
} from "../shared/rrweb-events.ts";

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
  return css.replace(/\burl\(\s*(['"]?)([^)'"]*)\1\s*\)/gi, (whole, _q: string, address: string) => {
    try {
      return /^\s*(data|blob):/i.test(address) ? whole : `url("${new URL(address.trim(), base).href}")`;
    } catch {
      return "none";
    }
  });
}

export { cssUrls };

/** Attributes whose value the browser fetches (or may), on any element. */
const FETCHED = new Set([
  "src", "srcset", "poster", "background", "data", "xlink:href", "imagesrcset", "lowsrc", "dynsrc",
  "ping", "manifest", "codebase", "archive", "longdesc", "action", "formaction", "itemtype",
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
 * frame's content as nodes of its own). */
const DROPPED = new Set(["srcdoc"]);
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

/** A refresh's `content` ("5", "0; url=…"). */
const REFRESH = /^\s*\d*(\.\d*)?\s*([;,]|$)/;

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
  // Unescape first so `\75 rl(` cannot hide a url(; CSS escapes in a url are rare in real pages.
  const plain = css.replace(/\\([0-9a-fA-F]{1,6})\s?/g, (_, hex: string) => {
    const code = parseInt(hex, 16);
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : "\ufffd";
  }).replace(/\\([^\n0-9a-fA-F])/g, "$1");
  return plain
    .replace(/@import[^;]*;?/gi, "")
    .replace(/\b(url|src)\(\s*(['"]?)([^)'"]*)\2\s*\)/gi, (whole, fn: string, _q: string, address: string) => {
      if (local(address) || (fragments && fn.toLowerCase() === "url" && sameDocument(address))) return whole;
      const carried = fn.toLowerCase() === "url" ? assets?.resolve(address) : undefined;
      return carried ? `url("${carried}")` : "none";
    })
    // What the pattern above could not take apart (a quoted `)`...): broken, not fetched.
    .replace(fragments ? /\b(url|src)\(\s*(?!['"]?\s*(?:data:|blob:|#))/gi : /\b(url|src)\(\s*(?!['"]?\s*(?:data|blob):)/gi,
      "blocked-$1(")
    .replace(/\b((?:-webkit-)?image-set|image|cross-fade|element)\(/gi, "blocked-$1(");
}

/** `<link>` kinds that fetch ahead of need (or connect): dropped whole. */
const HINTS = /\b(prefetch|preload|modulepreload|prerender|dns-prefetch|preconnect|next|icon|apple-touch-icon|manifest|search|pingback)\b/i;

function neutralizeAttributes(tag: string, attrs: Record<string, unknown>, assets?: AssetLookup): void {
  // A stylesheet rrweb could not inline, carried whole: rrweb builds a <style> from `_cssText`.
  if (tag === "link" && typeof attrs.href === "string" && typeof attrs._cssText !== "string") {
    const sheet = assets?.stylesheet(attrs.href);
    if (sheet !== undefined) attrs._cssText = sheet;
  }
  for (const [name, value] of Object.entries(attrs)) {
    const key = name.toLowerCase();
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
      const carried = local(value) ? undefined : assets?.resolve(value);
      if (carried && (key === "src" || key === "poster" || key === "href" || key === "xlink:href")) attrs[name] = carried;
      else if (!local(value)) delete attrs[name];
    }
  }
  if (typeof attrs.rr_dataURL === "string" && !local(attrs.rr_dataURL)) delete attrs.rr_dataURL;
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
  type?: unknown; tagName?: unknown; attributes?: unknown; childNodes?: unknown; textContent?: unknown; isStyle?: unknown;
}

function neutralizeTree(root: unknown, assets?: AssetLookup): void {
  const stack: unknown[] = [root];
  while (stack.length) {
    const node = stack.pop() as Serialized | null;
    if (!node || typeof node !== "object") continue;
    if (node.type === SERIALIZED_ELEMENT && typeof node.tagName === "string" && node.attributes && typeof node.attributes === "object") {
      neutralizeAttributes(node.tagName.toLowerCase(), node.attributes as Record<string, unknown>, assets);
    } else if (node.type === SERIALIZED_TEXT && node.isStyle === true && typeof node.textContent === "string") {
      node.textContent = neutralizeCss(node.textContent, assets);
    }
    if (Array.isArray(node.childNodes)) for (const child of node.childNodes) stack.push(child);
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
 * tell) is not caught here (docs/security.md).
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

/** Neutralise one rrweb event in place (before `Replayer.addEvent` or `new Replayer`); addresses
 * of assets the customer's browser carried become theirs in `assets`. */
export function neutralizeEvent<T>(event: T, assets?: AssetLookup): T {
  const e = event as { type?: unknown; data?: Record<string, unknown> } | null;
  if (!e || typeof e !== "object" || !e.data || typeof e.data !== "object") return event;
  const data = e.data;
  if (e.type === FULL_SNAPSHOT) {
    neutralizeTree(data.node, assets);
  } else if (e.type === INCREMENTAL_SNAPSHOT && data.source === MUTATION) {
    if (Array.isArray(data.adds)) {
      data.adds = settledAdds(data.adds);
      for (const add of data.adds as unknown[]) neutralizeTree((add as { node?: unknown })?.node, assets);
    }
    if (Array.isArray(data.texts)) {
      for (const text of data.texts as { value?: unknown }[]) {
        if (text && typeof text.value === "string") text.value = neutralizeCss(text.value, assets);
      }
    }
    if (Array.isArray(data.attributes)) {
      for (const change of data.attributes as { attributes?: unknown }[]) {
        if (!change?.attributes || typeof change.attributes !== "object") continue;
        const attrs = change.attributes as Record<string, unknown>;
        // The tag is not in the event: treat `href` as fetching (an anchor only loses its link).
        if (typeof attrs.href === "string" && !local(attrs.href)) {
          const carried = assets?.resolve(attrs.href);
          if (carried) attrs.href = carried;
          else delete attrs.href;
        }
        for (const [name, value] of Object.entries(attrs)) {
          if (name === "style" && value && typeof value === "object") attrs[name] = neutralizeStrings(value, assets);
        }
        neutralizeAttributes("", attrs, assets);
      }
    }
  } else if (e.type === INCREMENTAL_SNAPSHOT &&
    (data.source === STYLE_SHEET_RULE || data.source === STYLE_DECLARATION || data.source === ADOPTED_STYLE_SHEET)) {
    for (const key of Object.keys(data)) if (key !== "source" && key !== "id" && key !== "styleId") data[key] = neutralizeStrings(data[key], assets);
  }
  return event;
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
