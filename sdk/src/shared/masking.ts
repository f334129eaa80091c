/**
 * Masking at the source: decides what of the customer's page may leave the browser.
 *
 * Rules (docs/privacy.md):
 * - Every input, textarea and select value, and every checkbox, radio and option choice, is masked
 *   unless the element (or an ancestor) carries `data-tandem-unmask`.
 * - Sensitive fields are masked even then: passwords, hidden inputs, `autocomplete` cc-* and
 *   one-time-code / current-password / new-password, fields named or labelled a password, a PIN
 *   or a card's security code (`cvv`, `pin`...), and fields the page draws as discs
 *   (`-webkit-text-security`).
 * - Payment card numbers (Luhn-valid, 13-19 digits, spaces or dashes between; also other
 *   separators and full-width digits: maskLooseRuns) are masked in every
 *   value, in page text, and in every string of every recorded event.
 * - In input values any run of 7 or more digits is masked too: a card number typed key by key
 *   passes through prefixes that are not Luhn-valid (PCI DSS allows at most the first six digits
 *   to be shown).
 * - Text typed into an editor (under a `contenteditable` host) is a value like a field's: hidden
 *   unless unmasked, then with the digit rules above. A masked region keeps only structural
 *   attribute values (STRUCTURAL_ATTRIBUTES); its links keep their scheme at most.
 * - Marks that sites already set for rrweb-based tools count too: text inside `.rr-mask` is
 *   masked, values inside `.rr-mask`, `.rr-ignore` or `.rr-block` are hidden, `.rr-block` regions
 *   are replaced by boxes.
 * - A hidden field's other attributes that repeat its value are hidden with it; comments say
 *   nothing; a frame's `srcdoc` and an embedded document's `data:` address (the document's markup
 *   itself) are never sent; every attribute that names an address loses its query, fragment and
 *   user name and password (scrubEvent), and so does an address with a scheme in any other
 *   string, a whole value that is a path, and every `url()` and `@import` of CSS (stripAddressesIn,
 *   stripCssUrls).
 * - Copies of a hidden value the page writes elsewhere (a preview, an error message, another
 *   element's attributes, style text) are masked in every string of every event (maskCopies);
 *   a hidden field's and its wrapper's state classes, `aria-invalid` and `data-*` values are not
 *   sent (hideFieldState).
 * A hidden value becomes a fixed-width placeholder (MASK_PLACEHOLDER, whatever its length: the
 *   agent learns only that the field is filled); `data-tandem-mask="length"` on the field or an
 *   ancestor keeps one `•` per character instead. Digits masked inside a shown value (card
 *   numbers) and text in masked regions keep their shape. The options of a hidden `<select>` all
 *   read as the placeholder and none is marked selected, so the agent sees a neutral placeholder,
 *   never a wrong option (and never the chosen one).
 *
 * Hostile page shapes (issue 14): every read of the page goes through the DOM's prototypes
 * (./dom.ts), so `<form><input name="tagName">` cannot break it; and any error while masking fails
 * closed (the value or text is masked whole, the node's attributes are masked) and is reported
 * through `onMaskingFailure`, so both sides learn that part of the page cannot be shown.
 */

import {
  asElement, assignedSlotOf, drawnAsDots, attributeOf, boundingBoxOf, CDATA_SECTION_NODE, childElementsIn, childElementsOf, closestOf, COMMENT_NODE, DOCUMENT_FRAGMENT_NODE, DOCUMENT_NODE, elementByIdIn,
  ELEMENT_NODE, firstChildOf, firstInside, frameElementOf, hasAttributeOn, hostOf, isConnectedNode, labelControlOf, labelsOf, lastChildOf, liveValueOf, localNameOf,
  matchesOf, nextSiblingOf, nodeTypeOf, nodeValueOf, parentElementOf, parentNodeOf, precedesNode, previousSiblingOf, queryAllIn,
  rootNodeOf, shadowParentOf, shadowRootOf, TEXT_NODE, textContentUpTo,
} from "./dom.ts";
import { DEFAULT_POLICY, type Policy } from "./policy.ts";
import {
  FULL_SNAPSHOT, INCREMENTAL_SNAPSHOT, INPUT, MOUSE_INTERACTION, MUTATION, SCROLL, SELECTION, SERIALIZED_CDATA, SERIALIZED_COMMENT, SERIALIZED_ELEMENT,
  SERIALIZED_TEXT,
} from "./rrweb-events.ts";

export const MASK = "\u2022";
/** What a hidden value shows, whatever its length (issue 15: the bullet count told the length). */
export const MASK_PLACEHOLDER = MASK.repeat(8);
/** Keeps a hidden value's length (one `•` per character) on the field or an ancestor. */
export const KEEP_LENGTH_SELECTOR = '[data-tandem-mask="length" i]';

/** An element of the customer's page; read only through ./dom.ts. */
export type MaskableElement = Element;

const SENSITIVE_AUTOCOMPLETE = /^(cc-|one-time-code$|current-password$|new-password$)/;
const UNMASK_SELECTOR = "[data-tandem-unmask]";
/** rrweb's privacy classes (`maskTextClass`, `ignoreClass`, `blockClass` defaults). */
const RR_MASK = ".rr-mask";
const RR_VALUE_HIDDEN = ".rr-mask, .rr-ignore, .rr-block";
export const RR_BLOCK = ".rr-block";

let failureListener: ((error: unknown) => void) | null = null;

/** Called (with the error) whenever masking failed and fell back to hiding something whole. */
export function onMaskingFailure(listener: ((error: unknown) => void) | null): void {
  failureListener = listener;
}

function failed(error: unknown): void {
  try {
    failureListener?.(error);
  } catch {
    // a listener's own failure must not undo the fallback
  }
}

/**
 * The policy in force for this page (rrweb's recorder is page-global too). Set by the SDK when
 * sharing starts; tests set it directly. Defaults to the private default policy.
 */
let active: Policy = DEFAULT_POLICY;
let maskSelector = RR_MASK;
let unmaskSelector = UNMASK_SELECTOR;

/** What `inMaskedRegion` looks for (rrweb's marks, Tandem's own UI, the policy's mask and hide),
 * made once per policy. */
let regionSelector: string | null = null;
/** What rrweb blocks (recordMaskingOptions' `blockSelector`) but the forms blocked for their
 * shape (inClobberedForm), for maskFormState; once per policy. */
let blockedSelector: string | null = null;

export function usePolicy(policy: Policy): void {
  active = policy;
  maskSelector = [RR_MASK, ...policy.mask].join(", ");
  unmaskSelector = [UNMASK_SELECTOR, ...policy.unmask].join(", ");
  regionSelector = null;
  blockedSelector = null;
}

/**
 * What one masking pass over a recorded event (maskFormState) learnt about elements, so a page
 * of thousands of nodes is read once per element, not once per descendant text: whether an
 * element lies in a masked region, and whether its short text holds a card number. Valid only
 * while the pass runs: the pass is synchronous and reads the page through the DOM's prototypes
 * (./dom.ts), so no page script can change the page meanwhile; each pass starts empty.
 */
interface PassMemo {
  masked: Map<Element, boolean>;
  cards: Map<Node, CardAround>;
  /** Whether an element lies in a blocked region (a batch of adds shares a few parents). */
  blocked: Map<Element, boolean>;
  /** Whether a form is blocked for its shape (clobberedForm): each form's controls read once. */
  clobbered?: Map<Element, boolean>;
  /** Whether an element holds a one-time-code field drawn as slots (isCodeSlot). */
  slots?: Map<Element, boolean>;
  /** The slots each element is drawn in (slotsAbove). */
  slotted?: Map<Element, Element[]>;
  /** By document or shadow root, once a second field of it asks (saidToBePassword): its elements
   * with `aria-controls` by each id they name, and its `<label>`s by the field each labels, in
   * tree order. One walk of the tree for all its fields, instead of one a field (`labels` and
   * `[aria-controls~=…]` each walk the whole tree). */
  toggles?: Map<Node, Map<string, Element[]> | null>;
  labels?: Map<Node, Map<Element, Element[]> | null>;
}
let memo: PassMemo | null = null;

function insideMasked(el: MaskableElement): boolean {
  const known = memo?.masked.get(el);
  if (known !== undefined) return known;
  const masked = composedClosest(el, maskSelector) !== null;
  memo?.masked.set(el, masked);
  return masked;
}

/** Shadow roots and frames nest, but never this deep in a real page: deeper counts as a match. */
const MAX_COMPOSED_DEPTH = 1000;

/**
 * The element just outside the tree `node` is in: a shadow root's host, or the frame that shows
 * a same-origin document; null for the page's own document and for a detached tree. Throws when
 * it cannot tell (a fragment that is no shadow root, a removed frame's document).
 */
function outerElementOf(node: Node): Element | null {
  const root = rootNodeOf(node);
  const type = nodeTypeOf(root);
  if (type === DOCUMENT_FRAGMENT_NODE) return hostOf(root);
  if (type === DOCUMENT_NODE) return frameElementOf(root);
  return null;
}

/**
 * The element `node` sits in, through shadow roots and frames: its parent element, else (text
 * or an element right in a shadow root, a frame's root element or document) the shadow host or
 * the frame. Null for a detached node. Throws when it cannot tell.
 */
export function composedParentElement(node: Node): Element | null {
  return parentElementOf(node) ?? outerElementOf(node);
}

/**
 * `closest` that does not stop at a shadow root or a same-origin frame's document: it goes on
 * from the shadow host, or from the frame in the page around (`closest` alone let a masked or
 * hidden region's web components and frames out), and from the slot an element is drawn in (a
 * component's masked region around its slot holds what the page gives it). Null only when no ancestor matches; throws
 * when the ancestry cannot be read (callers fail closed). Only for selectors that hide: a mark
 * that shows (`data-tandem-unmask`) reaches no further than `closest` does. With `accept`, only
 * the ancestors matching `selector` that it accepts count (the others are passed by).
 */
export function composedClosest(el: Element, selector: string, accept?: (found: Element) => boolean): Element | null {
  // Content a web component draws in a slot lies where the slot is (its shadow root's region
  // marked `mask` or `.rr-mask`): the slots' ancestors are looked at too, each slot once.
  const starts: Element[] = [...slotsAbove(el, true)];
  const seen = new Set<Element>(starts);
  starts.unshift(el);
  let depth = 0;
  while (starts.length) {
    let current: Element | null = starts.pop() as Element;
    while (current) {
      if (++depth >= MAX_COMPOSED_DEPTH) return el;
      let found = closestOf(current, selector);
      while (found && accept && !accept(found)) {
        if (++depth >= MAX_COMPOSED_DEPTH) return el;
        const above = parentElementOf(found);
        found = above ? closestOf(above, selector) : null;
      }
      if (found) return found;
      for (const slot of slotsAbove(current, false)) {
        if (seen.has(slot)) continue;
        seen.add(slot);
        starts.push(slot);
      }
      current = outerElementOf(current);
    }
  }
  return null;
}

/**
 * The slots of open shadow roots that `el` or its ancestors in its own tree are drawn in (an
 * element that is a shadow host's child, assigned to a slot), and (`ownText`, for the element a
 * search starts from) when `el` is itself a host, its root's default slot (the host's own text
 * is drawn there; a host met further up is not drawn in its own slot). Within a masking pass each
 * element's answer is kept (memo.slots): the ancestors' are shared.
 */
function slotsAbove(el: Element, ownText: boolean): Element[] {
  if (!ownText) return slotsOfAncestry(el);
  const own = shadowRootOf(el);
  const fallback = own ? queryAllIn(own, "slot:not([name])")[0] : undefined;
  return fallback ? [fallback, ...slotsOfAncestry(el)] : slotsOfAncestry(el);
}

/** The slots `el` and its ancestors in its tree are assigned to; kept per element within a pass
 * (memo.slotted), so a page's elements share their ancestors' answers. */
function slotsOfAncestry(el: Element): Element[] {
  const kept = memo ? (memo.slotted ??= new Map()) : null;
  const chain: Element[] = [];
  let above: Element[] = [];
  for (let node: Element | null = el; node && chain.length < MAX_COMPOSED_DEPTH; node = parentElementOf(node)) {
    const known = kept?.get(node);
    if (known) {
      above = known;
      break;
    }
    chain.push(node);
  }
  for (let i = chain.length - 1; i >= 0; i--) {
    const node = chain[i];
    const parent = parentElementOf(node);
    const slot = parent && shadowRootOf(parent) ? assignedSlotOf(node) : null;
    above = slot ? [slot, ...above] : above;
    kept?.set(node, above);
  }
  return above;
}

export function luhnValid(digits: string): boolean {
  if (!/^\d+$/.test(digits)) return false;
  let sum = 0;
  let double = false;
  for (let i = digits.length - 1; i >= 0; i--) {
    let d = digits.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return sum % 10 === 0;
}

/** Digit runs with at most one space or dash between digits: "4111 1111-1111 1111". */
const DIGIT_RUN = /\d(?:[ -]?\d)*/g;

function maskDigits(run: string): string {
  return run.replace(/\d/g, MASK);
}

/**
 * Which digits of a run belong to a card number. Candidate numbers are the spans of 13-19 digits
 * between group boundaries (the run's ends and its spaces or dashes), so "2024 4111 1111 1111 1111"
 * finds the card after the year. An unbroken run longer than 19 digits has no groups to go by:
 * there every 13-19 digit window is a candidate (privacy wins over display).
 */
function cardDigitMask(run: string): boolean[] | null {
  const digits = run.replace(/[ -]/g, "");
  if (digits.length < 13) return null;
  const boundaries = [0];
  let count = 0;
  for (const ch of run) {
    if (ch === " " || ch === "-") boundaries.push(count);
    else count++;
  }
  boundaries.push(count);
  if (boundaries.length === 2 && digits.length > 19) {
    boundaries.length = 0;
    for (let i = 0; i <= digits.length; i++) boundaries.push(i);
  }
  let marks: boolean[] | null = null;
  for (let a = 0; a < boundaries.length; a++) {
    for (let b = a + 1; b < boundaries.length; b++) {
      const length = boundaries[b] - boundaries[a];
      if (length > 19) break;
      if (length < 13 || !luhnValid(digits.slice(boundaries[a], boundaries[b]))) continue;
      marks ??= new Array<boolean>(digits.length).fill(false);
      for (let i = boundaries[a]; i < boundaries[b]; i++) marks[i] = true;
    }
  }
  return marks;
}

function maskRun(run: string, minimumDigitsToMask: number): string {
  if (run.replace(/[ -]/g, "").length >= minimumDigitsToMask) return maskDigits(run);
  const marks = cardDigitMask(run);
  if (!marks) return run;
  let index = 0;
  let out = "";
  for (const ch of run) {
    if (ch >= "0" && ch <= "9") {
      out += marks[index] ? MASK : ch;
      index++;
    } else {
      out += ch;
    }
  }
  return out;
}

/** Whether `text` has at least `count` ASCII digits (a card number has 13). */
function hasDigits(text: string, count: number): boolean {
  let found = 0;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 48 && code <= 57 && ++found >= count) return true;
  }
  return false;
}

/** Mask every digit of every Luhn-valid 13-19 digit card number in `text`. */
export function maskCardNumbers(text: string): string {
  if (text.length < 13) return text;
  return withDigitForms(text, (plain) => {
    if (!hasDigits(plain, 13) && !hasOtherDigits(plain)) return plain;
    return maskLooseRuns(plain.replace(DIGIT_RUN, (run) => maskRun(run, Infinity)), false);
  });
}

/** Mask card numbers and every run of 7 or more digits (for values typed into fields). */
export function maskLongDigitRuns(text: string): string {
  return withDigitForms(text, (plain) => maskLooseRuns(plain.replace(DIGIT_RUN, (run) => maskRun(run, 7)), true));
}

/** Digits drawn in another form, which Unicode counts as no decimal digit (`No`) but the agent
 * reads as one: superscripts (`⁴¹¹¹`), subscripts, circled, negative circled and sans-serif
 * circled digits (`④①①①`, `❹❶❶❶`, `➃➀➀➀`, `⓸⓵⓵⓵`), parenthesized digits and digits with a full
 * stop (`⑷⑴⑴⑴`, `⒋⒈⒈⒈`), each one UTF-16 unit, with its value; and, two units each (a surrogate
 * pair), digits with a full stop or a comma (`🄀`, `🄅🄂🄂🄂`) and the dingbat zeros (`🄋`, `🄌`),
 * read as their digit followed by a word joiner (drawn as nothing: ATTACHED). */
const DIGIT_FORMS = new Map<string, string>();
for (const [start, values] of [
  [0x2070, "0"], [0x00b9, "1"], [0x00b2, "23"], [0x2074, "456789"], [0x2080, "0123456789"], [0x2460, "123456789"],
  [0x24ea, "0"], [0x24f5, "123456789"], [0x24ff, "0"], [0x2776, "123456789"], [0x2780, "123456789"], [0x278a, "123456789"],
  [0x2474, "123456789"], [0x2488, "123456789"], [0x1f100, "00123456789"], [0x1f10b, "00"],
] as const) {
  for (let i = 0; i < values.length; i++) {
    const ch = String.fromCodePoint(start + i);
    DIGIT_FORMS.set(ch, ch.length === 1 ? values[i] : `${values[i]}\u2060`);
  }
}
const DIGIT_FORM = /[\u2070\u00b9\u00b2\u00b3\u2074-\u2079\u2080-\u2089\u2460-\u2468\u2474-\u247c\u2488-\u2490\u24ea\u24f5-\u24fd\u24ff\u2776-\u277e\u2780-\u2788\u278a-\u2792]|\ud83c[\udd00-\udd0c]/g;

/**
 * `mask` applied to `text` with its digits of other forms (DIGIT_FORMS) read as ASCII digits:
 * where it masks one of them, that character is masked in `text`; the others stay as written.
 */
function withDigitForms(text: string, mask: (plain: string) => string): string {
  DIGIT_FORM.lastIndex = 0;
  if (!DIGIT_FORM.test(text)) return mask(text);
  const plain = text.replace(DIGIT_FORM, (ch) => DIGIT_FORMS.get(ch) ?? ch);
  const masked = mask(plain);
  if (masked.length !== plain.length) return masked; // another script's digits changed length: as read
  let out = "";
  for (let i = 0; i < text.length; i++) {
    // A surrogate pair's form stands at i and i + 1 in both (its digit, then the word joiner).
    const pair = i + 1 < text.length && text.charCodeAt(i) >= 0xd800 && text.charCodeAt(i) <= 0xdbff;
    if (masked[i] === plain[i]) {
      out += pair ? text[i] + text[i + 1] : text[i];
    } else {
      out += pair && DIGIT_FORMS.has(text[i] + text[i + 1]) ? masked[i] : masked[i] + (pair ? text[i + 1] : "");
    }
    if (pair) i++;
  }
  return out;
}

/** A decimal digit other than ASCII's: full-width (a Japanese or Chinese IME's `４１１１`),
 * Arabic-Indic (`٤١١١`, an Arabic keyboard's), Persian, Devanagari, mathematical bold
 * (`𝟒𝟏𝟏𝟏`)... any script's: the agent reads them as digits. */
const OTHER_DIGIT = /(?![0-9])\p{Nd}/u;
const ANY_DIGIT = /\p{Nd}/gu;
/** Characters drawn as nothing (zero-width spaces and joiners, word joiner, BOM, soft hyphen,
 * bidi marks and isolates, invisible operators, Hangul fillers, variation selectors, tags: every
 * default-ignorable code point): between digits they hide no digit from the agent's eye, and
 * split no group, however many there are. */
const INVISIBLE = /\p{Default_Ignorable_Code_Point}/u;
/** The separators a card is written with besides one space or dash (DIGIT_RUN): dots (`.`, `·`,
 * `‧`, `・`), slashes, bars, underscores, spaces of any width and line breaks (any White_Space:
 * tabs, no-break spaces, `\n`, NEL, the line separator), dashes of any width (any `Pd`), and
 * their full-width and small forms and look-alikes (a Japanese IME's `－`, `．`, `／`, its
 * prolonged sound mark `ー` typed for a dash; the one-dot leader `․`, the fraction slash...). */
const LOOSE_SEPARATOR = "[.\\/_|\\u00b7\\u2027\\u30fb\\u2212\\p{Pd}\\p{White_Space}" +
  "\\u2024\\u2043\\u2044\\u2215\\u2219\\u22c5\\u30fc\\uff0e\\uff0f\\uff3f\\uff5c\\uff65\\uff70\\ufe52]";
/** What is drawn with a digit or as nothing (INVISIBLE, and combining marks: a keycap's
 * `4\ufe0f\u20e3`, an underline's `4\u0332`, a stroke's): the digit is read all the same. */
const ATTACHED_CLASS = "[\\p{DI}\\p{M}]";
const ATTACHED = new RegExp(ATTACHED_CLASS, "gu");
/** Digit runs, any script's digits, with up to four visible separators (LOOSE_SEPARATOR) and any
 * number of invisible ones between digits ("4111.1111.1111.1111", "4111  1111",
 * "4111\u200b1111", "4111\u200e1111"). */
const LOOSE_RUN = new RegExp(`\\p{Nd}(?:${ATTACHED_CLASS}*(?:${LOOSE_SEPARATOR}${ATTACHED_CLASS}*){0,4}\\p{Nd})*`, "gu");
/** The same for ASCII text (its separators are LOOSE_SEPARATOR's ASCII ones): most text is, and
 * this one is the cheaper to run. */
const LOOSE_ASCII_RUN = /[0-9](?:[ \t\n\r\v\f.\/_|-]{0,4}[0-9])*/g;
/** Spaces drawn as a blank on one line (not line breaks): a card spaced so, even digit by digit
 * ("4\u00a01\u00a01\u00a01…", a receipt's), is read as DIGIT_RUN reads one spaced by ASCII spaces. */
const LINE_SPACES = /[\t \u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]+/gu;
/** Whether a text has a decimal digit other than ASCII's (cheapest first: any non-ASCII). */
function hasOtherDigits(text: string): boolean {
  return /[^\x00-\x7f]/.test(text) && OTHER_DIGIT.test(text);
}
const LOOSE_SEPARATORS = /\P{Nd}+/u;

/** Digit values of non-ASCII digits: Unicode assigns decimal digits only in whole runs of ten,
 * zero first, so a digit's value is its distance from the start of its run of digits, mod 10. */
const digitValues = new Map<string, string>();
function asciiDigit(ch: string): string {
  if (ch >= "0" && ch <= "9") return ch;
  let value = digitValues.get(ch);
  if (value === undefined) {
    const code = ch.codePointAt(0) as number;
    let start = code;
    while (start > 0 && /\p{Nd}/u.test(String.fromCodePoint(start - 1)) && code - start < 100) start--;
    value = String((code - start) % 10);
    if (digitValues.size < 1000) digitValues.set(ch, value);
  }
  return value;
}

/**
 * What DIGIT_RUN's single space or dash leaves: a card number written with other separators or
 * in another script's digits is masked whole when its 13-19 digits, in groups of at least three,
 * are Luhn-valid; in a value typed
 * into a field (`typed`), also a run of 7 or more digits (any script's) unbroken or split only by
 * spaces or invisible characters (as DIGIT_RUN's runs are), and groups of four digits joined by
 * dots, slashes or underscores (a card typed key by key, "4111.1111.1"; a date's "15.01.2024" is
 * no such run).
 */
/** Whether a run (invisible characters taken out) spaced only by blanks on one line, one or
 * more between digits, holds a card number as DIGIT_RUN's single spaces would (cardDigitMask:
 * any 13-19 digits between blanks, a card spaced digit by digit too). */
