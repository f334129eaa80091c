/**
 * Text from elsewhere that the browsers show in their own sentences and fields: names the relay
 * sends (an agent's, a supervisor's, a site's), the relay's own words (a close reason) and what a
 * customer's page says of itself (its title). All of it goes in as text (textContent, lit-html
 * bindings), so it can never be markup; what is checked here is what text alone can still do:
 *
 * - a bidirectional embedding, override or isolate (U+202A-U+202E, U+2066-U+2069) reorders the
 *   rest of the sentence it is put in ("‮" turned "<name> wants to see this page" around);
 * - an invisible character (a right-to-left mark, a zero-width space, a tag character, a Hangul
 *   filler) makes one name look like another ("Ann Smith" with a U+200E after it);
 * - combining marks stacked hundreds deep draw over the lines around;
 * - a control character, a line or paragraph separator breaks it into lines that read as others
 *   (a second status line, another fact);
 * - a private-use character or a lone surrogate draws as whatever a font makes of it.
 */

/** At most this many characters in a name (the server's rule, src/tandem/names.py). */
export const MAX_NAME = 100;
/** At most this many characters of the relay's or a page's words in a line of the console. */
export const MAX_WORDS = 200;
/** At most this many combining marks on one character (src/tandem/names.py `MAX_MARKS`). */
export const MAX_MARKS = 4;
/** What an invisible character is shown as: a name that differs by one must look different. */
export const REPLACEMENT = "\ufffd";

const LINE_BREAKING = /[\p{Cc}\p{Zl}\p{Zp}]/u;
const INVISIBLE = /[\p{Cf}\p{Cs}\p{Co}\u115f\u1160\u3164\uffa0\u2800]/u;
const UNASSIGNED = /\p{Cn}/u;
const MARK = /[\p{Mn}\p{Me}]/u;
const SPACE = /\p{Z}/u;
const VISIBLE = /[^\p{Z}\p{C}\u115f\u1160\u3164\uffa0\u2800]/u;
const VIRAMAS = new Set("\u094d\u09cd\u0a4d\u0acd\u0b4d\u0bcd\u0c4d\u0ccd\u0d4d\u0dca");
const ARABIC = /[\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufefc]/u;
const LETTER = /\p{L}/u;
/** The scripts of VIRAMAS (Devanagari to Sinhala). */
const INDIC_LETTER = /[\u0900-\u0dff]/u;
const EMOJI_MODIFIER = /[\p{Sk}\p{Mn}]/u;
const PICTOGRAPH = /\p{So}/u;
/** Marks that draw nothing on any character: the combining grapheme joiner, the Khmer inherent
 * vowels (deprecated). */
const IGNORABLE_MARK = new Set("\u034f\u17b4\u17b5");
/** The Mongolian free variation selectors: they draw nothing after any other letter. */
const MONGOLIAN_SELECTOR = new Set("\u180b\u180c\u180d\u180f");
const MONGOLIAN_LETTER = /[\u1820-\u18aa]/u;
const SELECTOR = /[\ufe00-\ufe0f\u{e0100}-\u{e01ef}]/u;
const IDEOGRAPHIC_SELECTOR = /[\u{e0100}-\u{e01ef}]/u;
/** Punctuation that is also an emoji (‼ ⁉ 〰 〽), which a variation selector draws as one. */
const EMOJI_PUNCTUATION = new Set("\u203c\u2049\u3030\u303d");
const KEYCAP_BASE = new Set("0123456789#*");
const SYMBOL = /\p{S}/u;
const IDEOGRAPH = /\p{Unified_Ideograph}/u;
/** Code points never assigned (U+FDD0-U+FDEF, U+xFFFE, U+xFFFF): whatever this browser's
 * Unicode version, never a name's. */
const noncharacter = (c: string): boolean => {
  const point = c.codePointAt(0) ?? 0;
  return (point >= 0xfdd0 && point <= 0xfdef) || (point & 0xfffe) === 0xfffe;
};

const arabicLetter = (c: string | undefined): boolean => c !== undefined && ARABIC.test(c) && LETTER.test(c);

/**
 * Whether the zero-width joiner or non-joiner at `i` does what names need one for: after an
 * Indic virama (a conjunct), a non-joiner between two Arabic-script letters (Persian), a joiner
 * between two emoji (👩‍💻). Anywhere else it draws nothing and only tells look-alikes apart.
 */
function joinerInPlace(chars: string[], i: number): boolean {
  if (i === 0) return false;
  const zwj = chars[i] === "\u200d";
  // Last: only a joiner after a virama, Malayalam's chillu "അന്‍വര്‍" (a non-joiner there
  // changes nothing).
  if (i === chars.length - 1) return zwj && VIRAMAS.has(chars[i - 1]);
  // After a virama (a conjunct).
  if (VIRAMAS.has(chars[i - 1])) return true;
  // Between an Indic letter and a virama: Bengali's ra-phala "র‍্যাচেল", Sinhala's touching letters.
  if (zwj && VIRAMAS.has(chars[i + 1]) && INDIC_LETTER.test(chars[i - 1]) && LETTER.test(chars[i - 1])) return true;
  let back = i - 1;
  while (back > 0 && (zwj ? EMOJI_MODIFIER : MARK).test(chars[back])) back--;
  if (!zwj) return arabicLetter(chars[back]) && arabicLetter(chars[i + 1]);
  return PICTOGRAPH.test(chars[back]) && PICTOGRAPH.test(chars[i + 1]);
}

