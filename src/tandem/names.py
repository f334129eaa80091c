"""Names people read: an organisation's, a site's, an account's display name.

They are shown to others inside sentences ("Ann Smith wants to see this page" in the customer's
widget, "Ann Smith (supervisor) is watching too" in the console, the office pages' lists, the
audit views and the CLI), so what text alone can do there is the attack: a bidirectional mark or
override reorders the sentence; a zero-width or other invisible character makes two names that
differ look the same ("Ann Smith" and "Ann Smith" with a U+200E after it); a Hangul filler is a
name that looks empty; combining marks stacked hundreds deep draw over the lines around.

Two halves, written the same way in the browsers (``sdk/src/shared/names.ts``):

- :func:`name_refusal` is the rule where names are set: anything it names is refused with a clear
  error;
- :func:`shown_name` is how a name stored before the rule (or written into the database behind the
  server's back) is shown: each invisible character a visible U+FFFD (so the two look different),
  line breaks a space, stacked marks cut, a name with nothing visible its fallback.
"""

from __future__ import annotations

import unicodedata

MAX_NAME = 100
"""At most this many characters (code points) in a name."""

MAX_MARKS = 4
"""At most this many combining marks on one character: enough for any script's accents (a
Vietnamese vowel has two), far from the hundreds that draw over the lines around."""

REPLACEMENT = "\ufffd"

_LINE_BREAKING = frozenset({"Cc", "Zl", "Zp"})
"""Control characters (C0, DEL, C1), line and paragraph separators: they break a sentence."""
_INVISIBLE_CATEGORIES = frozenset({"Cf", "Cs", "Co", "Cn"})
"""Format characters (every bidirectional mark, embedding, override and isolate, zero-width space
and joiners, word joiner, invisible operators, byte order mark, soft hyphen, U+061C, U+180E, tag
characters), surrogates, private-use and unassigned code points."""
_INVISIBLE_LETTERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
"""Letters that draw nothing: the Hangul fillers, and the blank braille pattern."""
_MARKS = frozenset({"Mn", "Me"})
"""Combining marks (variation selectors among them): they draw on the character before."""


_IGNORABLE_MARKS = frozenset("\u034f\u17b4\u17b5")
"""Marks that draw nothing on any character: the combining grapheme joiner, the Khmer inherent
vowels (deprecated). "Ann Smith" with one after it looked like "Ann Smith"."""
_MONGOLIAN_SELECTORS = frozenset("\u180b\u180c\u180d\u180f")
"""The Mongolian free variation selectors: they choose a Mongolian letter's form, and draw
nothing after any other character."""
_EMOJI_PUNCTUATION = frozenset("\u203c\u2049\u3030\u303d")
"""Punctuation that is also an emoji (‼ ⁉ 〰 〽), which a variation selector draws as one."""
_KEYCAP_BASES = frozenset("0123456789#*")

_JOINERS = frozenset("\u200c\u200d")
_VIRAMAS = frozenset("\u094d\u09cd\u0a4d\u0acd\u0b4d\u0bcd\u0c4d\u0ccd\u0d4d\u0dca")
"""The viramas of the Indic scripts (Devanagari to Sinhala), after which a joiner chooses how a
conjunct is drawn."""
_ARABIC = ((0x0600, 0x06FF), (0x0750, 0x077F), (0x08A0, 0x08FF), (0xFB50, 0xFDFF), (0xFE70, 0xFEFC))
_EMOJI_MODIFIERS = frozenset({"Sk", "Mn"})
"""Skin tones (Sk) and the emoji variation selector (Mn) between an emoji and its joiner."""


def _indic_letter(char: str) -> bool:
    """A letter of the scripts of :data:`_VIRAMAS` (Devanagari to Sinhala)."""
    return 0x0900 <= ord(char) <= 0x0DFF and unicodedata.category(char)[0] == "L"


def _arabic_letter(char: str) -> bool:
    return unicodedata.category(char)[0] == "L" and any(a <= ord(char) <= b for a, b in _ARABIC)


def _joiner_in_place(text: str, index: int) -> bool:
    """Whether the zero-width joiner or non-joiner at ``index`` does what names need one for, so
    draws differently from its absence: after an Indic virama (a conjunct; last in a name too,
    Malayalam's chillu "അന്‍വര്‍"), a joiner between a letter and a virama (Bengali's ra-phala
    "র‍্যাচেল", Sinhala's touching letters), a non-joiner between two Arabic-script letters
    (Persian "می‌خواهم"), a joiner between two emoji (👩‍💻). Anywhere else it draws nothing, and
    only tells two look-alike names apart."""
    if index == 0:
        return False
    before = text[index - 1]
    if index == len(text) - 1:  # last: only a chillu's joiner (a non-joiner there changes nothing)
        return before in _VIRAMAS and text[index] == "\u200d"
    if before in _VIRAMAS:
        return True
    after = text[index + 1]
    if text[index] == "\u200d" and after in _VIRAMAS and _indic_letter(before):
        return True
    back = index - 1
    while back > 0 and unicodedata.category(text[back]) in (
        _EMOJI_MODIFIERS if text[index] == "\u200d" else _MARKS
    ):
        back -= 1
    if text[index] == "\u200c":
        return _arabic_letter(text[back]) and _arabic_letter(after)
    return unicodedata.category(text[back]) == "So" and unicodedata.category(after) == "So"


