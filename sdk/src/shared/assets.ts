/**
 * Page assets carried inside the encrypted channel (issue 14, item 7). The agent's mirror fetches
 * nothing from the network; instead the customer's browser, which already shows the page, reads
 * the same-origin images, fonts and stylesheets the recorded page uses and sends their bytes as
 * `asset` payloads, before the events that use them. Both sides hold to the limits and the types
 * here: the customer's SDK sends nothing else, and the console accepts nothing else (a hostile
 * page can send what it likes through a tampered SDK).
 */

/** One asset: the address the recorded events name, its type (one of ASSET_TYPES) and bytes. */
export interface AssetPayload {
  k: "asset";
  url: string;
  type: AssetType;
  /** The bytes, base64 (standard alphabet, padded). */
  data: string;
}

/** Largest single asset, in bytes (larger ones are not sent: the mirror shows none). */
export const MAX_ASSET_BYTES = 2 * 1024 * 1024;
/** Most asset bytes one session carries (the console keeps them until the session ends). */
export const MAX_SESSION_ASSET_BYTES = 24 * 1024 * 1024;
/** Most distinct assets one session carries. */
export const MAX_SESSION_ASSETS = 500;
/** Longest address an asset may have. */
export const MAX_ASSET_URL = 2048;

export type AssetType =
  | "image/png" | "image/jpeg" | "image/gif" | "image/webp" | "image/avif" | "image/svg+xml"
  | "image/x-icon" | "font/woff" | "font/woff2" | "font/ttf" | "font/otf" | "text/css";

/** What each type's bytes must begin with (null: text, checked otherwise). */
const SIGNATURES: Record<AssetType, readonly (readonly (number | null)[])[] | null> = {
  "image/png": [[0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]],
  "image/jpeg": [[0xff, 0xd8, 0xff]],
  "image/gif": [[0x47, 0x49, 0x46, 0x38]],
  // RIFF....WEBP
  "image/webp": [[0x52, 0x49, 0x46, 0x46, null, null, null, null, 0x57, 0x45, 0x42, 0x50]],
  // ....ftypavif / ftypavis
  "image/avif": [[null, null, null, null, 0x66, 0x74, 0x79, 0x70, 0x61, 0x76, 0x69]],
  "image/x-icon": [[0x00, 0x00, 0x01, 0x00]],
  "font/woff": [[0x77, 0x4f, 0x46, 0x46]],
  "font/woff2": [[0x77, 0x4f, 0x46, 0x32]],
  "font/ttf": [[0x00, 0x01, 0x00, 0x00], [0x74, 0x72, 0x75, 0x65]],
  "font/otf": [[0x4f, 0x54, 0x54, 0x4f]],
  "image/svg+xml": null,
  "text/css": null,
};

export const ASSET_TYPES = Object.keys(SIGNATURES) as AssetType[];

/** Content-Type spellings servers use, to the one type sent. */
const ALIASES: Record<string, AssetType> = {
  "image/jpg": "image/jpeg", "image/pjpeg": "image/jpeg", "image/vnd.microsoft.icon": "image/x-icon",
  "application/font-woff": "font/woff", "application/x-font-woff": "font/woff",
  "application/font-woff2": "font/woff2", "application/x-font-ttf": "font/ttf",
  "application/x-font-truetype": "font/ttf", "application/x-font-opentype": "font/otf",
  "application/font-sfnt": "font/ttf", "font/sfnt": "font/ttf",
};

/** The asset type of a Content-Type header, or null for any other. */
export function assetType(contentType: string | null): AssetType | null {
  const essence = (contentType ?? "").split(";")[0].trim().toLowerCase();
  if ((ASSET_TYPES as string[]).includes(essence)) return essence as AssetType;
  return ALIASES[essence] ?? null;
}

/**
 * Whether `bytes` really are `type`: binary types by their signature; SVG must be XML text whose
 * root is `<svg`; CSS must be UTF-8 text without NUL bytes. A stylesheet served as an image (or
 * an HTML page as anything) is refused.
 */