/**
 * Whether the variation selector at `i` chooses how the character before it is drawn (names.py
 * `_selector_in_place`): U+FE0E/U+FE0F after a symbol or an emoji's punctuation (❤️), or after a
 * keycap's base before its U+20E3 (1️⃣); U+FE00-U+FE0D after a symbol; an ideographic one
 * (U+E0100-U+E01EF) or U+FE00-U+FE0D after a CJK ideograph; a Mongolian one after a Mongolian
 * letter. After a Latin letter it draws nothing. First or after a space: the rule of marks.
 */
function selectorInPlace(chars: string[], i: number): boolean {
  const c = chars[i];
  if (i === 0 || SPACE.test(chars[i - 1])) return true;
  const before = chars[i - 1];
  if (MONGOLIAN_SELECTOR.has(c)) return MONGOLIAN_LETTER.test(before) && LETTER.test(before);
  if (IDEOGRAPHIC_SELECTOR.test(c)) return IDEOGRAPH.test(before);
  if (c === "\ufe0e" || c === "\ufe0f") {
    if (KEYCAP_BASE.has(before)) return chars[i + 1] === "\u20e3";
    if (EMOJI_PUNCTUATION.has(before)) return true;
  }
  return SYMBOL.test(before) || IDEOGRAPH.test(before);
}

function invisibleAt(chars: string[], i: number, unassigned: boolean): boolean {
  const c = chars[i];
  if (c === "\u200c" || c === "\u200d") return !joinerInPlace(chars, i);
  if (IGNORABLE_MARK.has(c)) return true;
  if (MONGOLIAN_SELECTOR.has(c) || SELECTOR.test(c)) return !selectorInPlace(chars, i);
  return INVISIBLE.test(c) || noncharacter(c) || (unassigned && UNASSIGNED.test(c));
}

/**
 * Whether `name` is a name as the honest server's own rule for names people read has it (an
 * account's display name, a site's or organisation's name; src/tandem/names.py, `name_refusal`):
 * 1 to 100 characters, none a control character (C0, DEL, C1), a line or paragraph separator, a
 * format character (every bidirectional mark, embedding, override and isolate, zero-width
 * characters but a joiner in place, word joiner, tag characters...), a surrogate, a private-use
 * character or a Hangul filler; no combining mark (a variation selector) on nothing and at most
 * MAX_MARKS on one character; at least one visible. null (no name) passes. (Unassigned code
 * points pass here: the server refuses them by its own Unicode version, which may be newer.)
 */
export function plausibleName(name: string | null): boolean {
  if (name === null) return true;
  const chars = [...name];
  if (chars.length < 1 || chars.length > MAX_NAME) return false;
  let marks = 0;
  let before = " ";
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i];
    if (LINE_BREAKING.test(c) || invisibleAt(chars, i, false)) return false;
    if (MARK.test(c)) {
      if (SPACE.test(before) || ++marks > MAX_MARKS) return false;
    } else {
      marks = 0;
      before = c;
    }
  }
  return chars.some((c) => VISIBLE.test(c));
}

/**
 * `text` as one plain line to show: every control character and separator a space, every
 * invisible character (bidirectional controls, zero-width characters, tag characters, Hangul
 * fillers, a mark on nothing) a visible U+FFFD, so that "Ann Smith" and "Ann Smith" with an
 * invisible mark look different; marks past MAX_MARKS on one character dropped, runs of spaces
 * one, trimmed, and cut to `limit` characters (an ellipsis saying so). Never throws; `""` for
 * text with nothing visible.
 */
export function plainLine(text: string, limit = MAX_WORDS): string {
  // Twice: a joiner in its place beside a character the first pass replaced, or a space it
  // trimmed, is no longer in it.
  const once = shownOnce([...text]).join("").replace(/\s+/gu, " ").trim();
  const line = shownOnce([...once]).join("").replace(/\s+/gu, " ").trim();
  if (!VISIBLE.test(line)) return "";
  const shown = [...line];
  return shown.length <= limit ? line : `${shown.slice(0, limit - 1).join("").trimEnd()}…`;
}

function shownOnce(chars: string[]): string[] {
  const out: string[] = [];
  let marks = 0;
  for (let i = 0; i < chars.length; i++) {
    let c = chars[i];
    if (LINE_BREAKING.test(c)) c = " ";
    else if (invisibleAt(chars, i, true)) c = REPLACEMENT;
    if (MARK.test(c)) {
      const previous = out[out.length - 1];
      if (previous === undefined || SPACE.test(previous)) {
        c = REPLACEMENT;
        marks = 0;
      } else if (++marks > MAX_MARKS) continue;
    } else marks = 0;
    out.push(c);
  }
  return out;
}