function spacedCard(visible: string): boolean[] | null {
  const spaced = visible.replace(LINE_SPACES, " ");
  if (!/^\p{Nd}(?: ?\p{Nd})*$/u.test(spaced)) return null;
  return cardDigitMask(Array.from(spaced, (ch) => (ch === " " ? ch : asciiDigit(ch))).join(""));
}

/** `run` with the digits `marks` names (one a digit, in order) masked, the others as written. */
function maskMarkedDigits(run: string, marks: boolean[]): string {
  let index = 0;
  return run.replace(ANY_DIGIT, (digit) => (marks[index++] ? MASK : digit));
}

function maskLooseRuns(text: string, typed: boolean): string {
  return text.replace(/[^\x00-\x7f]/.test(text) ? LOOSE_RUN : LOOSE_ASCII_RUN, (run) => {
    if (run.length < (typed ? 7 : 13)) return run; // too few digits, whatever they are
    const ascii = !/[^\x00-\x7f]/.test(run);
    const visible = ascii ? run : run.replace(ATTACHED, "");
    const groups = visible.split(ascii ? /[^0-9]+/ : LOOSE_SEPARATORS);
    if (groups.length < 2 && visible === run && !hasOtherDigits(run)) return run; // DIGIT_RUN's already
    const digits = ascii ? groups.join("") : Array.from(groups.join(""), asciiDigit).join("");
    // A card is written in groups of 3 to 6 (4-4-4-4, Amex's 4-6-5) or unbroken: two dates in a
    // row ("01.02.2024 - 15.02.2024") are not one, even when their digits pass Luhn's check.
    const size = (group: string) => (ascii ? group.length : [...group].length);
    const card = digits.length >= 13 && digits.length <= 19 && groups.every((group) => size(group) >= 3) && luhnValid(digits);
    if (card) return run.replace(ANY_DIGIT, MASK);
    // Spaced otherwise than DIGIT_RUN's single ASCII spaces (which it judged already): as it does,
    // only the card-valid span's digits, not a whole row of columns around it.
    const marks = !ascii || /\t| {2}/.test(visible) ? spacedCard(visible) : null;
    if (!typed || digits.length < 7) return marks ? maskMarkedDigits(run, marks) : run;
    // Unbroken or spaced on one line; or typed key by key in groups of four (a card is on one
    // line: numbers one a line, years in a textarea, are none).
    const spaced = ascii ? /^[0-9 \t]+$/.test(visible) : /^\p{Nd}+$/u.test(visible.replace(LINE_SPACES, ""));
    const long = spaced || (!/[\n\r\v\f\u0085\u2028\u2029]/.test(visible) && groups.slice(0, -1).every((group) => size(group) === 4));
    if (long) return run.replace(ANY_DIGIT, MASK);
    return marks ? maskMarkedDigits(run, marks) : run;
  });
}

export function maskAll(text: string): string {
  return MASK.repeat([...text].length);
}

/**
 * A hidden value as the agent sees it: "" stays "" (the agent may know a field is empty), anything
 * else is MASK_PLACEHOLDER, or one `•` per character under `data-tandem-mask="length"`. Never
 * throws: if the element cannot be read, the placeholder.
 */
export function hideValue(text: string, el: MaskableElement | null): string {
  const value = String(text);
  if (value === "") return "";
  rememberSecret(value, el);
  try {
    if (el && closestOf(el, KEEP_LENGTH_SELECTOR)) return maskAll(value);
  } catch (error) {
    failed(error);
  }
  return MASK_PLACEHOLDER;
}

/** The hidden `<select>` an `<option>` (or an `<optgroup>`'s option) belongs to, or null. */
function hiddenSelectOf(el: MaskableElement): Element | null {
  const name = localNameOf(el);
  if (name !== "option" && name !== "optgroup") return null;
  const select = closestOf(el, "select");
  return select && valueHidden(select) ? select : null;
}

/**
 * Fields that were a password field at any time since the SDK loaded: a "show password" toggle
 * makes one `type="text"`, and rrweb marks it (`data-rr-is-password`) only when it sees the
 * change while recording, so a password revealed before sharing started would be shown.
 * watchPasswordFields fills it from the page's own `type` changes; nothing is ever taken out.
 */
const everPassword = new WeakSet<Element>();
let passwordWatch: MutationObserver | null = null;

/** A field whose name or id says it holds a password (revealed before the SDK loaded, it has no
 * other trace): hidden whatever its type. */
const PASSWORD_NAME = /pass(?:word|wd|phrase|code)|pwd/i;
/** Words that name a password or a PIN in what the page writes about a field (its labels), in a
 * few languages. A field wrongly taken for one only has its value hidden, as every field's is
 * unless the site shows it. */
const PASSWORD_WORDS = new RegExp(
  "pass(?:word|wd|phrase|code)|pwd|\\bpin\\b|\\bcv[vcn]2?\\b|\\bcsc\\b|security code|card verification|passwort|kennwort|mot de passe|contrase(?:ñ|n)a|senha|wachtwoord|" +
  "\\bhas(?:ł|l)o\\b|lösenord|adgangskode|salasana|пароль|密码|密碼|パスワード|비밀번호|كلمة المرور|סיסמה|" +
  // A card's security code, a PIN, a one-time code, in one word and in the page's language.
  "security ?code|\\bcv[vcn]2?|\\botp\\b|\\bone[- ]?time (?:pass(?:word|code)?|code|pin)|" +
  "\\b(?:verification|authentication|auth|2fa|mfa|sms|security) code|authenticator|cryptogramme|" +
  "code (?:de s[ée]curit[ée]|confidentiel|secret|de v[ée]rification)|pr(?:ü|ue?)f(?:ziffer|nummer)|sicherheits(?:code|nummer)|" +
  "geheimzahl|best(?:ä|ae?)tigungscode|c(?:ó|o)digo (?:de )?(?:seguridad|seguran(?:ç|c)a|verificaci(?:ó|o)n|verifica(?:ç|c)(?:ã|a)o)|" +
  "codice (?:di )?(?:sicurezza|verifica)|kod (?:bezpiecze(?:ń|n)stwa|zabezpieczaj|weryfikacyjny|sms)|" +
  "beveiligingscode|verificatiecode|s(?:ä|a)kerhetskod|sikkerhedskode|sikkerhetskode|turvakoodi|g(?:ü|u)venlik kodu|" +
  "код (?:безопасности|подтверждения)|セキュリティコード|暗証番号|認証コード|确认码|安全码|安全碼|验证码|驗證碼|보안 ?코드|인증 ?번호",
  "i",
);
/** A TAN (a German bank's transaction number) in a label: only in capitals ("Tan" is a colour). */
const TAN_WORDS = /\b(?:m|sms|i|e|push|chip|photo|app)?TAN\b/;
/** How much of a label is read, and how many labels and toggles are (a page's text, not a field's). */
const LABEL_CHARS = 200;
const LABEL_REFS = 8;

/**
 * Whether what the page says about a field names a password: a field revealed (`type="text"`)
 * before the SDK loaded has no trace of its own, but its page still says what it is. Its
 * `passwordrules` (a password manager's hint, only on password fields), its `aria-label`,
 * `placeholder` or `title`, its `<label>`s, the elements its `aria-labelledby` and
 * `aria-describedby` name, and a "show password" toggle that names it in `aria-controls` (its
 * label, title or text). Throws when the field cannot be read (callers fail closed).
 */
function saidToBePassword(el: MaskableElement): boolean {
  const root = rootNodeOf(el);
  const answers = keptAnswers(root);
  const known = answers?.get(el);
  if (known !== undefined) return known;
  const said = readPasswordWords(el, root);
  answers?.set(el, said);
  return said;
}

/**
 * What saidToBePassword answered for the fields of one tree (a document or shadow root), kept
 * until anything in that tree changes: a keystroke does not change the page, so it reads the
 * field's labels and toggles once, not twice per `input` event (rrweb's maskInputFn, then the
 * event's masking), each a walk of the tree on a large page. Everything saidToBePassword reads
 * lies in the field's own tree (the field's attributes, its labels, the elements its ids name,
 * the toggles naming it), so a MutationObserver on that tree (every node, attribute and text)
 * sees every change that could alter an answer; `takeRecords` at each ask catches changes made
 * in the same task, before the observer's callback runs. Only open trees of the page (documents
 * and shadow roots); if the observer cannot be set up, nothing is kept. Some answers are read
 * outside the field's tree too (isSplitNumberBox reads a web component's host, its label and
 * legend: namedCodeAbove, codeSaidAround): a tree's answers are also dropped when the tree
 * around it (its host's, its frame's) changes, however far out (each tree's `generation`).
 */
interface KeptAnswers {
  observer: MutationObserver;
  answers: WeakMap<Element, boolean>;
  /** isSplitNumberBox's answers, kept so too: it reads only the field's attributes and those of
   * the fields around it. */
  split: WeakMap<Element, boolean>;
  /** Whether the tree holds a one-time-code field or an input-otp container (isCodeSlot). */
  codeFields?: boolean;
  /** The forms of the tree that controls named after SERIALIZER_NAMES join by their `form`
   * attribute (formsJoinedByClobberers). */
  joinedForms?: Set<Element>;
  /** Counts the times the answers were dropped: a tree inside this one drops its own when it
   * changes (outerGeneration). */
  generation: number;
  /** The tree around's `generation` when this tree's answers were last checked. */
  outerGeneration?: number;
}
/** How many trees (shadow roots, frames) around a tree keptEntry looks at; deeper, nothing kept. */
const MAX_KEPT_NESTING = 32;

function dropKept(kept: KeptAnswers): void {
  kept.answers = new WeakMap();
  kept.split = new WeakMap();
  kept.codeFields = undefined;
  kept.joinedForms = undefined;
  kept.generation++;
}
const keptByTree = new WeakMap<Node, KeptAnswers | null>();

function keptEntry(root: Node, depth = 0): KeptAnswers | null {
  let kept = keptByTree.get(root);
  if (kept === undefined) {
    kept = null;
    const type = nodeTypeOf(root);
    if (typeof MutationObserver !== "undefined" && (type === DOCUMENT_NODE || type === DOCUMENT_FRAGMENT_NODE)) {
      try {
        const entry: KeptAnswers = {
          observer: new MutationObserver(() => dropKept(entry)),
          answers: new WeakMap(),
          split: new WeakMap(),
          generation: 0,
        };
        entry.observer.observe(root, { subtree: true, childList: true, attributes: true, characterData: true });
        kept = entry;
      } catch (error) {
        failed(error);
      }
    }
    keptByTree.set(root, kept);
  }
  if (!kept) return null;
  if (kept.observer.takeRecords().length) dropKept(kept);
  // The tree around (a shadow host's, a frame's), kept and checked so too: a change there
  // (the host's label becomes "PIN") drops this tree's answers. Unreadable (a removed frame's
  // document): nothing kept, every answer read afresh (no masking failure: nothing is hidden).
  let outer: KeptAnswers | null | undefined;
  try {
    const around = outerElementOf(root);
    outer = around === null ? undefined : depth < MAX_KEPT_NESTING ? keptEntry(rootNodeOf(around), depth + 1) : null;
  } catch {
    outer = null;
  }
  if (outer === null) {
    dropKept(kept);
    return null;
  }
  if (outer && kept.outerGeneration !== outer.generation) {
    if (kept.outerGeneration !== undefined) dropKept(kept);
    kept.outerGeneration = outer.generation;
  }
  return kept;
}

function keptAnswers(root: Node): WeakMap<Element, boolean> | null {
  return keptEntry(root)?.answers ?? null;
}

/** saidToBePassword's reading of the page, `root` being the field's tree's root. */
function readPasswordWords(el: MaskableElement, root: Node): boolean {
  if (hasAttributeOn(el, "passwordrules")) return true;
  const words: (string | null)[] = [attributeOf(el, "aria-label"), attributeOf(el, "placeholder"), attributeOf(el, "title")];
  for (const label of labelsIn(root, el).slice(0, LABEL_REFS)) words.push(textContentUpTo(label, LABEL_CHARS));
  const refs = `${attributeOf(el, "aria-labelledby") ?? ""} ${attributeOf(el, "aria-describedby") ?? ""}`.split(/\s+/).filter(Boolean);
  for (const ref of refs.slice(0, LABEL_REFS)) {
    const found = elementByIdIn(root, ref);
    if (found) words.push(textContentUpTo(found, LABEL_CHARS));
  }
  const id = attributeOf(el, "id");
  if (id) {
    for (const toggle of togglesNaming(root, id).slice(0, LABEL_REFS)) {
      words.push(attributeOf(toggle, "aria-label"), attributeOf(toggle, "title"), textContentUpTo(toggle, LABEL_CHARS));
    }
  }
  return words.some((word) => word !== null && (PASSWORD_WORDS.test(word) || TAN_WORDS.test(word)));
}

/**
 * Within a pass (memo), the index `build` makes of `root` for `kind`, made when a second field of
 * `root` asks (a pass over one event asks once: the direct look-up is cheaper); null before.
 */
function passIndex<K, V>(kind: "toggles" | "labels", root: Node, build: () => Map<K, V>): Map<K, V> | null {
  if (!memo) return null;
  const indexes = (memo[kind] ??= new Map()) as Map<Node, Map<K, V> | null>;
  if (!indexes.has(root)) {
    indexes.set(root, null);
    return null;
  }
  let index = indexes.get(root) ?? null;
  if (!index) {
    index = build();
    indexes.set(root, index);
  }
  return index;
}

/** The `<label>`s of a field (its `labels`, in tree order), `root` being its tree's root. */
function labelsIn(root: Node, el: Element): Element[] {
  const index = passIndex<Element, Element[]>("labels", root, () => {
    const byField = new Map<Element, Element[]>();
    for (const label of queryAllIn(root, "label")) {
      const field = labelControlOf(label);
      if (!field) continue;
      const list = byField.get(field);
      if (list) list.push(label);
      else byField.set(field, [label]);
    }
    return byField;
  });
  return index ? (index.get(el) ?? []) : labelsOf(el);
}

/** What `[aria-controls~="id"]` finds in `root` (a document or shadow root), in tree order. */
function togglesNaming(root: Node, id: string): Element[] {
  const index = passIndex<string, Element[]>("toggles", root, () => {
    const byId = new Map<string, Element[]>();
    for (const toggle of queryAllIn(root, "[aria-controls]")) {
      // `~=`: the value's words, split at ASCII whitespace (CSS Selectors 4, "[att~=val]").
      for (const word of new Set((attributeOf(toggle, "aria-controls") ?? "").split(/[ \t\n\f\r]+/).filter(Boolean))) {
        const list = byId.get(word);
        if (list) list.push(toggle);
        else byId.set(word, [toggle]);
      }
    }
    return byId;
  });
  if (index) return index.get(id) ?? [];
  const quoted = `"${id.replace(/["\\]/g, "\\$&").replace(/[\n\r\f]/g, " ")}"`;
  return queryAllIn(root, `[aria-controls~=${quoted}]`);
}

function notePasswordChanges(records: MutationRecord[]): void {
  for (const record of records) {
    if ((record.oldValue ?? "").trim().toLowerCase() === "password") everPassword.add(record.target as Element);
  }
}

/** The trees (documents of same-origin frames, open shadow roots) passwordWatch observes. */
const passwordRoots = new WeakSet<Node>();
/** Events, read at a document in the capture phase (before the page's own handlers), whose path
 * names the open shadow roots (and so the web components) the customer touches. `pointerover`
 * too: a press inside a frame is no event of the framing document, but the pointer entering the
 * frame is one, at the frame element: a frame a component holds in its shadow root is so found
 * (and watched, watchPasswordRoot) before the customer presses anything in it. */
const PASSWORD_ROOT_EVENTS = ["focusin", "pointerover", "pointerdown", "mousedown", "touchstart", "keydown", "click", "input", "change"];

/**
 * Remember every field that is or was `type="password"` in `doc` from now on (the SDK calls it
 * as it loads, before anything is shared): isSensitiveField then hides it whatever its type
 * becomes. `doc`'s own tree, the documents of its same-origin frames (as each loads), and each
 * open shadow root the customer touches (focus, a press, a key, a click: read at the document
 * in the capture phase, before the component's own "show password" handler runs): a web
 * component's toggle, or a frame's, before sharing started showed the password as a text field
 * (ninth masking review). A shadow root nobody touched is known by rrweb's mark when its type
 * changes while recording, by the field's name, or by its `autocomplete`.
 */
export function watchPasswordFields(doc: Document): void {
  if (passwordWatch || typeof MutationObserver === "undefined") return;
  try {
    passwordWatch = new MutationObserver(notePasswordChanges);
    watchPasswordDocument(doc);
  } catch (error) {
    failed(error);
  }
}

/** Observe `root` (a document or an open shadow root) for password fields and type changes. */
function watchPasswordRoot(root: Document | ShadowRoot): void {
  if (!passwordWatch || passwordRoots.has(root)) return;
  passwordRoots.add(root);
  for (const field of queryAllIn(root, 'input[type="password" i]')) everPassword.add(field);
  passwordWatch.observe(root, { subtree: true, attributes: true, attributeFilter: ["type"], attributeOldValue: true });
  // A frame's `load` does not bubble, but a capture listener on its tree's root sees it; nor is
  // it composed: a frame in a shadow root is heard at that root, not at the document (attack
  // review of the ninth masking review), and the document's scan does not enter shadow roots.
  root.addEventListener("load", notePasswordFrame, true);
  for (const frame of queryAllIn(root, "iframe, frame")) watchPasswordFrame(frame);
}

function watchPasswordDocument(doc: Document): void {
  if (passwordRoots.has(doc)) return;
  watchPasswordRoot(doc);
  // `change` too: an autofill, a password manager or a drop that tells the page only so.
  doc.addEventListener("input", notePasswordTyping, true);
  doc.addEventListener("change", notePasswordTyping, true);
  for (const type of PASSWORD_ROOT_EVENTS) doc.addEventListener(type, notePasswordRoots, true);
}

/** Watch a same-origin frame's document (another origin's cannot be read, nor is it recorded). */
function watchPasswordFrame(frame: Element): void {
  try {
    const inner = (frame as HTMLIFrameElement).contentDocument;
    if (inner) watchPasswordDocument(inner);
  } catch {
    // another origin's frame
  }
}

function notePasswordFrame(event: Event): void {
  try {
    const el = asElement(event.target);
    if (el && (localNameOf(el) === "iframe" || localNameOf(el) === "frame")) watchPasswordFrame(el);
  } catch (error) {
    failed(error);
  }
}

/** How many password fields of a tree a press or click remembers the values of. */
const PRESS_PASSWORDS = 8;

/**
 * Watch the open shadow roots an event passes through (before the page's handlers run). On a
 * press or a click, also remember what the password fields of each tree it passes through hold
 * (as typed passwords are, notePasswordTyping): a value the page put there by script (its
 * "suggest a strong password") was never typed, and a "show password" that swaps the field for
 * a new text field holding it left no trace of a password on the field shown.
 */
function notePasswordRoots(event: Event): void {
  try {
    const path = event.composedPath();
    const press = event.type === "pointerdown" || event.type === "mousedown" || event.type === "click" ||
      event.type === "touchstart";
    for (let i = 0; i < path.length; i++) {
      const node = path[i] as Node;
      const type = nodeTypeOf(node);
      if (type === DOCUMENT_FRAGMENT_NODE) {
        hostOf(node); // a shadow root (throws for anything else)
        watchPasswordRoot(node as ShadowRoot);
      } else if (type !== DOCUMENT_NODE) {
        continue;
      }
      if (!press) continue;
      const fields = queryAllIn(node, 'input[type="password" i]');
      for (const field of fields.slice(0, PRESS_PASSWORDS)) {
        everPassword.add(field);
        const value = liveValueOf(field) ?? "";
        if (value) rememberSecret(value, field, undefined, false, false, true);
      }
    }
  } catch (error) {
    failed(error);
  }
}

/**
 * What the customer types into a password field from load is remembered as a hidden value
 * (rememberSecret; in the page only, as the field's value is): a page that shows a password by
 * putting a new text field in its place (a plugin's clone, a component keyed anew) before
 * sharing starts leaves the value with no trace of a password on any field, and it went to the
 * agent as a shown field's value; now it is masked there as a copy. Only password fields (and
 * fields that were one), read at the document in the capture phase, before the page's own
 * handlers can swap the field.
 */
function notePasswordTyping(event: Event): void {
  try {
    const path = event.composedPath();
    const el = asElement(path.length > 0 ? path[0] : event.target);
    if (!el || localNameOf(el) !== "input") return;
    if (!everPassword.has(el) && (attributeOf(el, "type") ?? "").toLowerCase().trim() !== "password") return;
    everPassword.add(el);
    rememberSecret(liveValueOf(el) ?? "", el, undefined, false, false, true);
  } catch (error) {
    failed(error);
  }
}

export function isSensitiveField(el: MaskableElement): boolean {
  if (hasAttributeOn(el, "data-rr-is-password")) return true;
  // Changes not yet delivered (made in this same task) count too.
  if (passwordWatch) notePasswordChanges(passwordWatch.takeRecords());
  if (everPassword.has(el)) return true;
  const type = (attributeOf(el, "type") ?? "").toLowerCase();
  const name = localNameOf(el);
  if (name === "input" && (type === "password" || type === "hidden")) {
    return true;
  }
  if ((name === "input" || name === "textarea") &&
    [attributeOf(el, "name"), attributeOf(el, "id")].some((word) => word !== null && PASSWORD_NAME.test(word))) {
    return true;
  }
  const autocomplete = (attributeOf(el, "autocomplete") ?? "").toLowerCase().trim();
  if (autocomplete.split(/\s+/).some((token) => SENSITIVE_AUTOCOMPLETE.test(token))) return true;
  if (name !== "input" && name !== "textarea") return false;
  if (namedSecret(el) || saidToBePassword(el)) return true;
  // Last: the only check that asks the page's style (only fields the site shows get this far).
  if (drawnAsDots(el)) {
    everPassword.add(el); // a "show PIN" toggle taking the discs off later does not show it
    return true;
  }
  return false;
}

/** Words of a field's `name` or `id` that name a card's security code or a PIN (a checkout's
 * `cvv` field without `autocomplete="cc-csc"`, a bank's `pin` in a `type="tel"` box). Whole
 * words (wordsOf): `pinNumber`, `card_cvc`, `cvv2` are; `pincode` (an Indian postcode),
 * `spinner` are not. */
const SECRET_NAME_WORDS = new Set([
  "cvv", "cvc", "csc", "cvn", "cav", "cvd", "pin", "pins", "tan", "otp", "totp", "hotp", "securitycode", "cardcode",
  "pinnumber", "pinno", "onetimecode", "onetimepassword", "mtan", "smstan", "itan", "pushtan", "chiptan", "phototan",
  "apptan", "cryptogramme", "cryptogram", "geheimzahl", "sicherheitscode", "sicherheitsnummer", "prüfziffer", "pruefziffer",
  "prufziffer", "prüfnummer", "pruefnummer", "kartenprüfnummer", "kartenpruefnummer", "beveiligingscode", "säkerhetskod",
  "sikkerhedskode", "sikkerhetskode", "turvakoodi",
]);
/** A `cvv` run into what follows (`cvvcode`, `cvvNumber` is two words already). */
const SECRET_NAME_START = /^(?:cvv|cvc|cvn|csc)\d?(?:code|number|num|no|nr|value)$/;
/** Words that make a `code` beside them a secret's: `security_code`, `card_code` (Authorize.net's
 * `x_card_code` is the security code), `mfaCode`, `verification-code`, `one-time-code`. */