export function looksLike(type: AssetType, bytes: Uint8Array): boolean {
  const signatures = SIGNATURES[type];
  if (signatures) {
    return signatures.some((signature) =>
      bytes.length >= signature.length && signature.every((b, i) => b === null || bytes[i] === b));
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return false;
  }
  if (text.includes("\u0000")) return false;
  if (type === "image/svg+xml") {
    // Past an XML declaration, comments and a doctype, the root element must be <svg>.
    const body = text.replace(/^\ufeff?\s*(<\?xml[\s\S]*?\?>\s*)?((<!--[\s\S]*?-->|<!DOCTYPE[^>]*>)\s*)*/i, "");
    return /^<svg[\s>]/i.test(body);
  }
  return !/^\s*</.test(text); // CSS, not markup
}

export function isImage(type: AssetType): boolean {
  return type.startsWith("image/");
}

/** Standard base64 of `bytes` (in chunks: no call with millions of arguments). */
export function encodeBase64(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

/** Inverse of encodeBase64; throws on anything that is not base64. */
export function decodeBase64(text: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new Error("not base64");
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** Whether `value` is an asset payload within the limits (the console's check on arrival). */
export function isAssetPayload(value: Record<string, unknown>): boolean {
  return value.k === "asset" && typeof value.url === "string" && value.url.length > 0 &&
    value.url.length <= MAX_ASSET_URL && typeof value.type === "string" &&
    (ASSET_TYPES as string[]).includes(value.type) && typeof value.data === "string" &&
    value.data.length <= Math.ceil(MAX_ASSET_BYTES / 3) * 4;
}

/**
 * `url(…)` with its address: in double quotes (group 2), single quotes (3) or none (4). Written so
 * that the regular expression engine never tries a character in two places (`(?=(x*))\n` takes a
 * run whole, as an atomic group would), and each look ends at the next quote of its kind or, with
 * none, at the next bracket: as `\(\s*(['"]?)([^)'"]*)\1\s*\)` it tried every split of a run of
 * spaces after `url(` between its quantifiers (`url(` and 4,000 spaces: 40 s of the customer's tab).
 */
const CSS_URL = /\burl\((?=(\s*))\1(?:"(?=([^"]*))\2"|'(?=([^']*))\3'|(?=([^()'"\s]*))\4)(?=(\s*))\5\)/gi;

/** Every address a CSS text fetches with `url(…)` (quoted or not), as written. */
export function cssUrls(css: string): string[] {
  const found: string[] = [];
  for (const match of css.matchAll(CSS_URL)) {
    const address = (match[2] ?? match[3] ?? match[4] ?? "").trim();
    if (address) found.push(address);
  }
  return found;
}

/** `css` without its `@font-face` rules, each up to the first `}` after its `{` (a rule that never
 * closes, and those after it, kept: as `@font-face\s*\{[^}]*\}` looked to the end of the text from
 * each, 20,000 unclosed ones took 6 s). */
function withoutFontFaces(css: string): string {
  const start = /@font-face\s*\{/gi;
  const kept: string[] = [];
  let at = 0;
  for (let match = start.exec(css); match; match = start.exec(css)) {
    const end = css.indexOf("}", start.lastIndex);
    if (end < 0) break;
    kept.push(css.slice(at, match.index), " ");
    at = start.lastIndex = end + 1;
  }
  kept.push(css.slice(at));
  return kept.join("");
}

/** The addresses of a CSS text that show images: every `url(…)` but those of `@font-face` rules
 * (fonts) and of `@import`s (style sheets). */
export function cssImageUrls(css: string): string[] {
  return cssUrls(withoutFontFaces(css).replace(/@import\b[^;]*;?/gi, " "));
}

/** The addresses of a `srcset` (`a.png 1x, b.png 2x`). */
export function srcsetUrls(srcset: string): string[] {
  return srcset.split(",").map((candidate) => candidate.trim().split(/\s+/)[0]).filter(Boolean);
}