def _variation_selector(char: str) -> bool:
    return "\ufe00" <= char <= "\ufe0f" or "\U000e0100" <= char <= "\U000e01ef"


def _ideograph(char: str) -> bool:
    return unicodedata.name(char, "").startswith("CJK UNIFIED IDEOGRAPH")


def _selector_in_place(text: str, index: int) -> bool:
    """Whether the variation selector at ``index`` chooses how the character before it is drawn:
    U+FE0E/U+FE0F after a symbol or an emoji's punctuation (❤️), or after a keycap's base before
    its U+20E3 (1️⃣); U+FE00-U+FE0D after a symbol; an ideographic variation selector
    (U+E0100-U+E01EF, Japanese names' registered forms, 葛󠄀) or U+FE00-U+FE0D after a CJK
    ideograph; a Mongolian one after a Mongolian letter. After any other character (a Latin
    letter) it draws nothing. One first or after a space is left to the rule of marks (a mark on
    nothing)."""
    char = text[index]
    if index == 0 or unicodedata.category(text[index - 1])[0] == "Z":
        return True
    before = text[index - 1]
    if char in _MONGOLIAN_SELECTORS:
        return 0x1820 <= ord(before) <= 0x18AA and unicodedata.category(before)[0] == "L"
    if char >= "\U000e0100":
        return _ideograph(before)
    if char in "\ufe0e\ufe0f":
        if before in _KEYCAP_BASES:
            return text[index + 1 : index + 2] == "\u20e3"
        if before in _EMOJI_PUNCTUATION:
            return True
    return unicodedata.category(before)[0] == "S" or _ideograph(before)


def _invisible_at(text: str, index: int) -> bool:
    char = text[index]
    if char in _JOINERS:
        return not _joiner_in_place(text, index)
    if char in _IGNORABLE_MARKS:
        return True
    if char in _MONGOLIAN_SELECTORS or _variation_selector(char):
        return not _selector_in_place(text, index)
    return unicodedata.category(char) in _INVISIBLE_CATEGORIES or char in _INVISIBLE_LETTERS


def _visible(char: str) -> bool:
    return unicodedata.category(char)[0] not in "ZC" and char not in _INVISIBLE_LETTERS


def name_refusal(text: str, what: str = "name") -> str | None:
    """Why ``text`` (already trimmed) is no name people may read, or None if it is one: 1-100
    characters, none a control, separator, format (invisible or bidirectional), private-use or
    unassigned character or a Hangul filler, no combining mark without a letter to sit on and at
    most :data:`MAX_MARKS` on one, and at least one visible."""
    rule = (
        f"{'an' if what[0] in 'aeiou' else 'a'} {what} is 1-{MAX_NAME} printable characters, "
        "without control, invisible or bidirectional formatting characters"
    )
    if not 1 <= len(text) <= MAX_NAME:
        return rule
    marks = 0
    before = " "
    for position, char in enumerate(text, 1):
        category = unicodedata.category(char)
        if category in _LINE_BREAKING or _invisible_at(text, position - 1):
            return f"{rule}: U+{ord(char):04X} (character {position}) is one"
        if category in _MARKS:
            marks += 1
            if unicodedata.category(before)[0] == "Z":
                return f"{rule}: U+{ord(char):04X} (character {position}) is a mark on nothing"
            if marks > MAX_MARKS:
                return f"{rule}: at most {MAX_MARKS} marks on one character (character {position})"
        else:
            marks = 0
            before = char
    if not any(_visible(char) for char in text):
        return f"{rule}, and at least one visible"
    return None


def shown_name(text: str, fallback: str) -> str:
    """``text`` as a name that passes :func:`name_refusal`, for names stored before the rule (or
    by someone writing the database): line breaks a space, each invisible character and each
    mark on nothing a visible U+FFFD, marks past :data:`MAX_MARKS` on one character dropped,
    spaces run together, cut to :data:`MAX_NAME`; ``fallback`` (an id) if nothing visible is
    left. A name that passes the rule is returned as it is."""
    if name_refusal(text) is None:
        return text
    out: list[str] = []
    marks = 0
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        if category in _LINE_BREAKING or category[0] == "Z":
            char = " "
        elif _invisible_at(text, index):
            char = REPLACEMENT
        if category in _MARKS and char != " ":
            marks += 1
            if not out or out[-1] == " ":
                char, marks = REPLACEMENT, 0
            elif marks > MAX_MARKS:
                continue
        else:
            marks = 0
        if char == " " and (not out or out[-1] == " "):
            continue
        out.append(char)
    shown = "".join(out).strip()[:MAX_NAME].rstrip()
    if not any(_visible(char) for char in shown):
        return fallback
    # The cut can leave a joiner last, or its neighbour cut away: once more on the short name.
    return shown if name_refusal(shown) is None else shown_name(shown, fallback)


def display_line(text: str) -> str:
    """Any text of another's (an audit detail, a provider's words) as one line for a terminal or
    a log: line breaks and controls a space, invisible characters U+FFFD, marks past
    :data:`MAX_MARKS` dropped; never cut, never empty-checked."""
    out: list[str] = []
    marks = 0
    for index, char in enumerate(text):
        category = unicodedata.category(char)
        if category in _LINE_BREAKING:
            char = " "
        elif _invisible_at(text, index):
            char = REPLACEMENT
        if category in _MARKS:
            marks += 1
            if marks > MAX_MARKS:
                continue
        else:
            marks = 0
        out.append(char)
    return "".join(out)
