/**
 * The site's brand on the customer widget (issue 15): `Tandem.start({brand: {name, logo, colours,
 * radius}})`, or CSS custom properties on the page (`--tandem-accent`...; they inherit into the
 * widget's shadow roots). docs/branding.md lists them.
 *
 * What a brand may not do: open a channel out of the page or run script. So the logo is an image
 * from the page's own origin (http or https) or a `data:image/...;base64,` URL of at most
 * MAX_LOGO_DATA characters, drawn with `<img>` (which never runs script, also for SVG) and no
 * referrer; colours are hex only (#rgb or #rrggbb: nothing to inject into the stylesheet, and
 * their contrast can be computed), and the text on each colour is chosen for at least 4.5:1.
 */

export class BrandError extends Error {}

export interface BrandColours {
  /** Primary buttons (Allow...). */
  accent?: string;
  /** The sharing banner's background. */
  banner?: string;
}

export interface BrandOptions {
  /** The company's name: "Alice from {name} support". Defaults to the page's host name. */
  name?: string;
  /** Same-origin image URL or data:image/(png|jpeg|gif|webp|svg+xml);base64,... */
  logo?: string;
  colours?: BrandColours;
  /** Corner radius of panels and dialogs, in CSS pixels (0-24). */
  radius?: number;
}

/** A validated brand. */
export interface Brand {
  name: string | null;
  logo: string | null;
  accent: string | null;
  banner: string | null;
  radius: number | null;
}

export const NO_BRAND: Brand = { name: null, logo: null, accent: null, banner: null, radius: null };
export const MAX_NAME = 60;
export const MAX_LOGO_DATA = 32 * 1024;
const HEX = /^#(?:[0-9a-f]{3}|[0-9a-f]{6})$/i;
const DATA_IMAGE = /^data:image\/(?:png|jpeg|gif|webp|svg\+xml);base64,[A-Za-z0-9+/]+={0,2}$/;

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** The logo as an address the widget may load, or a BrandError saying why not. */
export function validLogo(logo: string, pageHref: string): string {
  if (logo.startsWith("data:")) {
    if (logo.length > MAX_LOGO_DATA) throw new BrandError(`brand.logo: a data: URL may have at most ${MAX_LOGO_DATA} characters`);
    if (!DATA_IMAGE.test(logo)) throw new BrandError("brand.logo: only base64 data:image/png, jpeg, gif, webp or svg+xml URLs");
    return logo;
  }
  let url: URL;
  let page: URL;
  try {
    page = new URL(pageHref);
    url = new URL(logo, page);
  } catch {
    throw new BrandError("brand.logo is not a valid URL");
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") throw new BrandError("brand.logo must be an http(s) or data:image URL");
  if (url.origin !== page.origin) {
    throw new BrandError("brand.logo must come from this page's own origin (a third-party image would learn who asks for help)");
  }
  if (url.username || url.password) throw new BrandError("brand.logo must not carry credentials");
  return url.href;
}

/** Validate `Tandem.start`'s `brand` option. Throws BrandError with what is wrong. */
export function validateBrand(value: unknown, pageHref: string): Brand {
  if (value === undefined || value === null) return NO_BRAND;
  if (!isRecord(value)) throw new BrandError("brand must be an object");
  const known = new Set(["name", "logo", "colours", "colors", "radius"]);
  for (const key of Object.keys(value)) if (!known.has(key)) throw new BrandError(`brand.${key} is not an option`);
  const brand: Brand = { ...NO_BRAND };
  if (value.name !== undefined) {
    if (typeof value.name !== "string" || !value.name.trim() || value.name.length > MAX_NAME) {
      throw new BrandError(`brand.name must be a non-empty string of at most ${MAX_NAME} characters`);
    }
    brand.name = value.name.trim();
  }
  if (value.logo !== undefined) {
    if (typeof value.logo !== "string") throw new BrandError("brand.logo must be a string");
    brand.logo = validLogo(value.logo, pageHref);
  }
  const colours = value.colours ?? value.colors;
  if (colours !== undefined) {
    if (!isRecord(colours)) throw new BrandError("brand.colours must be an object");
    for (const key of Object.keys(colours)) {
      if (key !== "accent" && key !== "banner") throw new BrandError(`brand.colours.${key} is not an option (accent, banner)`);
      const colour = colours[key];
      if (typeof colour !== "string" || !HEX.test(colour)) throw new BrandError(`brand.colours.${key} must be a hex colour like #0b5fff`);
      brand[key] = colour.toLowerCase();
    }
  }
  if (value.radius !== undefined) {
    if (typeof value.radius !== "number" || !Number.isFinite(value.radius) || value.radius < 0 || value.radius > 24) {
      throw new BrandError("brand.radius must be a number of pixels from 0 to 24");
    }
    brand.radius = value.radius;
  }
  return brand;
}

/** WCAG relative luminance of a #rgb / #rrggbb colour. */
export function luminance(hex: string): number {
  const digits = hex.length === 4 ? [...hex.slice(1)].map((d) => d + d).join("") : hex.slice(1);
  const [r, g, b] = [0, 2, 4].map((i) => {
    const c = parseInt(digits.slice(i, i + 2), 16) / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}

export function contrast(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi + 0.05) / (lo + 0.05);
}

/** White or black, whichever reads better on `background` (always at least 4.5:1). */
export function textOn(background: string): string {
  return contrast(background, "#ffffff") >= contrast(background, "#000000") ? "#ffffff" : "#000000";
}

/** The brand's colours and radius as custom properties for the widget's stylesheet (validated
 * values only, so nothing can be injected). */
export function brandCss(brand: Brand): string {
  const props: string[] = [];
  if (brand.accent) props.push(`--tandem-accent: ${brand.accent}`, `--tandem-accent-text: ${textOn(brand.accent)}`);
  if (brand.banner) props.push(`--tandem-banner: ${brand.banner}`, `--tandem-banner-text: ${textOn(brand.banner)}`);
  if (brand.radius !== null) props.push(`--tandem-radius: ${brand.radius}px`);
  return props.length ? `.root { ${props.join("; ")}; }` : "";
}