const SECRET_CODE_WORDS = new Set([
  "security", "card", "mfa", "2fa", "tfa", "verification", "verify", "auth", "authentication", "sms",
  "seguridad", "segurança", "seguranca", "sicurezza", "sécurité", "securite", "verificación", "verificacion",
]);
const CODE_NAMES = new Set(["code", "codigo", "código", "codice"]);

function namedSecret(el: Element): boolean {
  for (const attribute of ["name", "id"]) {
    const value = attributeOf(el, attribute);
    if (!value) continue;
    const words = wordsOf(value);
    if (words.some((word) => SECRET_NAME_WORDS.has(word) || SECRET_NAME_START.test(word))) return true;
    // `securityCode`, `security-code`, `card_verification`, `codigo_seguridad`
    if (words.some((word) => CODE_NAMES.has(word)) && words.some((word) => SECRET_CODE_WORDS.has(word))) return true;
    if (words.includes("one") && words.includes("time")) return true; // `one-time-code`, `oneTimePassword`
    if (words.includes("verification") && (words.includes("card") || words.includes("value"))) return true;
  }
  return false;
}

/** The value of a form field as the agent may see it. Never throws: on any error, all masked. */
export function maskInputValue(value: string, el: MaskableElement | null): string {
  try {
    if (!el || valueHidden(el)) return hideValue(value, el);
    if (!PIECE_CHARACTER.test(value) || !isSplitNumberBox(el)) return maskShownValue(value);
    // A piece of a code the site shows: its letters and digits keep their shape (the box is not
    // found as a copy of itself), and its copies (the page joining the code) are looked for as a
    // hidden code's are.
    rememberSecret(value, el);
    // Its group's other boxes too: boxes typed in before the page added the rest (the group
    // grew to SPLIT_MIN_BOXES later) are pieces of the code the page joins now.
    for (const box of groupBoxesOf(el)) if (box !== el && isSplitNumberBox(box)) rememberField(box, "sensitive");
    return maskDetected(value.replace(PIECE_CHARACTERS, MASK));
  } catch (error) {
    failed(error);
    return hideValue(String(value), null);
  }
}

/**
 * A value the site shows: card numbers and runs of 7 or more digits masked. The runs it masks are
 * remembered as typed values (from their digits): a page's live preview of the field ("You
 * entered 4929 7301 5", a card typed key by key) showed each prefix the field did not.
 */
function maskShownValue(value: string): string {
  const detected = maskDetected(value);
  const masked = maskLongDigitRuns(detected);
  if (masked === detected) return masked;
  for (const run of detected.match(DIGIT_RUN) ?? []) {
    if (maskLongDigitRuns(run) !== run) rememberSecret(run.replace(/[ -]/g, ""), null, "typed", true);
  }
  return masked;
}

/** A letter or a digit: what a piece box the site shows shows of neither (codes are letters too). */
const PIECE_CHARACTER = /[\p{L}\p{N}]/u;
const PIECE_CHARACTERS = /[\p{L}\p{N}]/gu;

/** How many boxes of at most SPLIT_PIECE_CHARS characters make a number typed in pieces. */
const SPLIT_MIN_BOXES = 4;
/** Fewer boxes make one only when something says so (isSmallCodeGroup): a date or a phone number
 * is typed in two or three short boxes too. */
const SPLIT_SMALL_MIN_BOXES = 2;
/** Two boxes of one character each are a code's (no date's or phone number's part is one; a
 * two-digit PIN in two such boxes showed both digits). */
const SPLIT_ONE_CHAR_BOXES = 2;

/** Words of a box's (or its wrapper's) `id`, `class`, `name` or `aria-label` that name a code's
 * piece: react-otp-input's users' `otp-input`, `pin-digit`, `code[]`, `mfaCode`. */
const CODE_WORDS = new Set([
  "otp", "otc", "totp", "hotp", "mfa", "2fa", "tfa", "pin", "pins", "passcode", "code", "codes", "digit", "digits",
  // A label names a code in the page's language ("Código de verificación", "Kod weryfikacyjny"),
  // German and Nordic ones as one word ("Bestätigungscode"; a "Gutscheincode" is none).
  "código", "codigo", "códigos", "codigos", "codice", "codici", "kod", "kodu", "kode", "koodi", "код", "кода",
  "bestätigungscode", "sicherheitscode", "verifizierungscode", "authentifizierungscode", "einmalcode",
  "zugangscode", "anmeldecode", "aktivierungscode", "verificatiecode", "beveiligingscode", "toegangscode",
  "engangskode", "engångskod", "verifikationskode", "bekræftelseskode", "verifieringskod", "säkerhetskod",
]);
/** Words that name what a short box holds that is no secret: a date's part, a postcode, a phone
 * number's, a quantity. Beside a code word they win (`zip-code`, `promo-code`, `country-code`):
 * such a box is no piece unless the page says it holds one character (saidToHoldOne). */
const NOT_CODE_WORDS = new Set([
  "day", "days", "month", "months", "year", "years", "dob", "birth", "birthday", "birthdate", "bday", "date", "age",
  "dd", "mm", "yy", "yyyy", "hh", "zip", "zipcode", "post", "postal", "postcode", "plz", "promo", "promotion",
  "coupon", "voucher", "discount", "gift", "referral", "invite", "invitation", "country", "area", "phone", "tel",
  "telephone", "mobile", "dial", "qty", "quantity", "amount", "count", "price", "size", "sku", "item", "product",
  "order", "tracking", "house", "flat", "apt", "apartment", "street", "unit", "floor", "room", "guests", "adults",
  "rating", "score", "exp", "expiry", "expiration", "sort", "bank", "branch", "routing", "iban", "swift", "bic",
  "currency", "language", "lang", "locale", "color", "colour", "tax", "vat", "booking", "qr", "bar", "barcode",
  "ean", "upc", "isbn", "gtin", "serial",
  // The same in the languages CODE_WORDS reads ("Código postal", "Codice sconto").
  "postale", "área", "país", "pais", "paese", "barras", "promocional", "promozionale", "cupón", "cupon", "cupom",
  "descuento", "desconto", "sconto", "rabatt", "rabatowy", "pocztowy", "почтовый", "индекс", "fiscale",
  "posta", "kupon", "indirim", "referencia", "referência", "riferimento",
]);
/** The naming attributes CODE_WORDS and NOT_CODE_WORDS are looked for in. */
const NAMING_ATTRIBUTES = ["id", "class", "name", "aria-label"];
/** How many levels above a box its wrappers' names are read (the boxes' row, the form). */
const NAMING_LEVELS = 3;

/** The words of a name: split at anything but letters and digits, at camelCase and before a
 * number (`otpInput2` is otp, input, 2). */
function wordsOf(value: string): string[] {
  return value.slice(0, LABEL_CHARS).replace(/(\p{Ll})(\p{Lu})/gu, "$1 $2").replace(/(\p{Lu}+)(\p{Lu}\p{Ll})/gu, "$1 $2")
    .replace(/(\p{L})(\p{N})/gu, "$1 $2").toLowerCase().split(/[^\p{L}\p{N}]+/u).filter(Boolean);
}

/** What an element's naming attributes say, by whole words (wordsOf: `postcode`, `spinner`,
 * `opinion` hold none): "other" when one name holds words of both kinds (`zip-code`,
 * `promo-code`, `sort-code-1`) or the `id`, `name` or `aria-label` holds a word of
 * NOT_CODE_WORDS; else "code" when any holds a code word; else "other" when a class holds a word
 * of NOT_CODE_WORDS; else null. Each class is read on its own: a utility class beside `otp`
 * (Tailwind's `size-10`, `order-1`) does not make a code's box an ordinary one. */
function codeNaming(el: Element): "code" | "other" | null {
  let code = false;
  let other = false;
  let classOther = false;
  for (const name of NAMING_ATTRIBUTES) {
    const value = attributeOf(el, name);
    if (!value) continue;
    for (const part of name === "class" ? value.slice(0, LABEL_CHARS).split(/\s+/) : [value]) {
      const words = wordsOf(part);
      const isOther = words.some((word) => NOT_CODE_WORDS.has(word));
      const isCode = words.some((word) => CODE_WORDS.has(word));
      if (isOther && isCode) return "other";
      if (isOther && name === "class") classOther = true;
      else if (isOther) other = true;
      if (isCode) code = true;
    }
  }
  if (other) return "other";
  return code ? "code" : classOther ? "other" : null;
}

/** Whether an element from `el`'s parent up, at most NAMING_LEVELS levels and one above `around`,
 * is named a code's (namedCode): the row or the form of boxes that say nothing themselves. */
function namedCodeAbove(el: Element, around: BoxParent): boolean {
  // Through a shadow root to its host and on (a web component's boxes, the host under a legend
  // "Verification code" or labelled so); unreadable counts as named. Boxes straight in a shadow
  // root: its host is the one above.
  try {
    const root = isShadowRoot(around) ? hostOf(around) : null;
    let node = composedParentElement(el);
    for (let level = 0; node && level < NAMING_LEVELS; level++) {
      if (namedCode(node)) return true;
      if (node === root) return false;
      if (node === around) {
        const outer = composedParentElement(node);
        return outer !== null && namedCode(outer);
      }
      node = composedParentElement(node);
    }
    return false;
  } catch {
    return true;
  }
}

/** Whether a row or form of boxes is named a code's: by its naming attributes (codeNaming), or by
 * what labels it (rowLabelsOf: "Verification code", "Enter your one-time code"), read as
 * codeNaming reads a name (a "Promo code" or "Zip code" is none). */
function namedCode(el: Element): boolean {
  const naming = codeNaming(el);
  if (naming !== null) return naming === "code";
  return rowLabelsOf(el).some((text) => {
    const words = wordsOf(text);
    return words.some((word) => CODE_WORDS.has(word)) && !words.some((word) => NOT_CODE_WORDS.has(word));
  });
}

/** The text that labels a row or form of boxes, not on the boxes themselves: the element's own
 * text when it is a `<label>` wrapping them, the elements its `aria-labelledby` names, and its
 * `<legend>` and `<label>` children (a fieldset's legend; a label the page writes beside the
 * boxes, for none of them). At most LABEL_CHARS characters each. */
function rowLabelsOf(el: Element): string[] {
  const texts: (string | null)[] = [];
  if (localNameOf(el) === "label") texts.push(textContentUpTo(el, LABEL_CHARS));
  const refs = (attributeOf(el, "aria-labelledby") ?? "").split(/\s+/).filter(Boolean);
  for (const ref of refs.slice(0, LABEL_REFS)) {
    const found = elementByIdIn(rootNodeOf(el), ref);
    if (found) texts.push(textContentUpTo(found, LABEL_CHARS));
  }
  let labels = 0;
  for (const child of childElementsOf(el, WRAPPER_NODES)) {
    const tag = localNameOf(child);
    if ((tag === "legend" || tag === "label") && labels++ < LABEL_REFS) texts.push(textContentUpTo(child, LABEL_CHARS));
  }
  return texts.filter((text): text is string => text !== null);
}

/** Whether the page says a box holds more than SPLIT_PIECE_CHARS characters. */
function saidToBeLong(el: Element): boolean {
  const max = Number.parseInt(attributeOf(el, "maxlength") ?? "", 10);
  const size = Number.parseInt(attributeOf(el, "size") ?? "", 10);
  return max > SPLIT_PIECE_CHARS || size > SPLIT_PIECE_CHARS;
}

/** What the page says a box is that is not a secret: `autocomplete` field names (a birth date's
 * day, a phone number's area code, a postal code...), with or without a section, shipping or
 * billing, home or work before them. */
const NOT_SECRET_AUTOCOMPLETE = new RegExp(
  "^(?:bday(?:-day|-month|-year)?|tel(?:-country-code|-national|-area-code|-local(?:-prefix|-suffix)?|-extension)?|" +
  "postal-code|address-line[123]|address-level[1-4]|street-address|country(?:-name)?|name|(?:given|family|additional)-name|" +
  "honorific-(?:prefix|suffix)|nickname|organization(?:-title)?|email|sex|language|url)$",
);
/** A date's parts as a box's placeholder writes them (`DD` `MM` `YYYY`, `JJ` `AAAA`, `TT`). */
const DATE_PART_PLACEHOLDER = /^(?:dd|mm|yy|yyyy|jj|aa|aaaa|tt|jjjj|гггг|дд|мм)$/i;
/** What a box's `aria-label`, `placeholder` or `title` says when it holds one piece of several:
 * "Digit 1 of 6", "Please enter OTP character 1", "code 3/6", "Ziffer 2". */
const PIECE_NAME = /\b(?:digit|character|char|ziffer|zeichen|chiffre|caract(?:è|e)re|d(?:í|i)gito|cifra|cijfer)\b\D{0,12}\d{1,2}\b|\b\d{1,2}\s*(?:of|\/|von|de|sur|di|van)\s*\d{1,2}\b/i;
/** An inline width of a box too narrow for more than SPLIT_PIECE_CHARS characters. */
const NARROW_WIDTH = /(?:^|;)\s*(?:width|inline-size|max-width)\s*:\s*(\d+(?:\.\d+)?)\s*(px|em|rem|ch)\b/i;
/** A `pattern` that matches at most SPLIT_PIECE_CHARS characters: one class, escape or
 * character, with no repetition or a bounded one (`[0-9]`, `\d`, `\d{1}`, `[0-9]{1,4}`, `.?`). */
const SHORT_PATTERN = /^\^?(?:\[[^\]]{1,40}\]|\\[dDwWsS]|[^\\[\](){}*+?|^$])(?:\{(\d)(?:,(\d))?\}|\?)?\$?$/;

/** What a row of boxes is: an element, or a web component's shadow root holding them straight
 * (no wrapper: their `parentElement` is null). */
type BoxParent = Element | ShadowRoot;

/** The element or shadow root `node` sits straight in, or null. Throws when it cannot tell. */
function boxParentOf(node: Node): BoxParent | null {
  return parentElementOf(node) ?? shadowParentOf(node);
}

/** The element or shadow root above `parent`; above a shadow root, what its host sits in (a
 * component per box, `<otp-digit>` six times: the host is the box's wrapper, wrapperChildrenOf). */
function boxParentAbove(parent: BoxParent): BoxParent | null {
  if (!isShadowRoot(parent)) {
    // A component's own wrapper (alone in its shadow root, or the innermost of a chain of such
    // wrappers around its one box): the component is the wrapper.
    const root = rootNodeOf(parent);
    if (nodeTypeOf(root) === DOCUMENT_FRAGMENT_NODE && componentWrapperOf(root as ShadowRoot) === parent) {
      return boxParentAbove(root as ShadowRoot);
    }
    return boxParentOf(parent);
  }
  const host = hostOf(parent);
  return host ? boxParentOf(host) : null;
}

/** Elements a shadow root holds besides what it draws (its style sheets, templates). */
const UNDRAWN = new Set(["style", "link", "script", "template"]);

/** The one element a component's shadow root draws everything in (`<div class="box">` holding
 * its box), else null: none, several, or a field itself. */
function componentWrapperOf(root: ShadowRoot): Element | null {
  const drawn = drawnChildren(root);
  if (drawn.length !== 1 || localNameOf(drawn[0]) === "input") return null;
  // A chain of wrappers around one box (`<div class="field"><div class="box"><input>`): the
  // innermost, when it holds the box alone (a component drawing a form stays as it was).
  let inner = drawn[0];
  for (let level = 0; level < COMPONENT_WRAPPER_LEVELS; level++) {
    const within = drawnChildren(inner);
    if (within.length !== 1) break;
    if (localNameOf(within[0]) === "input") return inner;
    inner = within[0];
  }
  return drawn[0];
}

/** How many wrappers deeper than the first componentWrapperOf looks for a component's one box. */
const COMPONENT_WRAPPER_LEVELS = 3;

function drawnChildren(parent: BoxParent): Element[] {
  return childElementsIn(parent, 8).filter((child) => !UNDRAWN.has(localNameOf(child)));
}

/** Counts the times wrapperChildrenOf read a shadow root: an answer read across components
 * (another component's tree) is not kept in the box's own tree (isSplitNumberBox). */
let componentsRead = 0;

/** The children of a wrapper: of its open shadow root when it has one (a component drawing
 * a box), or of the one element that root draws in (componentWrapperOf), else its own. */
function wrapperChildrenOf(el: Element, limit: number): Element[] {
  const root = shadowRootOf(el);
  if (!root) return childElementsOf(el, limit);
  componentsRead++;
  const wrapper = componentWrapperOf(root);
  return wrapper ? childElementsOf(wrapper, limit) : childElementsIn(root, limit);
}

function isShadowRoot(parent: BoxParent): parent is ShadowRoot {
  return nodeTypeOf(parent) === DOCUMENT_FRAGMENT_NODE;
}

/** The inputs among `el`'s parent's children and its grandparent's grandchildren (at most
 * WRAPPER_NODES elements read each); a shadow root counts as a parent. */
function groupBoxesOf(el: Element): Element[] {
  const found: Element[] = [];
  const parent = boxParentOf(el);
  if (!parent) return found;
  let seen = 0;
  for (const child of childElementsIn(parent, WRAPPER_NODES)) if (localNameOf(child) === "input") found.push(child);
  const grandparent = boxParentAbove(parent);
  if (!grandparent) return found;
  for (const child of childElementsIn(grandparent, WRAPPER_NODES)) {
    seen++;
    for (const grandchild of wrapperChildrenOf(child, WRAPPER_NODES - seen)) {
      seen++;
      if (localNameOf(grandchild) === "input" && !found.includes(grandchild)) found.push(grandchild);
    }
    if (seen >= WRAPPER_NODES) break;
  }
  return found;
}

/** Whether `el` is an input a piece of a value may be typed into: not a button or a choice, and
 * not a box the page names as a field that is no secret (a birth date's day, a phone number's
 * area code: NOT_SECRET_AUTOCOMPLETE, DATE_PART_PLACEHOLDER). A sensitive autocomplete token
 * beside such a name wins: a box that may be a secret is one. */
function pieceCandidate(el: Element): boolean {
  if (localNameOf(el) !== "input" || FIXED_VALUE_TYPES.has((attributeOf(el, "type") ?? "").toLowerCase().trim())) return false;
  const tokens = (attributeOf(el, "autocomplete") ?? "").toLowerCase().trim().split(/\s+/);
  if (tokens.some((token) => SENSITIVE_AUTOCOMPLETE.test(token))) return true;
  // A number box from 1 up is a quantity (a cart's stepper of one digit): a code's digit may be 0.
  if (saidToStartAtOne(el)) return false;
  // One character a box is no part of a birth date or a phone number: an SMS code in boxes a
  // sloppy site names tel-local or bday-day (copied from another form) is a code's pieces.
  if (saidToHoldOne(el)) return true;
  if (tokens.some((token) => NOT_SECRET_AUTOCOMPLETE.test(token))) return false;
  if (codeNaming(el) === "other") return false;
  return !DATE_PART_PLACEHOLDER.test((attributeOf(el, "placeholder") ?? "").trim());
}

/** Whether a `type="number"` box's `min` is 1 or more. */
function saidToStartAtOne(el: Element): boolean {
  if ((attributeOf(el, "type") ?? "").toLowerCase().trim() !== "number") return false;
  const min = (attributeOf(el, "min") ?? "").trim();
  return min !== "" && Number(min) >= 1;
}

/** Whether the page says a box holds one character: `maxlength="1"`, `size="1"`, a number box's
 * `max` of at most 9, a `pattern` of one character with no repetition. */
function saidToHoldOne(el: Element): boolean {
  if (Number.parseInt(attributeOf(el, "maxlength") ?? "", 10) === 1) return true;
  if (Number.parseInt(attributeOf(el, "size") ?? "", 10) === 1) return true;
  if ((attributeOf(el, "type") ?? "").toLowerCase().trim() === "number") {
    const top = (attributeOf(el, "max") ?? "").trim();
    if (top !== "" && Number(top) >= 0 && Number(top) <= 9) return true;
  }
  const pattern = SHORT_PATTERN.exec((attributeOf(el, "pattern") ?? "").trim());
  return pattern !== null && Number(pattern[2] ?? pattern[1] ?? 1) === 1;
}

/** Whether the page says a box holds at most SPLIT_PIECE_CHARS characters: its `maxlength`,
 * `size`, a `type="number"` box's `max` (9999 at most), a `pattern` of one character (or a
 * bounded few), an inline width of a few characters (react-otp-input's `width: 1em`), or a name
 * that numbers it among others (PIECE_NAME). */
function saidToBeShort(el: Element): boolean {
  const max = Number.parseInt(attributeOf(el, "maxlength") ?? "", 10);
  if (max > 0 && max <= SPLIT_PIECE_CHARS) return true;
  const size = Number.parseInt(attributeOf(el, "size") ?? "", 10);
  if (size > 0 && size <= SPLIT_PIECE_CHARS) return true;
  if ((attributeOf(el, "type") ?? "").toLowerCase().trim() === "number") {
    const top = (attributeOf(el, "max") ?? "").trim();
    if (top !== "" && Number(top) >= 0 && Number(top) < 10 ** SPLIT_PIECE_CHARS) return true;
  }
  const pattern = SHORT_PATTERN.exec((attributeOf(el, "pattern") ?? "").trim());
  if (pattern && Number(pattern[2] ?? pattern[1] ?? 1) <= SPLIT_PIECE_CHARS) return true;
  const width = NARROW_WIDTH.exec(attributeOf(el, "style") ?? "");
  if (width && Number(width[1]) <= (width[2].toLowerCase() === "px" ? 16 * SPLIT_PIECE_CHARS : SPLIT_PIECE_CHARS)) return true;
  return [attributeOf(el, "aria-label"), attributeOf(el, "placeholder"), attributeOf(el, "title")]
    .some((word) => word !== null && PIECE_NAME.test(word.slice(0, LABEL_CHARS)));
}

function isOneTimeCodeBox(el: Element): boolean {
  return (attributeOf(el, "autocomplete") ?? "").toLowerCase().split(/\s+/).includes("one-time-code");
}

/** A box the page marks as a code's or a card's (`one-time-code`, `cc-number`, `cc-csc`): boxes
 * shaped like it beside it are its other pieces (pages mark the first box only). */
function marksCodeOrCard(el: Element): boolean {
  return (attributeOf(el, "autocomplete") ?? "").toLowerCase().split(/\s+/)
    .some((token) => token === "one-time-code" || token === "cc-number" || token === "cc-csc");
}

/** Boxes alike: what a page writes the same on each box of one code (its look and keyboard, and
 * its `id` and `name` but their numbers: `otp-1`, `otp-2`). A checkout's other fields beside its
 * `cc-number` field (`name`, `email`, the same class) are not alike: their letters were masked as
 * a code's. */
function shapeOf(el: Element): string {
  const stem = (name: string): string => wordsOf(attributeOf(el, name) ?? "").filter((word) => !/^\p{N}+$/u.test(word)).join(" ");
  return [attributeOf(el, "type"), attributeOf(el, "class"), attributeOf(el, "inputmode")].map((v) => (v ?? "").trim().toLowerCase())
    .concat(stem("id"), stem("name")).join("\n");
}

/** Boxes that were one piece of a value typed in pieces, from when the SDK first saw them so:
 * a page that later takes off what said so (its `maxlength`, its `autocomplete`; an agent in
 * control clicking the page's own "paste the code" button) does not show the digits typed
 * there. Nothing is ever taken out. */
