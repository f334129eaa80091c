/**
 * The mirror sends nothing to the network (issue 14, item 7). The customer's page is hostile
 * content in the agent's (and an auditor's) browser: an image, a CSS background, a font or a
 * `<link rel=prefetch>` in it would make the viewer's browser fetch any address (a tracking pixel,
 * a request to this server with the agent's cookie). Before rrweb replays an event, every address
 * it carries is neutralised unless it is `data:` or `blob:` (content that came inside the
 * encrypted channel: images the customer's SDK could read are inlined there, `rr_dataURL`);
 * resource hints are dropped. The console's CSP (`img-src`/`font-src` without `*`) and the API's
 * Fetch-Metadata check stop whatever slips through.
 */

const FULL_SNAPSHOT = 2;
const INCREMENTAL_SNAPSHOT = 3;
const MUTATION = 0;
const SERIALIZED_ELEMENT = 2;
const SERIALIZED_TEXT = 3;

/** Attributes whose value the browser fetches (or may), on any element. */
const FETCHED = new Set([
  "src", "srcset", "poster", "background", "data", "xlink:href", "imagesrcset", "lowsrc", "dynsrc",
  "ping", "manifest", "codebase", "archive", "longdesc", "action", "formaction", "itemtype",
]);
/** `href` fetches on these (on `a` and `area` it only navigates, which the sandbox forbids). */
const HREF_FETCHES = new Set(["link", "image", "use", "feimage", "script", "base"]);

/** Only content that is already here. */
function local(url: string): boolean {
  return /^\s*(data|blob):/i.test(url);
}

/**
 * CSS with every fetch broken: `url(…)` (escaped spellings too), `image-set(…)`, `image(…)`,
 * `src(…)` and `@import` lose their address unless it is `data:`/`blob:`. A broken declaration
 * is dropped by the CSS parser; the rest of the style stays.
 */
export function neutralizeCss(css: string): string {
  // Unescape first so `\75 rl(` cannot hide a url(; CSS escapes in a url are rare in real pages.
  const plain = css.replace(/\\([0-9a-fA-F]{1,6})\s?/g, (_, hex: string) => {
    const code = parseInt(hex, 16);
    return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : "\ufffd";
  }).replace(/\\([^\n0-9a-fA-F])/g, "$1");
  return plain
    .replace(/@import[^;]*;?/gi, "")
    .replace(/\b(url|src)\(\s*(['"]?)([^)'"]*)\2\s*\)/gi, (whole, _fn: string, _q: string, address: string) =>
      local(address) ? whole : "none")
    // What the pattern above could not take apart (a quoted `)`...): broken, not fetched.
    .replace(/\b(url|src)\(\s*(?!['"]?\s*(?:data|blob):)/gi, "blocked-$1(")
    .replace(/\b((?:-webkit-)?image-set|image|cross-fade|element)\(/gi, "blocked-$1(");
}

/** `<link>` kinds that fetch ahead of need (or connect): dropped whole. */
const HINTS = /\b(prefetch|preload|modulepreload|prerender|dns-prefetch|preconnect|next|icon|apple-touch-icon|manifest|search|pingback)\b/i;

function neutralizeAttributes(tag: string, attrs: Record<string, unknown>): void {
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value !== "string") continue;
    const key = name.toLowerCase();
    if (key === "style" || key === "_csstext") attrs[name] = neutralizeCss(value);
    else if (FETCHED.has(key) || (key === "href" && HREF_FETCHES.has(tag))) {
      if (!local(value) || key.endsWith("srcset")) delete attrs[name];
    }
  }
  if (typeof attrs.rr_dataURL === "string" && !local(attrs.rr_dataURL)) delete attrs.rr_dataURL;
  if (tag === "link" && typeof attrs.rel === "string" && HINTS.test(attrs.rel)) {
    attrs.rel = "";
    delete attrs.href;
  }
  if (tag === "meta" && typeof attrs["http-equiv"] === "string") delete attrs.content; // refresh
}

interface Serialized {
  type?: unknown; tagName?: unknown; attributes?: unknown; childNodes?: unknown; textContent?: unknown; isStyle?: unknown;
}

function neutralizeTree(root: unknown): void {
  const stack: unknown[] = [root];
  while (stack.length) {
    const node = stack.pop() as Serialized | null;
    if (!node || typeof node !== "object") continue;
    if (node.type === SERIALIZED_ELEMENT && typeof node.tagName === "string" && node.attributes && typeof node.attributes === "object") {
      neutralizeAttributes(node.tagName.toLowerCase(), node.attributes as Record<string, unknown>);
    } else if (node.type === SERIALIZED_TEXT && node.isStyle === true && typeof node.textContent === "string") {
      node.textContent = neutralizeCss(node.textContent);
    }
    if (Array.isArray(node.childNodes)) for (const child of node.childNodes) stack.push(child);
  }
}

/** Style-sheet rule events (source 8, 13) and style declarations (source 13's set). */
const STYLE_SHEET_RULE = 8;
const STYLE_DECLARATION = 13;
const ADOPTED_STYLE_SHEET = 15;

function neutralizeStrings(value: unknown): unknown {
  if (typeof value === "string") return neutralizeCss(value);
  if (Array.isArray(value)) return value.map(neutralizeStrings);
  if (value && typeof value === "object") {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = neutralizeStrings(v);
    return out;
  }
  return value;
}

/** Neutralise one rrweb event in place (before `Replayer.addEvent` or `new Replayer`). */
export function neutralizeEvent<T>(event: T): T {
  const e = event as { type?: unknown; data?: Record<string, unknown> } | null;
  if (!e || typeof e !== "object" || !e.data || typeof e.data !== "object") return event;
  const data = e.data;
  if (e.type === FULL_SNAPSHOT) {
    neutralizeTree(data.node);
  } else if (e.type === INCREMENTAL_SNAPSHOT && data.source === MUTATION) {
    if (Array.isArray(data.adds)) for (const add of data.adds) neutralizeTree((add as { node?: unknown })?.node);
    if (Array.isArray(data.texts)) {
      for (const text of data.texts as { value?: unknown }[]) {
        if (text && typeof text.value === "string") text.value = neutralizeCss(text.value);
      }
    }
    if (Array.isArray(data.attributes)) {
      for (const change of data.attributes as { attributes?: unknown }[]) {
        if (!change?.attributes || typeof change.attributes !== "object") continue;
        const attrs = change.attributes as Record<string, unknown>;
        // The tag is not in the event: treat `href` as fetching (an anchor only loses its link).
        if (typeof attrs.href === "string" && !local(attrs.href)) delete attrs.href;
        for (const [name, value] of Object.entries(attrs)) {
          if (name === "style" && value && typeof value === "object") attrs[name] = neutralizeStrings(value);
        }
        neutralizeAttributes("", attrs);
      }
    }
  } else if (e.type === INCREMENTAL_SNAPSHOT &&
    (data.source === STYLE_SHEET_RULE || data.source === STYLE_DECLARATION || data.source === ADOPTED_STYLE_SHEET)) {
    for (const key of Object.keys(data)) if (key !== "source" && key !== "id" && key !== "styleId") data[key] = neutralizeStrings(data[key]);
  }
  return event;
}
