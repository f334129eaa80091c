/**
 * Text from elsewhere that the browsers show in their own sentences and fields: names the relay
 * sends (an agent's, a supervisor's, a site's), the relay's own words (a close reason) and what a
 * customer's page says of itself (its title). All of it goes in as text (textContent, lit-html
 * bindings), so it can never be markup; what is checked here is what text alone can still do:
 *
 * - a bidirectional embedding, override or isolate (U+202A-U+202E, U+2066-U+2069) reorders the
 *   rest of the sentence it is put in ("‮" turned "<name> wants to see this page" around);
 * - a control character, a line or paragraph separator breaks it into lines that read as others
 *   (a second status line, another fact);
 * - a private-use character or a lone surrogate draws as whatever a font makes of it.
 */

/** At most this many characters in a name (the server's rule, src/tandem/directory.py `_label`). */
export const MAX_NAME = 100;
/** At most this many characters of the relay's or a page's words in a line of the console. */
export const MAX_WORDS = 200;

const UNPRINTABLE = /[\p{Cc}\p{Cs}\p{Co}\p{Zl}\p{Zp}\u202a-\u202e\u2066-\u2069]/u;
const UNPRINTABLE_ALL = /[\p{Cc}\p{Cs}\p{Co}\p{Zl}\p{Zp}\u202a-\u202e\u2066-\u2069]/gu;
const VISIBLE = /[^\p{Z}\p{C}]/u;

/**
 * Whether `name` is a name as the honest server's own rule for names people read has it (an
 * account's display name or username, a site's or organisation's name; src/tandem/directory.py,
 * `_label`): 1 to 100 characters, none a control character (C0, DEL, C1), a surrogate, a
 * private-use character, a line or paragraph separator or a bidirectional embedding, override or
 * isolate, and at least one visible. null (no name) passes.
 */
export function plausibleName(name: string | null): boolean {
  if (name === null) return true;
  const length = [...name].length;
  return length >= 1 && length <= MAX_NAME && !UNPRINTABLE.test(name) && VISIBLE.test(name);
}

/**
 * `text` as one plain line to show: every control character, separator and bidirectional
 * control a space, runs of spaces one, trimmed, and cut to `limit` characters (an ellipsis
 * saying so). Never throws; `""` for text with nothing visible.
 */
export function plainLine(text: string, limit = MAX_WORDS): string {
  const line = text.replace(UNPRINTABLE_ALL, " ").replace(/\s+/gu, " ").trim();
  if (!VISIBLE.test(line)) return "";
  const chars = [...line];
  return chars.length <= limit ? line : `${chars.slice(0, limit - 1).join("").trimEnd()}…`;
}