const everPiece = new WeakSet<Element>();

/** Whether a field is one box of a number typed in pieces: a card in four boxes of four, a code
 * one digit per box. Each box holds too few digits to be a card or a run of 7, so its digits are
 * masked, and its value is looked for where the page copies it (joined with the other boxes'),
 * when it is among at least SPLIT_MIN_BOXES piece boxes at its own depth: its parent's children,
 * or its grandparent's grandchildren (a box per wrapper), at most WRAPPER_NODES elements read.
 * A piece box is an input (pieceCandidate) the page says is short (saidToBeShort), any box
 * shaped alike (shapeOf) beside a box marked `one-time-code` (pages often mark the first box
 * only), or a box not said to be long named a code's (codeNaming: `otp-input`). Two or three
 * piece boxes are a code's only when the page says so (isSmallCodeGroup). A date or a phone
 * number in three boxes stays shown, and so do boxes the page names as a birth date, a phone
 * number, a postcode or a quantity, however many. Its letters are masked too (a code of
 * letters). Once a piece box, always one (everPiece). */
function isSplitNumberBox(el: Element): boolean {
  if (everPiece.has(el)) return true;
  if (!pieceCandidate(el)) return false;
  let kept = keptEntry(rootNodeOf(el));
  const known = kept?.split.get(el);
  if (known !== undefined) return known;
  const before = componentsRead;
  let found = splitBoxAtDepth(el, 1) || splitBoxAtDepth(el, 2);
  // Only a piece is asked whether it is a date's box (most fields are neither); a date's row is
  // read once: its other boxes are no pieces either (until the tree changes).
  const date = found ? dateRowOf(el) : null;
  // Read in other components' trees (a component per box): a change there is not seen by this
  // tree's observer, so nothing is kept (a piece stays one all the same: everPiece).
  if (componentsRead !== before) kept = null;
  if (date) {
    found = false;
    for (const field of date) if (!everPiece.has(field)) kept?.split.set(field, false);
  }
  kept?.split.set(el, found);
  if (found) everPiece.add(el);
  return found;
}

/** isSplitNumberBox at one depth: the children (1) or grandchildren (2) of `el`'s ancestor (an
 * element, or a shadow root holding the boxes or their wrappers straight). */
function splitBoxAtDepth(el: Element, depth: 1 | 2): boolean {
  let around = boxParentOf(el);
  if (depth === 2 && around) around = boxParentAbove(around);
  if (!around) return false;
  const boxes: Element[] = [];
  let seen = 0;
  for (const child of childElementsIn(around, WRAPPER_NODES)) {
    seen++;
    if (depth === 1) {
      if (pieceCandidate(child)) boxes.push(child);
      continue;
    }
    // A box per wrapper: the fields of a wrapper holding several (a date's row, a postcode's
    // two boxes) are a group of their own (depth 1), not pieces with the next row's.
    let fields = 0;
    let candidate: Element | null = null;
    for (const grandchild of wrapperChildrenOf(child, WRAPPER_NODES - seen)) {
      seen++;
      if (localNameOf(grandchild) !== "input" || FIXED_VALUE_TYPES.has((attributeOf(grandchild, "type") ?? "").toLowerCase().trim())) continue;
      fields++;
      if (pieceCandidate(grandchild)) candidate = grandchild;
    }
    if (fields === 1 && candidate) boxes.push(candidate);
    if (seen >= WRAPPER_NODES) break;
  }
  if (boxes.length < SPLIT_SMALL_MIN_BOXES || !boxes.includes(el)) return false;
  const codes = boxes.filter(marksCodeOrCard).map(shapeOf);
  // Boxes all alike in a row or form named a code's (`<div class="otp-inputs">`), their length
  // kept by script: pieces too (a checkout's name and email fields are not alike).
  // The names above first (a few attributes): most rows are named nothing.
  const alikeInCode = namedCodeAbove(el, around) && allAlike(boxes);
  const isPiece = (box: Element): boolean => saidToBeShort(box) || (codes.length > 0 && codes.includes(shapeOf(box))) ||
    (!saidToBeLong(box) && (alikeInCode || codeNaming(box) === "code"));
  if (!isPiece(el)) return false;
  const pieces = boxes.filter(isPiece);
  if (pieces.length >= SPLIT_MIN_BOXES) return true;
  return pieces.length >= SPLIT_SMALL_MIN_BOXES && isSmallCodeGroup(el, around, pieces, codes.length > 0 || alikeInCode);
}

/** Whether the boxes are all shaped alike (shapeOf). */
function allAlike(boxes: Element[]): boolean {
  const shape = shapeOf(boxes[0]);
  return boxes.every((box) => shapeOf(box) === shape);
}

/** Whether 2 or 3 piece boxes (fewer than SPLIT_MIN_BOXES) are a code's: a box among them is
 * marked `one-time-code`, `cc-number` or `cc-csc`, or they are all alike in a row or form named
 * a code's (`marked`), each is named a code's (codeNaming), their row or form is and each is
 * said to be short, or each holds one character (saidToHoldOne). A date or a phone number in boxes is none of these. */
function isSmallCodeGroup(el: Element, around: BoxParent, pieces: Element[], marked: boolean): boolean {
  if (marked || pieces.every((box) => codeNaming(box) === "code")) return true;
  if (pieces.length >= SPLIT_ONE_CHAR_BOXES && pieces.every(saidToHoldOne)) return true;
  return pieces.every(saidToBeShort) && namedCodeAbove(el, around);
}

/** A date's parts, by the words a page names them with (wordsOf): its boxes' `autocomplete`
 * (`bday-day`), names, placeholders (`DD`, `JJ`, `TT`, `AAAA`, `JJJJ`), labels, and their
 * wrappers' names and labels ("Day", `dob-month`). */
type DatePart = "day" | "month" | "year";
const DATE_PART_WORDS = new Map<string, DatePart>([
  ...["day", "dd", "jj", "tt", "jour", "dia", "día", "giorno", "dag", "дд", "день"].map((w): [string, DatePart] => [w, "day"]),
  ...["month", "mm", "mois", "monat", "mes", "mese", "maand", "мм", "месяц"].map((w): [string, DatePart] => [w, "month"]),
  ...["year", "yy", "yyyy", "aa", "aaaa", "jjjj", "année", "annee", "jahr", "año", "anno", "jaar", "гг", "гггг", "год"]
    .map((w): [string, DatePart] => [w, "year"]),
]);
/** A placeholder of one letter per box (`D` `D` `M` `M` `Y` `Y` `Y` `Y`; `T`, `A`): only a
 * placeholder's (a name's `d` is Bootstrap's `d-flex`). `J` is a day's in French and a year's in
 * German: none. */
const DATE_PART_LETTERS = new Map<string, DatePart>([["d", "day"], ["t", "day"], ["m", "month"], ["y", "year"], ["a", "year"]]);
/** How many characters each part of a date takes: a day's and a month's two, a year's two or four. */
const DATE_PART_CHARS: Record<DatePart, number[]> = { day: [2], month: [2], year: [2, 4] };
/** How many levels above a box its date's row is looked for (the parts' wrappers, their row), and
 * how many boxes a date takes at most (DD MM YYYY, one character each). */
const DATE_ROW_LEVELS = 3;
const DATE_ROW_BOXES = 8;

/**
 * The fields of the date `el` is a box of, or null: a date typed one character (or one part) per
 * box, DD MM YYYY, is the site's ordinary data, no code. A row (an element at most DATE_ROW_LEVELS above the box) whose
 * fields are all boxes the page names as a date's parts (datePartOf), each part's boxes one after
 * the other, holding a day's, a month's and a year's characters (DATE_PART_CHARS, by their
 * `maxlength`, or one for a box said to hold one: saidToHoldOne), and nothing around them that
 * says code (codeSaidAround). Anything less is no date: a row of boxes all named a day, a date's
 * name on its first box only, a day and a month with no year, parts interleaved, a box of no
 * stated length, a `one-time-code` or a code word on any box or above the row all stay a code's
 * (the safe side: only the digits are hidden).
 */
function dateRowOf(el: Element): Element[] | null {
  if (datePartOf(el) === null) return null;
  let row = boxParentOf(el);
  for (let level = 0; row && level < DATE_ROW_LEVELS; level++, row = boxParentAbove(row)) {
    const fields = fieldsUnder(row);
    if (fields === null || fields.length > DATE_ROW_BOXES) return null;
    const parts = fields.map(datePartOf);
    if (parts.some((p) => p === null)) return null; // a field that is no date's part
    if (isDateShape(fields, parts as DatePart[])) return codeSaidAround(fields, row) ? null : fields;
  }
  return null;
}

/** The fields under `row` (inputs that take a value, selects, textareas), DATE_ROW_LEVELS deep,
 * in tree order; null when more than WRAPPER_NODES elements are read. */
function fieldsUnder(row: BoxParent): Element[] | null {
  const fields: Element[] = [];
  let seen = 0;
  const walk = (el: BoxParent, depth: number): boolean => {
    for (const child of isShadowRoot(el) ? childElementsIn(el, WRAPPER_NODES + 1) : wrapperChildrenOf(el, WRAPPER_NODES + 1)) {
      if (++seen > WRAPPER_NODES) return false;
      const tag = localNameOf(child);
      if (tag === "select" || tag === "textarea" ||
        (tag === "input" && !FIXED_VALUE_TYPES.has((attributeOf(child, "type") ?? "").toLowerCase().trim()))) fields.push(child);
      else if (depth < DATE_ROW_LEVELS && !walk(child, depth + 1)) return false;
    }
    return true;
  };
  return walk(row, 1) ? fields : null;
}

/** Whether the parts make one date: each present once, its boxes one after the other, holding
 * DATE_PART_CHARS characters. */
function isDateShape(fields: Element[], parts: DatePart[]): boolean {
  const chars: Record<DatePart, number> = { day: 0, month: 0, year: 0 };
  const runs: DatePart[] = [];
  for (let i = 0; i < fields.length; i++) {
    const holds = charsHeld(fields[i]);
    if (holds === null) return false;
    chars[parts[i]] += holds;
    if (runs[runs.length - 1] !== parts[i]) runs.push(parts[i]);
  }
  return runs.length === 3 && new Set(runs).size === 3 &&
    (Object.keys(chars) as DatePart[]).every((part) => DATE_PART_CHARS[part].includes(chars[part]));
}

/** How many characters the page says a box holds (its `maxlength` up to 4; one when said to hold
 * one), or null: a box of no stated length is no date's part. */
function charsHeld(el: Element): number | null {
  if (localNameOf(el) !== "input") return null;
  const max = Number.parseInt(attributeOf(el, "maxlength") ?? "", 10);
  if (max >= 1 && max <= 4) return max;
  return saidToHoldOne(el) ? 1 : null;
}

/** The date part a box holds as the page names it: its own names first (datePartsNamedBy), then
 * its wrappers', nearest first, DATE_ROW_LEVELS up; null when none does, or when the nearest
 * that does names two parts. */
function datePartOf(el: Element): DatePart | null {
  let node: Element | null = el;
  for (let level = 0; node && level <= DATE_ROW_LEVELS; level++, node = parentElementOf(node)) {
    const parts = datePartsNamedBy(node, node === el);
    if (parts.size === 1) return [...parts][0];
    if (parts.size > 1) return null;
  }
  return null;
}

/** The date parts an element's names say: a box's `autocomplete` (`bday-day`), naming attributes,
 * `placeholder`, `title` and labels; a wrapper's naming attributes and labels (rowLabelsOf). */
function datePartsNamedBy(el: Element, box: boolean): Set<DatePart> {
  const parts = new Set<DatePart>();
  const texts: (string | null)[] = NAMING_ATTRIBUTES.filter((name) => name !== "class").map((name) => attributeOf(el, name));
  texts.push(...(attributeOf(el, "class") ?? "").slice(0, LABEL_CHARS).split(/\s+/));
  if (box) {
    for (const token of (attributeOf(el, "autocomplete") ?? "").toLowerCase().split(/\s+/)) {
      const part = /^bday-(day|month|year)$/.exec(token)?.[1];
      if (part) parts.add(part as DatePart);
    }
    const placeholder = (attributeOf(el, "placeholder") ?? "").trim().toLowerCase();
    const letter = DATE_PART_LETTERS.get(placeholder);
    if (letter) parts.add(letter);
    texts.push(placeholder, attributeOf(el, "title"));
    for (const label of labelsIn(rootNodeOf(el), el).slice(0, LABEL_REFS)) texts.push(textContentUpTo(label, LABEL_CHARS));
  } else {
    texts.push(...rowLabelsOf(el));
  }
  for (const text of texts) {
    for (const word of text ? wordsOf(text) : []) {
      const part = DATE_PART_WORDS.get(word);
      if (part) parts.add(part);
    }
  }
  return parts;
}

/** Whether anything says a date's row is a code's after all: a box marked `one-time-code` (or a
 * card's or a password's), a box or a wrapper up to the row, or the row and NAMING_LEVELS above
 * it, holding a code word (CODE_WORDS: `otp`, `code`, `digit`, "Verification code") in its names,
 * placeholder, title or labels, or numbering a box as a piece ("Digit 1 of 8": PIECE_NAME). */
function codeSaidAround(fields: Element[], row: BoxParent): boolean {
  const saysCode = (texts: (string | null)[]): boolean =>
    texts.some((text) => text !== null && (PIECE_NAME.test(text) || wordsOf(text).some((word) => CODE_WORDS.has(word))));
  const checked = new Set<Element>();
  const wrapperSaysCode = (node: Element): boolean => {
    if (checked.has(node)) return false;
    checked.add(node);
    return saysCode([...NAMING_ATTRIBUTES.map((name) => attributeOf(node, name)), ...rowLabelsOf(node)]);
  };
  for (const field of fields) {
    const tokens = (attributeOf(field, "autocomplete") ?? "").toLowerCase().trim().split(/\s+/);
    if (tokens.some((token) => SENSITIVE_AUTOCOMPLETE.test(token))) return true;
    const labels = labelsIn(rootNodeOf(field), field).slice(0, LABEL_REFS).map((label) => textContentUpTo(label, LABEL_CHARS));
    if (saysCode([...NAMING_ATTRIBUTES.map((name) => attributeOf(field, name)), attributeOf(field, "placeholder"),
      attributeOf(field, "title"), ...labels])) return true;
    for (let node = parentElementOf(field); node && node !== row; node = parentElementOf(node)) if (wrapperSaysCode(node)) return true;
  }
  // Through a shadow root to its host and on (a date's row a web component draws, its host named
  // `otp` or labelled a code's); unreadable counts as said. A row that is a shadow root: from its host.
  let node: Element | null;
  try {
    node = isShadowRoot(row) ? hostOf(row) : row;
    for (let level = 0; node && level <= NAMING_LEVELS; level++, node = composedParentElement(node)) if (wrapperSaysCode(node)) return true;
  } catch {
    return true;
  }
  return false;
}

/** The text of a slot of a code field drawn as slots (input-otp, shadcn/ui's InputOTP): one
 * transparent `one-time-code` field laid over elements that each show one character of its value
 * as page text (the field's value is hidden; one character is too short to be found as a copy of
 * it). A text of one letter or digit is such a slot when an element at most CODE_SLOT_LEVELS
 * levels above it is marked `data-input-otp-container`, or has a `one-time-code` field among its
 * children or grandchildren. */
const CODE_SLOT_LEVELS = 3;

/** The selector of what makes a tree hold code slots (isCodeSlot). */
const CODE_FIELD = 'input[autocomplete~="one-time-code" i], [data-input-otp-container]';

function isCodeSlot(el: Element, text: string): boolean {
  if (!/^\s*[\p{L}\p{N}]\s*$/u.test(text)) return false;
  // Most pages have no code field: one look at the tree (kept until it changes), not a walk up
  // from every short text.
  const root = rootNodeOf(el);
  const kept = keptEntry(root);
  const type = nodeTypeOf(root);
  if (kept && (type === DOCUMENT_NODE || type === DOCUMENT_FRAGMENT_NODE)) {
    kept.codeFields ??= queryAllIn(root as ParentNode, CODE_FIELD).length > 0;
    if (!kept.codeFields) return false;
  }
  let node: Element | null = el;
  for (let level = 0; node && level <= CODE_SLOT_LEVELS; level++) {
    if (holdsCodeField(node)) return true;
    node = parentElementOf(node);
  }
  return false;
}

function holdsCodeField(el: Element): boolean {
  const known = memo?.slots?.get(el);
  if (known !== undefined) return known;
  let found = hasAttributeOn(el, "data-input-otp-container");
  let seen = 0;
  for (const child of found ? [] : childElementsOf(el, WRAPPER_NODES)) {
    seen++;
    if (localNameOf(child) === "input" && isOneTimeCodeBox(child)) found = true;
    for (const grandchild of found ? [] : childElementsOf(child, WRAPPER_NODES - seen)) {
      seen++;
      if (localNameOf(grandchild) === "input" && isOneTimeCodeBox(grandchild)) found = true;
    }
    if (found || seen >= WRAPPER_NODES) break;
  }
  if (memo) (memo.slots ??= new Map()).set(el, found);
  return found;
}

/** Page text as the agent may see it. Never throws: on any error, every visible character masked. */
export function maskTextContent(text: string, el: MaskableElement | null): string {
  try {
    if (el && localNameOf(el) === "textarea") return maskInputValue(text, el);
    // An option's label would tell which one a hidden <select> shows: all read the same.
    if (el && text.trim() && hiddenSelectOf(el)) return MASK_PLACEHOLDER;
    if (el && insideMasked(el)) return text.replace(/\S/g, MASK);
    if (el && editableHostOf(el)) return maskEditableText(text, el);
    if (el && /\d/.test(text) && splitCardAround(el)) return maskCopies(text).replace(/\d/g, MASK);
    if (el && isCodeSlot(el, text)) return text.replace(/\S/g, MASK);
    return maskDetected(text);
  } catch (error) {
    failed(error);
    return String(text).replace(/\S/g, MASK);
  }
}

/** What makes an element editable by its own mark (`contenteditable=""`, `"true"`,
 * `"plaintext-only"`); `"false"` makes an island that is not. */
const CONTENT_EDITABLE = "[contenteditable]";
let contentEditableGetter: ((this: Element) => unknown) | null | undefined;

/**
 * The editing host `el` lies in (a `contenteditable` element, or `el` itself in a `designMode`
 * document), or null. What the customer types there is a value like a field's, not page text.
 * The browser's own answer (`isContentEditable`, read through HTMLElement's prototype like every
 * read of the page) and the nearest `contenteditable` mark both count: either one is enough.
 */
function editableHostOf(el: MaskableElement): Element | null {
  const marked = closestOf(el, CONTENT_EDITABLE);
  if (marked && (attributeOf(marked, "contenteditable") ?? "").trim().toLowerCase() !== "false") return marked;
  if (contentEditableGetter === undefined) {
    const html = (globalThis as { HTMLElement?: { prototype: object } }).HTMLElement;
    const get = html ? Object.getOwnPropertyDescriptor(html.prototype, "isContentEditable")?.get : undefined;
    contentEditableGetter = (get as ((this: Element) => unknown) | undefined) ?? null;
  }
  // Only HTML elements have it (an <svg> text inside an editor has the mark above).
  const html = (globalThis as { HTMLElement?: new () => unknown }).HTMLElement;
  if (contentEditableGetter && html && el instanceof html && contentEditableGetter.call(el) === true) {
    return marked ?? el;
  }
  return null;
}

/**
 * Text the customer can edit (inside a `contenteditable` host): the rules of a field's value.
 * Hidden unless the site unmasks it (`data-tandem-unmask` or `unmask`) and it is not a sensitive
 * field; unmasked, card numbers and every run of 7 or more digits are masked, also a run split
 * over several nodes of the host (the editor's formatting). Whitespace alone stays as it is.
 */
function maskEditableText(text: string, el: MaskableElement): string {
  if (!/\S/.test(text)) return text;
  // An editor the page draws as discs (`-webkit-text-security`: a PIN box on a number pad) is a
  // field drawn so (isSensitiveField), whatever the site shows.
  if (valueHidden(el) || drawnAsDots(el)) return hideValue(text, el);
  if (/\d/.test(text)) {
    const host = editableHostOf(el) ?? el;
    const whole = textContentUpTo(host, 400);
    // Too long to look at whole: every digit of this text is masked (privacy wins over display).
    if (whole === null) return maskDetected(text).replace(/\d/g, MASK);
    const flat = whole.replace(/\s+/g, " ");
    if (maskLongDigitRuns(flat) !== flat) {
      // The runs the editor's text masks are remembered, as a shown field's (maskShownValue).
      maskShownValue(flat);
      if (maskLongDigitRuns(text) === text) return maskDetected(text).replace(/\d/g, MASK);
    }
  }
  return maskShownValue(text);
}

/**
 * A card number spread over several nodes (`<p>Card: <b>4111</b> <b>1111</b>…</p>`) shows only in
 * an ancestor's text: look up to three levels up (small ancestors only, to stay cheap).
 */
function splitCardAround(el: MaskableElement): boolean {
  let node: Element | null = el;
  for (let level = 0; node && level < 4; level++) {
    const found = cardIn(node);
    if (found !== "none") return found === "card";
    node = parentElementOf(node);
  }
  return false;
}

/** An element's own text: holds a card number, holds none, or is empty or too long to look in
 * (the search stops there). */
type CardAround = "card" | "none" | "stop";

function cardIn(node: Element): CardAround {
  const known = memo?.cards.get(node);
  if (known !== undefined) return known;
  const whole = textContentUpTo(node, 400);
  let found: CardAround = "stop";
  if (whole) {
    const flat = whole.replace(/\s+/g, " ");
    found = maskCardNumbers(flat) !== flat ? "card" : "none";
  }
  memo?.cards.set(node, found);
  return found;
}

const IBAN = /\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b/g;
const SSN = /\b(?!000|666|9\d\d)\d{3}[- ](?!00)\d{2}[- ](?!0000)\d{4}\b/g;
const EMAIL = /[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}/g;
const PHONE = /(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]?\d{2,4}){1,5}/g;

export function ibanValid(candidate: string): boolean {
  const compact = candidate.replace(/ /g, "");
  if (compact.length < 15 || compact.length > 34) return false;
  const rearranged = compact.slice(4) + compact.slice(0, 4);
  let remainder = 0;
  for (const ch of rearranged) {
    const value = ch >= "A" && ch <= "Z" ? String(ch.charCodeAt(0) - 55) : ch;
    for (const digit of value) remainder = (remainder * 10 + (digit.charCodeAt(0) - 48)) % 97;
  }
  return remainder === 1;
}

/** Card numbers always; IBANs, US SSNs, e-mail addresses and phone numbers when the policy says. */
export function maskDetected(text: string): string {
  // Copies first: a copy whose digits a pattern masked first ("Hunter2" beside a card number,
  // "Hunter•") would no longer be found.
  return maskPatterns(maskCopies(text));
}

/** Card numbers always; IBANs, US SSNs, e-mail addresses and phone numbers when the policy says
 * (maskDetected without the copies of hidden values). */
function maskPatterns(text: string): string {
  let out = maskCardNumbers(text);
  const { iban, ssn, email, phone } = active.detectors;
  if (iban) out = out.replace(IBAN, (m) => (ibanValid(m) ? m.replace(/[A-Z0-9]/g, MASK) : m));
  if (ssn) out = out.replace(SSN, (m) => m.replace(/\d/g, MASK));
  if (email) out = out.replace(EMAIL, (m) => m.replace(/[^@.]/g, MASK));
  if (phone) out = out.replace(PHONE, (m) => (m.replace(/\D/g, "").length >= 9 ? m.replace(/\d/g, MASK) : m));
  return out;
}

