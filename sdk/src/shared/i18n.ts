/**
 * Message catalogues for every customer- and agent-facing string (issue 15, "Brand and language").
 *
 * Each area (the customer widget, the console's workspace, its office pages, training) keeps its
 * own catalogue: an English object whose keys are the message names, and one object per other
 * locale typed `Messages<typeof en>`, so a missing or extra key is a type error and
 * `missingKeys` catches it again at test time. Placeholders are `{name}`; a value is inserted as
 * text (the caller renders it with textContent or lit-html bindings, never as HTML).
 *
 * The locale comes from an explicit option, else the page's `<html lang>`, else the browser's
 * languages, else English; "de-AT" resolves to "de". Arabic is right-to-left: callers set
 * `dir` from `direction(locale)`.
 */

export const LOCALES = ["en", "de", "fr", "es", "ar"] as const;
export type Locale = (typeof LOCALES)[number];

/** A catalogue for another locale: exactly the English catalogue's keys, each a string. */
export type Messages<English> = { readonly [K in keyof English]: string };

/** One catalogue per locale. */
export type Catalogues<English extends Record<string, string>> = { readonly en: English } & {
  readonly [L in Exclude<Locale, "en">]: Messages<English>;
};

export type Params = Readonly<Record<string, string | number>>;
export type Translate<English extends Record<string, string>> = (key: keyof English & string, params?: Params) => string;

const RTL: ReadonlySet<Locale> = new Set<Locale>(["ar"]);

export function isLocale(value: string): value is Locale {
  return (LOCALES as readonly string[]).includes(value);
}

/**
 * The first of `preferences` that names a supported locale (by its primary subtag,
 * case-insensitively: "de-AT", "DE", "de_CH" are German), else English.
 */
export function pickLocale(...preferences: ReadonlyArray<string | null | undefined>): Locale {
  for (const preference of preferences) {
    if (!preference) continue;
    const primary = preference.trim().toLowerCase().split(/[-_]/)[0];
    if (isLocale(primary)) return primary;
  }
  return "en";
}

/** The locale a page asks for: an explicit option, the document's `lang`, the browser's languages. */
export function pageLocale(option?: string | null, doc: Document | undefined = globalThis.document): Locale {
  const lang = doc?.documentElement?.getAttribute("lang");
  const browser = typeof navigator !== "undefined" ? navigator.languages ?? [navigator.language] : [];
  return pickLocale(option, lang, ...browser);
}

export function direction(locale: Locale): "ltr" | "rtl" {
  return RTL.has(locale) ? "rtl" : "ltr";
}

/** `{name}` placeholders replaced by `params`; an unknown placeholder stays as written. */
export function format(template: string, params: Params = {}): string {
  return template.replace(/\{(\w+)\}/g, (whole, name: string) =>
    Object.prototype.hasOwnProperty.call(params, name) ? String(params[name]) : whole,
  );
}

/** A function that looks `key` up in `locale`'s catalogue (falling back to English) and formats it. */
export function translator<English extends Record<string, string>>(
  catalogues: Catalogues<English>,
  locale: Locale,
): Translate<English> {
  const messages = catalogues[locale] as Record<string, string>;
  const english = catalogues.en as Record<string, string>;
  return (key, params) => format(messages[key] ?? english[key] ?? key, params);
}

/** Keys of the English catalogue missing from (or empty in) another locale's, per locale. */
export function missingKeys<English extends Record<string, string>>(
  catalogues: Catalogues<English>,
): Partial<Record<Locale, string[]>> {
  const result: Partial<Record<Locale, string[]>> = {};
  for (const locale of LOCALES) {
    const messages = catalogues[locale] as Record<string, string>;
    const missing = Object.keys(catalogues.en).filter((key) => !messages[key]?.trim());
    const extra = Object.keys(messages).filter((key) => !(key in catalogues.en)).map((key) => `+${key}`);
    if (missing.length || extra.length) result[locale] = [...missing, ...extra];
  }
  return result;
}

/** Placeholders each message uses, so tests can check every translation keeps the English ones. */
export function placeholders(template: string): string[] {
  return [...template.matchAll(/\{(\w+)\}/g)].map((match) => match[1]).sort();
}