/**
 * Defence in depth: mask card numbers in every string of a recorded event, wherever rrweb put
 * it (attributes, URLs, style text...). Numbers and structure are left alone.
 */
export function scrubEvent<T>(value: T): T {
  if (typeof value === "string") return maskDetected(value) as T;
  // Iterative and without a depth limit: a deep page must not overflow the stack or be skipped.
  const stack: object[] = [];
  if (value !== null && typeof value === "object") stack.push(value);
  while (stack.length) {
    const container = stack.pop() as Record<string, unknown>;
    for (const key of Object.keys(container)) {
      const item = container[key];
      if (typeof item === "string") {
        const url = URL_KEYS.has(key) ? stripUrl(item) : URL_LIST_KEYS.has(key) ? stripUrlList(item)
          : stripCssUrls(stripAddressesIn(item));
        // An element's name is markup, not page content: a copy there would only break the mirror.
        container[key] = key === "tagName" ? maskPatterns(url) : maskPatterns(maskCopies(url, isMarkup(container, key)));
      } else if (item !== null && typeof item === "object") {
        if (key === STYLE_KEY) stripStyleChanges(item as Record<string, unknown>);
        stack.push(item);
      }
    }
  }
  return value;
}

/** Keys whose string values are URLs: the page's address (`href` in rrweb's Meta event), links,
 * and every other attribute that names an address: a frame's whose document rrweb cannot read
 * (`rr_src`: another origin's, or one not loaded yet), an `<object>`'s `data`, a quote's `cite`... */
const URL_KEYS = new Set([
  "href", "src", "action", "formaction", "poster", "rr_src", "data", "cite", "background", "longdesc", "xlink:href",
]);
/** Keys whose string values are lists of URLs: image candidates (`a.png?u=1 2x, b.png`), a link's
 * `ping` addresses. */
const URL_LIST_KEYS = new Set(["srcset", "imagesrcset", "ping"]);

/** An address's user name and password (`https://jane:Hunter2@files.example/`): never sent. */
const URL_CREDENTIALS = /^(\s*[a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i;

/** Remove the query string and fragment unless the policy keeps them (they often carry data),
 * and always the user name and password an address carries. */
export function stripUrl(url: string): string {
  if (INLINE_ADDRESS.test(url)) return maskImageText(url); // its `#` and `?` are its content (an SVG's colours)
  let out = url.replace(URL_CREDENTIALS, "$1");
  if (!active.url.fragment) out = out.replace(/#[\s\S]*$/, "");
  if (!active.url.query) out = out.replace(/\?[^#]*/, "");
  return out;
}

/** An element's inline style: its text (`style` attribute), or rrweb's changes of it
 * (`{property: value | [value, priority]}`). */
const STYLE_KEY = "style";
/** A `url(…)` in CSS, and the address in it (quoted or not). */
const CSS_URL_ADDRESS = /url\(\s*(["']?)([^"')]*)\1\s*\)/gi;
/** Addresses that are their content, not where it is (`#` and `?` are part of them). */
const INLINE_ADDRESS = /^\s*(?:data|blob):/i;

/** An SVG image given as a `data:` address: its markup, percent-encoded or in base64. */
const SVG_DATA = /^(\s*data:image\/svg\+xml)((?:;(?!base64[;,])[^;,]*)*)(;base64)?,([\s\S]*)$/i;

/**
 * The text an SVG image given as a `data:` address draws (`<img src="data:image/svg+xml,…">`, a
 * CSS `url()`): a page draws a card number or a copy of a hidden value into one as it would into
 * a canvas, and encoded (`4111%201111…`, base64) neither pattern nor copy was found. Its markup
 * is decoded and masked like any text (card numbers, detectors, copies of hidden values; short
 * values not looked for, as in markup); changed, it goes percent-encoded, else as it was. Not
 * found: text split over several elements of the SVG, drawn as paths, or in a raster image.
 */
export function maskImageText(address: string): string {
  const match = SVG_DATA.exec(address);
  if (!match) return address;
  let markup: string;
  try {
    markup = match[3]
      ? new TextDecoder().decode(Uint8Array.from(atob(match[4].replace(/\s+/g, "")), (ch) => ch.charCodeAt(0)))
      // Leniently, as browsers read it: a `%` that starts no escape (`width="100%"`) stays.
      : match[4].replace(/(?:%[0-9a-f]{2})+/gi, (escapes) => {
        try {
          return decodeURIComponent(escapes);
        } catch {
          return escapes;
        }
      });
  } catch {
    return address; // not base64: the browser draws nothing of it either
  }
  const masked = maskPatterns(maskCopies(markup, true));
  return masked === markup ? address : `${match[1]}${match[2]},${encodeURIComponent(masked)}`;
}

/** An `@import` of a style sheet by a string (`@import "theme.css?user=…"`). */
const CSS_IMPORT_STRING = /(@import\s+)(["'])([^"']*)\2/gi;

/**
 * stripUrl on each `url(…)` and `@import "…"` of CSS: an inline style, a `<style>` element's
 * text, a rule the page inserts or a sheet it adopts, or any other string of an event that holds
 * one (`background-image: url(/avatar?email=…)`, `content: url(/badge?token=…)`). A `url(#id)`
 * (an SVG gradient, a marker) names a part of the page itself: it stays.
 */
export function stripCssUrls(css: string): string {
  if (!/url\(|@import/i.test(css)) return css;
  return css
    .replace(CSS_URL_ADDRESS, (whole: string, quote: string, address: string) =>
      address.trim().startsWith("#") ? whole : `url(${quote}${stripUrl(address)}${quote})`)
    .replace(CSS_IMPORT_STRING, (_whole: string, at: string, quote: string, address: string) => `${at}${quote}${stripUrl(address)}${quote}`);
}

/** An address with a scheme (`https://…`, `ftp://…`) anywhere in a string. */
const EMBEDDED_ADDRESS = /\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>()\\]*/gi;
/** A `<meta http-equiv="refresh">`'s `content` (`5; url=reset?token=…`): its address, relative
 * or not, is where the page goes next. */
const REFRESH = /^(\s*\d[\d.]*\s*[;,]\s*url\s*=\s*)(["']?)([^"']*)\2\s*$/i;
/** A string that is a path alone with a query or fragment (`/reset?token=…`, `//cdn…/a?x`). */
const PATH_ALONE = /^\s*\/[^\s]*[?#][^\s]*\s*$/;

/**
 * Addresses outside the attributes that name one (URL_KEYS): in any other attribute
 * (`data-url="/x?token=…"`, `content` of a `<meta>`, a `value`, JSON in a `data-*`), in page text
 * that shows a link, anywhere an event carries a string. stripUrl on every address with a scheme
 * in the string, and on the whole string when it is a path alone (starting with `/`). Not found:
 * a relative address that does not start with `/` (`reset?token=…`: plain words look the same).
 */
export function stripAddressesIn(text: string): string {
  if (INLINE_ADDRESS.test(text)) return maskImageText(text); // `data:`: its `?` and `#` are its content
  if (PATH_ALONE.test(text)) return stripUrl(text);
  const refresh = REFRESH.exec(text);
  if (refresh) return `${refresh[1]}${refresh[2]}${stripUrl(refresh[3])}${refresh[2]}`;
  if (!text.includes("://")) return text;
  return text.replace(EMBEDDED_ADDRESS, (address) => (/[?#@]/.test(address) ? stripUrl(address) : address));
}

function stripStyleChanges(changes: Record<string, unknown>): void {
  for (const [property, value] of Object.entries(changes)) {
    if (typeof value === "string") changes[property] = stripCssUrls(value);
    else if (Array.isArray(value) && typeof value[0] === "string") value[0] = stripCssUrls(value[0]);
  }
}

/** stripUrl on each address of a list (`srcset`'s candidates, `ping`'s addresses), separated by
 * whitespace; a candidate's trailing comma stays. */
export function stripUrlList(list: string): string {
  return list.replace(/\S+/g, (token) => {
    const comma = token.endsWith(",") ? "," : "";
    return stripUrl(comma ? token.slice(0, -1) : token) + comma;
  });
}

/**
 * rrweb gaps, closed on each recorded event before it is queued (`lookup` finds the live node
 * for a serialized node id, e.g. `record.mirror.getNode`):
 * - A snapshot copies an input's `value` attribute as it is and only overwrites it (masked) when
 *   the live value is non-empty, so a field the customer cleared would show its default value.
 * - Checkbox and radio states (`checked`, input events' `isChecked`) and `selected` attributes set
 *   on options after the snapshot never pass through `maskInputFn`.
 * - rrweb's own check whether a text needs masking swallows errors and then skips `maskTextFn`
 *   (`<form><input name="closest">` text): page text is masked here, every text of every event
 *   (snapshot, added nodes, text changes), and rrweb is not asked to (recordMaskingOptions): one
 *   pass over the text, not two (issue 17).
 * All follow the input rules: hidden unless `data-tandem-unmask` and not sensitive.
 * Mutates and returns `event`. Never throws: a node whose masking fails has its text and values
 * masked whole; an event that cannot be walked at all is dropped (null), never sent raw.
 */
export function maskFormState<T>(event: T, lookup: (id: number) => unknown): T | null {
  memo = { masked: new Map(), cards: new Map(), blocked: new Map() };
  try {
    refreshSecrets();
    // First, on the texts as the page wrote them (what the rest of masking reads).
    maskSplitCopies(event, lookup);
    const masked = maskEventState(event, lookup);
    // Now, while the fields hold what the page copied (scrubEvent looks again as the batch
    // leaves, when the customer may have typed on: "Zebr" echoed, "Zebra-1" remembered).
    return masked === null ? null : withoutRepeatedMasks(maskCopiesIn(masked), lookup);
  } finally {
    memo = null;
  }
}

function maskEventState<T>(event: T, lookup: (id: number) => unknown): T | null {
  try {
    const e = event as { type?: unknown; data?: Record<string, unknown> };
    if (!e || typeof e !== "object" || !e.data || typeof e.data !== "object") return event;
    if (e.type === FULL_SNAPSHOT) {
      maskSerializedTree(e.data.node, lookup);
    } else if (e.type === INCREMENTAL_SNAPSHOT && e.data.source === MUTATION) {
      // rrweb records what is drawn later in a blocked shadow host's root, or in a frame added
      // there (it watches the root of every host it serialises): dropped here, as the rest of
      // the blocked region.
      const { data } = e;
      // Before the changes of what is now blocked are dropped: a mark added late is one of them.
      for (const change of asArray(data.attributes)) noteLateMark(lookup, (change as { id?: unknown } | null)?.id);
      if (Array.isArray(data.adds)) data.adds = data.adds.filter((add) => !blockedAround(lookup, (add as { node?: { id?: unknown } })?.node?.id, false));
      if (Array.isArray(data.texts)) data.texts = data.texts.filter((change) => !blockedAround(lookup, (change as { id?: unknown })?.id, true));
      if (Array.isArray(data.attributes)) data.attributes = data.attributes.filter((change) => !blockedAround(lookup, (change as { id?: unknown })?.id, true));
      for (const add of asArray(e.data.adds)) maskSerializedTree((add as { node?: unknown })?.node, lookup);
      const unchanged = new Set<unknown>();
      for (const change of asArray(e.data.texts)) {
        const text = (change ?? {}) as { id?: unknown; value?: unknown };
        const value = text.value;
        if (typeof value !== "string") continue;
        try {
          const node = typeof text.id === "number" ? lookup(text.id) : null;
          // A comment shows nothing: what it says never goes (also in a masked region or an editor).
          text.value = nodeTypeOf(node) === COMMENT_NODE ? "" : maskTextContent(value, node ? textParent(node) : null);
          if (node && typeof node === "object" && sameAsSent(sentTexts, node, value, text.value as string)) unchanged.add(change);
        } catch (error) {
          failed(error);
          text.value = value.replace(/\S/g, MASK);
        }
      }
      if (unchanged.size && Array.isArray(data.texts)) data.texts = data.texts.filter((change) => !unchanged.has(change));
      for (const change of asArray(e.data.attributes)) {
        const { id, attributes } = (change ?? {}) as { id?: unknown; attributes?: unknown };
        if (typeof id !== "number" || !attributes || typeof attributes !== "object") continue;
        const attrs = attributes as Record<string, unknown>;
        delete attrs[FRAME_DOCUMENT];
        try {
          const el = asElement(lookup(id));
          dropInlineDocuments(attrs, el ? localNameOf(el) : null);
          if (!el || localNameOf(el) === "meta") maskMetaContent(attrs, el);
          maskTextAttributes(attrs, el);
          const holdsState = el !== null && hideFieldState(attrs, el);
          const field = el !== null && VALUE_FIELDS.has(localNameOf(el));
          const hidden = !el || valueHidden(el);
          if (hidden) {
            hideChoices(attrs);
            if (field && el) hideValueCopies(attrs, el);
          } else if (field && el) {
            hideValueCopies(attrs, el, true);
          }
          if (el && hiddenSelectOf(el)) {
            for (const name of ["value", "label"]) if (typeof attrs[name] === "string") attrs[name] = MASK_PLACEHOLDER;
          }
          if (el && (holdsState || (field && hidden))) dropUnchangedAttributes(attrs, el);
        } catch (error) {
          failed(error);
          dropInlineDocuments(attrs, null);
          hideAttributes(attrs);
        }
      }
      if (emptied(data)) return null;
    } else if (e.type === INCREMENTAL_SNAPSHOT && e.data.source === INPUT && typeof e.data.id === "number") {
      let el: Element | null = null;
      let hidden = true;
      try {
        el = asElement(lookup(e.data.id));
        hidden = !el || valueHidden(el) || blockedAround(lookup, e.data.id, true);
      } catch (error) {
        failed(error);
      }
      // A hidden checkbox's or radio button's events say which was chosen (rrweb sends one per
      // change of state, the chosen radio first): none goes, as the mirror shows none ticked.
      if (hidden && isCheckable(el)) return null;
      if (typeof e.data.text === "string") e.data.text = hidden ? hideValue(e.data.text, el) : maskInputValue(e.data.text, el);
      if (e.data.isChecked === true && hidden) e.data.isChecked = false;
    } else if (e.type === INCREMENTAL_SNAPSHOT && e.data.source === MOUSE_INTERACTION && typeof e.data.id === "number") {
      // Focus, clicks and touches of a hidden checkbox or radio button (arrow keys in a radio
      // group move focus and choice together).
      if (hiddenCheckable(lookup, e.data.id)) return null;
    } else if (e.type === INCREMENTAL_SNAPSHOT && e.data.source === SCROLL && typeof e.data.id === "number") {
      // A hidden field or editor scrolls as its text grows: how far tells how wide (how long)
      // the hidden text is, a textarea's lines, and when each key was typed.
      if (scrollsHiddenText(lookup, e.data.id)) return null;
    } else if (e.type === INCREMENTAL_SNAPSHOT && e.data.source === SELECTION && Array.isArray(e.data.ranges)) {
      // A selection's offsets in a hidden editor's text are positions in the text the agent
      // sees as a placeholder: its length, where the caret is.
      const all = e.data.ranges.length;
      e.data.ranges = e.data.ranges.filter((range: { start?: unknown; end?: unknown } | null) =>
        !inHiddenEditor(lookup, range?.start) && !inHiddenEditor(lookup, range?.end));
      if (all > 0 && (e.data.ranges as unknown[]).length === 0) return null;
    }
    return event;
  } catch (error) {
    failed(error);
    return null;
  }
}

/**
 * Marks added after what they mark was sent: a page (its framework, after the first render) adds
 * a `mask` or `hide` class, or `.rr-mask`/`.rr-block`, to an element rrweb already sent as it
 * was. rrweb sends only the attribute's change, so the agent's mirror (and a recording) kept the
 * element's text and content as they were, under the mark, for as long as the page lives. The
 * elements sent inside a masked region, and those sent blocked (rrweb's empty box), are known
 * here; an element that is now a masked region's or a blocked one's, and was not sent as such,
 * asks (onMarkedLate) for a full snapshot, which sends the page afresh under the marks. What the
 * agent saw before the mark was added stays seen: mark in the markup the page is served with.
 */
const sentMasked = new WeakSet<Element>();
const sentBlocked = new WeakSet<Element>();
let lateMarkListener: (() => void) | null = null;

/** Called when an element was marked (masked or hidden) after it was sent unmarked. */
export function onMarkedLate(listener: (() => void) | null): void {
  lateMarkListener = listener;
}

function noteSentRegion(el: Element, attrs: Record<string, unknown>): void {
  if (insideMasked(el)) sentMasked.add(el);
  else sentMasked.delete(el);
  // rrweb's empty box for a blocked element: its size, no content.
  if ("rr_width" in attrs) sentBlocked.add(el);
  else sentBlocked.delete(el);
}

/** After a change of the element a recorded id names: whether it is now marked as it was not
 * when sent (then onMarkedLate's listener is told, once for the element). */
function noteLateMark(lookup: (id: number) => unknown, id: unknown): void {
  if (typeof id !== "number") return;
  try {
    const el = asElement(lookup(id));
    if (!el) return;
    let late = false;
    if (!sentMasked.has(el) && insideMasked(el)) {
      sentMasked.add(el);
      late = true;
    }
    blockedSelector ??= ownBlockSelector();
    if (!sentBlocked.has(el) && (matchesOf(el, blockedSelector) || isClobberedForm(el))) {
      sentBlocked.add(el);
      late = true;
    }
    if (late) lateMarkListener?.();
  } catch (error) {
    failed(error);
  }
}

/** A checkbox or radio button (its state is the customer's choice). */
function isCheckable(el: Element | null): boolean {
  if (!el || localNameOf(el) !== "input") return false;
  const type = (attributeOf(el, "type") ?? "").toLowerCase().trim();
  return type === "checkbox" || type === "radio";
}

/** Whether a recorded id names a hidden checkbox or radio button. Fails closed (a node that
 * cannot be read counts as one). */
function hiddenCheckable(lookup: (id: number) => unknown, id: number): boolean {
  try {
    const el = asElement(lookup(id));
    return isCheckable(el) && valueHidden(el as Element);
  } catch (error) {
    failed(error);
    return true;
  }
}

/** Whether a recorded id names a hidden field, or an element of an editor whose text is hidden
 * (or is unreadable); the page's document and other elements are not. */
function scrollsHiddenText(lookup: (id: number) => unknown, id: number): boolean {
  try {
    const el = asElement(lookup(id));
    if (!el) return false;
    return (isValueField(el) && valueHidden(el)) || inHiddenEditor(lookup, id);
  } catch (error) {
    failed(error);
    return true;
  }
}

/** Whether a recorded id names a node of an editor whose text is hidden (or is unreadable). */
function inHiddenEditor(lookup: (id: number) => unknown, id: unknown): boolean {
  if (typeof id !== "number") return false;
  try {
    const el = textParent(lookup(id));
    return el !== null && editableHostOf(el) !== null && valueHidden(el);
  } catch (error) {
    failed(error);
    return true;
  }
}

/**
 * What was last sent of a masked text node, and of the attributes of a hidden field (or its
 * wrapper), as masked: a keystroke changes the page (an editor's text, a `value` attribute a
 * framework keeps in step with the field, a `data-*` copy) but not what the agent may see of it
 * (the placeholder again). rrweb sends each change all the same, so their number and timing told
 * the length of what was typed; such changes are dropped (sameAsSent, dropUnchangedAttributes).
 * Filled from what snapshots and changes send; a full snapshot sets them afresh.
 */
let sentTexts = new WeakMap<object, string>();
let sentAttributes = new WeakMap<object, Map<string, unknown>>();

/** Forget what was sent (a new recording starts with a full snapshot; tests). */
export function forgetSent(): void {
  sentTexts = new WeakMap();
  sentAttributes = new WeakMap();
  sentMaskedAttributes = new WeakMap();
}

/** Whether a text change of `node` (`raw`, masked as `masked`) shows what was last sent of it;
 * remembers what goes. Only masked text is remembered: shown text changes when it changes. */
function sameAsSent(sent: WeakMap<object, string>, node: object, raw: string, masked: string): boolean {
  const last = sent.get(node);
  if (last === masked) return true;
  if (last !== undefined || masked !== raw) sent.set(node, masked);
  return false;
}

/** Drop a mutation's attribute changes left empty; whether nothing is left to tell (a hidden
 * value changed to what it already showed: a keystroke), then no event goes, so neither the
 * agent nor the relay counts the keystrokes. */
function emptied(data: Record<string, unknown>): boolean {
  if (Array.isArray(data.attributes)) {
    data.attributes = data.attributes.filter((change) => {
      const attrs = (change as { attributes?: unknown } | null)?.attributes;
      return !attrs || typeof attrs !== "object" || Object.keys(attrs).length > 0;
    });
  }
  return ["adds", "removes", "texts", "attributes"].every((key) => data[key] === undefined ||
    (Array.isArray(data[key]) && (data[key] as unknown[]).length === 0));
}

/** What was last sent, masked, of any element's attribute (a copy of a hidden value the page
 * writes into another element's `data-*` or `title` as the customer types). */
let sentMaskedAttributes = new WeakMap<object, Map<string, string>>();

/**
 * The last pass over a change of attributes, as it goes (masked, copies too): an attribute whose
 * value holds the mask and is what was last sent of it is dropped (a page that copies a password
 * into a preview's `data-*` at each keystroke sent the same placeholder each time), and the
 * event, if nothing is left. Never throws: an event it cannot read goes as it is.
 */
function withoutRepeatedMasks<T>(event: T | null, lookup: (id: number) => unknown): T | null {
  const e = event as { type?: unknown; data?: Record<string, unknown> } | null;
  if (!e || e.type !== INCREMENTAL_SNAPSHOT || !e.data || e.data.source !== MUTATION || !Array.isArray(e.data.attributes)) return event;
  try {
    for (const change of e.data.attributes as { id?: unknown; attributes?: unknown }[]) {
      const node = typeof change?.id === "number" ? lookup(change.id) : null;
      if (!node || typeof node !== "object" || !change.attributes || typeof change.attributes !== "object") continue;
      const attrs = change.attributes as Record<string, unknown>;
      let last = sentMaskedAttributes.get(node);
      for (const [name, value] of Object.entries(attrs)) {
        if (typeof value === "string" && value.includes(MASK)) {
          if (last?.get(name) === value) {
            delete attrs[name];
          } else {
            if (!last) sentMaskedAttributes.set(node, (last = new Map()));
            last.set(name, value);
          }
        } else {
          last?.delete(name);
        }
      }
    }
    return emptied(e.data) ? null : event;
  } catch (error) {
    failed(error);
    return event;
  }
}

/** Remove from a change of `el`'s attributes those that show what was last sent of them. */
function dropUnchangedAttributes(attrs: Record<string, unknown>, el: Element): void {
  let last = sentAttributes.get(el);
  if (!last) {
    last = new Map();
    sentAttributes.set(el, last);
  }
  for (const [name, value] of Object.entries(attrs)) {
    if (last.has(name) && last.get(name) === value) delete attrs[name];
    else last.set(name, value);
  }
}

/**
 * Whether the live node of a recorded id lies in a region rrweb blocks (`hide`, `.rr-block`...),
 * through shadow roots and frames: a node inside it (`self`: or the node itself). An id with no
 * live node is not (rrweb's mirror knows every node it has just serialised); a node whose
 * ancestry cannot be read is (fails closed, reported).
 */
function blockedAround(lookup: (id: number) => unknown, id: unknown, self: boolean): boolean {
  if (typeof id !== "number") return false;
  try {
    const node = lookup(id);
    if (node === null || node === undefined) return false;
    const start = (self ? asElement(node) : null) ?? composedParentElement(node as Node);
    if (start === null) return false;
    const known = memo?.blocked.get(start);
    if (known !== undefined) return known;
    blockedSelector ??= ownBlockSelector();
    const blocked = composedClosest(start, blockedSelector) !== null || inClobberedForm(start);
    memo?.blocked.set(start, blocked);
    return blocked;
  } catch (error) {
    failed(error);
    return true;
  }
}

/**
 * Whether a live node is a region rrweb blocks (`hide`, `.rr-block`, Tandem's own UI...: an empty
 * box for the agent) or lies inside one, through shadow roots and frames. What the customer does
 * there, and the style sheets drawn there, must not be told (../share/hidden-events.ts). Fails
 * closed: a node that is unknown (null: rrweb never serialised it, as it does not serialise
 * what blocked regions hold), detached or unreadable counts as hidden. Documents count by the
 * frame that shows them; the page's own document is not hidden.
 */
export function inBlockedRegion(node: unknown): boolean {
  try {
    if (node === null || node === undefined) return true;
    const start = asElement(node) ?? composedParentElement(node as Node);
    if (start === null) return !(nodeTypeOf(node) === DOCUMENT_NODE && frameElementOf(node as Document) === null);
    blockedSelector ??= ownBlockSelector();
    return composedClosest(start, blockedSelector) !== null || inClobberedForm(start);
  } catch {
    return true;
  }
}

/** Input types whose `value` is a label the page wrote, never something typed. */
const LABEL_INPUT_TYPES = new Set(["button", "submit", "reset", "image"]);

function asArray(value: unknown): unknown[] {
  return Array.isArray(value) ? value : [];
}

/** The element a live text (or CDATA) node sits in (masking of text goes by it), or null; text
 * right in a shadow root sits in its host. Throws when that cannot be read. */
function textParent(node: unknown): Element | null {
  const type = nodeTypeOf(node);
  return type === TEXT_NODE || type === CDATA_SECTION_NODE ? composedParentElement(node as Node) : asElement(node);
}

/** Marks Tandem's own UI (./share/ui.ts): its hosts and its container. */
export const TANDEM_UI_ATTRIBUTE = "data-tandem-ui";
const TANDEM_UI = `[${TANDEM_UI_ATTRIBUTE}]`;

/** The node features `insideTandemUi` looks at (kept narrow so tests can fake a shadow tree). */
export interface ComposedNode {
  closest?(selector: string): unknown;
  parentElement?: unknown;
  getRootNode(): unknown;
}

/**
 * Whether `node` is part of Tandem's own UI: inside a `data-tandem-ui` element, looking through
 * shadow roots to their hosts (`closest` alone stops at a shadow root, as rrweb's blocking does).
 */
export function insideTandemUi(node: ComposedNode): boolean {
  let current: ComposedNode | null = node;
  // Bounded: shadow roots nest, but never thousands deep in a real page.
  for (let depth = 0; current && depth < 1000; depth++) {
    const el = (typeof current.closest === "function" ? current : current.parentElement) as ComposedNode | null;
    if (el && typeof el.closest === "function" && el.closest(TANDEM_UI)) return true;
    const root = current.getRootNode() as { host?: unknown } | null;
    current = root && root !== current && root.host ? (root.host as ComposedNode) : null;
  }
  return current !== null; // deeper than that: treat as Tandem's, refuse
}

/** Whether the agent may act on `el` (remote control): it must be able to see it. */
export function agentMayTouch(el: Element): boolean {
  try {
    if (composedClosest(el, "[data-tandem-no-control]") || insideTandemUi(el)) return false;
    const regions = [RR_BLOCK, RR_MASK, ...active.mask, ...active.hide].join(", ");
    if (composedClosest(el, regions)) return false;
    const field = el.closest("input, textarea, select");
    return !field || !valueHidden(field);
  } catch {
    return false; // a page shape we cannot read: the agent may not act on it
  }
}

/** What the customer's overlay outlines: fields and regions the agent cannot read, in `root` and
 * in the open shadow roots of its web components (a same-origin frame is outlined whole when its
 * region is; the fields inside it are not outlined one by one). */
export function hiddenFromAgent(root: ParentNode): Element[] {
  // One pass over a page that does not change meanwhile: what every field shares is read once.
  const outer = memo;
  memo ??= { masked: new Map(), cards: new Map(), blocked: new Map() };
  try {
    return hiddenFieldsAndRegions(root);
  } finally {
    memo = outer;
  }
}

function hiddenFieldsAndRegions(root: ParentNode): Element[] {
  const regions = [RR_BLOCK, ...active.mask, ...active.hide].join(", ");
  const out: Element[] = [];
  for (const tree of openTrees(root)) {
    for (const field of Array.from(tree.querySelectorAll("input, textarea, select"))) {
      try {
        const type = (attributeOf(field, "type") ?? "").toLowerCase();
        if (type === "hidden" || ["button", "submit", "reset", "image"].includes(type)) continue;
        if (valueHidden(field)) out.push(field);
      } catch {
        out.push(field); // unreadable: it is hidden from the agent (masking fails closed)
      }
    }
    for (const region of Array.from(tree.querySelectorAll(regions))) out.push(region);
  }
  return out.filter((el) => !insideTandemUi(el));
}

/** `root` and the open shadow roots under it, however deep (Tandem's own UI left out). */
function openTrees(root: ParentNode): ParentNode[] {
  const trees: ParentNode[] = [root];
  for (let i = 0; i < trees.length && trees.length < MAX_COMPOSED_DEPTH; i++) {
    for (const el of Array.from(trees[i].querySelectorAll("*"))) {
      const shadow = shadowRootOf(el);
      if (shadow && !hasAttributeOn(el, TANDEM_UI_ATTRIBUTE)) trees.push(shadow);
    }
  }
  return trees;
}

function valueHidden(el: MaskableElement): boolean {
  // Cheapest first: most fields are hidden for want of a mark that shows them.
  return !closestOf(el, unmaskSelector) || insideMasked(el) || composedClosest(el, RR_VALUE_HIDDEN) !== null ||
    isSensitiveField(el);
}

/**
 * Attributes a masked region keeps as they are: they shape the page, they do not say anything
 * about the customer (rrweb's own `rr_*` sizes and `_cssText` of a style among them). Every other
 * attribute value is masked: `href="mailto:…"`, `datetime`, `data-*`, `aria-*`, `src`...
 */
const STRUCTURAL_ATTRIBUTES = new Set([
  "class", "id", "style", "rel", "type", "role", "sizes", "width", "height", "dir", "hidden", "tabindex",
  "colspan", "rowspan", "span", "contenteditable", "draggable", "disabled", "readonly", "required",
  "multiple", "open", "rr_width", "rr_height", "_csstext",
]);
/** Of a link in a masked region only its scheme stays (`mailto:`, `tel:`), else `#`. */
const LINK_ATTRIBUTES = new Set(["href", "xlink:href"]);
/** A `url(…)` in a style: the address of something the masked region shows. */
const CSS_URL = /url\(\s*(?:"[^"]*"|'[^']*'|[^)]*)\s*\)/gi;

function maskTextAttributes(attrs: Record<string, unknown>, el: MaskableElement | null): void {
  if (!el) return;
  if (insideMasked(el)) return maskRegionAttributes(attrs);
  // Markup the customer typed into an editor (a pasted link) is theirs like the text.
  const host = editableHostOf(el);
  if (host && valueHidden(el)) maskRegionAttributes(attrs);
}

/** Every attribute value of an element in a masked region, but the structural ones. */
function maskRegionAttributes(attrs: Record<string, unknown>): void {
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value !== "string") continue;
    const key = name.toLowerCase();
    if (key === "style") attrs[name] = value.replace(CSS_URL, "none");
    else if (LINK_ATTRIBUTES.has(key)) attrs[name] = linkScheme(value);
    else if (!STRUCTURAL_ATTRIBUTES.has(key)) attrs[name] = value.replace(/\S/g, MASK);
  }
}

/** `mailto:`, `tel:`, `sms:`... of a link, or `#` (an http(s) or relative address says where). */
function linkScheme(url: string): string {
  const scheme = /^\s*([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  return scheme && !["http", "https", "javascript", "data", "blob", "file"].includes(scheme) ? `${scheme}:` : "#";
}

/** Elements whose value the customer types or chooses. */
const VALUE_FIELDS = new Set(["input", "textarea", "select"]);
/** Input types whose value the customer neither types nor chooses (a label, or "on"). */
const FIXED_VALUE_TYPES = new Set([...LABEL_INPUT_TYPES, "checkbox", "radio"]);

/** A field's own shape, which the page writes (a value copied there would change nothing). */
const FIELD_SHAPE = new Set(["value", "size", "cols", "rows", "maxlength", "minlength", "min", "max", "step", "list"]);
/** How long a value (or a copy) must be to be looked for inside longer text, or as its start. */
const COPY_CHARS = 3;

/**
 * A hidden field's other attributes that repeat its value: pages copy what is typed into an
 * attribute of the field itself for their styles or their framework (`data-value`, Angular's
 * `ng-reflect-model` in development builds, cut at 30 characters). Each attribute (but `value`,
 * masked on its own, the structural ones and the field's shape) that is the field's live value,
 * holds it, or is its start, becomes the hidden value's placeholder, as the value does. Of a
 * field the site shows (`shown`), such a copy is masked as the value is (maskInputValue: a run of
 * 7 or more digits, a card number, a piece box's characters): a card number typed key by key and
 * copied into the field's `data-value` showed each prefix the value did not.
 */
function hideValueCopies(attrs: Record<string, unknown>, el: Element, shown = false): void {
  if (localNameOf(el) === "input" && FIXED_VALUE_TYPES.has((attributeOf(el, "type") ?? "").toLowerCase())) return;
  const live = liveValueOf(el);
  if (!live) return;
  for (const [name, value] of Object.entries(attrs)) {
    if (typeof value !== "string" || value === "") continue;
    const key = name.toLowerCase();
    if (FIELD_SHAPE.has(key) || STRUCTURAL_ATTRIBUTES.has(key)) continue;
    const copy = value === live || (live.length >= COPY_CHARS && value.includes(live)) ||
      (value.length >= COPY_CHARS && live.startsWith(value));
    if (copy) attrs[name] = shown ? maskInputValue(value, el) : hideValue(value, el);
  }
}

/** Checked and selected states reveal a choice; `null` (a removal) reveals nothing. */
function hideChoices(attrs: Record<string, unknown>): void {
  if (attrs.checked !== undefined && attrs.checked !== null) delete attrs.checked;
  if (attrs.selected !== undefined && attrs.selected !== null) delete attrs.selected;
}

/** Fail closed for one node whose masking failed: every word and choice it carries is hidden. */
function hideAttributes(attrs: Record<string, unknown>): void {
  hideChoices(attrs);
  maskRegionAttributes(attrs);
}

/**
 * A frame's `srcdoc`: its document's markup as the page wrote it, values, passwords and masked or
 * hidden regions as they are. rrweb records that document on its own (as it does any same-origin
 * frame's), where masking sees each node; the attribute would carry all of it unmasked. Never
 * sent, in snapshots, added nodes and attribute changes alike (the mirror builds the frame from
 * the recorded document).
 */
const FRAME_DOCUMENT = "srcdoc";

/**
 * A `<meta>`'s `content` draws nothing in the mirror, and pages keep in it what a hidden input
 * would hold (`<meta name="csrf-token" content="…">`, an API key, the signed-in user's id or
 * e-mail): it becomes the placeholder, but for the few that change how the page is drawn
 * (RENDERED_META, by `name` or `http-equiv`), whose addresses stripAddressesIn strips. `el`
 * null (unknown): its `content` is masked.
 */
const RENDERED_META = new Set(["viewport", "color-scheme", "theme-color", "content-type", "content-language", "default-style"]);

function maskMetaContent(attrs: Record<string, unknown>, el: Element | null): void {
  if (typeof attrs.content !== "string" || attrs.content === "") return;
  const kind = ((el ? (attributeOf(el, "name") ?? attributeOf(el, "http-equiv")) : null) ?? "").trim().toLowerCase();
  if (!RENDERED_META.has(kind)) attrs.content = MASK_PLACEHOLDER;
}

/** Elements that show another document, and the attributes that name it. */
const EMBEDDING = new Set(["iframe", "frame", "object", "embed"]);
const EMBEDDED_SOURCES = ["src", "rr_src", "data"];
const DATA_ADDRESS = /^\s*data:/i;

/**
 * A document an embedding element (`<iframe>`, `<frame>`, `<object>`, `<embed>`) shows from a
 * `data:` address is in the address itself: its markup as the page wrote it (`data:text/html,
 * <p>…`). The browser gives it an origin of its own, so rrweb never records it (what masking would
 * see), and copies the address (as `rr_src` for a frame): never sent, in snapshots, added nodes
 * and attribute changes alike; the agent sees an empty frame or box. `tag` null: the element is
 * unknown, and no `data:` source goes whatever it is (an image's change is then not shown).
 */
function dropInlineDocuments(attrs: Record<string, unknown>, tag: string | null): void {
  if (tag !== null && !EMBEDDING.has(tag)) return;
  for (const key of EMBEDDED_SOURCES) {
    const value = attrs[key];
    if (typeof value === "string" && DATA_ADDRESS.test(value)) delete attrs[key];
  }
}

interface SerializedNode {
  type?: unknown; id?: unknown; tagName?: unknown; attributes?: unknown; childNodes?: unknown;
  textContent?: unknown; isStyle?: unknown;
}

/** Iterative: a page's DOM depth must not be able to overflow the stack or skip masking. */
function maskSerializedTree(root: unknown, lookup: (id: number) => unknown): void {
  const stack: unknown[] = [root];
  while (stack.length) {
    const node = stack.pop();
    if (!node || typeof node !== "object") continue;
    const n = node as SerializedNode;
    try {
      maskSerializedNode(n, lookup);
    } catch (error) {
      failed(error);
      if (n.attributes && typeof n.attributes === "object") hideAttributes(n.attributes as Record<string, unknown>);
      if (typeof n.textContent === "string" && n.isStyle !== true) n.textContent = n.textContent.replace(/\S/g, MASK);
    }
    for (const child of asArray(n.childNodes)) stack.push(child);
  }
}

function maskSerializedNode(n: SerializedNode, lookup: (id: number) => unknown): void {
  if (n.type === SERIALIZED_ELEMENT && typeof n.tagName === "string" && n.attributes && typeof n.attributes === "object") {
    const attrs = n.attributes as Record<string, unknown>;
    delete attrs[FRAME_DOCUMENT]; // before anything that could fail: never sent
    dropInlineDocuments(attrs, n.tagName.toLowerCase());
    const el = typeof n.id === "number" ? asElement(lookup(n.id)) : null;
    if (n.tagName.toLowerCase() === "form") {
      blockShapedForm(n, el);
      if (n.attributes !== attrs) {
        if (el) noteSentRegion(el, n.attributes as Record<string, unknown>);
        return;
      }
    }
    if (n.tagName.toLowerCase() === "meta") maskMetaContent(attrs, el);
    maskSerializedField(n.tagName.toLowerCase(), attrs, el);
    maskTextAttributes(attrs, el);
    if (el) noteSentRegion(el, attrs);
    if (el && (hideFieldState(attrs, el) || (isValueField(el) && valueHidden(el)))) {
      sentAttributes.set(el, new Map(Object.entries(attrs)));
    }
  } else if ((n.type === SERIALIZED_TEXT || n.type === SERIALIZED_CDATA) && typeof n.textContent === "string" && n.isStyle !== true) {
    const node = typeof n.id === "number" ? lookup(n.id) : null;
    const raw = n.textContent;
    const masked = maskTextContent(raw, typeof n.id === "number" ? textParent(node) : null);
    n.textContent = masked;
    if (node && typeof node === "object") {
      if (masked !== raw) sentTexts.set(node, masked);
      else sentTexts.delete(node);
    }
  } else if (n.type === SERIALIZED_COMMENT && typeof n.textContent === "string") {
    // A comment shows nothing, and pages leave much in them (a template's data, an editor's
    // pasted document with its author): what it says never goes, wherever it is.
    n.textContent = "";
  }
}

function maskSerializedField(tag: string, attrs: Record<string, unknown>, el: Element | null): void {
  if (tag !== "input" && tag !== "textarea" && tag !== "select" && tag !== "option") return;
  const type = typeof attrs.type === "string" ? attrs.type.toLowerCase() : "";
  const isLabel = tag === "option" || (tag === "input" && LABEL_INPUT_TYPES.has(type));
  if (!isLabel && typeof attrs.value === "string") {
    // rrweb keeps the default value of a field the customer emptied: show it empty, as it is.
    const live = el ? liveValueOf(el) : null;
    const emptied = live === "" && type !== "checkbox" && type !== "radio";
    attrs.value = emptied ? "" : maskInputValue(attrs.value, el);
  }
  if (!el || valueHidden(el)) {
    delete attrs.checked;
    delete attrs.selected;
    if (el && !isLabel) hideValueCopies(attrs, el);
  } else if (!isLabel) {
    hideValueCopies(attrs, el, true);
  }
  // The options of a hidden <select>: every label and value the same placeholder, so whichever
  // the mirror shows first tells nothing (an option's own `value` is not hidden otherwise).
  if (tag === "option" && (!el || hiddenSelectOf(el))) {
    for (const name of ["value", "label"]) if (typeof attrs[name] === "string") attrs[name] = MASK_PLACEHOLDER;
  }
}

/** Every property read answers true: routes every input type through `maskInputFn`. */
const everyInputType: Record<string, boolean> = new Proxy(
  {},
  { get: () => true, has: () => true },
);

/**
 * Form controls named after what rrweb's serializer reads on an element itself (`attributes`,
 * `childNodes`...) make it throw or skip, and with it the whole snapshot: such forms are blocked
 * (an empty box of the same size) instead. Only where `:has()` is supported: an unsupported
 * selector would make the whole block list fail to match.
 */
const SERIALIZER_NAMES = ["attributes", "childNodes", "nodeType", "parentNode", "firstChild", "nextSibling", "matches", "classList", "getAttribute"];

const CLOBBERING_CONTROLS = SERIALIZER_NAMES.flatMap((name) => [`[name="${name}" i]`, `[id="${name}" i]`]).join(", ");
/** Such controls anywhere that name a form by their `form` attribute (`<input form="pay"
 * name="attributes">`): a form's listed elements include the controls that join it so, wherever
 * they sit, and their names shadow the form's properties as a descendant's do. */
const JOINING_CLOBBERERS = SERIALIZER_NAMES.flatMap((name) => [`[form][name="${name}" i]`, `[form][id="${name}" i]`]).join(", ");

/** Whether this browser supports `:has()` (asked once: it does not change). */
let hasSelector: boolean | null = null;

function clobberedForms(): string[] {
  if (hasSelector === null) {
    try {
      hasSelector = typeof CSS !== "undefined" && CSS.supports("selector(:has(a))");
    } catch {
      hasSelector = false;
    }
  }
  return hasSelector ? [`form:has(${CLOBBERING_CONTROLS})`] : [];
}

/**
 * Whether `form` (a `<form>`) is one clobberedForms() blocks: a descendant named or identified
 * after SERIALIZER_NAMES. The same answer as `form:has(…)`, but its controls are read once per
 * form in a masking pass (memo.clobbered): `closest` with `:has()` read the whole form again from
 * every element inside it, so a page adding N labelled fields to a form cost N scans of the form
 * (bench/RESULTS.md, "Clobbered forms checked once per form"). Throws when it cannot be read.
 */
function clobberedForm(form: Element): boolean {
  const kept = memo ? (memo.clobbered ??= new Map()) : null;
  const known = kept?.get(form);
  if (known !== undefined) return known;
  const clobbered = firstInside(form, CLOBBERING_CONTROLS) !== null || formsJoinedByClobberers(rootNodeOf(form)).has(form);
  kept?.set(form, clobbered);
  return clobbered;
}

/**
 * The forms of `root` (a document or shadow root) that a control named after SERIALIZER_NAMES
 * joins by its `form` attribute: the element of that id, when it is a form (a control's form
 * owner is looked up in its own tree). Kept per tree until it changes (keptEntry), or for the
 * pass. rrweb's `:has()` rule sees only a form's descendants: the SDK blocks these forms itself
 * (blockShapedForm). Throws when the tree cannot be read.
 */
function formsJoinedByClobberers(root: Node): Set<Element> {
  const kept = keptEntry(root);
  if (kept?.joinedForms) return kept.joinedForms;
  const forms = new Set<Element>();
  for (const control of queryAllIn(root, JOINING_CLOBBERERS)) {
    const owner = elementByIdIn(root, attributeOf(control, "form") ?? "");
    if (owner && localNameOf(owner) === "form") forms.add(owner);
  }
  if (kept) kept.joinedForms = forms;
  return forms;
}

/** Whether `el` is a form blocked for its shape: rrweb's `matches` of clobberedForms(), and a
 * form that controls join by their `form` attribute (formsJoinedByClobberers). */
function isClobberedForm(el: Element): boolean {
  return matchesOf(el, "form") && clobberedForm(el);
}

/** Whether `el` is or lies in a form blocked for its shape, through shadow roots and frames as
 * composedClosest (rrweb's `closest` of clobberedForms()). Throws when it cannot tell. */
function inClobberedForm(el: Element): boolean {
  return composedClosest(el, "form", clobberedForm) !== null;
}

/**
 * A form blocked for its shape that rrweb serialised all the same (the controls shadowing its
 * properties join it by their `form` attribute, or this browser has no `:has()`): made the empty
 * box of rrweb's own blocking (its class and size, no other attribute, no children). What rrweb
 * read of it through the shadowed properties never goes: two controls named `attributes` made
 * `form.attributes` a list of them, and their live values the form's attributes.
 */
function blockShapedForm(n: SerializedNode, el: Element | null): void {
  if (!el || !n.attributes || typeof n.attributes !== "object" || "rr_width" in n.attributes) return;
  if (!isClobberedForm(el)) return;
  const box = boundingBoxOf(el);
  const className = attributeOf(el, "class");
  n.attributes = { ...(className !== null ? { class: className } : {}), rr_width: `${box.width}px`, rr_height: `${box.height}px` };
  n.childNodes = [];
}

/** Whether `root` has a form blocked for its shape (so part of the page cannot be shown). */
export function hasBlockedShapes(root: ParentNode): boolean {
  const selector = clobberedForms().join(", ");
  try {
    if (selector !== "" && root.querySelector(selector) !== null) return true;
    return formsJoinedByClobberers(root as unknown as Node).size > 0 ||
      (selector === "" && Array.from(root.querySelectorAll("form")).some(clobberedForm));
  } catch {
    return true;
  }
}

/** What rrweb blocks but the forms blocked for their shape (clobberedForms). */
function ownBlockSelector(): string {
  return [
    TANDEM_UI,
    RR_BLOCK,
    ...active.hide,
    ...(active.media.images ? [] : ["img", "picture", "svg image"]),
    ...(active.media.video ? [] : ["video", "audio"]),
  ].join(", ");
}

/** rrweb `record()` options that put all of the above in force. */
export function recordMaskingOptions() {
  return {
    maskAllInputs: false,
    maskInputOptions: everyInputType,
    maskInputFn: (text: string, element: HTMLElement) => maskInputValue(text, element),
    // Page text is masked by maskFormState, whatever rrweb decides; rrweb masks only `.rr-mask`
    // text on its own (its default class), with the same function.
    maskTextFn: (text: string, element: HTMLElement | null) => maskTextContent(text, element),
    // Tandem's own UI: blocks its host; ./share/ui.ts keeps rrweb out of its shadow roots.
    // rrweb checks it with `matches` on each element it serialises or adds (the `:has()` of
    // clobberedForms then reads only a form's own controls), and with `closest` once per change of
    // a node's children and per event; maskFormState's checks go by form (inClobberedForm).
    blockSelector: [ownBlockSelector(), ...clobberedForms()].join(", "),
  };
}

/**
 * Every element of the content the agent may not see (the regions `inMaskedRegion` looks for, and
 * everything inside them), in `root`: which images only they show is what ../share/assets.ts
 * needs to know. Throws when `root` cannot be read (callers fail closed).
 */
export function maskedRegionElements(root: ParentNode): Element[] {
  const selector = [RR_BLOCK, RR_MASK, TANDEM_UI, ...active.mask, ...active.hide].join(", ");
  const out = new Set<Element>();
  for (const region of Array.from(root.querySelectorAll(selector))) {
    out.add(region);
    for (const el of Array.from(region.querySelectorAll("*"))) out.add(el);
  }
  return [...out];
}

/**
 * Whether a recorded element or text node lies in content the agent may not see (`mask`, `hide`,
 * rrweb's `.rr-mask`/`.rr-block`, Tandem's own UI): the assets it uses are not carried
 * (../share/assets.ts). Fails closed: a node that cannot be read (or is gone) counts as masked.
 */
export function inMaskedRegion(node: unknown): boolean {
  try {
    const el = nodeTypeOf(node) === 1 ? asElement(node) : nodeTypeOf(node) === 3 ? composedParentElement(node as Node) : null;
    if (!el) return true;
    regionSelector ??= [RR_BLOCK, RR_MASK, TANDEM_UI, ...active.mask, ...active.hide].join(", ");
    return composedClosest(el, regionSelector) !== null;
  } catch {
    return true;
  }
}

/**
 * Copies of hidden values elsewhere in the page. Pages echo what is typed into a hidden field
 * where it shows: a live preview ("Card ending 4242"), an error message ("1234 is not your PIN"),
 * another element's `title`, `aria-label`, `placeholder`, `data-*` or `value`, a style sheet's
 * generated `content`. The SDK remembers the hidden values it has seen (as rrweb records them,
 * and the live values of their fields at each recorded event), in this page only, never sent:
 * maskDetected, which every string of every recorded event passes through last (scrubEvent),
 * the page's title and every shown value too, then masks
 * - every occurrence of a remembered value, whatever its case (a value shorter than
 *   COPY_ANYWHERE_CHARS only as a word of its own, not inside a longer one), as the placeholder,
 *   from the length SECRET_MINIMUM gives its kind of field;
 * - every digit of a run of digits (spaces or dashes between) that is a remembered value's digits
 *   (from SECRET_MINIMUM's digits), or, of COPY_MIN_DIGITS digits or more, part of them or holding
 *   them ("ending 4242");
 * - both as a string reads (readingOf: invisible characters, compatibility forms, blanks, other
 *   scripts' digits), masked where written, and across the text nodes a text node is drawn with
 *   (maskSplitCopies, SPLIT_WINDOW_CHARS).
 * What cannot be told from the page's strings is not found: a copy transformed otherwise (letters
 * changed, reordered, hashed), a part of a value that is not its digits (one word of a name),
 * a short value of a field that is not a password, PIN or card (under COPY_MIN_CHARS), a copy of
 * a value the SDK never saw (typed and cleared while not sharing).
 */
const COPY_MIN_CHARS = 4;
const COPY_ANYWHERE_CHARS = 8;
const COPY_MIN_DIGITS = 4;
/** How many hidden values are remembered (the latest; a value that grows replaces its start). */
const MAX_SECRETS = 32;
/** Values longer than this are a text's, not a field's: only their digits are looked for. */
const MAX_SECRET_CHARS = 256;
/** The hidden values remembered, newest last, each with its digits (or "" under 3 of them). */
/** `whole`: a piece box's single letter, looked for only as a whole string (maskCopies).
 * `password`: typed into a password field since the SDK loaded (notePasswordTyping): kept apart
 * from MAX_SECRETS (other hidden values never push it out) and across a session's end. */
let secrets: { value: string; lower: string; digits: string; whole: boolean; password: boolean }[] = [];
/** How many passwords typed since load are kept (the latest). */
const MAX_TYPED_PASSWORDS = 8;
/** The fields they came from (whether each is a password, PIN or card field), whose live values
 * are read again at each recorded event. */
let secretFields = new Map<Element, SecretKind>();

/** How long a remembered value (and its digits) must be to be looked for, by the kind of field:
 * a password, PIN, card or one-time code from its first character (typed key by key, each start
 * is echoed before the whole); another field the customer types in from COPY_MIN_CHARS (digits:
 * three); a hidden input's (the page's own value, often a flag like "1": only tokens) from
 * COPY_ANYWHERE_CHARS. Checkbox, radio and button values are the page's labels: none. */
type SecretKind = "sensitive" | "typed" | "page";
const SECRET_MINIMUM: Record<SecretKind, { chars: number; digits: number }> = {
  sensitive: { chars: 1, digits: 1 },
  typed: { chars: COPY_MIN_CHARS, digits: 3 },
  page: { chars: COPY_ANYWHERE_CHARS, digits: COPY_ANYWHERE_CHARS },
};

function secretKindOf(el: Element): SecretKind | null {
  const type = localNameOf(el) === "input" ? (attributeOf(el, "type") ?? "").toLowerCase().trim() : "";
  if (FIXED_VALUE_TYPES.has(type)) return null;
  if (type === "hidden") return "page";
  // A box for one piece of a value typed in pieces (a digit of a one-time code, among at least
  // SPLIT_MIN_BOXES such boxes): see SPLIT_PIECE_CHARS. Only how its copies are looked for; the
  // field is not made a password's. A short box alone (a state's code, a flat's number) is not
  // one: its value looked for from its first character masked that word everywhere on the page.
  if (isSplitNumberBox(el)) return "sensitive";
  return isSensitiveField(el) ? "sensitive" : "typed";
}

function rememberSecret(
  text: string, el: MaskableElement | null, known?: SecretKind, digitsOnly = false, piece = false, password = false,
): void {
  let kind: SecretKind = known ?? "typed";
  try {
    if (el && VALUE_FIELDS.has(localNameOf(el))) {
      const found = secretKindOf(el);
      if (found === null) return;
      kind = found;
      piece ||= isSplitNumberBox(el);
      rememberField(el, kind);
    }
  } catch (error) {
    failed(error);
    kind = "sensitive";
  }
  const value = asRead(text).trim();
  if (!value || /^[\u2022\s]+$/.test(value)) return;
  const minimum = SECRET_MINIMUM[kind];
  const digits = value.replace(/\D/g, ""); // asRead wrote any script's digits as ASCII ones
  const lower = value.length <= MAX_SECRET_CHARS ? lowerKeepingPlaces(value) : "";
  // A run of digits a shown value masks (maskShownValue) is looked for by its digits only: its
  // copies keep their shape (one `•` a digit), as the run does in the value.
  const keepsText = !digitsOnly && lower.length >= minimum.chars && lower.length === value.length;
  // A value's digits are looked for on their own when it is a number (a PIN, a card), or when
  // they are COPY_MIN_DIGITS or more ("Hunter2" does not make every "2" of the page a copy).
  const keepsDigits = digits.length >= Math.max(minimum.digits, /^[\d\s-]+$/.test(value) ? 0 : COPY_MIN_DIGITS);
  if (!keepsText && !keepsDigits) return;
  // A piece box's single letter: a code of letters' `A` masked the word "a" across the page.
  const whole = piece && value.length === 1 && !/\d/.test(value);
  const entry = { value, lower: keepsText ? lower : "", digits: keepsDigits ? digits : "", whole, password };
  // The customer typing "hunter2" key by key: each longer value replaces the one it starts with
  // (a typed password stays one when the session's masking remembers it again).
  secrets = secrets.filter((known) => {
    const replaced = known.value === value || value.startsWith(known.value);
    if (replaced && known.password && known.value === value) entry.password = true;
    return !replaced;
  });
  secrets.push(entry);
  const passwords = secrets.filter((known) => known.password);
  const others = secrets.filter((known) => !known.password);
  if (passwords.length > MAX_TYPED_PASSWORDS || others.length > MAX_SECRETS) {
    const keep = new Set([...passwords.slice(-MAX_TYPED_PASSWORDS), ...others.slice(-MAX_SECRETS)]);
    secrets = secrets.filter((known) => keep.has(known));
  }
}

/** A value typed in pieces: one-time codes in one box per digit, a card number in four boxes of
 * four. Each piece is short, so the page's copy of the whole ("482913" in the form's `data-code`,
 * its `<output>`) matches none of them; the values of at most SPLIT_PIECE_CHARS characters of
 * the piece boxes (isSplitNumberBox; hidden, or shown with their digits masked) sharing a parent
 * or a grandparent are joined in page order and remembered as one value too, as a code's (from
 * its first character: each box's own value is looked for so too, the first digit is echoed
 * before a second is typed). */
const SPLIT_PIECE_CHARS = 4;

/** Read again the live values of the hidden fields seen (what the page may copy at this event),
 * and remember the values typed in pieces (SPLIT_PIECE_CHARS). */
function refreshSecrets(): void {
  const joined: { el: Element; kind: SecretKind; value: string }[] = [];
  const pieces: { kind: SecretKind; value: string }[] = [];
  for (const [el, kind] of [...secretFields]) {
    try {
      if (!isConnectedNode(el)) {
        secretFields.delete(el);
        continue;
      }
      // A piece of a code the site shows is looked for as a hidden one (maskInputValue).
      const hidden = valueHidden(el);
      const piece = isSplitNumberBox(el);
      if (!hidden && !piece) continue;
      const live = liveValueOf(el);
      // A piece box's own value is remembered after the joined ones (below): the joined code
      // starting with it replaced it (rememberSecret), and the page's echo of the first box
      // alone was shown.
      if (live && piece) pieces.push({ kind, value: live });
      else if (live) rememberSecret(live, null, kind);
      const value = live ? live.trim() : "";
      if (!value || value.length > SPLIT_PIECE_CHARS) continue;
      // Boxes made for pieces; and hidden short boxes of digits (and letters) typed by the
      // customer (a code in three boxes of two, in two of three: "730-518"; boxes named a phone
      // number's), joined as a typed value (COPY_MIN_CHARS): the page's copy of the whole is
      // hidden like the boxes. Not other short values (a password's first keys, a hidden
      // input's flag): they would churn the remembered values on every event, pushing real
      // ones out of MAX_SECRETS.
      if (piece) joined.push({ el, kind, value });
      else if (hidden && kind === "typed" && HIDDEN_PIECE.test(value)) joined.push({ el, kind, value });
    } catch (error) {
      failed(error);
    }
  }
  if (joined.length > 1) rememberSplitValues(joined);
  for (const piece of pieces) rememberSecret(piece.value, null, piece.kind, false, true);
}

/** What a hidden short box holds to be joined with its neighbours (refreshSecrets): letters and
 * digits, at least one digit (codes in boxes of two or three are numbers; two short words
 * typed in two fields are not joined, their copies stay shown). */
const HIDDEN_PIECE = /^[\p{L}\p{N}]*\p{Nd}[\p{L}\p{N}]*$/u;

function rememberSplitValues(pieces: { el: Element; kind: SecretKind; value: string }[]): void {
  try {
    const groups = new Map<BoxParent, typeof pieces>();
    for (const piece of pieces) {
      // Up to three levels: a code in two groups of three boxes, each box wrapped (a shadow
      // root holding them straight counts as a level).
      const parent = boxParentOf(piece.el);
      const grandparent = parent ? boxParentAbove(parent) : null;
      const above = grandparent ? boxParentAbove(grandparent) : null;
      for (const around of [parent, grandparent, above]) {
        if (!around) continue;
        const group = groups.get(around);
        if (group) group.push(piece);
        else groups.set(around, [piece]);
      }
    }
    for (const group of groups.values()) {
      if (group.length < 2) continue;
      group.sort((a, b) => (a.el === b.el ? 0 : composedPrecedes(a.el, b.el) ? -1 : 1));
      const kind: SecretKind = group.some((piece) => piece.kind === "sensitive") ? "sensitive" : "typed";
      rememberSecret(group.map((piece) => piece.value).join(""), null, kind);
    }
  } catch (error) {
    failed(error);
  }
}

/** The shadow host `el`'s tree hangs from, or null (a document's element). */
function hostAbove(el: Element): Element | null {
  const root = rootNodeOf(el);
  return nodeTypeOf(root) === DOCUMENT_FRAGMENT_NODE ? hostOf(root) : null;
}

/** Whether `a` comes before `b` as the page draws them, through shadow hosts: boxes in
 * components of their own (a component per box) are in the order of their hosts (the order of
 * two nodes of different trees is the browser's own otherwise, not the page's). */
function composedPrecedes(a: Element, b: Element): boolean {
  let x: Element | null = a;
  for (let i = 0; x && i < MAX_KEPT_NESTING; i++, x = hostAbove(x)) {
    let y: Element | null = b;
    for (let j = 0; y && j < MAX_KEPT_NESTING; j++, y = hostAbove(y)) {
      if (rootNodeOf(x) === rootNodeOf(y)) return x === y ? precedesNode(a, b) : precedesNode(x, y);
    }
  }
  return precedesNode(a, b);
}

/** Keep `el` among the fields whose live values are read again at each event (refreshSecrets). */
function rememberField(el: Element, kind: SecretKind): void {
  if (secretFields.size < MAX_SECRETS * 4 || secretFields.has(el)) secretFields.set(el, kind);
}

/** Forget the hidden values seen (tests; a page's values otherwise live as long as it does). */
export function forgetSecrets(): void {
  secrets = [];
  secretFields = new Map();
}

/**
 * A session's end (promise 8): forget every hidden value it saw and the fields they came from.
 * Only the passwords typed into password fields since the SDK loaded stay (MAX_TYPED_PASSWORDS,
 * in this page's memory only, never sent nor stored): a field the page swapped for a text field
 * holds one still, and a later session on this page must mask it there as the first did.
 */
export function forgetSessionSecrets(): void {
  secrets = secrets.filter((known) => known.password);
  secretFields = new Map();
}

const WORD_CHAR = /[\p{L}\p{N}]/u;

/** Keys of a recorded event whose strings are markup or CSS (an element's `id` and `class`, a
 * style, a style sheet's text or rule): a short value (under COPY_MIN_CHARS, digits under
 * COPY_MIN_DIGITS) is not looked for there, where "a" or "4" is a selector or a size. */
const MARKUP_KEYS = new Set(["id", "class", "style", "_cssText", "rule", "cssText"]);

/** Whether the string at `key` of `container` (a recorded event's part) is markup or CSS. */
function isMarkup(container: Record<string, unknown>, key: string): boolean {
  return MARKUP_KEYS.has(key) || (key === "textContent" && container.isStyle === true);
}

/** Whether text[start, end) is not inside a longer word. */
function standsAlone(text: string, start: number, end: number): boolean {
  return (start === 0 || !WORD_CHAR.test(text[start - 1])) && (end === text.length || !WORD_CHAR.test(text[end]));
}

/** Combining marks drawn on a letter or digit of ASCII's once NFKC composed what it could (an
 * underline's `4\u0332`, a strike's, a keycap's `\u20e3`): the character is read all the same. */
const MARKS_ON_ASCII = /(?<=[0-9A-Za-z])\p{M}+/gu;
/** Blanks HTML draws as one space (CSS `white-space: normal`): line breaks, tabs, runs of spaces. */
const ASCII_BLANKS = /[\t\n\v\f\r]| {2}/;

/** `text` as the agent reads it, and where each character read comes from. What is read:
 * characters drawn as nothing (INVISIBLE: soft hyphens a hyphenation script puts in long words,
 * zero-width spaces, bidi marks) taken out, compatibility forms read as the characters they draw
 * (DIGIT_FORMS' digits, then NFKC, a letter with the marks drawn on it at a time: full-width
 * `Ｔｒａｎｓ`), marks drawn on an ASCII letter or digit taken out (a keycap's, an underline's),
 * any run of blanks and line breaks read as one space (as HTML draws them), and any script's
 * decimal digits as ASCII ones (a PIN typed on an Arabic keyboard, `٤٧٢٩`, that the page echoes
 * as `4729`, or the other way round), Chinese numerals too (CHINESE_DIGITS). `starts[i]` and `ends[i]` bound the characters of `text`
 * that read character `i` stands for (a digit form, a letter and its marks, a run of blanks), so
 * that a copy found as read is masked where it is written, and the rest of the text stays as the
 * page wrote it. null: read as written (ASCII text without line breaks, tabs or double spaces,
 * most text: attack review of the ninth masking review). */
interface Reading {
  read: string;
  starts: number[] | null;
  ends: number[] | null;
}

const IS_MARK = /^\p{M}/u;
const LEADING_MARKS = /^\p{M}+/u;
const IS_DIGIT = /\p{Nd}/u;
/** Chinese numerals written as digits (a PIN echoed as `四七二九`, a year as `二〇二四`): read as
 * the digits they are. Not `十`, `百`, `千` (a number said, not written digit by digit) nor the
 * financial forms (`壹`, `贰`...). */
const CHINESE_DIGITS = new Map([..."〇一二三四五六七八九"].map((ch, value) => [ch, String(value)]));
CHINESE_DIGITS.set("零", "0");

/** Characters that read as something else (readingOf), beyond compatibility forms (NFKC) and
 * blanks: invisible ones, marks, Chinese numerals, digits of scripts other than ASCII's. */
const READ_OTHERWISE = /[\p{DI}\p{M}〇一二三四五六七八九零]|(?![0-9])\p{Nd}/u;
/** Blanks, as readingOf reads them (any White_Space): the cheap test first, by code. */
function isBlankCode(code: number): boolean {
  if (code <= 0x20) return code === 0x20 || (code >= 0x09 && code <= 0x0d);
  if (code < 0x85) return false;
  return code === 0x85 || code === 0xa0 || code === 0x1680 || (code >= 0x2000 && code <= 0x200a) ||
    code === 0x2028 || code === 0x2029 || code === 0x202f || code === 0x205f || code === 0x3000;
}

/** readingOf for a text whose only characters read otherwise are blanks. */
function blanksRead(text: string): Reading {
  const starts: number[] = [];
  const ends: number[] = [];
  let read = "";
  let from = 0; // the start of the run of characters read as written, not yet added
  let changed = false;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (!isBlankCode(code)) continue;
    let end = i + 1;
    while (end < text.length && isBlankCode(text.charCodeAt(end))) end++;
    changed ||= end > i + 1 || code !== 0x20;
    // A lone space stays as written; any other run of blanks is one space standing for all.
    for (let k = from; k < i; k++) {
      starts.push(k);
      ends.push(k + 1);
    }
    read += text.slice(from, i) + " ";
    starts.push(i);
    ends.push(end);
    from = end;
    i = end - 1;
  }
  if (!changed) return { read: text, starts: null, ends: null }; // lone spaces only
  for (let k = from; k < text.length; k++) {
    starts.push(k);
    ends.push(k + 1);
  }
  return { read: read + text.slice(from), starts, ends };
}

function readingOf(text: string): Reading {
  const ascii = !/[^\x00-\x7f]/.test(text);
  if (ascii && !ASCII_BLANKS.test(text)) return { read: text, starts: null, ends: null };
  // Most text (ASCII with line breaks, a language's letters and punctuation): blanks only.
  if (ascii || (!READ_OTHERWISE.test(text) && text.normalize("NFKC") === text)) return blanksRead(text);
  const out: string[] = [];
  const starts: number[] = [];
  const ends: number[] = [];
  const push = (ch: string, start: number, end: number): void => {
    if (ch === " ") {
      // A run of blanks is one space, standing for every blank (and invisible character) in it.
      if (out.length && out[out.length - 1] === " ") {
        ends[ends.length - 1] = end;
        return;
      }
    }
    out.push(ch);
    starts.push(start);
    ends.push(end);
  };
  for (let i = 0; i < text.length;) {
    const code = text.codePointAt(i) as number;
    const next = i + (code > 0xffff ? 2 : 1);
    if (code > 0x7f && charReadingOf(text, i).invisible) {
      i = next;
      continue;
    }
    const following = next < text.length && text.charCodeAt(next) > 0x7f ? charReadingOf(text, next) : null;
    if (following && (following.mark || following.invisible)) {
      // A letter or digit and the marks drawn on it, NFKC'd together (`e` and U+0301 read as `é`).
      let unit = text.slice(i, next);
      let end = next;
      let at = next;
      while (at < text.length && text.charCodeAt(at) > 0x7f) {
        const part = charReadingOf(text, at);
        if (!part.mark && !part.invisible) break;
        if (part.mark) {
          unit += text.slice(at, at + part.length);
          end = at + part.length;
        }
        at += part.length;
      }
      let read = unit.replace(DIGIT_FORM, (ch) => DIGIT_FORMS.get(ch) ?? ch).normalize("NFKC");
      // Marks drawn on an ASCII letter or digit (a keycap's `4\ufe0f\u20e3`; on one read
      // before, with an invisible character between) are not read.
      if (out.length && /[0-9A-Za-z]/.test(out[out.length - 1])) read = read.replace(LEADING_MARKS, "");
      read = readCharacters(read.replace(MARKS_ON_ASCII, ""));
      for (const ch of read) push(ch, i, end);
      i = at;
      continue;
    }
    if (code <= 0x7f) {
      push(isBlankCode(code) ? " " : text[i], i, next);
    } else {
      const one = charReadingOf(text, i);
      // A mark on nothing (after a blank, or first) is read, unless on an ASCII letter or digit.
      if (!one.invisible && !(one.mark && out.length && /[0-9A-Za-z]/.test(out[out.length - 1]))) {
        for (let unit = 0; unit < one.read.length; unit++) push(one.read[unit], i, next);
      }
    }
    i = next;
  }
  return { read: out.join(""), starts, ends };
}

/** How a character reads alone (readingOf), and how long it is (code units). */
interface CharReading {
  read: string;
  length: number;
  invisible: boolean;
  mark: boolean;
}

/** Characters' readings, cached (a page's text is a few hundred distinct characters). */
const charReadings = new Map<string, CharReading>();
const MAX_CHAR_READINGS = 4096;

/** How the character at `at` of `text` reads alone: invisible (nothing), a mark, or its NFKC
 * form (DIGIT_FORMS' digits first), blanks as spaces and digits as ASCII's (readCharacters). */
function charReadingOf(text: string, at: number): CharReading {
  const code = text.codePointAt(at) as number;
  const ch = code > 0xffff ? text.slice(at, at + 2) : text[at];
  let reading = charReadings.get(ch);
  if (reading === undefined) {
    const invisible = INVISIBLE.test(ch);
    reading = {
      read: invisible ? "" : readCharacters(ch.replace(DIGIT_FORM, (form) => DIGIT_FORMS.get(form) ?? form).normalize("NFKC")),
      length: ch.length,
      invisible,
      mark: IS_MARK.test(ch),
    };
    if (charReadings.size < MAX_CHAR_READINGS) charReadings.set(ch, reading);
  }
  return reading;
}

/** NFKC's output read on: blanks as a space, any script's digits and Chinese numerals as ASCII. */
function readCharacters(text: string): string {
  let read = "";
  for (const ch of text) {
    const code = ch.codePointAt(0) as number;
    if (code <= 0x7f) read += isBlankCode(code) ? " " : ch;
    else if (isBlankCode(code)) read += " ";
    else read += CHINESE_DIGITS.get(ch) ?? (IS_DIGIT.test(ch) ? asciiDigit(ch) : ch);
  }
  return read;
}

/** `text` as the agent reads it (readingOf): how hidden values are remembered and compared. */
function asRead(text: string): string {
  return readingOf(text).read;
}

/** `text` in lower case, each character where it was (Turkish `İ` lowers to two characters:
 * a text holding one was not searched for copies at all, "İstanbul: hunter22" went whole). */
function lowerKeepingPlaces(text: string): string {
  const lower = text.toLowerCase();
  if (lower.length === text.length) return lower; // no character lowers to fewer
  let out = "";
  for (const ch of text) {
    const one = ch.toLowerCase();
    out += one.length === ch.length ? one : ch;
  }
  return out;
}

/** A copy found in a text: [start, end) of the text, a remembered value's (masked as the
 * placeholder) or a run of digits holding or held by one's digits (each digit masked). */
interface CopySpan {
  start: number;
  end: number;
  digits: boolean;
}

/** The copies of remembered hidden values in `text` (see above), or "whole" (a piece box's
 * letter, and the text is just it); `markup`: `text` is markup or CSS, where short values are
 * not looked for. */
function copiesIn(text: string, markup: boolean): CopySpan[] | "whole" {
  const spans: CopySpan[] = [];
  let work = text; // what was found is masked here, one MASK a character, as the search goes on
  let lower = lowerKeepingPlaces(work);
  for (const secret of secrets) {
    if (!secret.lower || (markup && secret.lower.length < COPY_MIN_CHARS)) continue;
    if (secret.whole) {
      // One letter of a code's piece box: a string that is just it (the page's echo of the box)
      // is a copy, not the word it makes in a sentence ("a", "I" masked across the page).
      if (lower.trim() === secret.lower) return "whole";
      continue;
    }
    let at = lower.indexOf(secret.lower);
    while (at !== -1) {
      const end = at + secret.lower.length;
      if (secret.lower.length >= COPY_ANYWHERE_CHARS || standsAlone(work, at, end)) {
        spans.push({ start: at, end, digits: false });
        work = work.slice(0, at) + MASK.repeat(end - at) + work.slice(end);
        lower = lower.slice(0, at) + MASK.repeat(end - at) + lower.slice(end);
        at = lower.indexOf(secret.lower, end);
      } else {
        at = lower.indexOf(secret.lower, at + 1);
      }
    }
  }
  if (!/\d/.test(work)) return spans;
  for (const found of work.matchAll(DIGIT_RUN)) {
    const run = found[0];
    const offset = found.index as number;
    const digits = run.replace(/[ -]/g, "");
    // A run shorter than COPY_MIN_DIGITS counts only on its own ("PIN 47 is wrong", not "47px").
    if (digits.length < COPY_MIN_DIGITS && (markup || !standsAlone(work, offset, offset + run.length))) continue;
    if (digitsCopied(digits, true)) spans.push({ start: offset, end: offset + run.length, digits: true });
  }
  return spans;
}

/** Whether a run's `digits` are a remembered value's digits, of COPY_MIN_DIGITS or more a part
 * of them, or (`holding`) a longer number holding them ("ending 4242", "Tried 47291"). */
function digitsCopied(digits: string, holding: boolean): boolean {
  return secrets.some((secret) => secret.digits !== "" && (digits === secret.digits ||
    (digits.length >= COPY_MIN_DIGITS && secret.digits.includes(digits)) ||
    (holding && secret.digits.length >= COPY_MIN_DIGITS && digits.includes(secret.digits))));
}

/** One change to a written text: [start, end) replaced by the placeholder, or by one MASK. */
interface WrittenMask {
  start: number;
  end: number;
  placeholder: boolean;
}

/** Where `spans` (found in `reading.read`) are in the written text: a value's copy is the
 * placeholder, from its first character's place to its last's; a run's digits are one MASK each,
 * where each is written (the separators between them stay). */
function writtenMasks(reading: Reading, spans: CopySpan[], into: WrittenMask[], from = 0, to = reading.read.length): void {
  const { read, starts, ends } = reading;
  for (const span of spans) {
    const start = Math.max(span.start, from);
    const end = Math.min(span.end, to);
    if (start >= end) continue;
    if (!span.digits) {
      into.push({ start: starts ? starts[start] : start, end: ends ? ends[end - 1] : end, placeholder: true });
      continue;
    }
    for (let i = start; i < end; i++) {
      if (read[i] >= "0" && read[i] <= "9") into.push({ start: starts ? starts[i] : i, end: ends ? ends[i] : i + 1, placeholder: false });
    }
  }
}

/** `text` with `masks` applied (a placeholder wins over the MASKs it overlaps). */
function applyMasks(text: string, masks: WrittenMask[]): string {
  if (!masks.length) return text;
  masks.sort((a, b) => a.start - b.start || Number(b.placeholder) - Number(a.placeholder) || b.end - a.end);
  let out = "";
  let at = 0;
  for (let i = 0; i < masks.length; i++) {
    const mask = masks[i];
    if (mask.start < at) {
      // Overlapping what was masked: a placeholder takes in the rest of the span.
      if (mask.end > at && mask.placeholder) at = mask.end;
      continue;
    }
    let end = mask.end;
    if (mask.placeholder) {
      while (i + 1 < masks.length && masks[i + 1].start < end) end = Math.max(end, masks[++i].end);
    }
    out += text.slice(at, mask.start) + (mask.placeholder ? MASK_PLACEHOLDER : MASK);
    at = end;
  }
  return out + text.slice(at);
}

/** Mask in `text` the copies of remembered hidden values (see above); `markup`: `text` is markup
 * or CSS, where short values are not looked for. A copy the page wrote with invisible characters
 * in it or no-break spaces ("Trans\u00admog\u00adri…", a PIN's "4\u200b7\u200b2\u200b9") is
 * found as the agent reads it (readingOf) and masked where it is written: the rest of the
 * string goes as the page wrote it (its line breaks, digit forms and invisible characters; it
 * went as read, which changed what the agent saw of the page's own text). */
export function maskCopies(text: string, markup = false): string {
  if (!secrets.length || text.length < 1) return text;
  const reading = readingOf(text);
  let found = copiesIn(reading.read, markup);
  if (found === "whole") return MASK_PLACEHOLDER;
  const masks: WrittenMask[] = [];
  writtenMasks(reading, found, masks);
  if (!masks.length && reading.read !== text) {
    // As written too: a short value standing alone only there ("Anna\u00adbel").
    found = copiesIn(text, markup);
    if (found === "whole") return MASK_PLACEHOLDER;
    writtenMasks({ read: text, starts: null, ends: null }, found, masks);
  }
  return applyMasks(text, masks);
}

/**
 * Copies split over several text nodes: the page echoes a PIN one digit per element
 * (`<span>4</span><span>7</span>…`), wraps a password's digits in `<b>`, or a script cuts the
 * text node holding a card number with `splitText`. Each node alone is too short to be a copy,
 * and the agent read the value in pieces. A text node that is sent (in a snapshot, added, or
 * changed) is read with the text nodes beside it, as the agent reads them: in tree order, at
 * most SPLIT_WINDOW_CHARS characters each way, within SPLIT_REGION_LEVELS ancestors above its
 * parent (no further than SPLIT_WINDOW_STEPS nodes each way); nodes in one line (across inline
 * elements: `<b>`, `<span>`) are joined as they are; nodes in different blocks (`<div>`, `<li>`,
 * `<br>`) only when both hold at most SPLIT_BOX_CHARS characters (a box per piece: a PIN drawn
 * one digit per box, a card one group per box), with a space between (a blank, as DIGIT_RUN
 * reads one between digits), and a run of digits across them counts only as the value's digits
 * or a part of them (not as a longer number holding them: short numbers in boxes side by side).
 * A copy (copiesIn) that spans the node and another is masked in the node: the part of a value's
 * copy in it as the placeholder, the digits of a run as MASKs. Only the node sent is changed: a
 * node sent earlier whose neighbour later made it part of a copy is not sent again (a page that
 * fills its pieces out of order).
 */
const SPLIT_WINDOW_CHARS = 96;
/** The most characters (blanks around left out) a text in a block of its own holds to be read
 * with the text of the next block (see SPLIT_WINDOW_CHARS). */
const SPLIT_BOX_CHARS = 4;
/** How many nodes (elements and texts) are stepped through each way, at most. */
const SPLIT_WINDOW_STEPS = 48;
/** How many ancestors above a text node's parent its neighbours are looked for in. */
const SPLIT_REGION_LEVELS = 3;
/** Elements drawn in a line by default (CSS `display: inline`); custom elements are too. */
const INLINE_ELEMENTS = new Set([
  "a", "abbr", "b", "bdi", "bdo", "big", "cite", "code", "data", "del", "dfn", "em", "font", "i", "ins", "kbd",
  "label", "mark", "nobr", "output", "q", "s", "samp", "small", "span", "strong", "sub", "sup", "time", "tt", "u",
  "var", "wbr",
]);
/** Elements whose text the page does not draw as text of its own (or that masking reads apart). */
const UNREAD_ELEMENTS = new Set([
  "script", "style", "template", "noscript", "textarea", "select", "option", "iframe", "frame", "object", "head", "title",
]);

function isBlockElement(node: Node): boolean {
  if (nodeTypeOf(node) !== ELEMENT_NODE) return false;
  const name = localNameOf(node as Element);
  return !INLINE_ELEMENTS.has(name) && !name.includes("-");
}

function readsInside(node: Node): boolean {
  return nodeTypeOf(node) === ELEMENT_NODE && !UNREAD_ELEMENTS.has(localNameOf(node as Element));
}

/** A piece of the text read around a node: a text node's text (or the part of it next to the
 * node), or a block boundary (node null, text " "). */
interface SplitPiece {
  node: Node | null;
  text: string;
}

function isBoxPiece(text: string): boolean {
  return text.trim().length <= SPLIT_BOX_CHARS;
}

/** The texts next to `target` (sent as `targetText`) within `region`, nearest first, going
 * forward or back. */
function neighbourTexts(target: Node, targetText: string, region: Node, forward: boolean): SplitPiece[] {
  const pieces: SplitPiece[] = [];
  let chars = 0;
  let boundary = false;
  let lastBox = isBoxPiece(targetText);
  let node: Node = target;
  for (let step = 0; step < SPLIT_WINDOW_STEPS && chars < SPLIT_WINDOW_CHARS; step++) {
    let next: Node | null = null;
    if (forward) {
      next = node !== target && readsInside(node) ? firstChildOf(node) : null;
      if (next) {
        if (isBlockElement(next)) boundary = true;
      } else {
        // The next sibling of the nearest ancestor (or self) below the region that has one.
        for (let at: Node | null = node; at && at !== region; at = parentNodeOf(at)) {
          if (isBlockElement(at)) boundary = true;
          next = nextSiblingOf(at);
          if (next) break;
        }
        if (next && isBlockElement(next)) boundary = true;
      }
    } else {
      if (isBlockElement(node)) boundary = true;
      next = previousSiblingOf(node);
      if (next) {
        // The last node inside it, in tree order.
        for (let last: Node | null = next; last; last = readsInside(next) ? lastChildOf(next) : null) {
          next = last;
          if (isBlockElement(next)) boundary = true;
        }
      } else {
        const parent = parentNodeOf(node);
        next = parent === region ? null : parent;
      }
    }
    if (!next) break;
    node = next;
    if (nodeTypeOf(node) !== TEXT_NODE) continue;
    const text = nodeValueOf(node);
    if (!text || (boundary && !/\S/.test(text))) continue; // the blanks between blocks
    if (boundary) {
      if (!lastBox || !isBoxPiece(text)) break;
      pieces.push({ node: null, text: " " });
    }
    boundary = false;
    if (/\S/.test(text)) lastBox = isBoxPiece(text); // blanks between inline elements tell nothing
    const take = Math.min(text.length, SPLIT_WINDOW_CHARS - chars);
    pieces.push({ node, text: forward ? text.slice(0, take) : text.slice(text.length - take) });
    chars += take;
  }
  return pieces;
}

/** The ancestor of `text` its neighbours are read within (SPLIT_REGION_LEVELS above its parent,
 * not above `<body>` nor out of its tree). */
function splitRegionOf(text: Node): Node | null {
  let region = parentNodeOf(text);
  if (!region || nodeTypeOf(region) !== ELEMENT_NODE) return region;
  for (let level = 0; level < SPLIT_REGION_LEVELS; level++) {
    const up: Node | null = parentNodeOf(region);
    if (!up || nodeTypeOf(up) !== ELEMENT_NODE || localNameOf(region as Element) === "body") break;
    region = up;
  }
  return region;
}

/** Where, in `text` (the text node `target` is sent with), copies split between it and the
 * text nodes beside it are: see SPLIT_WINDOW_CHARS. */
function splitCopyMasks(target: Node, text: string): WrittenMask[] {
  const region = splitRegionOf(target);
  if (!region) return [];
  const before = neighbourTexts(target, text, region, false).reverse();
  const after = neighbourTexts(target, text, region, true);
  if (!before.some((piece) => piece.node) && !after.some((piece) => piece.node)) return [];
  const masks: WrittenMask[] = [];
  // A long text node takes part in a split copy only by its ends.
  const ends = text.length <= 2 * SPLIT_WINDOW_CHARS
    ? [{ before, at: 0, part: text, after }]
    : [{ before, at: 0, part: text.slice(0, SPLIT_WINDOW_CHARS), after: [] },
      { before: [], at: text.length - SPLIT_WINDOW_CHARS, part: text.slice(-SPLIT_WINDOW_CHARS), after }];
  for (const { before: prior, at, part, after: next } of ends) {
    let joined = "";
    const owners: number[] = []; // for each character joined: which piece it is of (-1: a boundary)
    let targetStart = 0;
    let targetShift = 0;
    let targetReading: Reading | null = null;
    const pieces = [...prior, { node: target, text: part }, ...next];
    pieces.forEach((piece, index) => {
      const reading = readingOf(piece.text);
      let read = reading.read;
      let skipped = 0;
      // Blanks on both sides of a boundary are one blank, as HTML draws them.
      if (joined.endsWith(" ") && read.startsWith(" ")) {
        read = read.slice(1);
        skipped = 1;
      }
      if (piece.node === target) {
        targetStart = joined.length;
        targetShift = skipped;
        targetReading = reading;
      }
      joined += read;
      for (let i = 0; i < read.length; i++) owners.push(piece.node ? index : BLOCK_BOUNDARY);
    });
    const found = copiesIn(joined, false);
    if (found === "whole" || !targetReading) continue;
    const targetIndex = prior.length;
    const local: CopySpan[] = [];
    for (const span of found) {
      let inTarget = false;
      let elsewhere = false;
      let blocks = false;
      for (let i = span.start; i < span.end; i++) {
        if (owners[i] === targetIndex) inTarget = true;
        else if (owners[i] >= 0) elsewhere = true;
        else blocks = true;
      }
      if (blocks && span.digits && !digitsCopied(joined.slice(span.start, span.end).replace(/\D/g, ""), false)) continue;
      if (inTarget && elsewhere) {
        local.push({ start: span.start - targetStart + targetShift, end: span.end - targetStart + targetShift, digits: span.digits });
      }
    }
    const partMasks: WrittenMask[] = [];
    writtenMasks(targetReading, local, partMasks, targetShift, (targetReading as Reading).read.length);
    for (const mask of partMasks) masks.push({ start: mask.start + at, end: mask.end + at, placeholder: mask.placeholder });
  }
  return masks;
}

/** Whether `text` (a text node's) could hold a part of a copy that goes on in the node before
 * or after it: it ends with a remembered value's start, starts with its end, or lies within it,
 * or a digit (a run) is at one of its ends. Most text nodes are none: they are not read with
 * their neighbours (the cost of the search on a large page's snapshot). */
function mayHoldPartOfCopy(text: string): boolean {
  const lower = lowerKeepingPlaces(asRead(text));
  const trimmed = lower.trim();
  if (!trimmed) return false;
  const digitAtEnd = /\d[ -]?$/.test(lower) || /^[ -]?\d/.test(lower);
  for (const secret of secrets) {
    if (secret.digits && digitAtEnd) return true;
    const value = secret.lower;
    if (!value || secret.whole) continue;
    if (value.includes(trimmed)) return true;
    for (let k = Math.min(value.length - 1, lower.length); k >= 1; k--) {
      if (lower.endsWith(value.slice(0, k)) || lower.startsWith(value.slice(value.length - k))) return true;
    }
  }
  return false;
}

/** What a block boundary read in a joined text is of (see SPLIT_BOX_CHARS). */
const BLOCK_BOUNDARY = -1;

/** The texts of a serialized tree (a snapshot's, an added node's), to read with their neighbours. */
function collectSentTexts(root: unknown, into: { holder: Record<string, unknown>; key: string; id: unknown }[]): void {
  const stack: unknown[] = [root];
  while (stack.length) {
    const n = stack.pop() as { type?: unknown; textContent?: unknown; isStyle?: unknown; id?: unknown; childNodes?: unknown } | null;
    if (!n || typeof n !== "object") continue;
    if (n.type === SERIALIZED_TEXT && typeof n.textContent === "string" && n.isStyle !== true) {
      into.push({ holder: n as Record<string, unknown>, key: "textContent", id: n.id });
    }
    if (Array.isArray(n.childNodes)) for (const child of n.childNodes) stack.push(child);
  }
}

/** Mask, in the texts `event` sends, the copies split between them and the page's text beside
 * them (see SPLIT_WINDOW_CHARS), before the rest of the masking. A text whose reading fails is
 * masked whole. */
function maskSplitCopies(event: unknown, lookup: (id: number) => unknown): void {
  if (!secrets.length) return;
  const e = event as { type?: unknown; data?: Record<string, unknown> } | null;
  if (!e || typeof e !== "object" || !e.data || typeof e.data !== "object") return;
  const sent: { holder: Record<string, unknown>; key: string; id: unknown }[] = [];
  if (e.type === FULL_SNAPSHOT) {
    collectSentTexts(e.data.node, sent);
  } else if (e.type === INCREMENTAL_SNAPSHOT && e.data.source === MUTATION) {
    for (const add of asArray(e.data.adds)) collectSentTexts((add as { node?: unknown } | null)?.node, sent);
    for (const change of asArray(e.data.texts)) {
      if (change && typeof change === "object") sent.push({ holder: change as Record<string, unknown>, key: "value", id: (change as { id?: unknown }).id });
    }
  }
  for (const { holder, key, id } of sent) {
    const text = holder[key];
    if (typeof text !== "string" || !WORD_CHAR.test(text) || typeof id !== "number") continue;
    try {
      if (!mayHoldPartOfCopy(text)) continue;
      const node = lookup(id);
      if (!node || nodeTypeOf(node) !== TEXT_NODE) continue;
      const masks = splitCopyMasks(node as Node, text);
      if (masks.length) holder[key] = applyMasks(text, masks);
    } catch (error) {
      failed(error);
      holder[key] = text.replace(/\S/g, MASK);
    }
  }
}

/** maskCopies on every string of a recorded event but element names. Never throws: an event
 * that cannot be walked is dropped (null). */
function maskCopiesIn<T>(event: T): T | null {
  if (!secrets.length) return event;
  try {
    const stack: object[] = [];
    if (event !== null && typeof event === "object") stack.push(event);
    while (stack.length) {
      const container = stack.pop() as Record<string, unknown>;
      for (const key of Object.keys(container)) {
        const item = container[key];
        if (typeof item === "string") {
          if (key !== "tagName") container[key] = maskCopies(item, isMarkup(container, key));
        } else if (item !== null && typeof item === "object") {
          stack.push(item);
        }
      }
    }
    return event;
  } catch (error) {
    failed(error);
    return null;
  }
}

/**
 * What a page writes on a hidden field, or on the element wrapping it, about the value: its own
 * validation and recognition classes (`is-invalid`, `ng-valid`, `card-visa`, `strength-weak`),
 * `aria-invalid`, `data-*` (`data-brand="amex"`, `data-valid`). They tell the agent the card's
 * brand or whether the PIN was right, as the value would. On a hidden field, and on an element
 * with that field as the only field among its children and grandchildren (its wrapper, a
 * label around it): class names that say a state are left out, `aria-invalid`,
 * `aria-valuenow` and `aria-valuetext` are never sent, `data-*` values (but Tandem's and
 * rrweb's own) are the placeholder. The other classes (layout) stay. Not covered: the page's
 * other elements that say it (a brand icon beside the field, a strength meter's text, an error
 * message: mark them `mask` or `hide`), a state said by the `style`, `title` or `placeholder`,
 * and a `data-*` attribute the page adds only in one state (its presence).
 */
const STATE_CLASS = /valid|error|success|danger|warn|correct|wrong|match|checked|selected|brand|visa|master|amex|discover|diners|jcb|unionpay|maestro|strength|weak|strong|medium|fair|filled|empty|value|complete|dirty|pristine|touched/i;
const STATE_ATTRIBUTES = new Set(["aria-invalid", "aria-valuenow", "aria-valuetext"]);
/** How many children and grandchildren a wrapper is searched for its field. */
const WRAPPER_NODES = 64;

function isValueField(el: Element): boolean {
  return VALUE_FIELDS.has(localNameOf(el));
}

/** Roles of a page's own widget that holds a value (a PIN pad, a custom spin button): its
 * `aria-valuenow`/`aria-valuetext` are its value, as a field's `value` is. */
const VALUE_ROLES = new Set(["spinbutton", "slider", "textbox"]);

/** Whether `el` is a hidden field, or wraps one as its only field (two levels down), or is a
 * widget with a value role (VALUE_ROLES) that the page says is a password or PIN. */
function holdsHiddenFieldState(el: Element): boolean {
  if (isValueField(el)) return valueHidden(el);
  if (VALUE_ROLES.has((attributeOf(el, "role") ?? "").trim().toLowerCase()) && saidToBePassword(el)) return true;
  const fields: Element[] = [];
  let seen = 0;
  for (const child of childElementsOf(el, WRAPPER_NODES)) {
    seen++;
    if (isValueField(child)) fields.push(child);
    for (const grandchild of childElementsOf(child, WRAPPER_NODES - seen)) {
      seen++;
      if (isValueField(grandchild)) fields.push(grandchild);
    }
    if (seen >= WRAPPER_NODES || fields.length > 1) break;
  }
  return fields.length === 1 && valueHidden(fields[0]);
}

/** Returns whether `el` holds a hidden field's state (its attributes were masked so). */
function hideFieldState(attrs: Record<string, unknown>, el: Element): boolean {
  if (!holdsHiddenFieldState(el)) return false;
  for (const [name, value] of Object.entries(attrs)) {
    const key = name.toLowerCase();
    if (key === "class" && typeof value === "string") {
      attrs[name] = value.split(/\s+/).filter((token) => token !== "" && !STATE_CLASS.test(token)).join(" ");
    } else if (STATE_ATTRIBUTES.has(key)) {
      delete attrs[name];
    } else if (key.startsWith("data-") && !key.startsWith("data-tandem-") && !key.startsWith("data-rr-") && typeof value === "string" && value !== "") {
      attrs[name] = MASK_PLACEHOLDER;
    }
  }
  return true;
}
